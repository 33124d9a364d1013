"""Evaluation reports people can look at: business metrics under a cost model, threshold
tables, curves with bootstrap bands, slices by time, segment and scenario, explanations, a
model card, and champion-against-challenger comparisons; written as one self-contained HTML
page with the charts as PNG files beside it."""

from vigil.reports._costs import (
    CostModel,
    Policy,
    ScoreHistogram,
    best_policy,
    cost_curve,
    threshold_table,
)
from vigil.reports._report import ReportFiles, build_report
from vigil.reports._window import ScoredWindow, scored_window

__all__ = [
    "CostModel",
    "Policy",
    "ReportFiles",
    "ScoreHistogram",
    "ScoredWindow",
    "best_policy",
    "build_report",
    "cost_curve",
    "scored_window",
    "threshold_table",
]
