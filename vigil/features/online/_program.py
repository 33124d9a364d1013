"""A feature set compiled for one payment at a time: the shared work laid out flat.

Features of one set share most of their work: ``amount_mean_by_card_7d`` and
``count_by_card_7d`` search the same card's payments for the same 7-day window, and five
label features read the same terminal's fraud reports. :class:`Program` finds that shared
work once, when the set is compiled, and numbers it:

- **ranges**: one binary search per (entity key, window): the payments with
  ``t - w < ts < t``;
- **summaries**: one pass per (range, column): count, and the exact sum, minimum and maximum
  of the non-null values where a feature reads them; and, for features whose window includes
  the payment, the same folded with the payment's own value;
- **reports**: one binary search per (entity key, label timeline, window): the first label
  reports with ``t - w < reported_at < t``.

Per payment, :meth:`Program.values` fills those slots in a few flat loops, and each feature
is a small function that reads its slots by position. Doing the shared work eagerly, by
index, costs far fewer Python calls and dictionary look-ups than computing it on demand
through a cache, and computes exactly the same values (the executor's identity tests against
the offline engine hold it to that).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping
from typing import Any

from vigil.features._definitions import LABEL_OPS, Spec
from vigil.features.online._state import LabelView, PaymentView

_DAY_US = 86_400_000_000
_HOUR_US = 3_600_000_000
_NO_SUMMARY = (0, 0.0, math.inf, -math.inf)

Views = dict[tuple[str, str | None], PaymentView | LabelView | None]
# what a feature function reads: the row, its time, and the filled slots
Slots = tuple[Mapping[str, Any], int, dict[str, tuple[Any, int]], list[Any], list[Any],
              list[Any], list[Any]]
Compiled = Callable[[Slots], float | None]


class Program:
    """The specs of a feature set as slot layouts and one function per feature."""

    def __init__(self, specs: list[Spec]) -> None:
        self.keys: list[str] = []  # entity keys whose payment views are read
        self.ranges: list[tuple[str, int]] = []  # (key, window)
        self.summaries: list[tuple[int, str]] = []  # (range slot, column)
        self.needs: list[list[bool]] = []  # per summary: is its sum, min, max read
        self.with_own: list[tuple[int, str]] = []  # (summary slot, column): plus the row's value
        self.reports: list[tuple[str, str, int]] = []  # (key, timeline, window)
        self._slot: dict[tuple[Any, ...], int] = {}
        self.features = [(s.name, s.key, self._compile(s, guard=False)) for s in specs]

    # ------------------------------------------------------------------ per payment
    def values(self, row: Mapping[str, Any], t: int, views: Views
               ) -> dict[str, float | None]:
        """Every feature of ``row`` at time ``t`` (µs) from the entities' ``views``."""
        heads: dict[str, tuple[Any, int]] = {}
        for key in self.keys:
            view = views.get((key, None))
            heads[key] = (view, bisect_left(view.times, t) if view is not None else 0)
        ranges: list[Any] = []
        for key, window in self.ranges:
            view, hi = heads[key]
            ranges.append((view, bisect_right(view.times, t - window, 0, hi), hi)
                          if view is not None else (None, 0, 0))
        summaries: list[Any] = []
        for (r, column), (want_sum, want_min, want_max) in zip(self.summaries, self.needs,
                                                                    strict=True):
            view, lo, hi = ranges[r]
            if view is None or hi <= lo:
                summaries.append(_NO_SUMMARY)
                continue
            vals = view.values[column][lo:hi]
            if None in vals:
                vals = [v for v in vals if v is not None]
            summaries.append((len(vals), math.fsum(vals) if want_sum else 0.0,
                              min(vals) if want_min else math.inf,
                              max(vals) if want_max else -math.inf) if vals else _NO_SUMMARY)
        with_own: list[Any] = []
        for i, column in self.with_own:
            summary = summaries[i]
            own = row.get(column)
            if own is None:
                with_own.append(summary)
            else:
                n, total, low, high = summary
                own = float(own)
                with_own.append((n + 1, math.fsum((total, own)), min(low, own), max(high, own)))
        reports: list[Any] = []
        for key, timeline, window in self.reports:
            view = views.get((key, timeline))
            if view is None:
                reports.append(((), 0, 0))
            else:
                times = view.times
                hi = bisect_left(times, t)
                reports.append((times, bisect_right(times, t - window, 0, hi), hi))
        slots = (row, t, heads, ranges, summaries, reports, with_own)
        get = row.get
        return {name: f(slots) if key is None or get(key) is not None else None
                for name, key, f in self.features}

    # ------------------------------------------------------------------ compiling
    def _number(self, table: list[Any], item: tuple[Any, ...]) -> int:
        found = self._slot.get((id(table), *item))
        if found is None:
            found = self._slot[(id(table), *item)] = len(table)
            table.append(item)
        return found

    def _head(self, key: str) -> None:
        if key not in self.keys:
            self.keys.append(key)

    def _range(self, key: str, window: int) -> int:
        self._head(key)
        return self._number(self.ranges, (key, window))

    def _compile(self, spec: Spec, *, guard: bool = True) -> Compiled:
        """The spec as a function of the slots. ``guard=False`` leaves the null-key check
        (null key: null feature) to :meth:`values`, which does it once per feature."""
        op, key = spec.op, spec.key
        if op == "ratio":
            num, den = (self._compile(o) for o in spec.operands)

            def ratio(c: Slots) -> float | None:
                n, d = num(c), den(c)
                return None if n is None or d is None or d == 0 else n / d
            return ratio
        if key is None:
            return lambda c: _row_value(spec, c[0], c[1])
        if op in LABEL_OPS:
            inner = self._compile_label(op, key, spec.window_us)  # type: ignore[arg-type]
        elif op in ("since_first", "since_last"):
            self._head(key)
            inner = _compile_history(op, key)
        elif op == "count":
            r = self._range(key, spec.window_us)  # type: ignore[arg-type]
            extra = 1.0 if spec.include_current else 0.0

            def inner(c: Slots) -> float | None:
                _, lo, hi = c[3][r]
                return hi - lo + extra
        elif op == "count_distinct":
            r = self._range(key, spec.window_us)  # type: ignore[arg-type]
            column, include = spec.column, spec.include_current

            def inner(c: Slots) -> float | None:
                view, lo, hi = c[3][r]
                seen = set(view.values[column][lo:hi]) if view is not None else set()
                if include:
                    seen.add(c[0].get(column))  # type: ignore[arg-type]
                seen.discard(None)
                return float(len(seen))
        else:
            inner = self._compile_values(spec)
        if not guard:
            return inner
        return lambda c: None if c[0].get(key) is None else inner(c)

    def _compile_values(self, spec: Spec) -> Compiled:
        """Sum, Mean, Min, Max and Relative, from the window's shared summary and the
        payment's own value where the definition includes it. Sums add the payment to the
        window's correctly rounded sum (within an ulp of summing all at once)."""
        op, column = spec.op, spec.column
        s = self._number(self.summaries,
                         (self._range(spec.key, spec.window_us), column))  # type: ignore[arg-type]
        if s == len(self.needs):
            self.needs.append([False, False, False])
        self.needs[s][1 if op == "min" else 2 if op == "max" else 0] = True
        # the summary to read: c[4] the window's, or c[6] the window's with the row's value
        table = 4
        if spec.include_current:
            s, table = self._number(self.with_own, (s, column)), 6

        if op == "sum":
            return lambda c: c[table][s][1]  # type: ignore[no-any-return]
        if op == "relative":
            def relative(c: Slots) -> float | None:
                n, total, _, _ = c[table][s]
                own = c[0].get(column)  # type: ignore[arg-type]
                if not n or own is None:
                    return None
                mean = total / n
                return float(own) / mean if mean else None
            return relative
        if op == "mean":
            def mean(c: Slots) -> float | None:
                n, total, _, _ = c[table][s]
                return total / n if n else None
            return mean
        pick = 2 if op == "min" else 3

        def extreme(c: Slots) -> float | None:
            got = c[table][s]
            return got[pick] if got[0] else None  # type: ignore[no-any-return]
        return extreme

    def _compile_label(self, op: str, key: str, window: int) -> Compiled:
        fraud = self._number(self.reports, (key, "fraud", window))
        if op == "fraud_count":
            def fraud_count(c: Slots) -> float | None:
                _, lo, hi = c[5][fraud]
                return float(hi - lo)
            return fraud_count
        labelled = self._number(self.reports, (key, "labelled", window))
        if op == "label_count":
            def label_count(c: Slots) -> float | None:
                _, lo, hi = c[5][labelled]
                return float(hi - lo)
            return label_count
        if op == "fraud_rate":
            def rate(c: Slots) -> float | None:
                _, lo, hi = c[5][labelled]
                if hi <= lo:
                    return 0.0
                _, f_lo, f_hi = c[5][fraud]
                return (f_hi - f_lo) / (hi - lo)
            return rate
        first = op == "since_first_fraud"

        def since(c: Slots) -> float | None:
            times, lo, hi = c[5][fraud]
            if hi <= lo:
                return None
            return (c[1] - times[lo if first else hi - 1]) / 1e6
        return since


def _compile_history(op: str, key: str) -> Compiled:
    if op == "since_first":
        def since_first(c: Slots) -> float | None:
            view, _ = c[2][key]
            first = view.first if view is not None else None
            return (c[1] - first) / 1e6 if first is not None and first < c[1] else None
        return since_first

    def since_last(c: Slots) -> float | None:
        view, hi = c[2][key]
        if view is None:
            return None
        if hi:
            return (c[1] - view.times[hi - 1]) / 1e6
        return (c[1] - view.gone) / 1e6 if view.gone is not None and view.gone < c[1] else None
    return since_last


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
