"""``vigil report``: one model on one test window, as a page a risk team reads.

Writes into the output folder::

    report.html      the self-contained page (opens offline)
    report.json      every number on the page
    figures/*.png    each chart as a PNG file
    model_card.md    the model card
    thresholds.rules the best block and review thresholds, in the rule language
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vigil.evaluation import card_precision_at_k, money_recall_at_fpr
from vigil.models import ModelBundle
from vigil.pipeline import Prepared
from vigil.reports import _charts as charts
from vigil.reports._bootstrap import METRICS, Replicates, interval, pr_band, roc_band
from vigil.reports._breakdown import (
    by_day,
    by_scenario,
    by_segment,
    calibration,
    operating_threshold,
    slice_metrics,
    weaknesses,
)
from vigil.reports._card import card_markdown, model_card
from vigil.reports._costs import CostModel, ScoreHistogram, best_policy, cost_curve, threshold_table
from vigil.reports._explain import examples, importance, shap_sample, shap_summary
from vigil.reports._html import (
    Column,
    clean_json,
    definition_list,
    esc,
    figure,
    fmt_3,
    fmt_int,
    fmt_money,
    fmt_pct,
    fmt_pct2,
    page,
    table,
    tiles,
)
from vigil.reports._window import ScoredWindow, label_facts, scored_window

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    json: Path
    figures: list[Path]
    model_card: Path
    rules: Path


def _currency(w: ScoredWindow) -> str:
    return w.currencies[0] if len(w.currencies) == 1 else "mixed currencies"


def build_report(bundle: ModelBundle, prepared: Prepared, start: datetime, end: datetime,
                 out: str | Path, *, costs: CostModel | None = None,
                 segments: Sequence[str] = (), replicates: int = 200, seed: int = 0,
                 drop_known_compromised: bool = True, data_name: str = "",
                 progress: Progress | None = None) -> tuple[ReportFiles, dict[str, Any]]:
    """Score ``bundle`` on [start, end) of ``prepared`` and write the report into ``out``."""
    say = progress or (lambda _m: None)
    costs = costs or CostModel()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    w = scored_window(bundle, prepared, start, end, segments=segments,
                      drop_known_compromised=drop_known_compromised)
    say(f"scored {len(w):,} test payments ({int(w.y.sum()):,} frauds) from "
        f"{start:%Y-%m-%d} to {end:%Y-%m-%d}")
    threshold = operating_threshold(w)
    flagged = w.probability > threshold
    overall = slice_metrics(w.y, w.probability, w.amount, flagged)

    say(f"bootstrapping curves and intervals ({replicates} card resamples)")
    reps = Replicates.by_cluster(w.card, replicates, seed)
    metrics: dict[str, Any] = {name: interval(w.y, w.probability, reps, fn)
                               for name, fn in METRICS.items()}
    metrics["cp@100"] = card_precision_at_k(w.y, w.probability, w.card, w.day, 100)[0]
    metrics["money_recall@1%fpr"] = money_recall_at_fpr(w.y, w.probability, w.amount, 0.01)
    roc, pr = roc_band(w.y, w.probability, reps), pr_band(w.y, w.probability, reps)

    say("pricing thresholds with the cost model")
    hist = ScoreHistogram.of(w.risk_score, w.y, w.amount, w.days)
    thresholds = threshold_table(hist, costs)
    policy = best_policy(hist, costs)
    curve = cost_curve(hist, costs)

    say("slicing by day, segment and scenario")
    days, segs, scen = by_day(w, threshold), by_segment(w, threshold), by_scenario(w, threshold)
    calib = calibration(w)
    weak = weaknesses(overall, segs, scen)

    say("explaining: split gain and SHAP values")
    gain = importance(w)
    sample = shap_sample(w, seed=seed)
    shap = shap_summary(sample)
    cases = examples(w, threshold)
    labels = label_facts(prepared, bundle)

    doc: dict[str, Any] = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": {"version": bundle.model_version, "feature_set": bundle.feature_set.name,
                  "created_at": bundle.created_at},
        "data": {
            "source": data_name, "fingerprint": prepared.fingerprint,
            "training": bundle.training,
            "test": {"start": start.isoformat(), "end": end.isoformat(), "payments": len(w),
                     "frauds": int(w.y.sum()), "fraud_rate": float(w.y.mean()),
                     "fraud_amount": float(w.amount[w.y].sum()),
                     "dropped_known_compromised": w.dropped_known_compromised,
                     "currencies": w.currencies},
            "labels": {k: v for k, v in labels.items() if k != "delay_days"},
        },
        "operating_point": {"fpr": 0.01, "probability_threshold": threshold, **overall},
        "metrics": metrics,
        "costs": costs.to_dict(),
        "policy": policy.to_dict(),
        "rules": policy.rules(),
        "thresholds": thresholds,
        "cost_curve": curve,
        "curves": {"roc": roc, "pr": pr},
        "by_day": days,
        "by_segment": segs,
        "by_scenario": scen,
        "calibration": calib,
        "importance": gain,
        "shap": shap,
        "examples": cases,
        "weaknesses": weak,
        "bootstrap": {"replicates": replicates, "resampled": "cards", "seed": seed},
    }
    doc["model_card"] = model_card(w, doc)

    say("drawing charts")
    figs = charts.Charts(out / "figures")
    svg = {
        "roc": figs.add("roc", charts.roc_chart([(w.model, roc)])),
        "pr": figs.add("pr", charts.pr_chart([(w.model, pr)], float(w.y.mean()))),
        "scores": figs.add("scores", charts.score_histogram(w.risk_score, w.y, policy.block,
                                                           policy.review)),
        "calibration": figs.add("calibration", charts.calibration_chart(calib)),
        "over_time": figs.add("over_time", charts.over_time_chart(days)),
        "cost": figs.add("cost", charts.cost_chart(curve, policy.block, policy.review,
                                                   _currency(w))),
        "importance": figs.add("importance", charts.importance_chart(
            gain, "gain_share", "Share of split gain")),
        "shap": figs.add("shap", charts.shap_chart(sample, [r["feature"] for r in shap])),
    }
    if segs:
        svg["segments"] = figs.add("segments", charts.segment_chart(segs, overall["recall"]))
    if scen:
        svg["scenarios"] = figs.add("scenarios", charts.scenario_chart(scen))
    if "delay_days" in labels:
        svg["labels"] = figs.add("labels", charts.label_delay_chart(
            labels["delay_days"], labels.get("coverage_by_day", [])))

    say("writing the page")
    files = ReportFiles(html=out / "report.html", json=out / "report.json",
                        figures=sorted(figs.png.values()), model_card=out / "model_card.md",
                        rules=out / "thresholds.rules")
    files.json.write_text(json.dumps(clean_json(doc), indent=1, default=str) + "\n")
    files.model_card.write_text(card_markdown(doc["model_card"]))
    files.rules.write_text(f"# best thresholds under the cost model of the report "
                           f"({doc['generated_at']})\n" + policy.rules())
    files.html.write_text(render_report(w, doc, svg))
    return files, doc


# ---------------------------------------------------------------------------------- page


def _window_text(window: dict[str, Any]) -> str:
    if not window:
        return "not recorded"
    return (f"{window['start'][:10]} to {window['end'][:10]} (labels reported before "
            f"{window['label_cutoff'][:16].replace('T', ' ')}; last {window.get('valid_days', 0)}"
            " days held out for early stopping and calibration)")


def _summary(doc: dict[str, Any], currency: str) -> str:
    m, p, test = doc["metrics"], doc["policy"], doc["data"]["test"]
    op = doc["operating_point"]

    def ci(name: str) -> str:
        v = m[name]
        return f"{v['lo']:.3f} – {v['hi']:.3f}"

    items = [
        ("AUC", f"{m['auc']['value']:.3f}", f"95 % {ci('auc')}"),
        ("Average precision", f"{m['ap']['value']:.3f}", f"95 % {ci('ap')}"),
        ("Recall at 1 % FPR", fmt_pct(m["recall@1%fpr"]["value"]),
         f"95 % {100 * m['recall@1%fpr']['lo']:.1f} – {100 * m['recall@1%fpr']['hi']:.1f} %"),
        ("Fraud money at 1 % FPR", fmt_pct(op["money_recall"]), "share of fraud amount"),
        ("Best policy", f"&gt; {p['block']}" + (f" / &gt; {p['review']}" if p["review"]
                                                   < p["block"] else ""),
         "block / review risk score" if p["review"] < p["block"] else "block risk score"),
        ("Net benefit", f"{fmt_money(p['net_benefit'])}",
         f"{esc(currency)} over the test window"),
        ("Test payments", fmt_int(test["payments"]), f"{fmt_int(test['frauds'])} frauds "
                                                       f"({fmt_pct2(test['fraud_rate'])})"),
    ]
    text = tiles(items)
    if doc["weaknesses"]:
        text += ("<h3>Weak spots</h3><ul>" +
                 "".join(f"<li class='warn'>{esc(x)}</li>" for x in doc["weaknesses"]) + "</ul>")
    return text


def _data_section(doc: dict[str, Any], svg: dict[str, str]) -> str:
    d = doc["data"]
    training, test, labels = d["training"], d["test"], d["labels"]
    items = [
        ("data", esc(d["source"] or "–") + f" (fingerprint <code>{esc(d['fingerprint'])}</code>)"),
        ("training window", esc(_window_text(training.get("window") or {}))),
        ("training payments", f"{fmt_int(training.get('payments'))}, "
                              f"{fmt_int(training.get('frauds'))} frauds known at the cutoff"),
        ("test window", f"{esc(test['start'][:10])} to {esc(test['end'][:10])}"),
        ("test payments", f"{fmt_int(test['payments'])}, {fmt_int(test['frauds'])} frauds "
                          f"({fmt_pct2(test['fraud_rate'])}), fraud amount "
                          f"{fmt_money(test['fraud_amount'])}"),
        ("left out", f"{fmt_int(test['dropped_known_compromised'])} test payments of cards "
                     "already known to be compromised (they would be blocked by a list)"),
        ("currencies", esc(", ".join(test["currencies"]) or "–")),
    ]
    delay = labels.get("delay")
    if delay:
        items.append(("label delay", f"median {delay['median']:.1f} days, 90 % within "
                                     f"{delay['p90']:.1f} days, longest {delay['max']:.0f} days"))
    cov = labels.get("coverage")
    if cov:
        items.append(("label coverage", f"{fmt_pct(cov['share'])} of the training window's "
                                        f"eventual fraud ({fmt_int(cov['eventual_frauds'])}) "
                                        "was reported by its label cutoff; the rest trained "
                                        "as good payments"))
    text = definition_list(items)
    if "labels" in svg:
        text += figure(svg["labels"], "When fraud labels arrive, and how much of the training "
                       "window's fraud the model could know about.", "labels")
    return text


def _threshold_section(doc: dict[str, Any], svg: dict[str, str], currency: str) -> str:
    c, p = doc["costs"], doc["policy"]
    assumptions = definition_list([
        ("fraud let through", f"amount + {c['chargeback_fee']:g} chargeback fee"),
        ("good payment blocked", f"{100 * c['margin']:g} % of the amount in lost margin + "
                                 f"{c['friction']:g} friction"),
        ("manual review", f"{c['review_cost']:g} per payment; reviewers stop "
                          f"{100 * c['review_catch_rate']:g} % of the frauds they see; "
                          f"capacity {c['review_capacity_per_day']:g} per day"),
    ])
    best = (f"<p>Best under the cost model: <b>block above {p['block']}</b>"
            + (f", <b>review above {p['review']}</b>" if p["review"] < p["block"] else
               ", no review band")
            + f": net benefit <b>{fmt_money(p['net_benefit'])} {esc(currency)}</b>, "
            f"{p['reviews_per_day']:.1f} reviews a day, {fmt_pct2(p['block_rate'])} of payments "
            f"blocked, {fmt_int(p['frauds_stopped'])} frauds stopped. Blocking alone is best "
            f"above {p['best_block_only']} ({fmt_money(p['best_block_only_net_benefit'])}). "
            "As rules (also in <code>thresholds.rules</code>):</p>"
            f"<pre>{esc(doc['rules'])}</pre>")
    explorer = (
        '<div id="explorer" class="explorer"><div>'
        f'<label>block if risk score &gt; <b id="block-value">{p["block"]}</b><br>'
        f'<input type="range" id="block-threshold" min="0" max="100" value="{p["block"]}">'
        "</label>"
        f'<label>review if risk score &gt; <b id="review-value">{p["review"]}</b><br>'
        f'<input type="range" id="review-threshold" min="0" max="100" value="{p["review"]}">'
        '</label><pre id="explorer-rules"></pre></div><div id="explorer-out"></div></div>')
    rows = [r for r in doc["thresholds"] if r["threshold"] % 5 == 0
            or r["threshold"] in (p["block"], p["review"])]
    cols = [Column("threshold", "block if score >", fmt_int),
            Column("block_rate", "block rate", fmt_pct2),
            Column("flagged_per_day", "flagged / day", lambda v: f"{v:,.1f}"),
            Column("frauds_caught", "frauds caught", fmt_int),
            Column("fraud_recall", "recall", fmt_pct),
            Column("fraud_money_caught", f"fraud money ({currency})", fmt_money),
            Column("good_blocked", "good blocked", fmt_int),
            Column("good_money_blocked", f"good money ({currency})", fmt_money),
            Column("precision", "precision", fmt_pct),
            Column("net_benefit", f"net benefit ({currency})", fmt_money)]
    return (assumptions + best + "<h3>Try a policy</h3>" + explorer +
            '<div class="grid">' +
            figure(svg["cost"], "Net benefit against approving everything.", "cost") +
            "</div>" +
            "<h3>Threshold table</h3><p>Flagging <code>risk_score &gt; N</code>; "
            "<em>flagged / day</em> is the review volume if those payments went to review. "
            "The best thresholds are highlighted.</p>" +
            table(rows, cols, highlight=lambda r: r["threshold"] in (p["block"], p["review"])))


_SLICE_COLUMNS = [
    Column("payments", "payments", fmt_int), Column("frauds", "frauds", fmt_int),
    Column("fraud_rate", "fraud rate", fmt_pct2), Column("auc", "AUC", fmt_3),
    Column("ap", "AP", fmt_3), Column("recall", "recall", fmt_pct),
    Column("money_recall", "money recall", fmt_pct), Column("fpr", "FPR", fmt_pct2),
]


def _segments_section(doc: dict[str, Any], svg: dict[str, str]) -> str:
    if "segments" not in svg:
        return "<p>No segment has more than one group in this data.</p>"
    parts = [figure(svg["segments"], "Recall at the window's 1 % FPR threshold in each "
                    "segment.", "segments")]
    for name, rows in doc["by_segment"].items():
        parts.append(f"<h3>{esc(name)}</h3>" + table(
            rows, [Column("group", name, esc, numeric=False), *_SLICE_COLUMNS]))
    return "".join(parts)


def _scenario_section(doc: dict[str, Any], svg: dict[str, str]) -> str:
    if not doc["by_scenario"]:
        return "<p>No ground truth of fraud scenarios in this data.</p>"
    cols = [Column("scenario", "scenario", esc, numeric=False),
            Column("frauds", "frauds", fmt_int), Column("caught", "caught", fmt_int),
            Column("recall", "recall", fmt_pct), Column("money_recall", "money recall", fmt_pct),
            Column("median_score", "median risk score", fmt_int)]
    return (figure(svg["scenarios"], "Recall per fraud scenario at the 1 % FPR threshold.",
                   "scenarios") + table(doc["by_scenario"], cols))


def _examples_html(cases: list[dict[str, Any]]) -> str:
    out = []
    for c in cases:
        kind = c["kind"].replace(" ", "-")
        reasons = "".join(f"<li>{esc(r['sentence'])} <span class='note'>(+{r['contribution']:.2f}"
                          " log-odds)</span></li>" for r in c["reasons"]) or "<li>no reason "\
            "raised the score</li>"
        scen = f", scenario <code>{esc(c['scenario'])}</code>" if c.get("scenario") else ""
        out.append(f'<div class="example {kind}"><b>{esc(c["kind"])}</b>: payment '
                   f"<code>{esc(c['payment_id'])}</code> at {esc(c['ts'])}, amount "
                   f"{c['amount']:,.2f}, risk score <b>{c['risk_score']}</b>{scen}"
                   f"<ul>{reasons}</ul></div>")
    return "".join(out)


def _card_section(card: dict[str, Any]) -> str:
    m = card["metrics"]
    metric_rows = []
    for name, v in m.items():
        if isinstance(v, dict) and "value" in v:
            metric_rows.append({"metric": name, "value": v["value"],
                                "interval": f"{v['lo']:.3f} – {v['hi']:.3f}"})
        elif isinstance(v, int | float):
            metric_rows.append({"metric": name, "value": v, "interval": ""})
    params = ", ".join(f"<code>{esc(k)}={esc(v)}</code>" for k, v in card["parameters"].items())
    return (
        f"<h3>Intended use</h3><p>{esc(card['intended_use'])}</p>"
        f"<h3>Data</h3>" + definition_list([(k.replace("_", " "), esc(v))
                                            for k, v in card["data"].items()]) +
        f"<h3>Features ({len(card['features'])}, set <code>{esc(card['feature_set'])}</code>)"
        "</h3>" + table(card["features"], [Column("name", "feature", esc, numeric=False),
                                          Column("measures", "what it measures", esc,
                                                 numeric=False)]) +
        f"<h3>Parameters</h3><p>{params}</p>"
        "<h3>Metrics on the test window</h3>" +
        table(metric_rows, [Column("metric", "metric", esc, numeric=False),
                            Column("value", "value", fmt_3),
                            Column("interval", "95 % interval", esc)]) +
        "<h3>Known weaknesses</h3><ul>" +
        "".join(f"<li>{esc(x)}</li>" for x in card["weaknesses"]) + "</ul>")


def render_report(w: ScoredWindow, doc: dict[str, Any], svg: dict[str, str]) -> str:
    currency = _currency(w)
    m = doc["metrics"]
    sections = [
        ("summary", "Summary", _summary(doc, currency)),
        ("data", "The data", _data_section(doc, svg)),
        ("curves", "Ranking and calibration", '<div class="grid">' +
         figure(svg["roc"], f"AUC {m['auc']['value']:.3f}. The dotted line is 1 % FPR.", "roc") +
         figure(svg["pr"], f"Average precision {m['ap']['value']:.3f}.", "pr") +
         figure(svg["scores"], "Score distributions of good and fraudulent payments, and "
                "where the best thresholds cut.", "scores") +
         figure(svg["calibration"], "Mean predicted probability against the observed fraud "
                "rate per 10-point band of the risk score.", "calibration") + "</div>"),
        ("thresholds", "Thresholds and costs", _threshold_section(doc, svg, currency)),
        ("time", "Over time", figure(svg["over_time"], "Per test day, at the window's 1 % FPR "
                                     "threshold.", "over_time") +
         table(doc["by_day"], [Column("group", "day", esc, numeric=False), *_SLICE_COLUMNS])),
        ("segments", "By segment", _segments_section(doc, svg)),
        ("scenarios", "By fraud scenario", _scenario_section(doc, svg)),
        ("explanations", "Explanations", '<div class="grid">' +
         figure(svg["importance"], "Share of the trees' split gain per feature.",
                "importance") +
         figure(svg["shap"], "Each dot is a payment: how much the feature moved its score.",
                "shap") + "</div><h3>Example payments and their reasons</h3>" +
         _examples_html(doc["examples"])),
        ("card", "Model card", _card_section(doc["model_card"])),
    ]
    test = doc["data"]["test"]
    subtitle = (f"Model <code>{esc(w.model)}</code> · test window "
                f"{esc(test['start'][:10])} to {esc(test['end'][:10])} · written "
                f"{esc(doc['generated_at'])}")
    data = {"thresholds": clean_json(doc["thresholds"]), "costs": doc["costs"],
            "days": w.days, "frauds": int(w.y.sum()), "currency": currency}
    return page(f"Model report: {doc['model']['feature_set']}", subtitle, sections, data)

