"""A model's scores on a test window, with everything a report slices them by.

:func:`scored_window` scores the rows of :func:`vigil.pipeline.test_rows` and keeps, per
payment: the label as known today, the probability and 0–100 risk score, the amount, the card,
the day, the simulator's scenario where there is ground truth, the segment each payment falls
in, and the model's inputs (for explanations).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vigil._errors import ConfigError
from vigil.evaluation import labels_known_at
from vigil.models import ModelBundle, feature_matrix, risk_score
from vigil.pipeline import Prepared, model_inputs, test_rows

AMOUNT_BANDS = (0.0, 10.0, 50.0, 200.0, 1000.0)
TOP_VALUES = 8
NEW_CARD_DAYS = 7
BUILTIN_SEGMENTS = ("channel", "card country", "amount band", "card history", "cross-border")


@dataclass
class ScoredWindow:
    """One model's scores on one test window (all arrays row for row)."""

    model: str
    bundle: ModelBundle
    start: datetime
    end: datetime
    payment_id: np.ndarray
    ts: np.ndarray  # datetime64[us]
    y: np.ndarray
    probability: np.ndarray
    risk_score: np.ndarray
    amount: np.ndarray
    card: np.ndarray
    day: np.ndarray
    X: np.ndarray
    segments: dict[str, np.ndarray]
    segment_order: dict[str, list[str]]
    scenario: np.ndarray | None
    dropped_known_compromised: int
    currencies: list[str] = field(default_factory=list)

    @property
    def days(self) -> float:
        return max((self.end - self.start) / timedelta(days=1), 1e-9)

    def __len__(self) -> int:
        return len(self.y)


def _strings(values: pa.ChunkedArray, missing: str = "unknown") -> np.ndarray:
    return np.asarray(pc.fill_null(values.cast(pa.string()), missing)
                      .to_numpy(zero_copy_only=False), dtype=object)


def _top(values: np.ndarray, n: int = TOP_VALUES) -> np.ndarray:
    """Keep the n most frequent values, the rest become 'other'."""
    uniq, counts = np.unique(values.astype(str), return_counts=True)
    if len(uniq) <= n + 1:
        return values.astype(str)
    keep = set(uniq[np.argsort(-counts, kind="stable")[:n]].tolist())
    return np.array([v if v in keep else "other" for v in values.astype(str)], dtype=object)


def amount_band_names() -> list[str]:
    edges = AMOUNT_BANDS
    return [*(f"{lo:g}–{hi:g}" for lo, hi in itertools.pairwise(edges)), f"≥ {edges[-1]:g}"]


def amount_bands(amount: np.ndarray) -> np.ndarray:
    idx = np.searchsorted(np.asarray(AMOUNT_BANDS[1:]), amount, side="right")
    return np.array(amount_band_names(), dtype=object)[idx]


def _numeric_bands(values: np.ndarray, name: str) -> tuple[np.ndarray, list[str]]:
    """Quintiles of a numeric column, as labelled bands (missing values: 'missing')."""
    v = values.astype(float)
    ok = ~np.isnan(v)
    out = np.full(len(v), "missing", dtype=object)
    if not ok.any():
        return out, ["missing"]
    edges = np.unique(np.quantile(v[ok], [0.2, 0.4, 0.6, 0.8]))
    idx = np.searchsorted(edges, v[ok], side="right")
    bounds = [-np.inf, *edges.tolist(), np.inf]
    labels = []
    for i in range(len(bounds) - 1):
        lo, hi = bounds[i], bounds[i + 1]
        labels.append(f"{name} < {hi:.4g}" if lo == -np.inf else
                      f"{name} ≥ {lo:.4g}" if hi == np.inf else f"{lo:.4g}–{hi:.4g}")
    out[ok] = np.array(labels, dtype=object)[idx]
    return out, [*labels, "missing"]


def _segments(prepared: Prepared, rows: np.ndarray, extra: Sequence[str]
              ) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """Each payment's group per segment, and the natural order of ordered segments (bands).
    A built-in segment with one group only (the data lacks the column) is left out."""
    pay = prepared.payments
    out: dict[str, np.ndarray] = {}
    order: dict[str, list[str]] = {"amount band": amount_band_names()}
    out["channel"] = _strings(pay.column("channel"))[rows]
    out["card country"] = _top(_strings(pay.column("card_country"))[rows])
    out["amount band"] = amount_bands(prepared.column("amount")[rows])
    # new versus returning: a card first seen in the data less than NEW_CARD_DAYS before
    cards = prepared.column("card_id")
    ts = pc.cast(prepared.ts, pa.int64()).to_numpy()
    _, inverse = np.unique(cards, return_inverse=True)
    first = np.full(inverse.max() + 1, np.iinfo(np.int64).max)
    np.minimum.at(first, inverse, ts)
    young = (ts - first[inverse]) < NEW_CARD_DAYS * 86_400_000_000
    out["card history"] = np.where(young[rows], f"new card (< {NEW_CARD_DAYS} days)",
                                   "returning card").astype(object)
    card_c = _strings(pay.column("card_country"), "")[rows]
    merch_c = _strings(pay.column("merchant_country"), "")[rows]
    known = (card_c != "") & (merch_c != "")
    out["cross-border"] = np.where(~known, "unknown",
                                   np.where(card_c != merch_c, "cross-border", "domestic")
                                   ).astype(object)
    out = {k: v for k, v in out.items() if len(set(v.tolist())) > 1}
    for name in extra:
        if name in out:
            continue
        if name in pay.column_names:
            col = pay.column(name)
        elif name in prepared.features.column_names:
            col = prepared.features.column(name)
        else:
            raise ConfigError(f"--segment {name}: no payment column or feature of that name; "
                              f"payment columns are {', '.join(pay.column_names)}")
        if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
            values = np.asarray(col.cast(pa.float64()).to_numpy(zero_copy_only=False))[rows]
            if len(np.unique(values)) > TOP_VALUES:
                out[name], order[name] = _numeric_bands(values, name)
            else:
                out[name] = np.array([f"{name} = {v:g}" for v in values], dtype=object)
        else:
            out[name] = _top(_strings(col)[rows])
    return out, order


def scored_window(bundle: ModelBundle, prepared: Prepared, start: datetime, end: datetime, *,
                  segments: Sequence[str] = (), drop_known_compromised: bool = True,
                  known_since: datetime | None = None, name: str | None = None) -> ScoredWindow:
    """Score ``bundle`` on the payments of [start, end) (see :func:`vigil.pipeline.test_rows`)."""
    mask, dropped = test_rows(bundle, prepared, start, end,
                              drop_known_compromised=drop_known_compromised,
                              known_since=known_since)
    rows = np.flatnonzero(mask)
    y = labels_known_at(prepared.payments.column("payment_id"), prepared.labels, None)[rows]
    X = feature_matrix(model_inputs(bundle, prepared).take(pa.array(rows)),
                       bundle.feature_names)
    probability = bundle.model.predict_proba(X)
    scenario = prepared.scenarios()
    groups, order = _segments(prepared, rows, segments)
    currencies = sorted(set(_strings(prepared.payments.column("currency"))[rows].tolist()))
    return ScoredWindow(
        model=name or bundle.model_version or f"{bundle.feature_set.name} (unsaved)",
        bundle=bundle, start=start, end=end,
        payment_id=prepared.column("payment_id")[rows],
        ts=np.asarray(pc.cast(prepared.ts, pa.int64()).to_numpy()[rows]).astype("datetime64[us]"),
        y=y, probability=probability, risk_score=risk_score(probability),
        amount=prepared.column("amount")[rows].astype(float),
        card=prepared.column("card_id")[rows], day=prepared.day_keys()[rows], X=X,
        segments=groups, segment_order=order,
        scenario=None if scenario is None else scenario[rows],
        dropped_known_compromised=dropped, currencies=currencies)


def label_facts(prepared: Prepared, bundle: ModelBundle) -> dict[str, Any]:
    """How labels arrive in this data: the delay from payment to first fraud report, and the
    share of the training window's eventual fraud that was known at its label cutoff."""
    labels = prepared.labels.filter(prepared.labels.column("is_fraud"))
    out: dict[str, Any] = {"fraud_labels": labels.num_rows}
    if labels.num_rows == 0:
        return out
    first = (labels.group_by("payment_id").aggregate([("reported_at", "min")])
             .rename_columns(["payment_id", "reported_at"]))
    idx = pc.index_in(first.column("payment_id"), prepared.payments.column("payment_id"))
    found = pc.is_valid(idx)
    first = first.filter(found)
    pay_ts = pc.cast(pc.take(prepared.ts, pc.filter(idx, found)), pa.int64()).to_numpy()
    rep_ts = pc.cast(first.column("reported_at"), pa.int64()).to_numpy()
    delay_days = (rep_ts - pay_ts) / 86_400e6
    out["delay_days"] = delay_days
    out["delay"] = {q: float(np.quantile(delay_days, v)) for q, v in
                    (("p10", 0.1), ("median", 0.5), ("p90", 0.9), ("max", 1.0))}
    window = bundle.training.get("window") or {}
    if window.get("start") and window.get("label_cutoff"):
        start = np.datetime64(datetime.fromisoformat(window["start"]).replace(tzinfo=None), "us")
        end = np.datetime64(datetime.fromisoformat(window["end"]).replace(tzinfo=None), "us")
        cutoff = np.datetime64(
            datetime.fromisoformat(window["label_cutoff"]).replace(tzinfo=None), "us")
        pay = pay_ts.astype("datetime64[us]")
        rep = rep_ts.astype("datetime64[us]")
        inside = (pay >= start) & (pay < end)
        eventual = int(inside.sum())
        known = int((inside & (rep < cutoff)).sum())
        out["coverage"] = {"eventual_frauds": eventual, "known_at_cutoff": known,
                           "share": known / eventual if eventual else float("nan")}
        days = pay[inside].astype("datetime64[D]")
        per_day = []
        for d in np.unique(days):
            sel = days == d
            per_day.append({"day": str(d), "eventual": int(sel.sum()),
                            "known": int((rep[inside][sel] < cutoff).sum())})
        out["coverage_by_day"] = per_day
    return out
