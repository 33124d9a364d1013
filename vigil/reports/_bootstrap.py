"""Confidence bands by bootstrap, resampling cards rather than payments.

The payments of one card are not independent (a stolen card brings a burst of frauds), so a
payment-level bootstrap makes intervals too narrow. Each replicate draws a Poisson(1) weight
per card and gives it to all of the card's payments (the Poisson bootstrap; Hanley and
MacGibbon, 2006): the same weights serve every metric and, for a comparison, both models, so
the differences are paired.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

FPR_GRID = np.concatenate([[0.0], np.logspace(-4, 0, 81)])
RECALL_GRID = np.linspace(0.0, 1.0, 101)


@dataclass(frozen=True)
class Replicates:
    """``weights[i]`` are the payment weights of replicate i."""

    weights: np.ndarray  # (replicates, payments), float32

    @classmethod
    def by_cluster(cls, clusters: np.ndarray, replicates: int, seed: int = 0) -> Replicates:
        _, index = np.unique(np.asarray(clusters), return_inverse=True)
        rng = np.random.default_rng(seed)
        per_cluster = rng.poisson(1.0, size=(replicates, int(index.max()) + 1 if index.size
                                             else 0)).astype(np.float32)
        return cls(per_cluster[:, index])

    def __len__(self) -> int:
        return self.weights.shape[0]


def _usable(y: np.ndarray, w: np.ndarray) -> bool:
    return bool(w[y].sum() > 0 and w[~y].sum() > 0)


def roc_band(y: np.ndarray, scores: np.ndarray, reps: Replicates) -> dict[str, list[float]]:
    """TPR on :data:`FPR_GRID`: the point estimate and the 2.5 % / 97.5 % band."""
    def tpr_at(w: np.ndarray | None) -> np.ndarray:
        fpr, tpr, _ = roc_curve(y, scores, sample_weight=w)
        return np.interp(FPR_GRID, fpr, tpr)

    point = tpr_at(None)
    curves = [tpr_at(w) for w in reps.weights if _usable(y, w)]
    lo, hi = _band(curves, point)
    return {"fpr": FPR_GRID.tolist(), "tpr": point.tolist(), "lo": lo, "hi": hi}


def pr_band(y: np.ndarray, scores: np.ndarray, reps: Replicates) -> dict[str, list[float]]:
    """Interpolated precision (the best precision at recall >= r) on :data:`RECALL_GRID`."""
    def precision_at(w: np.ndarray | None) -> np.ndarray:
        precision, recall, _ = precision_recall_curve(y, scores, sample_weight=w)
        # recall decreases along the arrays; the envelope is a running max from recall 0 up
        order = np.argsort(recall, kind="stable")
        r, p = recall[order], np.maximum.accumulate(precision[order][::-1])[::-1]
        idx = np.searchsorted(r, RECALL_GRID, side="left")
        return p[np.minimum(idx, len(p) - 1)]

    point = precision_at(None)
    curves = [precision_at(w) for w in reps.weights if _usable(y, w)]
    lo, hi = _band(curves, point)
    return {"recall": RECALL_GRID.tolist(), "precision": point.tolist(), "lo": lo, "hi": hi}


def _band(curves: list[np.ndarray], point: np.ndarray) -> tuple[list[float], list[float]]:
    if not curves:
        return point.tolist(), point.tolist()
    stack = np.vstack(curves)
    return (np.percentile(stack, 2.5, axis=0).tolist(),
            np.percentile(stack, 97.5, axis=0).tolist())


Metric = Callable[[np.ndarray, np.ndarray, np.ndarray | None], float]


def auc_metric(y: np.ndarray, s: np.ndarray, w: np.ndarray | None) -> float:
    return float(roc_auc_score(y, s, sample_weight=w))


def ap_metric(y: np.ndarray, s: np.ndarray, w: np.ndarray | None) -> float:
    return float(average_precision_score(y, s, sample_weight=w))


def recall_at_fpr_metric(fpr: float) -> Metric:
    """Recall at the threshold that flags ``fpr`` of the (weighted) good payments."""
    def metric(y: np.ndarray, s: np.ndarray, w: np.ndarray | None) -> float:
        w = np.ones(len(y)) if w is None else w
        good = ~y
        order = np.argsort(-s[good], kind="stable")
        cum = np.cumsum(w[good][order])
        allowed = fpr * cum[-1]
        k = int(np.searchsorted(cum, allowed, side="right"))
        t = s[good][order][k] if k < len(order) else -np.inf
        return float(w[y & (s > t)].sum() / w[y].sum())
    return metric


METRICS: dict[str, Metric] = {
    "auc": auc_metric,
    "ap": ap_metric,
    "recall@1%fpr": recall_at_fpr_metric(0.01),
}


def interval(y: np.ndarray, scores: np.ndarray, reps: Replicates,
             metric: Metric) -> dict[str, float]:
    """Point estimate and 95 % percentile interval of one metric."""
    point = metric(y, scores, None)
    values = [metric(y, scores, w) for w in reps.weights if _usable(y, w)]
    lo, hi = (np.percentile(values, [2.5, 97.5]) if values else (point, point))
    return {"value": point, "lo": float(lo), "hi": float(hi)}


def paired_difference(y: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray,
                      reps: Replicates, metric: Metric) -> dict[str, float]:
    """``metric(B) − metric(A)`` with a 95 % interval from the same replicates for both
    models, and the share of replicates in which B was better (``p_b_better``)."""
    a, b = metric(y, scores_a, None), metric(y, scores_b, None)
    diffs = np.array([metric(y, scores_b, w) - metric(y, scores_a, w)
                      for w in reps.weights if _usable(y, w)])
    if diffs.size == 0:
        return {"a": a, "b": b, "diff": b - a, "lo": b - a, "hi": b - a, "p_b_better": 0.5}
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return {"a": a, "b": b, "diff": b - a, "lo": float(lo), "hi": float(hi),
            "p_b_better": float(np.mean(diffs > 0) + 0.5 * np.mean(diffs == 0))}
