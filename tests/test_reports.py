"""Reports: the cost model and threshold table against brute force, the bootstrap's
invariants, the report and comparison files from a real run, the CLI, and the page as a
browser sees it."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil._errors import ConfigError
from vigil.cli import main
from vigil.evaluation import recall_at_fpr
from vigil.reports import CostModel, ScoreHistogram, best_policy, threshold_table
from vigil.reports._bootstrap import Replicates, paired_difference, recall_at_fpr_metric
from vigil.reports._costs import cost_curve, pair_benefits

DAY0 = datetime(2024, 1, 1, tzinfo=UTC)
TEST_START, TEST_END = DAY0 + timedelta(days=21), DAY0 + timedelta(days=28)


# ------------------------------------------------------------------------- cost model

def test_cost_model_reads_toml_flat_or_under_costs(tmp_path):
    flat = tmp_path / "flat.toml"
    flat.write_text("chargeback_fee = 20\nreview_capacity_per_day = 10\n")
    nested = tmp_path / "nested.toml"
    nested.write_text("[costs]\nmargin = 0.1\n")
    assert CostModel.load(flat).chargeback_fee == 20
    assert CostModel.load(flat).review_capacity_per_day == 10
    assert CostModel.load(nested).margin == 0.1
    assert CostModel.load(nested).review_cost == CostModel().review_cost


@pytest.mark.parametrize("text, message", [
    ("chargeback = 3\n", "unknown key(s) chargeback"),
    ("margin = -0.1\n", "margin must be a number >= 0"),
    ("review_cost = 'lots'\n", "review_cost must be a number"),
    ("review_catch_rate = 1.5\n", "review_catch_rate must be between 0 and 1"),
    ("margin = \n", "not valid TOML"),
])
def test_cost_model_errors_name_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "costs.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        CostModel.load(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def _brute_net(scores, y, amounts, costs, review, block):
    blocked = scores > block
    reviewed = (scores > review) & ~blocked
    saved = (amounts + costs.chargeback_fee) * y
    lost = (costs.margin * amounts + costs.friction) * ~y
    return (saved[blocked].sum() - lost[blocked].sum()
            + costs.review_catch_rate * saved[reviewed].sum()
            - costs.review_cost * reviewed.sum())


scored = st.integers(min_value=5, max_value=60).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 100), min_size=n, max_size=n),
    st.lists(st.booleans(), min_size=n, max_size=n),
    st.lists(st.floats(0, 500, allow_nan=False), min_size=n, max_size=n)))
costs_st = st.builds(CostModel, chargeback_fee=st.floats(0, 30), margin=st.floats(0, 0.5),
                     friction=st.floats(0, 10), review_cost=st.floats(0, 20),
                     review_capacity_per_day=st.floats(0, 10),
                     review_catch_rate=st.floats(0, 1))


@settings(max_examples=60, deadline=None)
@given(scored, costs_st)
def test_threshold_table_and_best_policy_match_brute_force(data, costs):
    scores, y, amounts = (np.array(v) for v in data)
    y = y.astype(bool)
    hist = ScoreHistogram.of(scores, y, amounts, days=2.0)
    table = threshold_table(hist, costs)
    for n in (0, 17, 50, 99, 100):
        row, flagged = table[n], scores > n
        assert row["flagged"] == flagged.sum()
        assert row["frauds_caught"] == (flagged & y).sum()
        assert row["good_blocked"] == (flagged & ~y).sum()
        assert row["fraud_money_caught"] == pytest.approx(amounts[flagged & y].sum())
        assert row["net_benefit"] == pytest.approx(_brute_net(scores, y, amounts, costs, n, n),
                                                   abs=1e-6)
    # every pair the brute force way; the best allowed one must be what best_policy found
    best = -np.inf
    for r in range(101):
        for b in range(r, 101):
            if (((scores > r) & ~(scores > b)).sum() / 2.0
                    <= costs.review_capacity_per_day + 1e-9):
                best = max(best, _brute_net(scores, y, amounts, costs, r, b))
    policy = best_policy(hist, costs)
    assert policy.net_benefit == pytest.approx(best, abs=1e-6)
    assert policy.reviews_per_day <= costs.review_capacity_per_day + 1e-9
    assert policy.net_benefit == pytest.approx(
        _brute_net(scores, y, amounts, costs, policy.review, policy.block), abs=1e-6)
    assert policy.net_benefit >= policy.best_block_only_net_benefit - 1e-6
    net, _ = pair_benefits(hist, costs)
    assert cost_curve(hist, costs)["block_only"] == pytest.approx(np.diag(net).tolist())


def test_policy_rules_compile_and_decide_as_the_thresholds_say():
    from vigil.rules import compile_rules, payment_attributes

    rng = np.random.default_rng(0)
    scores = rng.integers(0, 101, 2000)
    y = rng.random(2000) < scores / 150
    amounts = rng.gamma(2, 50, 2000)
    policy = best_policy(ScoreHistogram.of(scores, y, amounts, 7.0),
                         CostModel(review_capacity_per_day=20))
    assert policy.review < policy.block  # a review band is worth having here
    rules = compile_rules(policy.rules(), attributes=payment_attributes())
    for s in range(101):
        action = rules.decide({"risk_score": s}, None).action
        expected = ("block" if s > policy.block else "review" if s > policy.review
                    else "allow")
        assert action == expected, s


def test_no_review_capacity_means_no_review_band():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 101, 500)
    y = rng.random(500) < scores / 120
    policy = best_policy(ScoreHistogram.of(scores, y, np.full(500, 100.0), 7.0),
                         CostModel(review_capacity_per_day=0))
    assert policy.review == policy.block
    assert policy.reviews_per_day == 0
    assert "review" not in policy.rules()


# ------------------------------------------------------------------------- bootstrap

def test_cluster_replicates_weigh_a_card_as_one():
    cards = np.array(["a", "b", "a", "c", "b", "a"])
    reps = Replicates.by_cluster(cards, 50, seed=1)
    for w in reps.weights:
        assert w[0] == w[2] == w[5] and w[1] == w[4]
    assert reps.weights.std() > 0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1, allow_nan=False), st.booleans(),
                          st.integers(0, 3)), min_size=4, max_size=80),
       st.sampled_from([0.01, 0.1, 0.3]))
def test_weighted_recall_equals_recall_on_repeated_rows(rows, fpr):
    s = np.array([r[0] for r in rows])
    y = np.array([r[1] for r in rows])
    w = np.array([r[2] for r in rows], dtype=float)
    if not (y.any() and (~y).any()):
        return
    metric = recall_at_fpr_metric(fpr)
    assert metric(y, s, None) == pytest.approx(recall_at_fpr(y, s, fpr))
    if w[y].sum() > 0 and w[~y].sum() > 0:
        rep = np.repeat(np.arange(len(s)), w.astype(int))
        assert metric(y, s, w) == pytest.approx(recall_at_fpr(y[rep], s[rep], fpr))


def test_paired_difference_of_a_model_with_itself_is_exactly_zero():
    rng = np.random.default_rng(2)
    y = rng.random(400) < 0.1
    s = rng.random(400) + y * 0.3
    reps = Replicates.by_cluster(np.arange(400) // 4, 60)
    d = paired_difference(y, s, s, reps, recall_at_fpr_metric(0.05))
    assert d["diff"] == d["lo"] == d["hi"] == 0.0
    better = paired_difference(y, s, s + y * 0.5, reps, recall_at_fpr_metric(0.05))
    assert better["diff"] > 0 and better["lo"] > 0 and better["p_b_better"] > 0.95


# ------------------------------------------------------------------------- a real run

@pytest.fixture(scope="module")
def report_run(tmp_path_factory):
    """Four weeks of a simulated world; two bundles trained on the first two weeks (labels as
    of day 21), saved as a run folder like `vigil demo` writes."""
    from vigil.events import write_dataset
    from vigil.features import handbook_baseline, payments_default
    from vigil.pipeline import TrainWindow, prepare, train_bundle
    from vigil.simulate import HandbookWorld

    run = tmp_path_factory.mktemp("run")
    data = HandbookWorld(n_cards=800, n_terminals=1600).simulate(28, start="2024-01-01",
                                                                 seed=5)
    write_dataset(data, run / "data")
    window = TrainWindow(DAY0, DAY0 + timedelta(days=14), TEST_START, valid_days=4)
    out = {}
    for fs in (handbook_baseline(), payments_default()):
        prepared = prepare(data, fs)
        bundle = train_bundle(prepared, window, params={"n_estimators": 60})
        bundle.save(run / "bundles" / fs.name)
        out[fs.name] = (bundle, prepared)
    return run, out


@pytest.fixture(scope="module")
def report_files(report_run, tmp_path_factory):
    from vigil.reports import build_report

    _, trained = report_run
    out = tmp_path_factory.mktemp("report")
    messages: list[str] = []
    files, doc = build_report(*trained["payments_default"], TEST_START, TEST_END, out,
                              costs=CostModel(review_capacity_per_day=30),
                              segments=("merchant_id", "amount"), replicates=40,
                              progress=messages.append)
    return files, doc, messages


def test_report_writes_every_file(report_files):
    files, _, messages = report_files
    assert len(messages) >= 5  # progress on the way
    for path in (files.html, files.json, files.model_card, files.rules):
        assert path.is_file() and path.stat().st_size > 100
    names = {p.stem for p in files.figures}
    assert {"roc", "pr", "scores", "calibration", "over_time", "segments", "cost",
            "importance", "shap", "scenarios", "labels"} <= names
    for png in files.figures:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = files.html.read_text()
    for name in names:
        assert f'data-chart="{name}"' in page
    # self-contained: nothing is fetched from outside the file
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "<script src" not in page and "<link" not in page
    json.loads(files.json.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))


def test_report_numbers_hang_together(report_files):
    _, doc, _ = report_files
    test = doc["data"]["test"]
    assert test["payments"] > 1000 and test["frauds"] > 10
    m = doc["metrics"]
    for name in ("auc", "ap", "recall@1%fpr"):
        assert m[name]["lo"] <= m[name]["value"] <= m[name]["hi"]
    policy, rows = doc["policy"], doc["thresholds"]
    assert rows[policy["block"]]["threshold"] == policy["block"]
    assert policy["reviews_per_day"] <= doc["costs"]["review_capacity_per_day"] + 1e-9
    assert max(r["net_benefit"] for r in rows) == pytest.approx(
        policy["best_block_only_net_benefit"])
    assert sum(r["payments"] for r in doc["by_day"]) == test["payments"]
    for rows in doc["by_segment"].values():
        assert sum(r["payments"] for r in rows) == test["payments"]
        assert sum(r["frauds"] for r in rows) == test["frauds"]
    assert {"merchant_id", "amount", "amount band"} <= set(doc["by_segment"])
    assert "channel" not in doc["by_segment"]  # this world has no channel: one group, left out
    bands = [r["group"] for r in doc["by_segment"]["amount band"]]
    assert bands == sorted(bands, key=lambda g: float(g.lstrip("≥ ").split("–")[0]))
    assert sum(r["frauds"] for r in doc["by_scenario"]) == test["frauds"]
    assert abs(sum(r["gain_share"] for r in doc["importance"]) - 1) < 1e-9
    assert doc["examples"] and all(e["kind"] for e in doc["examples"])
    assert 0 < doc["data"]["labels"]["coverage"]["share"] <= 1


def test_report_rules_and_model_card(report_files):
    from vigil.rules import compile_rules, payment_attributes

    files, doc, _ = report_files
    rules = compile_rules(files.rules.read_text(), attributes=payment_attributes())
    assert rules.decide({"risk_score": doc["policy"]["block"] + 1}, None).action == "block"
    card = files.model_card.read_text()
    assert "## Intended use" in card and "## Known weaknesses" in card
    for name in doc["model_card"]["features"][:5]:
        assert f"`{name['name']}`" in card


def test_unknown_segment_is_a_clear_error(report_run, tmp_path):
    from vigil.reports import build_report

    _, trained = report_run
    with pytest.raises(ConfigError, match="--segment nope: no payment column or feature"):
        build_report(*trained["payments_default"], TEST_START, TEST_END, tmp_path,
                     segments=("nope",), replicates=20)


def test_comparison_of_a_model_with_itself_finds_no_winner(report_run, tmp_path):
    from vigil.reports._compare import build_comparison

    _, trained = report_run
    files, doc = build_comparison(*trained["payments_default"], *trained["payments_default"],
                                  TEST_START, TEST_END, tmp_path, replicates=30)
    assert all(v["diff"] == 0 and v["lo"] == 0 == v["hi"] for v in doc["metrics"].values())
    assert doc["verdict"].startswith("Neither model")
    assert all(r["winner"] == "neither" for rows in doc["by_segment"].values() for r in rows)
    assert files.html.is_file()


def test_cli_report_on_a_run_folder_and_compare(report_run, tmp_path):
    run, _ = report_run
    costs = tmp_path / "costs.toml"
    costs.write_text("[costs]\nreview_capacity_per_day = 25\n")
    runner = CliRunner()
    result = runner.invoke(main, ["report", str(run), "--start", "2024-01-22", "--costs",
                                  str(costs), "--bootstrap", "20", "--out",
                                  str(tmp_path / "rep")])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == f"report: {tmp_path / 'rep/report.html'}"
    doc = json.loads((tmp_path / "rep/report.json").read_text())
    assert doc["costs"]["review_capacity_per_day"] == 25
    assert doc["data"]["test"]["start"].startswith("2024-01-22")
    result = runner.invoke(main, ["compare", str(run / "bundles/handbook_baseline"),
                                  str(run / "bundles/payments_default"), "--on",
                                  str(run / "data"), "--bootstrap", "20", "--out",
                                  str(tmp_path / "cmp")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cmp/compare.html").is_file()
    assert "comparison:" in result.output


@pytest.mark.parametrize("args, message", [
    (["report", "{run}/bundles", "--bootstrap", "20"], "neither a model bundle"),
    (["report", "{run}", "--model", "nope"], "no bundle named 'nope'"),
    (["report", "{run}/bundles/payments_default"], "does not record its data; pass --data"),
    (["report", "{run}", "--start", "2024-01-10"], "before the model's label cutoff"),
    (["report", "{run}", "--costs", "{run}/missing.toml"], "no such cost file"),
])
def test_cli_report_mistakes_are_one_line(report_run, args, message):
    run, _ = report_run
    result = CliRunner().invoke(main, [a.format(run=run) for a in args])
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert "Traceback" not in result.output


# ------------------------------------------------------------------------- in a browser

def _chromium_or_skip() -> None:
    from vigil.reports._browser import find_chromium

    try:
        import playwright  # noqa: F401
    except ImportError:  # pragma: no cover - the test extra installs it
        if os.environ.get("VIGIL_REQUIRE_BROWSER"):
            raise
        pytest.skip("playwright is not installed")
    if find_chromium() is None:
        if os.environ.get("VIGIL_REQUIRE_BROWSER"):
            pytest.fail("VIGIL_REQUIRE_BROWSER is set but no Chromium was found")
        pytest.skip("no Chromium on this machine (make test installs Debian's chromium)")


def test_report_in_headless_chromium(report_files, tmp_path):
    _chromium_or_skip()
    from vigil.reports._browser import check_page

    files, _, _ = report_files
    shot = tmp_path / "report.png"
    seen = check_page(files.html, screenshot=shot)
    assert seen.ok, seen.problems()
    assert len(seen.charts) == len(files.figures)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_browser_check_catches_a_broken_page(tmp_path):
    _chromium_or_skip()
    from vigil.reports._browser import check_page

    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><html><body>"
        '<figure class="chart" data-chart="empty"><svg width="0" height="0"></svg></figure>'
        '<img src="https://example.com/x.png">'
        "<script>console.error('boom'); undefinedFunction();</script></body></html>")
    seen = check_page(page)
    assert not seen.ok
    problems = " | ".join(seen.problems())
    assert "console error: boom" in problems
    assert "undefinedFunction" in problems
    assert "request outside the file: https://example.com/x.png" in problems
    assert "chart did not draw: empty" in problems
    assert "the page's script did not finish" in problems


def test_cli_report_screenshot_looks_at_the_page(report_run, tmp_path):
    _chromium_or_skip()
    run, _ = report_run
    shot = tmp_path / "shot.png"
    result = CliRunner().invoke(main, ["report", str(run), "--bootstrap", "20", "--out",
                                       str(tmp_path / "rep"), "--screenshot", str(shot)])
    assert result.exit_code == 0, result.output
    assert shot.is_file()


def test_report_test_window_needs_no_browser_to_write(report_run, tmp_path):
    """The report is written whatever the machine has; the browser only looks at it."""
    run, _ = report_run
    result = CliRunner().invoke(main, ["report", str(run), "--bootstrap", "20", "--out",
                                       str(tmp_path / "rep"), "--end", "2024-01-25"])
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "rep/report.json").read_text())
    assert doc["data"]["test"]["end"].startswith("2024-01-25")
    assert Path(tmp_path / "rep/figures/roc.png").is_file()
