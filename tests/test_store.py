"""The store, on SQLite (a file in tmp_path) and PostgreSQL (when VIGIL_TEST_POSTGRES_URL is set).

Every behavioural test runs on both backends through the ``store_url`` fixture; the few that
are about SQLite's file (durability settings, a writer killed mid-stream) say so.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Protocol, runtime_checkable

import pytest
import sqlalchemy as sa

from vigil import ConfigError, SchemaError
from vigil.store import (
    BLOCKED_CARDS,
    BLOCKED_EMAILS,
    MIGRATIONS,
    DuplicatePayment,
    IdempotencyError,
    Migration,
    ReviewClosed,
    ReviewExists,
    SchemaVersionError,
    Store,
    StoreUnavailable,
    UnknownApiKey,
    UnknownPayment,
    UnknownReview,
    add_column,
    metadata,
)

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    """A clock that stands still until told to move."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def payment(i: int | str, **fields: Any) -> dict[str, Any]:
    pid, offset = (i, 0) if isinstance(i, str) else (f"p{i:05d}", i)
    out = {"payment_id": pid, "ts": T0 + timedelta(seconds=offset),
           "amount": 12.5, "currency": "EUR", "card_id": "card-1", "customer_id": "cust-1",
           "merchant_id": "m-1", "terminal_id": "t-1", "device_id": "d-1", "ip": "10.0.0.1",
           "email": "ann@example.com", "card_country": "FR", "ip_country": "FR",
           "merchant_country": "DE", "channel": "card_not_present"}
    out.update(fields)
    return out


def decision(**fields: Any) -> dict[str, Any]:
    out = {"risk_score": 12, "risk_level": "normal", "probability": 0.0016, "decision": "allow",
           "rule_id": None, "rule": None, "reasons": ["amount_sum_by_card_24h"],
           "model_version": "m-2024-03-01", "timings": {"model_ms": 0.4}}
    out.update(fields)
    return out


def label(pid: str, **fields: Any) -> dict[str, Any]:
    out = {"payment_id": pid, "kind": "dispute", "is_fraud": True,
           "reported_at": T0 + timedelta(days=20)}
    out.update(fields)
    return out


# fixtures


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """The URL of an empty database: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'vigil.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(store_url: str, clock: FakeClock) -> Iterator[Store]:
    """A migrated, empty store on each backend, on a fake clock."""
    with Store.open(store_url, migrate=True, clock=clock) as s:
        yield s


@pytest.fixture
def sqlite_path(tmp_path):
    return tmp_path / "vigil.db"


# opening


def test_open_accepts_a_path_a_url_and_memory(sqlite_path):
    with Store.open(sqlite_path, migrate=True) as s:
        s.record_payment(payment(1), decision())
        assert s.backend == "sqlite"
    with Store.open(str(sqlite_path)) as s:
        assert s.count_payments() == 1
    with Store.open(f"sqlite:///{sqlite_path}") as s:
        assert s.count_payments() == 1
    with Store.open(":memory:", migrate=True) as s:
        assert s.count_payments() == 0


def test_open_creates_the_folder_of_a_sqlite_file(tmp_path):
    with Store.open(tmp_path / "new" / "folder" / "vigil.db", migrate=True) as s:
        assert s.count_payments() == 0


def test_plain_postgresql_url_gets_the_psycopg_driver(postgres_url):
    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with Store.open(plain, migrate=True) as s:
        assert s.engine.url.drivername == "postgresql+psycopg"
        assert s.backend == "postgresql"


@pytest.mark.parametrize("url, message", [
    ("mysql://root@localhost/vigil", "database 'mysql' is not supported"),
    ("not a url://", "is not a database URL"),
])
def test_unsupported_url_is_a_config_error(url, message):
    with pytest.raises(ConfigError, match=message):
        Store.open(url)


def test_unreachable_postgresql_is_store_unavailable():
    with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1"):
        Store.open("postgresql://nobody@127.0.0.1:1/vigil?connect_timeout=2")


def test_sqlite_runs_with_wal_full_sync_foreign_keys_and_busy_timeout(sqlite_path):
    with Store.open(sqlite_path, migrate=True, busy_timeout=2.5) as s, s.engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert c.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert c.exec_driver_sql("PRAGMA busy_timeout").scalar() == 2500


def test_sqlite_locked_past_the_busy_timeout_is_store_unavailable(sqlite_path):
    import sqlite3

    with Store.open(sqlite_path, migrate=True, busy_timeout=0.2) as s:
        other = sqlite3.connect(sqlite_path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            with pytest.raises(StoreUnavailable, match="locked"):
                s.record_payment(payment(1), decision())
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert s.record_payment(payment(1), decision()) == 1


# payments and decisions


def test_payment_and_decision_round_trip(store):
    sent = payment(1, customer_note={"vip": True, "tags": ["a"]})
    seq = store.record_payment(sent, decision(rule_id="r7", rule="review if :amount: > 10",
                                              decision="review"))
    got = store.get_payment("p00001")
    assert got["seq"] == seq == 1
    assert {k: got[k] for k in sent} == sent
    assert got["received_at"] == T0
    assert got["decision"] == {**decision(rule_id="r7", rule="review if :amount: > 10",
                                          decision="review"), "created_at": T0}
    assert got["labels"] == []
    assert got["review"]["status"] == "open"  # a review decision opens its case
    assert store.get_payment("nope") is None


def test_optional_fields_may_be_absent(store):
    minimal = {k: payment(1)[k] for k in ("payment_id", "ts", "amount", "currency", "card_id",
                                          "customer_id", "merchant_id")}
    store.record_payment(minimal, {"risk_score": 0, "risk_level": "normal",
                                   "probability": 0.0, "decision": "allow"})
    got = store.get_payment("p00001")
    assert got["email"] is None and got["channel"] is None
    assert got["decision"]["reasons"] == [] and got["decision"]["timings"] == {}
    assert got["decision"]["model_version"] is None and got["review"] is None


def test_timestamps_come_back_as_the_same_instant_in_utc(store):
    india = timezone(timedelta(hours=5, minutes=30))
    aware = datetime(2024, 3, 1, 17, 45, 0, 123456, tzinfo=india)
    naive = datetime(2024, 7, 1, 23, 59, 59, 999999)  # read as UTC, as everywhere in vigil
    store.record_payment(payment("pa", ts=aware, received_at=aware), decision())
    store.record_payment(payment("pn", ts=naive), decision(created_at=naive))
    a, n = store.get_payment("pa"), store.get_payment("pn")
    assert a["ts"] == aware and a["ts"].tzinfo == UTC
    assert a["ts"] == datetime(2024, 3, 1, 12, 15, 0, 123456, tzinfo=UTC)
    assert a["received_at"] == aware
    assert n["ts"] == naive.replace(tzinfo=UTC) and n["ts"].tzinfo == UTC
    assert n["decision"]["created_at"] == naive.replace(tzinfo=UTC)
    replayed = {p["payment_id"]: p["ts"] for p in store.payments_since(0)}
    assert replayed == {"pa": aware, "pn": naive.replace(tzinfo=UTC)}
    assert all(t.utcoffset() == timedelta(0) for t in replayed.values())


def test_duplicate_payment_raises_and_changes_nothing(store):
    store.record_payment(payment(1, amount=10.0), decision(risk_score=5))
    with pytest.raises(DuplicatePayment, match="'p00001' is already recorded") as info:
        store.record_payment(payment(1, amount=99.0), decision(risk_score=99, decision="review"))
    assert info.value.payment_id == "p00001"
    got = store.get_payment("p00001")
    assert got["amount"] == 10.0 and got["decision"]["risk_score"] == 5
    assert got["review"] is None and store.count_payments() == 1
    # sequence numbers only increase: the refused duplicate may have used one up (the
    # database skips it inside the insert), as a rolled-back PostgreSQL insert always could
    assert store.record_payment(payment(2), decision()) > 1


def test_batch_writes_the_new_payments_and_reports_duplicates(store):
    # documented choice: a duplicate is skipped, the rest of the batch is written
    store.record_payment(payment(1), decision())
    result = store.record_payments([(payment(2), decision()), (payment(1), decision()),
                                    (payment(3), decision()), (payment(2), decision())])
    first, repeat, third, again = result.seqs
    assert repeat is None and again is None and first is not None and third is not None
    assert 1 < first < third  # in batch order (a skipped duplicate may use up a number)
    assert result.duplicates == ["p00001", "p00002"]
    assert result.written == 2
    assert store.count_payments() == 3
    assert store.record_payments([]).seqs == []


def test_a_bad_value_anywhere_in_a_batch_writes_nothing(store):
    batch = [(payment(1), decision()), (payment(2, amount=-1.0), decision())]
    with pytest.raises(SchemaError, match="amount"):
        store.record_payments(batch)
    assert store.count_payments() == 0


def test_payment_and_decision_are_one_transaction(store, monkeypatch):
    # make the decision's INSERT fail after the payment's, as a crash between them would
    import vigil.store._payments as payments_module

    missing = sa.Table("no_such_table", sa.MetaData(),
                       *(sa.Column(c.name, c.type) for c in metadata.tables["decisions"].columns))
    monkeypatch.setattr(payments_module, "_INSERT_DECISIONS", missing.insert())
    with pytest.raises((StoreUnavailable, sa.exc.ProgrammingError), match="no_such_table"):
        store.record_payments([(payment(1), decision()), (payment(2), decision())])
    monkeypatch.undo()
    assert store.count_payments() == 0 and store.get_payment("p00001") is None
    assert store.record_payment(payment(1), decision()) >= 1


@pytest.mark.parametrize("make, message", [
    (lambda: (payment(1, card_id=None), decision()),
     "payment 'p00001', column 'card_id': value is missing but the field is required"),
    (lambda: (payment(1, amount=float("nan")), decision()),
     "column 'amount': nan: amount must be a finite number >= 0"),
    (lambda: (payment(1, amount=True), decision()), "amount must be a finite number"),
    (lambda: (payment(1, currency="eur"), decision()), "three upper-case letters"),
    (lambda: (payment(1, channel="atm"), decision()), "channel must be one of card_present"),
    (lambda: (payment(1, ts="2024-03-01"), decision()), "expected a datetime, found str"),
    (lambda: (payment(1, merchant_id=7), decision()), "expected text, found int"),
    (lambda: (payment(1, seq=4), decision()), "'seq' is a name the store uses itself"),
    (lambda: (payment(1, meta=object()), decision()), "column 'extra': value cannot be stored"),
    (lambda: (payment(1), decision(decision="deny")), "'deny': decision must be one of allow"),
    (lambda: (payment(1), decision(risk_score=101)), "risk_score must be a whole number"),
    (lambda: (payment(1), decision(risk_score=50.0)), "risk_score must be a whole number"),
    (lambda: (payment(1), decision(probability=1.5)), "probability must be a finite number"),
    (lambda: (payment(1), decision(risk_levl="x")), "unknown field(s) risk_levl"),
    (lambda: (payment(1), decision(timings={"x": float("inf")})), "column 'timings'"),
    (lambda: (["p1"], decision()), "a payment must be a mapping"),
    (lambda: (payment(1), "allow"), "a decision must be a mapping of field to value, not str"),
])
def test_bad_payments_and_decisions_name_the_field(store, make, message):
    with pytest.raises(SchemaError) as info:
        store.record_payment(*make())
    assert message in str(info.value)
    assert store.count_payments() == 0


def test_payments_since_pages_in_seq_order(store):
    for start in range(0, 30, 7):  # batches of different sizes
        store.record_payments([(payment(i), decision()) for i in range(start, min(start + 7, 30))])
    store.record_payment(payment(30), decision())
    seqs = [p["seq"] for p in store.payments_since(0, page=4)]
    assert seqs == list(range(1, 32))
    assert [p["payment_id"] for p in store.payments_since(10, limit=5, page=2)] == [
        f"p{i:05d}" for i in range(10, 15)]
    assert list(store.payments_since(31)) == []
    assert list(store.payments_since(29, limit=10)) == list(store.payments_since(29))
    assert store.count_payments() == 31
    assert store.last_seqs() == (31, 0)


def test_an_incremental_reader_never_misses_a_payment(store):
    # seq order is commit order: a reader that has seen seq N never later finds a smaller one
    n_writers, per_writer = 4, 40
    done = threading.Event()
    seen: list[int] = []
    errors: list[BaseException] = []

    def write(w: int) -> None:
        try:
            for b in range(0, per_writer, 4):
                store.record_payments([(payment(f"w{w}-{b + j}"), decision())
                                       for j in range(4)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def read() -> None:
        last = 0
        while True:
            finished = done.is_set()
            for p in store.payments_since(last):
                seen.append(p["seq"])
                last = p["seq"]
            if finished:
                return

    reader = threading.Thread(target=read)
    writers = [threading.Thread(target=write, args=(w,)) for w in range(n_writers)]
    reader.start()
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    done.set()
    reader.join()
    assert not errors
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == n_writers * per_writer


# labels


def test_labels_are_recorded_in_seq_order_and_read_back(store, clock):
    store.record_payments([(payment(i), decision()) for i in range(3)])
    first = store.add_label(label("p00000", kind="fraud_report", is_fraud=False,
                                  reported_at=T0 + timedelta(days=3)))
    second = store.add_label(label("p00000", reported_at=T0 + timedelta(days=9)))
    third = store.add_label(label("p00000", reported_at=T0 + timedelta(days=5)))
    assert (first, second, third) == (1, 2, 3)
    assert store.add_labels([label("p00001"), label("p00002", is_fraud=False)]) == [4, 5]
    assert [lb["seq"] for lb in store.labels_since(2)] == [3, 4, 5]
    assert list(store.labels_since(0, limit=1)) == [{
        "seq": 1, "payment_id": "p00000", "kind": "fraud_report", "is_fraud": False,
        "reported_at": T0 + timedelta(days=3), "received_at": clock.now}]
    assert [lb["seq"] for lb in store.get_payment("p00000")["labels"]] == [1, 2, 3]
    reports = store.first_reports("p00000")
    assert reports.labelled == T0 + timedelta(days=3)
    assert reports.fraud == T0 + timedelta(days=5)
    assert store.first_reports("p00002") == (T0 + timedelta(days=20), None)
    assert store.first_reports("unknown") == (None, None)
    assert store.last_seqs() == (3, 5)


def test_a_label_for_an_unknown_payment_is_refused(store):
    store.record_payment(payment(1), decision())
    with pytest.raises(UnknownPayment, match="label for payment 'ghost'"):
        store.add_label(label("ghost"))
    with pytest.raises(UnknownPayment):
        store.add_labels([label("p00001"), label("ghost")])  # all or none
    assert list(store.labels_since(0)) == []


@pytest.mark.parametrize("bad, message", [
    ({"kind": "chargeback"}, "kind must be one of dispute, fraud_report, review_outcome"),
    ({"is_fraud": 1}, "is_fraud must be true or false"),
    ({"reported_at": None}, "column 'reported_at': value is missing"),
    ({"note": "x"}, "unknown field(s) note"),
])
def test_bad_labels_name_the_field(store, bad, message):
    store.record_payment(payment(1), decision())
    with pytest.raises(SchemaError) as info:
        store.add_label(label("p00001", **bad))
    assert message in str(info.value)


# reviews


def test_a_review_decision_opens_a_case_and_others_can_be_opened(store):
    store.record_payments([(payment(1), decision(decision="review")),
                           (payment(2), decision()), (payment(3), decision(decision="block"))])
    assert [r.payment_id for r in store.list_reviews()] == ["p00001"]
    case = store.open_review("p00003")
    assert case.status == "open" and case.outcome is None and case.payment_id == "p00003"
    with pytest.raises(ReviewExists, match="'p00001' already has review case 1 \\(open\\)"):
        store.open_review("p00001")
    with pytest.raises(UnknownPayment):
        store.open_review("ghost")
    assert store.get_review(case.id) == case
    with pytest.raises(UnknownReview):
        store.get_review(999)


def test_review_queue_pages_by_id(store):
    store.record_payments([(payment(i), decision(decision="review")) for i in range(7)])
    page1 = store.list_reviews(limit=3)
    page2 = store.list_reviews(limit=3, after=page1[-1].id)
    page3 = store.list_reviews(limit=3, after=page2[-1].id)
    ids = [r.id for r in page1 + page2 + page3]
    assert ids == sorted(ids) and len(set(ids)) == 7
    store.close_review(ids[0], "approved", by="ana")
    assert [r.id for r in store.list_reviews("closed")] == [ids[0]]
    assert len(store.list_reviews("open")) == 6 and len(store.list_reviews(None)) == 7
    with pytest.raises(SchemaError, match="status must be one of open, closed"):
        store.list_reviews("pending")


def test_approving_a_review_records_a_legit_label_and_lists_nothing(store, clock):
    store.record_payment(payment(1), decision(decision="review"))
    (case,) = store.list_reviews()
    clock.advance(hours=2)
    closed = store.close_review(case.id, "approved", by="ana")
    assert closed.review.status == "closed" and closed.review.outcome == "approved"
    assert closed.review.closed_by == "ana" and closed.review.closed_at == clock.now
    assert closed.label == {"payment_id": "p00001", "kind": "review_outcome",
                            "is_fraud": False, "reported_at": clock.now,
                            "received_at": clock.now, "seq": 1}
    assert closed.listed == []
    assert store.list_names() == []
    assert store.first_reports("p00001") == (clock.now, None)


def test_refunding_as_fraud_labels_and_blocks_card_and_email_at_once(store, clock):
    store.record_payments([(payment(1), decision(decision="review")),
                           (payment(2, email=None, card_id="card-2"),
                            decision(decision="review"))])
    first, second = store.list_reviews()
    closed = store.close_review(first.id, "refunded_as_fraud", by="bob")
    assert closed.label["is_fraud"] is True and closed.label["kind"] == "review_outcome"
    assert closed.listed == [(BLOCKED_CARDS, "card-1"), (BLOCKED_EMAILS, "ann@example.com")]
    assert store.contains(BLOCKED_CARDS, "card-1")
    assert store.contains(BLOCKED_EMAILS, "ann@example.com")
    item = store.list_items(BLOCKED_CARDS)[0]
    assert item.source == f"review {first.id}" and item.reason == "refunded as fraud by bob"
    # a payment without an e-mail blocks only its card
    assert store.close_review(second.id, "refunded_as_fraud", by="bob").listed == [
        (BLOCKED_CARDS, "card-2")]
    assert store.members(BLOCKED_CARDS) == {"card-1", "card-2"}
    assert [lb["payment_id"] for lb in store.labels_since(0)] == ["p00001", "p00002"]


def test_a_review_closes_once(store):
    store.record_payment(payment(1), decision(decision="review"))
    (case,) = store.list_reviews()
    store.close_review(case.id, "approved", by="ana")
    with pytest.raises(ReviewClosed, match=f"review case {case.id} was already closed "
                                           "\\(approved, by ana"):
        store.close_review(case.id, "refunded_as_fraud", by="bob")
    assert store.list_names() == [] and len(list(store.labels_since(0))) == 1
    assert store.get_review(case.id).outcome == "approved"
    with pytest.raises(UnknownReview, match="no review case 999"):
        store.close_review(999, "approved", by="ana")
    with pytest.raises(SchemaError, match="outcome must be one of approved, refunded_as_fraud"):
        store.close_review(case.id, "refunded", by="ana")


def test_concurrent_closes_of_one_review_let_exactly_one_win(store):
    store.record_payment(payment(1), decision(decision="review"))
    (case,) = store.list_reviews()
    outcomes = _race(6, lambda i: store.close_review(case.id, "refunded_as_fraud", by=f"u{i}"))
    assert sum(not isinstance(o, BaseException) for o in outcomes) == 1
    assert all(isinstance(o, ReviewClosed) for o in outcomes if isinstance(o, BaseException))
    assert len(list(store.labels_since(0))) == 1


# lists


@runtime_checkable
class ListLookup(Protocol):
    """What the rules package reads lists through."""

    def contains(self, list_name: str, value: Any) -> bool: ...

    def members(self, list_name: str) -> set[str]: ...


def test_lists_add_remove_and_answer_the_rules_protocol(store, clock):
    assert isinstance(store, ListLookup)
    assert store.add_list_item("suspicious_emails", "x@evil.test", source="admin:ana",
                               reason="seen in a phishing kit") is True
    clock.advance(seconds=1)
    assert store.add_list_item("suspicious_emails", "y@evil.test", source="admin:ana") is True
    assert store.add_list_item("suspicious_emails", "x@evil.test", source="admin:bob") is False
    store.add_list_item("vip_customers", "cust-1", source="crm")
    assert store.contains("suspicious_emails", "x@evil.test")
    assert not store.contains("suspicious_emails", "X@evil.test")  # exact match
    assert not store.contains("suspicious_emails", None)
    assert not store.contains("no_such_list", "x@evil.test")
    assert store.members("suspicious_emails") == {"x@evil.test", "y@evil.test"}
    assert store.members("no_such_list") == set()
    items = store.list_items("suspicious_emails")
    assert [(i.value, i.source, i.reason, i.added_at) for i in items] == [
        ("x@evil.test", "admin:ana", "seen in a phishing kit", T0),
        ("y@evil.test", "admin:ana", None, T0 + timedelta(seconds=1))]
    assert store.list_names() == ["suspicious_emails", "vip_customers"]
    assert store.remove_list_item("vip_customers", "cust-1") is True
    assert store.remove_list_item("vip_customers", "cust-1") is False
    assert store.list_names() == ["suspicious_emails"]


@pytest.mark.parametrize("args, message", [
    (("blocked cards", "c", "admin"), "cannot name a list; use letters, digits and _"),
    (("blocked_cards", "", "admin"), "a list value must be non-empty text"),
    (("blocked_cards", "c", ""), "source must be non-empty text"),
])
def test_bad_list_items_are_refused(store, args, message):
    with pytest.raises(SchemaError, match=message):
        store.add_list_item(*args)


# rules


def test_rules_are_versioned_and_the_latest_is_in_force(store, clock):
    assert store.current_rules() is None and store.rules_history() == []
    assert store.save_rules("block if :risk_score: > 75", by="ana") == 1
    clock.advance(days=1)
    assert store.save_rules("block if :risk_score: > 80", by="bob") == 2
    assert store.current_rules() == (2, "block if :risk_score: > 80")
    history = store.rules_history()
    assert [(r.version, r.created_by, r.created_at) for r in history] == [
        (2, "bob", T0 + timedelta(days=1)), (1, "ana", T0)]
    with pytest.raises(SchemaError, match="rules must be text"):
        store.save_rules(None, by="ana")


def test_concurrent_rule_saves_get_distinct_versions(store):
    outcomes = _race(6, lambda i: store.save_rules(f"allow if :amount: < {i}", by=f"u{i}"))
    assert sorted(outcomes) == [1, 2, 3, 4, 5, 6]
    assert store.current_rules()[0] == 6


# API keys


def test_api_keys_verify_until_revoked_and_the_secret_is_not_stored(store, clock):
    key_id, secret = store.create_api_key("score", "checkout service")
    assert secret.startswith("vk_") and len(secret) > 40
    key = store.verify_api_key(secret)
    assert key.id == key_id and key.scope == "score" and key.name == "checkout service"
    assert key.active and key.created_at == T0 and secret.split("_")[1] == key.prefix
    admin_id, admin_secret = store.create_api_key("admin", "ops")
    assert store.verify_api_key(admin_secret).scope == "admin"
    for wrong in (secret[:-1] + ("A" if secret[-1] != "A" else "B"), "vk_nope_x", "garbage",
                  "", f"vk_{key.prefix}_", None):
        assert store.verify_api_key(wrong) is None
    with store.engine.connect() as conn:
        stored = [str(v) for row in conn.execute(sa.select(metadata.tables["api_keys"]))
                  for v in row]
    assert not any(secret in v or secret.split("_", 2)[2] in v for v in stored)
    clock.advance(minutes=5)
    revoked = store.revoke_api_key(key_id)
    assert revoked.revoked_at == clock.now and not revoked.active
    assert store.verify_api_key(secret) is None
    assert store.revoke_api_key(key_id).revoked_at == revoked.revoked_at  # twice: harmless
    assert [(k.id, k.active) for k in store.list_api_keys()] == [(key_id, False),
                                                                 (admin_id, True)]
    with pytest.raises(UnknownApiKey):
        store.revoke_api_key(999)
    with pytest.raises(SchemaError, match="scope must be one of score, admin"):
        store.create_api_key("root", "x")


# idempotency


def test_idempotency_claim_replay_conflict_and_release(store, clock):
    key_id, _ = store.create_api_key("score", "shop")
    other_id, _ = store.create_api_key("score", "other shop")
    assert store.idempotency_begin(key_id, "k1", "hash-a").state == "claimed"
    assert store.idempotency_begin(key_id, "k1", "hash-a").state == "in_progress"
    assert store.idempotency_begin(key_id, "k1", "hash-b").state == "conflict"
    assert store.idempotency_begin(other_id, "k1", "hash-b").state == "claimed"  # per API key
    store.idempotency_complete(key_id, "k1", 200, {"decision": "allow", "risk_score": 3})
    replay = store.idempotency_begin(key_id, "k1", "hash-a")
    assert (replay.state, replay.status_code, replay.body) == (
        "replay", 200, {"decision": "allow", "risk_score": 3})
    assert store.idempotency_begin(key_id, "k1", "hash-b").state == "conflict"
    with pytest.raises(IdempotencyError, match="'k1' is not claimed and in progress"):
        store.idempotency_complete(key_id, "k1", 200, {})
    with pytest.raises(IdempotencyError):
        store.idempotency_release(key_id, "k1")
    # a failed request releases its claim so that the retry runs
    assert store.idempotency_begin(key_id, "k2", "h").state == "claimed"
    store.idempotency_release(key_id, "k2")
    assert store.idempotency_begin(key_id, "k2", "h").state == "claimed"
    # a claim whose process died is taken over once it is stale, by the same body only
    clock.advance(minutes=6)
    assert store.idempotency_begin(key_id, "k2", "other").state == "conflict"
    assert store.idempotency_begin(key_id, "k2", "h").state == "claimed"
    assert store.idempotency_begin(key_id, "k2", "h").state == "in_progress"
    with pytest.raises(UnknownApiKey):
        store.idempotency_begin(999, "k1", "h")
    with pytest.raises(SchemaError, match="cannot be stored as JSON"):
        store.idempotency_complete(key_id, "k2", 200, {"t": datetime.now()})
    assert store.purge_idempotency(clock.now) == 2  # k1 of both keys; k2 was claimed now
    assert store.idempotency_begin(key_id, "k1", "hash-b").state == "claimed"


@pytest.mark.parametrize("same_body", [True, False])
def test_concurrent_idempotency_claims_have_exactly_one_winner(store, same_body):
    key_id, _ = store.create_api_key("score", "shop")
    for round_ in range(3):
        outcomes = _race(8, lambda i, r=round_: store.idempotency_begin(
            key_id, f"key-{r}", "h" if same_body else f"h{i}").state)
        assert not [o for o in outcomes if isinstance(o, BaseException)], outcomes
        assert outcomes.count("claimed") == 1
        losers = "in_progress" if same_body else "conflict"
        assert outcomes.count(losers) == len(outcomes) - 1


# snapshots


def test_snapshots_keep_the_latest_few(store, clock):
    assert store.latest_snapshot() is None
    for i in range(5):
        clock.advance(minutes=1)
        store.save_snapshot(f'{{"n": {i}}}'.encode() + bytes(range(256)), 100 + i, 10 + i,
                            keep=3)
    latest = store.latest_snapshot()
    assert latest.payload == b'{"n": 4}' + bytes(range(256))
    assert (latest.payments_seq, latest.labels_seq, latest.taken_at) == (104, 14, clock.now)
    with store.engine.connect() as conn:
        kept = conn.execute(sa.select(metadata.tables["state_snapshots"].c.payments_seq)
                            ).scalars().all()
    assert sorted(kept) == [102, 103, 104]
    with pytest.raises(SchemaError, match="must be bytes"):
        store.save_snapshot({"n": 1}, 1, 1)


# migrations


def _v2_add_note(conn: sa.Connection) -> None:
    add_column(conn, "payments", sa.Column("note", sa.String, nullable=True))
    sa.Table("chargebacks", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("payment_id", sa.String, nullable=False)).create(conn)


def test_migrate_is_idempotent_and_matches_the_tables_the_code_uses(store_url):
    with Store.open(store_url) as s:
        assert s.schema_version() == 0
        assert s.migrate() == list(range(1, len(MIGRATIONS) + 1))
        assert s.migrate() == []
        assert s.schema_version() == s.latest_version == len(MIGRATIONS)
        inspector = sa.inspect(s.engine)
        assert set(inspector.get_table_names()) == set(metadata.tables)
        for table in metadata.tables.values():
            columns = {c["name"]: c["nullable"] for c in inspector.get_columns(table.name)}
            assert columns == {c.name: c.nullable for c in table.columns}, table.name
            assert inspector.get_pk_constraint(table.name)["constrained_columns"] == [
                c.name for c in table.primary_key]


def test_an_unmigrated_database_says_to_migrate(store_url):
    with Store.open(store_url) as s:
        with pytest.raises(SchemaVersionError,
                           match=rf"version 0, this vigil needs {len(MIGRATIONS)}; run st"):
            s.count_payments()
        s.migrate()
        assert s.count_payments() == 0


def test_concurrent_migrations_apply_each_step_once(store_url):
    stores = [Store.open(store_url) for _ in range(4)]
    try:
        outcomes = _race(4, lambda i: stores[i].migrate())
        # each step once, by whichever process got to it first
        assert sorted(v for done in outcomes for v in done) == [
            m.version for m in MIGRATIONS], outcomes
        assert stores[0].schema_version() == len(MIGRATIONS)
    finally:
        for s in stores:
            s.close()


def test_a_second_migration_upgrades_an_old_database_without_losing_rows(store_url):
    with Store.open(store_url, migrate=True) as old:
        old.record_payments([(payment(i), decision(decision="review")) for i in range(3)])
        old.add_label(label("p00001"))
        old.add_list_item("blocked_cards", "c9", source="admin")
    last = len(MIGRATIONS)
    newer = [*MIGRATIONS, Migration(last + 1, "payments.note; chargebacks", _v2_add_note)]
    with Store.open(store_url, migrations=newer) as new:
        assert new.schema_version() == last
        with pytest.raises(SchemaVersionError, match=f"this vigil needs {last + 1}"):
            new.count_payments()
        assert new.migrate() == [last + 1]
        assert new.schema_version() == last + 1
        assert new.count_payments() == 3 and len(new.list_reviews()) == 3
        assert new.first_reports("p00001").fraud == label("p00001")["reported_at"]
        assert new.contains("blocked_cards", "c9")
        new.record_payment(payment(3), decision())
        inspector = sa.inspect(new.engine)
        assert "note" in {c["name"] for c in inspector.get_columns("payments")}
        assert "chargebacks" in inspector.get_table_names()
    # the code that knows only the shipped versions refuses the upgraded database
    with pytest.raises(SchemaVersionError,
                       match=f"version {last + 1}, newer than this vigil knows"):
        Store.open(store_url)


def test_a_failing_migration_leaves_the_version_before_it(store_url):
    def broken(conn: sa.Connection) -> None:
        add_column(conn, "payments", sa.Column("note", sa.String))
        raise RuntimeError("step two went wrong")

    with Store.open(store_url, migrate=True) as s:
        s.record_payment(payment(1), decision())
    last = len(MIGRATIONS)
    with Store.open(store_url, migrations=[*MIGRATIONS, Migration(last + 1, "broken",
                                                                  broken)]) as s:
        with pytest.raises(RuntimeError, match="step two"):
            s.migrate()
        assert s.schema_version() == last
        assert "note" not in {c["name"] for c in sa.inspect(s.engine).get_columns("payments")}
    with Store.open(store_url) as s:
        assert s.count_payments() == 1


def test_migration_versions_must_count_up_from_one():
    with pytest.raises(ConfigError, match="must be 1, 2, 3"):
        Store.open(":memory:", migrations=[*MIGRATIONS, Migration(len(MIGRATIONS) + 2, "gap",
                                                                  _v2_add_note)])


# durability


_WRITER = textwrap.dedent("""
    import sys
    from datetime import UTC, datetime
    from vigil.store import Store

    store = Store.open(sys.argv[1], migrate=True)
    def pay(i):
        return ({"payment_id": f"k{i}", "ts": datetime(2024, 3, 1, tzinfo=UTC), "amount": 1.0,
                 "currency": "EUR", "card_id": "c", "customer_id": "u", "merchant_id": "m"},
                {"risk_score": 1, "risk_level": "normal", "probability": 0.0,
                 "decision": "allow"})
    i = 0
    while True:
        if i % 3:
            store.record_payment(*pay(i))
            ids = [f"k{i}"]
            i += 1
        else:  # a grouped commit
            result = store.record_payments([pay(j) for j in range(i, i + 10)])
            ids = result.payment_ids
            i += 10
        print(" ".join(ids), flush=True)  # reported only after the commit returned
""")


def test_every_reported_payment_survives_a_sigkill(sqlite_path):
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(sqlite_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reported: list[str] = []
    deadline = time.monotonic() + 20
    try:
        while len(reported) < 300 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            reported.extend(line.split())
        proc.send_signal(signal.SIGKILL)  # right after a commit was reported, mid-stream
        rest, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:  # pragma: no cover
            proc.kill()
    reported.extend(rest.split())  # lines printed before the kill were reported too
    assert len(reported) >= 300, err
    assert proc.returncode == -signal.SIGKILL
    with Store.open(sqlite_path) as s:
        stored = {p["payment_id"] for p in s.payments_since(0)}
        assert set(reported) <= stored
        seqs = [p["seq"] for p in s.payments_since(0)]
        assert seqs == list(range(1, len(seqs) + 1))


# helpers


def _race(n: int, work) -> list[Any]:
    """Run ``work(i)`` in ``n`` threads released together; results (or exceptions) by i."""
    barrier = threading.Barrier(n)
    out: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            out[i] = work(i)
        except BaseException as exc:
            out[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out
