"""Where a model does well and where it does not: metrics per day, per segment, per fraud
scenario, and the calibration of its probabilities.

Recall in every slice is taken at one threshold for the whole window (the one that flags 1 %
of good payments), as an operator would run it: a slice's recall is what that slice gets
from the threshold in force, not from a threshold tuned to it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from vigil.evaluation import average_precision, roc_auc, threshold_at_fpr
from vigil.models import probability_at_score
from vigil.reports._window import ScoredWindow

OPERATING_FPR = 0.01


def operating_threshold(w: ScoredWindow) -> float:
    """The probability above which 1 % of the window's good payments are flagged."""
    if not w.y.any() or w.y.all():
        return math.inf
    return threshold_at_fpr(w.y, w.probability, OPERATING_FPR)


def slice_metrics(y: np.ndarray, p: np.ndarray, amount: np.ndarray, flagged: np.ndarray,
                  ) -> dict[str, float]:
    n, frauds = len(y), int(y.sum())
    goods = n - frauds
    fraud_money = float(amount[y].sum())
    return {
        "payments": n,
        "frauds": frauds,
        "fraud_rate": frauds / n if n else math.nan,
        "auc": roc_auc(y, p) if n else math.nan,
        "ap": average_precision(y, p) if n else math.nan,
        "recall": float(flagged[y].mean()) if frauds else math.nan,
        "money_recall": (float(amount[y & flagged].sum()) / fraud_money if fraud_money
                         else math.nan),
        "fpr": float(flagged[~y].mean()) if goods else math.nan,
        "flag_rate": float(flagged.mean()) if n else math.nan,
    }


def by_group(w: ScoredWindow, groups: np.ndarray, threshold: float,
             order: list[str] | None = None) -> list[dict[str, Any]]:
    """Metrics per group, the largest first (or in ``order``, for bands)."""
    flagged = w.probability > threshold
    out = []
    keys, inverse = np.unique(groups.astype(str), return_inverse=True)
    for i, key in enumerate(keys):
        sel = inverse == i
        out.append({"group": str(key), **slice_metrics(w.y[sel], w.probability[sel],
                                                      w.amount[sel], flagged[sel])})
    if order:
        rank = {g: i for i, g in enumerate(order)}
        out.sort(key=lambda r: rank.get(r["group"], len(rank)))
    else:
        out.sort(key=lambda r: -r["payments"])
    return out


def by_day(w: ScoredWindow, threshold: float) -> list[dict[str, Any]]:
    rows = by_group(w, w.day, threshold)
    return sorted(rows, key=lambda r: r["group"])


def by_segment(w: ScoredWindow, threshold: float) -> dict[str, list[dict[str, Any]]]:
    return {name: by_group(w, groups, threshold, w.segment_order.get(name))
            for name, groups in w.segments.items()}


def by_scenario(w: ScoredWindow, threshold: float) -> list[dict[str, Any]]:
    """Recall per fraud scenario (simulator or Handbook ground truth); empty without truth."""
    if w.scenario is None:
        return []
    flagged = w.probability > threshold
    out = []
    frauds = w.y
    for key in sorted(set(w.scenario[frauds].astype(str).tolist())):
        sel = frauds & (w.scenario.astype(str) == key)
        n = int(sel.sum())
        money = float(w.amount[sel].sum())
        out.append({"scenario": key, "frauds": n, "caught": int(flagged[sel].sum()),
                    "recall": float(flagged[sel].mean()),
                    "money_recall": (float(w.amount[sel & flagged].sum()) / money if money
                                     else math.nan),
                    "median_score": float(np.median(w.risk_score[sel]))})
    return out


def calibration(w: ScoredWindow, band: int = 10) -> list[dict[str, float]]:
    """Per band of ``band`` risk-score points: payments, mean predicted probability, observed
    fraud rate, and the probability range the band stands for."""
    out = []
    for lo in range(0, 101, band):
        sel = (w.risk_score >= lo) & (w.risk_score < lo + band)
        n = int(sel.sum())
        if n == 0:
            continue
        out.append({"scores": f"{lo}–{min(lo + band - 1, 100)}", "payments": n,
                    "predicted": float(w.probability[sel].mean()),
                    "observed": float(w.y[sel].mean()), "frauds": int(w.y[sel].sum()),
                    "p_low": probability_at_score(lo - 0.5),
                    "p_high": probability_at_score(min(lo + band, 101) - 0.5)})
    return out


def weaknesses(overall: dict[str, float], segments: dict[str, list[dict[str, Any]]],
               scenarios: list[dict[str, Any]], *, min_frauds: int = 10,
               gap: float = 0.10) -> list[str]:
    """Plain sentences for the slices whose recall falls ``gap`` or more below the whole
    window's (only slices with at least ``min_frauds`` frauds, so noise is not reported)."""
    base = overall.get("recall", math.nan)
    out = []
    if math.isnan(base):
        return out
    for name, rows in segments.items():
        for r in rows:
            if r["frauds"] >= min_frauds and r["recall"] <= base - gap:
                out.append(f"{name} = {r['group']}: recall {r['recall']:.0%} against "
                           f"{base:.0%} overall ({r['frauds']} frauds, "
                           f"{r['payments']:,} payments)")
    for r in scenarios:
        if r["frauds"] >= min_frauds and r["recall"] <= base - gap:
            out.append(f"scenario {r['scenario']}: recall {r['recall']:.0%} against "
                       f"{base:.0%} overall ({r['frauds']} frauds)")
    return out
