"""A small HTTP/1.1 load generator on raw asyncio sockets (keep-alive connections).

Open loop (``run_load``): requests are scheduled at a fixed rate and latency is measured from the
*scheduled* time, so a slow server is not hidden by the client waiting for it (no coordinated
omission). Closed loop (``run_closed``): each connection sends its next request when the previous
answer arrived, and every answer is checked. Lighter than an HTTP client library, so the 2-core
machine's CPU goes to the server under test.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Request:
    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self, host: str) -> bytes:
        lines = [
            f"{self.method} {self.path} HTTP/1.1",
            f"Host: {host}",
            f"Content-Length: {len(self.body)}",
        ]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


async def _read_response(reader: asyncio.StreamReader) -> int:
    return (await read_response(reader))[0]


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One response's status and body (Content-Length or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        k = k.strip().lower()
        if k == b"content-length":
            length = int(v)
        elif k == b"transfer-encoding" and b"chunked" in v.lower():
            chunked = True
    if chunked:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            parts.append((await reader.readexactly(size + 2))[:-2])
            if size == 0:
                break
        return status, b"".join(parts)
    if length:
        return status, await reader.readexactly(length)
    return status, b""


@dataclass
class LoadResult:
    latencies_ms: list[float]
    statuses: dict[int, int]
    duration_s: float
    errors: int = 0

    def summary(self) -> dict[str, float]:
        lat = sorted(self.latencies_ms)
        n = len(lat)
        if not n:
            return {"requests": 0}
        return {
            "requests": n,
            "rps": round(n / self.duration_s, 1),
            "p50_ms": round(statistics.median(lat), 2),
            "p90_ms": round(lat[int(n * 0.90)], 2),
            "p99_ms": round(lat[min(n - 1, int(n * 0.99))], 2),
            "max_ms": round(lat[-1], 2),
            "non_2xx": sum(v for k, v in self.statuses.items() if not 200 <= k < 300),
            "errors": self.errors,
        }


async def run_load(
    host: str,
    port: int,
    make_request: Callable[[int, int], Request],
    *,
    connections: int,
    duration_s: float,
    rate: float | None,
) -> LoadResult:
    """``rate`` requests/s spread over ``connections`` (open loop); ``None`` = as fast as possible."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    start = time.perf_counter() + 0.05
    end = start + duration_s
    per_conn_interval = connections / rate if rate else 0.0

    async def worker(conn_id: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        i = 0
        # stagger connections so the aggregate rate is smooth
        scheduled = start + (conn_id / connections) * per_conn_interval
        try:
            while True:
                if rate:
                    now = time.perf_counter()
                    if scheduled > now:
                        await asyncio.sleep(scheduled - now)
                    t0 = scheduled
                    scheduled += per_conn_interval
                else:
                    t0 = time.perf_counter()
                if t0 >= end:
                    break
                writer.write(make_request(conn_id, i).encode(host))
                try:
                    status = await _read_response(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                latencies.append((time.perf_counter() - t0) * 1000)
                statuses[status] = statuses.get(status, 0) + 1
                i += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker(c) for c in range(connections)))
    return LoadResult(latencies, statuses, duration_s, errors)


async def run_closed(
    host: str,
    port: int,
    request: bytes,
    *,
    n: int,
    connections: int,
    check: Callable[[int, bytes], bool],
) -> tuple[float, list[float]]:
    """``n`` copies of the encoded ``request`` over ``connections`` keep-alive connections, each
    sending its next one when the previous answer arrived (closed loop); every answer must pass
    ``check(status, body)``. Returns requests/s and the latencies (ms)."""
    latencies: list[float] = []
    left = n
    streams = [await asyncio.open_connection(host, port) for _ in range(connections)]

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal left
        while left > 0:
            left -= 1
            t0 = time.perf_counter()
            writer.write(request)
            status, body = await read_response(reader)
            latencies.append((time.perf_counter() - t0) * 1000)
            if not check(status, body):
                raise AssertionError(f"{status}: {body[:500]!r}")

    try:
        start = time.perf_counter()
        await asyncio.gather(*(worker(r, w) for r, w in streams))
        return n / (time.perf_counter() - start), latencies
    finally:
        for _, writer in streams:
            writer.close()
