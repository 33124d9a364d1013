"""The scoring API: decisions with reasons, keys, idempotency, validation, reviews, lists,
rules, restarts; the service against PostgreSQL and Redis where their URLs are set."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from vigil.serving import ScoringService, create_app
from vigil.store import Store

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)


def payment(i: int, **extra) -> dict:
    body = {"payment_id": f"pay_{i}", "ts": (T0 + timedelta(minutes=i)).isoformat(),
            "amount": 20.0 + i, "currency": "EUR", "card_id": f"card_{i % 3}",
            "customer_id": f"cus_{i % 3}", "merchant_id": "m_1", "terminal_id": f"t_{i % 2}",
            "email": f"user{i % 3}@example.com", "card_country": "FR", "ip_country": "FR"}
    body.update(extra)
    return body


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
def keys(store):
    return {scope: store.create_api_key(scope, f"{scope} key")[1] for scope in ("score", "admin")}


@pytest.fixture
def client(service, keys):
    with TestClient(create_app(service)) as c:
        c.score = {"Authorization": f"Bearer {keys['score']}"}  # type: ignore[attr-defined]
        c.admin = {"Authorization": f"Bearer {keys['admin']}"}  # type: ignore[attr-defined]
        yield c


def test_a_payment_gets_a_decision_with_reasons(client):
    r = client.post("/v1/payments", json=payment(1), headers=client.score)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == "pay_1"
    assert 0 <= body["risk_score"] <= 100
    assert body["risk_level"] in ("normal", "elevated", "highest")
    assert body["decision"] == "allow" and body["rule"] is None
    assert body["model_version"]
    for reason in body["reasons"]:
        assert set(reason) == {"feature", "value", "contribution", "sentence"}
        assert reason["contribution"] > 0 and reason["sentence"]
    stored = client.get("/v1/payments/pay_1", headers=client.score).json()
    assert stored["decision"]["risk_score"] == body["risk_score"]
    assert stored["amount"] == 21.0


def test_features_follow_the_payments_stored(client, service):
    for i in range(4):
        client.post("/v1/payments", json=payment(3 * i), headers=client.score)  # card_0
    probe = {**payment(100, card_id="card_0"), "ts": T0 + timedelta(minutes=30)}
    assert service.online.features(probe)["count_by_card_1h"] == 5.0  # 4 earlier + itself


def test_api_keys(client):
    assert client.post("/v1/payments", json=payment(1)).status_code == 401
    bad = {"Authorization": "Bearer vk_nope_nope"}
    assert client.post("/v1/payments", json=payment(1), headers=bad).status_code == 401
    r = client.get("/v1/rules", headers=client.score)
    assert r.status_code == 403 and "admin" in r.json()["error"]["message"]
    assert client.get("/v1/rules", headers=client.admin).status_code == 200


def test_a_revoked_key_stops_working(client, store, service):
    key_id, secret = store.create_api_key("score", "temp")
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.post("/v1/payments", json=payment(1), headers=headers).status_code == 200
    store.revoke_api_key(key_id)
    with TestClient(create_app(service)) as fresh:  # a new process: no cached verification
        assert fresh.post("/v1/payments", json=payment(2), headers=headers).status_code == 401


@pytest.mark.parametrize(("change", "field"), [
    ({"amount": -5}, "amount"),
    ({"amount": "12"}, "amount"),
    ({"amount": "abc"}, "amount"),
    ({"currency": "XYZ"}, "currency"),
    ({"currency": 978}, "currency"),
    ({"card_id": None}, "card_id"),
    ({"ts": "yesterday"}, "ts"),
    ({"ts": (datetime.now(UTC) + timedelta(days=30)).isoformat()}, "ts"),
    ({"ts": "2024-05-01T12:00:00"}, "ts"),  # no time zone
    ({"ip": "999.1.1.1"}, "ip"),
    ({"card_country": "france"}, "card_country"),
    ({"surprise": 1}, "surprise"),
])
def test_bad_payments_are_4xx_naming_the_field(client, change, field):
    r = client.post("/v1/payments", json={**payment(1), **change}, headers=client.score)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request"
    assert field in [e["field"] for e in error["errors"]]


def test_a_missing_field_malformed_json_and_a_huge_body(client):
    body = payment(1)
    del body["merchant_id"]
    r = client.post("/v1/payments", json=body, headers=client.score)
    assert r.status_code == 422 and r.json()["error"]["errors"][0]["field"] == "merchant_id"
    r = client.post("/v1/payments", content=b'{"payment_id": ', headers={
        **client.score, "Content-Type": "application/json"})
    assert r.status_code == 422 and "JSON" in r.json()["error"]["message"]
    r = client.post("/v1/payments", content=json.dumps({**payment(1), "x": "a" * 70_000}),
                    headers={**client.score, "Content-Type": "application/json"})
    assert r.status_code == 413


def test_a_duplicate_payment_is_a_409_and_changes_nothing(client, store):
    assert client.post("/v1/payments", json=payment(1), headers=client.score).status_code == 200
    r = client.post("/v1/payments", json=payment(1), headers=client.score)
    assert r.status_code == 409 and r.json()["error"]["type"] == "conflict"
    assert store.count_payments() == 1


def test_idempotency_keys(client, store):
    headers = {**client.score, "Idempotency-Key": "k1"}
    first = client.post("/v1/payments", json=payment(1), headers=headers)
    again = client.post("/v1/payments", json=payment(1), headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert store.count_payments() == 1
    other = client.post("/v1/payments", json=payment(2), headers=headers)
    assert other.status_code == 409 and other.json()["error"]["type"] == "idempotency_conflict"


def test_concurrent_retries_score_once(client, store):
    headers = {**client.score, "Idempotency-Key": "race"}
    answers: list = []

    def post():
        answers.append(client.post("/v1/payments", json=payment(7), headers=headers))

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.count_payments() == 1
    ok = [a for a in answers if a.status_code == 200]
    assert ok and all(a.json() == ok[0].json() for a in ok)
    assert all(a.status_code in (200, 409) for a in answers)


def test_rules_are_checked_when_saved_and_decide(client):
    r = client.put("/v1/rules", json={"rules": "block if :amout: > 10"}, headers=client.admin)
    assert r.status_code == 422
    assert "line 1, column" in r.json()["error"]["message"]
    assert "amount" in r.json()["error"]["message"]  # the suggestion
    r = client.put("/v1/rules", json={"rules": "big: block if :amount: > 1000\n"
                                               "request_3ds if :amount: > 5000"},
                   headers=client.admin)
    assert r.status_code == 200 and r.json()["version"] == 1
    big = client.post("/v1/payments", json=payment(1, amount=2000.0), headers=client.score)
    assert big.json()["decision"] == "block"
    assert big.json()["rule"] == {"id": "big", "text": "big: block if :amount: > 1000"}
    # request_3ds is evaluated before block
    huge = client.post("/v1/payments", json=payment(2, amount=9000.0), headers=client.score)
    assert huge.json()["decision"] == "request_3ds"
    assert client.get("/v1/rules", headers=client.admin).json()["version"] == 1
    unknown_list = client.put("/v1/rules", json={"rules": "block if :email: in @nope"},
                              headers=client.admin)
    assert unknown_list.status_code == 422 and "@nope" in unknown_list.json()["error"]["message"]


def test_the_review_queue_feeds_labels_and_block_lists(client, store, service):
    client.put("/v1/rules", json={"rules": "review if :amount: > 500\n"
                                           "block if :card_id: in @blocked_cards"},
               headers=client.admin)
    r = client.post("/v1/payments", json=payment(1, amount=900.0), headers=client.score)
    assert r.json()["decision"] == "review"
    queue = client.get("/v1/reviews", headers=client.admin).json()
    assert [q["payment_id"] for q in queue] == ["pay_1"]
    closed = client.post(f"/v1/reviews/{queue[0]['id']}/close",
                         json={"outcome": "refunded_as_fraud"}, headers=client.admin)
    assert closed.status_code == 200, closed.text
    assert ["blocked_cards", "card_1"] in closed.json()["listed"]
    assert store.get_payment("pay_1")["labels"][0]["kind"] == "review_outcome"
    again = client.post(f"/v1/reviews/{queue[0]['id']}/close",
                        json={"outcome": "approved"}, headers=client.admin)
    assert again.status_code == 409
    # the card is blocked from now on
    nxt = client.post("/v1/payments", json=payment(4, amount=10.0), headers=client.score)
    assert nxt.json()["decision"] == "block"
    # and the fraud label reached the label-aware features
    probe = {**payment(99, card_id="card_1"), "ts": datetime.now(UTC)}
    assert service.online.features(probe)["fraud_count_by_card_30d"] == 1.0


def test_lists_over_the_api(client):
    r = client.post("/v1/lists/suspicious_emails/items", json={"value": "x@example.com"},
                    headers=client.admin)
    assert r.status_code == 201
    items = client.get("/v1/lists/suspicious_emails/items", headers=client.admin).json()
    assert [i["value"] for i in items] == ["x@example.com"]
    ok = client.put("/v1/rules", json={
        "rules": "request_verification if :email: in @suspicious_emails"}, headers=client.admin)
    assert ok.status_code == 200
    r = client.post("/v1/payments", json=payment(1, email="x@example.com"), headers=client.score)
    assert r.json()["decision"] == "request_verification"
    gone = client.delete("/v1/lists/suspicious_emails/items/x@example.com",
                         headers=client.admin)
    assert gone.status_code == 200
    r = client.post("/v1/payments", json=payment(2, email="x@example.com"), headers=client.score)
    assert r.json()["decision"] == "allow"
    missing = client.delete("/v1/lists/suspicious_emails/items/x@example.com",
                            headers=client.admin)
    assert missing.status_code == 404


def test_labels(client, service):
    client.post("/v1/payments", json=payment(0), headers=client.score)
    r = client.post("/v1/labels", json={"payment_id": "pay_0", "kind": "fraud_report",
                                        "is_fraud": True}, headers=client.score)
    assert r.status_code == 201 and r.json()["payment_id"] == "pay_0"
    probe = {**payment(50, card_id="card_0"), "ts": datetime.now(UTC)}
    assert service.online.features(probe)["fraud_count_by_card_30d"] == 1.0
    # a dispute of the same payment later changes nothing
    client.post("/v1/labels", json={"payment_id": "pay_0", "kind": "dispute",
                                    "is_fraud": True}, headers=client.score)
    assert service.online.features(probe)["fraud_count_by_card_30d"] == 1.0
    unknown = client.post("/v1/labels", json={"payment_id": "nope", "kind": "dispute",
                                              "is_fraud": True}, headers=client.score)
    assert unknown.status_code == 404
    bad = client.post("/v1/labels", json={"payment_id": "pay_0", "kind": "chargeback",
                                          "is_fraud": True}, headers=client.score)
    assert bad.status_code == 422 and bad.json()["error"]["errors"][0]["field"] == "kind"


def test_health_metrics_and_docs(client):
    client.post("/v1/payments", json=payment(1), headers=client.score)
    assert client.get("/healthz").json()["status"] == "ok"
    metrics = client.get("/metrics").text
    assert 'vigil_payments_scored_total{decision="allow"} 1.0' in metrics
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "/v1/payments" in spec["paths"]


def _features_after(service: ScoringService, card: str) -> dict:
    probe = {**payment(1000, card_id=card, terminal_id="t_0"), "ts": T0 + timedelta(days=1)}
    return service.online.features(probe)


def test_a_restart_rebuilds_the_same_state(store, small_bundle, keys):
    svc = ScoringService(store, small_bundle, snapshot_every=7)
    with TestClient(create_app(svc)) as c:
        headers = {"Authorization": f"Bearer {keys['score']}"}
        for i in range(20):
            assert c.post("/v1/payments", json=payment(i), headers=headers).status_code == 200
            if i % 4 == 0:
                reported = (T0 + timedelta(minutes=i + 5)).isoformat()
                c.post("/v1/labels", json={"payment_id": f"pay_{i}", "kind": "fraud_report",
                                           "is_fraud": i % 8 == 0, "reported_at": reported},
                       headers=headers)
    before = {card: _features_after(svc, card) for card in ("card_0", "card_1", "card_2")}
    assert before["card_0"]["fraud_count_by_card_30d"] == 1.0  # pay_0 (pay_16 is card_1)
    assert before["card_1"]["fraud_count_by_card_30d"] == 1.0
    # the last snapshot was at payment 14: the restart loads it and replays the tail
    assert store.latest_snapshot() is not None
    again = ScoringService(store, small_bundle)
    after = {card: _features_after(again, card) for card in ("card_0", "card_1", "card_2")}
    assert after == before
    # and the same without any snapshot: replay from the first event
    store.engine.dispose()
    with store.engine.begin() as conn:
        from vigil.store._tables import state_snapshots

        conn.execute(state_snapshots.delete())
    from_scratch = ScoringService(store, small_bundle)
    assert {card: _features_after(from_scratch, card) for card in before} == before
    svc.close()
    again.close()
    from_scratch.close()


def test_the_service_on_postgresql_and_redis(postgres_url, redis_url, small_bundle):
    store = Store.open(postgres_url, migrate=True)
    secret = store.create_api_key("score", "ci")[1]
    headers = {"Authorization": f"Bearer {secret}"}
    a = ScoringService(store, small_bundle, redis_url=redis_url)
    b = ScoringService(store, small_bundle, redis_url=redis_url)  # a second worker
    try:
        with TestClient(create_app(a)) as ca, TestClient(create_app(b)) as cb:
            for i in range(6):
                client = ca if i % 2 else cb
                assert client.post("/v1/payments", json=payment(3 * i),
                                   headers=headers).status_code == 200
        assert store.count_payments() == 6
        probe = {**payment(500, card_id="card_0"), "ts": T0 + timedelta(minutes=30)}
        assert a.online.features(probe)["count_by_card_1h"] == 7.0
        assert b.online.features(probe) == a.online.features(probe)
    finally:
        a.online.state.clear()  # type: ignore[attr-defined]
        a.close()
        b.close()
        store.close()


def test_rules_backtest_over_the_api(client):
    client.put("/v1/rules", json={"rules": "block if :amount: > 1000"}, headers=client.admin)
    for i in range(6):
        client.post("/v1/payments", json=payment(i, amount=300.0 * i), headers=client.score)
    for pid in ("pay_4", "pay_5"):  # 1200 and 1500: fraud
        client.post("/v1/labels", json={"payment_id": pid, "kind": "fraud_report",
                                        "is_fraud": True}, headers=client.admin)
    r = client.post("/v1/rules/backtest", json={
        "rules": "review if :amount: > 500 and :count_by_card_1h: >= 1"}, headers=client.admin)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["payments"] == 6 and report["frauds"] == 2
    assert report["baseline"]["total"]["fraud_blocked"] == 2  # amount > 1000: pay_4, pay_5
    assert report["rules"]["total"]["fraud_blocked"] == 0
    assert report["rules"]["total"]["fraud_reviewed"] == 2  # 600, 900, 1200, 1500 reviewed
    assert report["rules"]["total"]["good_reviewed"] == 2
    bad = client.post("/v1/rules/backtest", json={"rules": "block if"}, headers=client.admin)
    assert bad.status_code == 422


def test_serve_and_keys_commands(tmp_path, small_bundle_dir):
    from click.testing import CliRunner

    from vigil.cli import main

    runner = CliRunner()
    db = str(tmp_path / "k.db")
    made = runner.invoke(main, ["keys", "create", "--scope", "admin", "--name", "ops",
                                "--store", db])
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip().splitlines()[-1]
    assert secret.startswith("vk_")
    store = Store.open(db)
    assert store.verify_api_key(secret).scope == "admin"
    store.close()
    listed = runner.invoke(main, ["keys", "list", "--store", db])
    assert "ops" in listed.output and secret not in listed.output
    assert runner.invoke(main, ["keys", "revoke", "1", "--store", db]).exit_code == 0
    missing = runner.invoke(main, ["keys", "revoke", "9", "--store", db])
    assert missing.exit_code == 1 and "no API key 9" in missing.output
    workers = runner.invoke(main, ["serve", "--bundle", str(small_bundle_dir), "--store", db,
                                   "--workers", "2"])
    assert workers.exit_code == 1
    assert "needs the Redis state backend" in workers.output
    assert "Traceback" not in workers.output
    no_bundle = runner.invoke(main, ["serve", "--bundle", str(tmp_path / "nope"),
                                     "--store", db])
    assert no_bundle.exit_code == 1 and "Traceback" not in no_bundle.output


def test_a_snapshot_never_claims_a_payment_not_yet_in_the_state(store, small_bundle):
    """Between its commit and its arrival in the online state, a payment is on disk but not
    in the state: a snapshot taken then must leave it to the replay after a restart."""
    svc = ScoringService(store, small_bundle)
    try:
        events = [{**payment(i), "ts": T0 + timedelta(minutes=i)} for i in range(3)]
        seqs = []
        for e in events[:2]:
            _, decision = svc.decide(e)
            seqs.append(svc.committer.write(e, decision))
            svc.recorded(e, seqs[-1])
        _, decision = svc.decide(events[2])
        late = svc.committer.write(events[2], decision)  # committed, not yet applied
        svc.snapshot()
        assert store.latest_snapshot().payments_seq == late - 1
        svc.recorded(events[2], late)
        svc.snapshot()
        assert store.latest_snapshot().payments_seq == late
        # a restart from the first snapshot would replay the third payment: same state
        again = ScoringService(store, small_bundle)
        probe = {**payment(9, card_id="card_0"), "ts": T0 + timedelta(minutes=30)}
        assert again.online.features(probe) == svc.online.features(probe)
        again.close()
    finally:
        svc.close()


def test_the_server_process_freezes_its_heap_and_reports_it(service):
    """``vigil serve`` builds its app with ``freeze_heap``: what is alive at start is kept out
    of later collections, and /metrics says how many objects that is."""
    import gc

    try:
        with TestClient(create_app(service, freeze_heap=True)) as c:
            frozen = gc.get_freeze_count()
            assert frozen > 10_000  # the modules, the model, the app
            line = next(x for x in c.get("/metrics").text.splitlines()
                        if x.startswith("vigil_gc_frozen_objects "))
            # (frozen objects that reference counting frees leave the count)
            assert 0.9 * frozen <= float(line.split()[1]) <= gc.get_freeze_count()
    finally:
        gc.unfreeze()  # the rest of the suite runs with the collector as usual
