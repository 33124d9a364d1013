"""The online executor: a feature set's values per payment, as payments and labels arrive.

It keeps the contract of :mod:`vigil.features._definitions` exactly, so that for the same
history it gives what the offline engine gives (property-tested against it):

- a payment at ``t`` sees its entities' payments with ``t - w < ts < t`` (and itself where
  the definition says so); other payments at exactly ``t`` are never seen;
- label-aware features see first label reports with ``t - w < reported_at < t``, whenever
  the label arrived.

Feed events in time order per entity (payments at one instant in any order; a label reported
at ``r`` before the payments after ``r``). A payment that arrives later than payments of the
same entity with later times still gets exact features while what it reads has not been
evicted (its entities' longest windows back from their newest payment).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from vigil._errors import SchemaError
from vigil.features._definitions import LABEL_OPS, Spec
from vigil.features._featureset import FeatureSet
from vigil.features.online._plan import KeyPlan, plan
from vigil.features.online._state import (
    FeatureState,
    KeyConfig,
    LabelView,
    MemoryState,
    PaymentView,
    Read,
)

_DAY_US = 86_400_000_000
_HOUR_US = 3_600_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# A payment's earlier labels: (first report of any label, first report of a fraud label), µs.
FirstReports = tuple[int | None, int | None]
Views = dict[tuple[str, str | None], PaymentView | LabelView | None]
PaymentLookup = Callable[[str], tuple[Mapping[str, Any], FirstReports] | None]


def micros(value: datetime | int) -> int:
    """Microseconds since the epoch, exactly, of a timezone-aware datetime (ints pass)."""
    if isinstance(value, int):
        return value
    if value.tzinfo is None:
        raise SchemaError("timestamps must be timezone-aware (UTC)", column="ts")
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class OnlineFeatures:
    """Per-event features of one :class:`~vigil.features.FeatureSet`.

    >>> from datetime import datetime, UTC
    >>> from vigil.features import Count, FeatureSet
    >>> online = OnlineFeatures(FeatureSet("v", {"card": "card_id"},
    ...                                    [Count(by="card", window="1h")]))
    >>> t = datetime(2024, 5, 1, 12, tzinfo=UTC)
    >>> online.add_payment({"payment_id": "p1", "ts": t, "card_id": "c1"})
    {'count_by_card_1h': 1.0}
    >>> online.add_payment({"payment_id": "p2", "ts": t.replace(minute=30), "card_id": "c1"})
    {'count_by_card_1h': 2.0}
    """

    def __init__(self, feature_set: FeatureSet, state: FeatureState | None = None) -> None:
        self.feature_set = feature_set
        self.state = state if state is not None else MemoryState()
        self.specs = feature_set.specs()
        self.names = [s.name for s in self.specs]
        self._plans: dict[str, KeyPlan] = plan(feature_set)
        for key, p in self._plans.items():
            self.state.configure(key, KeyConfig(
                columns=tuple(p.columns), retain_us=p.retain_us,
                history=p.keeps_payments and _reads_history(self.specs, key),
                label_retain_us=p.label_retain_us or 0))
        self._payment_keys = [k for k, p in self._plans.items() if p.keeps_payments]
        self._label_keys = [k for k, p in self._plans.items() if p.label_retain_us is not None]
        self.clock = -(2**63)  # the latest payment time seen
        self._since_sweep = 0
        self.sweep_every = 50_000

    # ------------------------------------------------------------------ payments
    def features(self, payment: Mapping[str, Any]) -> dict[str, float | None]:
        """The payment's features at its time, without recording it."""
        t = micros(payment["ts"])
        views = self._read(payment, t)
        return {s.name: _value(s, payment, t, views) for s in self.specs}

    def add_payment(self, payment: Mapping[str, Any]) -> dict[str, float | None]:
        """The payment's features at its time; then record it for the payments after it."""
        values = self.features(payment)
        self.record_payment(payment)
        return values

    def record_payment(self, payment: Mapping[str, Any]) -> None:
        """Record a payment without computing its features (rebuilding state from a log)."""
        t = micros(payment["ts"])
        pid = str(payment["payment_id"])
        for key in self._payment_keys:
            value = payment.get(key)
            if value is not None:
                self.state.add_payment(key, value, t, pid, payment)
        if t > self.clock:
            self.clock = t
        self._since_sweep += 1
        if self._since_sweep >= self.sweep_every:
            self.state.sweep(self.clock)
            self._since_sweep = 0

    def _read(self, payment: Mapping[str, Any], t: int) -> Views:
        reads = []
        for key in self._payment_keys:
            value = payment.get(key)
            if value is not None:
                reads.append(Read(key, value, t - self._plans[key].retain_us - 1))
        for key in self._label_keys:
            value = payment.get(key)
            if value is not None:
                since = t - (self._plans[key].label_retain_us or 0)
                reads += [Read(key, value, since, "labelled"), Read(key, value, since, "fraud")]
        views = self.state.read(reads)
        return {(r.key, r.timeline): v for r, v in zip(reads, views, strict=True)}

    # ------------------------------------------------------------------ labels
    def add_label(self, payment: Mapping[str, Any], *, is_fraud: bool,
                  reported_at: datetime | int, earlier: FirstReports = (None, None)) -> None:
        """Record a label of ``payment`` (its key columns are read) reported at ``reported_at``.

        ``earlier``: the first report times of the labels this payment already had (from the
        store), so a second label of a payment changes nothing, as offline.
        """
        if not self._label_keys:
            return
        reported = micros(reported_at)
        pid = str(payment["payment_id"])
        first_label, first_fraud = earlier
        for key in self._label_keys:
            value = payment.get(key)
            if value is None:
                continue
            self.state.add_label(key, value, "labelled", pid, reported, first_label)
            if is_fraud:
                self.state.add_label(key, value, "fraud", pid, reported, first_fraud)

    # ------------------------------------------------------------------ replay
    def replay(self, payments: pa.Table, labels: pa.Table | None = None, *,
               progress: Callable[[int, int], None] | None = None) -> pa.Table:
        """Feed a history in time order (labels at their report times, after the payments of
        the same instant) and return each payment's features as it was computed then: the
        same table as :func:`vigil.features.build_features` gives for that history."""
        return replay(self, payments, labels, progress=progress)


def _reads_history(specs: list[Spec], key: str) -> bool:
    def walk(s: Spec) -> bool:
        return (s.key == key and s.op in ("since_first", "since_last")) or any(
            walk(o) for o in s.operands)
    return any(walk(s) for s in specs)


# ---------------------------------------------------------------------- computing one value
def _value(spec: Spec, row: Mapping[str, Any], t: int, views: Views) -> float | None:
    op = spec.op
    if op == "ratio":
        num = _value(spec.operands[0], row, t, views)
        den = _value(spec.operands[1], row, t, views)
        return None if num is None or den is None or den == 0 else num / den
    if spec.key is None:
        return _row_value(spec, row, t)
    if row.get(spec.key) is None:
        return None
    if op in LABEL_OPS:
        return _label_value(spec, t, views)
    view = views.get((spec.key, None))
    times = view.times if view is not None else []  # type: ignore[union-attr]
    hi = bisect.bisect_left(times, t)  # payments strictly before t
    if op == "since_first":
        first = view.first if view is not None else None  # type: ignore[union-attr]
        return (t - first) / 1e6 if first is not None and first < t else None
    if op == "since_last":
        if hi:
            return (t - times[hi - 1]) / 1e6
        gone = view.gone if view is not None else None  # type: ignore[union-attr]
        return (t - gone) / 1e6 if gone is not None and gone < t else None
    lo = bisect.bisect_right(times, t - spec.window_us)  # type: ignore[operator]
    if op == "count":
        return float(hi - lo + (1 if spec.include_current else 0))
    column = spec.column
    earlier = view.values[column][lo:hi] if view is not None and hi > lo else []  # type: ignore
    current = [row.get(column)] if spec.include_current else []  # type: ignore[arg-type]
    if op == "count_distinct":
        return float(len({v for v in earlier + current if v is not None}))
    values = [float(v) for v in earlier + current if v is not None]
    if op == "sum":
        return math.fsum(values)
    if op == "relative":
        own = row.get(column)  # type: ignore[arg-type]
        if not values or own is None:
            return None
        mean = math.fsum(values) / len(values)
        return float(own) / mean if mean else None
    if not values:
        return None
    if op == "mean":
        return math.fsum(values) / len(values)
    if op == "min":
        return min(values)
    if op == "max":
        return max(values)
    raise AssertionError(op)  # pragma: no cover


def _label_value(spec: Spec, t: int, views: Views) -> float | None:
    def window(timeline: str) -> list[int]:
        view = views.get((spec.key, timeline))  # type: ignore[arg-type]
        if view is None:
            return []
        lo = bisect.bisect_right(view.times, t - spec.window_us)  # type: ignore[operator]
        return view.times[lo:bisect.bisect_left(view.times, t)]

    frauds = window("fraud")
    if spec.op == "fraud_count":
        return float(len(frauds))
    if spec.op == "since_first_fraud":
        return (t - frauds[0]) / 1e6 if frauds else None
    if spec.op == "since_last_fraud":
        return (t - frauds[-1]) / 1e6 if frauds else None
    labelled = len(window("labelled"))
    if spec.op == "label_count":
        return float(labelled)
    if spec.op == "fraud_rate":
        return len(frauds) / labelled if labelled else 0.0
    raise AssertionError(spec.op)  # pragma: no cover


def _row_value(spec: Spec, row: Mapping[str, Any], t: int) -> float | None:
    day, in_day = divmod(t, _DAY_US)
    if spec.op == "value":
        v = row.get(spec.column)  # type: ignore[arg-type]
        return None if v is None else float(v)
    if spec.op == "is_weekend":  # 1970-01-01 was a Thursday
        return float((day + 3) % 7 >= 5)
    if spec.op == "day_of_week":
        return float((day + 3) % 7)
    if spec.op == "hour_of_day":
        return float(in_day // _HOUR_US)
    if spec.op == "is_night":
        return float(in_day // _HOUR_US <= spec.param)  # type: ignore[operator]
    raise AssertionError(spec.op)  # pragma: no cover


# ---------------------------------------------------------------------- replaying a history
def replay(online: OnlineFeatures, payments: pa.Table, labels: pa.Table | None = None, *,
           progress: Callable[[int, int], None] | None = None) -> pa.Table:
    """See :meth:`OnlineFeatures.replay`."""
    rows = payments.to_pylist()
    for r in rows:
        r["_t"] = micros(r["ts"])
    rows.sort(key=lambda r: (r["_t"], str(r["payment_id"])))
    by_id = {str(r["payment_id"]): r for r in rows}
    # only the first report of each kind per payment matters; later ones change nothing
    first: dict[str, list[int | None]] = {}
    for lab in (labels.to_pylist() if labels is not None else []):
        row = by_id.get(str(lab["payment_id"]))
        if row is None:
            continue
        r = micros(lab["reported_at"])
        seen = first.setdefault(str(row["payment_id"]), [None, None])
        seen[0] = r if seen[0] is None else min(seen[0], r)
        if lab["is_fraud"]:
            seen[1] = r if seen[1] is None else min(seen[1], r)
    label_events = sorted(
        ((r, pid, fraud) for pid, (r_any, r_fraud) in first.items()
         for r, fraud in ((r_any, False), (r_fraud, True)) if r is not None),
        key=lambda e: (e[0], e[1], e[2]))

    out: dict[str, list[float | None]] = {n: [] for n in online.names}
    j = 0
    total = len(rows)
    for i, row in enumerate(rows):
        t = row["_t"]
        while j < len(label_events) and label_events[j][0] < t:
            r, pid, fraud = label_events[j]
            _apply_first_report(online, by_id[pid], r, fraud)
            j += 1
        for name, value in online.add_payment(row).items():
            out[name].append(value)
        if progress is not None and (i + 1) % 10_000 == 0:
            progress(i + 1, total)
    if progress is not None:
        progress(total, total)
    arrays = [pa.array([r["payment_id"] for r in rows], payments.schema.field("payment_id").type),
              pa.array([r["ts"] for r in rows], pa.timestamp("us", tz="UTC"))]
    arrays += [pa.array(out[n], pa.float64()) for n in online.names]
    return pa.table(arrays, names=["payment_id", "ts", *online.names])


def _apply_first_report(online: OnlineFeatures, payment: Mapping[str, Any], r: int,
                        fraud: bool) -> None:
    """Apply a payment's first report on one timeline (the replay knows it is the first)."""
    pid = str(payment["payment_id"])
    for key in online._label_keys:
        value = payment.get(key)
        if value is not None:
            online.state.add_label(key, value, "fraud" if fraud else "labelled", pid, r, None)

