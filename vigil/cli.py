"""The ``vigil`` command: parse, call the library, print.

Every error vigil raises on purpose becomes one line on stderr and exit status 1; usage
mistakes exit with 2 (click's convention). No traceback for a user mistake.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from vigil import __version__
from vigil._errors import ConfigError, VigilError

console = Console()
err = Console(stderr=True)


# --------------------------------------------------------------------------- helpers


class _Step:
    """Timestamped progress lines on stderr for long jobs."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def __call__(self, message: str) -> None:
        err.print(f"[dim]{time.perf_counter() - self.t0:7.1f}s[/dim]  {message}",
                  highlight=False, soft_wrap=True)


@contextmanager
def _day_progress(label: str) -> Iterator[Callable[..., None]]:
    """A bar of days done; ``update(done, total)``, or ``update(done, total, payments)``."""
    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("days"),
                  TextColumn("{task.fields[payments]}"), TimeElapsedColumn(), console=err,
                  transient=True) as bar:
        task = bar.add_task(label, total=None, payments="")

        def update(done: int, total: int, payments: int | None = None) -> None:
            shown = "" if payments is None else f"{payments:,} payments"
            bar.update(task, completed=done, total=total, payments=shown)

        yield update


def _date(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    from vigil.evaluation import as_utc

    try:
        return as_utc(value)
    except ConfigError as exc:
        raise ConfigError(f"{option}: {exc}") from exc


def _feature_set(spec: str):
    from vigil.features import FeatureSet, builtin_feature_set

    if spec.endswith((".toml", ".json")) or Path(spec).exists():
        return FeatureSet.from_file(spec)
    return builtin_feature_set(spec)


def _parse_params(items: tuple[str, ...]) -> dict[str, Any]:
    from vigil.models import RiskModel

    params: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--param '{item}': write NAME=VALUE, e.g. --param max_depth=6")
        name, raw = item.split("=", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        params[name.strip()] = value
    RiskModel().set_params(**params)  # unknown names fail here, with the list of known ones
    return params


def _write_json(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")


_METRIC_LABELS = {
    "auc": "AUC ROC",
    "ap": "average precision",
    "cp@100": "card precision@100",
    "recall@0.1%fpr": "recall at 0.1% FPR",
    "recall@1%fpr": "recall at 1% FPR",
    "money_recall@1%fpr": "fraud money caught at 1% FPR",
    "payments": "payments",
    "frauds": "frauds",
}


def _metrics_table(title: str, columns: dict[str, dict[str, float]]) -> Table:
    """Metrics down, models across: stays readable in 80 columns."""
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    for label in columns:
        table.add_column(label, justify="right")
    for key, label in _METRIC_LABELS.items():
        if not any(key in m for m in columns.values()):
            continue
        cells = []
        for m in columns.values():
            value = m.get(key)
            if value is None:
                cells.append("")
            elif key in ("payments", "frauds"):
                cells.append(f"{int(value):,}")
            else:
                cells.append(f"{value:.3f}")
        table.add_row(label, *cells)
    return table


class _Group(click.Group):
    """Turns library errors into one readable line and a non-zero exit."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except VigilError as exc:
            # a Text, not markup: messages quote rule attributes (":email:") and brackets
            err.print(Text.assemble(("error:", "bold red"), f" {exc}"), highlight=False,
                      soft_wrap=True)
            sys.exit(1)
        except KeyboardInterrupt:
            err.print("interrupted")
            sys.exit(130)


# --------------------------------------------------------------------------- commands


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vigil")
def main() -> None:
    """vigil: real-time fraud and identity risk.

    \b
    Example, end to end on generated data:
      vigil simulate --days 60 --cards 2000 --out data/world
      vigil train --data data/world --out runs/model
      vigil evaluate --bundle runs/model --data data/world
    """


@main.command()
@click.option("--days", type=click.IntRange(min=1), default=None,
              help="Days to simulate [default: 90, or the preset's].")
@click.option("--cards", type=click.IntRange(min=1), default=None,
              help="Handbook world: number of cards, one customer each [default: 5000].")
@click.option("--terminals", type=click.IntRange(min=1), default=None,
              help="Handbook world: number of terminals [default: twice the cards].")
@click.option("--preset", type=click.Choice(["small", "medium", "large"]), default=None,
              help="The realistic world (accounts, devices, IPs, e-mails, seven fraud "
                   "scenarios, labels weeks late) instead of the Handbook's: small (1,000 "
                   "customers, 60 days, about 50 thousand payments), medium (14,000, 90 days, "
                   "about 1 million) or large (70,000, 180 days, about 10 million), written "
                   "as it is made, in bounded memory.")
@click.option("--chunk-days", type=click.IntRange(min=1), default=7, show_default=True,
              help="Realistic world: days made and written at a time (memory grows with it; "
                   "the data does not change).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--start", default="2024-01-01", show_default=True, help="First day (UTC).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Dataset folder to write.")
def simulate(days: int | None, cards: int | None, terminals: int | None, preset: str | None,
             chunk_days: int, seed: int, start: str, out: Path) -> None:
    """Generate a world of card payments with fraud and delayed labels.

    Writes OUT/payments/date=YYYY-MM-DD/part-0.parquet, OUT/labels.parquet, OUT/truth.parquet
    and OUT/dataset.json. Without --preset the world follows the Fraud Detection Handbook's
    simulator: cards and terminals on a plane, three fraud scenarios, labels reported 7 days
    later. With --preset it is the realistic world of docs/simulator.md, with its accounts,
    account events, verification sessions and their truth besides; it is written a chunk of
    days at a time (the large preset's 10 million payments in well under 1.5 GB).

    \b
    Examples:
      vigil simulate --days 90 --cards 5000 --seed 7 --out data/world
      vigil simulate --preset medium --seed 7 --out data/realistic
      vigil simulate --preset large --seed 7 --out data/large
    """
    from vigil.events import write_dataset
    from vigil.simulate import HandbookWorld, RealisticWorld

    t0 = time.perf_counter()
    if preset is not None:
        if cards is not None or terminals is not None:
            raise ConfigError("--cards and --terminals size the Handbook world; a --preset "
                              "sets its own size (drop one or the other)")
        world = RealisticWorld.preset(preset)
        days = days or RealisticWorld.preset_days(preset)
        with _day_progress("simulating") as progress:
            info = world.simulate_to(out, days, start=start, seed=seed, chunk_days=chunk_days,
                                     progress=progress)
        n, frauds = info["payments"], info["frauds"]
    else:
        cards = cards or 5000
        world = HandbookWorld(n_cards=cards, n_terminals=terminals or 2 * cards)
        days = days or 90
        with _day_progress("simulating") as progress:
            data = world.simulate(days, start=start, seed=seed, progress=progress)
        write_dataset(data, out)
        n = data.payments.num_rows
        frauds = int(sum(data.truth.column("is_fraud").to_pylist())) if data.truth else 0
    click.echo(f"{n:,} payments ({frauds:,} fraud, {frauds / max(1, n):.2%}) over {days} "
               f"days in {time.perf_counter() - t0:.1f} s -> {out}")


@main.group()
def features() -> None:
    """Feature sets: list them, build a feature table, show the SQL.

    \b
    Example:
      vigil features build --data data/world --features default --out features.parquet
    """


@features.command("list")
def features_list() -> None:
    """List the built-in feature sets and the feature kinds a definition can use.

    \b
    Example:
      vigil features list
    """
    from vigil.features import BUILTIN_FEATURE_SETS, FEATURE_KINDS

    for name, make in BUILTIN_FEATURE_SETS.items():
        fs = make()
        click.echo(f"{name}: {len(fs.names)} features ({fs.name})")
        for n in fs.names:
            click.echo(f"  {n}")
    click.echo("feature kinds: " + ", ".join(FEATURE_KINDS))


@features.command("sql")
@click.option("--features", "feature_spec", default="default", show_default=True,
              help="Built-in set name or a .toml/.json file.")
def features_sql(feature_spec: str) -> None:
    """Print the DuckDB SQL that computes a feature set.

    \b
    Example:
      vigil features sql --features handbook
    """
    from vigil.features import compile_sql

    click.echo(compile_sql(_feature_set(feature_spec)))


_ENGINE_OPTION = click.option(
    "--engine", type=click.Choice(["duckdb", "spark"]), default="duckdb", show_default=True,
    help="duckdb: one machine, in process. spark: Apache Spark (pip install 'vigil[spark]').")
_MASTER_OPTION = click.option(
    "--master", default="local[2]", show_default=True,
    help="With --engine spark: local[N], or a cluster's spark://host:port.")


@features.command("build")
@click.option("--data", type=click.Path(path_type=Path), required=True,
              help="Dataset folder, or the Handbook's transactions file.")
@click.option("--features", "feature_spec", default="default", show_default=True,
              help="Built-in set name or a .toml/.json file.")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Parquet file to write (duckdb), or folder of day partitions (spark).")
@_ENGINE_OPTION
@_MASTER_OPTION
def features_build(data: Path, feature_spec: str, out: Path, engine: str, master: str) -> None:
    """Compute a feature set for every payment, point in time, on DuckDB or Spark.

    Both engines give the same values. With --engine spark, --data must be a dataset
    folder (its day partitions are read by Spark) and --out is written as day partitions
    (out/date=YYYY-MM-DD/*.parquet); on a cluster both must be paths every worker reads.

    \b
    Examples:
      vigil features build --data data/world --features default --out features.parquet
      vigil features build --data data/world --engine spark --master local[2] --out feats/
      vigil features build --data /shared/world --engine spark \\
        --master spark://10.0.0.5:7077 --out /shared/features/
    """
    step = _Step()
    fs = _feature_set(feature_spec)
    if engine == "spark":
        from vigil.features.offline import (
            read_dataset_spark,
            spark_features,
            spark_job,
            write_features_by_day,
        )

        step(f"starting Spark ({master})")
        with spark_job(master) as spark:
            payments, labels = read_dataset_spark(spark, data)
            step(f"building {len(fs.names)} features on Spark")
            write_features_by_day(spark_features(fs, payments, labels, source=str(data)), out)
        step(f"wrote day partitions to {out}")
        return

    import pyarrow.parquet as pq

    from vigil.events import open_dataset
    from vigil.features import build_features

    step(f"reading {data}")
    dataset = open_dataset(data)
    step(f"building {len(fs.names)} features for {dataset.payments.num_rows:,} payments")
    table = build_features(fs, dataset.payments, dataset.labels)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out, compression="zstd")
    step(f"wrote {out}")


@main.command()
@click.option("--data", type=click.Path(path_type=Path), required=True,
              help="Dataset folder, or the Handbook's transactions file.")
@click.option("--features", "feature_spec", default="default", show_default=True,
              help="Built-in set name (default, handbook, realistic) or a .toml/.json file.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Bundle folder to write.")
@click.option("--train-start", help="First day of training [default: 28 days before the end].")
@click.option("--train-end", help="Day after the last training day [default: --delay before "
              "the last payment].")
@click.option("--as-of", help="Use labels reported before this time [default: train end + "
              "delay].")
@click.option("--delay", type=click.IntRange(min=0), default=7, show_default=True,
              help="Label delay in days: the newest days whose labels are not in yet.")
@click.option("--valid-days", type=click.IntRange(min=0), default=7, show_default=True,
              help="Last days of the window held out for early stopping and calibration.")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Model parameter, repeatable (e.g. --param max_depth=6).")
@_ENGINE_OPTION
@_MASTER_OPTION
@click.option("--workers", "num_workers", type=click.IntRange(min=1), default=2,
              show_default=True, help="With --engine spark: XGBoost workers (Spark tasks).")
@click.option("--sequence", "sequence_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="A sequence encoder checkpoint (from `vigil pretrain`, with "
              "its PCA): its principal components become model inputs and the bundle "
              "carries the encoder (see docs/sequence.md).")
@click.option("--identity-graph", "identity_graph", is_flag=True,
              help="Add the identity graph's point-in-time features (accounts linked by "
                   "address, document and face; fraud known in their component) as model "
                   "inputs; needs a realistic-world dataset, and the bundle scores offline "
                   "only (see docs/identity.md).")
def train(data: Path, feature_spec: str, out: Path, train_start: str | None,
          train_end: str | None, as_of: str | None, delay: int, valid_days: int,
          params: tuple[str, ...], engine: str, master: str, num_workers: int,
          sequence_dir: Path | None, identity_graph: bool) -> None:
    """Train a calibrated XGBoost model and save it as a bundle.

    Payments in [train-start, train-end) are the training rows; their labels are those
    reported before --as-of, so a fraud reported later counts as legitimate, as it would have
    in production on that day. The last --valid-days days stop boosting early and fit the
    calibrator.

    With --engine spark, features and trees are computed on Spark (XGBoost's Spark
    estimator, --workers workers); the bundle is the same kind and serves the same way.

    \b
    Example:
      vigil train --data data/world --features default --out runs/model
      vigil train --data data/world --train-start 2024-02-01 --train-end 2024-03-01 \\
        --param max_depth=5 --out runs/model
      vigil train --data data/world --engine spark --master local[2] --out runs/model
      vigil train --data data/world --sequence runs/encoder --out runs/model-seq
      vigil train --data data/realistic --identity-graph --out runs/model-graph
    """
    step = _Step()
    fs = _feature_set(feature_spec)
    model_params = _parse_params(params)
    if sequence_dir is not None and engine == "spark":
        raise click.UsageError("--sequence works with --engine local only")
    if identity_graph and engine == "spark":
        raise click.UsageError("--identity-graph works with --engine local only")
    if engine == "spark":
        from vigil.features.offline import read_dataset_spark, spark_job
        from vigil.pipeline._spark_jobs import spark_data_span, train_bundle_spark

        step(f"starting Spark ({master})")
        with spark_job(master) as spark:
            payments, labels = read_dataset_spark(spark, data)
            first, last = spark_data_span(payments)
            window = _train_window(first, last, train_start, train_end, as_of, delay,
                                   valid_days)
            bundle = train_bundle_spark(fs, payments, labels, window, params=model_params,
                                        num_workers=num_workers, progress=step)
        _save_trained(bundle, data, out, step)
        return

    from vigil.events import open_dataset
    from vigil.pipeline import data_span, graph_spec, prepare, train_bundle

    step(f"reading {data}")
    dataset = open_dataset(data)
    step(f"building {len(fs.names)} features for {dataset.payments.num_rows:,} payments")
    prepared = prepare(dataset, fs)
    window = _train_window(*data_span(prepared), train_start, train_end, as_of, delay,
                           valid_days)
    bundle = train_bundle(prepared, window, params=model_params, progress=step,
                          sequence=sequence_dir,
                          identity_graph=graph_spec() if identity_graph else None)
    _save_trained(bundle, data, out, step)


def _train_window(first: datetime, last: datetime, train_start: str | None,
                  train_end: str | None, as_of: str | None, delay: int, valid_days: int) -> Any:
    """The training window from the options, for a dataset spanning [first, last]."""
    from vigil.pipeline import TrainWindow

    cutoff = last.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    default_end = cutoff - timedelta(days=delay)
    start = _date(train_start, "--train-start") or max(
        first.replace(hour=0, minute=0, second=0, microsecond=0),
        default_end - timedelta(days=28))
    end = _date(train_end, "--train-end") or default_end
    label_cutoff = _date(as_of, "--as-of") or end + timedelta(days=delay)
    return TrainWindow(start, end, label_cutoff, min(valid_days, max(0, (end - start).days - 1)))


def _save_trained(bundle: Any, data: Path, out: Path, step: Callable[[str], None]) -> None:
    bundle.training["data_path"] = str(data.resolve())
    bundle.save(out)
    step(f"saved bundle {bundle.model_version} -> {out}")
    if "validation" in bundle.metrics:
        console.print(_metrics_table("validation slice", {bundle.model_version or "model":
                                                      bundle.metrics["validation"]}))


@main.command()
@click.option("--bundle", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Model bundle folder.")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Dataset folder (or Handbook file) whose payments to score.")
@click.option("--input", "input_path", type=click.Path(path_type=Path), default=None,
              help="A payments file (Parquet or CSV) to score instead of --data.")
@click.option("--labels", "labels_path", type=click.Path(path_type=Path), default=None,
              help="Labels file for --input (needed by label-aware features).")
@click.option("--start", help="Score payments from this time on.")
@click.option("--end", help="Score payments before this time.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Parquet file of scores to write.")
def score(bundle: Path, data: Path | None, input_path: Path | None, labels_path: Path | None,
          start: str | None, end: str | None, out: Path) -> None:
    """Batch-score payments: probability, 0-100 risk score and risk level per payment.

    Features are computed over the payments given (their own history), so include earlier
    payments of the same cards for windowed features to be meaningful.

    \b
    Example:
      vigil score --bundle runs/model --input payments.parquet --labels labels.parquet \\
        --out scores.parquet
    """
    import pyarrow.parquet as pq

    from vigil.events import EventData, empty_labels, open_dataset, read_labels, read_payments
    from vigil.models import ModelBundle
    from vigil.pipeline import prepare, score_window

    if (data is None) == (input_path is None):
        raise ConfigError("give exactly one of --data (a dataset) or --input (a payments file)")
    step = _Step()
    model = ModelBundle.load(bundle)
    if data is not None:
        dataset = open_dataset(data)
    else:
        payments = read_payments(input_path)
        if labels_path is not None:
            labels = read_labels(labels_path)
        elif model.feature_set.needs_labels():
            raise ConfigError(f"the model's features ({model.feature_set.name}) use labels; "
                              "pass --labels")
        else:
            labels = empty_labels()
        dataset = EventData(payments, labels)
    step(f"building features for {dataset.payments.num_rows:,} payments")
    prepared = prepare(dataset, model.feature_set)
    table = score_window(model, prepared, _date(start, "--start"), _date(end, "--end"))
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out, compression="zstd")
    step(f"scored {table.num_rows:,} payments with {model.model_version} -> {out}")


@main.command()
@click.option("--bundle", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Model bundle folder.")
@click.option("--data", type=click.Path(path_type=Path), required=True,
              help="Dataset folder, or the Handbook's transactions file.")
@click.option("--start", help="First test day [default: the bundle's label cutoff].")
@click.option("--end", help="Day after the last test day [default: 7 days after start].")
@click.option("--keep-known-compromised", is_flag=True,
              help="Keep payments of cards whose fraud was already reported (the Handbook "
                   "protocol removes them).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the metrics as JSON here.")
def evaluate(bundle: Path, data: Path, start: str | None, end: str | None,
             keep_known_compromised: bool, json_path: Path | None) -> None:
    """Evaluate a bundle on a later test window: AUC, AP, card precision@100, recall at 0.1 %
    and 1 % false-positive rate, fraud money caught, recall per fraud scenario.

    \b
    Example:
      vigil evaluate --bundle runs/model --data data/world --start 2024-03-08 --end 2024-03-15
    """
    from vigil.events import open_dataset
    from vigil.models import ModelBundle
    from vigil.pipeline import data_span, evaluate_window, prepare

    step = _Step()
    model = ModelBundle.load(bundle)
    dataset = open_dataset(data)
    step(f"building features for {dataset.payments.num_rows:,} payments")
    prepared = prepare(dataset, model.feature_set)
    cutoff = model.training.get("window", {}).get("label_cutoff")
    begin = _date(start, "--start") or (_date(cutoff, "label cutoff") if cutoff
                                        else data_span(prepared)[0])
    finish = _date(end, "--end") or begin + timedelta(days=7)
    result = evaluate_window(model, prepared, begin, finish,
                             drop_known_compromised=not keep_known_compromised)
    console.print(_metrics_table(f"test {begin:%Y-%m-%d} to {finish:%Y-%m-%d}",
                             {model.model_version or "model": result["metrics"]}))
    scen = result.get("recall_by_scenario@1%fpr")
    if scen:
        table = Table(title="recall by scenario at 1% FPR")
        for c in ("scenario", "frauds", "flagged", "recall"):
            table.add_column(c, justify="left" if c == "scenario" else "right")
        for name, r in scen.items():
            table.add_row(name, f"{int(r['frauds'])}", f"{int(r['flagged'])}",
                          f"{r['recall']:.3f}")
        console.print(table)
    if json_path:
        _write_json(json_path, result)
        step(f"wrote {json_path}")


# --------------------------------------------------------------------------- sequence model

_MODEL_OPTIONS = ("seq_len", "dim", "layers", "heads", "fields", "entity")


@main.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Checkpoint folder to write (or to continue, with --resume).")
@click.option("--epochs", type=click.IntRange(min=1), default=4, show_default=True,
              help="Passes over every payment.")
@click.option("--max-minutes", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stop after this many minutes with a checkpoint; continue with --resume.")
@click.option("--seq-len", type=click.IntRange(min=2), default=32, show_default=True,
              help="L: the payments an embedding reads, itself included.")
@click.option("--dim", type=click.IntRange(min=2), default=32, show_default=True,
              help="Embedding width.")
@click.option("--layers", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--heads", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--fields", default=None,
              help="Token fields, comma-separated [default: every field the data's columns "
                   "allow]; known: amount, gap, hour, weekday, merchant, terminal, "
                   "merchant_new, terminal_new, device_new, ip_new, email_new, channel, "
                   "ip_country_match, merchant_country_match.")
@click.option("--entity", default="card_id", show_default=True,
              help="Whose history a sequence is (a payment column).")
@click.option("--until", help="Pre-train only on payments before this time: keep the weeks "
                              "you evaluate on out.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Windows of up to 128 positions per step.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=2e-3,
              show_default=True, help="Peak learning rate (warm-up, then cosine).")
@click.option("--pca", "pca_components", type=click.IntRange(min=0), default=8,
              show_default=True, help="Principal components of the embeddings to save for the "
                                      "gradient-boosted model (0: none).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="cuda: a GPU, with bf16 mixed precision.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True,
              help="Continue the checkpoint in --out where it stopped (its settings win).")
def pretrain(data: Path, out: Path, epochs: int, max_minutes: float | None, seq_len: int,
             dim: int, layers: int, heads: int, fields: str | None, entity: str,
             until: str | None, batch_size: int, lr: float, pca_components: int, device: str,
             seed: int, resume: bool) -> None:
    """Pre-train the sequence encoder on payments, without labels.

    A small causal transformer reads each entity's (card's) last --seq-len payments and
    learns to fill in masked fields and predict the next payment. Writes OUT/sequence.json
    (config, training record), OUT/model.safetensors, OUT/encoder.onnx (for ONNX Runtime)
    and OUT/pca.safetensors (components for the gradient-boosted model). Needs
    pip install 'vigil[deep]'. See docs/sequence.md.

    \b
    Examples:
      vigil pretrain data/world --out runs/encoder --epochs 4
      vigil pretrain ../shared/data/fraud-handbook/transactions.parquet --out runs/enc \\
        --until 2018-08-08 --fields amount,gap,hour,weekday,terminal,terminal_new \\
        --max-minutes 12
      vigil pretrain data/world --out runs/encoder --resume --epochs 6
      vigil pretrain data/world --out runs/encoder --device cuda --dim 64
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    from click.core import ParameterSource

    from vigil.events import open_dataset
    from vigil.models.sequence import (
        SequenceConfig,
        export_checkpoint_onnx,
        fit_checkpoint_pca,
        torch_device,
    )
    from vigil.models.sequence import pretrain as run_pretrain

    torch_device(device)  # a missing GPU fails here, before the data is read
    step = _Step()
    ctx = click.get_current_context()
    given = any(ctx.get_parameter_source(n) == ParameterSource.COMMANDLINE
                for n in _MODEL_OPTIONS)
    config = None
    if given or not resume:
        config = SequenceConfig(
            entity=entity, seq_len=seq_len, dim=dim, n_layers=layers, n_heads=heads,
            fields=tuple(f.strip() for f in fields.split(",") if f.strip()) if fields else None)
    step(f"reading {data}")
    payments = open_dataset(data).payments
    info: dict[str, Any] = {"path": str(data)}
    if until is not None:
        cutoff = _date(until, "--until")
        payments = payments.filter(pc.less(payments.column("ts"),
                                           pa.scalar(cutoff, pa.timestamp("us", tz="UTC"))))
        info["until"] = cutoff.isoformat()
    if payments.num_rows == 0:
        raise ConfigError(f"{data}: no payments to pre-train on"
                          + (f" before {until}" if until else ""))
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=True) as bar:
        task = bar.add_task("tokenizing", total=None)

        def show(e: dict[str, Any]) -> None:
            kind = e["event"]
            if kind == "start":
                c = e["config"]
                resumed = e["resumed_at"]
                step(f"{e['tokens']:,} payments in {e['windows']:,} windows; encoder "
                     f"{e['parameters']:,} parameters (L={c['seq_len']}, dim {c['dim']}, "
                     f"{c['n_layers']} layers); fields {', '.join(c['fields'])}"
                     + (f"; resuming at epoch {resumed['epoch'] + 1}, batch {resumed['batch']}"
                        if resumed else ""))
            elif kind == "batch":
                bar.update(task, completed=e["batch"], total=e["batches"],
                           description=f"epoch {e['epoch']}  loss {e['loss']:.3f}  "
                                       f"{e['events_per_s']:,.0f} events/s")
            elif kind == "epoch":
                held = e["valid_loss"]
                step(f"epoch {e['epoch']}/{e['epochs']}: loss {e['train_loss']:.4f}, held-out "
                     + (f"{held:.4f}" if held is not None else "n/a")
                     + f", {e['events_per_s']:,} events/s, {e['seconds']:.0f} s")
            elif kind == "stopped":
                step(f"--max-minutes reached at epoch {e['epoch']}, batch {e['batch']}/"
                     f"{e['batches']}; checkpoint saved (continue with --resume)")

        doc = run_pretrain(payments, out, config=config, epochs=epochs, max_minutes=max_minutes,
                           batch_size=batch_size, lr=lr, device=device, seed=seed,
                           resume=resume, data_info=info, progress=show)
    step("exporting the encoder to ONNX")
    export_checkpoint_onnx(out)
    if pca_components:
        step(f"fitting {pca_components} principal components of the embeddings")
        pca = fit_checkpoint_pca(out, payments, n_components=pca_components, seed=seed,
                                 device=device)
        step(f"they explain {pca.explained_variance_ratio_.sum():.0%} of the variance")
    t = doc["training"]
    best = doc["metrics"]["best_valid_loss"]
    click.echo(f"checkpoint -> {out} ({t['state']['epoch']}/{t['epochs']} epochs, "
               f"{t['state']['seconds'] / 60:.1f} min, {t['events_per_s']:,.0f} events/s"
               + (f", best held-out loss {best:.4f}" if best is not None else "") + ")")


# --------------------------------------------------------------------------- reports

def _resolve_run(run: Path, data: Path | None, model: str | None) -> tuple[Path, Path]:
    """A bundle folder and its data, from RUN: a bundle folder, or a run folder (``vigil
    demo``'s) holding ``bundles/`` and ``data/``."""
    if (run / "bundle.json").is_file():
        if model is not None:
            raise ConfigError(f"{run} is a bundle folder; --model picks a bundle of a run "
                              "folder")
        bundle = run
        if data is None:
            recorded = json.loads((run / "bundle.json").read_text()).get("training", {}) \
                .get("data_path")
            if not recorded:
                raise ConfigError(f"{run}: the bundle does not record its data; pass --data")
            data = Path(recorded)
            if not data.exists():
                raise ConfigError(f"{run}: the bundle's data {data} is gone; pass --data")
        return bundle, data
    bundles = run / "bundles"
    if not bundles.is_dir():
        raise ConfigError(f"{run}: neither a model bundle (bundle.json) nor a run folder "
                          "(bundles/)")
    names = sorted(p.name for p in bundles.iterdir() if (p / "bundle.json").is_file())
    if model is None:
        model = "payments_default" if "payments_default" in names else \
            names[0] if len(names) == 1 else None
        if model is None:
            raise ConfigError(f"{run}: several bundles ({', '.join(names)}); pick one with "
                              "--model")
    if model not in names:
        raise ConfigError(f"{run}: no bundle named {model!r} (there are: "
                          f"{', '.join(names) or 'none'})")
    data = data or run / "data"
    if not data.exists():
        raise ConfigError(f"{run}: no data folder; pass --data")
    return bundles / model, data


def _test_window(bundles: list[Any], prepared: Any, start: str | None,
                 end: str | None) -> tuple[datetime, datetime]:
    """The test window: from the latest label cutoff of the models (or --start), 7 days
    (or to --end), never past the data."""
    from vigil.pipeline import data_span

    first, last = data_span(prepared)
    cutoffs = [_date(c, "label cutoff") for b in bundles
               if (c := (b.training.get("window") or {}).get("label_cutoff"))]
    begin = _date(start, "--start") or (max(cutoffs) if cutoffs else first)
    if start is None and begin > last:
        raise ConfigError(f"the model's label cutoff {begin:%Y-%m-%d %H:%M} is after the last "
                          f"payment ({last:%Y-%m-%d}): nothing is left to test on; pass "
                          "--start, or train with an earlier --train-end (or --as-of)")
    finish = _date(end, "--end") or min(begin + timedelta(days=7), last + timedelta(seconds=1))
    if finish <= begin:
        raise ConfigError(f"the test window is empty: {begin:%Y-%m-%d} to {finish:%Y-%m-%d} "
                          f"(the data ends {last:%Y-%m-%d})")
    return begin, finish


_report_options = [
    click.option("--start", help="First test day [default: the model's label cutoff]."),
    click.option("--end", help="Day after the last test day [default: 7 days after start]."),
    click.option("--costs", "costs_path", type=click.Path(dir_okay=False, path_type=Path),
                 help="Cost model (TOML) [default: vigil's, printed in the report]."),
    click.option("--segment", "segments", multiple=True, metavar="COLUMN",
                 help="Also slice by this payment column or feature (repeatable)."),
    click.option("--bootstrap", "replicates", type=click.IntRange(min=20), default=200,
                 show_default=True, help="Card-bootstrap replicates for bands and intervals."),
    click.option("--keep-known-compromised", is_flag=True,
                 help="Keep payments of cards whose fraud was already reported."),
]


def _with_report_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_report_options):
        fn = option(fn)
    return fn


def _look(html: Path, screenshot: Path | None, step: Callable[[str], None]) -> None:
    if screenshot is None:
        return
    from vigil.reports._browser import check_page

    step("opening the page in headless Chromium")
    seen = check_page(html, screenshot=screenshot)
    if not seen.ok:
        raise ConfigError(f"{html}: " + "; ".join(seen.problems()))
    step(f"{len(seen.charts)} charts drew, no console errors; screenshot -> {screenshot}")


@main.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="Dataset to test on [default: the run's data/, or the data the bundle "
                   "was trained on].")
@click.option("--model", default=None, help="Bundle of a run folder [default: "
                                            "payments_default].")
@_with_report_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the report [default: RUN/report].")
@click.option("--screenshot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also open the page in headless Chromium, check it and save a PNG.")
def report(run: Path, data: Path | None, model: str | None, start: str | None,
           end: str | None, costs_path: Path | None, segments: tuple[str, ...],
           replicates: int, keep_known_compromised: bool, out: Path | None,
           screenshot: Path | None) -> None:
    """Write a model's evaluation report: one self-contained HTML page and PNG charts.

    RUN is a model bundle (from `vigil train`) or a run folder (from `vigil demo`). The report
    tests the model on the week after its label cutoff: curves with bootstrap bands,
    calibration, a threshold table and the best block and review thresholds under a cost
    model (written as rules too), metrics per day, segment and fraud scenario, explanations,
    and a model card.

    \b
    Cost file (TOML; every key optional):
      chargeback_fee = 15.0           # per fraud let through, on top of its amount
      margin = 0.03                   # share of a blocked good payment's amount lost
      friction = 10.0                 # cost of blocking a good customer
      review_cost = 3.0               # per manual review
      review_capacity_per_day = 50
      review_catch_rate = 1.0         # share of reviewed frauds a reviewer stops

    \b
    Examples:
      vigil report runs/demo
      vigil report runs/model --data data/world --costs costs.toml --segment merchant_id
      vigil report runs/demo --screenshot report.png
    """
    from vigil.events import open_dataset
    from vigil.models import ModelBundle
    from vigil.pipeline import prepare
    from vigil.reports import CostModel, build_report

    step = _Step()
    bundle_dir, data_path = _resolve_run(run, data, model)
    costs = CostModel.load(costs_path) if costs_path else CostModel()
    bundle = ModelBundle.load(bundle_dir)
    step(f"reading {data_path}")
    dataset = open_dataset(data_path)
    step(f"building {len(bundle.feature_names)} features for {dataset.payments.num_rows:,} "
         "payments")
    prepared = prepare(dataset, bundle.feature_set)
    begin, finish = _test_window([bundle], prepared, start, end)
    files, doc = build_report(bundle, prepared, begin, finish, out or run / "report",
                              costs=costs, segments=segments, replicates=replicates,
                              drop_known_compromised=not keep_known_compromised,
                              data_name=str(data_path), progress=step)
    _look(files.html, screenshot, step)
    p = doc["policy"]
    console.print(Text(
        f"AUC {doc['metrics']['auc']['value']:.3f}, AP {doc['metrics']['ap']['value']:.3f}; "
        f"best policy: block > {p['block']}"
        + (f", review > {p['review']}" if p["review"] < p["block"] else "")
        + f" ({p['reviews_per_day']:.1f} reviews/day, net benefit {p['net_benefit']:,.0f})"))
    click.echo(f"report: {files.html}")


@main.command()
@click.argument("bundle_a", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("bundle_b", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--on", "data", type=click.Path(path_type=Path), required=True,
              help="Dataset both models are tested on.")
@_with_report_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("compare"), show_default=True, help="Folder for the comparison.")
@click.option("--screenshot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also open the page in headless Chromium, check it and save a PNG.")
def compare(bundle_a: Path, bundle_b: Path, data: Path, start: str | None, end: str | None,
            costs_path: Path | None, segments: tuple[str, ...], replicates: int,
            keep_known_compromised: bool, out: Path, screenshot: Path | None) -> None:
    """Champion (A) against challenger (B) on the same test payments.

    Both models score the same window (from the later of their label cutoffs). Differences
    (B − A) come with 95 % intervals from a paired card bootstrap; segments and fraud
    scenarios show where each model wins; each model's best thresholds are priced with the
    same cost model. Writes compare.html, compare.json and figures/*.png.

    \b
    Example:
      vigil compare runs/demo/bundles/handbook_baseline runs/demo/bundles/payments_default \\
        --on runs/demo/data --out runs/demo/compare
    """
    from vigil.events import open_dataset
    from vigil.models import ModelBundle
    from vigil.pipeline import prepare
    from vigil.reports import CostModel
    from vigil.reports._compare import build_comparison

    step = _Step()
    costs = CostModel.load(costs_path) if costs_path else CostModel()
    for path in (bundle_a, bundle_b):
        if not (path / "bundle.json").is_file():
            raise ConfigError(f"{path}: not a model bundle (bundle.json is missing)")
    a, b = ModelBundle.load(bundle_a), ModelBundle.load(bundle_b)
    step(f"reading {data}")
    dataset = open_dataset(data)
    step(f"building features for {dataset.payments.num_rows:,} payments")
    prep_a = prepare(dataset, a.feature_set)
    prep_b = prep_a if b.feature_set == a.feature_set else prepare(dataset, b.feature_set)
    begin, finish = _test_window([a, b], prep_a, start, end)
    files, doc = build_comparison(a, prep_a, b, prep_b, begin, finish, out, costs=costs,
                                  segments=segments, replicates=replicates,
                                  drop_known_compromised=not keep_known_compromised,
                                  data_name=str(data), progress=step)
    _look(files.html, screenshot, step)
    console.print(Text(doc["verdict"]))
    click.echo(f"comparison: {files.html}")


@main.group()
def bench() -> None:
    """Benchmarks: each prints a table and writes bench/results/NAME.json.

    \b
    Example:
      vigil bench handbook --data ../shared/data/fraud-handbook/transactions.parquet
    """


@bench.command("handbook")
@click.option("--data", type=click.Path(path_type=Path), required=True,
              help="The Handbook's transactions.parquet.")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("bench/results"), show_default=True)
@click.option("--quick", is_flag=True, help="One parameter setting per grid (minutes less).")
def bench_handbook(data: Path, out_dir: Path, quick: bool) -> None:
    """The Fraud Detection Handbook benchmark, with its exact protocol.

    Protocol check (its 15 inputs and XGBoost grid against its published figures), then
    vigil's features and model chosen on the validation folds, the all-history variant and
    the oracles. Writes OUT_DIR/handbook.json and OUT_DIR/handbook.md.

    \b
    Example:
      vigil bench handbook --data ../shared/data/fraud-handbook/transactions.parquet
    """
    from vigil.bench import run_handbook_benchmark

    result = run_handbook_benchmark(data, out_dir=out_dir, quick=quick, progress=_Step())
    click.echo((out_dir / "handbook.md").read_text())
    check = result["variants"]["handbook_protocol_check"]
    if check.get("passed") is False:
        raise VigilError("protocol check failed: the Handbook's settings did not reproduce its "
                         "published figures within the tolerance")


@bench.command("sequence")
@click.option("--data", type=click.Path(path_type=Path), required=True,
              help="The Handbook's transactions.parquet.")
@click.option("--encoder", "encoder_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Use this pre-trained checkpoint (from `vigil pretrain`) "
                                 "instead of pre-training one.")
@click.option("--pretrain-minutes", type=click.FloatRange(min=0, min_open=True), default=12.0,
              show_default=True, help="Time budget for pre-training when --encoder is not "
                                      "given.")
@click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("runs/sequence-bench"), show_default=True,
              help="Where the pre-trained encoder goes (a second run resumes it).")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("bench/results"), show_default=True)
def bench_sequence(data: Path, encoder_dir: Path | None, pretrain_minutes: float,
                   work_dir: Path, out_dir: Path) -> None:
    """The sequence model against the GBDT alone, on the Handbook's protocol.

    Pre-trains the encoder on payments before the first test week (or uses --encoder),
    then compares on the same folds: the GBDT alone, the GBDT with the embeddings (principal
    components chosen on the validation folds), and a fine-tuned head on the encoder (with
    and without pre-training), beside the Handbook's LSTM. Also times one payment through
    the encoder under ONNX Runtime and the GBDT. Writes OUT_DIR/sequence_handbook.json and
    .md. Needs pip install 'vigil[deep]'.

    \b
    Example:
      vigil bench sequence --data ../shared/data/fraud-handbook/transactions.parquet
      vigil bench sequence --data ../shared/data/fraud-handbook/transactions.parquet \\
        --encoder runs/sequence-bench/encoder
    """
    from vigil.bench._sequence import run_sequence_benchmark, sequence_markdown

    result = run_sequence_benchmark(data, out_dir=out_dir, encoder_dir=encoder_dir,
                                    work_dir=work_dir, pretrain_minutes=pretrain_minutes,
                                    progress=_Step())
    click.echo(sequence_markdown(result))


@bench.command("speed")
@click.option("--data", type=click.Path(path_type=Path), required=True,
              help="The Handbook's transactions.parquet.")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("bench/results"), show_default=True)
@click.option("--repeat", type=click.IntRange(min=1), default=3, show_default=True,
              help="Runs per engine; the median is reported.")
def bench_speed(data: Path, out_dir: Path, repeat: int) -> None:
    """Offline feature speed (DuckDB vs pandas rolling windows) and training time per fold.

    \b
    Example:
      vigil bench speed --data ../shared/data/fraud-handbook/transactions.parquet
    """
    from vigil.bench import run_speed_benchmark

    run_speed_benchmark(data, out_dir=out_dir, repeat=repeat, progress=_Step())
    click.echo((out_dir / "speed.md").read_text())


@bench.command("serving")
@click.option("--days", type=click.IntRange(min=10), default=45, show_default=True,
              help="Days of the simulated world.")
@click.option("--cards", type=click.IntRange(min=100), default=2000, show_default=True)
@click.option("--seconds", type=click.FloatRange(min=1), default=20.0, show_default=True,
              help="How long the HTTP load runs.")
@click.option("--concurrency", type=click.IntRange(min=1), default=16, show_default=True,
              help="Requests in flight during the closed-loop HTTP load (the most it takes).")
@click.option("--rate", type=click.FloatRange(min=1), default=1000.0, show_default=True,
              help="Payments per second of the open-loop HTTP load (latency from when each "
                   "payment was due).")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("bench/results"), show_default=True)
@click.option("--sequence", "encoder_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Also score with this sequence encoder checkpoint in the "
              "bundle (pre-trained there first, for --pretrain-minutes, when the folder "
              "holds none; needs PyTorch).")
@click.option("--pretrain-minutes", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True, help="With --sequence: pre-training budget.")
def bench_serving(days: int, cards: int, seconds: float, concurrency: int, rate: float,
                  out_dir: Path, encoder_dir: Path | None, pretrain_minutes: float) -> None:
    """Real-time speed: in-process scoring, online features, replay, HTTP under load.

    \b
    Example:
      vigil bench serving --seconds 20 --concurrency 16 --rate 1000
      vigil bench serving --sequence runs/bench-encoder --pretrain-minutes 1
    """
    from vigil.bench._serving import run_serving_benchmark, serving_markdown

    result = run_serving_benchmark(days=days, cards=cards, http_seconds=seconds,
                                   concurrency=concurrency, http_rate=rate, out_dir=out_dir,
                                   encoder_dir=encoder_dir,
                                   pretrain_minutes=pretrain_minutes, progress=_Step())
    click.echo(serving_markdown(result))


@bench.command("spark")
@click.option("--preset", type=click.Choice(["small", "medium", "large"]), default="medium",
              show_default=True, help="Realistic-world preset to simulate.")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="A dataset folder to use instead of simulating one.")
@click.option("--memory", default="8g", show_default=True,
              help="Spark driver memory (the executor in local mode).")
@click.option("--timeout", type=click.FloatRange(min=1), default=None,
              help="Stop an engine that runs longer than this many seconds (recorded as "
                   "not finished).")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("bench/results"), show_default=True)
def bench_spark(preset: str, data: Path | None, memory: str, timeout: float | None,
                out_dir: Path) -> None:
    """DuckDB against Spark local[1] and local[2]: the default features, end to end.

    \b
    Example:
      vigil bench spark --preset medium
      vigil bench spark --preset large --memory 12g
    """
    from vigil.bench._spark import run_spark_benchmark, spark_markdown

    result = run_spark_benchmark(preset=preset, data=data, out_dir=out_dir, memory=memory,
                                 timeout=timeout, progress=_Step())
    click.echo(spark_markdown(result))


@bench.command("scenarios")
@click.option("--preset", type=click.Choice(["small", "medium", "large"]), default="medium",
              show_default=True, help="Realistic-world preset to simulate.")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="A realistic-world dataset folder (with truth.parquet) to use "
                                 "instead of simulating one.")
@click.option("--seed", type=int, default=7, show_default=True, help="Seed of the simulation.")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("bench/results"), show_default=True)
@click.option("--sequence", "encoder_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Also train the realistic set with this sequence encoder's "
              "principal components (pre-trained there first, on the payments before the "
              "labels' cutoff, when the folder holds none; needs PyTorch).")
@click.option("--pretrain-minutes", type=click.FloatRange(min=0, min_open=True), default=10.0,
              show_default=True, help="With --sequence: pre-training budget.")
def bench_scenarios(preset: str, data: Path | None, seed: int, out_dir: Path,
                    encoder_dir: Path | None, pretrain_minutes: float) -> None:
    """What our models miss: recall per fraud scenario on the realistic world.

    Trains the Handbook's inputs, the default set and the realistic set on the first two
    months (labels as known a week later), then reports per-scenario recall at a 1 % review
    rate and at the block threshold on the next month and week by week, and the decay of a
    model trained on the first three weeks only. Writes OUT_DIR/scenarios_PRESET.json and .md
    (scenarios_data.* with --data).

    \b
    Example:
      vigil bench scenarios --preset medium
      vigil bench scenarios --preset medium --sequence runs/encoder-medium
    """
    from vigil.bench._scenarios import run_scenarios_benchmark, scenarios_markdown

    result = run_scenarios_benchmark(preset=preset, data=data, seed=seed, out_dir=out_dir,
                                     sequence=encoder_dir, pretrain_minutes=pretrain_minutes,
                                     progress=_Step())
    click.echo(scenarios_markdown(result))


@bench.command("identity")
@click.option("--only", "parts", multiple=True,
              type=click.Choice(["documents", "faces", "sessions", "graph"]),
              help="Run only these parts (repeatable); the others keep their last figures.")
@click.option("--documents", "documents_per_level", type=click.IntRange(min=1), default=500,
              show_default=True, help="Generated documents per degradation level.")
@click.option("--faces", "faces_dir", type=click.Path(exists=True, file_okay=False,
              path_type=Path), default=None,
              help="Face photographs, one folder per person [default: ../shared/data/faces].")
@click.option("--level", "levels", multiple=True,
              type=click.Choice(["clean", "mild", "moderate", "severe"]),
              help="Degradation levels to read (repeatable) [default: all four]; the levels "
                   "not run keep their last figures.")
@click.option("--sessions", type=click.IntRange(min=2), default=40, show_default=True,
              help="Whole sessions to time.")
@click.option("--processes", type=click.IntRange(min=1), default=2, show_default=True,
              help="Worker processes (one OCR thread each) for the documents and for the "
                   "sessions-per-minute figure.")
@click.option("--graph-preset", type=click.Choice(["small", "medium", "large"]),
              default="medium", show_default=True,
              help="Realistic-world preset for the identity graph's lift (--only graph; "
                   "about 20 minutes on 2 cores for medium).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("bench/results"), show_default=True)
def bench_identity(parts: tuple[str, ...], documents_per_level: int, faces_dir: Path | None,
                   levels: tuple[str, ...], sessions: int, processes: int, graph_preset: str,
                   seed: int, out_dir: Path) -> None:
    """Identity verification: MRZ reads, face matching, whole sessions, the identity graph.

    Reads the MRZ of generated passports and ID cards at four degradation levels (before and
    after repair; wrong identities accepted), matches faces on every pair of the photographs
    and degraded copies at the chosen threshold, times whole sessions through the real checks,
    and, with --only graph, measures the identity graph's lift on rings and synthetic
    identities. Writes OUT_DIR/identity.json and .md. Needs pip install 'vigil[identity]'.

    \b
    Example:
      vigil bench identity
      vigil bench identity --only documents --documents 100
      vigil bench identity --only documents --level severe --processes 1
      vigil bench identity --only faces --faces ../shared/data/faces
      vigil bench identity --only graph --graph-preset medium
    """
    from vigil.bench._identity import DEFAULT_PARTS, identity_markdown, run_identity_benchmark

    result = run_identity_benchmark(parts=parts or DEFAULT_PARTS,
                                    documents_per_level=documents_per_level,
                                    levels=levels or None, faces_dir=faces_dir,
                                    sessions=sessions, processes=processes,
                                    graph_preset=graph_preset, seed=seed, out_dir=out_dir,
                                    progress=_Step())
    click.echo(identity_markdown(result))


@main.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("runs/demo"), show_default=True, help="Folder for every artifact.")
@click.option("--world", type=click.Choice(["realistic", "handbook"]), default="realistic",
              show_default=True, help="The realistic world (devices, IPs, accounts, seven "
                                      "frauds, labels weeks late) or the Handbook's.")
@click.option("--days", type=click.IntRange(min=40), default=90, show_default=True)
@click.option("--customers", type=click.IntRange(min=50), default=None,
              help="Realistic world: number of customers [default: 8000].")
@click.option("--cards", type=click.IntRange(min=50), default=None,
              help="Handbook world: number of cards [default: 5000].")
@click.option("--seed", type=int, default=7, show_default=True)
def demo(out: Path, world: str, days: int, customers: int | None, cards: int | None,
         seed: int) -> None:
    """The main job end to end on generated data: simulate, build features, train, evaluate.

    Simulates the realistic world (or, with --world handbook, the Fraud Detection Handbook's),
    trains the Handbook's baseline features and vigil's default set on the same window, tests
    both on the last week after a 7-day label delay, and prints the metrics and the recall
    per fraud scenario; replays the last day through a real `vigil serve`; writes the default
    model's report (report/) and its comparison with the baseline (compare/), and prints the
    report's path.

    \b
    Examples:
      vigil demo --out runs/demo
      vigil demo --out runs/demo-handbook --world handbook --days 90 --cards 5000
    """
    from vigil.pipeline import run_demo

    step = _Step()
    with _day_progress("simulating") as progress:
        result = run_demo(out, world=world, days=days, cards=cards, customers=customers,
                          seed=seed, progress=step, day_progress=progress)
    console.print(_metrics_table(
        f"test week {result['test']['start'][:10]} to {result['test']['end'][:10]} "
        f"(trained {result['train']['start'][:10]} to {result['train']['end'][:10]}, labels as "
        f"of {result['train']['label_cutoff'][:10]})",
        {name: r["metrics"] for name, r in result["models"].items()}))
    _print_scenarios(result["models"])
    serving = result.get("serving")
    if serving:
        _print_serving(serving)
    click.echo(f"artifacts in {out}/: data/, features/, bundles/, scores.parquet, "
               "metrics.json, report/, compare/"
               + (", serve/ (the service's store)" if serving else ""))
    rep = result.get("report")
    if rep:
        console.print(Text(rep["verdict"]))
        click.echo(f"comparison: {rep['compare']}")
        click.echo(f"report: {rep['html']}")


def _print_scenarios(models: dict[str, Any]) -> None:
    per_model = {name: r.get("recall_by_scenario@1%fpr") for name, r in models.items()}
    if not all(per_model.values()):
        return
    table = Table(title="recall per fraud scenario at 1 % FPR (reported frauds)",
                  title_justify="left")
    table.add_column("scenario")
    table.add_column("frauds", justify="right")
    for name in per_model:
        table.add_column(name, justify="right")
    first = next(iter(per_model.values()))
    for scenario, row in first.items():
        cells = [f"{per_model[n].get(scenario, {}).get('recall', float('nan')):.3f}"
                 for n in per_model]
        table.add_row(scenario, f"{int(row['frauds']):,}", *cells)
    console.print(table)


def _print_serving(s: dict[str, Any]) -> None:
    lat = s["latency_ms"]
    console.print(f"one day through vigil serve: {s['answered']:,} payments in "
                  f"{s['seconds']:.0f} s ({s['payments_per_s']:,.0f}/s); latency p50 "
                  f"{lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms, p99 {lat['p99']:.1f} ms",
                  highlight=False)
    table = Table(title="decisions")
    table.add_column("decision")
    table.add_column("payments", justify="right")
    for decision, n in s["decisions"].items():
        table.add_row(decision, f"{n:,}")
    console.print(table)
    if s["rules"]:
        console.print("rules fired: " + ", ".join(f"{r} ({n:,})" for r, n in s["rules"].items()),
                      highlight=False, emoji=False)
    for ex in s["examples"]:
        console.print(Text(f"{ex['id']}: risk {ex['risk_score']}, {ex['decision']}: "
                           + "; ".join(ex["reasons"])))


# --------------------------------------------------------------------------- serving

_STORE_OPTION = click.option(
    "--store", "store_url", default="vigil.db", show_default=True,
    help="The store: a SQLite file path or URL, or postgresql://user@host/db.")


@main.command()
@click.option("--bundle", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Model bundle folder (from `vigil train`).")
@_STORE_OPTION
@click.option("--redis", "redis_url", default=None,
              help="Keep the online feature state in Redis (redis://host:port/db); needed "
                   "for --workers above 1.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Server processes.")
@click.option("--snapshot-every", type=click.IntRange(min=1), default=50_000,
              show_default=True, help="Save the in-process state every N payments.")
def serve(bundle: Path, store_url: str, redis_url: str | None, host: str, port: int,
          workers: int, snapshot_every: int) -> None:
    """Run the scoring API (OpenAPI docs at /docs).

    On start the store is migrated and, with the in-process state, the online features are
    rebuilt from it. Create an API key first with `vigil keys create`. Identity verification
    (docs/identity.md) is on when VIGIL_IDENTITY_KEY holds a key from `vigil identity key`.

    \b
    Example:
      vigil keys create --scope admin --name ops --store vigil.db
      vigil serve --bundle runs/demo/bundles/vigil --store vigil.db --port 8000
    """
    import os

    import uvicorn

    from vigil.models import ModelBundle
    from vigil.scoring import check_servable
    from vigil.serving import Settings, check_workers
    from vigil.store import Store

    check_workers(workers, redis_url)
    # fail here, in one line, rather than in every worker
    check_servable(ModelBundle.load(bundle))
    if os.environ.get("VIGIL_IDENTITY_KEY"):
        _key_ring(os.environ["VIGIL_IDENTITY_KEY"])  # the same for a malformed identity key
    Store.open(store_url, migrate=True).close()
    settings = Settings(bundle, store_url, redis_url, snapshot_every)
    os.environ.update(settings.to_env())
    err.print(f"serving {bundle} on http://{host}:{port} ({workers} worker"
              f"{'s' if workers > 1 else ''}, {'Redis' if redis_url else 'in-process'} "
              "state); API docs at /docs", soft_wrap=True)
    uvicorn.run("vigil.serving:app_from_env", factory=True, host=host, port=port,
                workers=workers, log_level="warning")


@main.group()
def keys() -> None:
    """API keys: create (the secret is shown once), list, revoke."""


@keys.command("create")
@click.option("--scope", type=click.Choice(["score", "admin"]), required=True,
              help="score: score payments and send labels; admin: also reviews, lists, rules.")
@click.option("--name", required=True, help="Who or what uses the key.")
@click.option("--tenant", default="default", show_default=True,
              help="Whose identity verification sessions the key sees (e.g. acme).")
@_STORE_OPTION
def keys_create(scope: str, name: str, tenant: str, store_url: str) -> None:
    """Create an API key and print its secret, which is stored only as a hash.

    \b
    Examples:
      vigil keys create --scope score --name checkout --store vigil.db
      vigil keys create --scope score --name acme-app --tenant acme --store vigil.db
    """
    from vigil.store import Store

    store = Store.open(store_url, migrate=True)
    try:
        key_id, secret = store.create_api_key(scope, name, tenant=tenant)
    finally:
        store.close()
    err.print(f"key {key_id} ({scope}, {name}, tenant {tenant}); the secret is shown once, "
              "keep it now:", soft_wrap=True)
    click.echo(secret)


@keys.command("list")
@_STORE_OPTION
def keys_list(store_url: str) -> None:
    """List API keys (never their secrets).

    \b
    Example:
      vigil keys list --store vigil.db
    """
    from vigil.store import Store

    store = Store.open(store_url, migrate=True)
    try:
        table = Table(title="API keys")
        for col in ("id", "prefix", "scope", "tenant", "name", "created", "revoked"):
            table.add_column(col)
        for k in store.list_api_keys():
            table.add_row(str(k.id), k.prefix, k.scope, k.tenant, k.name,
                          f"{k.created_at:%Y-%m-%d %H:%M}",
                          f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "")
    finally:
        store.close()
    console.print(table)


@keys.command("revoke")
@click.argument("key_id", type=int)
@_STORE_OPTION
def keys_revoke(key_id: int, store_url: str) -> None:
    """Revoke an API key (running services stop accepting it within 30 s).

    \b
    Example:
      vigil keys revoke 3 --store vigil.db
    """
    from vigil.store import Store

    store = Store.open(store_url, migrate=True)
    try:
        key = store.revoke_api_key(key_id)
    finally:
        store.close()
    err.print(f"revoked key {key.id} ({key.scope}, {key.name})")


# --------------------------------------------------------------------------- rules


@main.group()
def rules() -> None:
    """Rules: check a rules file, backtest it on history with labels.

    A rule is ACTION if CONDITION, one per line; see docs/rules.md.

    \b
    Example:
      vigil rules check rules.txt --features default --list suspicious_emails=emails.txt
      vigil rules backtest rules.txt --history history.parquet --labels labels.parquet
    """


def _rule_lists(items: tuple[str, ...], *, need_members: bool) -> tuple[Any, list[str]]:
    """``--list NAME=FILE`` (members from a file) or ``--list NAME`` (declared only)."""
    from vigil.rules import InMemoryLists, read_list

    lists = InMemoryLists()
    declared: list[str] = []
    for item in items:
        name, has_file, path = item.partition("=")
        name = name.strip()
        if not name:
            raise ConfigError(f"--list '{item}': write NAME=FILE or NAME, e.g. "
                              "--list suspicious_emails=emails.txt")
        if has_file:
            lists.add(name, *read_list(path.strip()))
        elif need_members:
            raise ConfigError(f"--list {name}: a backtest needs the list's members; write "
                              f"--list {name}=FILE (one value per line)")
        else:
            lists.add(name)
        declared.append(name.lstrip("@"))
    return lists, declared


def _rules_text(path: Path) -> str:
    from vigil._errors import DataFileError

    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFileError(f"{path}: cannot read the rules ({exc})") from exc


def _read_history(path: Path) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from vigil._errors import DataFileError

    if not path.exists():
        raise DataFileError(f"{path}: no such file or folder")
    try:
        return pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataFileError(f"{path}: not a readable Parquet file") from exc


@rules.command("check")
@click.argument("rules_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--features", "feature_spec", default="default", show_default=True,
              help="Feature set whose names rules may read: built-in name or .toml/.json.")
@click.option("--list", "list_specs", multiple=True, metavar="NAME[=FILE]",
              help="A list rules may use (@NAME), with its members from FILE (one per line) "
                   "or declared only. Repeatable.")
def rules_check(rules_file: Path, feature_spec: str, list_specs: tuple[str, ...]) -> None:
    """Check a rules file: syntax, attributes, lists and types; print the evaluation order.

    Rules may read payment fields, the features of --features, risk_score (number) and
    risk_level (string). The first problem is reported with its line and column.

    \b
    Example:
      vigil rules check rules.txt --features default --list suspicious_emails=emails.txt \\
        --list trusted_cards
    """
    from vigil.rules import compile_rules, payment_attributes

    _, names = _rule_lists(list_specs, need_members=False)  # reads the files: they must exist
    ruleset = compile_rules(_rules_text(rules_file),
                            attributes=payment_attributes(_feature_set(feature_spec)),
                            lists=names, source=str(rules_file))
    click.echo(f"{rules_file}: {len(ruleset)} rules, valid; in evaluation order:")
    for i, rule in enumerate(ruleset.in_order, start=1):
        click.echo(f"  {i:>3}. {rule.id} (line {rule.line}): {rule.action} if {rule.condition}")


@rules.command("backtest")
@click.argument("rules_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--history", type=click.Path(path_type=Path), required=True,
              help="Parquet: payment_id, ts, amount and a column per attribute the rules read.")
@click.option("--labels", type=click.Path(path_type=Path), required=True,
              help="Labels (payment_id, kind, is_fraud, reported_at): Parquet or CSV.")
@click.option("--baseline", type=click.Path(dir_okay=False, path_type=Path),
              help="The rules in force, to compare against.")
@click.option("--list", "list_specs", multiple=True, metavar="NAME=FILE",
              help="Members of list @NAME, one value per line. Repeatable.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the full report as JSON here.")
def rules_backtest(rules_file: Path, history: Path, labels: Path, baseline: Path | None,
                   list_specs: tuple[str, ...], json_path: Path | None) -> None:
    """Replay history through the rules: fraud caught, good payments blocked, review load.

    Rules read the history's columns (numbers, strings, booleans). Per rule (the payments
    it decided) and for the set: fraud blocked and sent to review, good payments blocked and
    sent to review, with money, precision, and reviews per day; with --baseline, the same for
    the rules in force and the difference.

    \b
    Example:
      vigil rules backtest rules.txt --history history.parquet --labels data/world/labels.parquet \\
        --baseline rules_in_force.txt --list trusted_cards=cards.txt --json backtest.json
    """
    from rich import box
    from rich.text import Text

    from vigil.events import read_labels
    from vigil.rules import (
        backtest,
        backtest_tables,
        compile_rules,
        payment_attributes,
        schema_attributes,
    )

    lists, names = _rule_lists(list_specs, need_members=True)
    table = _read_history(history)
    # the history's columns, with their types; a payment field or default feature the history
    # lacks is still a known name, so the error says the column is missing, not the name unknown
    attributes = {**payment_attributes(_feature_set("default")),
                  **schema_attributes(table.schema)}
    ruleset = compile_rules(_rules_text(rules_file), attributes=attributes, lists=names,
                            source=str(rules_file))
    base = None
    if baseline is not None:
        base = compile_rules(_rules_text(baseline), attributes=attributes, lists=names,
                             source=str(baseline))
    report = backtest(ruleset, table, read_labels(labels), lists=lists, baseline=base)
    for title, header, rows in backtest_tables(report):
        out = Table(title=Text(title), title_justify="left", box=box.SIMPLE_HEAD,
                    collapse_padding=True, pad_edge=False)
        for i, name in enumerate(header):
            left = i == 0 or name == "action"
            # fold rather than cut: an id or an amount shown in part would mislead
            out.add_column(name, justify="left" if left else "right", overflow="fold",
                           min_width=max(len(row[i]) for row in rows) if i == 0 else None)
        for row in rows:
            out.add_row(*(Text(cell) for cell in row))
        console.print(out)
    if json_path:
        _write_json(json_path, report)
        click.echo(f"wrote {json_path}")


# --------------------------------------------------------------------------- identity

_IDENTITY_KEY_OPTION = click.option(
    "--key", "identity_key", envvar="VIGIL_IDENTITY_KEY", show_envvar=True, default=None,
    help="The identity key ring (from `vigil identity key`; `new,old` while rotating).")


def _key_ring(text: str | None) -> Any:
    from vigil.identity import KeyRing

    if not text:
        raise ConfigError("no identity key: set VIGIL_IDENTITY_KEY (or pass --key) to the "
                          "output of `vigil identity key`")
    return KeyRing.from_text(text)


def _identity_sessions(store_url: str, identity_key: str | None) -> Any:
    from vigil.identity import VerificationSessions
    from vigil.store import Store

    keys = _key_ring(identity_key)
    return VerificationSessions(Store.open(store_url, migrate=True), keys)


def _read_image(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{what} {path}: {exc.strerror or exc}") from exc


def _parse_dob(value: str | None) -> Any:
    from datetime import date

    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"--dob {value!r}: write YYYY-MM-DD, e.g. 1990-01-31") from None


def _print_session(view: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(view, indent=2, default=str))
        return
    line = f"{view.get('id', 'session')}: {view['status']}"
    error = view.get("last_error")
    if error:
        line += f" ({error['code']}: {error['reason']})"
    out = view.get("verified_outputs")
    if out:
        parts = [out.get("name"), out.get("document_type"), out.get("issuing_country"),
                 out.get("document_number"), out.get("dob") and f"born {out['dob']}",
                 out.get("expiration_date") and f"expires {out['expiration_date']}",
                 out.get("id_number") and f"ID number {out['id_number']} verified"]
        line += ": " + ", ".join(str(p) for p in parts if p)
    if view.get("redaction"):
        line += " [redacted]"
    click.echo(line)
    for insight in view.get("insights") or []:
        click.echo(f"  insight ({insight['level']}): {insight['detail']}")


@main.group()
def identity() -> None:
    """Identity verification: sessions, the worker, the key, the ID-number reference.

    \b
    Examples:
      export VIGIL_IDENTITY_KEY=$(vigil identity key)
      vigil identity verify --document-front passport.png --selfie me.jpg --min-age 18
      vigil identity worker --store vigil.db
    """


@identity.command("key")
def identity_key_cmd() -> None:
    """Print a new identity key (32 random bytes, base64) for VIGIL_IDENTITY_KEY.

    To rotate, put the new key first and keep the old one after it, comma-separated:
    new blobs use the new key, old ones still open.

    \b
    Example:
      export VIGIL_IDENTITY_KEY=$(vigil identity key)
    """
    from vigil.identity import new_key

    click.echo(new_key())


@identity.command("verify")
@click.option("--document-front", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="The document's front (or a passport's photo page).")
@click.option("--document-back", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="The document's back (ID cards, driving licences).")
@click.option("--selfie", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A selfie to match against the document's portrait.")
@click.option("--allowed-types", default="passport,id_card,driving_license",
              show_default=True, help="Comma-separated document types accepted.")
@click.option("--min-age", type=click.IntRange(1, 150), default=None,
              help="The holder's minimum age in years.")
@click.option("--name", default=None, help="The claimed name (given names, surname).")
@click.option("--dob", default=None, help="The claimed date of birth, YYYY-MM-DD.")
@click.option("--id-number", default=None, help="An ID number to check (with its country).")
@click.option("--id-number-country", default=None, help="The ID number's country, e.g. US.")
@click.option("--reference", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CSV of country,id_number,name,birth_date to check ID numbers against "
                   "(else the store's reference, with --store and the key).")
@click.option("--store", "store_url", default=None,
              help="A store whose ID-number reference to use (needs VIGIL_IDENTITY_KEY).")
@_IDENTITY_KEY_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
def identity_verify(document_front: Path | None, document_back: Path | None,
                    selfie: Path | None, allowed_types: str, min_age: int | None,
                    name: str | None, dob: str | None, id_number: str | None,
                    id_number_country: str | None, reference: Path | None,
                    store_url: str | None, identity_key: str | None, as_json: bool) -> None:
    """Run the checks on local files, in this process, and print the outcome.

    Exit status: 0 verified, 2 requires input (a check said no: the error code says why),
    1 an error (a missing file, a bad option).

    \b
    Examples:
      vigil identity verify --document-front passport.png --min-age 18
      vigil identity verify --document-front id.jpg --document-back id-back.jpg \\
          --selfie me.jpg --json
      vigil identity verify --id-number 123-45-6789 --id-number-country US \\
          --name "Jane Q Public" --dob 1990-05-17 --reference people.csv
    """
    from datetime import UTC

    from vigil.identity import Claimed, DefaultChecks, SessionRequest, run_checks
    from vigil.identity._sessions import sniff_image

    if document_front is None and (document_back or selfie):
        raise ConfigError("--document-back and --selfie need --document-front")
    if document_front is None and id_number is None:
        raise ConfigError("give --document-front (a document check) or --id-number (an ID "
                          "number check), or both")
    if id_number is not None and not id_number_country:
        raise ConfigError("--id-number needs --id-number-country, e.g. US")
    request = SessionRequest(
        "document" if document_front else "id_number",
        allowed_types=tuple(t.strip() for t in allowed_types.split(",") if t.strip()),
        require_matching_selfie=selfie is not None,
        require_id_number=document_front is not None and id_number is not None,
        min_age=min_age)
    files = {}
    for purpose, path in (("document_front", document_front),
                          ("document_back", document_back), ("selfie", selfie)):
        if path is not None:
            files[purpose] = _read_image(path, f"--{purpose.replace('_', '-')}")
            sniff_image(files[purpose], f"--{purpose.replace('_', '-')}")
    claimed = Claimed(name=name, birth_date=_parse_dob(dob), id_number=id_number,
                      id_number_country=id_number_country.upper() if id_number_country
                      else None)
    source = None
    if id_number is not None:
        source = _reference_source(reference, store_url, identity_key)
    outcome = run_checks(request, files, claimed, DefaultChecks(source),
                         today=datetime.now(UTC).date())
    error = outcome.error
    _print_session({"status": outcome.status, "checks": list(request.checks),
                    "last_error": error and {"code": error.code, "reason": error.reason},
                    "verified_outputs": outcome.verified_outputs(claimed)}, as_json)
    sys.exit(0 if outcome.status == "verified" else 2)


def _reference_source(reference: Path | None, store_url: str | None,
                      identity_key: str | None) -> Any:
    if reference is not None:
        from vigil.identity._id_numbers import MemoryReferenceSource

        source = MemoryReferenceSource()
        for country, number, name, born in _reference_rows(reference):
            source.add(country, number, name, born)
        return source
    if store_url is None:
        raise ConfigError("an ID number is checked against a reference: pass --reference "
                          "FILE.csv, or --store with VIGIL_IDENTITY_KEY set")
    from vigil.identity import StoreReferenceSource
    from vigil.store import Store

    return StoreReferenceSource(Store.open(store_url, migrate=True), _key_ring(identity_key))


def _reference_rows(path: Path) -> Iterator[tuple[str, str, str, Any]]:
    """Rows of a reference CSV (header: country,id_number,name,birth_date)."""
    import csv

    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            need = {"country", "id_number", "name", "birth_date"}
            if reader.fieldnames is None or not need <= set(reader.fieldnames):
                raise ConfigError(f"{path}: the header must name country, id_number, name "
                                  f"and birth_date; found {', '.join(reader.fieldnames or [])}")
            for i, row in enumerate(reader, start=2):
                try:
                    born = _parse_dob(row["birth_date"])
                except ConfigError:
                    raise ConfigError(f"{path}, line {i}: birth_date {row['birth_date']!r} is "
                                      "not YYYY-MM-DD") from None
                yield row["country"], row["id_number"], row["name"], born
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from exc


@identity.command("worker")
@_STORE_OPTION
@_IDENTITY_KEY_OPTION
@click.option("--poll", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
              help="Seconds to wait when no session is waiting.")
@click.option("--once", is_flag=True, help="Process what is waiting, then exit.")
@click.option("--ocr-threads", type=click.IntRange(min=1), default=None,
              help="Threads for the OCR models [default: one per core]; with one worker per "
                   "core, 1 (measured: two processes on 2 cores fall behind one otherwise).")
def identity_worker(store_url: str, identity_key: str | None, poll: float,
                    once: bool, ocr_threads: int | None) -> None:
    """Process submitted verification sessions (alongside or instead of the service's
    own worker threads; any number may share a store).

    \b
    Examples:
      vigil identity worker --store postgresql://vigil@db/vigil
      vigil identity worker --store vigil.db --once
      vigil identity worker --store vigil.db --ocr-threads 1   # one of several
    """
    import logging

    from vigil.identity import Worker
    from vigil.identity._ocr import use_threads

    use_threads(ocr_threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    sessions = _identity_sessions(store_url, identity_key)
    try:
        from vigil.identity._signals import IdentitySignals
    except ImportError:  # pragma: no cover - the signals are a separate module
        pass
    else:
        sessions.signals = IdentitySignals()
    worker = Worker(sessions, poll=poll)
    try:
        if once:
            done = worker.run_until_idle()
            err.print(f"processed {done} session{'s' if done != 1 else ''}")
            return
        err.print(f"identity worker on {sessions.store.url}; Ctrl-C stops it")
        worker.run_forever()
    finally:
        sessions.store.close()


@identity.command("create")
@_STORE_OPTION
@_IDENTITY_KEY_OPTION
@click.option("--tenant", default="default", show_default=True)
@click.option("--type", "session_type", type=click.Choice(["document", "id_number"]),
              default="document", show_default=True)
@click.option("--selfie", is_flag=True, help="Require a selfie matching the document.")
@click.option("--id-number", "require_id_number", is_flag=True,
              help="Also check the claimed ID number.")
@click.option("--min-age", type=click.IntRange(1, 150), default=None)
@click.option("--name", default=None, help="The claimed name.")
@click.option("--dob", default=None, help="The claimed date of birth, YYYY-MM-DD.")
@click.option("--claimed-id-number", default=None)
@click.option("--id-number-country", default=None)
def identity_create(store_url: str, identity_key: str | None, tenant: str, session_type: str,
                    selfie: bool, require_id_number: bool, min_age: int | None,
                    name: str | None, dob: str | None, claimed_id_number: str | None,
                    id_number_country: str | None) -> None:
    """Create a verification session in the store and print its id.

    \b
    Example:
      vigil identity create --store vigil.db --selfie --min-age 18
    """
    from vigil.identity import Claimed, SessionRequest

    sessions = _identity_sessions(store_url, identity_key)
    try:
        request = SessionRequest(session_type, require_matching_selfie=selfie,
                                 require_id_number=require_id_number, min_age=min_age)
        claimed = Claimed(name=name, birth_date=_parse_dob(dob), id_number=claimed_id_number,
                          id_number_country=id_number_country.upper() if id_number_country
                          else None)
        view = sessions.create(tenant, request, claimed=claimed)
    finally:
        sessions.store.close()
    click.echo(view["id"])


@identity.command("upload")
@click.argument("session_id")
@click.argument("purpose", type=click.Choice(["document_front", "document_back", "selfie"]))
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@_STORE_OPTION
@_IDENTITY_KEY_OPTION
@click.option("--tenant", default="default", show_default=True)
def identity_upload(session_id: str, purpose: str, file: Path, store_url: str,
                    identity_key: str | None, tenant: str) -> None:
    """Upload an image (PNG or JPEG, up to 10 MB) to a session.

    \b
    Example:
      vigil identity upload vs_0123abcd document_front passport.png --store vigil.db
    """
    sessions = _identity_sessions(store_url, identity_key)
    try:
        info = sessions.upload(tenant, session_id, purpose, _read_image(file, purpose))
    finally:
        sessions.store.close()
    err.print(f"{session_id}: {purpose} uploaded ({info['content_type']}, "
              f"{info['size']:,} bytes)")


def _session_command(action: str, doc: str) -> Callable[..., None]:
    @click.argument("session_id")
    @_STORE_OPTION
    @_IDENTITY_KEY_OPTION
    @click.option("--tenant", default="default", show_default=True)
    @click.option("--json", "as_json", is_flag=True, help="Print the session as JSON.")
    def command(session_id: str, store_url: str, identity_key: str | None, tenant: str,
                as_json: bool) -> None:
        sessions = _identity_sessions(store_url, identity_key)
        try:
            view = getattr(sessions, action)(tenant, session_id)
        finally:
            sessions.store.close()
        _print_session(view, as_json)

    command.__doc__ = doc
    return command


identity.command("submit")(_session_command("submit", """Submit a session for processing.

    \b
    Example:
      vigil identity submit vs_0123abcd --store vigil.db
    """))
identity.command("status")(_session_command("get", """Show a session: status, error, outputs.

    \b
    Example:
      vigil identity status vs_0123abcd --store vigil.db --json
    """))
identity.command("cancel")(_session_command("cancel", """Cancel a session.

    \b
    Example:
      vigil identity cancel vs_0123abcd --store vigil.db
    """))
identity.command("redact")(_session_command("redact", """Delete a session's personal data
    for good (images, extracted and claimed data, face embedding).

    \b
    Example:
      vigil identity redact vs_0123abcd --store vigil.db
    """))


@identity.group("reference")
def identity_reference() -> None:
    """The ID-number reference (it stands in for a data provider); stored encrypted."""


@identity_reference.command("add")
@click.option("--country", required=True, help="ISO 3166-1 alpha-2, e.g. US.")
@click.option("--id-number", required=True)
@click.option("--name", required=True, help="Given names and surname.")
@click.option("--dob", required=True, help="Date of birth, YYYY-MM-DD.")
@_STORE_OPTION
@_IDENTITY_KEY_OPTION
def identity_reference_add(country: str, id_number: str, name: str, dob: str,
                           store_url: str, identity_key: str | None) -> None:
    """Add (or replace) one person's ID number in the store's reference.

    \b
    Example:
      vigil identity reference add --country US --id-number 123-45-6789 \\
          --name "Jane Q Public" --dob 1990-05-17 --store vigil.db
    """
    sessions = _identity_sessions(store_url, identity_key)
    try:
        sessions.reference.add(country, id_number, name, _parse_dob(dob))
    finally:
        sessions.store.close()
    err.print(f"added {country.upper()} ID number to the reference")


@identity_reference.command("import")
@click.argument("csv_file", type=click.Path(dir_okay=False, path_type=Path))
@_STORE_OPTION
@_IDENTITY_KEY_OPTION
def identity_reference_import(csv_file: Path, store_url: str,
                              identity_key: str | None) -> None:
    """Add the rows of a CSV (header: country,id_number,name,birth_date) to the reference.

    \b
    Example:
      vigil identity reference import people.csv --store vigil.db
    """
    from vigil.identity import SessionInputError

    sessions = _identity_sessions(store_url, identity_key)
    n = 0
    try:
        for n, (country, number, name, born) in enumerate(_reference_rows(csv_file), start=1):
            try:
                sessions.reference.add(country, number, name, born)
            except SessionInputError as exc:
                raise ConfigError(f"{csv_file}, line {n + 1}: {exc}") from None
    finally:
        sessions.store.close()
    err.print(f"added {n:,} ID number{'s' if n != 1 else ''} to the reference")
