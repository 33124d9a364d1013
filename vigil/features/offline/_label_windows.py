"""Label-aware windows by sorted search: the offline engine's fast path for label features.

A label-aware feature of a payment at time ``t`` reads the label events of its entity whose
report time ``r`` lies in the window ``t - w < r < t``. Sort the
label events once by ``(entity, r)``; then for every payment the events in its window are
one contiguous run, whose ends two binary searches find: a count is the run's length, the
first and last fraud are its ends. This is the same contract as the SQL form in
:mod:`vigil.features.offline._duckdb` (both are tested against the brute-force reference),
without sorting a timeline twice the size of the payments for every window.

Entity and time are packed into one int64 (``code * span + time``) so that NumPy's
``searchsorted`` does the work; when that would overflow, times are first replaced by their
ranks among all the times involved, which keeps their order.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from vigil.features._definitions import Spec

_INT64_HEADROOM = 2**62


class _Packer:
    """Maps ``(entity code, time)`` to one int64 that sorts like the pair."""

    def __init__(self, n_codes: int, times: list[np.ndarray]) -> None:
        present = [t for t in times if t.size]
        lo = min((int(t.min()) for t in present), default=0)
        hi = max((int(t.max()) for t in present), default=0)
        self._ranks: np.ndarray | None = None
        self._lo = lo
        self._span = hi - lo + 1
        if max(n_codes, 1) * self._span >= _INT64_HEADROOM:
            self._ranks = np.unique(np.concatenate(present))
            self._span = self._ranks.size

    def __call__(self, codes: np.ndarray, times: np.ndarray) -> np.ndarray:
        if self._ranks is not None:
            return codes * self._span + np.searchsorted(self._ranks, times)
        return codes * self._span + (times - self._lo)


def label_window_features(specs: list[Spec], codes: np.ndarray, t: np.ndarray,
                          event_time: dict[str, tuple[np.ndarray, np.ndarray]]
                          ) -> dict[str, pa.Array]:
    """Label-aware features of one entity key, one value per payment (input order).

    ``codes``: the payment's entity as a non-negative integer, -1 where the key is null
    (its features are then null); ``t``: payment times; ``event_time``: per timeline
    (``"labelled"``, ``"fraud"``) the first report time of each payment's labels and whether
    it has one. Times in microseconds.
    """
    if t.size == 0:
        return {s.name: pa.array([], pa.float64()) for s in specs}
    windows = sorted({s.window_us for s in specs})  # label-aware features always have one
    has_key = codes >= 0
    events = {name: (codes[known & has_key], reported[known & has_key])
              for name, (reported, known) in event_time.items()}
    times = [t, *(t - w for w in windows), *(r for _, r in events.values())]
    pack = _Packer(int(codes.max(initial=0)) + 1, times)

    # Work in the order of the packed queries: each binary search then starts where the last
    # one ended, and the order of (code, t - w) is that of (code, t), so one sort serves every
    # window. Values go back to input order once, at the end.
    query_hi = pack(codes, t)
    by_query = np.argsort(query_hi, kind="stable")
    query_hi, q_codes, q_t = query_hi[by_query], codes[by_query], t[by_query]
    query_lo = {w: pack(q_codes, q_t - w) for w in windows}

    runs: dict[tuple[str, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for name, (e_codes, reported) in events.items():
        packed = pack(e_codes, reported)
        order = np.argsort(packed, kind="stable")
        packed, sorted_times = packed[order], reported[order]
        hi = np.searchsorted(packed, query_hi, side="left")
        for w, q in query_lo.items():
            lo = np.searchsorted(packed, q, side="right")
            runs[name, w] = lo, hi, sorted_times

    null = ~has_key
    results: dict[str, pa.Array] = {}

    def put(name: str, values: np.ndarray, missing: np.ndarray | None = None) -> None:
        out = np.empty_like(values)
        out[by_query] = values
        if missing is not None:
            gone = np.empty_like(missing)
            gone[by_query] = missing
            results[name] = pa.array(out, mask=null | gone)
        else:
            results[name] = pa.array(out, mask=null)

    for spec in specs:
        w = spec.window_us
        if spec.op in ("fraud_count", "label_count"):
            lo, hi, _ = runs["fraud" if spec.op == "fraud_count" else "labelled", w]
            put(spec.name, (hi - lo).astype(np.float64))
        elif spec.op == "fraud_rate":
            f_lo, f_hi, _ = runs["fraud", w]
            l_lo, l_hi, _ = runs["labelled", w]
            frauds = (f_hi - f_lo).astype(np.float64)
            labelled = (l_hi - l_lo).astype(np.float64)
            seen = labelled > 0
            put(spec.name, np.divide(frauds, labelled, out=np.zeros_like(frauds), where=seen))
        elif spec.op in ("since_first_fraud", "since_last_fraud"):
            lo, hi, sorted_times = runs["fraud", w]
            if sorted_times.size:
                at = lo if spec.op == "since_first_fraud" else hi - 1
                seen_at = sorted_times[np.clip(at, 0, sorted_times.size - 1)]
            else:
                seen_at = np.zeros_like(q_t)
            put(spec.name, (q_t - seen_at) / 1e6, missing=hi <= lo)
        else:  # pragma: no cover
            raise AssertionError(spec.op)
    return results
