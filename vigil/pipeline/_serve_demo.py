"""The demo's last act: a day of traffic through a real ``vigil serve`` process.

The service starts from a store holding a snapshot of the online features as they stood at
the start of the day (built here from the earlier history, as a restart would load it), the
demo rules and an API key; the day's payments are then posted over HTTP, a few at a time,
and the answers summarised: decisions, the rules that fired, reasons, latency.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from vigil.events import EventData
from vigil.features.online import OnlineFeatures, micros
from vigil.models import ModelBundle
from vigil.store import Store

DEMO_RULES = """\
# the demo's rules: Radar's default levels, plus one velocity rule
high_risk: block if :risk_score: >= 75
elevated_risk: review if :risk_score: >= 65
fast_big_spend: request_3ds if :amount: > 150 and :count_by_card_1h: >= 3
blocked_card: block if :card_id: in @blocked_cards
"""


def serve_one_day(data: EventData, bundle_dir: Path, folder: Path, day: datetime, *,
                  concurrency: int = 8,
                  progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Post the payments of ``day`` (UTC) to a freshly started ``vigil serve``; summarise."""
    say = progress or (lambda _m: None)
    bundle = ModelBundle.load(bundle_dir)
    start_us = micros(day)
    end_us = start_us + 86_400_000_000
    rows = data.payments.sort_by([("ts", "ascending"), ("payment_id", "ascending")]).to_pylist()
    before = [r for r in rows if micros(r["ts"]) < start_us]
    today = [r for r in rows if start_us <= micros(r["ts"]) < end_us]

    online = OnlineFeatures(bundle.feature_set)
    for r in before:
        online.record_payment(r)
    by_id = {r["payment_id"]: r for r in before}
    first: dict[str, list[int | None]] = {}
    for lab in data.labels.to_pylist():
        r = micros(lab["reported_at"])
        if r < start_us and lab["payment_id"] in by_id:
            seen = first.setdefault(lab["payment_id"], [None, None])
            online.add_label(by_id[lab["payment_id"]], is_fraud=lab["is_fraud"],
                             reported_at=r, earlier=(seen[0], seen[1]))
            seen[0] = r if seen[0] is None else min(seen[0], r)
            if lab["is_fraud"]:
                seen[1] = r if seen[1] is None else min(seen[1], r)
    online.state.sweep(start_us)
    say(f"online features as of {day:%Y-%m-%d}: {len(before):,} earlier payments")

    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "vigil.db"
    for leftover in folder.glob("vigil.db*"):
        leftover.unlink()
    store = Store.open(db, migrate=True)
    store.save_snapshot(json.dumps(online.state.dump()).encode(), 0, 0)  # type: ignore[attr-defined]
    store.save_rules(DEMO_RULES, "demo")
    secret = store.create_api_key("score", "demo")[1]
    store.close()

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "vigil", "serve", "--bundle", str(bundle_dir), "--store",
         str(db), "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(server, url)
        say(f"vigil serve on {url}; posting {len(today):,} payments of {day:%Y-%m-%d}, "
            f"{concurrency} at a time")
        t0 = time.perf_counter()
        answers = asyncio.run(_post_all(url, secret, [_body(r) for r in today], concurrency))
        seconds = time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait(timeout=30)
    return _summary(answers, seconds, today)


# what the scoring API does not take: the issuer's answer comes after the decision, and
# the API has no field for the account a payment was made through
_NOT_POSTED = ("status", "account_id")


def _body(row: dict[str, Any]) -> bytes:
    body = {k: v for k, v in row.items() if v is not None and k not in _NOT_POSTED}
    body["ts"] = row["ts"].isoformat()
    return json.dumps(body).encode()


def _summary(answers: list[tuple[int, dict[str, Any], float]], seconds: float,
             today: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [a for status, a, _ in answers if status == 200]
    latency = np.array([ms for _, _, ms in answers])
    decisions = Counter(a["decision"] for a in ok)
    rules = Counter(a["rule"]["id"] for a in ok if a.get("rule"))
    examples = [a for a in sorted(ok, key=lambda a: -a["risk_score"])[:3]]
    return {
        "payments": len(today), "answered": len(ok), "errors": len(answers) - len(ok),
        "seconds": seconds, "payments_per_s": len(answers) / seconds if seconds else 0.0,
        "latency_ms": {"p50": float(np.percentile(latency, 50)),
                       "p95": float(np.percentile(latency, 95)),
                       "p99": float(np.percentile(latency, 99))} if latency.size else {},
        "decisions": dict(decisions.most_common()), "rules": dict(rules.most_common()),
        "examples": [{"id": a["id"], "risk_score": a["risk_score"], "decision": a["decision"],
                      "reasons": [r["sentence"] for r in a["reasons"]]} for a in examples],
    }


async def _post_all(url: str, key: str, bodies: list[bytes],
                    concurrency: int) -> list[tuple[int, dict[str, Any], float]]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    queue = iter(bodies)
    out: list[tuple[int, dict[str, Any], float]] = []

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for body in queue:
                t0 = time.perf_counter()
                writer.write(b"POST /v1/payments HTTP/1.1\r\nHost: " + host.encode()
                             + b"\r\nAuthorization: Bearer " + key.encode()
                             + b"\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(body)).encode() + b"\r\n\r\n" + body)
                status = int((await reader.readline()).split()[1])
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                answer = json.loads(await reader.readexactly(length))
                out.append((status, answer, (time.perf_counter() - t0) * 1000))
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(server: subprocess.Popen, url: str, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            err = server.stderr.read().decode()[-2000:] if server.stderr else ""
            raise RuntimeError(f"vigil serve did not start: {err}")
        time.sleep(0.2)
