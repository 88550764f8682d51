"""``python -m coolcoding.agent``: start the agent (normally as a sandbox's first process).

The secret comes from an inherited fd (``--secret-fd``, read then closed) or a file that is
unlinked once read (``--secret-file``); never argv or the environment, which the sandbox user's
programs can read in /proc. The agent then makes itself non-dumpable, so the user's programs
(same uid) cannot read its memory or ptrace it either. Readiness: ``ready <pid>\\n`` on
``--ready-fd`` once the socket accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys

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


def parse_args(argv: list[str]) -> argparse.Namespace:
    d = AgentLimits()
    p = argparse.ArgumentParser(prog="coolcoding-agent")
    p.add_argument("--socket", help="unix socket path to listen on")
    p.add_argument("--listen", help="HOST:PORT to listen on (TCP; e.g. a pod's port-forward)")
    p.add_argument("--workspace", default="/workspace")
    p.add_argument("--secret-fd", type=int)
    p.add_argument("--secret-file")
    p.add_argument("--ready-fd", type=int)
    for name, value in vars(d).items():
        p.add_argument("--" + name.replace("_", "-"), type=type(value), default=value)
    return p.parse_args(argv)


async def run(args: argparse.Namespace, secret: bytes, workspace: str) -> None:
    limits = AgentLimits(**{k: getattr(args, k) for k in vars(AgentLimits())})
    agent = AgentServer(workspace, secret, limits)
    if args.socket:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(args.socket)
        old = os.umask(0o177)  # the socket is 0600: its owner (the sandbox uid) and root
        try:
            server = await asyncio.start_unix_server(agent.on_client, path=args.socket)
        finally:
            os.umask(old)
    elif args.listen:
        host, _, port = args.listen.rpartition(":")
        server = await asyncio.start_server(agent.on_client, host or "127.0.0.1", int(port))
    else:
        raise SystemExit("coolcoding-agent: --socket or --listen is required")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.ready_fd is not None:
        os.write(args.ready_fd, f"ready {os.getpid()}\n".encode())
        os.close(args.ready_fd)
    async with server:
        await stop.wait()
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
