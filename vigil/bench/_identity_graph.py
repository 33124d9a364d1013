"""Does the identity graph catch rings and synthetic identities? Its lift on the realistic world.

Protocol: that of ``vigil bench scenarios`` (:mod:`vigil.bench._scenarios`, docs/benchmarks.md
section 6), whose functions this module reuses: train on the first 55 days with the labels
reported by the cutoff 7 days later (the last 7 days for early stopping, calibration and the
block threshold), test on the month after the cutoff, leaving out the payments of cards
whose fraud was already reported; recall per scenario at a 1 % review rate and at the block
threshold, AP and AUC against the truth.

Variants, each a :class:`~vigil.models.RiskModel` with its defaults on the same rows:

- ``payments_realistic``: the built-in realistic feature set alone;
- ``+ identity graph``: the same plus :data:`vigil.identity._graph.FEATURES`, the identity
  graph's point-in-time features (:func:`~vigil.identity._graph.identity_graph_features`);
- ``+ graph, local only``: only the counts around the payment's own account and attributes
  (accounts per device, IP, e-mail, document, face; the account's age), without the
  components, to tell what the components add.

The graph features are columns computed outside the DuckDB engine, appended to the prepared
feature table row for row; a model sees them as it sees any feature.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vigil._errors import ConfigError
from vigil.bench._machine import machine_info, machine_line
from vigil.bench._scenarios import (
    SCENARIOS,
    Progress,
    _block_threshold,
    _evaluate,
    _weeks,
    _windows,
)
from vigil.evaluation import labels_known_at
from vigil.features import payments_realistic
from vigil.identity._graph import FEATURES, LINKING, MAX_LINKS
from vigil.pipeline import graph_spec, graph_table, prepare, test_rows, train_bundle

LOCAL_FEATURES = tuple(f for f in FEATURES if not f.startswith("graph_component_"))
FOCUS = ("synthetic_identity_ring", "account_takeover")
"""The scenarios the identity graph is meant for."""
SETTINGS: dict[str, dict[str, Any]] = {
    "": {}, " (300 trees)": {"n_estimators": 300, "early_stopping_rounds": None}}
"""RiskModel parameters per model-name suffix: its defaults, and 300 trees without early
stopping."""


def _world(preset: str, seed: int, scenario_rates: dict[str, float] | None, say: Progress
           ) -> Any:
    from vigil.simulate import RealisticWorld
    from vigil.simulate.realistic._scenarios import default_scenarios

    days = RealisticWorld.preset_days(preset)
    scenarios = default_scenarios()
    rates = dict(scenario_rates or {})
    unknown = sorted(set(rates) - {s.name for s in scenarios})
    if unknown:
        raise ConfigError(f"no scenario named {', '.join(unknown)}; use one of "
                          f"{', '.join(s.name for s in scenarios)}")
    scenarios = [replace(s, rate=rates[s.name]) if s.name in rates else s for s in scenarios]
    say(f"simulating the {preset} preset ({days} days, seed {seed}"
        + (f", rates {rates}" if rates else "") + ")")
    return RealisticWorld.preset(preset, scenarios=scenarios).simulate(
        days, start="2024-01-01", seed=seed)


def run_identity_graph_benchmark(*, preset: str = "medium", seed: int = 7,
                                 out_dir: str | Path | None = "bench/results",
                                 max_links: int = MAX_LINKS,
                                 kinds: tuple[str, ...] = LINKING,
                                 scenario_rates: dict[str, float] | None = None,
                                 settings: dict[str, dict[str, Any]] | None = None,
                                 progress: Progress | None = None) -> dict[str, Any]:
    """Run the benchmark; write ``identity_graph_NAME.json`` and ``.md`` in ``out_dir``
    (NAME is the preset; nothing is written when ``out_dir`` is None).

    ``max_links``: the graph's cap on accounts an attribute links; ``kinds``: the attributes
    that join components (:data:`~vigil.identity._graph.LINKING` by default);
    ``scenario_rates``: rates that replace scenarios' defaults, by name (the small preset has
    too few rings to measure without, e.g. ``{"synthetic_identity_ring": 0.6}``);
    ``settings``: RiskModel parameters by a suffix for the model's name (default
    :data:`SETTINGS`: its defaults, and a fixed 300 trees, since early stopping on the
    validation days' immature labels stops after a handful of trees, docs/benchmarks.md
    section 6).
    """
    say = progress or (lambda _m: None)
    t0 = time.perf_counter()
    events = _world(preset, seed, scenario_rates, say)
    say(f"{events.payments.num_rows:,} payments, {events.labels.num_rows:,} labels")
    first, last = (v.as_py() for v in pc.min_max(events.payments.column("ts")).values())
    w = _windows(first, last)
    main = w["main"]
    periods = {"month": (main.label_cutoff, w["month_end"])}
    periods.update({f"week {i + 1}": span
                    for i, span in enumerate(_weeks(main.label_cutoff, w["end"]))})

    t = time.perf_counter()
    base = prepare(events, payments_realistic())
    feature_s = time.perf_counter() - t
    t = time.perf_counter()
    graph = graph_table(base, graph_spec(FEATURES, max_links=max_links, kinds=kinds))
    graph_s = time.perf_counter() - t
    say(f"features: realistic {feature_s:.1f} s, identity graph {graph_s:.1f} s")

    truth_ids = events.truth.filter(events.truth.column("is_fraud")).column("payment_id")
    ids = base.payments.column("payment_id")
    y_true = np.asarray(pc.is_in(ids, truth_ids).to_numpy(zero_copy_only=False), dtype=bool)
    y_labels = labels_known_at(ids, base.labels, None)
    scenario = base.scenarios()
    # the graph's columns come after the feature set's (built once, above, and reused)
    variants = {
        base.feature_set.name: None,
        "+ identity graph": graph_spec(FEATURES, max_links=max_links, kinds=kinds),
        "+ graph, local only": graph_spec(LOCAL_FEATURES, max_links=max_links, kinds=kinds),
    }
    models: dict[str, Any] = {}
    test_mask = None
    dropped = 0
    runs = [(f"{v}{suffix}", spec, params) for suffix, params in (settings or SETTINGS).items()
            for v, spec in variants.items()]
    prepared = base
    for label, spec, params in runs:
        inputs = len(base.feature_set.names) + (len(spec["features"]) if spec else 0)
        say(f"training '{label}' ({inputs} inputs)")
        t = time.perf_counter()
        bundle = train_bundle(prepared, main, params=params, identity_graph=spec)
        train_s = time.perf_counter() - t
        if test_mask is None:
            test_mask, dropped = test_rows(bundle, prepared, main.label_cutoff, w["end"])
        block = _block_threshold(bundle, prepared, main)
        models[label] = {
            "inputs": len(bundle.feature_names), "params": params,
            "validation": bundle.metrics.get("validation", {}),
            "trees": bundle.model.best_iteration_ + 1, "block": block,
            "train_seconds": train_s,
            "periods": _evaluate(bundle, prepared, periods, y_true, y_labels, scenario,
                                 test_mask, block["threshold"]),
        }
        month = models[label]["periods"]["month"]
        by = month["review"]["by_scenario"]
        say(f"  month: AP {month['ap']:.3f}; recall at 1% review "
            + ", ".join(f"{s} {by[s]['recall']:.2f}" for s in FOCUS))

    result = {
        "benchmark": "identity_graph", "preset": preset, "seed": seed,
        "scenario_rates": scenario_rates or {},
        "world": {"payments": events.payments.num_rows, "labels": events.labels.num_rows,
                  "accounts": _rows(events.accounts),
                  "account_events": _rows(events.account_events),
                  "verification_sessions": _rows(events.verification_sessions),
                  "start": w["day0"].isoformat(), "end": w["end"].isoformat(),
                  "scenarios": events.info.get("scenarios")},
        "graph": {"max_links": max_links, "kinds": list(kinds), "features": list(FEATURES),
                  "seconds": graph_s, "test_month": _graph_summary(graph, scenario, test_mask,
                                                                   main.label_cutoff,
                                                                   w["month_end"])},
        "protocol": {
            "settings": settings or SETTINGS, "train": main.to_dict(),
            "test": {"start": main.label_cutoff.isoformat(), "end": w["end"].isoformat(),
                     "month_end": w["month_end"].isoformat(),
                     "payments": int(test_mask.sum()), "dropped_known_compromised": dropped},
            "review_rate": 0.01,
        },
        "models": models,
        "seconds": time.perf_counter() - t0, "machine": machine_info(),
    }
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"identity_graph_{preset}.json").write_text(json.dumps(result, indent=2) + "\n")
        (out / f"identity_graph_{preset}.md").write_text(identity_graph_markdown(result))
    return result


def _rows(table: pa.Table | None) -> int:
    return 0 if table is None else table.num_rows


def _graph_summary(graph: pa.Table, scenario: np.ndarray, test_mask: np.ndarray,
                   start: datetime, end: datetime) -> dict[str, dict[str, float]]:
    """Median of each graph feature per scenario over the test month's payments."""
    ts = graph.column("ts")
    month = test_mask & np.asarray(pc.and_(
        pc.greater_equal(ts, pa.scalar(start, ts.type)),
        pc.less(ts, pa.scalar(end, ts.type))).to_numpy(zero_copy_only=False), dtype=bool)
    out: dict[str, dict[str, float]] = {}
    for s in ("legit", *SCENARIOS):
        rows = month & (scenario == s)
        if not rows.any():
            continue
        out[s] = {}
        for f in FEATURES:
            v = np.asarray(graph.column(f).to_numpy(zero_copy_only=False))[rows]
            v = v[~np.isnan(v)]
            out[s][f] = float(np.median(v)) if v.size else float("nan")
    return out


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def identity_graph_markdown(result: dict[str, Any]) -> str:
    """The benchmark's tables, as markdown."""
    models, proto = result["models"], result["protocol"]
    names = list(models)
    train, test = proto["train"], proto["test"]
    rates = result.get("scenario_rates") or {}
    lines = [
        f"# The identity graph's lift ({result['preset']} preset, seed {result['seed']}"
        + (f", rates {rates}" if rates else "") + f", {result['world']['payments']:,} payments)",
        "",
        f"Trained on {train['start'][:10]} to {train['end'][:10]} (last {train['valid_days']} "
        f"days for validation), labels as known on {train['label_cutoff'][:10]}; tested on "
        f"{test['start'][:10]} to {test['month_end'][:10]} ({test['payments']:,} test "
        f"payments in all, {test['dropped_known_compromised']:,} of cards already reported "
        f"left out). Identity graph: components linked by "
        f"{', '.join(result['graph']['kinds'])}, each attribute linking at most "
        f"{result['graph']['max_links']} accounts; built in {result['graph']['seconds']:.1f} s.",
        "",
        "Recall per scenario on the month, at a 1 % review rate / at the block threshold:",
        "",
        "| scenario | payments | " + " | ".join(f"`{n}`" for n in names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    first = models[names[0]]["periods"]["month"]
    for s, row in first["review"]["by_scenario"].items():
        cells = [f"{_fmt(models[m]['periods']['month']['review']['by_scenario'][s]['recall'])}"
                 f" / {_fmt(models[m]['periods']['month']['block']['by_scenario'][s]['recall'])}"
                 for m in names]
        lines.append(f"| {s} | {row['payments']:,} | " + " | ".join(cells) + " |")
    cells = [f"{_fmt(models[m]['periods']['month']['review']['recall'])} / "
             f"{_fmt(models[m]['periods']['month']['block']['recall'])}" for m in names]
    lines.append(f"| all fraud | {first['frauds']:,} | " + " | ".join(cells) + " |")
    lines += ["", "| model | inputs | trees | validation AP | AP | AUC | AP (labels) | "
                  "block above |", "|---|---|---|---|---|---|---|---|"]
    for m in names:
        r = models[m]
        month = r["periods"]["month"]
        lines.append(f"| `{m}` | {r['inputs']} | {r['trees']} | "
                     f"{_fmt(r['validation'].get('ap'), 3)} | {month['ap']:.3f} | "
                     f"{month['auc']:.3f} | {month['ap_labels']:.3f} | "
                     f"{r['block']['threshold']} |")
    lines += ["", "Per test week, recall at a 1 % review rate of "
                  + " and ".join(f"`{s}`" for s in FOCUS) + " (payments):", "",
              "| week from | " + " | ".join(f"`{m}`" for m in names) + " |",
              "|---|" + "---|" * len(names)]
    for key, p in models[names[0]]["periods"].items():
        if key == "month":
            continue
        cells = []
        for m in names:
            by = models[m]["periods"][key]["review"]["by_scenario"]
            cells.append(" / ".join(f"{_fmt(by[s]['recall'])} ({by[s]['payments']})"
                                    for s in FOCUS))
        lines.append(f"| {p['start'][:10]} | " + " | ".join(cells) + " |")
    summary = result["graph"]["test_month"]
    scen = list(summary)
    lines += ["", "Median of each graph feature on the test month, per scenario:", "",
              "| feature | " + " | ".join(scen) + " |", "|---|" + "---|" * len(scen)]
    for f in result["graph"]["features"]:
        lines.append(f"| `{f}` | " + " | ".join(_fmt(summary[s][f], 1) for s in scen) + " |")
    lines += ["", f"Machine: {machine_line(result['machine'])}; the run took "
                  f"{result['seconds']:.0f} s.", ""]
    return "\n".join(lines)
