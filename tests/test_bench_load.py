"""The HTTP load generator: its open loop sends at the rate asked, whatever the answers, and
charges a slow service for the whole wait (latency from when each request was due)."""

from __future__ import annotations

import asyncio

from vigil.bench._load import _run_at_rate


async def _serve(delay_s: float, counter: list[int]) -> asyncio.Server:
    """A tiny HTTP/1.1 keep-alive server that answers every request 200 after ``delay_s``,
    one request at a time per connection."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            length = 0
            line = await reader.readline()
            if not line:
                break
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            counter[0] += 1
            await asyncio.sleep(delay_s)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def _run(delay_s: float, connections: int, rate: float, seconds: float) -> tuple[dict, int]:
    async def main() -> tuple[dict, int]:
        counter = [0]
        server = await _serve(delay_s, counter)
        port = server.sockets[0].getsockname()[1]
        async with server:
            result = await _run_at_rate(f"http://127.0.0.1:{port}", "k", seconds,
                                        connections, rate)
        return result, counter[0]
    return asyncio.run(main())


def test_open_loop_sends_at_the_rate_and_measures_from_when_due() -> None:
    result, served = _run(delay_s=0.005, connections=8, rate=200, seconds=1.0)
    # warm-up (2 s) and measured second, every request sent and answered
    assert served == int(3.0 * 200)
    assert result["errors"] == 0
    assert result["requests"] == 200  # only the measured second counts
    lat = sorted(result["latencies_ms"])
    assert lat[0] >= 5.0  # never less than the service's own time
    assert lat[len(lat) // 2] < 50.0  # and, keeping up, not much more


def test_a_service_that_falls_behind_is_charged_for_the_queue() -> None:
    # one connection, 20 ms a request: at most 50/s against 100/s asked, so requests wait
    # longer and longer for the connection; a closed loop would report about 20 ms each
    result, _ = _run(delay_s=0.02, connections=1, rate=100, seconds=1.0)
    lat = sorted(result["latencies_ms"])
    assert lat[-1] > 500.0
    # and the rate it achieved is what it answered, not what was asked (about 50/s)
    assert result["requests"] / result["seconds"] < 60
