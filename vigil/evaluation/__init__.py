"""Evaluation as a risk team needs it: prequential splits that respect label delay, and metrics."""

from vigil.evaluation._metrics import (
    average_precision,
    card_precision_at_k,
    fraud_metrics,
    money_recall_at_fpr,
    recall_at_fpr,
    recall_by_group,
    roc_auc,
    summarize_folds,
    threshold_at_fpr,
)
from vigil.evaluation._splits import (
    Fold,
    as_utc,
    in_window,
    known_compromised_mask,
    labels_known_at,
    prequential_folds,
)

__all__ = [
    "Fold",
    "as_utc",
    "average_precision",
    "card_precision_at_k",
    "fraud_metrics",
    "in_window",
    "known_compromised_mask",
    "labels_known_at",
    "money_recall_at_fpr",
    "prequential_folds",
    "recall_at_fpr",
    "recall_by_group",
    "roc_auc",
    "summarize_folds",
    "threshold_at_fpr",
]
