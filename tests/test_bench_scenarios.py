"""`vigil bench scenarios` and the realistic feature set it brings: the benchmark's files and
numbers on a small world with every fraud at a raised rate, and the set's online features
equal to its offline ones."""

from __future__ import annotations

import json
import math
from datetime import datetime

import pytest
from click.testing import CliRunner
from test_features_point_in_time import assert_tables_equal

from vigil.bench._scenarios import SCENARIOS, run_scenarios_benchmark
from vigil.cli import main
from vigil.events import EventData, write_dataset
from vigil.features import FeatureSet, build_features, builtin_feature_set, payments_realistic
from vigil.features.online import OnlineFeatures
from vigil.simulate import HandbookWorld, RealisticWorld
from vigil.simulate.realistic import (
    AccountTakeover,
    AdaptiveFraud,
    CardTesting,
    CompromisedTerminal,
    FriendlyFraud,
    StolenCardCNP,
    SyntheticIdentityRing,
)

DAYS = 50


@pytest.fixture(scope="module")
def world_data():
    """800 customers over 50 days, every fraud at a raised rate (the drift at day 28)."""
    scenarios = [StolenCardCNP(rate=1e-3), CardTesting(rate=4.0), AccountTakeover(rate=5e-4),
                 CompromisedTerminal(rate=4e-4), FriendlyFraud(rate=5e-3),
                 AdaptiveFraud(rate=1e-3, shift_day=28), SyntheticIdentityRing(rate=0.5)]
    return RealisticWorld(n_customers=800, n_merchants=200, scenarios=scenarios).simulate(
        DAYS, start="2024-01-01", seed=11)


@pytest.fixture(scope="module")
def bench(world_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("scenarios")
    write_dataset(world_data, folder / "world")
    messages: list[str] = []
    result = run_scenarios_benchmark(data=folder / "world", out_dir=folder / "results",
                                     params={"n_estimators": 40, "max_bin": 256},
                                     progress=messages.append)
    return folder, result, messages


def test_the_realistic_set_is_built_in_and_servable():
    fs = builtin_feature_set("realistic")
    assert fs == payments_realistic()
    assert fs.names[:40] == builtin_feature_set("default").names
    # every column it reads is one the scoring API takes (no account_id, no status)
    assert set(fs.input_columns()) <= {"amount", "card_id", "terminal_id", "device_id", "ip",
                                       "email", "ip_country", "merchant_id"}
    assert FeatureSet.from_dict(json.loads(fs.to_json())) == fs


def test_the_realistic_set_online_equals_offline(world_data):
    """Replayed payment by payment, labels as they arrive: equal to the offline table."""
    fs = payments_realistic()
    assert_tables_equal(OnlineFeatures(fs).replay(world_data.payments, world_data.labels),
                        build_features(fs, world_data.payments, world_data.labels), fs)


def test_the_benchmark_writes_its_files(bench):
    folder, result, messages = bench
    assert (folder / "results" / "scenarios_data.json").is_file()
    md = (folder / "results" / "scenarios_data.md").read_text()
    assert "friendly_fraud (label noise)" in md
    assert json.loads((folder / "results" / "scenarios_data.json").read_text())["models"]
    assert {"handbook_baseline", "payments_default", "payments_realistic",
            "payments_default (all labels)", "payments_realistic (all labels)"} == set(
        result["models"])
    assert set(result["drift"]) == {"payments_default", "payments_realistic"}
    assert result["chosen_on_validation"] in ("handbook_baseline", "payments_default",
                                              "payments_realistic")
    assert len(messages) >= 8


def test_the_benchmark_keeps_the_protocol(bench):
    _, result, _ = bench
    proto = result["protocol"]
    train = proto["train"]
    # labels as known a week after the training window, never later
    assert train["label_cutoff"][:10] == "2024-01-30" and train["end"][:10] == "2024-01-23"
    assert proto["test"]["start"] == train["label_cutoff"]
    assert 0 < proto["label_coverage_at_cutoff"]["main"] < 1
    for model in result["models"].values():
        month = model["periods"]["month"]
        weeks = [k for k in model["periods"] if k.startswith("week")]
        assert sum(model["periods"][w]["payments"] for w in weeks) == proto["test"]["payments"]
        # the review rate flags 1 % of the period's payments
        assert month["review"]["flagged"] == math.ceil(0.01 * month["payments"])
        assert 0 <= model["block"]["threshold"] <= 100
        by = month["review"]["by_scenario"]
        assert list(by)[:len(SCENARIOS)] == list(SCENARIOS)
        assert sum(by[s]["payments"] for s in SCENARIOS if s != "friendly_fraud") \
            == month["frauds"]
        for s in SCENARIOS:
            assert by[s]["payments"] == 0 or 0 <= by[s]["recall"] <= 1


def test_the_benchmark_needs_ground_truth(tmp_path):
    data = HandbookWorld(n_cards=50, n_terminals=100).simulate(50, start="2024-01-01", seed=1)
    write_dataset(EventData(data.payments, data.labels), tmp_path / "w")  # no truth
    result = CliRunner().invoke(main, ["bench", "scenarios", "--data", str(tmp_path / "w"),
                                       "--out-dir", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "needs ground truth" in result.stderr


def test_the_benchmark_measures_the_sequence_encoder(world_data, tmp_path):
    """With an encoder folder, the last feature set is also trained with the encoder's
    principal components; the encoder is pre-trained there first on the payments before the
    labels' cutoff only (the test month never reaches it)."""
    pytest.importorskip("torch", reason="the sequence model needs pip install 'vigil[deep]'")
    from vigil.features import payments_default
    from vigil.models.sequence import read_doc

    write_dataset(world_data, tmp_path / "world")
    result = run_scenarios_benchmark(
        data=tmp_path / "world", out_dir=tmp_path / "results",
        feature_sets=[payments_default()], diagnostics=False,
        params={"n_estimators": 30, "max_bin": 256}, sequence=tmp_path / "encoder",
        pretrain_minutes=0.1)
    with_encoder = result["models"]["payments_default + sequence"]
    assert with_encoder["features"] == len(payments_default().names) + 4
    assert with_encoder["periods"]["month"]["payments"] == (
        result["models"]["payments_default"]["periods"]["month"]["payments"])
    cutoff = datetime.fromisoformat(result["protocol"]["train"]["label_cutoff"])
    seen = read_doc(tmp_path / "encoder")["training"]["data"]
    assert datetime.fromisoformat(seen["last_ts"]) < cutoff
