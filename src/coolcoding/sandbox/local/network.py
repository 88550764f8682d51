"""A network-enabled sandbox's own network namespace, with slirp4netns as its user-mode NAT.

Never the host's namespace (``--share-net`` there reached PostgreSQL, Redis and the API on the
host's loopback). The server (root) creates the namespace, so it belongs to the initial user
namespace: the sandbox user, in bwrap's user namespace, has no CAP_NET_ADMIN or CAP_NET_RAW
over it and cannot change its routes, open raw or packet sockets on tap0, or re-enable IPv6.
Before any sandboxed process joins it (``join``, in the pre-exec of every terminal and exec),
it has: IPv6 disabled, a ``prohibit`` route for every blocked range (netpolicy.py), and tap0
configured by slirp4netns with ``--disable-host-loopback`` (10.0.2.2 does not lead to the
host's 127.0.0.1). slirp4netns runs sandboxed (its own mount namespace, no capabilities,
seccomp), in its own session and process group (no signal to the server's group reaches it),
in the session's cgroup (killed with it, also by orphan clean-up), so that it outlives the
server process like the sandbox's agent and shells do. Its pid is in the sandbox's state; a
later server process finds it again (``SandboxNetwork.adopt``: the namespace is the agent's,
checked to be a root-made one that is not the host's; a slirp4netns that is gone is started
again) and kills it when the sandbox stops.

One namespace per sandbox, shared by its terminals and execs (as one machine's loopback is:
a server started in one terminal answers ``curl localhost`` in another).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import os
import signal
import socket
import struct
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

from coolcoding.sandbox.base import SandboxError
from coolcoding.sandbox.local import netpolicy
from coolcoding.sandbox.local.cgroups import Cgroup
from coolcoding.sandbox.local.loopfd import LoopFd
from coolcoding.sandbox.local.rtnetlink import NetlinkSocket

CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
NS_GET_USERNS = 0xB701  # _IO(0xb7, 0x1): the user namespace owning a namespace
_libc = ctypes.CDLL(None, use_errno=True)
_USER_MESSAGE = "Network access is not available for this sandbox."


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def join(netns_fd: int) -> None:
    """setns(2) into the sandbox's namespace; called in a forked child, before dropping root."""
    _check(_libc.setns(netns_fd, CLONE_NEWNET), "setns")


def _write_sysctl(path: str, value: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return  # no IPv6 in this kernel at all
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack_from("16sH", fcntl.ioctl(s, SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def _prepare_netns(blocked: Sequence[IPv4Network]) -> None:
    """In the new namespace (the calling thread's): IPv6 off, lo up, the prohibit routes."""
    # /proc/sys/net is the opening thread's namespace: this one's.
    for scope in ("all", "default"):
        _write_sysctl(f"/proc/sys/net/ipv6/conf/{scope}/disable_ipv6", "1")
    _loopback_up()
    nl = NetlinkSocket()
    try:
        nl.add_prohibit_routes(blocked)
    finally:
        nl.close()


def _unshare_netns(prepare: Callable[[], None]) -> int:
    """In a throw-away thread (unshare moves only the calling thread, which then ends rather
    than run anything else in there): an fd of a new network namespace, ``prepare``d before
    anything can join it."""
    _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
    fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        prepare()
    except BaseException:
        os.close(fd)
        raise
    return fd


def _new_netns_in_thread(blocked: Sequence[IPv4Network]) -> int:
    """An fd of a new network namespace, prepared (``_prepare_netns``) before anything can join
    it, made in a throw-away thread (``_unshare_netns``)."""
    box: list[int | BaseException] = []

    def run() -> None:
        try:
            box.append(_unshare_netns(lambda: _prepare_netns(blocked)))
        except BaseException as e:  # handed to the caller's thread
            box.append(e)

    thread = threading.Thread(target=run, name="netns", daemon=True)
    thread.start()
    thread.join()
    result = box[0]
    if isinstance(result, BaseException):
        raise result
    return result


async def new_loopback_netns() -> int:
    """A new network namespace with nothing but its loopback, up (127.0.0.1/8 and ::1: what
    bwrap's ``--unshare-net`` makes), for a judge sandbox (``sandbox_judge_keep_netns``). Made
    by the server (root), so it belongs to the initial user namespace: the sandbox user has no
    capability over it (no route, address, link or sysctl change). Awaited without blocking
    the loop and without an executor thread (a thread that unshared must end); an fd made for a
    caller that was cancelled meanwhile is closed."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int] = loop.create_future()

    def deliver(result: int | BaseException) -> None:
        if done.cancelled():
            if isinstance(result, int):
                os.close(result)
        elif isinstance(result, BaseException):
            done.set_exception(result)
        else:
            done.set_result(result)

    def run() -> None:
        result: int | BaseException
        try:
            result = _unshare_netns(_loopback_up)
        except BaseException as e:
            result = e
        try:
            loop.call_soon_threadsafe(deliver, result)
        except RuntimeError:  # the loop is closed: nobody will take it
            if isinstance(result, int):
                os.close(result)

    threading.Thread(target=run, name="netns-lo", daemon=True).start()
    return await done


def host_networks() -> list[IPv4Network]:
    """The host's own addresses and networks (from the server's, i.e. the host's, namespace)."""
    nl = NetlinkSocket()
    try:
        return netpolicy.host_networks(nl.addresses())
    finally:
        nl.close()


def _unavailable(detail: str) -> SandboxError:
    return SandboxError("network_unavailable", _USER_MESSAGE, detail)


def _same_file(fd: int, path: str) -> bool:
    st, other = os.fstat(fd), os.stat(path)
    return (st.st_dev, st.st_ino) == (other.st_dev, other.st_ino)


def open_sandbox_netns(agent_pid: int, is_agent: Callable[[int], bool]) -> int:
    """An fd of the network namespace of a running sandbox's agent (host pid ``agent_pid``),
    for a server process that did not create it. Fail closed: the pid must be the sandbox's agent
    before and after the open (not a reused pid), and the namespace one that root made (owned by
    the initial user namespace: the sandbox user cannot make one) and not the host's."""
    if not is_agent(agent_pid):
        raise _unavailable(f"pid {agent_pid} is not the sandbox's agent")
    try:
        fd = os.open(f"/proc/{agent_pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise _unavailable(f"opening the agent's network namespace: {e!r}") from e
    try:
        if not is_agent(agent_pid):
            raise _unavailable(f"pid {agent_pid} exited while its namespace was opened")
        if _same_file(fd, "/proc/self/ns/net"):
            raise _unavailable("the agent runs in the host's network namespace")
        owner = fcntl.ioctl(fd, NS_GET_USERNS)
        try:
            if not _same_file(owner, "/proc/self/ns/user"):
                raise _unavailable("the agent's network namespace is not one the server made")
        finally:
            os.close(owner)
    except BaseException:
        os.close(fd)
        raise
    return fd


def is_slirp_of(pid: int, session_uuid: str, slirp_path: str) -> bool:
    """Whether host ``pid`` is a slirp4netns (``slirp_path``) in the cgroup of ``session_uuid``."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        cgroups = Path(f"/proc/{pid}/cgroup").read_text()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return argv[0] == os.fsencode(slirp_path) and f"/{session_uuid}/" in cgroups and state != "Z"


def _net_leaf_pids(session_cgroup_dirs: Sequence[str]) -> list[int]:
    """The processes in the ``net-*`` leaves of a session's cgroup (its slirp4netns)."""
    pids: list[int] = []
    for d in session_cgroup_dirs[:1]:  # v1: every controller has them all
        for procs in sorted(Path(d).glob("net-*/cgroup.procs")):
            with contextlib.suppress(OSError, ValueError):
                pids += [int(p) for p in procs.read_text().split()]
    return pids


class SandboxNetwork:
    """The namespace fd and its slirp4netns process (``slirp`` when this process started it, a
    pidfd when it was found running); ``close`` is idempotent."""

    def __init__(
        self, netns_fd: int, slirp_pid: int, slirp: subprocess.Popen[bytes] | None = None
    ) -> None:
        self.netns_fd = netns_fd
        self.slirp_pid = slirp_pid
        self.slirp = slirp
        self._pidfd: int | None = None

    def state(self) -> dict[str, int]:
        """What a later server process needs to find this network again (``adopt``)."""
        return {"slirp_pid": self.slirp_pid}

    @classmethod
    async def create(
        cls,
        *,
        slirp_path: str,
        allow: Sequence[IPv4Network],
        cgroup: Cgroup,
        timeout_s: float,
    ) -> SandboxNetwork:
        """Fail closed: any missing tool or failed step raises ``SandboxError``."""
        _check_can_run(slirp_path)
        try:
            blocked = netpolicy.blocked_networks(await asyncio.to_thread(host_networks), allow)
            # Routes first, then tap0: nothing is ever reachable without them.
            netns_fd = await asyncio.to_thread(_new_netns_in_thread, blocked)
        except (OSError, ValueError) as e:
            raise _unavailable(f"creating the network namespace: {e!r}") from e
        try:
            slirp = await _start_slirp(slirp_path, netns_fd, cgroup, timeout_s)
        except BaseException:
            os.close(netns_fd)
            raise
        return cls(netns_fd, slirp.pid, slirp)

    @classmethod
    async def adopt(
        cls,
        *,
        session_uuid: str,
        agent_pid: int,
        is_agent: Callable[[int], bool],
        state: Mapping[str, Any] | None,
        session_cgroup_dirs: Sequence[str],
        slirp_path: str,
        new_leaf: Callable[[], Cgroup],
        timeout_s: float,
    ) -> SandboxNetwork:
        """The network of a sandbox an earlier server process started (its agent still runs
        in it). Its slirp4netns (``state["slirp_pid"]``, else the one found in the session's
        ``net-*`` leaf cgroups: the state is a DB row, a hint) is kept if it still runs; if it is
        gone (tap0 went with it), a new one is started in a new leaf cgroup. The routes are the
        namespace's own and stayed. Raises ``SandboxError`` when the network cannot be had."""
        netns_fd = await asyncio.to_thread(open_sandbox_netns, agent_pid, is_agent)
        try:
            hint = (state or {}).get("slirp_pid")
            candidates = [hint] if isinstance(hint, int) and hint > 0 else []
            candidates += await asyncio.to_thread(_net_leaf_pids, session_cgroup_dirs)
            for pid in candidates:
                try:
                    pidfd = os.pidfd_open(pid)
                except OSError:
                    continue
                # Checked after the pidfd is held: the pid cannot be reused under it.
                if is_slirp_of(pid, session_uuid, slirp_path):
                    net = cls(netns_fd, pid)
                    net._pidfd = pidfd
                    return net
                os.close(pidfd)
            _check_can_run(slirp_path)
            leaf = new_leaf()
            try:
                slirp = await _start_slirp(slirp_path, netns_fd, leaf, timeout_s)
            except BaseException:
                await asyncio.to_thread(leaf.remove)
                raise
            return cls(netns_fd, slirp.pid, slirp)
        except BaseException:
            os.close(netns_fd)
            raise

    def forget(self) -> None:
        """This server process leaves the sandbox running: drop its references only."""
        if self.netns_fd >= 0:
            os.close(self.netns_fd)
            self.netns_fd = -1
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        self.slirp = None  # not reaped here; the next server process kills it at stop

    async def close(self) -> None:
        """Kill slirp4netns (SIGKILL: it has nothing to save), drop the namespace's reference
        held by the server, then reap slirp4netns when it is this process's child. The fds are
        closed on the event loop's thread, which also spawns: no spawn can see a closed (or
        reused) namespace fd number."""
        if self.netns_fd >= 0:
            os.close(self.netns_fd)
            self.netns_fd = -1
        if self.slirp is not None:
            slirp, self.slirp = self.slirp, None
            with contextlib.suppress(ProcessLookupError):
                slirp.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(slirp.wait, 5)
        if self._pidfd is not None:
            pidfd, self._pidfd = self._pidfd, None
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            exited = LoopFd(pidfd)  # readable once it has exited (reaped by its own parent)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(exited.readable(), 5)
            exited.close()


def _check_can_run(slirp_path: str) -> None:
    if not os.access(slirp_path, os.X_OK):
        raise _unavailable(
            f"{slirp_path} not found: install it (Debian: apt-get install slirp4netns); "
            "network-enabled sandboxes need it"
        )
    if os.geteuid() != 0:
        raise _unavailable(
            "network-enabled sandboxes need a root server: it creates each one's network "
            "namespace in the initial user namespace"
        )


async def _read_one(fd: int, timeout_s: float) -> bytes:
    """One byte from ``fd`` (b"" at EOF or after ``timeout_s``), without blocking the loop."""
    loop = asyncio.get_running_loop()
    readable: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not readable.done():
            readable.set_result(None)

    loop.add_reader(fd, wake)
    try:
        await asyncio.wait_for(readable, timeout_s)
    except TimeoutError:
        return b""
    finally:
        loop.remove_reader(fd)
    return os.read(fd, 1)


def _spawn(
    argv: list[str], log_fd: int, pass_fds: tuple[int, ...], cgroup: Cgroup
) -> subprocess.Popen[bytes]:
    """No pre-exec function (which would make CPython fork instead of vfork, ~20 ms in a large
    server): the cgroup is joined by pid right after; slirp4netns has nothing to account yet.
    Its own session (setsid): it outlives the server and no signal to the server's process
    group (a Ctrl-C in its terminal) reaches it."""
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log_fd,
        stderr=log_fd,
        pass_fds=pass_fds,
        close_fds=True,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        cwd="/",
        start_new_session=True,
    )
    try:
        for path in cgroup.procs_files:  # accounted to (and killed with) the session
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, str(proc.pid).encode())
            finally:
                os.close(fd)
    except OSError:
        proc.kill()
        proc.wait()
        raise
    return proc


async def _start_slirp(
    slirp_path: str, netns_fd: int, cgroup: Cgroup, timeout_s: float
) -> subprocess.Popen[bytes]:
    """slirp4netns attached to ``netns_fd``, configured (tap0 up, address, default route). No
    ``--exit-fd``: it runs until the sandbox stops (killed by pid, or with its cgroup)."""
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    # Read when it fails to come up; later it logs only errors, to this memfd (never blocks).
    log_fd = os.memfd_create("slirp4netns-log", os.MFD_CLOEXEC)

    argv = [
        slirp_path,
        "--configure",
        "--mtu=65520",
        "--disable-host-loopback",
        "--enable-sandbox",
        "--enable-seccomp",
        f"--ready-fd={ready_w}",
        "--netns-type=path",
        f"/proc/self/fd/{netns_fd}",
        "tap0",
    ]
    try:
        slirp = _spawn(argv, log_fd, (ready_w, netns_fd), cgroup)
    except (OSError, subprocess.SubprocessError) as e:
        for fd in (ready_r, ready_w, log_fd):
            os.close(fd)
        raise _unavailable(f"starting slirp4netns: {e!r}") from e
    os.close(ready_w)
    ok = b""
    try:
        ok = await _read_one(ready_r, timeout_s)
    finally:
        os.close(ready_r)
        if ok != b"1":  # not ready, timed out or cancelled: nothing may stay behind
            slirp.kill()
            slirp.wait()  # SIGKILLed: immediate
            os.lseek(log_fd, 0, os.SEEK_SET)
            log = os.read(log_fd, 2000)
        os.close(log_fd)
    if ok != b"1":
        raise _unavailable(f"slirp4netns did not come up: {log!r}")
    return slirp
