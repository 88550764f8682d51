"""One client connection to the agent: handshake, frame loop, channels, request dispatch.

Whatever the peer sends, the worst outcome is this connection being refused and closed: every
protocol error (bad magic, oversize or unknown frame, bad JSON, bad params, no or wrong secret,
an unsupported version) is answered with a ``refused`` frame where possible, and a failing
handler answers an ``error`` response; nothing propagates to the agent's other connections.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from coolcoding.agent import messages, protocol
from coolcoding.agent.execs import AgentExec
from coolcoding.agent.protocol import ProtocolError
from coolcoding.agent.schema_check import SchemaError, check

log = logging.getLogger(__name__)
MAX_IN_FLIGHT = 64
MAX_BACKLOG_BYTES = 96 * 1024 * 1024  # more than one file read (64 MiB) can queue


# What one ``recv`` on a client's socket asks for. asyncio's default (256 KiB) is above glibc's
# mmap threshold: every read, a keystroke's included, cost an mmap, an mremap and an munmap.
RECV_BYTES = 64 * 1024


def _small_receives(transport: asyncio.BaseTransport) -> None:
    """Have the selector transport ``recv`` at most ``RECV_BYTES`` at a time (its buffer then
    comes from the heap); a transport without that knob is left as it is."""
    if isinstance(getattr(transport, "max_size", None), int):
        transport.max_size = RECV_BYTES  # type: ignore[attr-defined]


class AgentProtocol(asyncio.StreamReaderProtocol):
    """The agent's stream protocol: the handshake reads through a ``StreamReader``; once it is
    done the bytes go straight to the connection's frame handler in ``data_received`` (no
    reading task to wake per keystroke; the client side does the same, ``client._Protocol``)."""

    sink: Connection | None = None

    def data_received(self, data: bytes) -> None:
        if self.sink is not None:
            self.sink._received(data)
        else:
            super().data_received(data)

    def eof_received(self) -> bool:
        if self.sink is not None:
            self.sink._ended(None)
        return bool(super().eof_received())

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.sink is not None:
            self.sink._ended(exc)


ClientCallback = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _factory(on_client: ClientCallback) -> Callable[[], AgentProtocol]:
    loop = asyncio.get_running_loop()
    return lambda: AgentProtocol(asyncio.StreamReader(loop=loop), on_client, loop=loop)


async def start_unix_server(on_client: ClientCallback, path: str) -> asyncio.Server:
    """``asyncio.start_unix_server`` with ``AgentProtocol``."""
    return await asyncio.get_running_loop().create_unix_server(_factory(on_client), path=path)


async def start_tcp_server(on_client: ClientCallback, host: str, port: int) -> asyncio.Server:
    """``asyncio.start_server`` with ``AgentProtocol``."""
    return await asyncio.get_running_loop().create_server(_factory(on_client), host, port)


class RequestError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Inbound:
    """Bytes a client streams to the agent on one of its (odd) channels: upload or stdin."""

    limit: int
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    consumer: Callable[[bytes], None] | None = None
    overflow: bool = False

    def feed(self, data: bytes) -> None:
        if not data:
            self.ended.set()
        if self.consumer is not None:
            self.consumer(data)
            return
        if data:
            self.size += len(data)
            if self.size > self.limit:
                self.overflow = True
                self.chunks.clear()
            elif not self.overflow:
                self.chunks.append(data)

    def attach(self, consumer: Callable[[bytes], None]) -> None:
        for chunk in self.chunks:
            consumer(chunk)
        if self.ended.is_set():
            consumer(b"")
        self.chunks.clear()
        self.consumer = consumer


Handler = Callable[["Connection", str, dict[str, Any]], Awaitable[dict[str, Any]]]


class Connection:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        secret: bytes,
        max_frame: int,
        inbound_limit: int,
        handler: Handler,
    ) -> None:
        self.reader = reader
        self.writer = writer
        _small_receives(writer.transport)
        self.max_frame = max_frame
        self._secret = secret
        self._inbound_limit = inbound_limit
        self._handler = handler
        self._channels = itertools.count(2, 2)  # the agent's channels are even, the client's odd
        self.inbound: dict[int, Inbound] = {}
        self.input_sinks: dict[int, Callable[[bytes], None]] = {}  # agent channel -> consumer
        self.on_close: list[Callable[[], None]] = []
        self.execs: dict[int, AgentExec] = {}  # by stdout channel
        self._tasks: set[asyncio.Task[None]] = set()
        # After the handshake frames are parsed in ``data_received`` (``AgentProtocol``); the
        # requests beyond ``MAX_IN_FLIGHT`` wait in order (with the frames after them) while the
        # transport's reading is paused; ``_done`` ends ``serve``.
        self._done: asyncio.Future[None] | None = None
        self._parser = protocol.FrameParser(max_frame)
        self._queue: collections.deque[protocol.Frame] = collections.deque()
        self._in_flight = 0
        self._reading_paused = False
        self.closed = False
        self.protocol = 0  # the version negotiated in the handshake

    # --- Peer ----------------------------------------------------------------------------------

    def send_data(self, channel: int, data: bytes) -> None:
        self._write(protocol.data_frame(channel, data))

    def send_event(self, event: str, channel: int, data: dict[str, Any]) -> None:
        self.send_control({"type": "event", "event": event, "channel": channel, "data": data})

    def send_control(self, message: dict[str, Any]) -> None:
        self._write(protocol.encode_control(message))

    def _write(self, frame: bytes) -> None:
        if self.closed:
            return
        transport = self.writer.transport
        if transport.is_closing():
            return
        self.writer.write(frame)
        if transport.get_write_buffer_size() > MAX_BACKLOG_BYTES:
            # A client that reads nothing (events, exec output) must not grow the agent's memory
            # without bound: drop it; its terminals stay, it can reconnect and reattach.
            log.warning("dropping a client that stopped reading")
            transport.abort()

    def backlog(self) -> int:
        if self.closed:
            return 0
        return self.writer.transport.get_write_buffer_size()

    async def drained(self) -> None:
        if self.closed:
            raise ConnectionError("closed")
        await self.writer.drain()

    def new_channel(self) -> int:
        return next(self._channels)

    # --- lifecycle -----------------------------------------------------------------------------

    async def serve(self) -> None:
        try:
            await asyncio.wait_for(self._handshake(), protocol.HANDSHAKE_TIMEOUT_S)
            await self._serve_frames()
        except ProtocolError as e:
            self._refuse(e.code, e.message)
        except TimeoutError:
            self._refuse("timeout", "no valid handshake in time")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:
            log.exception("agent connection failed")
        finally:
            await self.close()

    def _refuse(self, code: str, message: str) -> None:
        log.info("refusing a client: %s (%s)", code, message)
        self.send_control({"type": "refused", "code": code, "message": message})

    async def close(self) -> None:
        if self.closed:
            return
        for cb in self.on_close:
            with contextlib.suppress(Exception):
                cb()
        self.closed = True
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)

    async def _handshake(self) -> None:
        challenge = protocol.new_challenge()
        hello: messages.Hello = {
            "type": "hello",
            "protocols": list(protocol.PROTOCOL_VERSIONS),
            "challenge": challenge,
            "agent": protocol.AGENT_VERSION,
        }
        self.writer.write(protocol.MAGIC + protocol.encode_control(dict(hello)))
        await protocol.read_magic(self.reader)
        frame = await protocol.read_frame(self.reader, protocol.HANDSHAKE_MAX_FRAME_BYTES)
        if frame is None or frame.kind != protocol.KIND_CONTROL:
            raise ProtocolError("auth_required", "the first frame must be an auth message")
        msg = protocol.decode_control(frame.payload)
        try:
            check(msg, messages.Auth, "auth")
        except SchemaError as e:
            raise ProtocolError("auth_required", str(e)) from e
        version = protocol.choose_version(msg["protocol"])
        if version is None:
            raise ProtocolError(
                "unsupported_version",
                f"protocol {msg['protocol']!r} not supported; this agent speaks "
                f"{list(protocol.PROTOCOL_VERSIONS)}",
            )
        expected = protocol.auth_proof(self._secret, "client", challenge, msg["challenge"])
        if not protocol.proof_matches(expected, msg["proof"]):
            raise ProtocolError("bad_secret", "authentication failed")
        self.protocol = version
        welcome: messages.Welcome = {
            "type": "welcome",
            "protocol": version,
            "proof": protocol.auth_proof(self._secret, "agent", challenge, msg["challenge"]),
            "agent": protocol.AGENT_VERSION,
            "max_frame": self.max_frame,
        }
        self.send_control(dict(welcome))

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._in_flight -= 1
        if self._queue and self._done is not None and not self._done.done():
            try:
                self._run_queue()
            except Exception as e:
                self._fail(e)

    # --- frames after the handshake ------------------------------------------------------------

    async def _serve_frames(self) -> None:
        proto = self.writer.transport.get_protocol()
        if not isinstance(proto, AgentProtocol):
            raise TypeError("serve the agent with connection.start_unix_server/start_tcp_server")
        self._done = asyncio.get_running_loop().create_future()
        reader: Any = self.reader  # its buffer: what came after the handshake's frames
        buffered = bytes(reader._buffer)
        reader._buffer.clear()
        eof = reader.at_eof() or reader.exception() is not None
        resume = getattr(reader, "_maybe_resume_transport", None)
        if resume is not None:  # it may have paused reading when its buffer filled
            resume()
        proto.sink = self
        if buffered:
            self._received(buffered)
        if eof:
            self._ended(None)
        await self._done

    def _received(self, chunk: bytes) -> None:
        if self._done is None or self._done.done():
            return
        try:
            self._queue.extend(self._parser.feed(chunk))
            self._run_queue()
        except Exception as e:
            self._fail(e)

    def _run_queue(self) -> None:
        """Handle queued frames in order until ``MAX_IN_FLIGHT`` requests run; pause reading
        while frames wait (the old loop's ``await`` on the semaphore did the same)."""
        queue = self._queue
        while queue and self._in_flight < MAX_IN_FLIGHT:
            frame = queue.popleft()
            if frame.kind == protocol.KIND_DATA:
                self._on_data(frame.channel, frame.payload)
                continue
            msg = protocol.decode_control(frame.payload)
            try:
                check(msg, messages.Request, "request")
            except SchemaError as e:
                raise ProtocolError("bad_message", str(e)) from e
            self._open_inbound(msg["params"])
            self._in_flight += 1
            task = asyncio.ensure_future(self._dispatch(msg["id"], msg["method"], msg["params"]))
            self._tasks.add(task)
            task.add_done_callback(self._task_done)
        transport: Any = self.writer.transport
        if queue and not self._reading_paused:
            self._reading_paused = True
            transport.pause_reading()
        elif not queue and self._reading_paused:
            self._reading_paused = False
            if not transport.is_closing():
                transport.resume_reading()

    def _fail(self, exc: BaseException) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_exception(exc)

    def _ended(self, exc: BaseException | None) -> None:
        if self._done is None or self._done.done():
            return
        if exc is not None:
            self._fail(ConnectionError(str(exc)))
        elif self._parser.partial:
            self._fail(ProtocolError("truncated", "the stream ended inside a frame"))
        else:
            self._done.set_result(None)

    def _open_inbound(self, params: dict[str, Any]) -> None:
        """Register a client channel named by a request before its data frames are read."""
        for key in ("channel", "stdin_channel"):
            ch = params.get(key)
            if isinstance(ch, int) and ch % 2 == 1 and ch not in self.inbound:
                self.inbound[ch] = Inbound(self._inbound_limit)

    def _on_data(self, channel: int, data: bytes) -> None:
        sink = self.input_sinks.get(channel)
        if sink is not None:
            sink(data)
            return
        box = self.inbound.get(channel)
        if box is not None:
            box.feed(data)
        # Data for a channel that no longer exists (a detached terminal) is dropped.

    async def _dispatch(self, rid: int, method: str, params: dict[str, Any]) -> None:
        try:
            spec = messages.METHODS.get(method)
            if spec is None or self.protocol < messages.MIN_VERSION.get(method, 1):
                raise RequestError("unknown_method", f"no method {method!r} in protocol "
                                   f"{self.protocol}")  # fmt: skip
            try:
                check(params, spec[0], "params")
            except SchemaError as e:
                raise RequestError("bad_params", str(e)) from e
            for key in params:
                need = messages.MIN_PARAM_VERSION.get((method, key), 1)
                if self.protocol < need:
                    raise RequestError("bad_params", f"{method} takes {key!r} from protocol "
                                       f"{need} on (this connection speaks {self.protocol})")  # fmt: skip
            result = await self._handler(self, method, params)
            self.send_control({"type": "response", "id": rid, "result": result})
        except RequestError as e:
            self.send_control({"type": "response", "id": rid,
                               "error": {"code": e.code, "message": e.message}})  # fmt: skip
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("agent request %s failed", method)
            self.send_control({"type": "response", "id": rid,
                               "error": {"code": "internal", "message": "the agent failed"}})  # fmt: skip
        finally:
            for key in ("channel", "stdin_channel"):  # a refused upload frees its buffer
                ch = params.get(key)
                if isinstance(ch, int) and ch % 2 == 1:
                    self.inbound.pop(ch, None)
