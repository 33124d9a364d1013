"""Payments as tokens: the sequence model's input arrays, for a whole table or one payment.

Plain numpy (no torch): the scoring path builds its inputs here and runs the encoder with
ONNX Runtime. One function, :func:`_encode`, turns an entity's time-ordered rows into token
fields; the batch path (:func:`tokenize`, every payment of a table) and the one-payment path
(:func:`window_inputs`, an entity's recent rows and a new payment) both call it, so offline
and online inputs are the same arrays.

Each payment becomes one token of categorical fields (id 0: missing or padding, 1: masked in
pre-training, 2 and up: values) and two numbers:

=======================  ====================================================================
field                    value
=======================  ====================================================================
``amount``               ``floor(4 · log1p(amount))``, clipped to ``amount_bins``
``gap``                  ``floor(2 · log1p(seconds since the entity's previous payment))``
``hour``, ``weekday``    UTC hour 0–23, weekday 0–6 (Monday 0)
``merchant``             ``merchant_id`` hashed into ``hash_buckets`` (BLAKE2b, unsalted)
``terminal``             ``terminal_id`` hashed likewise
``*_new``                the merchant, terminal, device, IP or e-mail is not among the
                         entity's previous ``seq_len - 1`` payments
``channel``              card present or not
``*_country_match``      the card's country equals the IP's (or the merchant's)
numbers                  ``log1p(amount) / 5`` and ``log1p(gap seconds) / 10``
=======================  ====================================================================

"Previous" means strictly earlier in time: two payments of an entity at the same microsecond
never see each other (the same rule as the feature engine's), in these fields and in the
encoder's attention (``order`` carries the ties).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from vigil._errors import ModelError, SchemaError
from vigil.models.sequence._config import SequenceConfig

# the fields a token can have, in their canonical order, with the payment columns they read
FIELD_COLUMNS: dict[str, tuple[str, ...]] = {
    "amount": ("amount",),
    "gap": ("ts",),
    "hour": ("ts",),
    "weekday": ("ts",),
    "merchant": ("merchant_id",),
    "terminal": ("terminal_id",),
    "merchant_new": ("merchant_id",),
    "terminal_new": ("terminal_id",),
    "device_new": ("device_id",),
    "ip_new": ("ip",),
    "email_new": ("email",),
    "channel": ("channel",),
    "ip_country_match": ("card_country", "ip_country"),
    "merchant_country_match": ("card_country", "merchant_country"),
}
NUMERIC = ("log_amount", "log_gap")
# which numeric input goes dark when a field is masked in pre-training
NUMERIC_OF_FIELD = {"amount": 0, "gap": 1}
_HASHED = {"merchant": "merchant_id", "terminal": "terminal_id"}
_NOVELTY = {"merchant_new": "merchant_id", "terminal_new": "terminal_id",
            "device_new": "device_id", "ip_new": "ip", "email_new": "email"}
_CHANNELS = ("card_present", "card_not_present")
MISSING, MASK, FIRST_VALUE = 0, 1, 2
_US_PER_HOUR = 3_600_000_000
_US_PER_DAY = 86_400_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BLOCK = 1 << 16  # rows per look-back block: (65,536 × 31) int64 matrices, 16 MB each


def field_values(name: str, config: SequenceConfig) -> int:
    """How many distinct values field ``name`` takes (ids ``2 .. 1 + values``)."""
    if name == "amount":
        return config.amount_bins
    if name == "gap":
        return config.gap_bins
    if name == "hour":
        return 24
    if name == "weekday":
        return 7
    if name in _HASHED:
        return config.hash_buckets
    if name == "channel":
        return len(_CHANNELS) + 1
    if name in _NOVELTY or name.endswith("_country_match"):
        return 2
    raise ModelError(f"unknown token field '{name}'; known: {', '.join(FIELD_COLUMNS)}")


def cardinalities(config: SequenceConfig) -> list[int]:
    """Embedding table sizes per field of a resolved config (values + missing + mask)."""
    return [field_values(f, config) + FIRST_VALUE for f in resolved_fields(config)]


def resolved_fields(config: SequenceConfig) -> tuple[str, ...]:
    if config.fields is None:
        raise ModelError("the sequence config's fields are not resolved yet; call "
                         "resolve_fields(payments, config) first")
    return config.fields


def resolve_fields(payments: pa.Table, config: SequenceConfig) -> SequenceConfig:
    """``config`` with its token fields settled: the ones it names (checked against the
    columns), or every field whose columns the table has with at least one value."""
    have = {name for name in payments.column_names
            if payments.column(name).null_count < payments.num_rows}
    if config.entity not in payments.column_names:
        raise SchemaError(f"the sequence entity column '{config.entity}' is missing",
                          source="payments")
    for column in ("ts", "amount"):
        if column not in payments.column_names:
            raise SchemaError(f"column '{column}' is missing", source="payments")
    if config.fields is not None:
        for name in config.fields:
            if name not in FIELD_COLUMNS:
                raise ModelError(f"unknown token field '{name}'; known: "
                                 f"{', '.join(FIELD_COLUMNS)}")
            lacking = [c for c in FIELD_COLUMNS[name] if c not in payments.column_names]
            if lacking:
                raise SchemaError(f"token field '{name}' needs column(s) {', '.join(lacking)}",
                                  source="payments")
        return config
    chosen = tuple(f for f, cols in FIELD_COLUMNS.items() if all(c in have for c in cols))
    return config.replace(fields=list(chosen))


# --------------------------------------------------------------------------- hashing


@lru_cache(maxsize=1 << 17)
def stable_bucket(value: str, buckets: int) -> int:
    """A deterministic hash bucket in ``[0, buckets)`` (Python's ``hash()`` is salted per
    process, so it would give the service different buckets than training).

    >>> stable_bucket("terminal-17", 1024)
    674
    """
    digest = hashlib.blake2b(value.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % buckets


def _buckets(values: np.ndarray, buckets: int) -> np.ndarray:
    """Hash-bucket ids (2 + bucket; 0 where the value is missing)."""
    codes, uniques = _factorize(values)
    table = np.array([stable_bucket(str(u), buckets) + FIRST_VALUE for u in uniques] + [MISSING],
                     dtype=np.int64)
    return table[np.where(codes >= 0, codes, len(uniques))]


def _factorize(values: np.ndarray) -> tuple[np.ndarray, list[Any]]:
    """Integer codes (equal values, equal codes; -1 missing) and the distinct values."""
    if len(values) > 512:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        return np.asarray(codes, dtype=np.int64), list(uniques)
    seen: dict[Any, int] = {}
    codes = np.array([-1 if v is None else seen.setdefault(v, len(seen)) for v in values],
                     dtype=np.int64)
    return codes, list(seen)


# --------------------------------------------------------------------------- the encoding


def _encode(ts: np.ndarray, amount: np.ndarray, strings: Mapping[str, np.ndarray],
            first: np.ndarray, config: SequenceConfig) -> tuple[np.ndarray, ...]:
    """Token arrays of events sorted by (entity, ts, payment_id).

    ``ts``: int64 microseconds (N,); ``amount``: float (N,); ``strings``: the text columns
    the fields need, object arrays with None for missing (N,); ``first``: for each event,
    the index of its entity's first event (N,). Returns ``cat`` (N, F) int64, ``num`` (N, 2)
    float32 and ``order`` (N,) int64, the index of the entity's first event at the same
    time: an event may see another only if that one's ``order`` is smaller.
    """
    fields = resolved_fields(config)
    n = len(ts)
    idx = np.arange(n, dtype=np.int64)
    new_time = (idx == first) | (ts != np.roll(ts, 1))
    order = np.maximum.accumulate(np.where(new_time, idx, 0))

    novelty = {f: _factorize(strings[_NOVELTY[f]])[0] for f in fields if f in _NOVELTY}
    seen = {f: np.zeros(n, dtype=bool) for f in novelty}
    gap_us = np.zeros(n, dtype=np.int64)
    has_gap = np.zeros(n, dtype=bool)
    # look back over the entity's previous seq_len - 1 events, skipping those at the same
    # time; in blocks of rows, as (rows, steps back) matrices
    steps = np.arange(1, config.seq_len, dtype=np.int64)
    for lo in range(0, n, _BLOCK):
        i = idx[lo:lo + _BLOCK]
        back = i[:, None] - steps[None, :]  # (b, L - 1)
        ok = back >= first[i][:, None]
        back = np.where(ok, back, 0)
        earlier = ok & (ts[back] < ts[i][:, None])  # (b, L - 1)
        has = earlier.any(axis=1)
        nearest = back[np.arange(len(i)), earlier.argmax(axis=1)]
        gap_us[i] = np.where(has, ts[i] - ts[nearest], 0)
        has_gap[i] = has
        for f, codes in novelty.items():
            c = codes[i]
            seen[f][i] = (c >= 0) & (earlier & (codes[back] == c[:, None])).any(axis=1)

    log_amount = np.log1p(np.maximum(np.nan_to_num(amount.astype(np.float64)), 0.0))
    log_gap = np.log1p(gap_us / 1e6)
    cat = np.zeros((n, len(fields)), dtype=np.int64)
    for i, f in enumerate(fields):
        if f == "amount":
            cat[:, i] = np.clip(np.floor(4 * log_amount), 0, config.amount_bins - 1) + 2
        elif f == "gap":
            cat[:, i] = np.where(has_gap, np.clip(np.floor(2 * log_gap), 0,
                                                  config.gap_bins - 1) + 2, MISSING)
        elif f == "hour":
            cat[:, i] = (ts // _US_PER_HOUR) % 24 + 2
        elif f == "weekday":
            cat[:, i] = (ts // _US_PER_DAY + 3) % 7 + 2  # 1970-01-01 was a Thursday
        elif f in _HASHED:
            cat[:, i] = _buckets(strings[_HASHED[f]], config.hash_buckets)
        elif f in _NOVELTY:
            cat[:, i] = np.where(novelty[f] >= 0, 2 + (~seen[f]).astype(np.int64), MISSING)
        elif f == "channel":
            values = strings["channel"]
            lookup = {c: j + 2 for j, c in enumerate(_CHANNELS)}
            cat[:, i] = [MISSING if v is None else lookup.get(v, len(_CHANNELS) + 2)
                         for v in values]
        else:  # *_country_match
            a, b = (strings[c] for c in FIELD_COLUMNS[f])
            known = pd.notna(a) & pd.notna(b)
            cat[:, i] = np.where(known, 2 + (a == b).astype(np.int64), MISSING)
    num = np.column_stack([log_amount / 5.0, np.where(has_gap, log_gap / 10.0, 0.0)])
    return cat, num.astype(np.float32), order


def _string_columns(config: SequenceConfig) -> list[str]:
    return sorted({c for f in resolved_fields(config) for c in FIELD_COLUMNS[f]}
                  - {"ts", "amount"})


@dataclass(frozen=True)
class Tokens:
    """Every payment of a table as a token, sorted by (entity, ts, payment_id).

    Position ``p`` of the arrays is the payment in row ``rows[p]`` of the table;
    ``position[r]`` is the inverse (-1 for a payment without an entity, which gets no token).
    """

    config: SequenceConfig
    rows: np.ndarray      # (N,) table row of each token
    first: np.ndarray     # (N,) position of the entity's first token
    cat: np.ndarray       # (N, F) int64 field ids
    num: np.ndarray       # (N, 2) float32
    order: np.ndarray     # (N,) int64 tie groups: see _encode
    position: np.ndarray  # (n_rows,) token position of each table row, -1 if none

    def __len__(self) -> int:
        return len(self.rows)


def _ts_micros(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(pc.cast(pc.cast(column, pa.timestamp("us", tz="UTC")), pa.int64())
                      .to_numpy(zero_copy_only=False), dtype=np.int64)


def tokenize(payments: pa.Table, config: SequenceConfig) -> Tokens:
    """Tokens for every payment of ``payments`` whose entity is known.

    The config's fields must be resolved (see :func:`resolve_fields`).
    """
    resolved_fields(config)
    for column in (config.entity, "ts", "amount", *_string_columns(config)):
        if column not in payments.column_names:
            raise SchemaError(f"column '{column}' is missing; the sequence model reads it",
                              source="payments")
    ent = payments.column(config.entity)
    codes, _ = _factorize(np.asarray(ent.to_numpy(zero_copy_only=False), dtype=object))
    keyed = np.flatnonzero(codes >= 0)
    sort_cols: dict[str, Any] = {"e": pa.array(codes[keyed]),
                                 "t": pa.array(_ts_micros(payments.column("ts"))[keyed])}
    if "payment_id" in payments.column_names:
        sort_cols["p"] = payments.column("payment_id").take(pa.array(keyed))
    ordered = pc.sort_indices(pa.table(sort_cols), sort_keys=[(k, "ascending")
                                                              for k in sort_cols])
    rows = keyed[np.asarray(ordered.to_numpy(), dtype=np.int64)]
    take = pa.array(rows)
    ts = _ts_micros(payments.column("ts").take(take))
    amount = np.asarray(payments.column("amount").take(take).to_numpy(zero_copy_only=False),
                        dtype=np.float64)
    strings = {c: np.asarray(payments.column(c).take(take).to_numpy(zero_copy_only=False),
                             dtype=object) for c in _string_columns(config)}
    e = codes[rows]
    starts = np.flatnonzero(np.r_[True, e[1:] != e[:-1]]) if len(e) else np.zeros(0, np.int64)
    first = np.repeat(starts, np.diff(np.r_[starts, len(e)])).astype(np.int64)
    cat, num, order = _encode(ts, amount, strings, first, config)
    position = np.full(payments.num_rows, -1, dtype=np.int64)
    position[rows] = np.arange(len(rows))
    return Tokens(config, rows, first, cat, num, order, position)


# --------------------------------------------------------------------------- one payment


def _micros(value: Any) -> int:
    if isinstance(value, datetime):
        return _datetime_micros(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, np.datetime64):
        return int(value.astype("datetime64[us]").astype(np.int64))
    raise SchemaError(f"ts {value!r} is not a time; give a datetime or integer microseconds")


@lru_cache(maxsize=1 << 16)
def _datetime_micros(value: datetime) -> int:
    # remembered: the service converts each kept payment's time again for every later
    # payment of its entity (equal datetimes are equal instants, whatever their zone)
    d = (value if value.tzinfo is not None else value.replace(tzinfo=UTC)) - _EPOCH
    return (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds


def window_rows(history: Iterable[Mapping[str, Any]], payment: Mapping[str, Any],
                config: SequenceConfig) -> list[Mapping[str, Any]]:
    """The rows :func:`window_inputs` reads for ``payment``: the entity's payments ordered
    before it by (ts, payment_id), the last ``history_rows`` of them, then the payment."""
    return [row for _, row in _window(history, payment, config)]


def _window(history: Iterable[Mapping[str, Any]], payment: Mapping[str, Any],
            config: SequenceConfig) -> list[tuple[int, Mapping[str, Any]]]:
    def key(row: Mapping[str, Any]) -> tuple[int, str]:
        return _micros(row["ts"]), str(row.get("payment_id") or "")

    here = key(payment)
    keyed = sorted(((k, row) for row in history if (k := key(row)) < here),
                   key=lambda kr: kr[0])
    return [(k[0], row) for k, row in keyed[-config.history_rows:]] + [(here[0], payment)]


def window_inputs(history: Iterable[Mapping[str, Any]], payment: Mapping[str, Any],
                  config: SequenceConfig) -> dict[str, np.ndarray]:
    """The encoder's inputs for one payment, from the entity's recent payments.

    A pure function of the rows (dicts with ``ts``, ``amount``, ``payment_id`` and the
    columns the fields read). The embedding reads the last ``seq_len`` tokens, and each
    token's gap and novelty read the ``seq_len - 1`` payments before it, so the payment's
    embedding depends on the entity's last ``history_rows = 2 · (seq_len - 1)`` payments:
    the service keeps those per entity, and the embedding of the last position equals the
    one the batch path computes offline. Returns ``cat`` (1, T, F) int64, ``num`` (1, T, 2)
    float32 and ``order`` (1, T) int64, ``T <= seq_len``.
    """
    window = _window(history, payment, config)
    ts = np.array([t for t, _ in window], dtype=np.int64)
    rows = [row for _, row in window]
    amount = np.array([r.get("amount", np.nan) for r in rows], dtype=np.float64)
    strings = {c: np.array([r.get(c) for r in rows], dtype=object)
               for c in _string_columns(config)}
    cat, num, order = _encode(ts, amount, strings, np.zeros(len(rows), dtype=np.int64), config)
    keep = slice(max(0, len(rows) - config.seq_len), None)
    return {"cat": cat[None, keep], "num": num[None, keep], "order": order[None, keep]}


# --------------------------------------------------------------------------- batching


def chunk_index(tokens: Tokens, *, owned: int | None = None,
                select: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cut each entity's tokens into windows that give every selected token its embedding in
    one pass.

    A window owns up to ``owned`` consecutive tokens of one entity (default: ``chunk_len -
    seq_len + 1``) and is preceded by the ``seq_len - 1`` tokens before them as context, so
    each owned token sees exactly what it would see alone. ``select`` (a mask over token
    positions) limits the owned tokens; windows span each entity's selected range.
    Returns ``index`` (K, W) token positions, -1 for padding, and ``own`` (K, W) booleans.
    """
    config = tokens.config
    context = config.context
    stride = owned if owned is not None else config.chunk_len - context
    if stride < 1:
        raise ModelError(f"owned={stride}: a window must own at least one token")
    width = context + stride
    n = len(tokens)
    sel = np.ones(n, dtype=bool) if select is None else np.asarray(select, dtype=bool)
    chosen = np.flatnonzero(sel)
    if not len(chosen):
        return np.zeros((0, width), dtype=np.int64), np.zeros((0, width), dtype=bool)
    seg = tokens.first[chosen]
    bounds = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1]])
    lo = chosen[bounds]
    hi = chosen[np.r_[bounds[1:], len(chosen)] - 1] + 1
    per = -(-(hi - lo) // stride)
    group = np.repeat(np.arange(len(lo)), per)
    step = np.arange(len(group)) - np.repeat(np.cumsum(per) - per, per)
    start = lo[group] + stride * step
    end = np.minimum(start + stride, hi[group])
    pos = start[:, None] - context + np.arange(width)[None, :]
    valid = (pos >= seg[bounds][group][:, None]) & (pos < end[:, None])
    own = valid & (pos >= start[:, None]) & sel[np.clip(pos, 0, max(n - 1, 0))]
    return np.where(valid, pos, -1), own


def gather(tokens: Tokens, index: np.ndarray) -> dict[str, np.ndarray]:
    """The encoder's inputs for windows of token positions (-1: padding)."""
    pad = index < 0
    safe = np.where(pad, 0, index)
    cat = tokens.cat[safe]
    cat[pad] = MISSING
    num = tokens.num[safe]
    num[pad] = 0.0
    order = np.where(pad, -1, tokens.order[safe])
    return {"cat": cat, "num": num, "order": order}


def trim(index: np.ndarray, own: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop the positions that are padding in every window of a batch (a short history pads
    on the left, an entity's last window on the right): less work, the same embeddings."""
    real = (index >= 0).any(axis=0)
    if not real.any():
        return index, own
    lo, hi = int(real.argmax()), len(real) - int(real[::-1].argmax())
    return index[:, lo:hi], own[:, lo:hi]
