"""Training past one machine: features by the Spark engine, trees by XGBoost's Spark
estimator, the same :class:`~vigil.models.ModelBundle` at the end.

Only the validation slice (the last days of the training window) comes back to the driver,
to fit the calibrator and report validation metrics; the training rows stay in Spark.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow.compute as pc

from vigil._errors import ConfigError
from vigil.evaluation import fraud_metrics
from vigil.features import FeatureSet
from vigil.features.offline import spark_features
from vigil.models import ModelBundle, RiskModel, feature_matrix
from vigil.pipeline._jobs import Progress, TrainWindow

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

LABEL = "_y"


def spark_data_span(payments: DataFrame) -> tuple[datetime, datetime]:
    """First and last payment time of a Spark DataFrame of payments."""
    from datetime import UTC

    from pyspark.sql import functions as F

    row = payments.agg(F.min("ts").alias("lo"), F.max("ts").alias("hi")).collect()[0]
    if row["lo"] is None:
        raise ConfigError("the dataset has no payments")
    return row["lo"].astimezone(UTC), row["hi"].astimezone(UTC)


def train_bundle_spark(feature_set: FeatureSet, payments: DataFrame, labels: DataFrame,
                       window: TrainWindow, *, params: Mapping[str, Any] | None = None,
                       num_workers: int = 2, progress: Progress | None = None) -> ModelBundle:
    """:func:`~vigil.pipeline.train_bundle` on Spark: features, labels known at the window's
    cutoff, and the fit all run in Spark."""
    from pyspark.sql import functions as F

    from vigil.models._spark_gbm import VALID_FLAG, fit_on_spark

    say = progress or (lambda _msg: None)
    features = spark_features(feature_set, payments, labels)
    known = (labels.where(F.col("is_fraud") & (F.col("reported_at") < F.lit(window.label_cutoff)))
             .select("payment_id").distinct().withColumn(LABEL, F.lit(1)))
    # the card and amount, for validation metrics (under names no feature takes)
    context = payments.select("payment_id", F.col("card_id").alias("_card"),
                              F.col("amount").alias("_amount"))
    rows = (features.where((F.col("ts") >= F.lit(window.start)) & (F.col("ts") < F.lit(window.end)))
            .join(known, "payment_id", "left").join(context, "payment_id", "left")
            .withColumn(LABEL, F.coalesce(F.col(LABEL), F.lit(0)))
            .withColumn(VALID_FLAG, F.col("ts") >= F.lit(window.fit_end))
            .persist())
    try:
        counts = rows.groupBy(VALID_FLAG).agg(F.count(F.lit(1)).alias("n"),
                                             F.sum(LABEL).alias("frauds")).collect()
        by_flag = {r[VALID_FLAG]: (int(r["n"]), int(r["frauds"] or 0)) for r in counts}
        n_fit, frauds_fit = by_flag.get(False, (0, 0))
        n_valid, _ = by_flag.get(True, (0, 0))
        if n_fit == 0:
            raise ConfigError(f"no payments between {window.start:%Y-%m-%d} and "
                              f"{window.fit_end:%Y-%m-%d} to train on")
        say(f"training on {n_fit:,} payments ({frauds_fit:,} frauds known by "
            f"{window.label_cutoff:%Y-%m-%d}) with {num_workers} XGBoost worker(s) on Spark, "
            f"validating on {n_valid:,}")
        valid = (rows.where(F.col(VALID_FLAG)).orderBy("ts", "payment_id").toArrow()
                 if n_valid else None)
        X_valid = y_valid = None
        if valid is not None and valid.num_rows:
            X_valid = feature_matrix(valid, feature_set.names)
            y_valid = np.asarray(valid.column(LABEL).to_numpy(zero_copy_only=False), dtype=float)
        model = fit_on_spark(RiskModel(**dict(params or {})), rows, feature_set.names, LABEL,
                             num_workers=num_workers, valid_rows=X_valid, valid_labels=y_valid)
    finally:
        rows.unpersist()
    metrics: dict[str, Any] = {}
    if valid is not None and y_valid is not None and 0 < y_valid.sum() < len(y_valid):
        days = np.asarray(pc.strftime(valid.column("ts"), format="%Y-%m-%d")
                          .to_numpy(zero_copy_only=False))
        metrics["validation"] = fraud_metrics(
            y_valid.astype(bool), model.predict_proba(X_valid),
            cards=np.asarray(valid.column("_card").to_numpy(zero_copy_only=False)), days=days,
            amounts=np.asarray(valid.column("_amount").to_numpy(zero_copy_only=False)))
    training = {
        "window": window.to_dict(),
        "payments": n_fit,
        "frauds": frauds_fit,
        "validation_payments": n_valid,
        "best_iteration": model.best_iteration_,
        "data_fingerprint": None,
        "engine": "spark",
        "num_workers": num_workers,
    }
    return ModelBundle(feature_set, model, training=training, metrics=metrics)
