"""The agent's state (terminals, watcher, file access) and the implementation of every method.

One ``AgentServer`` per sandbox. Terminals belong to the agent, not to a connection; execs and
subscriptions belong to the connection that made them and end with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
import re
import time
from dataclasses import dataclass
from typing import Any

from coolcoding.agent import protocol
from coolcoding.agent.connection import Connection, RequestError
from coolcoding.agent.execs import AgentExec
from coolcoding.agent.files import FileOpError, WorkspaceFs, raw_rel, rel_path
from coolcoding.agent.guarded import GuardedSwaps
from coolcoding.agent.ports import PortRelay, listening_ports
from coolcoding.agent.pty import AgentTerminal
from coolcoding.agent.watch import WorkspaceWatch

log = logging.getLogger(__name__)
_TERMINAL_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
DEFAULT_SHELL = ("/bin/bash", "--login", "-i")
MAX_SIZE = 1000  # columns / rows
SPARE_ID = "spare"  # pty.spare's shell until a pty.open takes it (then it has that id)


@dataclass(frozen=True)
class AgentLimits:
    """Every limit of the agent (the runtime passes them from ``Settings`` on its command line)."""

    max_frame_bytes: int = protocol.DEFAULT_MAX_FRAME_BYTES
    max_connections: int = 64
    max_terminals: int = 16
    scrollback_bytes: int = 256 * 1024
    command_output_bytes: int = 16 * 1024
    max_file_bytes: int = 64 * 1024 * 1024
    max_list_entries: int = 100_000
    exec_timeout_s: float = 600.0
    exec_output_bytes: int = 16 * 1024 * 1024
    # The workspace watcher (protocol 2; the server passes its SYNC_* settings): quiet time
    # before a batch, the longest a batch waits, most inotify watches (0: the kernel's limit),
    # most paths in one batch before it becomes a rescan (0: no limit).
    watch_debounce_ms: int = 50
    watch_max_delay_ms: int = 500
    watch_max_watches: int = 0
    watch_max_pending: int = 0


class AgentServer:
    def __init__(self, workspace: str, secret: bytes, limits: AgentLimits) -> None:
        if limits.max_frame_bytes < protocol.HANDSHAKE_MAX_FRAME_BYTES:
            raise ValueError(f"max_frame_bytes must be >= {protocol.HANDSHAKE_MAX_FRAME_BYTES}")
        if len(secret) < protocol.MIN_SECRET_BYTES:
            raise ValueError(f"the secret must have at least {protocol.MIN_SECRET_BYTES} bytes")
        self.workspace = workspace
        self.limits = limits
        self._secret = secret
        self.fs = WorkspaceFs(workspace)
        self.watch = WorkspaceWatch(
            self.fs,
            self._publish_fs,
            debounce_ms=limits.watch_debounce_ms,
            max_delay_ms=limits.watch_max_delay_ms,
            max_watches=limits.watch_max_watches,
            max_pending=limits.watch_max_pending,
        )
        self.swaps = GuardedSwaps(self.fs, self._publish_conflict, limits.max_file_bytes)
        self.terminals: dict[str, AgentTerminal] = {}
        self._spare: AgentTerminal | None = None  # pty.spare's shell, not a terminal yet
        self.connections: set[Connection] = set()
        self.fs_subscribers: set[Connection] = set()
        self.pty_subscribers: set[Connection] = set()
        self._write_lock = asyncio.Lock()
        self._counter = 0
        self._t0 = time.monotonic()
        # Children get the agent's environment minus what only the agent needs.
        # (PYTHONUSERBASE is the sandbox's, for pip installs in the workspace: kept.)
        self.base_env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("PYTHON") or k == "PYTHONUSERBASE"
        }

    async def on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(
            reader,
            writer,
            secret=self._secret,
            max_frame=self.limits.max_frame_bytes,
            inbound_limit=self.limits.max_file_bytes,
            handler=self.handle,
        )
        if len(self.connections) >= self.limits.max_connections:
            conn.send_control({"type": "refused", "code": "busy",
                               "message": f"more than {self.limits.max_connections} clients"})  # fmt: skip
            await conn.close()
            return
        self.connections.add(conn)
        conn.on_close.append(lambda: self._forget(conn))
        await conn.serve()

    def _forget(self, conn: Connection) -> None:
        self.connections.discard(conn)
        self.fs_subscribers.discard(conn)
        self.pty_subscribers.discard(conn)
        for term in self.terminals.values():
            term.detach_peer(conn)

    async def shutdown(self) -> None:
        for conn in list(self.connections):
            await conn.close()
        spare = [self._spare] if self._spare is not None else []
        await asyncio.gather(*(t.close() for t in [*self.terminals.values(), *spare]))
        await self.watch.close()
        self.swaps.close()

    # --- dispatch ------------------------------------------------------------------------------

    async def handle(self, conn: Connection, method: str, params: dict[str, Any]) -> dict[str, Any]:
        name = "m_" + method.replace(".", "_")
        fn = getattr(self, name)
        try:
            result: dict[str, Any] = await fn(conn, params)
        except FileOpError as e:
            raise RequestError(e.code, e.message) from e
        return result

    async def m_ping(self, conn: Connection, p: dict[str, Any]) -> dict[str, Any]:
        return {"pong": True}

    async def m_version(self, conn: Connection, p: dict[str, Any]) -> dict[str, Any]:
        return {"agent": protocol.AGENT_VERSION, "protocol": protocol.PROTOCOL_VERSIONS[-1],
                "pid": os.getpid(), "uptime_s": time.monotonic() - self._t0}  # fmt: skip

    async def m_subscribe(self, conn: Connection, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("fs", False):
            try:
                self.watch.start()
            except OSError as e:
                if e.errno == errno.EMFILE:
                    from coolcoding.sandbox.host_limits import sandbox_user_inotify_message

                    raise RequestError("host_limit", sandbox_user_inotify_message()) from e
                raise RequestError("io", f"the workspace watcher did not start: {e}") from e
            self.fs_subscribers.add(conn)
        if p.get("pty", False):
            self.pty_subscribers.add(conn)
        return {}

    def _publish_fs(self, data: dict[str, Any]) -> None:
        for conn in list(self.fs_subscribers):
            conn.send_event("fs.changes", 0, data)

    def _publish_conflict(self, data: dict[str, Any]) -> None:
        for conn in list(self.fs_subscribers):
            conn.send_event("fs.conflict", 0, data)

    # --- terminals -----------------------------------------------------------------------------

    def _terminal(self, tid: str) -> AgentTerminal:
        term = self.terminals.get(tid)
        if term is None:
            raise RequestError("not_found", f"no terminal {tid!r}")
        return term

    def _size(self, cols: int, rows: int) -> tuple[int, int]:
        if not (1 <= cols <= MAX_SIZE and 1 <= rows <= MAX_SIZE):
            raise RequestError("bad_params", f"cols and rows must be within 1..{MAX_SIZE}")
        return cols, rows

    def _cwd(self, raw: str | None) -> str:
        if raw is None or raw == "":
            return self.workspace
        if raw.startswith("/"):
            return raw  # the agent can reach nothing the sandbox user cannot
        return os.path.join(self.workspace, rel_path(raw))  # normalized: relative, no ..

    def _new_terminal(self, tid: str) -> AgentTerminal:
        return AgentTerminal(tid, max_frame=self.limits.max_frame_bytes,
                             scrollback_bytes=self.limits.scrollback_bytes,
                             command_output_bytes=self.limits.command_output_bytes,
                             on_command=self._on_command)  # fmt: skip

    async def m_pty_spare(self, conn: Connection, p: dict[str, Any]) -> dict[str, Any]:
        """Start the default shell of the next default ``pty.open`` now (a pooled sandbox's
        first terminal then opens on a shell that has printed its prompt already)."""
        cols, rows = self._size(p["cols"], p["rows"])
        if self._spare is not None and self._spare.alive:
            return {"started": False, "pid": self._spare.pid}
        term = self._new_terminal(SPARE_ID)
        try:
            await term.start(list(DEFAULT_SHELL), cols, rows, dict(self.base_env), self.workspace)
        except OSError as e:
            raise RequestError("spawn_failed", f"cannot start the shell: {e.strerror}") from e
        self._spare = term
        return {"started": True, "pid": term.pid}

    def _take_spare(self, tid: str, cols: int, rows: int) -> AgentTerminal | None:
        """The spare shell as terminal ``tid``, if one is alive (nobody was attached to it)."""
        term, self._spare = self._spare, None
        if term is None or not term.alive:
            return None
        term.terminal_id = tid
        if (term.cols, term.rows) != (cols, rows):
            term.resize(cols, rows)
        return term

    async def m_pty_open(self, conn: Connection, p: dict[str, Any]) -> dict[str, Any]:
        cols, rows = self._size(p["cols"], p["rows"])
        if len(self.terminals) >= self.limits.max_terminals:
            for dead in [t for t, term in self.terminals.items() if not term.alive]:
                del self.terminals[dead]  # ended terminals make room (their status was kept)
        if len(self.terminals) >= self.limits.max_terminals:
            raise RequestError("limit", f"at most {self.limits.max_terminals} terminals")
        tid = p.get("terminal_id")
        if tid is None:
            self._counter += 1
            tid = f"t{self._counter}"
        if not _TERMINAL_ID.fullmatch(tid):
            raise RequestError("bad_params", "terminal_id: 1-64 of [A-Za-z0-9_.-]")
        if tid in self.terminals:
            raise RequestError("conflict", f"terminal {tid!r} exists")
        argv = p.get("argv") or list(DEFAULT_SHELL)
        if not (p.get("argv") or p.get("env") or p.get("cwd")):  # the default shell
            spare = self._take_spare(tid, cols, rows)
            if spare is not None:
                self.terminals[tid] = spare
                return spare.info()
        term = self._new_terminal(tid)
        self.terminals[tid] = term
        try:
            await term.start(argv, cols, rows, {**self.base_env, **p.get("env", {})},
                             self._cwd(p.get("cwd")))  # fmt: skip
        except OSError as e:
            del self.terminals[tid]
            raise RequestError("spawn_failed", f"cannot start {argv[0]!r}: {e.strerror}") from e
        return term.info()

    async def _on_command(self, term: AgentTerminal, event: dict[str, Any]) -> None:
        await self.watch.flush()  # the command's file changes are reported before its record
        old = {k: v for k, v in event.items() if k != "typist"}  # protocol < 4: no typist
        for conn in list(self.pty_subscribers):
            conn.send_event("pty.command", 0, event if conn.protocol >= 4 else old)

    async def m_pty_attach(self, conn: Connection, p: dict[str, Any]) -> dict[str, Any]:
        term = self._terminal(p["terminal_id"])
        channel = conn.new_channel()
        typist: int | None = p.get("typist")
        conn.input_sinks[channel] = lambda data: term.write(data, typist)
        return self._attach(conn, term, channel, p.get("replay", True))

    def _attach(
        self, conn: Connection, term: AgentTerminal, channel: int, replay: bool
    ) -> dict[str, Any]:
        info = term.info()
        info["attachments"] += 1
        # Replay and live output must follow the response, which is written as soon as this
        # handler returns: the attach (snapshot of the scrollback + registration, atomic) runs
        # in the next loop step, so nothing is lost or sent twice in between.
        asyncio.get_running_loop().call_soon(
            lambda: term.attach(conn, channel, replay=replay, max_frame=conn.max_frame)
        )
        return {"channel": channel, "info": info}

    async def m_pty_detach(self, conn: Connection, p: dict[str, Any]) -> dict[str, Any]:
        channel = p["channel"]
        conn.input_sinks.pop(channel, None)
        for term in self.terminals.values():
            if term.detach(conn, channel):
                conn.send_data(channel, b"")
        return {}

    async def m_pty_resize(self, conn: Connection, p: dict[str, Any]) -> dict[str, Any]:
        self._terminal(p["terminal_id"]).resize(*self._size(p["cols"], p["rows"]))
        return {}

    async def m_pty_close(self, conn: Connection, p: dict[str, Any]) -> dict[str, Any]:
        term = self._terminal(p["terminal_id"])
        await term.close()
        self.terminals.pop(term.terminal_id, None)
        return {}

    async def m_pty_list(self, conn: Connection, p: dict[str, Any]) -> dict[str, Any]:
        return {"terminals": [t.info() for t in self.terminals.values()]}

    # --- files ---------------------------------------------------------------------------------

    async def m_files_read(self, conn: Connection, p: dict[str, Any]) -> dict[str, Any]:
        rel = rel_path(p["path"])
        limit = min(p.get("max_bytes", self.limits.max_file_bytes), self.limits.max_file_bytes)
        data = await asyncio.to_thread(self.fs.read_bytes, rel, limit)
        channel = conn.new_channel()

        def send() -> None:
            step = conn.max_frame
            for i in range(0, len(data), step):
                conn.send_data(channel, data[i : i + step])
            conn.send_data(channel, b"")

        asyncio.get_running_loop().call_soon(send)
        return {"channel": channel, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    async def _receive(self, conn: Connection, channel: int) -> bytes:
        """The content the client sends on its odd ``channel`` (up to the end frame)."""
        box = conn.inbound.get(channel)
        if box is None:
            raise RequestError("bad_params", "channel: an odd channel id not in use")
        try:
            await box.ended.wait()
        finally:
            conn.inbound.pop(channel, None)
        if box.overflow:
            raise RequestError(
                "too_large", f"files are limited to {self.limits.max_file_bytes} bytes"
            )
        return b"".join(box.chunks)

    async def m_files_write(self, conn: Connection, p: dict[str, Any]) -> dict[str, Any]:
        rel = rel_path(p["path"])
        data = await self._receive(conn, p["channel"])
        async with self._write_lock:
            digest = await asyncio.to_thread(
                self.fs.write_atomic, rel, data, expected_sha256=p.get("expected_sha256"),
                expect_absent=p.get("expect_absent", False),
            )  # fmt: skip
        return {"sha256": digest, "size": len(data)}

    async def m_files_delete(self, conn: Connection, p: dict[str, Any]) -> dict[str, Any]:
        rel = rel_path(p["path"])
        async with self._write_lock:
            return {"deleted": await asyncio.to_thread(self.fs.delete, rel)}

    async def m_files_move(self, conn: Connection, p: dict[str, Any]) -> dict[str, Any]:
        src, dst = rel_path(p["src"]), rel_path(p["dst"])
        async with self._write_lock:
            await asyncio.to_thread(self.fs.move, src, dst, overwrite=p.get("overwrite", False))
        return {}

    async def m_files_mkdir(self, conn: Connection, p: dict[str, Any]) -> dict[str, Any]:
        rel = rel_path(p["path"])
        async with self._write_lock:
            await asyncio.to_thread(self.fs.mkdir, rel)
        return {}

    async def m_files_list(self, conn: Connection, p: dict[str, Any]) -> dict[str, Any]:
        rel = rel_path(p.get("path", ""), allow_root=True)
        entries = await asyncio.to_thread(self.fs.list_tree, rel, hashes=p.get("hashes", False),
                                          max_entries=self.limits.max_list_entries)  # fmt: skip
        return {"entries": entries}

    async def m_files_stat(self, conn: Connection, p: dict[str, Any]) -> dict[str, Any]:
        return {"entry": self.fs.stat_entry(rel_path(p["path"]))}

    # --- protocol 2: what the server's sync engine needs ----------------------------------------

    async def m_files_probe(self, conn: Connection, p: dict[str, Any]) -> dict[str, Any]:
        paths = [raw_rel(x) for x in p["paths"]]
        if len(paths) > self.limits.max_list_entries:
            raise RequestError("too_many", f"at most {self.limits.max_list_entries} paths")
        limit = min(p.get("max_bytes", self.limits.max_file_bytes), self.limits.max_file_bytes)
        entries, blobs = await asyncio.to_thread(
            self.fs.probe, paths, limit, content=p.get("content", True)
        )
        channel = conn.new_channel()

        def send() -> None:
            step = conn.max_frame
            for data in blobs:
                for i in range(0, len(data), step):
                    conn.send_data(channel, data[i : i + step])
            conn.send_data(channel, b"")

        asyncio.get_running_loop().call_soon(send)
        return {"channel": channel, "entries": entries}

    async def m_files_swap(self, conn: Connection, p: dict[str, Any]) -> dict[str, Any]:
        rel = rel_path(p["path"])
        data = await self._receive(conn, p["channel"]) if "channel" in p else None
        async with self._write_lock:
            result = await asyncio.to_thread(self.swaps.swap, rel, data, p["base"])
        self.swaps.schedule()
        return result

    async def m_fs_pending(self, conn: Connection, p: dict[str, Any]) -> dict[str, Any]:
        return {"pending": self.watch.pending(raw_rel(p["path"]))}

    async def m_fs_flush(self, conn: Connection, p: dict[str, Any]) -> dict[str, Any]:
        await self.watch.flush()
        return {}

    async def m_fs_late(self, conn: Connection, p: dict[str, Any]) -> dict[str, Any]:
        return {"copies": await self.swaps.run_late()}

    # --- exec ----------------------------------------------------------------------------------

    async def m_exec_start(self, conn: Connection, p: dict[str, Any]) -> dict[str, Any]:
        if not p["argv"]:
            raise RequestError("bad_params", "argv is empty")
        timeout = p.get("timeout_s", self.limits.exec_timeout_s)
        if not 0 < timeout <= self.limits.exec_timeout_s:
            raise RequestError("bad_params", f"timeout_s: within (0, {self.limits.exec_timeout_s}]")
        cap = min(p.get("output_limit_bytes", self.limits.exec_output_bytes),
                  self.limits.exec_output_bytes)  # fmt: skip
        run = AgentExec(conn, conn.new_channel(), conn.new_channel(), output_limit=cap,
                        max_frame=conn.max_frame)  # fmt: skip
        stdin_ch = p.get("stdin_channel")
        try:
            await run.start(p["argv"], env={**self.base_env, **p.get("env", {})},
                            cwd=self._cwd(p.get("cwd")), with_stdin=stdin_ch is not None,
                            timeout_s=timeout)  # fmt: skip
        except OSError as e:
            raise RequestError(
                "spawn_failed", f"cannot start {p['argv'][0]!r}: {e.strerror}"
            ) from e
        conn.on_close.append(run.kill)
        if stdin_ch is not None:
            box = conn.inbound.pop(stdin_ch, None)
            if box is not None:
                box.attach(run.feed_stdin)
                conn.input_sinks[stdin_ch] = run.feed_stdin
        conn.execs[run.stdout_channel] = run
        return {"stdout": run.stdout_channel, "stderr": run.stderr_channel, "pid": run.pid}

    # --- ports (protocol 2) ----------------------------------------------------------------------

    async def m_ports_list(self, conn: Connection, p: dict[str, Any]) -> dict[str, Any]:
        return {"ports": await asyncio.to_thread(listening_ports)}

    async def m_port_connect(self, conn: Connection, p: dict[str, Any]) -> dict[str, Any]:
        host = p.get("host", "127.0.0.1")
        if host not in ("127.0.0.1", "::1"):
            raise RequestError("bad_params", "host: 127.0.0.1 or ::1 (loopback only)")
        if not 0 < p["port"] < 65536:
            raise RequestError("bad_params", "port: within 1..65535")
        try:
            relay = await PortRelay.open(conn, host, p["port"], timeout_s=5.0)
        except (OSError, TimeoutError) as e:
            raise RequestError(
                "port_closed", f"nothing accepts connections on port {p['port']}"
            ) from e
        conn.on_close.append(relay.close)
        # The response (naming the channel) is sent when this returns; the socket's first bytes
        # follow it: start the pump one loop step later.
        asyncio.get_running_loop().call_soon(relay.start)
        return {"channel": relay.channel}

    async def m_exec_kill(self, conn: Connection, p: dict[str, Any]) -> dict[str, Any]:
        run = conn.execs.get(p["channel"])
        if run is None:
            raise RequestError("not_found", "no exec on that channel")
        run.kill()
        with contextlib.suppress(Exception):
            await run.wait()
        return {}
