"""The token cache: whatever order payments arrive in, and however small the cache, the
encoder's inputs for a payment are exactly :func:`window_inputs`'s. Plain numpy: no torch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.models.sequence import SequenceConfig, window_inputs
from vigil.models.sequence._token_cache import TokenCache, token_at
from vigil.models.sequence._tokens import FIELD_COLUMNS, _window

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def _config(seq_len: int) -> SequenceConfig:
    return SequenceConfig(seq_len=seq_len, dim=8, n_layers=1, n_heads=1, hash_buckets=32,
                          fields=list(FIELD_COLUMNS))


_maybe = st.one_of(st.none(), st.sampled_from(["a", "b", "c"]))
_payment = st.fixed_dictionaries({
    "card_id": st.sampled_from(["c1", "c2"]),
    # few distinct seconds: many payments at the same time
    "second": st.integers(0, 40),
    "amount": st.one_of(st.none(), st.floats(0, 5000, allow_nan=False), st.just(-3.0)),
    "merchant_id": _maybe, "terminal_id": _maybe, "device_id": _maybe, "ip": _maybe,
    "email": _maybe,
    "channel": st.sampled_from([None, "card_present", "card_not_present", "kiosk"]),
    "card_country": st.sampled_from([None, "US", "FR"]),
    "ip_country": st.sampled_from([None, "US", "FR", float("nan")]),
    "merchant_country": st.sampled_from([None, "US", "FR"]),
})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payments=st.lists(_payment, min_size=1, max_size=45), seq_len=st.integers(2, 6),
       size=st.sampled_from([3, 40, 10_000]), late=st.lists(st.integers(0, 44), max_size=6))
def test_cached_inputs_equal_window_inputs(payments, seq_len, size, late):
    """Payments arrive mostly in time order, a few late (``late``: moved to the end); each is
    embedded from everything of its card that arrived before it."""
    config = _config(seq_len)
    rows = [{**{k: v for k, v in p.items() if k != "second"}, "payment_id": f"p{i:03d}",
             "ts": T0 + timedelta(seconds=p["second"])} for i, p in enumerate(payments)]
    rows.sort(key=lambda r: (r["ts"], r["payment_id"]))
    for i in sorted({i for i in late if i < len(rows)}, reverse=True):
        rows.append(rows.pop(i))
    cache = TokenCache(config, size)
    arrived: dict[str, list[dict]] = {}
    for row in rows:
        history = arrived.setdefault(row["card_id"], [])
        want = window_inputs(history, row, config)
        got = cache.inputs(history, row)
        for name in ("cat", "num", "order"):
            assert got[name].dtype == want[name].dtype, name
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
        history.append(row)
    assert len(cache) <= size


def test_each_token_alone_equals_the_vectorised_encoding():
    config = _config(4)
    rows = [{"card_id": "c", "payment_id": f"p{i}", "ts": T0 + timedelta(seconds=s),
             "amount": a, "merchant_id": m, "device_id": d, "channel": "card_present",
             "card_country": "US", "ip_country": c}
            for i, (s, a, m, d, c) in enumerate([(0, 10.0, "a", "x", "US"),
                                                 (5, 99.5, "b", "x", "FR"),
                                                 (5, None, "a", None, None),
                                                 (60, 3.0, "a", "y", "US"),
                                                 (3600, 250.0, None, "x", "US")])]
    window = _window(rows[:-1], rows[-1], config)
    want = window_inputs(rows[:-1], rows[-1], config)
    for k, j in enumerate(range(len(window) - want["cat"].shape[1], len(window))):
        cat, num = token_at(window, j, config)
        assert list(cat) == want["cat"][0, k].tolist()
        assert num == tuple(want["num"][0, k].tolist())


def test_a_cards_next_payment_reuses_its_earlier_tokens():
    config = _config(8)
    cache = TokenCache(config)
    history: list[dict] = []
    for i in range(30):
        row = {"card_id": "c", "payment_id": f"p{i:02d}", "ts": T0 + timedelta(minutes=i),
               "amount": float(i), "merchant_id": "abc"[i % 3]}
        cache.inputs(history, row)
        history.append(row)
    # after the first window, each payment computes one token: its own
    assert cache.misses == 30 and cache.hits == sum(min(i, 7) for i in range(30))


def test_a_discarded_token_is_built_again():
    config = _config(4)
    cache = TokenCache(config)
    rows = [{"card_id": "c", "payment_id": f"p{i}", "ts": T0 + timedelta(minutes=i),
             "amount": 1.0} for i in range(5)]
    first = cache.inputs(rows[:4], rows[4])
    misses = cache.misses
    cache.discard(rows[4])
    again = cache.inputs(rows[:4], rows[4])
    assert cache.misses == misses + 1
    np.testing.assert_array_equal(first["cat"], again["cat"])
