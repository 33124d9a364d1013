"""A load generator for the scoring API, run as its own process:
``python -m vigil.bench._load URL KEY SECONDS CONCURRENCY [RATE]``.

Two ways to load the service, each for SECONDS after a two-second warm-up, with fresh
payments over keep-alive HTTP/1.1 connections written directly on asyncio streams (a full
HTTP client library would spend more CPU than the server on these 2 cores):

- **closed loop** (no RATE): keeps CONCURRENCY requests in flight, each sent when the one
  before it on its connection is answered: the most the service can take;
- **open loop** (RATE payments per second): sends request *i* at ``start + i / RATE`` on one
  of CONCURRENCY connections, whatever the service's answers, and measures each latency from
  the moment the request was *due*, so a service (or a generator) that falls behind is
  charged for the whole wait (no coordinated omission). This is what a payment flow at a
  steady rate sees.

Prints one JSON line: requests, errors, seconds, and every latency in ms.
"""

from __future__ import annotations

import asyncio
import gc
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


async def _run_at_rate(url: str, key: str, seconds: float, connections: int,
                      rate: float) -> dict:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    run = uuid.uuid4().hex[:8]
    idle: asyncio.Queue = asyncio.Queue()
    opened = [await asyncio.open_connection(host, port) for _ in range(connections)]
    for conn in opened:
        idle.put_nowait(conn)
    latencies: list[float] = []
    errors = 0
    last_done = 0.0
    start = time.perf_counter() + 0.05
    warmup_end = start + 2.0
    total = int((seconds + 2.0) * rate)

    async def send(i: int, due: float) -> None:
        nonlocal errors, last_done
        reader, writer = conn = await idle.get()
        try:
            status = await _post(reader, writer, host, key, _payment(i, run))
        finally:
            idle.put_nowait(conn)
        done = time.perf_counter()
        last_done = max(last_done, done)
        if due >= warmup_end:
            if status == 200:
                latencies.append((done - due) * 1000)
            else:
                errors += 1

    tasks = []
    for i in range(total):
        due = start + i / rate
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(send(i, due)))
    await asyncio.gather(*tasks)
    for _, writer in opened:
        writer.close()
    # the rate achieved: answers over the time from the first measured payment's due time to
    # the last answer (a service that falls behind answers the same count, later)
    return {"requests": len(latencies), "errors": errors,
            "seconds": max(seconds, last_done - warmup_end), "rate": rate,
            "latencies_ms": latencies}


def main(argv: list[str]) -> None:
    url, key, seconds, concurrency = argv[0], argv[1], float(argv[2]), int(argv[3])
    # the collector's pauses would be charged to the service (open loop: as lateness); a run
    # of a minute holds little cyclic garbage, so this process goes without it
    gc.disable()
    if len(argv) > 4:
        result = asyncio.run(_run_at_rate(url, key, seconds, concurrency, float(argv[4])))
    else:
        result = asyncio.run(_run(url, key, seconds, concurrency))
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
