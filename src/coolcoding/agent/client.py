"""The API side of the agent protocol: connect, authenticate, typed calls, channel streams.

One ``AgentClient`` per connection. The caller enforces timeouts (``asyncio.timeout`` around a
call) and reconnects when it wants to; terminals live in the agent, so a new client reattaches by
terminal id. Channel data must be consumed: a channel holding more than ``CHANNEL_HIGH_WATER``
unread bytes pauses reading the whole connection, which pushes back on the agent (and its PTY).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, cast

from coolcoding.agent import messages, protocol
from coolcoding.agent.protocol import ProtocolError

CHANNEL_HIGH_WATER = 8 * 1024 * 1024

ChannelItem = bytes | dict[str, Any]  # raw data, or an event on that channel


class AgentError(Exception):
    """The agent answered a request with an error (``code`` from docs/AGENT_PROTOCOL.md)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class AgentRefused(AgentError):
    """The agent refused the connection (bad secret, version, protocol error, busy)."""


class AgentConnectionLost(ConnectionError):
    pass


class ChannelStream:
    """Items of one channel, in order; ends (``None``) after the empty data frame."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[ChannelItem | None] = asyncio.Queue()
        self.pending = 0
        self.room = asyncio.Event()
        self.room.set()
        self.ended = False  # the end (empty data frame) arrived
        self.on_room: Callable[[], None] | None = None  # called once when room comes back

    def put(self, item: ChannelItem | None) -> None:
        if item is None:
            self.ended = True
        if isinstance(item, bytes):
            self.pending += len(item)
            if self.pending > CHANNEL_HIGH_WATER:
                self.room.clear()
        self.queue.put_nowait(item)

    async def get(self) -> ChannelItem | None:
        return self._taken(await self.queue.get())

    def get_nowait(self) -> ChannelItem | None:
        """The next item queued (``asyncio.QueueEmpty`` if none)."""
        return self._taken(self.queue.get_nowait())

    def _taken(self, item: ChannelItem | None) -> ChannelItem | None:
        if isinstance(item, bytes):
            self.pending -= len(item)
            if self.pending <= CHANNEL_HIGH_WATER // 2 and not self.room.is_set():
                self.release()
        return item

    def release(self) -> None:
        """There is room again (or nobody reads any more): the connection may read on."""
        self.room.set()
        callback, self.on_room = self.on_room, None
        if callback is not None:
            callback()

    async def read_all(self) -> bytes:
        out = bytearray()
        while (item := await self.get()) is not None:
            if isinstance(item, bytes):
                out += item
        return bytes(out)


class Attachment:
    """One attachment to a terminal: iterate for output (bytes) and events (dicts)."""

    def __init__(self, client: AgentClient, channel: int, info: messages.PtyInfo) -> None:
        self.client = client
        self.channel = channel
        self.info = info
        self.stream = client.stream(channel)

    def __aiter__(self) -> AsyncIterator[ChannelItem]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[ChannelItem]:
        while (item := await self.stream.get()) is not None:
            yield item

    async def write(self, data: bytes) -> None:
        await self.client.send_data(self.channel, data)

    async def detach(self) -> None:
        await self.client.call("pty.detach", {"channel": self.channel})


class ExecRun:
    def __init__(self, client: AgentClient, result: messages.ExecStartResult) -> None:
        self.client = client
        self.pid = result["pid"]
        self.stdout = client.stream(result["stdout"])
        self.stderr = client.stream(result["stderr"])
        self.channel = result["stdout"]
        self.stdin_channel: int | None = None  # set when started with ``stdin_open``

    async def write_stdin(self, data: bytes) -> None:
        """More input for a run started with ``stdin_open``; ``b""`` closes its stdin (EOF)."""
        if self.stdin_channel is None:
            raise AgentError("bad_params", "this exec's stdin is not open")
        await self.client.send_data(self.stdin_channel, data)

    async def collect(self) -> tuple[bytes, bytes, messages.ExecExitEvent]:
        """All output and the exit event (the event follows the last output)."""
        err_task = asyncio.ensure_future(self.stderr.read_all())
        out = bytearray()
        exit_event: dict[str, Any] | None = None
        while (item := await self.stdout.get()) is not None:
            if isinstance(item, bytes):
                out += item
        while exit_event is None:  # the exit event comes after the stream's end marker
            item = await self.stdout.get()
            if isinstance(item, dict):
                exit_event = item
        return bytes(out), await err_task, cast(messages.ExecExitEvent, exit_event["data"])

    async def kill(self) -> None:
        await self.client.call("exec.kill", {"channel": self.channel})


class PortStream:
    """One relayed TCP connection: ``read`` (b"" at its end), ``write``, ``close``."""

    def __init__(self, client: AgentClient, channel: int) -> None:
        self.client = client
        self.channel = channel
        self._in = client.stream(channel)
        self._ended = False
        self._closed_out = False

    async def read(self) -> bytes:
        while not self._ended:
            item = await self._in.get()
            if item is None:
                self._ended = True
            elif isinstance(item, bytes):
                return item
        return b""

    async def write(self, data: bytes) -> None:
        if data and not self._closed_out:
            await self.client.send_data(self.channel, data)

    async def write_eof(self) -> None:
        if not self._closed_out:
            self._closed_out = True
            with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                await self.client.send_data(self.channel, b"")

    async def drain_to_end(self, limit: int = 1024 * 1024) -> bool:
        """Read (and drop) up to ``limit`` bytes until the program's end; True once ended."""
        while not self._ended and limit > 0:
            limit -= len(await self.read())
        return self._ended

    def forget(self) -> None:
        self.client.forget_stream(self.channel)

    async def close(self) -> None:
        await self.write_eof()
        self.forget()


class _Protocol(asyncio.StreamReaderProtocol):
    """A stream protocol whose bytes, once the client's handshake is done, go straight to the
    client's frame handler instead of a ``StreamReader`` and a reading task."""

    client: AgentClient | None = None

    def data_received(self, data: bytes) -> None:
        if self.client is not None:
            self.client._received(data)
        else:
            super().data_received(data)

    def eof_received(self) -> bool:
        if self.client is not None:
            self.client._ended(None)
        return bool(super().eof_received())

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.client is not None:
            self.client._ended(exc)


class AgentClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._odd = itertools.count(1, 2)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._streams: dict[int, ChannelStream] = {}
        self._dropped: set[int] = set()  # channels whose remaining frames are discarded
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()  # channel-0 events
        self.protocol = 0
        self.max_frame = protocol.DEFAULT_MAX_FRAME_BYTES
        self._done: asyncio.Future[None] | None = None  # set once the connection is gone
        self._lost: BaseException | None = None
        self._parser = protocol.FrameParser(self.max_frame)
        self._blocked: set[int] = set()  # channels over their high-water mark

    @classmethod
    async def connect(
        cls, address: str | tuple[str, int], secret: bytes, *, version: int | None = None
    ) -> AgentClient:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(loop=loop)
        proto = _Protocol(reader, loop=loop)
        if isinstance(address, str):
            transport, _ = await loop.create_unix_connection(lambda: proto, address)
        else:
            transport, _ = await loop.create_connection(lambda: proto, *address)
        writer = asyncio.StreamWriter(transport, proto, reader, loop)
        client = cls(reader, writer)
        try:
            await client._handshake(secret, version)
        except BaseException:
            writer.close()
            raise
        client._start(proto)
        return client

    async def _handshake(self, secret: bytes, version: int | None) -> None:
        await protocol.read_magic(self._reader)
        hello = await self._control(protocol.HANDSHAKE_MAX_FRAME_BYTES)
        if hello.get("type") != "hello":
            raise ProtocolError("bad_message", "expected hello")
        if version is None:  # the newest both speak (an agent of an older server speaks 1)
            offered = hello.get("protocols")
            common = [
                v for v in protocol.PROTOCOL_VERSIONS if isinstance(offered, list) and v in offered
            ]
            version = common[-1] if common else protocol.PROTOCOL_VERSIONS[-1]
        mine = protocol.new_challenge()
        proof = protocol.auth_proof(secret, "client", str(hello["challenge"]), mine)
        auth: messages.Auth = {
            "type": "auth",
            "protocol": version,
            "challenge": mine,
            "proof": proof,
        }
        self._writer.write(protocol.MAGIC + protocol.encode_control(dict(auth)))
        answer = await self._control(protocol.HANDSHAKE_MAX_FRAME_BYTES)
        if answer.get("type") == "refused":
            raise AgentRefused(str(answer.get("code")), str(answer.get("message")))
        expected = protocol.auth_proof(secret, "agent", str(hello["challenge"]), mine)
        if answer.get("type") != "welcome" or not protocol.proof_matches(
            expected, answer.get("proof")
        ):
            raise AgentRefused("bad_agent", "the agent did not prove it holds the secret")
        self.protocol = int(answer["protocol"])
        self.max_frame = int(answer["max_frame"])  # the agent's limit, for both directions

    async def _control(self, limit: int) -> dict[str, Any]:
        frame = await protocol.read_frame(self._reader, limit)
        if frame is None or frame.kind != protocol.KIND_CONTROL:
            raise AgentConnectionLost("the agent closed the connection during the handshake")
        return protocol.decode_control(frame.payload)

    def _start(self, proto: _Protocol) -> None:
        """After the handshake the frames are handled in the protocol's ``data_received``
        (no task to wake per chunk of the agent's output)."""
        self._done = asyncio.get_running_loop().create_future()
        self._parser = protocol.FrameParser(self.max_frame)
        buffered = bytes(self._reader._buffer)  # type: ignore[attr-defined]
        self._reader._buffer.clear()  # type: ignore[attr-defined]
        eof = self._reader.at_eof() or self._reader.exception() is not None
        proto.client = self
        if buffered:
            self._received(buffered)
        if eof:
            self._ended(None)

    def _received(self, chunk: bytes) -> None:
        if self._lost is not None:
            return
        try:
            for frame in self._parser.feed(chunk):
                if frame.kind == protocol.KIND_DATA:
                    if frame.channel in self._dropped:  # a closed port stream: its tail
                        if not frame.payload:
                            self._dropped.discard(frame.channel)
                        continue
                    stream = self.stream(frame.channel)
                    stream.put(frame.payload if frame.payload else None)
                    if frame.payload and not stream.room.is_set():
                        self._block(frame.channel, stream)
                    continue
                self._on_control(protocol.decode_control(frame.payload))
        except Exception as e:
            self._fail(e)

    def _block(self, channel: int, stream: ChannelStream) -> None:
        """A channel holds too much unread: stop reading the connection until it has room."""
        if channel in self._blocked:
            return
        if not self._blocked:
            self._writer.transport.pause_reading()  # type: ignore[attr-defined]
        self._blocked.add(channel)
        stream.on_room = lambda: self._unblock(channel)

    def _unblock(self, channel: int) -> None:
        self._blocked.discard(channel)
        if not self._blocked and self._lost is None:
            transport = self._writer.transport
            if not transport.is_closing():
                transport.resume_reading()  # type: ignore[attr-defined]

    def _ended(self, exc: BaseException | None) -> None:
        """The agent closed the connection (``exc``: or it broke)."""
        if self._lost is not None:
            return
        if self._parser.partial:
            self._fail(ProtocolError("truncated", "the stream ended inside a frame"))
        else:
            self._fail(exc or AgentConnectionLost("the agent closed the connection"))

    def _fail(self, e: BaseException) -> None:
        self._lost = e
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(AgentConnectionLost(str(e) or type(e).__name__))
        for stream in self._streams.values():
            stream.put(None)
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    def _on_control(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind == "response":
            fut = self._pending.pop(msg.get("id", -1), None)
            if fut is not None and not fut.done():
                fut.set_result(msg)
        elif kind == "event":
            channel = msg.get("channel", 0)
            if channel:
                self.stream(channel).put(msg)
            else:
                self.events.put_nowait(msg)
        elif kind == "refused":
            raise AgentRefused(str(msg.get("code")), str(msg.get("message")))

    async def wait_closed(self) -> None:
        """Returns once the connection is gone (the agent closed it, or it broke)."""
        if self._done is not None:
            await asyncio.shield(self._done)

    def stream(self, channel: int) -> ChannelStream:
        s = self._streams.get(channel)
        if s is None:
            s = self._streams[channel] = ChannelStream()
        return s

    @property
    def lost(self) -> bool:
        """True once the connection broke (a new one is needed)."""
        return self._lost is not None

    def forget_stream(self, channel: int) -> None:
        """Drop a channel's buffered items (its frames that still come create it anew, ended)."""
        stream = self._streams.pop(channel, None)
        if stream is not None:
            stream.release()
            if not stream.ended:
                self._dropped.add(channel)

    async def close(self) -> None:
        if self._lost is None:
            self._fail(asyncio.CancelledError())  # as before: calls fail, streams end
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()

    # --- sending -------------------------------------------------------------------------------

    async def call(self, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        if self._lost is not None:
            raise AgentConnectionLost(f"connection lost: {self._lost!r}")
        rid = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        request = {"type": "request", "id": rid, "method": method, "params": dict(params)}
        self._writer.write(protocol.encode_control(request))
        try:
            await self._writer.drain()
            msg = await fut
        finally:
            self._pending.pop(rid, None)
        if "error" in msg:
            raise AgentError(msg["error"]["code"], msg["error"]["message"])
        return cast(dict[str, Any], msg["result"])

    async def send_data(self, channel: int, data: bytes) -> None:
        step = self.max_frame
        for i in range(0, max(len(data), 1), step):
            self._writer.write(protocol.data_frame(channel, data[i : i + step]))
        transport = self._writer.transport
        if transport.get_write_buffer_size() or transport.is_closing():
            await self._writer.drain()  # above the high-water mark it waits; lost: it raises

    # --- typed methods -------------------------------------------------------------------------

    async def ping(self) -> bool:
        return bool((await self.call("ping", {}))["pong"])

    async def version(self) -> messages.VersionResult:
        return cast(messages.VersionResult, await self.call("version", {}))

    async def subscribe(self, *, fs: bool = False, pty: bool = False) -> None:
        await self.call("subscribe", {"fs": fs, "pty": pty})

    async def pty_open(
        self, cols: int, rows: int, *, terminal_id: str | None = None,
        argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> messages.PtyInfo:  # fmt: skip
        p: dict[str, Any] = {"cols": cols, "rows": rows}
        for key, value in (("terminal_id", terminal_id), ("cwd", cwd)):
            if value is not None:
                p[key] = value
        if argv is not None:
            p["argv"] = list(argv)
        if env is not None:
            p["env"] = dict(env)
        return cast(messages.PtyInfo, await self.call("pty.open", p))

    async def pty_spare(self, cols: int, rows: int) -> messages.PtySpareResult:
        """Protocol 3: have the agent start the next default terminal's shell now."""
        r = await self.call("pty.spare", {"cols": cols, "rows": rows})
        return cast(messages.PtySpareResult, r)

    async def pty_attach(
        self, terminal_id: str, *, replay: bool = True, typist: int | None = None
    ) -> Attachment:
        """``typist``: the user whose keystrokes this attachment carries (sent from protocol 4
        on; the agent names the last one before a command's start in its ``pty.command``)."""
        p: dict[str, Any] = {"terminal_id": terminal_id, "replay": replay}
        if typist is not None and self.protocol >= 4:
            p["typist"] = typist
        r = await self.call("pty.attach", p)
        return Attachment(self, r["channel"], r["info"])

    async def pty_resize(self, terminal_id: str, cols: int, rows: int) -> None:
        await self.call("pty.resize", {"terminal_id": terminal_id, "cols": cols, "rows": rows})

    async def pty_close(self, terminal_id: str) -> None:
        await self.call("pty.close", {"terminal_id": terminal_id})

    async def pty_list(self) -> list[messages.PtyInfo]:
        return cast(list[messages.PtyInfo], (await self.call("pty.list", {}))["terminals"])

    async def read_file(self, path: str, max_bytes: int | None = None) -> tuple[bytes, str]:
        p: dict[str, Any] = {"path": path}
        if max_bytes is not None:
            p["max_bytes"] = max_bytes
        r = await self.call("files.read", p)
        data = await self.stream(r["channel"]).read_all()
        self._streams.pop(r["channel"], None)
        if hashlib.sha256(data).hexdigest() != r["sha256"]:
            raise AgentError("io", f"{path!r}: content does not match its hash")
        return data, str(r["sha256"])

    async def write_file(
        self, path: str, data: bytes, *, expected_sha256: str | None = None,
        expect_absent: bool = False,
    ) -> messages.FilesWriteResult:  # fmt: skip
        channel = next(self._odd)
        p: dict[str, Any] = {"path": path, "channel": channel}
        if expected_sha256 is not None:
            p["expected_sha256"] = expected_sha256
        if expect_absent:
            p["expect_absent"] = True
        call = asyncio.ensure_future(self.call("files.write", p))
        await asyncio.sleep(0)  # the request frame is written before its data frames
        await self.send_data(channel, data)
        if data:
            await self.send_data(channel, b"")
        return cast(messages.FilesWriteResult, await call)

    async def delete(self, path: str) -> bool:
        return bool((await self.call("files.delete", {"path": path}))["deleted"])

    async def move(self, src: str, dst: str, *, overwrite: bool = False) -> None:
        await self.call("files.move", {"src": src, "dst": dst, "overwrite": overwrite})

    async def mkdir(self, path: str) -> None:
        await self.call("files.mkdir", {"path": path})

    async def list_tree(self, path: str = "", *, hashes: bool = False) -> list[messages.Entry]:
        r = await self.call("files.list", {"path": path, "hashes": hashes})
        return cast(list[messages.Entry], r["entries"])

    async def stat(self, path: str) -> messages.Entry | None:
        return cast(messages.Entry | None, (await self.call("files.stat", {"path": path}))["entry"])

    # --- protocol 2: the sync engine's calls ------------------------------------------------

    async def probe(
        self, paths: Sequence[str], *, max_bytes: int | None = None, content: bool = True
    ) -> list[tuple[messages.ProbeEntry, bytes | None]]:
        """Each path's entry with its bytes (regular files within ``max_bytes``; else None)."""
        p: dict[str, Any] = {"paths": list(paths), "content": content}
        if max_bytes is not None:
            p["max_bytes"] = max_bytes
        r = await self.call("files.probe", p)
        data = await self.stream(r["channel"]).read_all()
        self._streams.pop(r["channel"], None)
        out: list[tuple[messages.ProbeEntry, bytes | None]] = []
        off = 0
        for e in cast(list[messages.ProbeEntry], r["entries"]):
            blob = None
            if "sha256" in e:
                blob = data[off : off + e["size"]]
                off += e["size"]
                if hashlib.sha256(blob).hexdigest() != e["sha256"]:
                    raise AgentError("io", f"{e['path']!r}: content does not match its hash")
            out.append((e, blob))
        return out

    async def swap(
        self, path: str, data: bytes | None, base: Sequence[str]
    ) -> messages.FilesSwapResult:
        """The guarded write (``None``: remove): see ``agent/guarded.py``."""
        p: dict[str, Any] = {"path": path, "base": list(base)}
        if data is None:
            return cast(messages.FilesSwapResult, await self.call("files.swap", p))
        channel = p["channel"] = next(self._odd)
        call = asyncio.ensure_future(self.call("files.swap", p))
        await asyncio.sleep(0)  # the request frame is written before its data frames
        await self.send_data(channel, data)
        if data:
            await self.send_data(channel, b"")
        return cast(messages.FilesSwapResult, await call)

    async def fs_pending(self, path: str) -> bool:
        return bool((await self.call("fs.pending", {"path": path}))["pending"])

    async def fs_flush(self) -> None:
        """Deliver the watcher's queued changes now: their ``fs.changes`` events precede the
        response on this connection."""
        await self.call("fs.flush", {})

    async def fs_late(self) -> list[messages.LateCopy]:
        return cast(list[messages.LateCopy], (await self.call("fs.late", {}))["copies"])

    # --- protocol 2: port preview -------------------------------------------------------------

    async def ports_list(self) -> list[messages.PortInfo]:
        """Ports programs listen on in the sandbox (protocol 2)."""
        return cast(list[messages.PortInfo], (await self.call("ports.list", {}))["ports"])

    async def port_connect(self, port: int, host: str = "127.0.0.1") -> PortStream:
        """A TCP connection to ``port`` inside the sandbox, relayed by the agent (protocol 2)."""
        r = await self.call("port.connect", {"port": port, "host": host})
        return PortStream(self, int(r["channel"]))

    async def exec_start(
        self, argv: Sequence[str], *, stdin: bytes | None = None, cwd: str | None = None,
        env: Mapping[str, str] | None = None, timeout_s: float | None = None,
        output_limit_bytes: int | None = None, stdin_open: bool = False,
    ) -> ExecRun:  # fmt: skip
        """``stdin``: all of it, then EOF. ``stdin_open``: stdin stays open for
        ``ExecRun.write_stdin`` (interactive input)."""
        p: dict[str, Any] = {"argv": list(argv)}
        for key, value in (("cwd", cwd), ("timeout_s", timeout_s),
                           ("output_limit_bytes", output_limit_bytes)):  # fmt: skip
            if value is not None:
                p[key] = value
        if env is not None:
            p["env"] = dict(env)
        channel = next(self._odd) if stdin is not None or stdin_open else None
        if channel is not None:
            p["stdin_channel"] = channel
        call = asyncio.ensure_future(self.call("exec.start", p))
        await asyncio.sleep(0)
        if channel is not None and stdin:
            await self.send_data(channel, stdin)
        if channel is not None and not stdin_open:
            await self.send_data(channel, b"")
        run = ExecRun(self, cast(messages.ExecStartResult, await call))
        run.stdin_channel = channel if stdin_open else None
        return run
