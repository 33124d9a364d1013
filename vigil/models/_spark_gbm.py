"""Training a :class:`~vigil.models.RiskModel` on Spark with XGBoost's own Spark estimator.

The trees are grown by ``num_workers`` XGBoost workers over the partitions of a Spark
DataFrame (``xgboost.spark.SparkXGBClassifier``, barrier mode); early stopping watches the
rows flagged as validation. The result is the same ``RiskModel`` as a one-machine fit:
the booster, its best number of trees, and a calibrator fitted on the validation margins,
so the bundle it goes into is saved, loaded and served like any other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from vigil._errors import ModelError
from vigil.models._calibration import CALIBRATORS
from vigil.models._gbm import RiskModel

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame

VALID_FLAG = "_is_valid"


def _estimator_params(model: RiskModel) -> dict[str, Any]:
    params: dict[str, Any] = {
        "n_estimators": model.n_estimators,
        "max_depth": model.max_depth,
        "learning_rate": model.learning_rate,
        "min_child_weight": model.min_child_weight,
        "subsample": model.subsample,
        "colsample_bytree": model.colsample_bytree,
        "reg_lambda": model.reg_lambda,
        "gamma": model.gamma,
        "scale_pos_weight": model.scale_pos_weight,
        "tree_method": model.tree_method,
        "eval_metric": model.eval_metric,
        "random_state": model.seed,
        "missing": float("nan"),
        "verbosity": 0,
    }
    if model.tree_method != "exact":
        params["max_bin"] = model.max_bin
    if model.base_score is not None:
        params["base_score"] = model.base_score
    return params


def fit_on_spark(model: RiskModel, rows: DataFrame, feature_names: list[str], label: str, *,
                 num_workers: int = 2, valid_rows: np.ndarray | None = None,
                 valid_labels: np.ndarray | None = None) -> RiskModel:
    """Fit ``model`` on ``rows`` (a DataFrame with the feature columns, ``label`` and the
    boolean column ``_is_valid``) with ``num_workers`` XGBoost workers.

    ``valid_rows``/``valid_labels`` are the validation slice on the driver, for the
    calibrator (it is small: the last days of the training window).
    """
    try:
        from pyspark.sql import functions as F
        from xgboost.spark import SparkXGBClassifier
    except ImportError:  # pragma: no cover - depends on the install
        raise ModelError("training on Spark needs PySpark: pip install 'vigil[spark]'"
                         ) from None
    if model.calibration is not None and model.calibration not in CALIBRATORS:
        raise ModelError(f"unknown calibration '{model.calibration}'; use "
                         f"{', '.join(CALIBRATORS)} or None")
    has_valid = valid_labels is not None and len(valid_labels) > 0 and valid_labels.max() > 0
    stop = model.early_stopping_rounds if has_valid else None
    # XGBoost's Spark estimator wants numeric columns; a missing feature is NaN, as on one
    # machine
    cols = [F.coalesce(F.col(n).cast("float"), F.lit(float("nan"))).alias(n)
            for n in feature_names]
    data = rows.select(*cols, F.col(label).cast("float").alias(label),
                       F.col(VALID_FLAG))
    estimator = SparkXGBClassifier(
        features_col=feature_names, label_col=label, num_workers=num_workers,
        validation_indicator_col=VALID_FLAG if stop is not None else None,
        early_stopping_rounds=stop, **_estimator_params(model))
    if stop is None:
        data = data.where(~F.col(VALID_FLAG))
    fitted = estimator.fit(data)
    booster = fitted.get_booster()
    if stop is not None:
        model.best_iteration_ = int(booster.best_iteration)
        booster = booster[: model.best_iteration_ + 1]
    else:
        model.best_iteration_ = model.n_estimators - 1
    booster.feature_names = list(feature_names)
    model.booster_ = booster
    model.feature_names_ = list(feature_names)
    model.calibrator_ = None
    if model.calibration is not None:
        if not (has_valid and 0 < valid_labels.sum() < len(valid_labels)):  # type: ignore
            raise ModelError("calibrating a Spark-trained model needs a validation slice "
                             "with both fraud and legitimate payments (--valid-days)")
        model.calibrator_ = CALIBRATORS[model.calibration]().fit(
            model.predict_margin(valid_rows), np.asarray(valid_labels, dtype=float))  # type: ignore
    return model
