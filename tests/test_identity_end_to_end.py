"""Identity verification end to end, with the real checks: a freshly started app, a session
created over HTTP, a generated passport whose portrait is one photograph of a person and a
selfie that is another photograph of the same person, processed by the worker: `verified`,
with what the passport says. A selfie of someone else: back to `requires_input` with
`selfie_face_mismatch`. Then redaction, and a second session that the signals tie to it."""

from __future__ import annotations

from datetime import date

import pytest
from fastapi.testclient import TestClient
from identity_support import require_faces, require_modules, require_ocr_b_font

from vigil.identity import IdentitySignals, KeyRing, VerificationSessions, Worker, new_key
from vigil.serving import ScoringService, create_app
from vigil.store import Store

URL = "/v1/identity/verification_sessions"


@pytest.fixture(scope="module")
def photos():
    require_modules("dlib", "rapidocr_onnxruntime", "PIL")
    require_ocr_b_font()
    faces = require_faces()
    obama = sorted((faces / "barack_obama").glob("*.jpg"))
    biden = sorted((faces / "joe_biden").glob("*.jpg"))
    return obama[0], obama[1], biden[0]


@pytest.fixture(scope="module")
def passport(photos):
    from PIL import Image

    from vigil.identity._docgen import generate_document

    with Image.open(photos[0]) as portrait:
        doc = generate_document(3, kind="passport", portrait=portrait.convert("RGB"),
                                today=date.today())
    return doc, doc.image_bytes("JPEG")[0]


@pytest.fixture
def client(tmp_path, small_bundle):
    store = Store.open(tmp_path / "vigil.db", migrate=True)
    service = ScoringService(store, small_bundle)
    sessions = VerificationSessions(store, KeyRing.from_text(new_key()),
                                    signals=IdentitySignals())
    with TestClient(create_app(service, identity=sessions)) as c:
        c.headers["Authorization"] = f"Bearer {store.create_api_key('score', 'app')[1]}"
        c.sessions = sessions
        yield c
    service.close()
    store.close()


def _session(client, name: str, front: bytes, selfie: bytes) -> str:
    r = client.post(URL, json={
        "type": "document",
        "options": {"document": {"allowed_types": ["passport"], "require_matching_selfie": True,
                                 "min_age": 18}},
        "claimed": {"name": name}, "device_id": "dev_1"})
    assert r.status_code == 200, r.text
    sid = r.json()["id"]
    for purpose, data in (("document_front", front), ("selfie", selfie)):
        r = client.post(f"{URL}/{sid}/files/{purpose}", content=data,
                        headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 200, r.text
    assert client.post(f"{URL}/{sid}/submit").json()["status"] == "processing"
    Worker(client.sessions).run_until_idle()
    return sid


def test_a_generated_passport_and_a_matching_selfie_are_verified(client, passport, photos):
    doc, front = passport
    truth = doc.truth.fields
    sid = _session(client, f"{doc.truth.given_names} {doc.truth.surname}", front,
                   photos[1].read_bytes())
    got = client.get(f"{URL}/{sid}").json()
    assert got["status"] == "verified", got["last_error"]
    out = got["verified_outputs"]
    assert out["document_number"] == truth.document_number
    assert out["dob"] == truth.birth_date.isoformat()
    assert out["last_name"] == truth.surname and out["document_type"] == "passport"

    # someone else's selfie with the same passport: a mismatch, and the signals see the reuse
    other = _session(client, f"{doc.truth.given_names} {doc.truth.surname}", front,
                     photos[2].read_bytes())
    got = client.get(f"{URL}/{other}").json()
    assert got["status"] == "requires_input"
    assert got["last_error"]["code"] == "selfie_face_mismatch"
    kinds = {i["kind"]: i for i in got["insights"]}
    assert sid in kinds["document_reused"]["related_sessions"]

    # redaction: nothing personal left to read, and the signals forget it
    r = client.post(f"{URL}/{sid}/redact")
    assert r.status_code == 200 and r.json()["redaction"]["status"] == "redacted"
    got = client.get(f"{URL}/{sid}").json()
    assert got["verified_outputs"] is None and got["files"] == {}
    assert len(client.sessions.signals) == 1
