"""The pandas comparator of the speed benchmark computes the same Handbook features as vigil.

Where pandas' windows differ from vigil's (only at ties: see the module docstring of
vigil.bench._pandas_baseline), the tests state the difference exactly instead of hiding it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import vigil
from vigil.bench._pandas_baseline import handbook_features_pandas
from vigil.events import read_handbook, validate_labels, validate_payments
from vigil.features import build_features, handbook_baseline

HANDBOOK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fraud-handbook" \
    / "transactions.parquet"
DELAY = timedelta(days=7)
NAMES = handbook_baseline().names
COUNTS = [n for n in NAMES if n.startswith(("count_", "label_count_"))]


def synthetic_handbook(n: int = 3000, seed: int = 0) -> tuple[pa.Table, pa.Table]:
    """Handbook-like payments over 60 days (40 cards, 12 terminals, random microseconds, so no
    card pays twice at one instant), each labelled 7 days later, about 8 % fraud."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2018-04-01T00:00:00", "us")
    offsets = np.sort(rng.integers(0, 60 * 86_400 * 10**6, n))
    frame = pd.DataFrame({
        "payment_id": [f"{i:06d}" for i in range(n)],
        "ts": pd.to_datetime(start + offsets.astype("timedelta64[us]"), utc=True),
        "amount": np.round(rng.gamma(2.0, 30.0, n), 2),
        "currency": "EUR",
        "card_id": rng.integers(0, 40, n).astype(str),
        "terminal_id": rng.integers(0, 12, n).astype(str),
    })
    frame = frame.drop_duplicates(["card_id", "ts"])
    frame["customer_id"] = frame["card_id"]
    frame["merchant_id"] = frame["terminal_id"]
    payments = validate_payments(pa.Table.from_pandas(frame, preserve_index=False))
    fraud = rng.random(payments.num_rows) < 0.08
    labels = validate_labels(pa.table({
        "payment_id": payments.column("payment_id"),
        "kind": ["fraud_report"] * payments.num_rows,
        "is_fraud": fraud,
        "reported_at": pc.add(payments.column("ts"), pa.scalar(DELAY, pa.duration("us"))),
    }))
    return payments, labels


def assert_same(vigil_table: pa.Table, pandas_table: pa.Table, rows=None) -> None:
    """Counts exactly, floats to 1e-9 relative, NaN equal to NaN; on ``rows`` (a mask)."""
    assert pandas_table.column_names == vigil_table.column_names == ["payment_id", "ts", *NAMES]
    assert pandas_table.column("payment_id").equals(vigil_table.column("payment_id"))
    assert pandas_table.column("ts").equals(vigil_table.column("ts"))
    for name in NAMES:
        got = pandas_table.column(name).to_numpy(zero_copy_only=False)
        want = vigil_table.column(name).to_numpy(zero_copy_only=False)
        if rows is not None:
            got, want = got[rows], want[rows]
        if name in COUNTS:
            same = (got == want) | (np.isnan(got) & np.isnan(want))
        else:
            same = np.isclose(got, want, rtol=1e-9, atol=0.0, equal_nan=True)
        assert same.all(), f"{name}: {np.flatnonzero(~same)[:10]}"


def test_same_values_as_vigil_on_synthetic_handbook_data():
    payments, labels = synthetic_handbook()
    expected = build_features(handbook_baseline(), payments, labels)
    got = handbook_features_pandas(payments, labels)
    assert got.schema == expected.schema
    assert_same(expected, got)
    # the data exercises what it should: weekends, nights, empty terminal windows, fraud
    for name in ("is_weekend", "is_night"):
        assert set(got.column(name).to_pylist()) == {0.0, 1.0}
    assert 0.0 in got.column("label_count_by_terminal_1d").to_pylist()
    assert pc.max(got.column("fraud_rate_by_terminal_7d")).as_py() > 0


def test_input_order_does_not_matter():
    payments, labels = synthetic_handbook(n=300, seed=1)
    shuffled = payments.take(np.random.default_rng(2).permutation(payments.num_rows))
    assert_same(handbook_features_pandas(payments, labels),
                handbook_features_pandas(shuffled, labels))


def test_it_needs_one_label_delay():
    payments, labels = synthetic_handbook(n=50)
    later = labels.set_column(3, "reported_at", pc.add(
        labels.column("reported_at"), pa.array([timedelta(0)] * 49 + [timedelta(days=1)],
                                               pa.duration("us"))))
    with pytest.raises(vigil.ConfigError, match="one label delay"):
        handbook_features_pandas(payments, later)


T0 = datetime(2018, 4, 10, 12, 0, tzinfo=UTC)


def test_known_differences_at_ties():
    """pandas counts same-instant payments sorted before a payment, and a payment exactly one
    delay earlier (whose label is reported exactly now); vigil counts neither."""
    rows = [("a", T0 - DELAY, "c1"),  # one delay before b and c, on the same terminal
            ("b", T0, "c2"), ("c", T0, "c2")]  # card c2 pays twice at the same instant
    payments = validate_payments(pa.table({
        "payment_id": [r[0] for r in rows],
        "ts": pa.array([r[1] for r in rows], pa.timestamp("us", tz="UTC")),
        "amount": [10.0, 20.0, 40.0], "currency": ["EUR"] * 3,
        "card_id": [r[2] for r in rows], "customer_id": [r[2] for r in rows],
        "merchant_id": ["m"] * 3, "terminal_id": ["t"] * 3,
    }))
    labels = validate_labels(pa.table({
        "payment_id": ["a", "b", "c"], "kind": ["fraud_report"] * 3,
        "is_fraud": [True, False, False],
        "reported_at": pa.array([r[1] + DELAY for r in rows], pa.timestamp("us", tz="UTC")),
    }))
    ours = build_features(handbook_baseline(), payments, labels).to_pydict()
    theirs = handbook_features_pandas(payments, labels).to_pydict()
    assert ours["count_by_card_1d"] == [1.0, 1.0, 1.0]
    assert theirs["count_by_card_1d"] == [1.0, 1.0, 2.0]
    assert ours["amount_mean_by_card_1d"] == [10.0, 20.0, 40.0]
    assert theirs["amount_mean_by_card_1d"] == [10.0, 20.0, 30.0]
    assert ours["label_count_by_terminal_7d"] == [0.0, 0.0, 0.0]
    assert theirs["label_count_by_terminal_7d"] == [0.0, 1.0, 1.0]
    assert ours["fraud_rate_by_terminal_7d"] == [0.0, 0.0, 0.0]
    assert theirs["fraud_rate_by_terminal_7d"] == [0.0, 1.0, 1.0]


def tie_counts(payments: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Per payment, in (ts, payment_id) order: the card's payments at the same instant sorted
    before it, and the terminal's payments exactly one delay earlier."""
    df = payments.select(["payment_id", "ts", "card_id", "terminal_id"]).to_pandas()
    df = df.sort_values(["ts", "payment_id"]).reset_index(drop=True)
    card_tied_before = df.groupby(["card_id", "ts"]).cumcount().to_numpy()
    per_instant = df.groupby(["terminal_id", "ts"]).size().rename("n").reset_index()
    per_instant["ts"] = per_instant["ts"] + pd.Timedelta(DELAY)
    at_delay = df.merge(per_instant, on=["terminal_id", "ts"], how="left")["n"]
    return card_tied_before, at_delay.fillna(0).to_numpy()


@pytest.mark.handbook
@pytest.mark.skipif(not HANDBOOK.exists(), reason=f"the Handbook data is not at {HANDBOOK}")
def test_same_values_as_vigil_on_the_first_14_days_of_the_handbook():
    """The Handbook's first 14 days, for a fifth of its cards and terminals (pandas pays per
    group: all 15,000 took 40 s for no more coverage of the windows)."""
    data = read_handbook(HANDBOOK)
    ts = data.payments.column("ts")
    end = pc.min(ts).as_py() + timedelta(days=14)
    payments = data.payments.filter(pc.less(ts, pa.scalar(end, ts.type)))
    for key in ("card_id", "terminal_id"):
        ids = pc.unique(payments.column(key)).sort()
        payments = payments.filter(pc.is_in(payments.column(key), ids[:len(ids) // 5]))
    assert payments.num_rows > 2000
    labels = data.labels.filter(pc.is_in(data.labels.column("payment_id"),
                                         payments.column("payment_id")))
    expected = build_features(handbook_baseline(), payments, labels)
    got = handbook_features_pandas(payments, labels)

    card_ties, terminal_ties = tie_counts(payments)
    clean = (card_ties == 0) & (terminal_ties == 0)
    # every difference is one of the two documented ones, and they are rare
    assert_same(expected, got, rows=clean)
    assert (~clean).sum() < 0.001 * payments.num_rows
    for days in (1, 7, 30):
        theirs = got.column(f"count_by_card_{days}d").to_numpy()
        ours = expected.column(f"count_by_card_{days}d").to_numpy()
        assert (theirs == ours + card_ties).all()
        theirs = got.column(f"label_count_by_terminal_{days}d").to_numpy()
        ours = expected.column(f"label_count_by_terminal_{days}d").to_numpy()
        assert (theirs == ours + terminal_ties).all()
