"""The identity verification routes: the flow over HTTP, tenants, keys, uploads, errors that
name the field, 503 without a key, metrics. The checks are fakes (see
test_identity_sessions.py); the worker runs in the test, or as the app's thread."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from test_identity_sessions import BACK, FRONT, SELFIE, FakeChecks, FakeSignals

from vigil.identity import KeyRing, VerificationSessions, Worker, new_key
from vigil.serving import ScoringService, create_app
from vigil.store import Store

URL = "/v1/identity/verification_sessions"
BODY = {"type": "document",
        "options": {"document": {"allowed_types": ["passport", "id_card"],
                                 "require_matching_selfie": True, "min_age": 18}},
        "claimed": {"name": "Anna Maria Eriksson", "dob": "1974-08-12"},
        "metadata": {"order": "o_1"}, "account_id": "acct_1", "email": "Anna@Example.com"}


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "vigil.db", migrate=True)
    yield s
    s.close()


@pytest.fixture
def service(store, small_bundle):
    svc = ScoringService(store, small_bundle)
    yield svc
    svc.close()


@pytest.fixture
def checks():
    return FakeChecks()


@pytest.fixture
def sessions(store, checks):
    return VerificationSessions(store, KeyRing.from_text(new_key()), checks=checks,
                                signals=FakeSignals(), lease=timedelta(seconds=30))


def _client(app, store):
    c = TestClient(app)
    secrets = {"score": store.create_api_key("score", "score key")[1],
               "admin": store.create_api_key("admin", "admin key")[1],
               "acme": store.create_api_key("score", "acme key", tenant="acme")[1]}
    c.keys = {k: {"Authorization": f"Bearer {v}"} for k, v in secrets.items()}
    return c


@pytest.fixture
def client(service, sessions, store):
    with _client(create_app(service, identity=sessions), store) as c:
        yield c


def create(client, body=None, who="score"):
    r = client.post(URL, json=body or BODY, headers=client.keys[who])
    assert r.status_code == 200, r.text
    return r.json()["id"]


def upload_all(client, sid, who="score"):
    for purpose, data in (("document_front", FRONT), ("document_back", BACK),
                          ("selfie", SELFIE)):
        r = client.post(f"{URL}/{sid}/files/{purpose}", content=data,
                        headers={**client.keys[who], "Content-Type": "application/octet-stream"})
        assert r.status_code == 200, r.text


def test_a_session_from_create_to_verified(client, sessions):
    r = client.post(URL, json=BODY, headers=client.keys["score"])
    assert r.status_code == 200, r.text
    created = r.json()
    assert created["id"].startswith("vs_") and created["status"] == "requires_input"
    assert created["checks"] == ["document", "selfie"]
    assert created["options"]["document"]["min_age"] == 18
    sid = created["id"]
    upload_all(client, sid)
    r = client.post(f"{URL}/{sid}/submit", headers=client.keys["score"])
    assert r.status_code == 200 and r.json()["status"] == "processing"
    Worker(sessions).run_until_idle()
    got = client.get(f"{URL}/{sid}", headers=client.keys["admin"]).json()
    assert got["status"] == "verified" and got["last_error"] is None
    assert got["verified_outputs"]["document_number"] == "L898902C3"
    assert got["metadata"] == {"order": "o_1"} and got["insights"][0]["kind"] == "retries"
    listed = client.get(URL, headers=client.keys["score"]).json()
    assert [s["id"] for s in listed["data"]] == [sid]
    assert listed["data"][0]["verified_outputs"] is None  # the list does not show them
    assert client.get(URL, params={"status": "canceled"},
                      headers=client.keys["score"]).json()["data"] == []


def test_a_retry_after_requires_input(client, sessions, checks):
    checks.fail["selfie"] = "selfie_face_mismatch"
    sid = create(client)
    upload_all(client, sid)
    client.post(f"{URL}/{sid}/submit", headers=client.keys["score"])
    Worker(sessions).run_until_idle()
    got = client.get(f"{URL}/{sid}", headers=client.keys["score"]).json()
    assert got["status"] == "requires_input"
    assert got["last_error"]["code"] == "selfie_face_mismatch"
    checks.fail.clear()
    r = client.post(f"{URL}/{sid}/files/selfie", content=SELFIE, headers=client.keys["score"])
    assert r.status_code == 200
    client.post(f"{URL}/{sid}/submit", headers=client.keys["score"])
    Worker(sessions).run_until_idle()
    got = client.get(f"{URL}/{sid}", headers=client.keys["score"]).json()
    assert got["status"] == "verified" and got["attempt"] == 2
    metrics = client.get("/metrics").text
    assert ('vigil_identity_sessions_total{error_code="selfie_face_mismatch",'
            'status="requires_input"} 1.0') in metrics
    assert 'vigil_identity_sessions_total{error_code="",status="verified"} 1.0' in metrics


def test_another_tenant_gets_404_like_an_unknown_id(client):
    sid = create(client, who="acme")
    mine = client.get(f"{URL}/{sid}", headers=client.keys["acme"])
    assert mine.status_code == 200
    for method, path in (("get", ""), ("post", "/submit"), ("post", "/cancel"),
                         ("post", "/redact")):
        theirs = getattr(client, method)(f"{URL}/{sid}{path}", headers=client.keys["score"])
        unknown = getattr(client, method)(f"{URL}/vs_nope{path}", headers=client.keys["score"])
        assert theirs.status_code == unknown.status_code == 404, (path, theirs.text)
        assert theirs.json()["error"]["type"] == "not_found"
    r = client.post(f"{URL}/{sid}/files/selfie", content=SELFIE, headers=client.keys["admin"])
    assert r.status_code == 404
    assert client.get(URL, headers=client.keys["score"]).json()["data"] == []
    assert [s["id"] for s in client.get(URL, headers=client.keys["acme"]).json()["data"]] == [
        sid]


def test_an_idempotency_key_creates_one_session(client, store):
    first = client.post(URL, json=BODY, headers={**client.keys["score"], "Idempotency-Key": "k1"})
    again = client.post(URL, json=BODY, headers={**client.keys["score"], "Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.headers.get("idempotent-replayed") == "true"
    assert "idempotent-replayed" not in first.headers
    listed = client.get(URL, headers=client.keys["score"]).json()["data"]
    assert [s["id"] for s in listed] == [first.json()["id"]]
    # another body under the same key is refused, and creates nothing
    other = client.post(URL, json={**BODY, "metadata": {"order": "o_2"}},
                        headers={**client.keys["score"], "Idempotency-Key": "k1"})
    assert other.status_code == 409 and other.json()["error"]["type"] == "idempotency_conflict"
    # another API key has keys of its own
    acme = client.post(URL, json=BODY, headers={**client.keys["acme"], "Idempotency-Key": "k1"})
    assert acme.status_code == 200 and acme.json()["id"] != first.json()["id"]
    assert len(client.get(URL, headers=client.keys["score"]).json()["data"]) == 1
    # what is kept with the key holds no personal data: the session's id and a keyed hash
    import sqlalchemy as sa

    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM idempotency")).fetchall()
    assert rows and not any("Anna" in repr(r) or "1974" in repr(r) or "example" in repr(r)
                            for r in rows)


def test_a_bad_idempotency_key_is_a_422(client):
    r = client.post(URL, json=BODY, headers={**client.keys["score"], "Idempotency-Key": "x" * 256})
    assert r.status_code == 422 and "Idempotency-Key" in r.text


def test_keys_are_required(client):
    assert client.post(URL, json=BODY).status_code == 401
    r = client.get(URL, headers={"Authorization": "Bearer vk_nope_nope"})
    assert r.status_code == 401 and "unknown or revoked" in r.json()["error"]["message"]


@pytest.mark.parametrize("body, field, reason", [
    ({"type": "selfie"}, "type", "document"),
    ({"options": {"document": {"allowed_types": ["visa"]}}}, "options.document.allowed_types.0",
     "passport"),
    ({"options": {"document": {"min_age": 0}}}, "options.document.min_age", "greater"),
    ({"claimed": {"dob": "31/01/1990"}}, "claimed.dob", "date"),
    ({"email": "nope"}, "email", "not an e-mail"),
    ({"colour": "red"}, "colour", "Extra inputs"),
    ({"type": "id_number"}, "claimed.id_number", "needs claimed id_number, id_number_country"
     ", name, dob"),
    ({"options": {"document": {"require_id_number": True}}, "claimed": {"id_number": "1"}},
     "claimed.id_number_country", "needs claimed id_number_country"),
    ({"type": "id_number", "options": {"document": {"require_matching_selfie": True}},
      "claimed": {"name": "A B", "dob": "1990-01-01", "id_number": "1",
                  "id_number_country": "US"}}, "options.document", "need a document"),
])
def test_a_bad_body_is_a_422_naming_the_field(client, body, field, reason):
    r = client.post(URL, json=body, headers=client.keys["score"])
    assert r.status_code == 422, r.text
    errors = r.json()["error"]["errors"]
    assert errors[0]["field"] == field and reason in errors[0]["reason"], errors


def test_uploads_and_submits_say_what_is_wrong(client):
    sid = create(client)
    r = client.post(f"{URL}/{sid}/files/selfie", content=b"GIF89a" + b"\0" * 64,
                    headers=client.keys["score"])
    assert r.status_code == 422 and r.json()["error"]["errors"][0]["field"] == "selfie"
    assert "PNG or JPEG" in r.json()["error"]["message"]
    r = client.post(f"{URL}/{sid}/files/portrait", content=FRONT, headers=client.keys["score"])
    assert r.status_code == 422 and "document_front" in r.json()["error"]["message"]
    r = client.post(f"{URL}/{sid}/files/selfie", content=b"\xff\xd8\xff" + b"\0" * (10 << 20),
                    headers=client.keys["score"])
    assert r.status_code == 413 and "10,240 KB" in r.json()["error"]["message"]
    r = client.post(f"{URL}/{sid}/submit", headers=client.keys["score"])
    assert r.status_code == 422, r.text
    assert r.json()["error"]["errors"][0]["field"] == "document_front"
    assert "document_front, selfie are missing" in r.json()["error"]["message"]
    # JSON bodies elsewhere keep their small limit
    r = client.post(URL, content=b"{" + b" " * (70 << 10) + b"}",
                    headers={**client.keys["score"], "Content-Type": "application/json"})
    assert r.status_code == 413


def test_cancel_and_redact_follow_the_state_machine(client, sessions):
    sid = create(client)
    upload_all(client, sid)
    client.post(f"{URL}/{sid}/submit", headers=client.keys["score"])
    r = client.post(f"{URL}/{sid}/redact", headers=client.keys["score"])
    assert r.status_code == 409 and "cancel it or wait" in r.json()["error"]["message"]
    Worker(sessions).run_until_idle()
    r = client.post(f"{URL}/{sid}/cancel", headers=client.keys["score"])
    assert r.status_code == 409 and "it is verified" in r.json()["error"]["message"]
    for _ in range(2):  # twice: harmless
        r = client.post(f"{URL}/{sid}/redact", headers=client.keys["score"])
        assert r.status_code == 200, r.text
        assert r.json()["redaction"]["status"] == "redacted"
    got = client.get(f"{URL}/{sid}", headers=client.keys["score"]).json()
    assert got["verified_outputs"] is None and got["files"] == {}
    assert got["redaction"]["status"] == "redacted" and got["status"] == "verified"
    other = create(client)
    r = client.post(f"{URL}/{other}/cancel", headers=client.keys["score"])
    assert r.status_code == 200 and r.json()["status"] == "canceled"


def test_without_an_identity_key_the_routes_say_how_to_set_one(service, store):
    with _client(create_app(service), store) as c:
        r = c.post(URL, json=BODY, headers=c.keys["score"])
        assert r.status_code == 503
        assert "VIGIL_IDENTITY_KEY" in r.json()["error"]["message"]
        assert c.get("/healthz").status_code == 200  # the rest of the service works


def test_the_apps_worker_thread_processes_submits(service, sessions, store):
    with _client(create_app(service, identity=sessions, identity_worker=True), store) as c:
        sid = create(c)
        upload_all(c, sid)
        c.post(f"{URL}/{sid}/submit", headers=c.keys["score"])
        deadline = time.monotonic() + 5
        while c.get(f"{URL}/{sid}", headers=c.keys["score"]).json()["status"] == "processing":
            assert time.monotonic() < deadline, "the worker thread did not process the session"
            time.sleep(0.05)
        assert c.get(f"{URL}/{sid}", headers=c.keys["score"]).json()["status"] == "verified"


def test_settings_turn_identity_on_with_a_key(store, monkeypatch):
    from vigil._errors import ConfigError
    from vigil.serving import Settings
    from vigil.serving._settings import build_identity

    monkeypatch.setenv("VIGIL_BUNDLE", "b")
    monkeypatch.setenv("VIGIL_STORE_URL", "s.db")
    monkeypatch.delenv("VIGIL_IDENTITY_KEY", raising=False)
    off = Settings.from_env()
    assert off.identity_key is None and off.identity_worker
    assert build_identity(off, store) is None
    key = new_key()
    monkeypatch.setenv("VIGIL_IDENTITY_KEY", key)
    monkeypatch.setenv("VIGIL_IDENTITY_WORKER", "0")
    on = Settings.from_env()
    assert not on.identity_worker and key not in repr(on)
    assert on.to_env()["VIGIL_IDENTITY_KEY"] == key
    sessions = build_identity(on, store)
    assert sessions.keys.current == KeyRing.from_text(key).current
    monkeypatch.setenv("VIGIL_IDENTITY_WORKER", "yes")
    with pytest.raises(ConfigError, match="VIGIL_IDENTITY_WORKER must be 1"):
        Settings.from_env()
