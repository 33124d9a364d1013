"""The demo job: a generated world, end to end, with every artifact written to one folder."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from vigil._errors import ConfigError
from vigil.events import EventData, write_dataset
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
TRAIN_DAYS = {"realistic": 56, "handbook": 28}
"""Days of training per world: the realistic world's labels come weeks late (a median of
three), so its model trains on eight weeks, most of them with their labels in."""
WORLDS = ("realistic", "handbook")
DEMO_CUSTOMERS = 8000


def simulate_world(world: str, *, days: int, cards: int | None = None,
                   customers: int | None = None, seed: int = 7, start: str = "2024-01-01",
                   day_progress: Callable[[int, int], None] | None = None) -> EventData:
    """The demo's world: ``realistic`` (``customers`` customers, a merchant per five) or
    ``handbook`` (``cards`` cards, two terminals per card)."""
    from vigil.simulate import HandbookWorld, RealisticWorld

    if world == "realistic":
        if cards is not None:
            raise ConfigError("cards sizes the Handbook world; the realistic world takes "
                              "customers (or choose world 'handbook')")
        n = customers or DEMO_CUSTOMERS
        sim: Any = RealisticWorld(n_customers=n, n_merchants=max(20, n // 5))
    elif world == "handbook":
        if customers is not None:
            raise ConfigError("customers sizes the realistic world; the Handbook world takes "
                              "cards (or choose world 'realistic')")
        n = cards or 5000
        sim = HandbookWorld(n_cards=n, n_terminals=2 * n)
    else:
        raise ConfigError(f"no world {world!r}; use one of {', '.join(WORLDS)}")
    return sim.simulate(days, start=start, seed=seed, progress=day_progress)


def run_demo(out: str | Path, *, world: str = "realistic", days: int = 90,
             cards: int | None = None, customers: int | None = None, seed: int = 7,
             start: str = "2024-01-01", progress: Callable[[str], None] | None = None,
             day_progress: Callable[[int, int], None] | None = None,
             serve: bool = True, report: bool = True, replicates: int = 200,
             sequence_minutes: float | None = 1.5) -> dict[str, Any]:
    """Simulate ``days`` days of a world, train on the weeks before a 7-day label delay, test
    on the last 7 days; for the Handbook's features and vigil's default set.

    ``world`` is ``realistic`` (the default: devices, IPs, accounts, seven frauds, labels
    weeks late; ``customers`` customers, 8,000 by default; trained on 56 days) or
    ``handbook`` (the Fraud Detection Handbook's world; ``cards`` cards, 5,000 by default;
    trained on 28 days).

    Writes ``out/data/`` (the dataset), ``out/features/NAME.parquet``, ``out/bundles/NAME/``,
    ``out/scores.parquet`` (the default model on the test week) and ``out/metrics.json``.
    With ``serve``, the last test day then goes through a real ``vigil serve`` process
    (store in ``out/serve/``); its decisions and latencies are in ``metrics.json`` too.
    With ``report``, the default model's report goes to ``out/report/`` and its comparison
    with the Handbook baseline (champion) to ``out/compare/`` (``replicates`` bootstrap
    replicates each).

    With ``sequence_minutes`` and PyTorch installed (the ``deep`` extra), a sequence encoder
    is pre-trained for that long on the payments before the test week (no labels; in
    ``out/encoder/``) and the default set is trained again with its principal components as
    inputs (``payments_default + sequence``), tested on the same week: the encoder's lift,
    or its absence, on this world.
    """
    say = progress or (lambda _m: None)
    out = Path(out)
    data = simulate_world(world, days=days, cards=cards, customers=customers, seed=seed,
                          start=start, day_progress=day_progress)
    write_dataset(data, out / "data")
    say(f"simulated the {world} world: {data.payments.num_rows:,} payments over {days} days "
        f"-> {out / 'data'}")

    first, _ = data_span(data)
    day0 = datetime(first.year, first.month, first.day, tzinfo=UTC)
    end = day0 + timedelta(days=days)
    test_start = end - timedelta(days=TEST_DAYS)
    train_end = test_start - timedelta(days=DELAY_DAYS)
    train_start = max(day0, train_end - timedelta(days=TRAIN_DAYS[world]))
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
    if sequence_minutes and _has_torch():
        name, entry = _with_sequence(data, trained["payments_default"][1], window, test_start,
                                     end, out, sequence_minutes, say)
        results[name] = entry
    summary = {
        "world": {"name": world, **data.info},
        "train": window.to_dict(),
        "test": {"start": test_start.isoformat(), "end": end.isoformat()},
        "models": results,
    }
    if report:
        from vigil.reports import build_report
        from vigil.reports._compare import build_comparison

        champion, challenger = trained["handbook_baseline"], trained["payments_default"]
        files, _ = build_report(*challenger, test_start, end, out / "report",
                                replicates=replicates, data_name=str(out / "data"),
                                progress=say)
        compared, doc = build_comparison(*champion, *challenger, test_start, end,
                                         out / "compare", replicates=replicates,
                                         data_name=str(out / "data"), progress=say)
        summary["report"] = {"html": str(files.html), "compare": str(compared.html),
                             "verdict": doc["verdict"]}
    if serve:
        from vigil.pipeline._serve_demo import serve_one_day

        summary["serving"] = serve_one_day(data, out / "bundles" / "payments_default",
                                           out / "serve", end - timedelta(days=1),
                                           progress=say)
    (out / "metrics.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def _has_torch() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def _with_sequence(data: Any, prepared: Any, window: TrainWindow, test_start: datetime,
                   end: datetime, out: Path, minutes: float,
                   say: Callable[[str], None]) -> tuple[str, dict[str, Any]]:
    """Pre-train an encoder on the payments before the test week, train the default set with
    its principal components, test it on the test week."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from vigil.models.sequence import export_checkpoint_onnx, fit_checkpoint_pca, pretrain

    folder = out / "encoder"
    before = data.payments.filter(pc.less(data.payments.column("ts"), pa.scalar(test_start)))
    say(f"pre-training a sequence encoder on {before.num_rows:,} payments for "
        f"{minutes:g} min -> {folder}")
    if (folder / "sequence.json").exists():
        import shutil

        shutil.rmtree(folder)  # a demo run starts afresh, as its other outputs do
    pretrain(before, folder, epochs=3, max_minutes=minutes)
    export_checkpoint_onnx(folder)
    fit_checkpoint_pca(folder, before, n_components=4)
    name = "payments_default + sequence"
    bundle = train_bundle(prepared, window, sequence=folder, progress=say)
    bundle.training["data_path"] = str((out / "data").resolve())
    evaluation = evaluate_window(bundle, prepared, test_start, end)
    bundle.metrics["test"] = evaluation
    target = out / "bundles" / "payments_default_sequence"
    bundle.save(target)
    say(f"trained and tested '{name}': AP {evaluation['metrics']['ap']:.3f}, "
        f"AUC {evaluation['metrics']['auc']:.3f} -> {target}")
    return name, {"model_version": bundle.model_version, **evaluation}

