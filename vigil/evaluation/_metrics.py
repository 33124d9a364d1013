"""Metrics a fraud team reads: ranking quality, card-level precision, recall at a false-positive
budget, and the share of fraud money caught.

Card Precision@k follows the Fraud Detection Handbook (chapter 4): per day, each card gets the
highest score and the highest label among its payments; cards are ranked by score and the
precision among the top k is taken; cards already caught on an earlier day of the period are
removed from later days (an investigator would have blocked them); the result is the mean over
days.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from vigil._errors import ConfigError


def _arrays(y: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y).astype(bool)
    scores = np.asarray(scores, dtype=float)
    if y.shape != scores.shape:
        raise ConfigError(f"labels ({y.shape}) and scores ({scores.shape}) differ in length")
    if np.isnan(scores).any():
        raise ConfigError("scores contain NaN")
    return y, scores


def roc_auc(y: Any, scores: Any) -> float:
    """Area under the ROC curve (NaN when only one class is present)."""
    y, scores = _arrays(y, scores)
    if y.all() or not y.any():
        return float("nan")
    return float(roc_auc_score(y, scores))


def average_precision(y: Any, scores: Any) -> float:
    """Average precision, as scikit-learn defines it (NaN without any fraud)."""
    y, scores = _arrays(y, scores)
    if not y.any():
        return float("nan")
    return float(average_precision_score(y, scores))


def threshold_at_fpr(y: Any, scores: Any, fpr: float) -> float:
    """The lowest threshold t such that flagging ``score > t`` flags at most ``fpr`` of the
    legitimate payments."""
    y, scores = _arrays(y, scores)
    legit = np.sort(scores[~y])[::-1]
    allowed = int(np.floor(fpr * len(legit)))
    if allowed >= len(legit):
        return -np.inf
    return float(legit[allowed])


def recall_at_fpr(y: Any, scores: Any, fpr: float) -> float:
    """Share of frauds flagged when the threshold lets through at most ``fpr`` of legit payments.

    Ties at the threshold are not flagged, so the false-positive rate never exceeds ``fpr``.
    """
    y, scores = _arrays(y, scores)
    if not 0 < fpr < 1:
        raise ConfigError(f"fpr must be between 0 and 1, not {fpr}")
    if not y.any() or y.all():
        return float("nan")
    t = threshold_at_fpr(y, scores, fpr)
    return float(np.mean(scores[y] > t))


def money_recall_at_fpr(y: Any, scores: Any, amounts: Any, fpr: float) -> float:
    """Share of the fraud *amount* flagged at the threshold of :func:`recall_at_fpr`."""
    y, scores = _arrays(y, scores)
    amounts = np.asarray(amounts, dtype=float)
    if not y.any() or y.all():
        return float("nan")
    t = threshold_at_fpr(y, scores, fpr)
    total = amounts[y].sum()
    return float(amounts[y & (scores > t)].sum() / total) if total > 0 else float("nan")


def card_precision_at_k(y: Any, scores: Any, cards: Any, days: Any, k: int = 100,
                        *, remove_detected: bool = True) -> tuple[float, list[float]]:
    """Card Precision@k (the Handbook's definition); returns (mean over days, per-day values).

    ``days`` is any day key per payment (a date or a day number).
    """
    y, scores = _arrays(y, scores)
    frame = pd.DataFrame({"y": y, "score": scores, "card": np.asarray(cards),
                          "day": np.asarray(days)})
    detected: set[Any] = set()
    per_day: list[float] = []
    for _, day in frame.groupby("day", sort=True):
        if remove_detected and detected:
            day = day[~day["card"].isin(detected)]
        per_card = day.groupby("card", sort=False).agg(score=("score", "max"), y=("y", "max"))
        # stable sort by score, ties in card order, so results repeat exactly
        top = per_card.sort_values("score", ascending=False, kind="mergesort").head(k)
        caught = top.index[top["y"].to_numpy(dtype=bool)]
        per_day.append(len(caught) / k)
        if remove_detected:
            detected.update(caught)
    if not per_day:
        return float("nan"), []
    return float(np.mean(per_day)), per_day


def fraud_metrics(y: Any, scores: Any, *, cards: Any = None, days: Any = None,
                  amounts: Any = None, k: int = 100) -> dict[str, float]:
    """Every metric vigil reports for one scored test window.

    ``auc``, ``ap``, ``recall@0.1%fpr``, ``recall@1%fpr``; with ``cards`` and ``days``
    ``cp@k``; with ``amounts`` ``money_recall@1%fpr``; plus counts.
    """
    y_arr, s_arr = _arrays(y, scores)
    out: dict[str, float] = {
        "auc": roc_auc(y_arr, s_arr),
        "ap": average_precision(y_arr, s_arr),
        "recall@0.1%fpr": recall_at_fpr(y_arr, s_arr, 0.001),
        "recall@1%fpr": recall_at_fpr(y_arr, s_arr, 0.01),
    }
    if cards is not None and days is not None:
        out[f"cp@{k}"] = card_precision_at_k(y_arr, s_arr, cards, days, k)[0]
    if amounts is not None:
        out["money_recall@1%fpr"] = money_recall_at_fpr(y_arr, s_arr, amounts, 0.01)
    out["payments"] = float(len(y_arr))
    out["frauds"] = float(y_arr.sum())
    return out


def summarize_folds(per_fold: Sequence[Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and standard deviation (ddof=1, as pandas and the Handbook) of each metric."""
    if not per_fold:
        return {}
    names = [n for n in per_fold[0] if all(n in f for f in per_fold)]
    out = {}
    for name in names:
        values = np.array([f[name] for f in per_fold], dtype=float)
        std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        out[name] = {"mean": float(np.mean(values)), "std": std}
    return out


def recall_by_group(y: Any, flagged: Any, groups: Any) -> dict[str, dict[str, float]]:
    """Per group (e.g. fraud scenario): frauds, frauds flagged and recall."""
    frame = pd.DataFrame({"y": np.asarray(y).astype(bool), "flag": np.asarray(flagged).astype(bool),
                          "group": np.asarray(groups)})
    frame = frame[frame["y"]]
    out = {}
    for group, part in frame.groupby("group", sort=True):
        n = len(part)
        out[str(group)] = {"frauds": float(n), "flagged": float(part["flag"].sum()),
                           "recall": float(part["flag"].mean()) if n else float("nan")}
    return out
