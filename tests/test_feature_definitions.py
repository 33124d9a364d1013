"""Feature definitions: names derive from them, they round-trip as data, bad ones say why."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow as pa
import pytest

import vigil
from vigil.features import (
    BUILTIN_FEATURE_SETS,
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
    builtin_feature_set,
    feature_from_dict,
    handbook_baseline,
)

KEYS = {"card": "card_id", "terminal": "terminal_id", "ip": "ip"}


@pytest.mark.parametrize(("feature", "name"), [
    (Value("amount"), "amount"),
    (IsWeekend(), "is_weekend"),
    (IsNight(), "is_night"),
    (IsNight(until_hour=5), "is_night_until_5"),
    (HourOfDay(), "hour_of_day"),
    (DayOfWeek(), "day_of_week"),
    (Count(by="card", window="1h"), "count_by_card_1h"),
    (Count(by="card", window="1h", include_current=False), "count_by_card_1h_prior"),
    (Sum("amount", by="card", window="24h"), "amount_sum_by_card_24h"),
    (Sum("amount", by="card", window=" 24 h"), "amount_sum_by_card_24h"),
    (Mean("amount", by="card", window="30d"), "amount_mean_by_card_30d"),
    (Min("amount", by="terminal", window="7d"), "amount_min_by_terminal_7d"),
    (Max("amount", by="card", window="2w", include_current=False), "amount_max_by_card_2w_prior"),
    (CountDistinct("card", by="ip", window="15m"), "card_distinct_by_ip_15m"),
    (Relative("amount", by="card", window="30d"), "amount_vs_mean_by_card_30d"),
    (TimeSinceFirst(by="card"), "seconds_since_first_by_card"),
    (TimeSinceLast(by="card"), "seconds_since_last_by_card"),
    (FraudCount(by="terminal", window="28d"), "fraud_count_by_terminal_28d"),
    (LabelCount(by="terminal", window="28d"), "label_count_by_terminal_28d"),
    (FraudRate(by="terminal", window="28d"), "fraud_rate_by_terminal_28d"),
    (TimeSinceFirstFraud(by="terminal", window="35d"),
     "seconds_since_first_fraud_by_terminal_35d"),
    (TimeSinceLastFraud(by="terminal", window="35d"), "seconds_since_last_fraud_by_terminal_35d"),
    (Ratio(Max("amount", by="card", window="7d", include_current=False),
           Mean("amount", by="card", window="60d")),
     "amount_max_by_card_7d_prior_over_amount_mean_by_card_60d"),
])
def test_names_derive_from_the_definition(feature, name):
    assert feature.name == name
    assert feature.spec(KEYS).name == name


def test_every_kind_has_a_name_test():
    """When a kind is added, add it to the list above (and to the point-in-time test)."""
    named = {Value, IsWeekend, IsNight, HourOfDay, DayOfWeek, Count, Sum, Mean, Min, Max,
             CountDistinct, Relative, TimeSinceFirst, TimeSinceLast, FraudCount, LabelCount,
             FraudRate, TimeSinceFirstFraud, TimeSinceLastFraud, Ratio}
    assert set(FEATURE_KINDS.values()) == named


def test_a_value_may_name_an_entity_or_a_column():
    spec = CountDistinct("card", by="ip", window="1h").spec(KEYS)
    assert (spec.key, spec.column) == ("ip", "card_id")
    spec = CountDistinct("merchant_id", by="ip", window="1h").spec(KEYS)
    assert spec.column == "merchant_id"


# --------------------------------------------------------------------------- round trips

def every_kind() -> FeatureSet:
    return FeatureSet("every_kind", KEYS, [
        Value("amount"), IsWeekend(), IsNight(), IsNight(until_hour=3), HourOfDay(), DayOfWeek(),
        Count(by="card", window="1h"), Count(by="card", window="1h", include_current=False),
        Sum("amount", by="card", window="24h"), Mean("amount", by="terminal", window="7d"),
        Min("amount", by="card", window="30d"),
        Max("amount", by="card", window="30d", include_current=False),
        CountDistinct("card", by="ip", window="1h"), Relative("amount", by="card", window="30d"),
        TimeSinceFirst(by="card"), TimeSinceLast(by="ip"),
        FraudCount(by="terminal", window="7d"), LabelCount(by="terminal", window="7d"),
        FraudRate(by="terminal", window="28d"), TimeSinceFirstFraud(by="terminal", window="35d"),
        TimeSinceLastFraud(by="card", window="35d"),
        Ratio(Count(by="card", window="1h"), Count(by="card", window="1d")),
    ])


def test_every_kind_set_covers_every_kind():
    assert {f.kind for f in every_kind().features} == set(FEATURE_KINDS)


@pytest.mark.parametrize("make", [every_kind, *BUILTIN_FEATURE_SETS.values()])
def test_round_trip_through_json(make):
    fs = make()
    again = FeatureSet.from_dict(json.loads(fs.to_json()))
    assert again == fs
    assert again.names == fs.names
    assert again.specs() == fs.specs()


def test_to_dict_leaves_out_defaults():
    assert Count(by="card", window="1h").to_dict() == {"kind": "count", "by": "card",
                                                       "window": "1h"}
    assert IsNight().to_dict() == {"kind": "is_night"}
    assert Count(by="card", window="1h", include_current=False).to_dict()["include_current"] \
        is False


def test_round_trip_through_a_json_file(tmp_path):
    fs = every_kind()
    path = tmp_path / "features.json"
    path.write_text(fs.to_json())
    assert FeatureSet.from_file(path) == fs


def test_a_toml_file_reads_as_the_same_feature_set(tmp_path):
    path = tmp_path / "features.toml"
    path.write_text('''
name = "velocity"

[entity_keys]
card = "card_id"
terminal = "terminal_id"

[[features]]
kind = "count"
by = "card"
window = "1h"

[[features]]
kind = "sum"
column = "amount"
by = "card"
window = "24h"
include_current = false

[[features]]
kind = "fraud_rate"
by = "terminal"
window = "28d"

[[features]]
kind = "is_night"
until_hour = 5

[[features]]
kind = "ratio"
numerator = { kind = "value", column = "amount" }
denominator = { kind = "mean", column = "amount", by = "card", window = "30d" }
''')
    fs = FeatureSet.from_file(path)
    assert fs == FeatureSet("velocity", {"card": "card_id", "terminal": "terminal_id"}, [
        Count(by="card", window="1h"),
        Sum("amount", by="card", window="24h", include_current=False),
        FraudRate(by="terminal", window="28d"),
        IsNight(until_hour=5),
        Ratio(Value("amount"), Mean("amount", by="card", window="30d")),
    ])
    assert fs.names == ["count_by_card_1h", "amount_sum_by_card_24h_prior",
                        "fraud_rate_by_terminal_28d", "is_night_until_5",
                        "amount_over_amount_mean_by_card_30d"]


def test_handbook_baseline_has_the_handbook_inputs_in_order():
    fs = handbook_baseline()
    assert fs.names == [
        "amount", "is_weekend", "is_night",
        "count_by_card_1d", "amount_mean_by_card_1d",
        "count_by_card_7d", "amount_mean_by_card_7d",
        "count_by_card_30d", "amount_mean_by_card_30d",
        "label_count_by_terminal_1d", "fraud_rate_by_terminal_1d",
        "label_count_by_terminal_7d", "fraud_rate_by_terminal_7d",
        "label_count_by_terminal_30d", "fraud_rate_by_terminal_30d",
    ]
    assert fs.needs_labels()
    assert fs.input_columns() == ["amount", "card_id", "terminal_id"]


@pytest.mark.parametrize("name", sorted(BUILTIN_FEATURE_SETS))
def test_builtin_sets_by_name(name):
    fs = builtin_feature_set(name)
    assert fs == BUILTIN_FEATURE_SETS[name]()
    assert len(set(fs.names)) == len(fs.names)


def test_the_default_set_extends_the_handbook_baseline():
    assert builtin_feature_set("default").names[:15] == handbook_baseline().names


# --------------------------------------------------------------------------- errors

COUNT = {"kind": "count", "by": "card", "window": "1h"}


@pytest.mark.parametrize(("data", "fragments"), [
    ({"kind": "median", "by": "card", "window": "1h"},
     ["unknown feature kind 'median'", "known kinds:", "count", "fraud_rate"]),
    ({"by": "card", "window": "1h"}, ["unknown feature kind None"]),
    ({**COUNT, "window": "90x"}, ["window '90x' is not a duration", "'15m', '1h', '7d'"]),
    ({**COUNT, "window": "0h"}, ["window '0h' must be longer than zero"]),
    ({**COUNT, "window": "-1h"}, ["window '-1h' is not a duration"]),
    ({**COUNT, "window": "1.5h"}, ["window '1.5h' is not a duration"]),
    ({**COUNT, "window": 3600}, ["window 3600 is not a duration"]),
    ({**COUNT, "column": "amount"},
     ["(count): unknown field(s) column", "allowed: by, include_current, window"]),
    ({"kind": "sum", "by": "card", "window": "1h"}, ["(sum): missing field(s) column"]),
    ({"kind": "fraud_rate", "by": "card"}, ["(fraud_rate): missing field(s) window"]),
    ({**COUNT, "include_current": "yes"}, ["include_current must be true or false"]),
    ({"kind": "sum", "column": "amount-eur", "by": "card", "window": "1h"},
     ["column 'amount-eur' is not a valid name"]),
    ({"kind": "is_night", "until_hour": 24}, ["until_hour must be a whole hour 0-23"]),
    ("count", ["expected a table of fields"]),
    ({"kind": ["count"], "by": "card", "window": "1h"}, ["unknown feature kind ['count']"]),
    ({"kind": "ratio", "numerator": {"kind": "value", "column": "amount"},
      "denominator": {"kind": "fraud_count", "by": "card", "window": "7d"}},
     ["numerator and denominator must be payment features (not label-aware"]),
    ({"kind": "ratio", "numerator": {"kind": "value", "column": "amount"},
      "denominator": {"kind": "count", "by": "card", "window": "7x"}},
     ["(denominator)", "window '7x' is not a duration"]),
    ({"kind": "ratio", "numerator": "amount", "denominator": {"kind": "is_night"}},
     ["(numerator): expected a table of fields"]),
])
def test_malformed_feature(data, fragments):
    with pytest.raises(vigil.DefinitionError) as info:
        feature_from_dict(data)
    for fragment in fragments:
        assert fragment in str(info.value)


@pytest.mark.parametrize(("data", "fragments"), [
    ({"name": "s", "entity_keys": {"card": "card_id"},
      "features": [{"kind": "count", "by": "ip", "window": "1h"}]},
     ["feature count_by_ip_1h", "entity 'ip' is not among the feature set's entity_keys (card)"]),
    ({"name": "s", "entity_keys": {"card": "card_id"},
      "features": [COUNT, {"kind": "count", "by": "card", "window": " 1h"}]},
     ["features 1 and 2 are both named 'count_by_card_1h'"]),
    ({"name": "s", "entity_keys": {"card": "card_id"}, "features": [COUNT], "version": 2},
     ["unknown field(s) version", "expected name, entity_keys, features"]),
    ({"name": "s", "features": [COUNT]}, ["missing 'entity_keys'"]),
    ({"entity_keys": {}, "features": [COUNT]}, ["missing 'name'"]),
    ({"name": "s", "entity_keys": {"card": "card_id"}, "features": []}, ["it has no features"]),
    ({"name": "s", "entity_keys": {"card": "card_id"}, "features": COUNT},
     ["features must be a list"]),
    ({"name": "s", "entity_keys": ["card"], "features": [COUNT]},
     ["entity_keys must map entity names to columns"]),
    ({"name": "s", "entity_keys": {"card": "card_id"},
      "features": [COUNT, {"kind": "median"}]},
     ["feature 2", "unknown feature kind 'median'"]),
])
def test_malformed_feature_set(data, fragments):
    with pytest.raises(vigil.DefinitionError) as info:
        FeatureSet.from_dict(data, source="my_features.toml")
    message = str(info.value)
    assert message.startswith("my_features.toml")
    for fragment in fragments:
        assert fragment in message


def test_duplicate_names_in_code():
    with pytest.raises(vigil.DefinitionError, match="both named 'amount_sum_by_card_24h'"):
        FeatureSet("s", {"card": "card_id"}, [Sum("amount", by="card", window="24h"),
                                              Sum("amount", by="card", window="24h")])


def test_unknown_builtin_set():
    with pytest.raises(vigil.DefinitionError, match="no built-in feature set 'nope'; built-in:"):
        builtin_feature_set("nope")


@pytest.mark.parametrize(("text", "suffix", "fragment"), [
    ("name = ", ".toml", "not valid TOML"),
    ("{", ".json", "not valid JSON"),
    ("name: x", ".yaml", "feature sets are .toml or .json files"),
])
def test_unreadable_feature_set_file(tmp_path, text, suffix, fragment):
    path = tmp_path / f"features{suffix}"
    path.write_text(text)
    with pytest.raises(vigil.VigilError, match=fragment):
        FeatureSet.from_file(path)


def test_missing_feature_set_file(tmp_path):
    with pytest.raises(vigil.DataFileError, match="no such feature set file"):
        FeatureSet.from_file(tmp_path / "nope.toml")


@pytest.fixture
def tiny_payments() -> pa.Table:
    return pa.table({
        "payment_id": ["p1"],
        "ts": pa.array([datetime(2024, 1, 1, tzinfo=UTC)], pa.timestamp("us", tz="UTC")),
        "amount": [12.5],
        "card_id": ["c1"],
        "terminal_id": ["t1"],
    })


@pytest.mark.parametrize(("feature", "fragments"), [
    (Sum("card_id", by="card", window="1h"),
     ["column 'card_id'", "feature 'card_id_sum_by_card_1h' needs a numeric column",
      "holds string"]),
    (Value("terminal_id"), ["feature 'terminal_id' needs a numeric column"]),
    (Sum("tip", by="card", window="1h"),
     ["feature 'tip_sum_by_card_1h' reads column 'tip', which the data does not have"]),
    (Count(by="ip", window="1h"),
     ["feature 'count_by_ip_1h' reads column 'ip', which the data does not have"]),
    (Ratio(Value("amount"), Sum("tip", by="card", window="1h")),
     ["feature 'tip_sum_by_card_1h' reads column 'tip'"]),
])
def test_columns_the_data_lacks_or_mistypes(tiny_payments, feature, fragments):
    fs = FeatureSet("s", KEYS, [feature])
    with pytest.raises(vigil.SchemaError) as info:
        build_features(fs, tiny_payments, source="pay.parquet")
    message = str(info.value)
    assert message.startswith("pay.parquet")
    for fragment in fragments:
        assert fragment in message


def test_label_features_need_labels(tiny_payments):
    fs = FeatureSet("s", KEYS, [FraudCount(by="terminal", window="7d")])
    with pytest.raises(vigil.ConfigError, match="pass the labels table"):
        build_features(fs, tiny_payments)


def test_count_distinct_of_text_is_fine(tiny_payments):
    fs = FeatureSet("s", KEYS, [CountDistinct("terminal", by="card", window="1h")])
    assert build_features(fs, tiny_payments).column(fs.names[0]).to_pylist() == [1.0]
