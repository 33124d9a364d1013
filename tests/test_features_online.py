"""Online features equal offline features: random streams, label arrival, snapshots, Redis,
and a Handbook test week replayed event by event."""

from __future__ import annotations

import json
import os
import random
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_features_point_in_time import (
    FEATURES,
    T0,
    assert_tables_equal,
    event_streams,
    labels_table,
    payments_table,
)

from vigil.features import (
    Count,
    FeatureSet,
    FraudCount,
    Sum,
    TimeSinceLast,
    build_features,
    handbook_baseline,
)
from vigil.features.online import MemoryState, OnlineFeatures, RedisState, micros

HANDBOOK = Path(__file__).resolve().parents[2] / "shared/data/fraud-handbook/transactions.parquet"
H = timedelta(hours=1)


def _redis_url() -> str | None:
    return os.environ.get("VIGIL_TEST_REDIS_URL")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=event_streams(), sweep_every=st.sampled_from([1, 3, 50_000]))
def test_online_replay_equals_offline(stream, sweep_every):
    """Every feature kind, ties, null keys, late and repeated labels; with eviction sweeps
    after every payment too, which must never drop what a later payment reads."""
    payments, labels = stream
    online = OnlineFeatures(FEATURES)
    online.sweep_every = sweep_every
    assert_tables_equal(online.replay(payments, labels),
                        build_features(FEATURES, payments, labels), FEATURES)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=event_streams(), seed=st.integers(0, 1000))
def test_labels_applied_as_they_arrive_equal_offline(stream, seed):
    """Labels arrive one by one, each with what the store knew of the payment's earlier
    reports, in any order among those reported before the next payment."""
    payments, labels = stream
    online = OnlineFeatures(FEATURES)
    rows = sorted(payments.to_pylist(), key=lambda r: (micros(r["ts"]), r["payment_id"]))
    by_id = {r["payment_id"]: r for r in rows}
    pending = labels.to_pylist()
    random.Random(seed).shuffle(pending)
    first: dict[str, list[int | None]] = {}
    out = []
    for row in rows:
        t = micros(row["ts"])
        due = [lab for lab in pending if micros(lab["reported_at"]) < t]
        pending = [lab for lab in pending if micros(lab["reported_at"]) >= t]
        for lab in due:  # arrival order shuffled, not report order
            seen = first.setdefault(lab["payment_id"], [None, None])
            online.add_label(by_id[lab["payment_id"]], is_fraud=lab["is_fraud"],
                             reported_at=lab["reported_at"], earlier=(seen[0], seen[1]))
            r = micros(lab["reported_at"])
            seen[0] = r if seen[0] is None else min(seen[0], r)
            if lab["is_fraud"]:
                seen[1] = r if seen[1] is None else min(seen[1], r)
        out.append(online.add_payment(row))
    offline = build_features(FEATURES, payments, labels)
    for name in FEATURES.names:
        got = pa.table({"payment_id": [r["payment_id"] for r in rows],
                        "ts": [r["ts"] for r in rows],
                        name: pa.array([o[name] for o in out], pa.float64())})
        fs = FeatureSet("one", FEATURES.entity_keys,
                        [f for f in FEATURES.features if f.name == name])
        assert_tables_equal(got, offline.select(["payment_id", "ts", name]), fs)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=event_streams(), seed=st.integers(0, 1000))
def test_state_does_not_depend_on_arrival_order(stream, seed):
    """Record the same payments in time order and shuffled: a later payment reads the same."""
    payments, labels = stream
    rows = payments.to_pylist()
    probe = {"payment_id": "probe", "ts": T0 + timedelta(days=30), "amount": 7.0,
             "card_id": "c1", "terminal_id": "t1", "device_id": "d1", "score": 1}
    values = []
    for order in (sorted(rows, key=lambda r: micros(r["ts"])),
                  random.Random(seed).sample(rows, len(rows))):
        online = OnlineFeatures(FEATURES)
        for row in order:
            online.record_payment(row)
        for lab in labels.to_pylist():
            online.add_label(next(r for r in rows if r["payment_id"] == lab["payment_id"]),
                             is_fraud=lab["is_fraud"], reported_at=lab["reported_at"])
        values.append(online.features(probe))
    assert values[0] == values[1]


def test_a_snapshot_restores_the_state_exactly():
    """Dump mid-stream, load into a new executor, go on: same values as never stopping."""
    rng = random.Random(7)
    rows = [{"payment_id": f"p{i:03d}", "ts": T0 + i * 17 * timedelta(minutes=1),
             "amount": float(rng.randint(1, 300)), "card_id": rng.choice(["c1", "c2"]),
             "terminal_id": rng.choice(["t1", "t2", None]), "device_id": "d1", "score": 1}
            for i in range(120)]
    labels = labels_table([{"payment_id": r["payment_id"], "is_fraud": i % 5 == 0,
                            "reported_at": r["ts"] + 3 * H} for i, r in enumerate(rows)])
    payments = payments_table(rows)
    whole = OnlineFeatures(FEATURES).replay(payments, labels)

    first_half = OnlineFeatures(FEATURES)
    first_half.replay(payments.slice(0, 60), labels)
    # labels reported after the cut-off are applied after the restart, as they would arrive
    saved = json.loads(json.dumps(first_half.state.dump()))
    resumed = OnlineFeatures(FEATURES, MemoryState.load(saved))
    cut = micros(rows[59]["ts"])
    later = [lab for lab in labels.to_pylist() if micros(lab["reported_at"]) >= cut]
    for row in rows[60:]:
        t = micros(row["ts"])
        for lab in [x for x in later if micros(x["reported_at"]) < t]:
            resumed.add_label(next(r for r in rows if r["payment_id"] == lab["payment_id"]),
                              is_fraud=lab["is_fraud"], reported_at=lab["reported_at"])
            later.remove(lab)
        got = resumed.add_payment(row)
        want = {n: whole.column(n)[int(row["payment_id"][1:])].as_py() for n in FEATURES.names}
        assert got == want, row["payment_id"]


def test_state_is_bounded_by_the_longest_window():
    fs = FeatureSet("b", {"card": "card_id", "terminal": "terminal_id"},
                    [Count(by="card", window="1h"), Sum("amount", by="card", window="2h"),
                     FraudCount(by="terminal", window="1h")])
    online = OnlineFeatures(fs)
    online.sweep_every = 100
    for i in range(5000):  # one payment a minute for 3.5 days, 10 cards, 5 terminals
        row = {"payment_id": f"p{i}", "ts": T0 + i * timedelta(minutes=1), "amount": 1.0,
               "card_id": f"c{i % 10}", "terminal_id": f"t{i % 5}"}
        online.add_payment(row)
        online.add_label(row, is_fraud=True, reported_at=row["ts"])
    sizes = online.state.sizes()
    assert sizes["payment_entities"] == 10
    # 2 h of payments is 120, plus up to 100 since the last sweep
    assert sizes["payment_events"] <= 120 + 100 + 10
    assert sizes["label_events"] <= 2 * (60 + 100 + 5)


def test_entities_without_history_features_leave_the_state():
    fs = FeatureSet("w", {"card": "card_id"}, [Count(by="card", window="1h")])
    online = OnlineFeatures(fs)
    online.add_payment({"payment_id": "a", "ts": T0, "card_id": "old"})
    online.add_payment({"payment_id": "b", "ts": T0 + 2 * H, "card_id": "new"})
    online.state.sweep(online.clock)
    assert online.state.sizes()["payment_entities"] == 1
    # a TimeSince* feature must remember an entity for good
    keep = OnlineFeatures(FeatureSet("k", {"card": "card_id"}, [TimeSinceLast(by="card")]))
    keep.add_payment({"payment_id": "a", "ts": T0, "card_id": "old"})
    keep.add_payment({"payment_id": "b", "ts": T0 + 2 * H, "card_id": "new"})
    keep.state.sweep(keep.clock)
    assert keep.add_payment({"payment_id": "c", "ts": T0 + 40 * H, "card_id": "old"}) == {
        "seconds_since_last_by_card": 40 * 3600.0}


def test_a_second_label_of_a_payment_changes_nothing():
    fs = FeatureSet("l", {"terminal": "terminal_id"}, [FraudCount(by="terminal", window="7d")])
    online = OnlineFeatures(fs)
    a = {"payment_id": "a", "ts": T0, "terminal_id": "t1"}
    online.add_payment(a)
    online.add_label(a, is_fraud=True, reported_at=T0 + H)
    # a dispute of the same payment, reported later: the store says it was reported at T0+H
    online.add_label(a, is_fraud=True, reported_at=T0 + 5 * H,
                     earlier=(micros(T0 + H), micros(T0 + H)))
    later = {"payment_id": "b", "ts": T0 + 6 * H, "terminal_id": "t1"}
    assert online.features(later) == {"fraud_count_by_terminal_7d": 1.0}


# ----------------------------------------------------------------------------- Redis
@pytest.fixture(scope="module")
def redis_available():
    url = _redis_url()
    if not url:
        pytest.skip("VIGIL_TEST_REDIS_URL is not set (no Redis server to test against)")
    return url


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(stream=event_streams(max_payments=25))
def test_redis_state_equals_offline(redis_available, stream):
    payments, labels = stream
    state = RedisState(redis_available, namespace=f"test-{uuid.uuid4().hex}")
    try:
        online = OnlineFeatures(FEATURES, state)
        assert_tables_equal(online.replay(payments, labels),
                            build_features(FEATURES, payments, labels), FEATURES)
    finally:
        state.clear()
        state.close()


def test_two_executors_share_one_redis_state(redis_available):
    """Two service processes: payments alternate between them and each sees the other's."""
    namespace = f"test-{uuid.uuid4().hex}"
    fs = FeatureSet("s", {"card": "card_id"}, [Count(by="card", window="1h"),
                                               Sum("amount", by="card", window="1h")])
    a = OnlineFeatures(fs, RedisState(redis_available, namespace=namespace))
    b = OnlineFeatures(fs, RedisState(redis_available, namespace=namespace))
    try:
        got = [(a if i % 2 else b).add_payment(
            {"payment_id": f"p{i}", "ts": T0 + i * timedelta(minutes=10), "amount": 2.0,
             "card_id": "c1"}) for i in range(10)]
        assert [g["count_by_card_1h"] for g in got] == [1, 2, 3, 4, 5, 6, 6, 6, 6, 6]
        assert got[-1]["amount_sum_by_card_1h"] == 12.0
    finally:
        a.state.clear()  # type: ignore[attr-defined]
        a.state.close()
        b.state.close()


def test_unreachable_redis_is_a_clear_error():
    from vigil._errors import ConfigError

    with pytest.raises(ConfigError, match="cannot reach Redis"):
        RedisState("redis://127.0.0.1:1/0")


# ----------------------------------------------------------------------------- Handbook week
@pytest.mark.handbook
@pytest.mark.skipif(not HANDBOOK.exists(), reason=f"Handbook data not found at {HANDBOOK}")
def test_a_handbook_test_week_replayed_online_equals_offline():
    """The Handbook features for the week from 2018-08-15, replayed payment by payment after
    40 days of warm-up (the 30-day windows plus the 7-day label delay), equal the offline
    table over the whole history."""
    from datetime import UTC

    from vigil.events import read_handbook

    data = read_handbook(HANDBOOK)
    fs = handbook_baseline()
    week = datetime(2018, 8, 15, tzinfo=UTC)
    ts = data.payments.column("ts")
    history = data.payments.filter(pc.and_(pc.greater_equal(ts, week - timedelta(days=40)),
                                           pc.less(ts, week + timedelta(days=7))))
    online = OnlineFeatures(fs).replay(history, data.labels)
    offline = build_features(fs, data.payments, data.labels)
    in_week = pc.greater_equal(online.column("ts"), week)
    online = online.filter(in_week)
    offline = offline.filter(pc.and_(pc.greater_equal(offline.column("ts"), week),
                                     pc.less(offline.column("ts"), week + timedelta(days=7))))
    assert online.num_rows > 50_000
    assert_tables_equal(online, offline, fs)


# ----------------------------------------------------------------------------- keep_last
def _keep_last_stream(online: OnlineFeatures) -> list[dict]:
    """Card c1 pays every 3 h (older than the 1 h window), twice at one instant; c2 once."""
    rows = [{"payment_id": f"p{i:02d}", "ts": T0 + i * 3 * H, "amount": float(i),
             "card_id": "c1", "terminal_id": f"t{i % 3}"} for i in range(12)]
    rows.append({"payment_id": "p12", "ts": rows[-1]["ts"], "amount": 12.0, "card_id": "c1",
                 "terminal_id": "t0"})
    rows.append({"payment_id": "q00", "ts": T0, "amount": 1.0, "card_id": "c2",
                 "terminal_id": "t9"})
    rows.sort(key=lambda r: (r["ts"], r["payment_id"]))
    for r in rows:
        online.add_payment(r)
    return rows


def _check_keep_last(online: OnlineFeatures) -> None:
    rows = _keep_last_stream(online)
    online.state.sweep(online.clock + micros(T0 + 100 * H) - micros(T0))
    later = {"payment_id": "z", "ts": rows[-1]["ts"] + 50 * H, "amount": 1.0, "card_id": "c1"}
    values, last = online.features_and_last(later, "card_id")
    assert values == {"count_by_card_1h": 1.0}  # the window still counts only its hour (itself)
    assert [r["payment_id"] for r in last] == ["p08", "p09", "p10", "p11", "p12"]
    assert last[-1] == {"ts": micros(rows[-1]["ts"]), "payment_id": "p12", "amount": 12.0,
                        "terminal_id": "t0"}
    # a payment at p11's and p12's instant gets the rows ordered before it by (ts,
    # payment_id), as window_rows does (the encoder keeps the tie p11 from being seen)
    tie = {"payment_id": "p115", "ts": rows[-2]["ts"], "card_id": "c1"}
    assert [r["payment_id"] for r in online.features_and_last(tie, "card_id")[1]] == [
        "p08", "p09", "p10", "p11"]
    # an entity with keep_last is never dropped whole, however old
    old = {"payment_id": "y", "ts": later["ts"], "card_id": "c2"}
    assert [r["payment_id"] for r in online.features_and_last(old, "card_id")[1]] == ["q00"]
    assert online.features_and_last({"payment_id": "x", "ts": T0, "card_id": None},
                                    "card_id")[1] == []


KEEP_FS = FeatureSet("k", {"card": "card_id"}, [Count(by="card", window="1h")])
KEEP = {"card_id": (5, ("amount", "terminal_id"))}


def test_memory_state_keeps_the_newest_n_payments_of_an_entity():
    online = OnlineFeatures(KEEP_FS, keep_last=KEEP)
    _check_keep_last(online)
    assert online.state.sizes()["payment_events"] == 5 + 1  # c1's newest 5, c2's one
    # and through a snapshot
    resumed = OnlineFeatures(KEEP_FS, MemoryState.load(json.loads(json.dumps(
        online.state.dump()))), keep_last=KEEP)
    later = {"payment_id": "z", "ts": T0 + 200 * H, "card_id": "c1"}
    assert ([r["payment_id"] for r in resumed.features_and_last(later, "card_id")[1]]
            == ["p08", "p09", "p10", "p11", "p12"])
    # without keep_last the old payments go as before
    plain = OnlineFeatures(KEEP_FS)
    _keep_last_stream(plain)
    plain.state.sweep(plain.clock + micros(T0 + 100 * H) - micros(T0))
    assert plain.state.sizes()["payment_entities"] == 0


def test_redis_state_keeps_the_newest_n_payments_of_an_entity(redis_available):
    state = RedisState(redis_available, namespace=f"test-{uuid.uuid4().hex}")
    try:
        online = OnlineFeatures(KEEP_FS, state, keep_last=KEEP)
        _check_keep_last(online)
        assert state._redis.zcard(state._k("pay", "card_id", "c1")) == 5
        assert state._redis.ttl(state._k("pay", "card_id", "c1")) == -1  # no expiry
    finally:
        state.clear()
        state.close()


def test_a_snapshot_made_for_other_features_is_refused():
    plain = OnlineFeatures(KEEP_FS)
    _keep_last_stream(plain)
    saved = json.loads(json.dumps(plain.state.dump()))
    with pytest.raises(ValueError, match="another model's snapshot"):
        OnlineFeatures(KEEP_FS, MemoryState.load(saved), keep_last=KEEP)
    old = {k: v for k, v in saved.items() if k != "config"}  # from before keep_last existed
    with pytest.raises(ValueError, match="another model's snapshot"):
        OnlineFeatures(KEEP_FS, MemoryState.load(old), keep_last=KEEP)
    OnlineFeatures(KEEP_FS, MemoryState.load(old))  # the same features: loads as before
