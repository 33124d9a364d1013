"""The one-payment path without redoing the window: a payment's token, once computed, is kept.

A token depends only on its payment and the entity's ``seq_len - 1`` payments before it (see
:mod:`~vigil.models.sequence._tokens`), so when a card's next payment comes, the tokens of the
payments before it are the ones computed when each of them was new. :class:`TokenCache`
keeps them, keyed by (entity, time, payment id), with what each was computed from: the first
payment of its look-back range and how many payments that range held. A payment that arrives
late (earlier than some already seen) changes the range of the payments after it, and so
their check: those tokens are computed again. The arrays :meth:`TokenCache.inputs` returns are
always :func:`~vigil.models.sequence.window_inputs`'s (a property test holds them equal).

When most of a window is missing (a card this process has not scored yet, or one pushed out of
the cache) the whole window is encoded at once by the vectorised path and its tokens kept;
otherwise each missing token is computed alone in plain Python, which for a few tokens is
far cheaper than the vectorised path's fixed cost.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from vigil.models.sequence._config import SequenceConfig
from vigil.models.sequence._tokens import (
    _CHANNELS,
    _HASHED,
    _NOVELTY,
    _US_PER_DAY,
    _US_PER_HOUR,
    FIELD_COLUMNS,
    FIRST_VALUE,
    MISSING,
    _encode,
    _micros,
    _string_columns,
    _window,
    resolved_fields,
    stable_bucket,
)

DEFAULT_SIZE = 65_536
"""Tokens kept (about 400 bytes each: some 25 MB): 2,048 entities' last 32 payments."""
# more missing tokens than this, and the whole window is encoded at once instead
_ONE_BY_ONE = 6

Token = tuple[tuple[int, ...], tuple[float, float]]


def _missing(value: Any) -> bool:
    """As ``pd.notna`` is false: None or a float NaN."""
    return value is None or (isinstance(value, float) and value != value)


def token_at(window: Sequence[tuple[int, Mapping[str, Any]]], j: int,
             config: SequenceConfig) -> Token:
    """The token (categorical ids, numbers) of position ``j`` of ``window`` (``(ts in
    microseconds, row)`` pairs in (ts, payment_id) order), from the ``seq_len - 1`` positions
    before it: what :func:`~vigil.models.sequence._tokens._encode` gives that position."""
    ts_j, row = window[j]
    lo = max(0, j - (config.seq_len - 1))
    # strictly earlier payments in the look-back range, nearest first
    earlier = [r for t, r in reversed(window[lo:j]) if t < ts_j]
    gap_us = ts_j - next(t for t, _r in reversed(window[lo:j]) if t < ts_j) if earlier else 0
    amount = row.get("amount")
    amount = 0.0 if _missing(amount) else float(amount)
    log_amount = float(np.log1p(np.float64(max(amount, 0.0))))
    log_gap = float(np.log1p(np.float64(gap_us) / 1e6))
    cat = []
    for f in resolved_fields(config):
        if f == "amount":
            cat.append(min(max(int(np.floor(4 * log_amount)), 0), config.amount_bins - 1) + 2)
        elif f == "gap":
            cat.append(min(max(int(np.floor(2 * log_gap)), 0), config.gap_bins - 1) + 2
                       if earlier else MISSING)
        elif f == "hour":
            cat.append((ts_j // _US_PER_HOUR) % 24 + 2)
        elif f == "weekday":
            cat.append((ts_j // _US_PER_DAY + 3) % 7 + 2)
        elif f in _HASHED:
            v = row.get(_HASHED[f])
            cat.append(MISSING if v is None else
                       stable_bucket(str(v), config.hash_buckets) + FIRST_VALUE)
        elif f in _NOVELTY:
            column = _NOVELTY[f]
            v = row.get(column)
            cat.append(MISSING if v is None else
                       2 + int(not any(r.get(column) == v for r in earlier)))
        elif f == "channel":
            v = row.get("channel")
            cat.append(MISSING if v is None else
                       (_CHANNELS.index(v) + 2 if v in _CHANNELS else len(_CHANNELS) + 2))
        else:  # *_country_match
            a, b = (row.get(c) for c in FIELD_COLUMNS[f])
            cat.append(MISSING if _missing(a) or _missing(b) else 2 + int(a == b))
    num = (float(np.float32(log_amount / 5.0)),
           float(np.float32(log_gap / 10.0)) if earlier else 0.0)
    return tuple(cat), num


def _order(ts: Sequence[int]) -> list[int]:
    """Each position's tie group: the first position with its time."""
    out, group = [], 0
    for k, t in enumerate(ts):
        if k and t != ts[k - 1]:
            group = k
        out.append(group)
    return out


class TokenCache:
    """Tokens of recent payments, reused across an entity's windows (see the module
    docstring); thread-safe; at most ``size`` tokens, the least recently used dropped."""

    def __init__(self, config: SequenceConfig, size: int = DEFAULT_SIZE) -> None:
        self.config = config
        self.size = size
        self._tokens: OrderedDict[tuple, tuple[tuple, Token]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._tokens)

    def discard(self, payment: Mapping[str, Any]) -> None:
        """Forget ``payment``'s own token (a benchmark times the same payment twice)."""
        key = (payment.get(self.config.entity), _micros(payment["ts"]),
               payment.get("payment_id"))
        with self._lock:
            self._tokens.pop(key, None)

    def inputs(self, history: Iterable[Mapping[str, Any]],
               payment: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """:func:`~vigil.models.sequence.window_inputs` ``(history, payment, config)``."""
        config = self.config
        window = _window(history, payment, config)
        n = len(window)
        start = max(0, n - config.seq_len)
        entity = payment.get(config.entity)
        reach = config.seq_len - 1
        keys: list[tuple | None] = []
        checks: list[tuple] = []
        tokens: list[Token | None] = []
        cached = self._tokens
        with self._lock:
            for j in range(start, n):
                ts, row = window[j]
                pid = row.get("payment_id")
                lo = j - reach if j > reach else 0
                first_ts, first_row = window[lo]
                key = (entity, ts, pid) if pid else None
                check = (first_ts, first_row.get("payment_id"), j - lo)
                found = cached.get(key) if key is not None else None
                if found is not None and found[0] == check:
                    cached.move_to_end(key)
                    tokens.append(found[1])
                else:
                    tokens.append(None)
                keys.append(key)
                checks.append(check)
        todo = [i for i, t in enumerate(tokens) if t is None]
        self.hits += len(tokens) - len(todo)
        self.misses += len(todo)
        whole = len(todo) > _ONE_BY_ONE
        if whole:
            tokens = self._encoded(window, start)
        else:
            for i in todo:
                tokens[i] = token_at(window, start + i, config)
        with self._lock:
            for i in range(len(tokens)) if whole else todo:
                if keys[i] is not None:
                    cached[keys[i]] = (checks[i], tokens[i])
                    cached.move_to_end(keys[i])
            while len(cached) > self.size:
                cached.popitem(last=False)
        order = _order([t for t, _r in window])[start:]
        return {"cat": np.array([t[0] for t in tokens], dtype=np.int64)[None],
                "num": np.array([t[1] for t in tokens], dtype=np.float32)[None],
                "order": np.array(order, dtype=np.int64)[None]}

    def _encoded(self, window: Sequence[tuple[int, Mapping[str, Any]]], start: int
                 ) -> list[Token]:
        """The tokens of positions ``start ..`` by the vectorised path."""
        ts = np.array([t for t, _ in window], dtype=np.int64)
        rows = [row for _, row in window]
        amount = np.array([r.get("amount", np.nan) for r in rows], dtype=np.float64)
        strings = {c: np.array([r.get(c) for r in rows], dtype=object)
                   for c in _string_columns(self.config)}
        cat, num, _order_ids = _encode(ts, amount, strings, np.zeros(len(rows), dtype=np.int64),
                                       self.config)
        return [(tuple(int(x) for x in cat[j]), (float(num[j, 0]), float(num[j, 1])))
                for j in range(start, len(rows))]
