"""``CoalescingTransport``: the writes of one event-loop turn reach the socket together, in order,
and nothing waits past the turn, a close, or a large write; and uvicorn serves through it."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from coolcoding.httpserver import COALESCE_MAX_BYTES, CoalescingTransport


class FakeTransport:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.calls.append(("write", data))

    def writelines(self, chunks: list[bytes]) -> None:
        self.calls.append(("writelines", list(chunks)))

    def close(self) -> None:
        self.calls.append(("close", None))
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str) -> str:
        return f"extra:{name}"


async def test_writes_of_one_turn_go_out_together_in_order() -> None:
    real = FakeTransport()
    t = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    t.write(b"HTTP/1.1 200 OK\r\n\r\n")
    t.write(b"")
    t.write(b"body")
    assert real.calls == []
    assert t.get_write_buffer_size() == len(b"HTTP/1.1 200 OK\r\n\r\nbody")
    await asyncio.sleep(0)
    assert real.calls == [("writelines", [b"HTTP/1.1 200 OK\r\n\r\n", b"body"])]
    t.write(b"next")
    await asyncio.sleep(0)
    assert real.calls[-1] == ("write", b"next")
    assert t.get_extra_info("peername") == "extra:peername"


async def test_close_and_large_writes_flush_at_once() -> None:
    real = FakeTransport()
    t = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    t.write(b"head")
    t.close()
    assert real.calls == [("write", b"head"), ("close", None)]
    await asyncio.sleep(0)
    assert len(real.calls) == 2  # the scheduled flush finds nothing left

    real = FakeTransport()
    t = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    big = b"x" * COALESCE_MAX_BYTES
    t.write(b"head")
    t.write(big)
    assert real.calls == [("writelines", [b"head", big])]


async def test_nothing_is_written_after_the_transport_closed() -> None:
    real = FakeTransport()
    t = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    t.write(b"late")
    real.closing = True  # the client went away
    await asyncio.sleep(0)
    assert real.calls == []


@pytest.mark.parametrize("coalesce", [True, False])
async def test_uvicorn_serves_through_it(coalesce: bool) -> None:
    import uvicorn

    from coolcoding.httpserver import guarded_protocol
    from coolcoding.settings import Settings

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]}
        )
        await send({"type": "http.response.body", "body": b"hello"})

    settings = Settings(http_coalesce_writes=coalesce)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, http=guarded_protocol(settings, 1024), log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        body = await reader.readexactly(5)
        writer.close()
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert body == b"hello"
    finally:
        server.should_exit = True
        await task
