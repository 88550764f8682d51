"""A previewed program's WebSocket, relayed: the browser's side is the ASGI WebSocket, the
program's side a WebSocket client (``websockets``' sans-I/O protocol) over the agent's port
stream. Messages are relayed whole (fragments joined by the protocol), pings answered by it;
either side closing closes the other with the same code."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import WebSocket
from starlette.websockets import WebSocketDisconnect
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from coolcoding.agent.client import PortStream

MAX_MESSAGE_BYTES = 16 * 1024 * 1024


async def _flush(proto: ClientProtocol, stream: PortStream) -> None:
    for data in proto.data_to_send():
        if data:
            await stream.write(data)
        else:
            await stream.write_eof()


async def relay_websocket(
    ws: WebSocket, stream: PortStream, port: int, target: str, cookie_name: str
) -> None:
    wanted = [
        Subprotocol(p.strip())
        for p in ws.headers.get("sec-websocket-protocol", "").split(",")
        if p.strip()
    ]
    proto = ClientProtocol(
        parse_uri(f"ws://localhost:{port}{target}"),
        subprotocols=wanted or None,
        max_size=MAX_MESSAGE_BYTES,
    )
    request = proto.connect()
    cookie = ws.headers.get("cookie")
    if cookie:
        kept = [c for c in cookie.split(";") if c.strip().split("=", 1)[0] != cookie_name]
        if kept:
            request.headers["Cookie"] = ";".join(kept).strip()
    proto.send_request(request)
    await _flush(proto, stream)
    # The program's handshake answer first.
    response: Response | None = None
    pending: list[Frame] = []
    while response is None:
        data = await stream.read()
        if not data:
            proto.receive_eof()
        else:
            proto.receive_data(data)
        for event in proto.events_received():
            if isinstance(event, Response):
                response = event
            elif isinstance(event, Frame):
                pending.append(event)
        if not data and response is None:
            await ws.close(4502, "the program closed the connection")
            return
    if proto.state is not State.OPEN:
        await ws.close(4502, f"the program refused the WebSocket ({response.status_code})")
        return
    await ws.accept(subprotocol=response.headers.get("Sec-WebSocket-Protocol"))

    async def to_browser(frames: list[Frame]) -> bool:
        for frame in frames:
            if frame.opcode is Opcode.TEXT:
                await ws.send_text(bytes(frame.data).decode())
            elif frame.opcode is Opcode.BINARY:
                await ws.send_bytes(bytes(frame.data))
            elif frame.opcode is Opcode.CLOSE:
                return False
        return True

    async def upstream() -> None:
        if not await to_browser(pending):
            return
        while True:
            data = await stream.read()
            if not data:
                proto.receive_eof()
            else:
                proto.receive_data(data)
            await _flush(proto, stream)  # pongs, the close answer
            frames = [e for e in proto.events_received() if isinstance(e, Frame)]
            if not await to_browser(frames) or not data:
                return

    async def downstream() -> None:
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                with contextlib.suppress(Exception):
                    proto.send_close(1000)
                    await _flush(proto, stream)
                return
            if msg.get("text") is not None:
                proto.send_text(msg["text"].encode())
            elif msg.get("bytes") is not None:
                proto.send_binary(msg["bytes"])
            await _flush(proto, stream)

    tasks = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, Exception):
                await t
        await stream.close()
        code = proto.close_code or 1000
        with contextlib.suppress(Exception):
            await ws.close(code if code in (1000, 1001) or 3000 <= code < 5000 else 1000)
