"""The seccomp filter of every sandboxed process: a classic-BPF program handed to bwrap
(``--seccomp FD``), which installs it (with no_new_privs) just before it executes the command.

Defence in depth on top of the namespaces: the sandbox has no capabilities and no nested user
namespaces already, so most of the calls below would fail anyway; the filter makes them fail
before they reach the kernel code behind them, the usual path of kernel exploits. Blocked:

- kernel keyrings, BPF, perf events, userfaultfd, kcmp, file handles: ``EPERM``;
- io_uring: ``ENOSYS`` (as on a kernel without it; libuv and others fall back to threads);
- mounts, namespaces, modules, kexec, reboot, swap, clocks, quotas, accounting and the
  obsolete calls (uselib, ustat, sysfs, _sysctl...): ``EPERM``;
- packet sockets (``socket(AF_PACKET, ...)``, raw frames): ``EPERM``;
- the x32 ABI (same calls, other numbers): ``ENOSYS``; any other architecture (i386 through
  ``int 0x80``): the process is killed.

ptrace, personality and the NUMA calls stay allowed: gdb and strace work on the session's own
processes, which share its uid and pid namespace anyway.

Only x86_64 has a table here; on another architecture ``program()`` is ``None`` and the runtime
logs that sandboxes run without the filter.
"""

from __future__ import annotations

import errno
import os
import platform
import struct
from functools import cache

# x86_64 syscall numbers (asm/unistd_64.h; tests/unit/test_seccomp.py checks them against it).
EPERM_X86_64: dict[str, int] = {
    "syslog": 103,
    "uselib": 134,
    "ustat": 136,
    "sysfs": 139,
    "vhangup": 153,
    "pivot_root": 155,
    "_sysctl": 156,
    "acct": 163,
    "settimeofday": 164,
    "mount": 165,
    "umount2": 166,
    "swapon": 167,
    "swapoff": 168,
    "reboot": 169,
    "iopl": 172,
    "ioperm": 173,
    "create_module": 174,
    "init_module": 175,
    "delete_module": 176,
    "get_kernel_syms": 177,
    "query_module": 178,
    "quotactl": 179,
    "nfsservctl": 180,
    "lookup_dcookie": 212,
    "clock_settime": 227,
    "kexec_load": 246,
    "add_key": 248,
    "request_key": 249,
    "keyctl": 250,
    "unshare": 272,
    "perf_event_open": 298,
    "name_to_handle_at": 303,
    "open_by_handle_at": 304,
    "clock_adjtime": 305,
    "setns": 308,
    "kcmp": 312,
    "finit_module": 313,
    "kexec_file_load": 320,
    "bpf": 321,
    "userfaultfd": 323,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "mount_setattr": 442,
    "quotactl_fd": 443,
}
ENOSYS_X86_64: dict[str, int] = {
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
}

# socket(AF_PACKET, ...): raw link-layer frames. The sandbox lacks CAP_NET_RAW over its network
# namespace anyway (network.py); refused here too, before the kernel's packet code.
SOCKET_X86_64 = 41
AF_PACKET = 17

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000

# Classic BPF (linux/filter.h, linux/seccomp.h).
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_RET_K = 0x06
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
RET_ALLOW = 0x7FFF0000
_OFFSET_NR = 0  # struct seccomp_data: int nr; __u32 arch; ...
_OFFSET_ARCH = 4
_OFFSET_ARG0 = 16  # __u64 args[6]: the low word of args[0] (an int: the kernel truncates too)


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k)


def build_program(
    arch: int, eperm: list[int], enosys: list[int], packet_socket_nr: int | None = None
) -> bytes:
    """A filter that returns EPERM for ``eperm``, ENOSYS for ``enosys`` and the x32 ABI, kills
    the process for any other architecture than ``arch``, and allows the rest. With
    ``packet_socket_nr`` (socket(2)'s number), socket(AF_PACKET, ...) gets EPERM too."""
    head = [
        _insn(_LD_W_ABS, _OFFSET_ARCH),
        _insn(_JEQ_K, arch, jt=1, jf=0),
        _insn(_RET_K, RET_KILL_PROCESS),
        _insn(_LD_W_ABS, _OFFSET_NR),
        _insn(_JGE_K, X32_SYSCALL_BIT, jt=0, jf=1),
        _insn(_RET_K, RET_ERRNO | errno.ENOSYS),
    ]
    if packet_socket_nr is not None:
        head += [
            _insn(_JEQ_K, packet_socket_nr, jt=0, jf=3),  # not socket(): on to the checks
            _insn(_LD_W_ABS, _OFFSET_ARG0),
            _insn(_JEQ_K, AF_PACKET, jt=0, jf=1),
            _insn(_RET_K, RET_ERRNO | errno.EPERM),
            _insn(_LD_W_ABS, _OFFSET_NR),  # the syscall number again, for the checks
        ]
    checks = len(eperm) + len(enosys)
    if checks > 250:
        raise ValueError("too many syscalls for 8-bit jump offsets")
    # The checks, then three returns: allow (reached by falling through), EPERM, ENOSYS.
    # A jump offset counts the instructions skipped after the jumping one.
    eperm_at, enosys_at = checks + 1, checks + 2
    targets = [(nr, eperm_at) for nr in eperm] + [(nr, enosys_at) for nr in enosys]
    body = [_insn(_JEQ_K, nr, jt=target - i - 1) for i, (nr, target) in enumerate(targets)]
    tail = [
        _insn(_RET_K, RET_ALLOW),
        _insn(_RET_K, RET_ERRNO | errno.EPERM),
        _insn(_RET_K, RET_ERRNO | errno.ENOSYS),
    ]
    return b"".join(head + body + tail)


@cache
def program() -> bytes | None:
    """This host's filter, or ``None`` where there is no syscall table for its architecture."""
    if platform.machine() != "x86_64":
        return None
    return build_program(
        AUDIT_ARCH_X86_64,
        sorted(EPERM_X86_64.values()),
        sorted(ENOSYS_X86_64.values()),
        packet_socket_nr=SOCKET_X86_64,
    )


def program_fd(prog: bytes) -> int:
    """A memfd holding ``prog``, at offset 0, for bwrap's ``--seccomp``; the caller closes it."""
    fd = os.memfd_create("coolcoding-seccomp", os.MFD_CLOEXEC)
    try:
        os.write(fd, prog)
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd
