"""The 0–100 risk score and its levels.

A probability of fraud is hard to read near zero, where almost every payment sits. The risk
score is the log-odds on a readable scale: every 20 points is ten times the odds of fraud.

    risk_score = clip(round(20 · (log10(p / (1 − p)) + 4)), 0, 100)

So 0 is odds of 1 in 10,000 or lower, 40 is 1 in 100, 60 is 1 in 10, 80 is even odds, and 100
is ten to one or higher. Levels follow Stripe Radar's published bands: ``elevated`` from 65
(p ≈ 0.15) and ``highest`` from 75 (p ≈ 0.36).
"""

from __future__ import annotations

import math

import numpy as np

POINTS_PER_DECADE = 20.0
OFFSET_DECADES = 4.0
ELEVATED_FROM = 65
HIGHEST_FROM = 75


def risk_score(probability: np.ndarray | float) -> np.ndarray:
    """Integer scores 0–100 from calibrated probabilities (see the module docstring).

    >>> risk_score(np.array([0.0001, 0.01, 0.5, 0.99])).tolist()
    [0, 40, 80, 100]
    """
    p = np.clip(np.asarray(probability, dtype=float), 1e-12, 1 - 1e-12)
    raw = POINTS_PER_DECADE * (np.log10(p / (1 - p)) + OFFSET_DECADES)
    return np.clip(np.rint(raw), 0, 100).astype(np.int64)


def risk_score_one(probability: float) -> int:
    """:func:`risk_score` of one probability, in plain Python (per-payment scoring).

    >>> [risk_score_one(p) for p in (0.0001, 0.01, 0.5, 0.99)]
    [0, 40, 80, 100]
    """
    p = min(max(float(probability), 1e-12), 1 - 1e-12)
    raw = POINTS_PER_DECADE * (math.log10(p / (1 - p)) + OFFSET_DECADES)
    return int(min(max(round(raw), 0), 100))


def risk_level_one(score: int) -> str:
    """:func:`risk_level` of one score."""
    return "highest" if score >= HIGHEST_FROM else "elevated" if score >= ELEVATED_FROM \
        else "normal"


def probability_at_score(score: float) -> float:
    """The probability at which the risk score reaches ``score`` (inverse of risk_score)."""
    odds = 10 ** (score / POINTS_PER_DECADE - OFFSET_DECADES)
    return float(odds / (1 + odds))


def risk_level(score: np.ndarray | int) -> np.ndarray:
    """``normal``, ``elevated`` or ``highest`` for each score."""
    s = np.asarray(score)
    return np.where(s >= HIGHEST_FROM, "highest", np.where(s >= ELEVATED_FROM, "elevated",
                                                            "normal"))
