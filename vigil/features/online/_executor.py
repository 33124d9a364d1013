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
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from vigil._errors import SchemaError
from vigil.features._definitions import Spec
from vigil.features._featureset import FeatureSet
from vigil.features.online._plan import KeyPlan, plan
from vigil.features.online._program import Program
from vigil.features.online._state import (
    FeatureState,
    KeyConfig,
    LabelView,
    MemoryState,
    PaymentView,
    Read,
)

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

    def __init__(self, feature_set: FeatureSet, state: FeatureState | None = None, *,
                 keep_last: Mapping[str, tuple[int, Sequence[str]]] | None = None) -> None:
        self.feature_set = feature_set
        self.keep_last = {k: (int(n), tuple(cols)) for k, (n, cols) in (keep_last or {}).items()}
        self.state = state if state is not None else MemoryState()
        self.specs = feature_set.specs()
        self.names = [s.name for s in self.specs]
        self._program = Program(self.specs)
        self._plans: dict[str, KeyPlan] = plan(feature_set, self.keep_last)
        for key, p in self._plans.items():
            self.state.configure(key, KeyConfig(
                columns=tuple(p.columns), numeric=tuple(p.numeric), retain_us=p.retain_us,
                history=p.keeps_payments and _reads_history(self.specs, key),
                label_retain_us=p.label_retain_us or 0, keep_last=p.keep_last))
        self._payment_keys = [k for k, p in self._plans.items() if p.keeps_payments]
        # keys read whole: TimeSince* features, and the kept-last payments
        self._history_keys = {k for k in self._payment_keys
                              if _reads_history(self.specs, k) or self._plans[k].keep_last}
        self._label_keys = [k for k, p in self._plans.items() if p.label_retain_us is not None]
        self.clock = -(2**63)  # the latest payment time seen
        self._since_sweep = 0
        self.sweep_every = 50_000

    @property
    def label_keys(self) -> list[str]:
        """The payment columns whose entities have label-aware features."""
        return list(self._label_keys)

    # ------------------------------------------------------------------ payments
    def features(self, payment: Mapping[str, Any]) -> dict[str, float | None]:
        """The payment's features at its time, without recording it."""
        t = micros(payment["ts"])
        return self._values(payment, t, self._read(payment, t))

    def features_and_last(self, payment: Mapping[str, Any], key: str
                          ) -> tuple[dict[str, float | None], list[dict[str, Any]]]:
        """:meth:`features`, and the newest payments of the payment's ``key`` entity ordered
        before it by (ts, payment_id), up to ``keep_last[key]`` of them, oldest first, as
        dicts (``ts`` in microseconds, ``payment_id`` and the kept columns); one state read.
        """
        n, _ = self.keep_last[key]
        t = micros(payment["ts"])
        views = self._read(payment, t)
        values = self._values(payment, t, views)
        view = views.get((key, None)) if payment.get(key) is not None else None
        if not isinstance(view, PaymentView) or not view.times:
            return values, []
        pid = str(payment["payment_id"])
        hi = bisect.bisect_left(view.times, t)
        while hi < len(view.times) and view.times[hi] == t and view.pids[hi] < pid:
            hi += 1
        lo = max(0, hi - n)
        columns = list(view.values.items())
        rows = [{"ts": view.times[i], "payment_id": view.pids[i],
                 **{c: col[i] for c, col in columns}} for i in range(lo, hi)]
        return values, rows

    def _values(self, payment: Mapping[str, Any], t: int, views: Views
                ) -> dict[str, float | None]:
        return self._program.values(payment, t, views)

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
                # TimeSinceLast may need a payment older than the longest window: the latest
                # one is never evicted, so a key with history features is read whole
                since = -(2**63) if key in self._history_keys else t - self._plans[key].retain_us
                reads.append(Read(key, value, since))
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

