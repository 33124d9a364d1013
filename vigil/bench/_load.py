"""A load generator for the scoring API, run as its own process:
``python -m vigil.bench._load URL KEY SECONDS CONCURRENCY``.

Keeps CONCURRENCY requests in flight for SECONDS (after a two-second warm-up) with fresh
payments, over keep-alive HTTP/1.1 connections written directly on asyncio streams (a full
HTTP client library would spend more CPU than the server on these 2 cores), and prints one
JSON line: requests, errors, seconds, and every latency in ms.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit


def _payment(i: int, run: str) -> bytes:
    card = f"c{(i * 31) % 5000:04d}"
    terminal = f"t{(i * 17) % 10000:05d}"
    return json.dumps({
        "payment_id": f"load-{run}-{i}",
        "ts": (datetime.now(UTC) - timedelta(seconds=1)).isoformat(),
        "amount": round(5 + (i * 7919) % 400 + 0.99, 2), "currency": "EUR",
        "card_id": card, "customer_id": card, "merchant_id": terminal,
        "terminal_id": terminal}).encode()


async def _post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str,
                key: str, body: bytes) -> int:
    writer.write(b"POST /v1/payments HTTP/1.1\r\nHost: " + host.encode()
                 + b"\r\nAuthorization: Bearer " + key.encode()
                 + b"\r\nContent-Type: application/json\r\nContent-Length: "
                 + str(len(body)).encode() + b"\r\n\r\n" + body)
    status_line = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(status_line.split()[1])


async def _run(url: str, key: str, seconds: float, concurrency: int) -> dict:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    run = uuid.uuid4().hex[:8]
    counter = iter(range(10**9))
    latencies: list[float] = []
    errors = 0
    warmup_end = time.perf_counter() + 2.0
    end = warmup_end + seconds

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while (now := time.perf_counter()) < end:
                t0 = time.perf_counter()
                status = await _post(reader, writer, host, key, _payment(next(counter), run))
                t1 = time.perf_counter()
                if now >= warmup_end:
                    if status == 200:
                        latencies.append((t1 - t0) * 1000)
                    else:
                        errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"requests": len(latencies), "errors": errors, "seconds": seconds,
            "latencies_ms": latencies}


def main(argv: list[str]) -> None:
    url, key, seconds, concurrency = argv[0], argv[1], float(argv[2]), int(argv[3])
    print(json.dumps(asyncio.run(_run(url, key, seconds, concurrency))))


if __name__ == "__main__":
    main(sys.argv[1:])
