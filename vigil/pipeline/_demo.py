"""The demo job: a generated world, end to end, with every artifact written to one folder."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from vigil.events import write_dataset
from vigil.features import handbook_baseline, payments_default
from vigil.pipeline._jobs import (
    TrainWindow,
    data_span,
    evaluate_window,
    prepare,
    score_window,
    train_bundle,
)

DELAY_DAYS = 7
TEST_DAYS = 7
TRAIN_DAYS = 28


def run_demo(out: str | Path, *, days: int = 90, cards: int = 5000, seed: int = 7,
             start: str = "2024-01-01", progress: Callable[[str], None] | None = None,
             day_progress: Callable[[int, int], None] | None = None,
             serve: bool = True, report: bool = True) -> dict[str, Any]:
    """Simulate ``days`` days of ``cards`` cards, train on a 28-day window, wait the 7-day label
    delay, test on the last 7 days; for the Handbook's features and vigil's default set.

    Writes ``out/data/`` (the dataset), ``out/features/NAME.parquet``, ``out/bundles/NAME/``,
    ``out/scores.parquet`` (the default model on the test week) and ``out/metrics.json``.
    With ``serve``, the last test day then goes through a real ``vigil serve`` process
    (store in ``out/serve/``); its decisions and latencies are in ``metrics.json`` too.
    With ``report``, the default model's report goes to ``out/report/`` and its comparison
    with the Handbook baseline (champion) to ``out/compare/``.
    """
    from vigil.simulate import HandbookWorld

    say = progress or (lambda _m: None)
    out = Path(out)
    world = HandbookWorld(n_cards=cards, n_terminals=2 * cards)
    data = world.simulate(days, start=start, seed=seed, progress=day_progress)
    write_dataset(data, out / "data")
    say(f"simulated {data.payments.num_rows:,} payments over {days} days -> {out / 'data'}")

    first, _ = data_span(data)
    day0 = datetime(first.year, first.month, first.day, tzinfo=UTC)
    end = day0 + timedelta(days=days)
    test_start = end - timedelta(days=TEST_DAYS)
    train_end = test_start - timedelta(days=DELAY_DAYS)
    train_start = max(day0, train_end - timedelta(days=TRAIN_DAYS))
    window = TrainWindow(train_start, train_end, label_cutoff=test_start,
                         valid_days=min(7, (train_end - train_start).days // 4))

    results: dict[str, Any] = {}
    trained: dict[str, tuple[Any, Any]] = {}
    for fs in (handbook_baseline(), payments_default()):
        prepared = prepare(data, fs)
        (out / "features").mkdir(parents=True, exist_ok=True)
        pq.write_table(prepared.features, out / "features" / f"{fs.name}.parquet",
                       compression="zstd")
        say(f"built {len(fs.names)} features '{fs.name}' -> {out / 'features'}")
        bundle = train_bundle(prepared, window, progress=say)
        bundle.training["data_path"] = str((out / "data").resolve())
        bundle.save(out / "bundles" / fs.name)
        evaluation = evaluate_window(bundle, prepared, test_start, end)
        bundle.metrics["test"] = evaluation
        bundle.save(out / "bundles" / fs.name)
        say(f"trained and tested '{fs.name}': AP {evaluation['metrics']['ap']:.3f}, "
            f"AUC {evaluation['metrics']['auc']:.3f} -> {out / 'bundles' / fs.name}")
        results[fs.name] = {"model_version": bundle.model_version, **evaluation}
        trained[fs.name] = (bundle, prepared)
        if fs.name == "payments_default":
            pq.write_table(score_window(bundle, prepared, test_start, end),
                           out / "scores.parquet", compression="zstd")
    summary = {
        "world": data.info,
        "train": window.to_dict(),
        "test": {"start": test_start.isoformat(), "end": end.isoformat()},
        "models": results,
    }
    if report:
        from vigil.reports import build_report
        from vigil.reports._compare import build_comparison

        champion, challenger = trained["handbook_baseline"], trained["payments_default"]
        files, _ = build_report(*challenger, test_start, end, out / "report",
                                data_name=str(out / "data"), progress=say)
        compared, doc = build_comparison(*champion, *challenger, test_start, end,
                                         out / "compare", data_name=str(out / "data"),
                                         progress=say)
        summary["report"] = {"html": str(files.html), "compare": str(compared.html),
                             "verdict": doc["verdict"]}
    if serve:
        from vigil.pipeline._serve_demo import serve_one_day

        summary["serving"] = serve_one_day(data, out / "bundles" / "payments_default",
                                           out / "serve", end - timedelta(days=1),
                                           progress=say)
    (out / "metrics.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary
