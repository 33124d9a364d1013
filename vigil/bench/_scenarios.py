"""What our models miss: recall per fraud scenario on the realistic world, after training.

Protocol (docs/benchmarks.md, section 6):

- The realistic world (a preset, or a dataset folder with ``truth.parquet``), from its
  first day ``d0``.
- **Training**: payments of ``[d0, d0 + 55 days)`` (about two months), the last 7 days held
  out (early stopping, calibration, and every choice), with the labels *reported* before
  the cutoff ``d0 + 62 days``: vigil's 7-day delay between the training window and the day
  the model goes live, exactly as :mod:`vigil.pipeline` does it. Fraud not yet reported by
  then trains as a good payment.
- **Test**: every later payment, the first 28 days (``the month``) and each week, with the
  cards whose fraud was already reported before the day left out (they would be blocked
  already; the Handbook's protocol, :func:`vigil.pipeline.test_rows`).
- **Per scenario**: the share of a scenario's payments (ground truth, ``truth.parquet``)
  flagged at a **1 % review rate** (the top 1 % of that period's payments by score) and at
  the **block threshold**: the best block-only threshold of the cost model
  (:mod:`vigil.reports._costs`, default costs) on the validation days, labels known at the
  cutoff, as a team would set it the day the model goes live.
- **Variants**: the Handbook's 15 inputs, vigil's default set (card and terminal), the
  realistic set (plus devices, IPs, e-mails, merchants); and, as a diagnostic no one can
  deploy, the default and realistic sets trained on *every* true fraud of the training window
  (``all labels``): what is still missed then is missing from the features, not the labels.
- **Drift**: the default and realistic sets trained on the first 21 days only (cutoff day
  28, the preset's adaptive-fraud shift day), never retrained, and scored on every later
  week.

``friendly_fraud`` is label noise: a cardholder disputing their own legitimate purchase.
Nothing in the payment differs from their other payments, so no feature can catch it; it is
reported, and counted as legitimate in AP and AUC against the truth.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vigil._errors import ConfigError
from vigil.bench._machine import machine_info, machine_line
from vigil.evaluation import average_precision, in_window, labels_known_at, roc_auc
from vigil.features import FeatureSet, handbook_baseline, payments_default, payments_realistic
from vigil.models import risk_score
from vigil.pipeline import Prepared, TrainWindow, model_inputs, prepare, test_rows, train_bundle

SCENARIOS = ("stolen_card_cnp", "card_testing", "account_takeover", "synthetic_identity_ring",
             "compromised_terminal", "adaptive_fraud", "friendly_fraud")
"""The realistic world's scenarios, in the order the tables show them."""
NOT_CATCHABLE = ("friendly_fraud",)
REVIEW_RATE = 0.01
DELAY_DAYS = 7
TRAIN_DAYS = 55
VALID_DAYS = 7
MONTH_DAYS = 28
DRIFT_TRAIN_DAYS = 21

Progress = Callable[[str], None]


def _floor_day(value: datetime) -> datetime:
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def _truth_labels(prepared: Prepared) -> pa.Table:
    """Every true fraud as a label reported at the payment's own time: the training labels
    of the ``all labels`` diagnostic (never available in practice)."""
    truth = prepared.truth
    fraud = truth.filter(truth.column("is_fraud")).column("payment_id")
    mask = pc.is_in(prepared.payments.column("payment_id"), fraud)
    rows = prepared.payments.filter(mask)
    n = rows.num_rows
    return pa.table({"payment_id": rows.column("payment_id"),
                     "kind": pa.array(["fraud_report"] * n, pa.string()),
                     "is_fraud": pa.array(np.ones(n, dtype=bool)),
                     "reported_at": rows.column("ts")})


def _top_share(scores: np.ndarray, share: float) -> np.ndarray:
    """Flags exactly the top ``share`` of ``scores`` (rounded up); among equal scores at the
    cut, the earlier payments (a review queue works in arrival order)."""
    flagged = np.zeros(scores.size, dtype=bool)
    if scores.size:
        k = max(1, math.ceil(share * scores.size))
        flagged[np.argsort(-scores, kind="stable")[:k]] = True
    return flagged


def _recall_by_scenario(scenario: np.ndarray, flagged: np.ndarray) -> dict[str, dict[str, float]]:
    out = {}
    for name in (*SCENARIOS, *sorted(set(scenario) - set(SCENARIOS) - {"legit"})):
        rows = scenario == name
        n = int(rows.sum())
        out[name] = {"payments": n, "flagged": int(flagged[rows].sum()),
                     "recall": float(flagged[rows].mean()) if n else float("nan")}
    return out


def _period(scores: np.ndarray, risk: np.ndarray, y_true: np.ndarray, y_labels: np.ndarray,
            scenario: np.ndarray, block: int) -> dict[str, Any]:
    """Every figure of one scored period."""
    review = _top_share(scores, REVIEW_RATE)
    blocked = risk > block
    frauds = int(y_true.sum())
    return {
        "payments": int(scores.size), "frauds": frauds,
        "ap": average_precision(y_true, scores), "auc": roc_auc(y_true, scores),
        "ap_labels": average_precision(y_labels, scores),
        "review": {"flagged": int(review.sum()),
                   "recall": float(review[y_true].mean()) if frauds else float("nan"),
                   "precision": float(y_true[review].mean()) if review.any() else float("nan"),
                   "by_scenario": _recall_by_scenario(scenario, review)},
        "block": {"threshold": block, "flagged": int(blocked.sum()),
                  "rate": float(blocked.mean()) if blocked.size else float("nan"),
                  "recall": float(blocked[y_true].mean()) if frauds else float("nan"),
                  "precision": float(y_true[blocked].mean()) if blocked.any()
                  else float("nan"),
                  "by_scenario": _recall_by_scenario(scenario, blocked)},
    }


def _block_threshold(bundle: Any, prepared: Prepared, window: TrainWindow) -> dict[str, Any]:
    """The cost model's best block-only threshold on the validation days, with the labels
    known at the cutoff (what the team knows the day the model goes live)."""
    from vigil.reports._costs import CostModel, ScoreHistogram, best_policy

    valid = in_window(prepared.ts, window.fit_end, window.end)
    idx = pa.array(np.flatnonzero(valid))
    risk = risk_score(bundle.predict_proba(model_inputs(bundle, prepared).take(idx)))
    y = labels_known_at(prepared.payments.column("payment_id"), prepared.labels,
                        window.label_cutoff)[valid]
    amounts = prepared.column("amount")[valid]
    policy = best_policy(ScoreHistogram.of(risk, y, amounts, days=window.valid_days),
                         CostModel())
    return {"threshold": policy.best_block_only,
            "validation_net_benefit": policy.best_block_only_net_benefit,
            "validation_frauds_known": int(y.sum()), "validation_payments": int(valid.sum())}


def _encoder(folder: Path, payments: pa.Table, until: datetime, minutes: float,
             say: Callable[[str], None]) -> Any:
    """The sequence encoder of ``folder``, pre-trained there first (on the payments before
    ``until``, at most ``minutes``) when it holds none; exported to ONNX with 4 principal
    components."""
    from vigil.models.sequence import SequenceRuntime

    if not (folder / "sequence.json").exists():
        from vigil.models.sequence import export_checkpoint_onnx, fit_checkpoint_pca, pretrain

        before = payments.filter(pc.less(payments.column("ts"), pa.scalar(until)))
        say(f"pre-training a sequence encoder on the {before.num_rows:,} payments before "
            f"{until:%Y-%m-%d} (at most {minutes:g} min) in {folder}")
        last = pc.max(before.column("ts")).as_py()
        pretrain(before, folder, epochs=3, max_minutes=minutes,
                 data_info={"until": until.isoformat(),
                            "last_ts": last.isoformat() if last is not None else None})
        export_checkpoint_onnx(folder)
        fit_checkpoint_pca(folder, before, n_components=4)
    return SequenceRuntime(folder)


def _windows(first: datetime, last: datetime) -> dict[str, Any]:
    day0 = _floor_day(first)
    end = _floor_day(last) + timedelta(days=1)
    days = (end - day0).days
    train_days = min(TRAIN_DAYS, days - DELAY_DAYS - 21)
    if train_days < 2 * VALID_DAYS:
        raise ConfigError(f"the data spans {days} days: too short for this benchmark (it "
                          f"needs at least {2 * VALID_DAYS + DELAY_DAYS + 21} days; the "
                          "presets are 60 days or more)")
    main = TrainWindow(day0, day0 + timedelta(days=train_days),
                       label_cutoff=day0 + timedelta(days=train_days + DELAY_DAYS),
                       valid_days=VALID_DAYS)
    drift = TrainWindow(day0, day0 + timedelta(days=DRIFT_TRAIN_DAYS),
                        label_cutoff=day0 + timedelta(days=DRIFT_TRAIN_DAYS + DELAY_DAYS),
                        valid_days=VALID_DAYS)
    return {"day0": day0, "end": end, "main": main, "drift": drift,
            "month_end": min(end, main.label_cutoff + timedelta(days=MONTH_DAYS))}


def _weeks(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    out = []
    while start < end:
        out.append((start, min(end, start + timedelta(days=7))))
        start += timedelta(days=7)
    return out


def _evaluate(bundle: Any, prepared: Prepared, periods: dict[str, Any],
              y_true: np.ndarray, y_labels: np.ndarray, scenario: np.ndarray,
              test_mask: np.ndarray, block: int) -> dict[str, Any]:
    idx = np.flatnonzero(test_mask)
    scores = np.full(prepared.payments.num_rows, np.nan)
    scores[idx] = bundle.predict_proba(model_inputs(bundle, prepared).take(pa.array(idx)))
    risk = np.zeros(prepared.payments.num_rows, dtype=np.int64)
    risk[idx] = risk_score(scores[idx])
    out: dict[str, Any] = {}
    for name, (start, end) in periods.items():
        rows = test_mask & in_window(prepared.ts, start, end)
        out[name] = {"start": start.isoformat(), "end": end.isoformat(),
                     **_period(scores[rows], risk[rows], y_true[rows], y_labels[rows],
                               scenario[rows], block)}
    return out


def run_scenarios_benchmark(*, preset: str = "medium", data: str | Path | None = None,
                            seed: int = 7, out_dir: str | Path = "bench/results",
                            feature_sets: list[FeatureSet] | None = None,
                            diagnostics: bool = True, params: dict[str, Any] | None = None,
                            sequence: str | Path | None = None,
                            pretrain_minutes: float = 10.0,
                            progress: Progress | None = None) -> dict[str, Any]:
    """Run the benchmark; write ``scenarios_NAME.json`` and ``.md`` in ``out_dir`` (NAME is
    the preset, or ``data`` for a dataset folder).

    ``feature_sets`` replace the three built-in ones; ``diagnostics=False`` leaves out the
    ``all labels`` variants; ``params`` are :class:`~vigil.models.RiskModel` parameters for
    every model (its defaults otherwise, early stopping on the validation days included).

    ``sequence``: a sequence encoder checkpoint folder; the last feature set is also trained
    with the encoder's principal components as inputs (``NAME + sequence``). Where the folder
    holds no checkpoint, one is pre-trained there first on the payments before the training
    labels' cutoff (never the test month), for at most ``pretrain_minutes`` (needs PyTorch).
    """
    say = progress or (lambda _m: None)
    t0 = time.perf_counter()
    if data is None:
        from vigil.simulate import RealisticWorld

        days = RealisticWorld.preset_days(preset)
        say(f"simulating the {preset} preset ({days} days, seed {seed})")
        events = RealisticWorld.preset(preset).simulate(days, start="2024-01-01", seed=seed)
        name = preset
    else:
        from vigil.events import load_dataset

        say(f"reading {data}")
        events = load_dataset(data)
        name = "data"
    if events.truth is None or "scenario" not in events.truth.column_names:
        raise ConfigError("the scenarios benchmark needs ground truth (truth.parquet with a "
                          "scenario per payment): simulate the realistic world, e.g. "
                          "`vigil simulate --preset medium --out DIR`")
    say(f"{events.payments.num_rows:,} payments, {events.labels.num_rows:,} labels")
    sets = feature_sets or [handbook_baseline(), payments_default(), payments_realistic()]
    first, last = (v.as_py() for v in pc.min_max(events.payments.column("ts")).values())
    w = _windows(first, last)
    main, drift = w["main"], w["drift"]
    periods = {"month": (main.label_cutoff, w["month_end"])}
    periods.update({f"week {i + 1}": span
                    for i, span in enumerate(_weeks(main.label_cutoff, w["end"]))})
    drift_periods = {f"week {i + 1}": span
                     for i, span in enumerate(_weeks(drift.label_cutoff, w["end"]))}

    runtime = None
    if sequence is not None:
        runtime = _encoder(Path(sequence), events.payments, main.label_cutoff,
                           pretrain_minutes, say)

    models: dict[str, Any] = {}
    drifted: dict[str, Any] = {}
    test_mask = drift_mask = None
    y_true = y_labels = scenario = None
    coverage: dict[str, float] = {}
    for fs in sets:
        say(f"features '{fs.name}' ({len(fs.names)})")
        t = time.perf_counter()
        prepared = prepare(events, fs)
        feature_s = time.perf_counter() - t
        if y_true is None:
            truth_ids = events.truth.filter(events.truth.column("is_fraud")).column("payment_id")
            y_true = np.asarray(pc.is_in(prepared.payments.column("payment_id"), truth_ids)
                                .to_numpy(zero_copy_only=False), dtype=bool)
            y_labels = labels_known_at(prepared.payments.column("payment_id"),
                                       prepared.labels, None)
            scenario = prepared.scenarios()
            for label, win in (("main", main), ("drift", drift)):
                fit = in_window(prepared.ts, win.start, win.fit_end) & y_true
                known = labels_known_at(prepared.payments.column("payment_id"),
                                        prepared.labels, win.label_cutoff)
                coverage[label] = float(known[fit].mean()) if fit.any() else float("nan")
        variants = [(fs.name, prepared, "as reported", None)]
        if runtime is not None and fs is sets[-1]:
            variants.append((f"{fs.name} + sequence", prepared, "as reported", runtime))
        if diagnostics and fs.name != handbook_baseline().name:
            variants.append((f"{fs.name} (all labels)",
                             replace(prepared, labels=_truth_labels(prepared)),
                             "every true fraud (diagnostic)", None))
        for label, train_on, labels_used, encoder in variants:
            say(f"training '{label}' on {main.start:%Y-%m-%d}..{main.end:%Y-%m-%d}, labels "
                f"{labels_used} by {main.label_cutoff:%Y-%m-%d}")
            t = time.perf_counter()
            bundle = train_bundle(train_on, main, params=params, sequence=encoder)
            train_s = time.perf_counter() - t
            if test_mask is None:  # the same rows for every model
                test_mask, dropped = test_rows(bundle, prepared, main.label_cutoff, w["end"])
            block = _block_threshold(bundle, train_on, main)
            models[label] = {
                "feature_set": fs.name, "labels": labels_used,
                "features": len(fs.names) + len(bundle.sequence_names or ()),
                "validation": bundle.metrics.get("validation", {}),
                "trees": bundle.model.best_iteration_ + 1, "block": block,
                "feature_seconds": feature_s, "train_seconds": train_s,
                "periods": _evaluate(bundle, prepared, periods, y_true, y_labels,
                                     scenario, test_mask, block["threshold"]),
            }
            month = models[label]["periods"]["month"]
            say(f"  month: AP {month['ap']:.3f}, AUC {month['auc']:.3f}, recall at 1% review "
                f"{month['review']['recall']:.3f}, block > {block['threshold']}: recall "
                f"{month['block']['recall']:.3f}")
        if fs.name != handbook_baseline().name:
            say(f"drift: training '{fs.name}' on the first {DRIFT_TRAIN_DAYS} days only")
            bundle = train_bundle(prepared, drift, params=params)
            if drift_mask is None:
                drift_mask, _ = test_rows(bundle, prepared, drift.label_cutoff, w["end"])
            block = _block_threshold(bundle, prepared, drift)
            drifted[fs.name] = {
                "feature_set": fs.name, "validation": bundle.metrics.get("validation", {}),
                "trees": bundle.model.best_iteration_ + 1, "block": block,
                "periods": _evaluate(bundle, prepared, drift_periods, y_true, y_labels,
                                     scenario, drift_mask, block["threshold"]),
            }
        del prepared

    deployable = {k: v for k, v in models.items() if v["labels"] == "as reported"}
    chosen = max(deployable, key=lambda k: deployable[k]["validation"].get("ap", -1.0))
    result = {
        "benchmark": "scenarios", "preset": preset if data is None else None,
        "data": str(data) if data is not None else None, "seed": seed if data is None else None,
        "world": {"payments": events.payments.num_rows, "labels": events.labels.num_rows,
                  "start": w["day0"].isoformat(), "end": w["end"].isoformat(),
                  "scenarios": events.info.get("scenarios")},
        "protocol": {
            "model_params": params or {},
            "train": main.to_dict(), "drift_train": drift.to_dict(),
            "test": {"start": main.label_cutoff.isoformat(), "end": w["end"].isoformat(),
                     "month_end": w["month_end"].isoformat(),
                     "payments": int(test_mask.sum()), "dropped_known_compromised": dropped},
            "review_rate": REVIEW_RATE,
            "block": "the cost model's best block-only threshold (default costs) on the "
                     "validation days, labels known at the cutoff",
            "label_coverage_at_cutoff": coverage,
        },
        "models": models, "drift": drifted,
        "chosen_on_validation": chosen,
        "seconds": time.perf_counter() - t0, "machine": machine_info(),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"scenarios_{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"scenarios_{name}.md").write_text(scenarios_markdown(result))
    return result


def _pct(value: float) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.2f}"


def scenarios_markdown(result: dict[str, Any]) -> str:
    """The benchmark's tables, as markdown."""
    models, proto = result["models"], result["protocol"]
    names = list(models)
    where = (f"{result['preset']} preset, seed {result['seed']}" if result["preset"]
             else result["data"])
    train, test = proto["train"], proto["test"]
    lines = [
        f"# What our models miss ({where}, {result['world']['payments']:,} payments)", "",
        f"Trained on {train['start'][:10]} to {train['end'][:10]} (last {train['valid_days']} "
        f"days for validation), labels as known on {train['label_cutoff'][:10]} "
        f"({proto['label_coverage_at_cutoff']['main']:.0%} of the training window's true "
        f"fraud reported by then). Tested from {test['start'][:10]}; the month is "
        f"{test['start'][:10]} to {test['month_end'][:10]}; "
        f"{test['dropped_known_compromised']:,} payments of cards already reported left out.",
        "",
        "Recall per scenario on the month, at a 1 % review rate (the top 1 % of the month's "
        "payments by score) / at the block threshold (the cost model's best on validation):",
        "",
        "| scenario | payments | " + " | ".join(f"`{n}`" for n in names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    first = models[names[0]]["periods"]["month"]
    scen_names = list(first["review"]["by_scenario"])
    for s in scen_names:
        n = first["review"]["by_scenario"][s]["payments"]
        cells = []
        for m in names:
            month = models[m]["periods"]["month"]
            cells.append(f"{_pct(month['review']['by_scenario'][s]['recall'])} / "
                         f"{_pct(month['block']['by_scenario'][s]['recall'])}")
        note = " (label noise)" if s in NOT_CATCHABLE else ""
        lines.append(f"| {s}{note} | {n:,} | " + " | ".join(cells) + " |")
    cells = [f"{_pct(models[m]['periods']['month']['review']['recall'])} / "
             f"{_pct(models[m]['periods']['month']['block']['recall'])}" for m in names]
    lines.append(f"| all fraud | {first['frauds']:,} | " + " | ".join(cells) + " |")
    lines += [
        "", "Overall, on the month (AP and AUC against the truth; AP (labels) against the "
            "labels eventually reported, friendly fraud included):", "",
        "| model | features | labels trained on | trees | validation AP | AP | AUC | "
        "AP (labels) | precision at 1 % review | block above | block rate | block precision |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in names:
        r = models[m]
        month = r["periods"]["month"]
        lines.append(
            f"| `{m}` | {r['features']} | {r['labels']} | {r['trees']} | "
            f"{_pct(r['validation'].get('ap'))} "
            f"| {month['ap']:.3f} | {month['auc']:.3f} | {month['ap_labels']:.3f} | "
            f"{_pct(month['review']['precision'])} | {r['block']['threshold']} | "
            f"{month['block']['rate']:.2%} | {_pct(month['block']['precision'])} |")
    lines += ["", f"Chosen on validation AP: `{result['chosen_on_validation']}`.", ""]
    for m in dict.fromkeys([result["chosen_on_validation"], "payments_default"]):
        if m not in models:
            continue
        lines += _week_table(f"`{m}`, per test week: recall at a 1 % review rate per "
                             "scenario (each week's own top 1 %), and AP",
                             models[m]["periods"], scen_names)
    for m, r in result["drift"].items():
        d = proto["drift_train"]
        lines += _week_table(
            f"Drift: `{m}` trained on {d['start'][:10]} to {d['end'][:10]} only (labels as "
            f"of {d['label_cutoff'][:10]}, "
            f"{proto['label_coverage_at_cutoff']['drift']:.0%} of its fraud reported), never "
            "retrained; recall at a 1 % review rate per week", r["periods"], scen_names)
    lines += [f"Machine: {machine_line(result['machine'])}; the run took "
              f"{result['seconds']:.0f} s.", ""]
    return "\n".join(lines)


def _week_table(title: str, periods: dict[str, Any], scen_names: list[str]) -> list[str]:
    lines = [title + ":", "",
             "| week | payments | " + " | ".join(scen_names) + " | AP |",
             "|---|---|" + "---|" * (len(scen_names) + 1)]
    for key, p in periods.items():
        if key == "month":
            continue
        by = p["review"]["by_scenario"]
        cells = [f"{_pct(by[s]['recall'])} ({by[s]['payments']})" for s in scen_names]
        lines.append(f"| {p['start'][:10]} | {p['payments']:,} | " + " | ".join(cells)
                     + f" | {p['ap']:.3f} |")
    return [*lines, ""]
