"""Point in time: the DuckDB engine equals the brute-force reference on random event streams.

The streams are small and dense on purpose: timestamps come from a handful of instants (some
exactly one window apart, some a microsecond either side), so ties between payments, and
between label reports and payments, happen in most examples.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from unittest import mock

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.events import LABEL_KINDS, validate_labels, validate_payments
from vigil.features import (
    FEATURE_KINDS,
    Count,
    CountDistinct,
    DayOfWeek,
    FeatureSet,
    FraudCount,
    FraudRate,
    HourOfDay,
    IsNight,
    IsWeekend,
    LabelCount,
    Max,
    Mean,
    Min,
    Ratio,
    Relative,
    Sum,
    TimeSinceFirst,
    TimeSinceFirstFraud,
    TimeSinceLast,
    TimeSinceLastFraud,
    Value,
    build_features,
    reference_features,
)
from vigil.features.offline import _label_windows

US = timedelta(microseconds=1)
H = timedelta(hours=1)
D = timedelta(days=1)

# Offsets from a base instant: windows of 1h and 1d land exactly on some pairs, and a
# microsecond either side of others, so the open/closed ends of every window are exercised.
OFFSETS = [timedelta(0), US, 30 * timedelta(minutes=1), H - US, H, H + US, 2 * H,
           D - US, D, D + US, D + H, 2 * D, 3 * D]
BASES = [
    datetime(2024, 3, 1, 22, 0, tzinfo=UTC),    # a Friday evening: weekend and night flip
    datetime(1969, 12, 31, 20, 0, tzinfo=UTC),  # before the epoch: negative microseconds
    datetime(2024, 6, 9, 5, 59, 59, 999_999, tzinfo=UTC),
]
DELAYS = [timedelta(0), US, H - US, H, D, D + US, 2 * D]

ENTITY_KEYS = {"card": "card_id", "terminal": "terminal_id", "device": "device_id"}


def every_kind_feature_set() -> FeatureSet:
    """Every feature kind, on every entity, with both include_current values and 3 windows."""
    features = [Value("amount"), Value("score"), IsWeekend(), IsNight(), IsNight(until_hour=21),
                HourOfDay(), DayOfWeek()]
    windows = ("1h", "1d", "2d")
    for by in ENTITY_KEYS:
        for window in windows:
            for current in (True, False):
                features.append(Count(by=by, window=window, include_current=current))
                for cls in (Sum, Mean, Min, Max):
                    features.append(cls("amount", by=by, window=window, include_current=current))
                features.append(Sum("score", by=by, window=window, include_current=current))
                features.append(Mean("score", by=by, window=window, include_current=current))
                others = [e for e in ENTITY_KEYS if e != by]
                for other in others:
                    features.append(CountDistinct(other, by=by, window=window,
                                                  include_current=current))
            features += [Relative("amount", by=by, window=window),
                         Relative("score", by=by, window=window),
                         FraudCount(by=by, window=window), LabelCount(by=by, window=window),
                         FraudRate(by=by, window=window),
                         TimeSinceFirstFraud(by=by, window=window),
                         TimeSinceLastFraud(by=by, window=window)]
        features += [TimeSinceFirst(by=by), TimeSinceLast(by=by)]
    features += [  # ratios of every shape of payment feature, zero denominators included
        Ratio(Max("amount", by="card", window="1d", include_current=False),
              Mean("amount", by="card", window="2d")),
        Ratio(Count(by="device", window="1h"), TimeSinceLast(by="card")),
        Ratio(Value("score"), Sum("score", by="terminal", window="1h")),
        Ratio(IsNight(), HourOfDay()),
        Ratio(Relative("amount", by="terminal", window="1d"),
              CountDistinct("device", by="card", window="1d", include_current=False)),
    ]
    return FeatureSet("every_kind", ENTITY_KEYS, features)


FEATURES = every_kind_feature_set()
# integer-valued ops must agree exactly; the rest to 1e-9 relative
EXACT_OPS = {"count", "count_distinct", "fraud_count", "label_count", "since_first",
             "since_last", "since_first_fraud", "since_last_fraud", "is_weekend", "is_night",
             "hour_of_day", "day_of_week"}


def test_the_feature_set_covers_every_kind():
    kinds = {f.kind for f in FEATURES.features}
    assert kinds == set(FEATURE_KINDS)
    for kind, cls in FEATURE_KINDS.items():
        if "include_current" in cls.__dataclass_fields__:
            seen = {f.include_current for f in FEATURES.features if f.kind == kind}
            assert seen == {True, False}, kind


def payments_table(rows: list[dict]) -> pa.Table:
    """Rows with payment_id, ts, amount and the entity keys, as validated payments."""
    n = len(rows)
    return validate_payments(pa.table({
        "payment_id": pa.array([r["payment_id"] for r in rows], pa.string()),
        "ts": pa.array([r["ts"] for r in rows], pa.timestamp("us", tz="UTC")),
        "amount": pa.array([r.get("amount", 10.0) for r in rows], pa.float64()),
        "currency": pa.array(["EUR"] * n, pa.string()),
        "card_id": pa.array([r.get("card_id", "c1") for r in rows], pa.string()),
        "customer_id": pa.array([r.get("card_id", "c1") for r in rows], pa.string()),
        "merchant_id": pa.array(["m1"] * n, pa.string()),
        "terminal_id": pa.array([r.get("terminal_id") for r in rows], pa.string()),
        "device_id": pa.array([r.get("device_id") for r in rows], pa.string()),
        "score": pa.array([r.get("score") for r in rows], pa.int64()),
    }), "test payments")


def labels_table(rows: list[dict]) -> pa.Table:
    return validate_labels(pa.table({
        "payment_id": pa.array([r["payment_id"] for r in rows], pa.string()),
        "kind": pa.array([r.get("kind", "fraud_report") for r in rows], pa.string()),
        "is_fraud": pa.array([r["is_fraud"] for r in rows], pa.bool_()),
        "reported_at": pa.array([r["reported_at"] for r in rows], pa.timestamp("us", tz="UTC")),
    }), "test labels")


@st.composite
def event_streams(draw, max_payments: int = 40) -> tuple[pa.Table, pa.Table]:
    base = draw(st.sampled_from(BASES))
    n = draw(st.integers(0, max_payments))
    order = draw(st.permutations(range(n)))
    payments = []
    for i in range(n):
        payments.append({
            "payment_id": f"p{order[i]}",
            "ts": base + draw(st.sampled_from(OFFSETS)),
            "amount": draw(st.sampled_from([0.0, 0.01, 1.0, 12.5, 99.99, 250.0, 1e6])),
            "card_id": draw(st.sampled_from(["c1", "c2", "c3"])),
            "terminal_id": draw(st.sampled_from(["t1", "t2", None])),
            "device_id": draw(st.sampled_from(["d1", "d2", None, None])),
            "score": draw(st.none() | st.integers(-3, 3)),
        })
    labels = []
    for p in payments:
        for _ in range(draw(st.integers(0, 3))):
            labels.append({
                "payment_id": p["payment_id"],
                "kind": draw(st.sampled_from(LABEL_KINDS)),
                "is_fraud": draw(st.booleans()),
                "reported_at": p["ts"] + draw(st.sampled_from(DELAYS)),
            })
    labels = draw(st.permutations(labels))  # label order must not matter
    return payments_table(payments), labels_table(labels)


def _same(a: float | None, b: float | None, exact: bool) -> bool:
    a_missing = a is None or (isinstance(a, float) and math.isnan(a))
    b_missing = b is None or (isinstance(b, float) and math.isnan(b))
    if a_missing or b_missing:
        return a_missing and b_missing
    if exact:
        return a == b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)


def assert_tables_equal(engine: pa.Table, reference: pa.Table, feature_set: FeatureSet) -> None:
    assert engine.column_names == reference.column_names
    assert engine.column("payment_id").to_pylist() == reference.column("payment_id").to_pylist()
    assert engine.column("ts").to_pylist() == reference.column("ts").to_pylist()
    ids = engine.column("payment_id").to_pylist()
    for spec in feature_set.specs():
        got = engine.column(spec.name).to_pylist()
        want = reference.column(spec.name).to_pylist()
        bad = [(pid, g, w) for pid, g, w in zip(ids, got, want, strict=True)
               if not _same(g, w, spec.op in EXACT_OPS)]
        assert not bad, f"{spec.name}: (payment, engine, reference) {bad[:5]}"


@pytest.mark.parametrize("label_windows", ["search", "search-by-rank", "sql"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=event_streams())
def test_engine_equals_reference(stream, label_windows):
    """Every feature, all three ways the engine computes label-aware windows: sorted search
    over packed (entity, time) keys, the same when packing would overflow (times replaced by
    ranks), and the SQL window form."""
    payments, labels = stream
    headroom = 1 if label_windows == "search-by-rank" else _label_windows._INT64_HEADROOM
    with mock.patch.object(_label_windows, "_INT64_HEADROOM", headroom):
        engine = build_features(FEATURES, payments, labels,
                                label_windows=label_windows.removesuffix("-by-rank"))
    reference = reference_features(FEATURES, payments, labels)
    assert_tables_equal(engine, reference, FEATURES)


@settings(max_examples=20, deadline=None)
@given(event_streams(max_payments=15))
def test_result_does_not_depend_on_input_order(stream):
    payments, labels = stream
    first = build_features(FEATURES, payments, labels)
    def reversed_rows(table: pa.Table) -> pa.Table:
        return table.take(pa.array(range(table.num_rows - 1, -1, -1), pa.int64()))

    again = build_features(FEATURES, reversed_rows(payments), reversed_rows(labels))
    assert_tables_equal(again, first, FEATURES)


# --------------------------------------------------------------------------- direct cases

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def both_executors(feature_set, payments, labels=None):
    """The engine's and the reference's tables, checked equal to each other."""
    engine = build_features(feature_set, payments, labels)
    reference = reference_features(feature_set, payments, labels)
    assert_tables_equal(engine, reference, feature_set)
    return engine


def column(table: pa.Table, name: str) -> dict[str, float | None]:
    return dict(zip(table.column("payment_id").to_pylist(), table.column(name).to_pylist(),
                    strict=True))


@pytest.fixture
def terminal_with_fraud():
    """Payment a (fraud) at T0 on terminal t1; b, c, d later on t1; a's label reported at c."""
    payments = payments_table([
        {"payment_id": "a", "ts": T0, "terminal_id": "t1"},
        {"payment_id": "b", "ts": T0 + H, "terminal_id": "t1"},
        {"payment_id": "c", "ts": T0 + 2 * H, "terminal_id": "t1"},
        {"payment_id": "d", "ts": T0 + 2 * H + US, "terminal_id": "t1"},
    ])
    labels = labels_table([{"payment_id": "a", "is_fraud": True, "reported_at": T0 + 2 * H}])
    return payments, labels


def test_a_label_is_seen_only_after_its_report_time(terminal_with_fraud):
    payments, labels = terminal_with_fraud
    fs = FeatureSet("labels", {"terminal": "terminal_id"},
                    [FraudCount(by="terminal", window="7d"), LabelCount(by="terminal", window="7d"),
                     FraudRate(by="terminal", window="7d"),
                     TimeSinceLastFraud(by="terminal", window="7d")])
    table = both_executors(fs, payments, labels)
    # a itself, b (before the report) and c (exactly at the report) do not know about the fraud
    assert column(table, "fraud_count_by_terminal_7d") == {"a": 0.0, "b": 0.0, "c": 0.0, "d": 1.0}
    assert column(table, "label_count_by_terminal_7d") == {"a": 0.0, "b": 0.0, "c": 0.0, "d": 1.0}
    assert column(table, "fraud_rate_by_terminal_7d") == {"a": 0.0, "b": 0.0, "c": 0.0, "d": 1.0}
    assert column(table, "seconds_since_last_fraud_by_terminal_7d") == {
        "a": None, "b": None, "c": None, "d": 1e-6}


def test_a_label_leaves_the_window_by_report_time(terminal_with_fraud):
    payments, labels = terminal_with_fraud
    fs = FeatureSet("labels", {"terminal": "terminal_id"},
                    [FraudCount(by="terminal", window="1h")])
    late = payments_table([{"payment_id": "e", "ts": T0 + 3 * H, "terminal_id": "t1"},
                           {"payment_id": "f", "ts": T0 + 3 * H - US, "terminal_id": "t1"}])
    table = both_executors(fs, pa.concat_tables([payments, late]), labels)
    # reported at T0+2h: in (t-1h, t) for f at T0+3h-1us, no longer for e at exactly T0+3h
    assert column(table, "fraud_count_by_terminal_1h") == {
        "a": 0.0, "b": 0.0, "c": 0.0, "d": 1.0, "f": 1.0, "e": 0.0}


def test_the_first_fraud_report_counts_not_the_first_label():
    payments = payments_table([
        {"payment_id": "a", "ts": T0, "terminal_id": "t1"},
        {"payment_id": "b", "ts": T0 + 2 * H, "terminal_id": "t1"},
        {"payment_id": "c", "ts": T0 + 4 * H, "terminal_id": "t1"},
    ])
    labels = labels_table([
        {"payment_id": "a", "kind": "review_outcome", "is_fraud": False, "reported_at": T0 + H},
        {"payment_id": "a", "kind": "dispute", "is_fraud": True, "reported_at": T0 + 3 * H},
    ])
    fs = FeatureSet("labels", {"terminal": "terminal_id"},
                    [FraudCount(by="terminal", window="1d"),
                     LabelCount(by="terminal", window="1d")])
    table = both_executors(fs, payments, labels)
    assert column(table, "label_count_by_terminal_1d") == {"a": 0.0, "b": 1.0, "c": 1.0}
    assert column(table, "fraud_count_by_terminal_1d") == {"a": 0.0, "b": 0.0, "c": 1.0}


def test_payments_at_the_same_instant_do_not_see_each_other():
    payments = payments_table([
        {"payment_id": "a", "ts": T0 - H, "amount": 1.0},
        {"payment_id": "b", "ts": T0, "amount": 10.0},
        {"payment_id": "c", "ts": T0, "amount": 100.0},
        {"payment_id": "d", "ts": T0, "amount": 1000.0},
    ])
    fs = FeatureSet("ties", {"card": "card_id"}, [
        Count(by="card", window="1d"), Count(by="card", window="1d", include_current=False),
        Sum("amount", by="card", window="1d"), TimeSinceLast(by="card"),
        Relative("amount", by="card", window="1d"),
    ])
    table = both_executors(fs, payments)
    assert column(table, "count_by_card_1d") == {"a": 1.0, "b": 2.0, "c": 2.0, "d": 2.0}
    assert column(table, "count_by_card_1d_prior") == {"a": 0.0, "b": 1.0, "c": 1.0, "d": 1.0}
    assert column(table, "amount_sum_by_card_1d") == {
        "a": 1.0, "b": 11.0, "c": 101.0, "d": 1001.0}
    assert column(table, "seconds_since_last_by_card") == {
        "a": None, "b": 3600.0, "c": 3600.0, "d": 3600.0}
    assert column(table, "amount_vs_mean_by_card_1d") == {
        "a": None, "b": 10.0, "c": 100.0, "d": 1000.0}


def test_a_window_is_open_at_its_far_end():
    payments = payments_table([
        {"payment_id": "a", "ts": T0 - H},
        {"payment_id": "b", "ts": T0 - H + US},
        {"payment_id": "c", "ts": T0},
    ])
    fs = FeatureSet("edge", {"card": "card_id"}, [Count(by="card", window="1h")])
    table = both_executors(fs, payments)
    assert column(table, "count_by_card_1h") == {"a": 1.0, "b": 2.0, "c": 2.0}


def test_a_ratio_is_null_on_a_null_or_zero_denominator():
    payments = payments_table([
        {"payment_id": "a", "ts": T0, "amount": 5.0, "device_id": "d1"},
        {"payment_id": "b", "ts": T0 + H, "amount": 20.0, "device_id": None},
        {"payment_id": "c", "ts": T0 + 2 * H, "amount": 0.0, "device_id": "d1"},
    ])
    fs = FeatureSet("ratios", {"card": "card_id", "device": "device_id"}, [
        Ratio(Value("amount"), Mean("amount", by="card", window="1d", include_current=False)),
        Ratio(Value("amount"), Count(by="device", window="1d")),
    ])
    table = both_executors(fs, payments)
    assert column(table, fs.names[0]) == {"a": None, "b": 4.0, "c": 0.0}
    assert column(table, fs.names[1]) == {"a": 5.0, "b": None, "c": 0.0}


def test_a_null_entity_key_gives_null_features():
    payments = payments_table([
        {"payment_id": "a", "ts": T0, "device_id": None, "terminal_id": "t1"},
        {"payment_id": "b", "ts": T0 + H, "device_id": None, "terminal_id": None},
    ])
    labels = labels_table([{"payment_id": "a", "is_fraud": True, "reported_at": T0}])
    fs = FeatureSet("nulls", {"device": "device_id", "terminal": "terminal_id"}, [
        Count(by="device", window="1d"), Sum("amount", by="device", window="1d"),
        TimeSinceFirst(by="device"), FraudCount(by="terminal", window="1d"),
    ])
    table = both_executors(fs, payments, labels)
    assert column(table, "count_by_device_1d") == {"a": None, "b": None}
    assert column(table, "amount_sum_by_device_1d") == {"a": None, "b": None}
    assert column(table, "seconds_since_first_by_device") == {"a": None, "b": None}
    assert column(table, "fraud_count_by_terminal_1d") == {"a": 0.0, "b": None}
