"""A session pod's entrypoint (standard library only): wait for the agent's secret, then become
the agent.

The secret is written by the API server over the exec API into a FIFO on an in-memory volume
(``--deliver``), so it is in no pod spec, argv, environment or file: the same promise as the
local runtime (docs/AGENT_PROTOCOL.md). No user program runs before the agent does, and the FIFO
is gone once read. ``exec`` keeps the pid: the agent is the container's main process.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import time

# The runtime's secrets are HMAC-SHA256 digests. Two replicas may deliver the same secret at
# once; each 32-byte write is atomic on a FIFO (< PIPE_BUF), so the first 32 bytes are one whole
# secret, whatever the interleaving.
SECRET_LEN = 32


def wait_for_secret(fifo: str) -> bytes:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(fifo)
    os.mkfifo(fifo, 0o600)
    fd = os.open(fifo, os.O_RDONLY | os.O_CLOEXEC)  # blocks until the server opens it
    chunks = []
    try:
        while chunk := os.read(fd, 4096):
            chunks.append(chunk)
    finally:
        os.close(fd)
        os.unlink(fifo)
    return b"".join(chunks)


def deliver(fifo: str, secret: bytes, timeout_s: float = 5.0) -> None:
    """Write ``secret`` into the waiting entrypoint's FIFO (never into a regular file)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if not stat.S_ISFIFO(os.stat(fifo, follow_symlinks=False).st_mode):
                raise SystemExit(f"{fifo} is not a FIFO")
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
            break
        except (FileNotFoundError, OSError) as e:  # ENXIO: no reader yet
            if isinstance(e, SystemExit) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    try:
        os.set_blocking(fd, True)
        os.write(fd, secret)
    finally:
        os.close(fd)


def main(argv: list[str]) -> None:
    if argv[:1] == ["--deliver"] and len(argv) == 2:
        deliver(argv[1], sys.stdin.buffer.read(SECRET_LEN))  # not to EOF: stdin may stay open
        return
    if len(argv) < 4 or argv[0] != "--fifo" or argv[2] != "--":
        raise SystemExit("usage: boot --fifo PATH -- AGENT-ARGV... | boot --deliver PATH")
    secret = wait_for_secret(argv[1])
    if len(secret) < SECRET_LEN:
        raise SystemExit("boot: the secret is too short")
    secret = secret[:SECRET_LEN]
    r, w = os.pipe()
    os.write(w, secret)  # far below a pipe's capacity
    os.close(w)
    os.set_inheritable(r, True)
    agent = argv[3:]
    # The kubelet always sets KUBERNETES_SERVICE_HOST/PORT (enableServiceLinks does not remove
    # them): user programs need not be told where the cluster's API server is.
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    os.execve(agent[0], [*agent, "--secret-fd", str(r)], env)  # noqa: S606 (argv, never a shell)


if __name__ == "__main__":
    main(sys.argv[1:])
