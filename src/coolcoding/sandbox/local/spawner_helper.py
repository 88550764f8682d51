"""The spawner helper's program (run as ``python -I -S spawner_helper.py FD``; stdlib only).

A small process (~10 MB) that forks sandbox processes on the server's behalf, so the server
(hundreds of MB) is never forked: see spawner.py for the protocol and why. Each request is one
SOCK_SEQPACKET message: a JSON header and the fds to hand over (SCM_RIGHTS). The helper clones
a child with ``CLONE_PARENT``, so the child is the *server's* child (the server reaps it, reads
its rusage, and bwrap's ``--die-with-parent`` follows the server's thread, as before). The child
does what a ``preexec_fn`` did, in the same order, then ``execve``s; the helper answers with the
pid, or the error the child reported on a close-on-exec pipe.
"""

import ctypes
import fcntl
import json
import os
import resource
import signal
import socket
import sys
import termios
from typing import Any, NoReturn

CLONE_PARENT = 0x00008000
CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000
CLOSE_RANGE_CLOEXEC = 1 << 2
PR_SET_PDEATHSIG = 1
SYS = {"x86_64": {"clone": 56, "setns": 308}, "aarch64": {"clone": 220, "setns": 268}}
SYS_CLOSE_RANGE = 436  # the same number on every architecture (the generic table)
MAX_FDS = 64
MAX_MESSAGE = 1 << 20

# PyDLL keeps the GIL across the call: the cloned child must return into Python holding it.
_py = ctypes.PyDLL(None, use_errno=True)
_py.syscall.restype = ctypes.c_long
_libc = ctypes.CDLL(None, use_errno=True)
_nr = SYS[os.uname().machine]


def _check(ret: int, what: str) -> None:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _child(req: dict[str, Any], fds: list[int], err_w: int) -> NoReturn:
    """In the cloned child: set up and exec; never returns."""
    try:
        netns = req.get("netns_index")
        if netns is not None:  # before dropping root: setns needs CAP_SYS_ADMIN
            _check(_libc.syscall(_nr["setns"], fds[netns], CLONE_NEWNET), "setns")
        targets = req["targets"]
        # Move every received fd above all targets first, so no dup2 overwrites a source.
        floor = max([*targets, err_w, *fds]) + 1
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor) for fd in fds]
        for src, dst in zip(high, targets, strict=True):
            if dst >= 0:
                os.dup2(src, dst, inheritable=True)
        keep = sorted({t for t in targets if t >= 0})
        lo = 0
        for fd in [*keep, 1 << 20]:  # everything else closes at exec (err_w included)
            if fd > lo:
                _check(_libc.syscall(SYS_CLOSE_RANGE, lo, fd - 1, CLOSE_RANGE_CLOEXEC),
                       "close_range")  # fmt: skip
            lo = fd + 1
        for sig in ("SIGPIPE", "SIGXFSZ", "SIGXFZ"):  # Python ignores them; exec keeps that
            if hasattr(signal, sig):
                signal.signal(getattr(signal, sig), signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        if req["new_session"]:
            os.setsid()
        for path in req["procs_files"]:
            fd = os.open(path, os.O_WRONLY)
            os.write(fd, b"0")  # "0" = the writing process itself
            os.close(fd)
        for res, soft, hard in req["rlimits"]:
            resource.setrlimit(res, (soft, hard))
        if req["controlling_tty"]:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        mntns = req.get("mntns_index")
        if mntns is not None:  # after the cgroups (/sys is not in it), still root (spawnns.py)
            _check(_libc.syscall(_nr["setns"], high[mntns], CLONE_NEWNS), "setns mnt")
        os.chdir("/")
        if req["drop"]:
            os.setgroups([])
            os.setresgid(req["gid"], req["gid"], req["gid"])
            os.setresuid(req["uid"], req["uid"], req["uid"])
        os.execve(req["argv"][0], req["argv"], req["env"])  # noqa: S606 (argv, no shell)
    except BaseException as e:  # anything: reported, then exit
        try:
            os.write(err_w, f"{type(e).__name__}: {e}".encode()[:4000] or b"error")
        finally:
            os._exit(127)


def _spawn(req: dict[str, Any], fds: list[int]) -> dict[str, Any]:
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = _py.syscall(_nr["clone"], CLONE_PARENT | signal.SIGCHLD, 0, 0, 0, 0)
        if pid == 0:
            _child(req, fds, err_w)
        if pid < 0:
            err = ctypes.get_errno()
            return {"error": f"clone: {os.strerror(err)}"}
        os.close(err_w)
        err_w = -1
        msg = b""
        while chunk := os.read(err_r, 4096):
            msg += chunk
        return {"pid": pid, "error": msg.decode(errors="replace")} if msg else {"pid": pid}
    finally:
        os.close(err_r)
        if err_w >= 0:
            os.close(err_w)


def main() -> None:
    sock = socket.socket(fileno=int(sys.argv[1]))
    parent = int(sys.argv[2])
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the server died before the prctl
        return
    while True:
        fds: list[int] = []
        rid = None
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, MAX_MESSAGE, MAX_FDS)
            if not data:
                return  # the server closed its end
            req = json.loads(data)
            rid = req.get("id")  # echoed: the server matches answers to its queued requests
            if len(fds) != len(req["targets"]):
                answer = {"error": "fd count mismatch"}
            else:
                answer = _spawn(req, fds)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            answer = {"error": f"{type(e).__name__}: {e}"}
        finally:
            for fd in fds:
                os.close(fd)
        if rid is not None:
            answer["id"] = rid
        try:
            sock.send(json.dumps(answer).encode())
        except OSError:
            return


if __name__ == "__main__":
    main()
