"""A real `vigil serve` process killed with SIGKILL during a load loses nothing it
acknowledged, and after a restart scores exactly as a service that never stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from vigil.models import ModelBundle
from vigil.serving import ScoringService
from vigil.store import Store

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(bundle_dir, db, port) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "vigil", "serve", "--bundle", str(bundle_dir), "--store",
         str(db), "--port", str(port), "--snapshot-every", "25"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"vigil serve exited: {proc.stderr.read().decode()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("vigil serve did not start within 60 s")


def _events(n: int) -> list[tuple[str, dict]]:
    """Payments a minute apart on 4 cards and 3 terminals; every 7th payment, a fraud report
    for the payment 3 before it, reported a minute after that one."""
    out: list[tuple[str, dict]] = []
    for i in range(n):
        ts = T0 + timedelta(minutes=i)
        out.append(("payment", {
            "payment_id": f"p{i:04d}", "ts": ts.isoformat(), "amount": 10.0 + (i * 37) % 300,
            "currency": "EUR", "card_id": f"c{i % 4}", "customer_id": f"u{i % 4}",
            "merchant_id": "m", "terminal_id": f"t{i % 3}"}))
        if i % 7 == 6:
            j = i - 3
            out.append(("label", {"payment_id": f"p{j:04d}", "kind": "fraud_report",
                                  "is_fraud": True,
                                  "reported_at": (T0 + timedelta(minutes=j + 1)).isoformat()}))
    return out


@pytest.mark.slow
def test_sigkill_during_load_loses_nothing_acknowledged(small_bundle_dir, tmp_path):
    db = tmp_path / "vigil.db"
    store = Store.open(db, migrate=True)
    secret = store.create_api_key("score", "load")[1]
    store.close()
    headers = {"Authorization": f"Bearer {secret}"}
    port = _free_port()
    events = _events(120)
    acked: dict[str, dict] = {}
    proc = _start(small_bundle_dir, db, port)
    url = f"http://127.0.0.1:{port}"
    position = 0
    with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
        try:
            for kind, body in events:
                if kind == "payment" and len(acked) == 60:
                    os.kill(proc.pid, signal.SIGKILL)  # mid-load, between two requests
                r = client.post("/v1/payments" if kind == "payment" else "/v1/labels",
                                json=body)
                assert r.status_code in (200, 201), r.text
                if kind == "payment":
                    acked[body["payment_id"]] = r.json()
                position += 1
        except httpx.HTTPError:
            pass  # the server is gone: this request was not acknowledged
        proc.wait(timeout=10)
        assert len(acked) == 60

        proc = _start(small_bundle_dir, db, port)
        try:
            for pid in acked:  # every acknowledged payment is there, with its decision
                stored = client.get(f"/v1/payments/{pid}")
                assert stored.status_code == 200
                assert stored.json()["decision"]["risk_score"] == acked[pid]["risk_score"]
            # the client goes on from the request that failed (sent again: it may or may not
            # have been stored before the kill)
            for kind, body in events[position:]:
                r = client.post("/v1/payments" if kind == "payment" else "/v1/labels",
                                json=body)
                if kind == "payment":
                    assert r.status_code in (200, 409), r.text
                    if r.status_code == 200:
                        acked[body["payment_id"]] = r.json()
                    else:  # stored before the kill, not acknowledged: read its decision
                        acked[body["payment_id"]] = {**client.get(
                            f"/v1/payments/{body['payment_id']}").json()["decision"]}
                else:
                    assert r.status_code == 201, r.text
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)

    # the same events through a service that never stopped
    reference = ScoringService(Store.open(tmp_path / "reference.db", migrate=True),
                               ModelBundle.load(small_bundle_dir))
    try:
        for kind, body in events:
            event = {**body}
            if kind == "payment":
                event["ts"] = datetime.fromisoformat(event["ts"])
                want = reference.score_payment(event)
                assert acked[body["payment_id"]]["risk_score"] == want["risk_score"], body
                assert acked[body["payment_id"]]["probability"] == pytest.approx(
                    want["probability"], rel=1e-6, abs=1e-9)
            else:
                event["reported_at"] = datetime.fromisoformat(event["reported_at"])
                reference.add_label(event)
    finally:
        reference.close()


@pytest.mark.slow
def test_sigkill_with_requests_in_flight(small_bundle_dir, tmp_path):
    """Four clients post at once; the server is killed while requests are in flight. Every
    acknowledged payment is stored with the decision the client got; after a restart the
    service scores exactly as one that holds the same stored payments and never stopped."""
    import threading

    db = tmp_path / "vigil.db"
    store = Store.open(db, migrate=True)
    secret = store.create_api_key("score", "load")[1]
    store.close()
    headers = {"Authorization": f"Bearer {secret}"}
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    payments = [body for kind, body in _events(240) if kind == "payment"]
    acked: dict[str, dict] = {}
    lock = threading.Lock()
    proc = _start(small_bundle_dir, db, port)

    def client(share: list[dict]) -> None:
        with httpx.Client(base_url=url, headers=headers, timeout=10) as c:
            for body in share:
                try:
                    r = c.post("/v1/payments", json=body)
                except httpx.HTTPError:
                    return  # the server is gone
                assert r.status_code == 200, r.text
                with lock:
                    acked[body["payment_id"]] = r.json()

    first_half = payments[:160]
    threads = [threading.Thread(target=client, args=(first_half[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    while True:  # kill while the four clients are mid-stream
        with lock:
            if len(acked) >= 60:
                break
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    for t in threads:
        t.join()
    proc.wait(timeout=10)
    assert 60 <= len(acked) < len(first_half)

    proc = _start(small_bundle_dir, db, port)
    later: dict[str, dict] = {}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=10) as c:
            for pid, answer in acked.items():
                stored = c.get(f"/v1/payments/{pid}")
                assert stored.status_code == 200, pid
                assert stored.json()["decision"]["risk_score"] == answer["risk_score"]
            for body in payments[160:]:
                r = c.post("/v1/payments", json=body)
                assert r.status_code == 200, r.text
                later[body["payment_id"]] = r.json()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)

    # a service that holds what was stored before the restart, and never stopped
    stored_store = Store.open(db)
    before = [p for p in stored_store.payments_since(0) if p["payment_id"] not in later]
    stored_store.close()
    assert {p["payment_id"] for p in before} >= set(acked)  # stored: all acked, maybe more
    reference = ScoringService(Store.open(tmp_path / "reference.db", migrate=True),
                               ModelBundle.load(small_bundle_dir))
    try:
        for p in before:
            reference.scorer.record(p)
        for body in payments[160:]:
            event = {**body, "ts": datetime.fromisoformat(body["ts"])}
            want = reference.score_payment(event)
            assert later[body["payment_id"]]["risk_score"] == want["risk_score"], body
            assert later[body["payment_id"]]["probability"] == pytest.approx(
                want["probability"], rel=1e-6, abs=1e-9)
    finally:
        reference.close()
