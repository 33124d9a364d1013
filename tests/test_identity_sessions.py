"""Verification sessions without HTTP: the request, the checks in order, the store's state
machine, the durable worker, encryption at rest, redaction and the ID-number reference, on
SQLite and (where its URL is set) PostgreSQL. The checks are fakes: no OCR, no face model."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil._errors import ConfigError
from vigil.identity import (
    CheckFailed,
    Claimed,
    DocumentFields,
    FaceMatch,
    Insight,
    KeyRing,
    SealError,
    SessionInputError,
    SessionRequest,
    StoreReferenceSource,
    VerificationSessions,
    Worker,
    new_key,
    run_checks,
)
from vigil.store import (
    SessionIncomplete,
    SessionStateError,
    Store,
    UnknownVerificationSession,
    metadata,
)

TODAY = date(2026, 11, 29)
DOC = DocumentFields(document_type="passport", mrz_format="TD3", issuing_country="UTO",
                     document_number="L898902C3", surname="ERIKSSON", given_names="ANNA MARIA",
                     nationality="UTO", birth_date=date(1974, 8, 12),
                     expiry_date=date(2030, 4, 15), sex="F")
SECRET_NAME = "ERIKSSON"
SECRET_NUMBER = "L898902C3"


def image(seed: int, kind: str = "png") -> bytes:
    """A file that passes the magic-byte check: the header, then random bytes."""
    magic = b"\x89PNG\r\n\x1a\n" if kind == "png" else b"\xff\xd8\xff\xe0"
    return magic + np.random.default_rng(seed).bytes(4000)


FRONT, BACK, SELFIE = image(1), image(2), image(3, "jpeg")


class FakeChecks:
    """Checks that answer as told, record their calls, and can block until released."""

    def __init__(self, *, fail: dict[str, str] | None = None) -> None:
        self.fail = dict(fail or {})
        self.calls: list[str] = []
        self.seen: dict[str, object] = {}
        self.block: threading.Event | None = None
        self.entered = threading.Event()

    def _maybe(self, check: str) -> None:
        self.calls.append(check)
        self.entered.set()
        if self.block is not None:
            assert self.block.wait(10)
        code = self.fail.get(check)
        if code:
            raise CheckFailed(code, f"the fake {check} check says no")

    def document(self, front, back, *, allowed_types, min_age, claimed, today):
        self.seen["document"] = (front, back, allowed_types, min_age, claimed, today)
        self._maybe("document")
        return DOC

    def selfie(self, document_image, selfie_image):
        self.seen["selfie"] = (document_image, selfie_image)
        self._maybe("selfie")
        return FaceMatch(0.3, 0.6, np.zeros(128), np.full(128, 0.25))

    def id_number(self, claimed):
        self.seen["id_number"] = claimed
        self._maybe("id_number")


class FakeSignals:
    def __init__(self) -> None:
        self.observed: list = []
        self.forgotten: list[str] = []

    def observe(self, facts) -> None:
        self.observed.append(facts)

    def insights(self, facts) -> list[Insight]:
        return [Insight("retries", "low", "a fake insight", ("vs_other",))]

    def forget(self, session_id: str) -> None:
        self.forgotten.append(session_id)


# fixtures


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[Store]:
    """A migrated, empty store on each backend."""
    url = (f"sqlite:///{tmp_path / 'vigil.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_url"))
    with Store.open(url, migrate=True) as s:
        yield s


@pytest.fixture
def keys() -> KeyRing:
    return KeyRing.from_text(new_key())


@pytest.fixture
def checks() -> FakeChecks:
    return FakeChecks()


@pytest.fixture
def signals() -> FakeSignals:
    return FakeSignals()


@pytest.fixture
def sessions(store, keys, checks, signals) -> VerificationSessions:
    return VerificationSessions(store, keys, checks=checks, signals=signals,
                                lease=timedelta(seconds=30))


def full_request() -> SessionRequest:
    return SessionRequest("document", require_matching_selfie=True, require_id_number=True,
                          min_age=18)


def submitted(sessions: VerificationSessions, tenant: str = "default", **claimed) -> str:
    claim = Claimed(name="Anna Maria Eriksson", id_number="123-45-6789",
                    id_number_country="US", **claimed)
    created = sessions.create(tenant, full_request(), claimed=claim,
                              metadata={"order": "o_1"},
                              context={"email": "anna@example.com", "ip": "10.1.2.3"})
    sid = created["id"]
    sessions.upload(tenant, sid, "document_front", FRONT)
    sessions.upload(tenant, sid, "document_back", BACK)
    sessions.upload(tenant, sid, "selfie", SELFIE)
    sessions.submit(tenant, sid)
    return sid


def raw_rows(store: Store) -> list[tuple[str, str, object]]:
    """Every value of every row of every table: (table, column, value)."""
    out = []
    with store.engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(sa.select(table)).mappings():
                out.extend((table.name, col, value) for col, value in row.items())
    return out


def leaks(store: Store, needles: list[bytes]) -> list[str]:
    found = []
    for table, col, value in raw_rows(store):
        blob = bytes(value) if isinstance(value, bytes | memoryview) else str(value).encode()
        found += [f"{table}.{col} holds {n[:12]!r}" for n in needles if n in blob]
    return found


NEEDLES = [SECRET_NAME.encode(), SECRET_NUMBER.encode(), b"Anna Maria", b"123-45-6789",
           b"anna@example.com", b"10.1.2.3", b"o_1", FRONT[1000:1032], BACK[1000:1032],
           SELFIE[1000:1032], np.full(128, 0.25, "<f4").tobytes()[:32]]


# the key ring


def test_sealed_blobs_open_only_for_their_session_and_purpose(keys):
    blob = keys.seal(b"ANNA MARIA ERIKSSON", session_id="vs_1", purpose="claimed")
    assert b"ANNA" not in blob and blob[:8].decode() == keys.current
    assert keys.open(blob, session_id="vs_1", purpose="claimed") == b"ANNA MARIA ERIKSSON"
    assert keys.seal(b"x", session_id="vs_1", purpose="p") != keys.seal(
        b"x", session_id="vs_1", purpose="p")  # a fresh nonce each time
    for session_id, purpose in (("vs_2", "claimed"), ("vs_1", "verified_outputs")):
        with pytest.raises(SealError, match="does not open"):
            keys.open(blob, session_id=session_id, purpose=purpose)
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(SealError, match="tampered"):
        keys.open(tampered, session_id="vs_1", purpose="claimed")


def test_keys_rotate_old_blobs_still_open():
    old, new = new_key(), new_key()
    blob = KeyRing.from_text(old).seal(b"secret", session_id="s", purpose="p")
    rotated = KeyRing.from_text(f"{new},{old}")
    assert rotated.open(blob, session_id="s", purpose="p") == b"secret"
    assert rotated.seal(b"x", session_id="s", purpose="p")[:8].decode() == rotated.current
    assert rotated.current != KeyRing.from_text(old).current
    with pytest.raises(SealError, match="not in the key ring"):
        KeyRing.from_text(new).open(blob, session_id="s", purpose="p")


@pytest.mark.parametrize("text", ["", "not base64!", "c2hvcnQ=", f"{new_key()},short"])
def test_a_bad_key_says_how_to_make_one(text):
    with pytest.raises(ConfigError, match="vigil identity key"):
        KeyRing.from_text(text)


@settings(max_examples=200, deadline=None)
@given(blob=st.binary(max_size=80), prefix=st.sampled_from([b"", b"deadbeef"]))
def test_random_bytes_never_open_and_fail_one_way(blob, prefix):
    ring = KeyRing.from_text("A" * 43 + "=")
    with pytest.raises(SealError):
        ring.open(prefix + blob, session_id="vs_1", purpose="selfie")


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=64))
def test_random_uploads_are_an_image_type_or_a_clear_error(data):
    from vigil.identity._sessions import sniff_image

    try:
        kind = sniff_image(data, "selfie")
    except SessionInputError as exc:
        assert exc.column == "selfie"
    else:
        assert kind in ("image/png", "image/jpeg")


# the request and the checks in order


@pytest.mark.parametrize("kwargs, field, message", [
    ({"type": "selfie"}, "type", "not a session type"),
    ({"allowed_types": ("passport", "visa")}, "allowed_types", "'visa' is not allowed"),
    ({"allowed_types": ()}, "allowed_types", "empty list"),
    ({"type": "id_number", "require_matching_selfie": True}, "options.document", "need a doc"),
    ({"min_age": 0}, "min_age", "not an age"),
    ({"min_age": True}, "min_age", "not an age"),
])
def test_a_bad_request_names_the_field(kwargs, field, message):
    with pytest.raises(SessionInputError, match=message) as info:
        SessionRequest(**kwargs)
    assert field in info.value.column


def test_the_checks_run_in_order_and_stop_at_the_first_failure(checks):
    files = {"document_front": FRONT, "selfie": SELFIE}
    outcome = run_checks(full_request(), files, Claimed(id_number="1", id_number_country="US"),
                         checks, today=TODAY)
    assert outcome.status == "verified" and checks.calls == ["document", "selfie", "id_number"]
    # the ID number is checked against the document's name and birth date when none is claimed
    assert checks.seen["id_number"].name == DOC.full_name
    assert checks.seen["id_number"].birth_date == DOC.birth_date
    assert checks.seen["selfie"] == (FRONT, SELFIE)
    assert checks.seen["document"][2:4] == (("passport", "id_card", "driving_license"), 18)

    failing = FakeChecks(fail={"selfie": "selfie_face_mismatch"})
    outcome = run_checks(full_request(), files, Claimed(), failing, today=TODAY)
    assert outcome.status == "requires_input" and outcome.error.code == "selfie_face_mismatch"
    assert failing.calls == ["document", "selfie"]
    assert outcome.verified_outputs(Claimed()) is None


# the flow, on the store


def test_a_session_is_verified_by_the_worker(sessions, signals):
    sid = submitted(sessions)
    view = sessions.get("default", sid)
    assert view["status"] == "processing" and view["attempt"] == 1
    assert set(view["files"]) == {"document_front", "document_back", "selfie"}
    assert view["files"]["selfie"]["content_type"] == "image/jpeg"
    assert Worker(sessions).run_until_idle() == 1
    view = sessions.get("default", sid)
    assert view["status"] == "verified" and view["last_error"] is None
    out = view["verified_outputs"]
    assert out["document_number"] == SECRET_NUMBER and out["last_name"] == SECRET_NAME
    assert out["dob"] == "1974-08-12" and out["expiration_date"] == "2030-04-15"
    assert out["issuing_country"] == "UTO" and out["document_type"] == "passport"
    assert out["id_number"] == "123-45-6789"
    assert view["insights"] == [{"kind": "retries", "level": "low", "detail": "a fake insight",
                                 "related_sessions": ["vs_other"]}]
    assert view["metadata"] == {"order": "o_1"}
    assert [e["status"] for e in view["history"]] == ["requires_input", "processing",
                                                      "verified"]
    facts = signals.observed[0]
    assert (facts.session_id, facts.outcome, facts.email, facts.document_number) == (
        sid, "verified", "anna@example.com", SECRET_NUMBER)
    assert facts.face_embedding is not None
    assert Worker(sessions).run_until_idle() == 0  # nothing left


def test_a_failed_check_sends_the_session_back_for_a_retry(sessions, checks):
    checks.fail["document"] = "document_expired"
    sid = submitted(sessions)
    Worker(sessions).run_until_idle()
    view = sessions.get("default", sid)
    assert view["status"] == "requires_input" and view["verified_outputs"] is None
    assert view["last_error"] == {"code": "document_expired",
                                  "reason": "the fake document check says no"}
    assert leaks(sessions.store, [b"fake document check"]) == []  # the reason is sealed too
    checks.fail.clear()
    sessions.upload("default", sid, "document_front", image(9))
    sessions.submit("default", sid)
    Worker(sessions).run_until_idle()
    view = sessions.get("default", sid)
    assert view["status"] == "verified" and view["attempt"] == 2
    assert [(e["status"], e["attempt"], e["error_code"]) for e in view["history"]] == [
        ("requires_input", 0, None), ("processing", 1, None),
        ("requires_input", 1, "document_expired"), ("processing", 2, None),
        ("verified", 2, None)]


def test_a_crashing_check_is_an_unverified_other_error_not_a_stuck_session(sessions, checks):
    def broken(claimed):
        raise RuntimeError("reference service exploded")

    checks.id_number = broken
    sid = submitted(sessions)
    Worker(sessions).run_until_idle()
    view = sessions.get("default", sid)
    assert view["last_error"]["code"] == "id_number_unverified_other"
    assert "RuntimeError" in view["last_error"]["reason"]


def test_submit_names_the_missing_file_and_uploads_are_checked(sessions):
    sid = sessions.create("default", SessionRequest(require_matching_selfie=True))["id"]
    with pytest.raises(SessionIncomplete, match="document_front, selfie are missing") as info:
        sessions.submit("default", sid)
    assert info.value.column == "document_front"
    with pytest.raises(SessionInputError, match="not a PNG or JPEG"):
        sessions.upload("default", sid, "selfie", b"GIF89a" + b"\0" * 100)
    with pytest.raises(SessionInputError, match="empty"):
        sessions.upload("default", sid, "selfie", b"")
    with pytest.raises(SessionInputError, match="not a file purpose"):
        sessions.upload("default", sid, "passport", FRONT)
    with pytest.raises(SessionInputError, match="needs claimed id_number, id_number_country"):
        sessions.create("default", SessionRequest("id_number"))
    jane = Claimed(name="Jane Q Public", birth_date=date(1990, 5, 17), id_number="123456789",
                   id_number_country="US")
    only_id = sessions.create("default", SessionRequest("id_number"), claimed=jane)["id"]
    with pytest.raises(SessionInputError, match="does not check a selfie"):
        sessions.upload("default", only_id, "selfie", SELFIE)


def test_status_changes_only_where_the_state_machine_allows(sessions):
    sid = submitted(sessions)
    with pytest.raises(SessionStateError, match="it is processing"):
        sessions.upload("default", sid, "selfie", SELFIE)
    with pytest.raises(SessionStateError, match="cannot submit"):
        sessions.submit("default", sid)
    with pytest.raises(SessionStateError, match="cancel it or wait"):
        sessions.redact("default", sid)
    Worker(sessions).run_until_idle()
    with pytest.raises(SessionStateError, match=r"cannot cancel .* it is verified"):
        sessions.cancel("default", sid)
    other = sessions.create("default", SessionRequest())["id"]
    assert sessions.cancel("default", other)["status"] == "canceled"
    with pytest.raises(SessionStateError, match="it is canceled"):
        sessions.cancel("default", other)


def test_a_canceled_processing_session_drops_the_workers_result(sessions, signals):
    sid = submitted(sessions)
    claim = sessions.store.claim_verification_session(timedelta(seconds=30))
    sessions.cancel("default", sid)
    assert sessions.process(sid, claim) is None
    assert sessions.get("default", sid)["status"] == "canceled" and not signals.observed


def test_another_tenants_session_is_unknown(sessions):
    sid = submitted(sessions, tenant="acme")
    for call in (lambda: sessions.get("default", sid),
                 lambda: sessions.upload("default", sid, "selfie", SELFIE),
                 lambda: sessions.cancel("default", sid),
                 lambda: sessions.redact("default", sid)):
        with pytest.raises(UnknownVerificationSession, match=sid):
            call()
    assert [s["id"] for s in sessions.list("acme")] == [sid]
    assert sessions.list("default") == []


# the durable worker


def test_a_worker_that_dies_mid_check_is_replaced_and_the_session_ends_once(store, keys,
                                                                           signals):
    slow = FakeChecks()
    slow.block = threading.Event()
    outcomes: list = []
    signals_a = FakeSignals()  # worker A's process has signals of its own
    dying = VerificationSessions(store, keys, checks=slow, signals=signals_a,
                                 lease=timedelta(seconds=0.5),
                                 on_outcome=lambda s, c: outcomes.append(s))
    sid = submitted(dying)
    # worker A claims the session and hangs in the document check; it stops renewing its
    # lease, as a killed process would
    a = threading.Thread(target=Worker(dying, heartbeat=None).run_once)
    a.start()
    assert slow.entered.wait(5)
    assert store.claim_verification_session(timedelta(seconds=1)) is None  # A's lease holds
    time.sleep(0.6)
    fast = FakeChecks()
    b = VerificationSessions(store, keys, checks=fast, signals=signals,
                             lease=timedelta(seconds=30),
                             on_outcome=lambda s, c: outcomes.append(s))
    assert Worker(b).run_once() == sid  # B takes over once A's lease ran out
    slow.block.set()  # A wakes up late: its result must not count
    a.join(5)
    view = b.get("default", sid)
    assert view["status"] == "verified"
    assert [e["status"] for e in view["history"]].count("verified") == 1
    assert len(signals.observed) == 1 and outcomes == ["verified"]
    # A never observed its own late result; it did learn B's from the store
    assert [(f.session_id, f.outcome) for f in signals_a.observed] == [(sid, "verified")]
    assert fast.calls == ["document", "selfie", "id_number"] and slow.calls == [
        "document", "selfie", "id_number"]


_HANGING_WORKER = """
import sys, time
from datetime import timedelta
from pathlib import Path
from vigil.identity import KeyRing, VerificationSessions, Worker
from vigil.store import Store

class Hang:
    def document(self, *args, **kwargs):
        Path(sys.argv[3]).write_text("in the check")
        time.sleep(600)

sessions = VerificationSessions(Store.open(sys.argv[1]), KeyRing.from_text(sys.argv[2]),
                                checks=Hang(), lease=timedelta(seconds=1))
Worker(sessions).run_once()
"""


def test_a_killed_worker_process_is_resumed_by_another(store, signals, tmp_path):
    key = new_key()
    sessions = VerificationSessions(store, KeyRing.from_text(key), checks=FakeChecks(),
                                    signals=signals, lease=timedelta(seconds=30))
    sid = submitted(sessions)
    flag = tmp_path / "in-check"
    proc = subprocess.Popen([sys.executable, "-c", _HANGING_WORKER, store.url, key,
                             str(flag)])
    try:
        deadline = time.monotonic() + 60
        while not flag.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.2)  # its heartbeat still holds the lease while it lives
        assert store.claim_verification_session(timedelta(seconds=1)) is None
    finally:
        proc.kill()  # SIGKILL, mid-check
        proc.wait()
    time.sleep(1.1)  # the lease it can no longer renew runs out
    assert Worker(sessions).run_once() == sid
    view = sessions.get("default", sid)
    assert view["status"] == "verified"
    assert [e["status"] for e in view["history"]] == ["requires_input", "processing",
                                                      "verified"]
    assert [f.session_id for f in signals.observed] == [sid]


def test_a_heartbeat_keeps_a_long_check_from_being_taken_over(store, keys, signals):
    slow = FakeChecks()
    slow.block = threading.Event()
    sessions = VerificationSessions(store, keys, checks=slow, signals=signals,
                                    lease=timedelta(seconds=0.6))
    submitted(sessions)
    worker = Worker(sessions, heartbeat=0.1)
    a = threading.Thread(target=worker.run_once)
    a.start()
    assert slow.entered.wait(5)
    time.sleep(1.0)  # longer than the lease: only the heartbeat keeps it
    assert store.claim_verification_session(timedelta(seconds=1)) is None
    slow.block.set()
    a.join(5)
    assert worker.processed == 1 and len(signals.observed) == 1


def test_workers_racing_process_each_session_once(store, keys, signals):
    sessions = VerificationSessions(store, keys, checks=FakeChecks(), signals=signals)
    ids = {submitted(sessions) for _ in range(6)}
    outcomes: list[str] = []
    # each worker stands for a process of its own, with signals of its own
    workers = [Worker(VerificationSessions(store, keys, checks=FakeChecks(),
                                           signals=FakeSignals(),
                                           on_outcome=lambda s, c: outcomes.append(s)))
               for _ in range(3)]
    threads = [threading.Thread(target=w.run_until_idle) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(w.processed for w in workers) == 6 and outcomes == ["verified"] * 6
    for sid in ids:
        history = sessions.get("default", sid)["history"]
        assert [e["status"] for e in history].count("verified") == 1
    # and every process's signals come to know every session, through the store
    for w in workers:
        w.sessions.catch_up_signals()
        assert {f.session_id for f in w.sessions.signals.observed} == ids


def test_the_service_thread_processes_a_submit_at_once(sessions):
    worker = Worker(sessions, poll=30).start()  # a long poll: only the submit's wake-up helps
    try:
        sid = submitted(sessions)
        deadline = time.monotonic() + 5
        while sessions.get("default", sid)["status"] == "processing":
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        worker.stop()
    assert sessions.get("default", sid)["status"] == "verified"


# encryption at rest and redaction


def test_nothing_personal_is_stored_in_the_clear(sessions):
    sid = submitted(sessions)
    Worker(sessions).run_until_idle()
    assert sessions.get("default", sid)["verified_outputs"]["last_name"] == SECRET_NAME
    assert leaks(sessions.store, NEEDLES) == []
    # the test can fail: the same search finds what a plaintext column would hold
    assert leaks(sessions.store, [sid.encode(), b"verified"])


def test_redaction_leaves_only_the_audit_trail(sessions, signals):
    sid = submitted(sessions)
    Worker(sessions).run_until_idle()
    before = sessions.get("default", sid)
    view = sessions.redact("default", sid)
    assert view["redaction"]["status"] == "redacted"
    assert view["status"] == "verified" and view["verified_outputs"] is None
    assert view["files"] == {} and view["insights"] == [] and view["metadata"] == {}
    assert [e["status"] for e in view["history"]] == [
        "requires_input", "processing", "verified", "redacted"]
    assert signals.forgotten == [sid]
    # with every key in hand, nothing personal is left to decrypt: the blobs are gone
    with sessions.store.engine.connect() as conn:
        row = conn.execute(sa.text("SELECT claimed, context, verified_outputs, face_embedding, "
                                   "last_error_reason FROM identity_sessions")).one()
        assert tuple(row) == (None,) * 5
        assert conn.execute(sa.text("SELECT count(*) FROM identity_files")).scalar() == 0
    assert leaks(sessions.store, NEEDLES) == []
    again = sessions.redact("default", sid)
    assert again["redaction"] == view["redaction"] and again["history"] == view["history"]
    assert before["created"] == view["created"]


def test_redacting_a_session_awaiting_input_cancels_it(sessions):
    sid = sessions.create("default", SessionRequest(), claimed=Claimed(name="Anna"))["id"]
    sessions.upload("default", sid, "document_front", FRONT)
    view = sessions.redact("default", sid)
    assert view["status"] == "canceled" and view["redaction"]["status"] == "redacted"
    with pytest.raises(SessionStateError):
        sessions.upload("default", sid, "document_front", FRONT)


# the ID-number reference


def test_the_reference_finds_numbers_by_keyed_hash_only(store):
    pytest.importorskip("vigil.identity._id_numbers")
    old = new_key()
    source = StoreReferenceSource(store, KeyRing.from_text(old))
    source.add("US", "123-45-6789", "Jane Q Public", date(1990, 5, 17))
    found = source.lookup("US", "123456789")
    assert (found.name, found.birth_date) == ("Jane Q Public", date(1990, 5, 17))
    assert source.lookup("US", "987654320") is None and source.lookup("CA", "123456789") is None
    assert leaks(store, [b"123456789", b"123-45-6789", b"Jane"]) == []
    rotated = StoreReferenceSource(store, KeyRing.from_text(f"{new_key()},{old}"))
    assert rotated.lookup("US", "123456789").name == "Jane Q Public"
    with pytest.raises(SessionInputError, match="id_number"):
        source.add("US", "12", "Jane", date(1990, 5, 17))


def test_tenants_of_api_keys_default_and_are_checked(store):
    store.create_api_key("score", "old")
    _, secret = store.create_api_key("score", "acme's", tenant="acme")
    assert store.verify_api_key(secret).tenant == "acme"
    assert [k.tenant for k in store.list_api_keys()] == ["default", "acme"]
    with pytest.raises(Exception, match="cannot name a tenant"):
        store.create_api_key("score", "x", tenant="Not Valid")



# the command line


def cli(*args: str, env: dict[str, str] | None = None):
    from click.testing import CliRunner

    from vigil.cli import main

    return CliRunner().invoke(main, list(args), catch_exceptions=False, env=env)


def test_the_cli_runs_a_session_through_the_store(tmp_path):
    db = str(tmp_path / "vigil.db")
    key = cli("identity", "key").output.strip()
    assert len(KeyRing.from_text(key).key_ids) == 1
    env = {"VIGIL_IDENTITY_KEY": key}
    front = tmp_path / "front.png"
    front.write_bytes(FRONT)
    created = cli("identity", "create", "--store", db, "--min-age", "18", "--name", "Anna",
                  env=env)
    assert created.exit_code == 0, created.output
    sid = created.output.strip()
    assert cli("identity", "upload", sid, "document_front", str(front), "--store", db,
               env=env).exit_code == 0
    status = cli("identity", "submit", sid, "--store", db, "--json", env=env)
    assert json.loads(status.output)["status"] == "processing"
    with Store.open(db) as store:  # the CLI's worker runs the real checks; fakes here
        sessions = VerificationSessions(store, KeyRing.from_text(key), checks=FakeChecks())
        assert Worker(sessions).run_until_idle() == 1
    shown = cli("identity", "status", sid, "--store", db, env=env)
    assert shown.exit_code == 0 and f"{sid}: verified: ANNA MARIA ERIKSSON" in shown.output
    assert cli("identity", "worker", "--store", db, "--once", env=env).exit_code == 0
    redacted = cli("identity", "redact", sid, "--store", db, "--json", env=env)
    assert json.loads(redacted.output)["redaction"]["status"] == "redacted"
    # user mistakes: one line, exit 1
    wrong = cli("identity", "status", "vs_nope", "--store", db, env=env)
    assert wrong.exit_code == 1 and "no verification session 'vs_nope'" in wrong.output
    nokey = cli("identity", "status", sid, "--store", db, env={"VIGIL_IDENTITY_KEY": ""})
    assert nokey.exit_code == 1 and "vigil identity key" in nokey.output


def test_the_cli_keeps_the_reference_and_makes_tenant_keys(tmp_path):
    pytest.importorskip("vigil.identity._id_numbers")
    db = str(tmp_path / "vigil.db")
    env = {"VIGIL_IDENTITY_KEY": new_key()}
    people = tmp_path / "people.csv"
    people.write_text("country,id_number,name,birth_date\nUS,123-45-6789,Jane Q Public,"
                      "1990-05-17\nUS,234-56-7890,John Roe,1980-01-02\n")
    done = cli("identity", "reference", "import", str(people), "--store", db, env=env)
    assert done.exit_code == 0 and "added 2 ID numbers" in done.output
    assert cli("identity", "reference", "add", "--country", "US", "--id-number", "345-67-8901",
               "--name", "Ann Lee", "--dob", "1970-03-04", "--store", db,
               env=env).exit_code == 0
    with Store.open(db) as store:
        assert store.count_identity_reference() == 3
    ok = cli("identity", "verify", "--id-number", "123456789", "--id-number-country", "US",
             "--name", "Jane Q Public", "--dob", "1990-05-17", "--store", db, env=env)
    assert ok.exit_code == 0, ok.output
    assert "verified" in ok.output and "ID number 123456789 verified" in ok.output
    no = cli("identity", "verify", "--id-number", "123456789", "--id-number-country", "US",
             "--name", "Someone Else", "--dob", "1990-05-17", "--reference", str(people),
             "--json")
    assert no.exit_code == 2 and json.loads(no.output)["last_error"]["code"] == \
        "id_number_mismatch"
    bad = cli("identity", "verify", "--selfie", str(people))
    assert bad.exit_code == 1 and "need --document-front" in bad.output
    broken = tmp_path / "broken.csv"
    broken.write_text("country,number\nUS,1\n")
    out = cli("identity", "reference", "import", str(broken), "--store", db, env=env)
    assert out.exit_code == 1 and "header must name" in out.output
    made = cli("keys", "create", "--scope", "score", "--name", "acme app", "--tenant", "acme",
               "--store", db)
    assert made.exit_code == 0
    with Store.open(db) as store:
        assert store.verify_api_key(made.output.strip().splitlines()[-1]).tenant == "acme"


class RenamingChecks(FakeChecks):
    """The same document number (and face) as :data:`DOC`, under another name."""

    def document(self, front, back, *, allowed_types, min_age, claimed, today):
        super().document(front, back, allowed_types=allowed_types, min_age=min_age,
                         claimed=claimed, today=today)
        return replace(DOC, given_names="MARTA")


def test_every_process_rebuilds_its_signals_from_the_store(store, keys):
    """Process A verifies a document; process B, with signals of its own, sees the same
    document under another name as a reuse; after A redacts the first session, a restarted
    process remembers only the second."""
    from vigil.identity import IdentitySignals

    a = VerificationSessions(store, keys, checks=FakeChecks(), signals=IdentitySignals())
    first = submitted(a)
    assert Worker(a).run_once() == first
    b = VerificationSessions(store, keys, checks=RenamingChecks(), signals=IdentitySignals())
    second = submitted(b)
    assert Worker(b).run_once() == second
    kinds = {i["kind"]: i for i in b.get("default", second)["insights"]}
    assert first in kinds["document_reused"]["related_sessions"]
    assert first in kinds["face_reused"]["related_sessions"]
    # A had never observed `second`: it learns it from the store
    assert a.catch_up_signals() == 1 and len(a.signals) == 2

    a.redact("default", first)
    assert b.catch_up_signals() == 1 and len(b.signals) == 1  # B forgets the redacted one
    restarted = VerificationSessions(store, keys, checks=FakeChecks(),
                                     signals=IdentitySignals())
    restarted.catch_up_signals()
    assert len(restarted.signals) == 1
    # a third session like the first now relates to the second only
    third = submitted(restarted)
    assert Worker(restarted).run_once() == third
    related = {s for i in restarted.get("default", third)["insights"]
               for s in i["related_sessions"]}
    assert second in related and first not in related
