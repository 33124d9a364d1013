"""`vigil demo`: the realistic world end to end by default, the Handbook's on request."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from vigil.cli import main
from vigil.pipeline import run_demo

REALISTIC_SCENARIOS = {"stolen_card_cnp", "card_testing", "account_takeover",
                       "synthetic_identity_ring", "compromised_terminal", "friendly_fraud",
                       "adaptive_fraud"}


@pytest.fixture(scope="module")
def realistic_demo(tmp_path_factory):
    """A small realistic demo: 400 customers over 45 days, every step, few bootstraps."""
    out = tmp_path_factory.mktemp("demo")
    messages: list[str] = []
    result = run_demo(out, days=45, customers=400, seed=3, replicates=20,
                      sequence_minutes=0.05, progress=messages.append)
    return out, result, messages


def test_the_demo_simulates_the_realistic_world_by_default(realistic_demo):
    out, result, messages = realistic_demo
    assert result["world"]["name"] == "realistic"
    assert result["world"]["generator"] == "vigil.simulate.RealisticWorld"
    for path in ("data/payments", "data/accounts.parquet", "data/truth.parquet",
                 "features/payments_default.parquet", "features/handbook_baseline.parquet",
                 "bundles/payments_default/bundle.json", "scores.parquet", "metrics.json",
                 "report/report.html", "compare/compare.html"):
        assert (out / path).exists(), path
    assert json.loads((out / "metrics.json").read_text())["world"]["name"] == "realistic"
    assert pq.read_table(out / "scores.parquet").num_rows > 0
    assert any("realistic world" in m for m in messages)


def test_the_demo_reports_the_realistic_scenarios(realistic_demo):
    out, result, _ = realistic_demo
    for model in ("handbook_baseline", "payments_default"):
        test = result["models"][model]
        assert 0.0 <= test["metrics"]["ap"] <= 1.0
        by_scenario = test["recall_by_scenario@1%fpr"]
        assert set(by_scenario) <= REALISTIC_SCENARIOS
        assert len(by_scenario) >= 3
    report = json.loads((out / "report" / "report.json").read_text())
    assert {row["scenario"] for row in report["by_scenario"]} <= REALISTIC_SCENARIOS
    assert result["report"]["verdict"]


def test_the_demo_measures_the_sequence_encoder(realistic_demo):
    """With PyTorch, the default set is also trained with the encoder's components and
    tested on the same week."""
    pytest.importorskip("torch", reason="the sequence model needs pip install 'vigil[deep]'")
    out, result, _ = realistic_demo
    with_encoder = result["models"]["payments_default + sequence"]
    assert 0.0 <= with_encoder["metrics"]["ap"] <= 1.0
    assert with_encoder["metrics"]["payments"] == (
        result["models"]["payments_default"]["metrics"]["payments"])
    from vigil.models import ModelBundle

    bundle = ModelBundle.load(out / "bundles" / "payments_default_sequence")
    assert bundle.feature_names[-4:] == [f"seq_pc{i}" for i in range(1, 5)]


def test_the_demo_serves_a_day_of_realistic_payments(realistic_demo):
    _, result, _ = realistic_demo
    serving = result["serving"]
    assert serving["payments"] > 100
    assert serving["answered"] == serving["payments"] and serving["errors"] == 0
    assert sum(serving["decisions"].values()) == serving["payments"]


def test_the_demo_still_runs_the_handbook_world(tmp_path):
    result = run_demo(tmp_path, world="handbook", days=40, cards=150, seed=1, serve=False,
                      report=False, sequence_minutes=None)
    assert result["world"]["name"] == "handbook"
    assert result["world"]["generator"] == "vigil.simulate.HandbookWorld"
    assert set(result["models"]["payments_default"]["recall_by_scenario@1%fpr"]) <= {
        "compromised_card", "compromised_terminal", "large_amount"}


@pytest.mark.parametrize("args, message", [
    (["--world", "handbook", "--customers", "100"], "customers sizes the realistic world"),
    (["--cards", "100"], "cards sizes the Handbook world"),
    (["--world", "moon"], "Invalid value for '--world'"),
])
def test_demo_size_options_belong_to_their_world(tmp_path, args, message):
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "d"), *args])
    assert result.exit_code != 0
    assert message in result.output + result.stderr
    assert not (tmp_path / "d" / "data").exists()
