"""``vigil compare``: champion (A) against challenger (B) on the same test payments.

Both models score the same rows. Differences are B − A, with 95 % intervals from a paired
card bootstrap (the same resampled cards for both models), so a difference whose interval
excludes zero is not noise of the sample. Each slice (segment, scenario) compares the recall
each model gets at its own 1 % FPR threshold for the whole window.

Writes ``compare.html``, ``compare.json`` and ``figures/*.png`` into the output folder.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from vigil._errors import ConfigError
from vigil.models import ModelBundle
from vigil.pipeline import Prepared
from vigil.reports import _charts as charts
from vigil.reports._bootstrap import METRICS, Replicates, paired_difference, pr_band, roc_band
from vigil.reports._breakdown import by_scenario, operating_threshold
from vigil.reports._costs import CostModel, ScoreHistogram, best_policy, cost_curve
from vigil.reports._html import (
    Column,
    clean_json,
    esc,
    figure,
    fmt_3,
    fmt_int,
    fmt_money,
    fmt_pct,
    fmt_signed,
    page,
    table,
)
from vigil.reports._window import ScoredWindow, scored_window

Progress = Callable[[str], None]


@dataclass(frozen=True)
class CompareFiles:
    html: Path
    json: Path
    figures: list[Path]


def _winner(lo: float, hi: float) -> str:
    if lo > 0:
        return "B"
    if hi < 0:
        return "A"
    return "neither"


def _recall_differences(a: ScoredWindow, b: ScoredWindow, groups: np.ndarray,
                        reps: Replicates, ta: float, tb: float) -> list[dict[str, Any]]:
    """Per group: each model's recall at its own threshold, B − A, and a paired interval
    (vectorised over replicates: a recall is a weighted mean)."""
    fa, fb = a.probability > ta, b.probability > tb
    W = reps.weights
    out = []
    keys = np.unique(groups.astype(str))
    for key in keys:
        sel = (groups.astype(str) == key) & a.y
        n = int(sel.sum())
        if n == 0:
            continue
        ra, rb = float(fa[sel].mean()), float(fb[sel].mean())
        ws = W[:, sel]
        total = ws.sum(axis=1)
        ok = total > 0
        diffs = ((ws * (fb[sel] & ~fa[sel])).sum(axis=1)
                 - (ws * (fa[sel] & ~fb[sel])).sum(axis=1))[ok] / total[ok]
        lo, hi = (np.percentile(diffs, [2.5, 97.5]) if diffs.size else (rb - ra, rb - ra))
        out.append({"group": str(key), "frauds": n, "recall_a": ra, "recall_b": rb,
                    "diff": rb - ra, "lo": float(lo), "hi": float(hi),
                    "winner": _winner(float(lo), float(hi))})
    return sorted(out, key=lambda r: -r["frauds"])


def build_comparison(bundle_a: ModelBundle, prepared_a: Prepared, bundle_b: ModelBundle,
                     prepared_b: Prepared, start: datetime, end: datetime, out: str | Path, *,
                     costs: CostModel | None = None, segments: Sequence[str] = (),
                     replicates: int = 200, seed: int = 0, drop_known_compromised: bool = True,
                     names: tuple[str, str] | None = None, data_name: str = "",
                     progress: Progress | None = None) -> tuple[CompareFiles, dict[str, Any]]:
    say = progress or (lambda _m: None)
    costs = costs or CostModel()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if prepared_a.fingerprint != prepared_b.fingerprint:
        raise ConfigError("the two models must be compared on the same data")
    starts = [datetime.fromisoformat(b.training["window"]["start"])
              for b in (bundle_a, bundle_b) if (b.training.get("window") or {}).get("start")]
    known_since = min(starts) if starts else None
    if names is None:
        different = bundle_a.feature_set.name != bundle_b.feature_set.name
        names = ((bundle_a.feature_set.name, bundle_b.feature_set.name) if different else
                 (bundle_a.model_version or "A", bundle_b.model_version or "B"))
    name_a, name_b = names
    if name_a == name_b:
        name_a, name_b = f"A: {name_a}", f"B: {name_b}"
    a = scored_window(bundle_a, prepared_a, start, end, segments=segments,
                      drop_known_compromised=drop_known_compromised, known_since=known_since,
                      name=name_a)
    b = scored_window(bundle_b, prepared_b, start, end, segments=segments,
                      drop_known_compromised=drop_known_compromised, known_since=known_since,
                      name=name_b)
    if not np.array_equal(a.payment_id, b.payment_id):  # pragma: no cover - same data, rows
        raise AssertionError("the two models were not scored on the same payments")
    say(f"both models scored {len(a):,} test payments ({int(a.y.sum()):,} frauds)")
    if not a.y.any() or a.y.all():
        raise ConfigError("the test window needs both frauds and good payments to compare")

    say(f"paired bootstrap ({replicates} card resamples)")
    reps = Replicates.by_cluster(a.card, replicates, seed)
    metrics = {name: paired_difference(a.y, a.probability, b.probability, reps, fn)
               for name, fn in METRICS.items()}
    curves = {"a": {"roc": roc_band(a.y, a.probability, reps),
                    "pr": pr_band(a.y, a.probability, reps)},
              "b": {"roc": roc_band(b.y, b.probability, reps),
                    "pr": pr_band(b.y, b.probability, reps)}}

    say("pricing both models' thresholds and slicing")
    policies, cost_curves = {}, {}
    for key, w in (("a", a), ("b", b)):
        hist = ScoreHistogram.of(w.risk_score, w.y, w.amount, w.days)
        policies[key] = best_policy(hist, costs).to_dict()
        cost_curves[key] = cost_curve(hist, costs)
    ta, tb = operating_threshold(a), operating_threshold(b)
    seg_rows = {name: _recall_differences(a, b, groups, reps, ta, tb)
                for name, groups in a.segments.items()}
    scen_rows = (_recall_differences(a, b, a.scenario, reps, ta, tb)
                 if a.scenario is not None else [])

    doc: dict[str, Any] = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "a": {"name": name_a, "version": bundle_a.model_version,
              "feature_set": bundle_a.feature_set.name, "training": bundle_a.training},
        "b": {"name": name_b, "version": bundle_b.model_version,
              "feature_set": bundle_b.feature_set.name, "training": bundle_b.training},
        "data": {"source": data_name, "fingerprint": prepared_a.fingerprint,
                 "test": {"start": start.isoformat(), "end": end.isoformat(),
                          "payments": len(a), "frauds": int(a.y.sum()),
                          "dropped_known_compromised": a.dropped_known_compromised}},
        "costs": costs.to_dict(),
        "metrics": metrics,
        "policies": policies,
        "net_benefit_diff": policies["b"]["net_benefit"] - policies["a"]["net_benefit"],
        "by_segment": seg_rows,
        "by_scenario": scen_rows,
        "curves": curves,
        "cost_curves": cost_curves,
        "bootstrap": {"replicates": replicates, "resampled": "cards", "seed": seed},
    }
    doc["verdict"] = verdict(doc)

    say("drawing charts")
    figs = charts.Charts(out / "figures")
    svg = {
        "roc": figs.add("roc", charts.roc_chart([(name_a, curves["a"]["roc"]),
                                                 (name_b, curves["b"]["roc"])])),
        "pr": figs.add("pr", charts.pr_chart([(name_a, curves["a"]["pr"]),
                                              (name_b, curves["b"]["pr"])], float(a.y.mean()))),
        "cost": figs.add("cost", charts.cost_overlay_chart(cost_curves, (name_a, name_b),
                                                           a.currencies)),
    }
    if any(seg_rows.values()):
        svg["segments"] = figs.add("segments", charts.recall_difference_chart(seg_rows))
    if scen_rows:
        ra = by_scenario(a, ta)
        rb = by_scenario(b, tb)
        svg["scenarios"] = figs.add("scenarios", charts.scenario_chart(ra, rb, (name_a, name_b)))
    files = CompareFiles(out / "compare.html", out / "compare.json",
                         sorted(figs.png.values()))
    files.json.write_text(json.dumps(clean_json(doc), indent=1, default=str) + "\n")
    files.html.write_text(render_comparison(doc, svg, a.currencies))
    return files, doc


def verdict(doc: dict[str, Any]) -> str:
    """One sentence: which model ranks better, by how much, and whether it is noise."""
    m = doc["metrics"]["ap"]
    b_name, a_name = doc["b"]["name"], doc["a"]["name"]
    if m["lo"] > 0:
        head = f"{b_name} ranks fraud better than {a_name}"
    elif m["hi"] < 0:
        head = f"{a_name} ranks fraud better than {b_name}"
    else:
        head = "Neither model ranks fraud better beyond the noise of this test window"
    return (f"{head}: average precision A {m['a']:.3f}, B {m['b']:.3f} "
            f"(B − A {m['diff']:+.3f}, 95 % interval {m['lo']:+.3f} to {m['hi']:+.3f}); "
            f"net benefit at each model's best thresholds differs by "
            f"{doc['net_benefit_diff']:+,.0f}.")


_DIFF_COLUMNS = [Column("frauds", "frauds", fmt_int), Column("recall_a", "recall A", fmt_pct),
                 Column("recall_b", "recall B", fmt_pct), Column("diff", "B − A", fmt_signed),
                 Column("lo", "95 % low", fmt_signed), Column("hi", "95 % high", fmt_signed),
                 Column("winner", "better", esc, numeric=False)]


def render_comparison(doc: dict[str, Any], svg: dict[str, str], currencies: list[str]) -> str:
    a, b = doc["a"], doc["b"]
    currency = currencies[0] if len(currencies) == 1 else "mixed currencies"
    rows = [{"metric": k, **v, "winner": _winner(v["lo"], v["hi"])}
            for k, v in doc["metrics"].items()]
    metric_table = table(rows, [
        Column("metric", "metric", esc, numeric=False), Column("a", "A", fmt_3),
        Column("b", "B", fmt_3), Column("diff", "B − A", fmt_signed),
        Column("lo", "95 % low", fmt_signed), Column("hi", "95 % high", fmt_signed),
        Column("p_b_better", "P(B better)", fmt_pct),
        Column("winner", "better", esc, numeric=False)])
    pol = [{"model": doc[k]["name"], **doc["policies"][k]} for k in ("a", "b")]
    policy_table = table(pol, [
        Column("model", "model", esc, numeric=False), Column("block", "block >", fmt_int),
        Column("review", "review >", fmt_int),
        Column("reviews_per_day", "reviews / day", lambda v: f"{v:.1f}"),
        Column("frauds_stopped", "frauds stopped", fmt_int),
        Column("good_blocked", "good blocked", fmt_int),
        Column("net_benefit", f"net benefit ({currency})", fmt_money)])
    test = doc["data"]["test"]
    models = (f"<p><b>A</b> (champion): <code>{esc(a['name'])}</code>, features "
              f"<code>{esc(a['feature_set'])}</code>. <b>B</b> (challenger): "
              f"<code>{esc(b['name'])}</code>, features <code>{esc(b['feature_set'])}</code>. "
              f"Same {fmt_int(test['payments'])} test payments, {fmt_int(test['frauds'])} "
              f"frauds, {esc(test['start'][:10])} to {esc(test['end'][:10])}.</p>")
    segs = "".join(f"<h3>{esc(name)}</h3>" + table(rows, [
        Column("group", name, esc, numeric=False), *_DIFF_COLUMNS])
        for name, rows in doc["by_segment"].items())
    sections = [
        ("verdict", "Verdict", models + f"<p><b>{esc(doc['verdict'])}</b></p>" + metric_table),
        ("curves", "Curves", '<div class="grid">' +
         figure(svg["roc"], "Both models, 95 % bootstrap bands.", "roc") +
         figure(svg["pr"], "Both models, 95 % bootstrap bands.", "pr") + "</div>"),
        ("money", "Money", "<p>Each model at its own best thresholds under the same cost "
         "model.</p>" + policy_table + figure(svg["cost"], "Net benefit by threshold.",
                                              "cost")),
        ("segments", "Where each wins", (figure(svg["segments"], "Recall difference per "
                                                "segment.", "segments") + segs)
         if "segments" in svg else "<p>No segment has more than one group in this data.</p>"),
    ]
    if "scenarios" in svg:
        sections.append(("scenarios", "By fraud scenario", figure(
            svg["scenarios"], "Recall per scenario, A and B.", "scenarios") +
            table(doc["by_scenario"], [Column("group", "scenario", esc, numeric=False),
                                       *_DIFF_COLUMNS])))
    subtitle = (f"A <code>{esc(a['name'])}</code> against B <code>{esc(b['name'])}</code> · "
                f"written {esc(doc['generated_at'])}")
    return page("Champion against challenger", subtitle, sections, {})
