"""The offline engine on Apache Spark: the same FeatureSet, the same numbers as on DuckDB.

Every feature's :class:`~vigil.features.Spec` becomes a Spark window over the entity's
payments ordered by time in microseconds. Spark's frames have no ``EXCLUDE TIES``, which
the contract needs (a payment's window holds the entity's payments with ``t - w < ts < t``,
plus the payment itself, but not the others at exactly ``t``). So each windowed aggregate
is taken over the strictly earlier payments, ``RANGE BETWEEN w-1 PRECEDING AND 1
PRECEDING``, and the payment's own value is folded in afterwards (a count plus one, a
minimum with its own amount, a set of distinct values with its own). Label-aware features
are not sliding frames (Spark re-aggregates a sliding frame for every row, quadratic in a busy
terminal's payments): they are running counts over a timeline per entity on which each
payment's first label report enters at its report time and leaves each window ``w`` later,
so a payment only sees labels reported strictly before it (see :func:`_timeline_counts`).

Only the DataFrame API is used (no Python functions run on the executors), so a cluster's
workers need Java and Spark, not vigil. PySpark is the ``spark`` extra.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from vigil._errors import ConfigError, SchemaError
from vigil.features._definitions import LABEL_OPS, Spec
from vigil.features._featureset import FeatureSet

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame, SparkSession

_DAY_US = 86_400_000_000
_HOUR_US = 3_600_000_000

DEFAULT_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.driver.memory": "2g",
    "spark.ui.showConsoleProgress": "false",
    # Parquet timestamps as UTC microseconds (Arrow, DuckDB and pandas read them as such),
    # not Spark's legacy INT96
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}


def _pyspark() -> Any:
    try:
        import pyspark
    except ImportError:  # pragma: no cover - depends on the install
        raise ConfigError("the Spark engine needs PySpark: pip install 'vigil[spark]'") from None
    return pyspark


def spark_session(master: str = "local[2]", *, app: str = "vigil",
                  conf: dict[str, str] | None = None) -> SparkSession:
    """A Spark session for vigil's jobs (UTC, no UI), on ``master``: ``local[N]`` or a
    cluster's ``spark://host:port``."""
    _pyspark()
    from pyspark.sql import SparkSession

    # PySpark warns on every pandas 3 import; vigil hands it Arrow, not pandas
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas",
                            category=FutureWarning)
    builder = SparkSession.builder.master(master).appName(app)
    # Python tasks (XGBoost's training workers) run this interpreter, whose packages they
    # need; on a cluster, the same path must exist on every worker (or set PYSPARK_PYTHON)
    # (PySpark reads the variable when it makes the context; the setting is for spark-submit)
    python = os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    for key, value in {**DEFAULT_CONF, "spark.pyspark.python": python,
                       **(conf or {})}.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


@contextmanager
def spark_job(master: str = "local[2]", *, conf: dict[str, str] | None = None
              ) -> Iterator[SparkSession]:
    """A session for one job, stopped at the end; a session already running in this
    process (a notebook's, a test's) is used as it is and left running."""
    _pyspark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        yield active
        return
    session = spark_session(master, conf=conf)
    try:
        yield session
    finally:
        session.stop()


def read_dataset_spark(spark: SparkSession, folder: str | Path) -> tuple[DataFrame, DataFrame]:
    """The payments (day partitions ``payments/date=YYYY-MM-DD/``) and labels of a dataset
    folder, as Spark DataFrames. On a cluster the folder must be on a path every worker
    reads (a shared file system, HDFS, S3)."""
    folder = Path(folder)
    if not (folder / "payments").is_dir() or not (folder / "labels.parquet").exists():
        raise ConfigError(f"{folder}: not a dataset folder (payments/ and labels.parquet "
                          "expected; `vigil simulate --out DIR` makes one)")
    payments = spark.read.parquet(str((folder / "payments").resolve()))
    if "date" in payments.columns:
        payments = payments.drop("date")  # the partition column: ts says the same
    labels = spark.read.parquet(str((folder / "labels.parquet").resolve()))
    _check_spark_schema(payments, {"payment_id": "string", "ts": "timestamp"},
                        str(folder / "payments"))
    _check_spark_schema(labels, {"payment_id": "string", "is_fraud": "boolean",
                                 "reported_at": "timestamp"}, str(folder / "labels.parquet"))
    return payments, labels


def _check_spark_schema(df: DataFrame, wanted: dict[str, str], source: str) -> None:
    types = dict(df.dtypes)
    for name, kind in wanted.items():
        if name not in types:
            raise SchemaError(f"missing required column '{name}'", source=source)
        if not types[name].startswith(kind):
            raise SchemaError(f"column '{name}' is {types[name]}, expected {kind}",
                              source=source)


def write_features_by_day(features: DataFrame, out: str | Path) -> Path:
    """Write a feature DataFrame as day partitions ``out/date=YYYY-MM-DD/`` (Parquet, zstd),
    replacing what was there."""
    from pyspark.sql import functions as F

    out = Path(out)
    (features.withColumn("date", F.date_format("ts", "yyyy-MM-dd"))
     .repartition("date").sortWithinPartitions("ts", "payment_id")
     .write.mode("overwrite").option("compression", "zstd")
     .partitionBy("date").parquet(str(out.resolve())))
    return out


# ----------------------------------------------------------------------- payment windows


def _windows(spec: Spec) -> tuple[Any, bool]:
    """The window of the entity's strictly earlier payments in the spec's range, and whether
    the payment itself must be folded in (the EXCLUDE TIES part of the contract)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    # payments without the key (an online payment has no terminal) get null features; each
    # is a window partition of its own, not one huge partition of all of them, which one
    # task would have to slide a frame over
    alone = F.when(F.col(spec.key).isNull(), F.col("payment_id"))  # type: ignore[arg-type]
    ordered = Window.partitionBy(spec.key, alone).orderBy("_t")  # type: ignore[arg-type]
    if spec.window_us is None:
        return ordered.rangeBetween(Window.unboundedPreceding, -1), False
    return ordered.rangeBetween(-(spec.window_us - 1), -1), spec.include_current


def _row_feature(spec: Spec) -> Column:
    from pyspark.sql import functions as F

    # integer arithmetic throughout: (t - pmod(t, day)) is a whole number of days
    day = F.expr(f"(_t - pmod(_t, {_DAY_US})) div {_DAY_US}")
    hour = F.expr(f"pmod(_t, {_DAY_US}) div {_HOUR_US}")
    weekday = F.pmod(day + F.lit(3), F.lit(7))  # 1970-01-01 was a Thursday
    if spec.op == "value":
        return F.col(spec.column).cast("double")  # type: ignore[arg-type]
    if spec.op == "is_weekend":
        return (weekday >= 5).cast("double")
    if spec.op == "day_of_week":
        return weekday.cast("double")
    if spec.op == "hour_of_day":
        return hour.cast("double")
    if spec.op == "is_night":
        return (hour <= F.lit(spec.param)).cast("double")
    raise AssertionError(spec.op)  # pragma: no cover


def _window_feature(spec: Spec) -> Column:
    from pyspark.sql import functions as F

    over, with_self = _windows(spec)
    x = F.col(spec.column).cast("double") if spec.column else None
    op = spec.op
    n_prior = F.count(F.lit(1)).over(over)
    if op == "count":
        expr = (n_prior + F.lit(1) if with_self else n_prior).cast("double")
    elif op in ("sum", "mean", "relative"):
        s = F.sum(x).over(over)
        n = F.count(x).over(over)
        if with_self:
            s = F.coalesce(s, F.lit(0.0)) + F.coalesce(x, F.lit(0.0))
            n = n + F.when(x.isNotNull(), 1).otherwise(0)  # type: ignore[union-attr]
            s = F.when(n > 0, s)
        if op == "sum":
            expr = F.coalesce(s, F.lit(0.0))
        else:
            mean = F.when(n > 0, s / n)
            expr = mean if op == "mean" else x / F.when(mean != 0, mean)  # type: ignore
    elif op in ("min", "max"):
        prior = (F.min if op == "min" else F.max)(x).over(over)
        expr = (F.least if op == "min" else F.greatest)(prior, x) if with_self else prior
    elif op == "count_distinct":
        seen = F.collect_set(F.col(spec.column)).over(over)  # type: ignore[arg-type]
        if with_self:
            own = F.when(F.col(spec.column).isNull(), F.array()).otherwise(  # type: ignore
                F.array(F.col(spec.column)))  # type: ignore[arg-type]
            seen = F.array_union(seen, own)
        expr = F.size(seen).cast("double")
    elif op in ("since_first", "since_last"):
        prior = (F.min if op == "since_first" else F.max)("_t").over(over)
        if with_self:
            prior = (F.least if op == "since_first" else F.greatest)(prior, F.col("_t"))
        expr = (F.col("_t") - prior) / F.lit(1e6)
    else:  # pragma: no cover
        raise AssertionError(op)
    return F.when(F.col(spec.key).isNotNull(), expr)  # type: ignore[arg-type]


def _payment_feature(spec: Spec) -> Column:
    if spec.op == "ratio":
        from pyspark.sql import functions as F

        num, den = (_payment_feature(o) for o in spec.operands)
        return num / F.when(den != 0, den)
    return _window_feature(spec) if spec.key else _row_feature(spec)


# ----------------------------------------------------------------------- label windows

_TIMELINE_OF = {"fraud_count": "fraud", "label_count": "labelled",
                "since_first_fraud": "fraud", "since_last_fraud": "fraud"}
_EXIT, _PROBE, _ENTRY = 0, 1, 2  # the order of events at one instant on a timeline


def _timeline_counts(keyed: DataFrame, column: str, windows: list[int],
                     with_times: bool) -> DataFrame:
    """Per keyed payment: ``_before``, the entity's reports on this timeline strictly before
    the payment, and ``_gone_{w}``, those reported at or before ``t - w`` (gone from a window
    of ``w``). ``_before - _gone_{w}`` counts the reports in ``t - w < r < t``.

    Each report enters the entity's timeline at its report time ``r`` and leaves a window of
    ``w`` at ``r + w``; running sums over the timeline, in the order exits, payments, entries
    at one instant, give the counts. Running sums are incremental in Spark, where a sliding
    frame re-aggregates the whole frame for every row (quadratic in a busy terminal's
    payments); counts stay exact integers. With ``with_times`` also ``_last_r``, the latest
    report time before the payment."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    gone = [f"_gone_{w}" for w in windows]
    zeros = [F.lit(0).alias(g) for g in gone]
    probes = keyed.select("_k", "_t", "payment_id", F.lit(_PROBE).alias("_o"),
                          F.lit(0).alias("_in"), *zeros)
    reports = keyed.where(F.col(column).isNotNull()).select("_k", F.col(column).alias("_r"))
    entries = reports.select("_k", F.col("_r").alias("_t"),
                             F.lit(None).cast("string").alias("payment_id"),
                             F.lit(_ENTRY).alias("_o"), F.lit(1).alias("_in"), *zeros)
    line = probes.unionByName(entries)
    for w, g in zip(windows, gone, strict=True):
        line = line.unionByName(reports.select(
            "_k", (F.col("_r") + F.lit(w)).alias("_t"),
            F.lit(None).cast("string").alias("payment_id"), F.lit(_EXIT).alias("_o"),
            F.lit(0).alias("_in"), *[F.lit(1 if other == g else 0).alias(other)
                                     for other in gone]))
    running = (Window.partitionBy("_k").orderBy("_t", "_o")
               .rowsBetween(Window.unboundedPreceding, Window.currentRow))
    cols = [F.sum("_in").over(running).alias("_before"),
            *[F.sum(g).over(running).alias(g) for g in gone]]
    if with_times:
        cols.append(F.max(F.when(F.col("_o") == _ENTRY, F.col("_t"))).over(running)
                    .alias("_last_r"))
    return (line.select("payment_id", "_k", "_t", "_o", *cols)
            .where(F.col("_o") == _PROBE).drop("_o"))


def _label_features(base: DataFrame, key: str, specs: list[Spec]) -> DataFrame:
    """Label-aware features of one entity key: ``payment_id`` and one column per spec, for
    the payments whose key is not null."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    event_time = {"labelled": "_lab_t", "fraud": "_fraud_t"}
    needed: dict[str, list[Spec]] = {}
    for s in specs:
        timelines = ("fraud", "labelled") if s.op == "fraud_rate" else (_TIMELINE_OF[s.op],)
        for tl in timelines:
            needed.setdefault(tl, []).append(s)
    keyed = base.where(F.col(key).isNotNull()).select(
        F.col(key).alias("_k"), "payment_id", "_t",
        *[c for tl, c in event_time.items() if tl in needed])
    since = [s for s in specs if s.op in ("since_first_fraud", "since_last_fraud")]
    counts = {}
    for timeline, own in needed.items():
        windows = sorted({s.window_us for s in own})  # type: ignore[type-var]
        counts[timeline] = _timeline_counts(keyed, event_time[timeline], windows,
                                            with_times=timeline == "fraud" and bool(since))
    joined = None
    for timeline, frame in counts.items():
        renamed = frame.select("payment_id", "_k", "_t", *[
            F.col(c).alias(f"_{timeline}{c}") for c in frame.columns
            if c not in ("payment_id", "_k", "_t")])
        joined = renamed if joined is None else joined.join(
            renamed.drop("_k", "_t"), "payment_id")
    assert joined is not None

    def in_window(timeline: str, w: int) -> Column:
        return F.col(f"_{timeline}_before") - F.col(f"_{timeline}_gone_{w}")

    # the first fraud report inside a window is the entity's report number gone + 1, in
    # report-time order (reports leave windows in the order they came)
    firsts = [s for s in since if s.op == "since_first_fraud"]
    for s in firsts:
        numbered = (keyed.where(F.col("_fraud_t").isNotNull())
                    .select(F.col("_k").alias(f"_k_{s.name}"),
                            F.col("_fraud_t").alias(f"_first_{s.name}"),
                            F.row_number().over(Window.partitionBy("_k").orderBy("_fraud_t"))
                            .alias(f"_n_{s.name}")))
        joined = joined.join(
            numbered,
            (F.col("_k") == F.col(f"_k_{s.name}"))
            & (F.col(f"_fraud_gone_{s.window_us}") + 1 == F.col(f"_n_{s.name}")),
            "left")
    out = [F.col("payment_id")]
    for s in specs:
        w = s.window_us
        assert w is not None
        if s.op == "fraud_count":
            expr = in_window("fraud", w).cast("double")
        elif s.op == "label_count":
            expr = in_window("labelled", w).cast("double")
        elif s.op == "fraud_rate":
            labelled = in_window("labelled", w)
            expr = F.when(labelled > 0, in_window("fraud", w) / labelled).otherwise(0.0)
        else:
            at = (F.col(f"_first_{s.name}") if s.op == "since_first_fraud"
                  else F.col("_fraud_last_r"))
            expr = F.when(in_window("fraud", w) > 0, (F.col("_t") - at) / F.lit(1e6))
        out.append(expr.cast("double").alias(s.name))
    return joined.select(*out)


# ----------------------------------------------------------------------- the job


def first_reports_frame(labels: DataFrame) -> DataFrame:
    """Per payment id: the first report of any label and of a fraud label (microseconds)."""
    from pyspark.sql import functions as F

    return labels.groupBy("payment_id").agg(
        F.unix_micros(F.min("reported_at")).alias("_lab_t"),
        F.unix_micros(F.min(F.when(F.col("is_fraud"), F.col("reported_at")))).alias("_fraud_t"))


def spark_features(feature_set: FeatureSet, payments: DataFrame,
                   labels: DataFrame | None = None, *, source: str = "payments") -> DataFrame:
    """``feature_set`` for every payment of ``payments`` (a Spark DataFrame with the payment
    schema's columns), point in time: ``payment_id``, ``ts`` and one double per feature.

    Pass *all* labels (``payment_id``, ``is_fraud``, ``reported_at``): the engine only lets
    a payment see labels reported before it.
    """
    from pyspark.sql import functions as F

    for required in ("payment_id", "ts"):
        if required not in payments.columns:
            raise SchemaError(f"missing required column '{required}'", source=source)
    missing = [c for c in feature_set.input_columns() if c not in payments.columns]
    if missing:
        raise SchemaError(f"feature set '{feature_set.name}' reads column(s) "
                          f"{', '.join(missing)}, which the payments lack", source=source)
    if feature_set.needs_labels() and labels is None:
        raise ConfigError(f"feature set '{feature_set.name}' has label-aware features; "
                          "pass the labels")
    columns = ["payment_id", "ts", *[c for c in feature_set.input_columns()
                                     if c not in ("payment_id", "ts")]]
    base = payments.select(*columns).withColumn("_t", F.unix_micros(F.col("ts")))
    if feature_set.needs_labels():
        base = base.join(first_reports_frame(labels), "payment_id", "left")
    specs = feature_set.specs()
    plain = [s for s in specs if s.op not in LABEL_OPS]
    result = base.select("payment_id", "ts", *[_payment_feature(s).cast("double").alias(s.name)
                                               for s in plain])
    by_key: dict[str, list[Spec]] = {}
    for s in specs:
        if s.op in LABEL_OPS:
            by_key.setdefault(s.key, []).append(s)  # type: ignore[arg-type]
    for key, own in by_key.items():
        result = result.join(_label_features(base, key, own), "payment_id", "left")
    return result.select("payment_id", "ts", *feature_set.names)


def arrow_to_spark(spark: SparkSession, table: pa.Table) -> DataFrame:
    """An Arrow table as a Spark DataFrame. The chunks are combined first: PySpark 4.3 stops
    reading a table at its first empty chunk and silently drops the rows after it."""
    return spark.createDataFrame(table.combine_chunks())


def build_features_spark(feature_set: FeatureSet, payments: pa.Table,
                         labels: pa.Table | None = None, *, spark: SparkSession | None = None,
                         source: str = "payments") -> pa.Table:
    """:func:`~vigil.features.build_features` on Spark, for Arrow tables: the same columns,
    values and ``(ts, payment_id)`` order."""
    if spark is None:
        with spark_job() as session:
            return build_features_spark(feature_set, payments, labels, spark=session,
                                        source=source)
    if "ts" in payments.column_names:
        payments = payments.set_column(payments.column_names.index("ts"), "ts",
                                       payments.column("ts").cast(pa.timestamp("us", tz="UTC")))
    keep = [c for c in payments.column_names if c in {"payment_id", "ts",
                                                      *feature_set.input_columns()}]
    pay_df = arrow_to_spark(spark, payments.select(keep))
    lab_df = None
    if labels is not None and feature_set.needs_labels():
        lab_df = arrow_to_spark(spark, labels.select(["payment_id", "is_fraud", "reported_at"]))
    df = spark_features(feature_set, pay_df, lab_df, source=source)
    table = df.orderBy("ts", "payment_id").toArrow()
    if table.num_rows != payments.num_rows:
        raise SchemaError("payment_id values are not unique: the Spark engine joins features "
                          "by payment id", source=source)
    return pa.table([table.column("payment_id"),
                     table.column("ts").cast(pa.timestamp("us", tz="UTC")),
                     *[table.column(n).cast(pa.float64()) for n in feature_set.names]],
                    names=["payment_id", "ts", *feature_set.names])
