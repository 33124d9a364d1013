"""A brute-force executor of feature definitions, written to be obviously right, not fast.

It reads the contract in :mod:`vigil.features._definitions` literally: for each payment it
scans every payment and label, keeps those the definition allows, and aggregates them.
Quadratic time: for tests (it is what the DuckDB engine is property-tested against) and for
users checking their own definitions on a few hundred events.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from vigil.features._definitions import LABEL_OPS, Spec
from vigil.features._featureset import FeatureSet

_DAY_US = 86_400_000_000
_HOUR_US = 3_600_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(value: Any) -> int:
    """Microseconds since the epoch of a timezone-aware datetime, exactly."""
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _row_value(spec: Spec, row: dict[str, Any], t: int) -> float | None:
    day, in_day = divmod(t, _DAY_US)
    weekday = (day + 3) % 7
    hour = in_day // _HOUR_US
    if spec.op == "value":
        v = row[spec.column]  # type: ignore[index]
        return None if v is None else float(v)
    if spec.op == "is_weekend":
        return float(weekday >= 5)
    if spec.op == "day_of_week":
        return float(weekday)
    if spec.op == "hour_of_day":
        return float(hour)
    if spec.op == "is_night":
        return float(hour <= spec.param)  # type: ignore[operator]
    raise AssertionError(spec.op)


def _in_window(spec: Spec, t: int, other_t: int, is_self: bool) -> bool:
    if is_self:
        return spec.include_current
    if other_t >= t:  # later payments, and other payments at the same instant, are never seen
        return False
    return spec.window_us is None or other_t > t - spec.window_us


def reference_features(feature_set: FeatureSet, payments: pa.Table,
                       labels: pa.Table | None = None) -> pa.Table:
    """Compute ``feature_set`` by brute force; same output as
    :func:`vigil.features.offline.build_features`."""
    rows = payments.to_pylist()
    for r in rows:
        r["_t"] = _micros(r["ts"])
    rows.sort(key=lambda r: (r["_t"], r["payment_id"]))
    label_rows = labels.to_pylist() if labels is not None else []
    first_label: dict[str, int] = {}
    first_fraud: dict[str, int] = {}
    for lab in label_rows:
        t = _micros(lab["reported_at"])
        pid = lab["payment_id"]
        first_label[pid] = min(t, first_label.get(pid, t))
        if lab["is_fraud"]:
            first_fraud[pid] = min(t, first_fraud.get(pid, t))

    specs = feature_set.specs()
    out: dict[str, list[float | None]] = defaultdict(list)
    for i, row in enumerate(rows):
        t = row["_t"]
        for spec in specs:
            out[spec.name].append(_feature(spec, i, row, t, rows, first_label, first_fraud))
    arrays = [pa.array([r["payment_id"] for r in rows], pa.string()),
              pa.array([r["ts"] for r in rows], pa.timestamp("us", tz="UTC"))]
    arrays += [pa.array(out[s.name], pa.float64()) for s in specs]
    return pa.table(arrays, names=["payment_id", "ts", *[s.name for s in specs]])


def _feature(spec: Spec, i: int, row: dict[str, Any], t: int, rows: list[dict[str, Any]],
             first_label: dict[str, int], first_fraud: dict[str, int]) -> float | None:
    if spec.op == "ratio":
        num, den = (_feature(o, i, row, t, rows, first_label, first_fraud)
                    for o in spec.operands)
        return None if num is None or not den else num / den
    if spec.key is None:
        return _row_value(spec, row, t)
    key = row[spec.key]
    if key is None:
        return None
    peers = [(j, r) for j, r in enumerate(rows) if r[spec.key] == key]
    if spec.op in LABEL_OPS:
        def reported_in_window(times: dict[str, int]) -> list[int]:
            out = []
            for _, r in peers:
                rt = times.get(r["payment_id"])
                if rt is not None and t - spec.window_us < rt < t:  # type: ignore[operator]
                    out.append(rt)
            return out
        frauds = reported_in_window(first_fraud)
        if spec.op == "fraud_count":
            return float(len(frauds))
        if spec.op == "since_first_fraud":
            return (t - min(frauds)) / 1e6 if frauds else None
        if spec.op == "since_last_fraud":
            return (t - max(frauds)) / 1e6 if frauds else None
        labelled = len(reported_in_window(first_label))
        if spec.op == "label_count":
            return float(labelled)
        return len(frauds) / labelled if labelled else 0.0
    window = [r for j, r in peers if _in_window(spec, t, r["_t"], j == i)]
    if spec.op == "since_first":
        return (t - min(r["_t"] for r in window)) / 1e6 if window else None
    if spec.op == "since_last":
        return (t - max(r["_t"] for r in window)) / 1e6 if window else None
    if spec.op == "count":
        return float(len(window))
    if spec.op == "count_distinct":  # before the float() below: keys need not be numbers
        return float(len({r[spec.column] for r in window if r[spec.column] is not None}))
    values = [float(r[spec.column]) for r in window if r[spec.column] is not None]  # type: ignore
    if spec.op == "sum":
        return math.fsum(values)
    if spec.op == "relative":
        mean = math.fsum(values) / len(values) if values else None
        current = row[spec.column]  # type: ignore[index]
        if not mean or current is None:
            return None
        return float(current) / mean
    if not values:
        return None
    if spec.op == "mean":
        return math.fsum(values) / len(values)
    if spec.op == "min":
        return min(values)
    if spec.op == "max":
        return max(values)
    raise AssertionError(spec.op)  # pragma: no cover

