"""``python -m coolcoding.agent``: start the agent (normally as a sandbox's first process).

The secret comes from an inherited fd (``--secret-fd``, read then closed) or a file that is
unlinked once read (``--secret-file``); never argv or the environment, which the sandbox user's
programs can read in /proc. The agent then makes itself non-dumpable, so the user's programs
(same uid) cannot read its memory or ptrace it either. Readiness: ``ready <pid>\\n`` on
``--ready-fd`` once the socket accepts connections.

Start-up time and memory count here (one agent per sandbox, started on the way to a prompt):
``ssl`` is kept out (asyncio imports it only to offer TLS, which the agent never uses: ~8 ms
and ~1 MB per agent) and the command line is parsed by hand (argparse and gettext: ~8 ms).
"""

from __future__ import annotations

import sys

if __name__ == "__main__":  # the agent's own process only, never a process importing this
    sys.modules.setdefault("ssl", None)  # type: ignore[arg-type]  # asyncio copes: no TLS

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal

from coolcoding.agent.connection import start_tcp_server, start_unix_server
from coolcoding.agent.server import AgentLimits, AgentServer

PR_SET_DUMPABLE = 4


def read_secret(fd: int | None, path: str | None) -> bytes:
    if fd is not None:
        chunks = []
        while chunk := os.read(fd, 4096):
            chunks.append(chunk)
        os.close(fd)
        return b"".join(chunks)  # the exact bytes: a random secret may end in b"\n"
    if path is not None:
        with open(path, "rb") as f:
            secret = f.read()
        os.unlink(path)
        return secret
    raise SystemExit("coolcoding-agent: --secret-fd or --secret-file is required")


def make_undumpable() -> None:
    """Keep same-uid processes out of /proc/<agent>/mem, environ and ptrace (the secret)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE)")


@dataclasses.dataclass
class AgentArgs:
    socket: str | None = None  # unix socket path to listen on
    listen: str | None = None  # HOST:PORT (TCP; e.g. a pod's port-forward)
    workspace: str = "/workspace"
    secret_fd: int | None = None
    secret_file: str | None = None
    ready_fd: int | None = None
    limits: AgentLimits = dataclasses.field(default_factory=AgentLimits)


_INT_OPTIONS = ("secret_fd", "ready_fd")
_STR_OPTIONS = ("socket", "listen", "workspace", "secret_file")


def usage_error(message: str) -> SystemExit:
    print(f"coolcoding-agent: {message}", file=sys.stderr)
    return SystemExit(2)


def parse_args(argv: list[str]) -> AgentArgs:
    """``--name VALUE`` or ``--name=VALUE`` for every option (``AgentLimits`` fields included,
    typed like their defaults); anything else is a usage error (exit status 2)."""
    args = AgentArgs()
    limits: dict[str, object] = {}
    defaults = dataclasses.asdict(args.limits)
    i = 0
    while i < len(argv):
        opt, eq, value = argv[i].partition("=")
        name = opt[2:].replace("-", "_")
        if not opt.startswith("--") or name not in (*_INT_OPTIONS, *_STR_OPTIONS, *defaults):
            raise usage_error(f"unknown argument {argv[i]!r}")
        if not eq:
            if i + 1 >= len(argv):
                raise usage_error(f"{opt} needs a value")
            i += 1
            value = argv[i]
        try:
            if name in defaults:
                limits[name] = type(defaults[name])(value)
            elif name in _INT_OPTIONS:
                setattr(args, name, int(value))
            else:
                setattr(args, name, value)
        except ValueError:
            raise usage_error(f"{opt}: invalid value {value!r}") from None
        i += 1
    args.limits = AgentLimits(**limits)  # type: ignore[arg-type]
    return args


def _link_npm_cache() -> None:
    from pathlib import Path  # after "ready": pathlib is not on the way to the first prompt

    from coolcoding.sandbox.npmcache import SHARED_NPM, link_shared

    if os.path.isdir(SHARED_NPM):
        home = os.environ.get("HOME", "/home/coder")
        with contextlib.suppress(OSError):  # no home, a full tmpfs: npm downloads, that is all
            link_shared(Path(home) / ".npm", Path(SHARED_NPM), SHARED_NPM)


async def _keep_npm_cache_linked() -> None:
    """Link npm's private cache to the shared store at start, and again whenever the host
    added blobs to it (its ``MARKER`` changes; a sandbox may run for hours, or wait in the
    session pool, while other sessions' downloads are promoted)."""
    from coolcoding.sandbox.npmcache import MARKER, RELINK_POLL_S, SHARED_NPM

    if not await asyncio.to_thread(os.path.isdir, SHARED_NPM):
        return
    marker = os.path.join(SHARED_NPM, MARKER)
    seen: int | None = None
    while True:
        try:
            stamp = os.stat(marker).st_mtime_ns
        except OSError:
            stamp = 0
        if stamp != seen:
            seen = stamp
            await asyncio.to_thread(_link_npm_cache)
        await asyncio.sleep(RELINK_POLL_S)


async def run(args: AgentArgs, secret: bytes, workspace: str) -> None:
    agent = AgentServer(workspace, secret, args.limits)
    if args.socket:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(args.socket)
        old = os.umask(0o177)  # the socket is 0600: its owner (the sandbox uid) and root
        try:
            server = await start_unix_server(agent.on_client, args.socket)
        finally:
            os.umask(old)
    elif args.listen:
        host, _, port = args.listen.rpartition(":")
        server = await start_tcp_server(agent.on_client, host or "127.0.0.1", int(port))
    else:
        raise SystemExit("coolcoding-agent: --socket or --listen is required")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.ready_fd is not None:
        os.write(args.ready_fd, f"ready {os.getpid()}\n".encode())
        os.close(args.ready_fd)
    # npm's private cache gets links to the host's shared store (sandbox/npmcache.py), after
    # "ready": an install in the first milliseconds downloads, nothing worse.
    linking = loop.create_task(_keep_npm_cache_linked())
    async with server:
        await stop.wait()
    linking.cancel()
    await agent.shutdown()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="agent: %(levelname)s %(message)s")
    secret = read_secret(args.secret_fd, args.secret_file)
    make_undumpable()
    if hasattr(asyncio, "PidfdChildWatcher"):  # no thread per child (threads count as pids)
        with contextlib.suppress(OSError, NotImplementedError):
            asyncio.set_child_watcher(asyncio.PidfdChildWatcher())
    asyncio.run(run(args, secret, os.path.realpath(args.workspace)))


if __name__ == "__main__":
    main()
