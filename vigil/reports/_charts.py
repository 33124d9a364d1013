"""The report's charts, drawn with matplotlib: each is saved as a PNG file and returned as an
SVG fragment that the HTML page inlines (so the page needs no file beside it to show them).
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

COLORS = ("#3558d6", "#e0671b", "#2a9d5b", "#b23a8a", "#6b6b6b")
FRAUD, GOOD = "#d1373b", "#3558d6"

plt.rcParams.update({
    "font.size": 9, "axes.titlesize": 10, "axes.spines.top": False,
    "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.25,
    "svg.fonttype": "none", "svg.hashsalt": "vigil", "figure.dpi": 100,
})


class Charts:
    """Writes each figure to ``folder/NAME.png`` and keeps its inline SVG."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.svg: dict[str, str] = {}
        self.png: dict[str, Path] = {}

    def add(self, name: str, fig: Figure) -> str:
        fig.tight_layout()
        path = self.folder / f"{name}.png"
        fig.savefig(path, dpi=130)
        buf = io.StringIO()
        fig.savefig(buf, format="svg")
        plt.close(fig)
        svg = buf.getvalue()
        svg = svg[svg.index("<svg"):]
        # ids must be unique across the page: prefix them with the chart's name
        svg = re.sub(r'id="([^"]+)"', lambda m: f'id="{name}-{m.group(1)}"', svg)
        svg = re.sub(r'url\(#([^)]+)\)', lambda m: f"url(#{name}-{m.group(1)})", svg)
        svg = re.sub(r'xlink:href="#([^"]+)"', lambda m: f'xlink:href="#{name}-{m.group(1)}"',
                     svg)
        svg = re.sub(r'<svg ', f'<svg role="img" aria-label="{name}" ', svg, count=1)
        self.svg[name] = svg
        self.png[name] = path
        return svg


def _fig(width: float = 5.2, height: float = 3.6) -> tuple[Figure, Any]:
    fig, ax = plt.subplots(figsize=(width, height))
    return fig, ax


def roc_chart(curves: Sequence[tuple[str, dict[str, list[float]]]]) -> Figure:
    """ROC curves with bootstrap bands, false-positive rate on a log axis (the region a fraud
    team works in is below 1 %)."""
    fig, ax = _fig()
    for i, (label, c) in enumerate(curves):
        fpr = np.maximum(np.asarray(c["fpr"]), 1e-4)
        ax.plot(fpr, c["tpr"], color=COLORS[i % len(COLORS)], label=label, lw=1.6)
        ax.fill_between(fpr, c["lo"], c["hi"], color=COLORS[i % len(COLORS)], alpha=0.18,
                        lw=0)
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1)
    ax.set_ylim(0, 1.01)
    ax.axvline(0.01, color="#999", ls=":", lw=1)
    ax.set_xlabel("false-positive rate (good payments flagged), log scale")
    ax.set_ylabel("recall (frauds flagged)")
    ax.set_title("ROC curve, 95 % bootstrap band")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def pr_chart(curves: Sequence[tuple[str, dict[str, list[float]]]],
             base_rate: float) -> Figure:
    fig, ax = _fig()
    for i, (label, c) in enumerate(curves):
        ax.plot(c["recall"], c["precision"], color=COLORS[i % len(COLORS)], label=label,
                lw=1.6, drawstyle="steps-post")
        ax.fill_between(c["recall"], c["lo"], c["hi"], color=COLORS[i % len(COLORS)],
                        alpha=0.18, lw=0, step="post")
    ax.axhline(base_rate, color="#999", ls=":", lw=1, label=f"fraud rate {base_rate:.2%}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("Precision-recall curve, 95 % bootstrap band")
    ax.legend(loc="upper right", fontsize=8)
    return fig


def score_histogram(scores: np.ndarray, y: np.ndarray, block: int | None = None,
                    review: int | None = None) -> Figure:
    fig, ax = _fig()
    bins = np.arange(0, 102, 2)
    ax.hist(scores[~y], bins=bins, color=GOOD, alpha=0.6, density=True, label="good")
    ax.hist(scores[y], bins=bins, color=FRAUD, alpha=0.6, density=True, label="fraud")
    if review is not None and block is not None and review < block:
        ax.axvline(review + 0.5, color="#e0a21b", lw=1.2, ls="--", label=f"review > {review}")
    if block is not None:
        ax.axvline(block + 0.5, color="#222", lw=1.2, ls="--", label=f"block > {block}")
    ax.set_yscale("log")
    ax.set_xlabel("risk score")
    ax.set_ylabel("share of payments per point (log)")
    ax.set_title("Risk scores by class")
    ax.legend(fontsize=8)
    return fig


def calibration_chart(rows: Sequence[dict[str, float]]) -> Figure:
    fig, ax = _fig()
    pred = np.array([r["predicted"] for r in rows])
    obs = np.array([r["observed"] for r in rows])
    n = np.array([r["payments"] for r in rows])
    lo = max(min(pred.min(), obs[obs > 0].min() if (obs > 0).any() else 1), 1e-5)
    ax.plot([lo, 1], [lo, 1], color="#999", ls=":", lw=1, label="perfect calibration")
    shown = obs > 0
    ax.scatter(pred[shown], obs[shown], s=12 + 60 * n[shown] / n.max(), color=COLORS[0],
               zorder=3, label="risk-score band (size: payments)")
    ax.plot(pred[shown], obs[shown], color=COLORS[0], lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed fraud rate")
    ax.set_title("Calibration by risk-score band")
    ax.legend(fontsize=8, loc="upper left")
    return fig


def over_time_chart(rows: Sequence[dict[str, Any]]) -> Figure:
    fig, ax = _fig(7.4, 3.4)
    days = [r["group"][5:] for r in rows]
    x = np.arange(len(rows))
    ax2 = ax.twinx()
    ax2.bar(x, [r["frauds"] for r in rows], color="#ccc", width=0.6, label="frauds")
    ax2.set_ylabel("frauds per day")
    ax2.grid(False)
    ax.set_zorder(ax2.get_zorder() + 1)
    ax.patch.set_visible(False)
    for key, label, color in (("recall", "recall at 1 % FPR", COLORS[0]),
                              ("ap", "average precision", COLORS[1]),
                              ("auc", "AUC", COLORS[2])):
        ax.plot(x, [r[key] for r in rows], marker="o", ms=3, color=color, label=label)
    ax.set_ylim(0, 1.02)
    ax.set_xticks(x, days, rotation=45 if len(days) > 10 else 0, fontsize=8)
    ax.set_title("Metrics per day")
    ax.legend(fontsize=8, loc="lower left")
    return fig


def segment_chart(segments: dict[str, list[dict[str, Any]]], overall: float) -> Figure:
    labels, values, counts = [], [], []
    for name, rows in segments.items():
        for r in rows:
            labels.append(f"{name}: {r['group']}")
            values.append(r["recall"])
            counts.append(r["frauds"])
    fig, ax = _fig(6.4, max(2.6, 0.24 * len(labels) + 0.8))
    y = np.arange(len(labels))[::-1]
    vals = np.nan_to_num(np.asarray(values, dtype=float), nan=0.0)
    ax.barh(y, vals, color=[COLORS[0] if c >= 10 else "#9fb0e6" for c in counts], height=0.7)
    for yi, v, c in zip(y, values, counts, strict=True):
        ax.text(min(np.nan_to_num(v, nan=0.0) + 0.01, 0.84), yi,
                "no fraud" if c == 0 else f"{v:.0%} of {c}", va="center", fontsize=7)
    ax.axvline(overall, color="#222", ls="--", lw=1, label=f"overall {overall:.0%}")
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_xlabel("recall at the 1 % FPR threshold (pale: fewer than 10 frauds)")
    ax.set_title("Recall by segment")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def scenario_chart(rows: Sequence[dict[str, Any]],
                   other: Sequence[dict[str, Any]] | None = None,
                   names: tuple[str, str] = ("", "")) -> Figure:
    fig, ax = _fig(6.0, max(2.4, 0.4 * len(rows) + 0.9))
    y = np.arange(len(rows))[::-1]
    h = 0.38 if other else 0.7
    ax.barh(y + (h / 2 if other else 0), [r["recall"] for r in rows], height=h,
            color=COLORS[0], label=names[0] or None)
    if other:
        ax.barh(y - h / 2, [r["recall"] for r in other], height=h, color=COLORS[1],
                label=names[1])
        ax.legend(fontsize=8, loc="lower right")
    ax.set_yticks(y, [f"{r['scenario']} ({r['frauds']})" for r in rows], fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("recall at the 1 % FPR threshold")
    ax.set_title("Recall by fraud scenario (frauds in brackets)")
    return fig


def importance_chart(rows: Sequence[dict[str, float]], key: str, title: str,
                     top: int = 15) -> Figure:
    rows = list(rows)[:top]
    fig, ax = _fig(5.6, max(2.4, 0.26 * len(rows) + 0.8))
    y = np.arange(len(rows))[::-1]
    ax.barh(y, [r[key] for r in rows], color=COLORS[0], height=0.7)
    ax.set_yticks(y, [r["feature"] for r in rows], fontsize=7)
    ax.set_title(title)
    return fig


def shap_chart(sample: dict[str, Any], order: Sequence[str], top: int = 12) -> Figure:
    """A beeswarm-like summary: one row per feature, one dot per payment at its SHAP value,
    coloured by the feature's value (its rank within the sample)."""
    names = list(sample["names"])
    shown = list(order)[:top]
    fig, ax = _fig(7.0, max(2.6, 0.32 * len(shown) + 1.0))
    rng = np.random.default_rng(0)
    for pos, feature in enumerate(shown):
        j = names.index(feature)
        v = sample["values"][:, j]
        x = sample["X"][:, j].astype(float)
        rank = np.full(len(x), 0.5)
        ok = ~np.isnan(x)
        if ok.sum() > 1:
            rank[ok] = np.argsort(np.argsort(x[ok])) / (ok.sum() - 1)
        yy = len(shown) - 1 - pos + rng.uniform(-0.3, 0.3, len(v))
        ax.scatter(v, yy, c=rank, cmap="coolwarm", s=3, alpha=0.6, lw=0, rasterized=True)
    ax.axvline(0, color="#999", lw=0.8)
    ax.set_yticks(np.arange(len(shown))[::-1], shown, fontsize=7)
    ax.set_xlabel("SHAP value (log-odds); colour: feature value, low blue, high red")
    ax.set_title("SHAP values, sample of the test window")
    return fig


def cost_chart(curve: dict[str, list[float]], block: int, review: int,
               currency: str) -> Figure:
    fig, ax = _fig(6.0, 3.6)
    t = np.asarray(curve["threshold"])
    ax.plot(t, curve["block_only"], color=COLORS[0], label="block only")
    with_review = np.asarray(curve["with_review"], dtype=float)
    ax.plot(t, np.where(np.isfinite(with_review), with_review, np.nan), color=COLORS[1],
            label="block, and review the best band that fits the capacity")
    ax.axvline(block, color="#222", ls="--", lw=1,
               label=f"best: block > {block}" + (f", review > {review}" if review < block
                                                else ""))
    ax.axhline(0, color="#999", lw=0.8)
    clip_losses(ax, curve["block_only"])
    ax.set_xlabel("block threshold (block if risk score > N)")
    ax.set_ylabel(f"net benefit ({currency})")
    ax.set_title("Net benefit by threshold")
    ax.legend(fontsize=8)
    return fig


def clip_losses(ax: Any, values: Sequence[float]) -> None:
    """Keep the interesting part in view: blocking nearly everything loses so much that the
    curve's top would be a flat line; show losses down to half the best gain."""
    v = np.asarray(values, dtype=float)
    best = np.nanmax(v)
    if best > 0 and np.nanmin(v) < -0.5 * best:
        ax.set_ylim(bottom=-0.5 * best, top=1.08 * best)


def label_delay_chart(delay_days: np.ndarray, coverage: Sequence[dict[str, Any]]) -> Figure:
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.2))
    ax = axes[0]
    ax.hist(np.clip(delay_days, 0, 120), bins=60, color=COLORS[0])
    ax.set_xlabel("days from payment to first fraud report")
    ax.set_ylabel("frauds")
    ax.set_title("Label delay")
    ax = axes[1]
    if coverage:
        share = [c["known"] / c["eventual"] if c["eventual"] else np.nan for c in coverage]
        ax.plot(np.arange(len(coverage)), share, marker="o", ms=3, color=COLORS[1])
        step = max(1, len(coverage) // 6)
        ax.set_xticks(np.arange(len(coverage))[::step],
                      [c["day"][5:] for c in coverage][::step], fontsize=8)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("payment day (training window)")
    ax.set_ylabel("share of eventual fraud known")
    ax.set_title("Label coverage at the training cutoff")
    return fig


def cost_overlay_chart(curves: dict[str, dict[str, list[float]]], names: tuple[str, str],
                       currencies: list[str]) -> Figure:
    """Both models' net benefit curves (champion-challenger)."""
    fig, ax = _fig(6.0, 3.6)
    for i, (key, name) in enumerate((("a", names[0]), ("b", names[1]))):
        c = curves[key]
        wr = np.asarray(c["with_review"], dtype=float)
        ax.plot(c["threshold"], np.where(np.isfinite(wr), wr, np.nan),
                color=COLORS[i], label=f"{name}, with review")
        ax.plot(c["threshold"], c["block_only"], color=COLORS[i], ls=":",
                label=f"{name}, block only")
    ax.axhline(0, color="#999", lw=0.8)
    clip_losses(ax, [*curves["a"]["block_only"], *curves["b"]["block_only"]])
    ax.set_xlabel("block threshold (block if risk score > N)")
    currency = currencies[0] if len(currencies) == 1 else "mixed currencies"
    ax.set_ylabel(f"net benefit ({currency})")
    ax.set_title("Net benefit by threshold")
    ax.legend(fontsize=7)
    return fig


def recall_difference_chart(seg_rows: dict[str, list[dict[str, Any]]]) -> Figure:
    """Recall B − A per segment with paired intervals (champion-challenger)."""
    labels, diffs, lo, hi = [], [], [], []
    for name, rows in seg_rows.items():
        for r in rows:
            labels.append(f"{name}: {r['group']} ({r['frauds']})")
            diffs.append(r["diff"])
            lo.append(r["diff"] - r["lo"])
            hi.append(r["hi"] - r["diff"])
    fig, ax = _fig(6.4, max(2.6, 0.24 * len(labels) + 0.9))
    y = np.arange(len(labels))[::-1]
    colors = [COLORS[1] if d > 0 else COLORS[0] for d in diffs]
    ax.barh(y, diffs, color=colors, height=0.6)
    ax.errorbar(diffs, y, xerr=[lo, hi], fmt="none", ecolor="#333", elinewidth=0.8, capsize=2)
    ax.axvline(0, color="#222", lw=0.8)
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_xlabel("recall B − A at each model's 1 % FPR threshold (95 % paired interval)")
    ax.set_title("Where each model wins (right: B, left: A)")
    return fig
