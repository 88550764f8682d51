"""The seccomp program, run by a small classic-BPF interpreter: what each syscall number gets,
on x86_64, on the x32 ABI and on another architecture; and the syscall table against the
kernel headers."""

from __future__ import annotations

import errno
import re
import struct
from pathlib import Path

import pytest

from coolcoding.sandbox.local import seccomp

UNISTD = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
AUDIT_ARCH_I386 = 0x40000003


def run_bpf(prog: bytes, nr: int, arch: int, arg0: int = 0) -> int:
    """The return value of ``prog`` for seccomp_data(nr, arch, args[0]): the opcodes seccomp.py
    emits."""
    data = struct.pack("<iIQQ", nr, arch, 0, arg0) + bytes(40)
    insns = [struct.unpack_from("<HBBI", prog, off) for off in range(0, len(prog), 8)]
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == 0x20:  # ld [k]
            acc = struct.unpack_from("<I", data, k)[0]
            pc += 1
        elif code == 0x15:  # jeq #k
            pc += 1 + (jt if acc == k else jf)
        elif code == 0x35:  # jge #k
            pc += 1 + (jt if acc >= k else jf)
        elif code == 0x06:  # ret #k
            return k
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


def test_each_syscall_gets_its_action() -> None:
    prog = seccomp.program()
    assert prog is not None and len(prog) % 8 == 0
    eperm = set(seccomp.EPERM_X86_64.values())
    enosys = set(seccomp.ENOSYS_X86_64.values())
    arch = seccomp.AUDIT_ARCH_X86_64
    for nr in range(0, 600):
        got = run_bpf(prog, nr, arch)
        if nr in eperm:
            assert got == seccomp.RET_ERRNO | errno.EPERM, nr
        elif nr in enosys:
            assert got == seccomp.RET_ERRNO | errno.ENOSYS, nr
        else:
            assert got == seccomp.RET_ALLOW, nr
    # The x32 ABI reaches the same kernel code under other numbers: none of it is allowed.
    for nr in (0, 39, 250, 321):
        assert run_bpf(prog, seccomp.X32_SYSCALL_BIT | nr, arch) == seccomp.RET_ERRNO | errno.ENOSYS
    # i386 (int 0x80) uses another table entirely: the process is killed.
    assert run_bpf(prog, 250, AUDIT_ARCH_I386) == seccomp.RET_KILL_PROCESS
    assert run_bpf(prog, 39, AUDIT_ARCH_I386) == seccomp.RET_KILL_PROCESS


def test_packet_sockets_are_refused_and_other_sockets_allowed() -> None:
    prog = seccomp.program()
    assert prog is not None
    arch, nr = seccomp.AUDIT_ARCH_X86_64, seccomp.SOCKET_X86_64
    assert run_bpf(prog, nr, arch, arg0=17) == seccomp.RET_ERRNO | errno.EPERM  # AF_PACKET
    assert run_bpf(prog, nr, arch, arg0=(1 << 32) | 17) == seccomp.RET_ERRNO | errno.EPERM
    for family in (1, 2, 10, 16):  # AF_UNIX, AF_INET, AF_INET6, AF_NETLINK
        assert run_bpf(prog, nr, arch, arg0=family) == seccomp.RET_ALLOW, family
    assert run_bpf(prog, 0, arch, arg0=17) == seccomp.RET_ALLOW  # read(17, ...): not socket()


def test_everyday_calls_are_allowed() -> None:
    prog = seccomp.program()
    assert prog is not None
    # read, write, openat, clone, fork, execve, wait4, ptrace (gdb), clone3, mmap
    for nr in (0, 1, 257, 56, 57, 59, 61, 101, 435, 9):
        assert run_bpf(prog, nr, seccomp.AUDIT_ARCH_X86_64) == seccomp.RET_ALLOW, nr


@pytest.mark.skipif(not UNISTD.is_file(), reason="needs the kernel headers (linux-libc-dev)")
def test_the_syscall_numbers_match_the_kernel_headers() -> None:
    table = dict(re.findall(r"#define __NR_(\w+) (\d+)", UNISTD.read_text()))
    for name, nr in {**seccomp.EPERM_X86_64, **seccomp.ENOSYS_X86_64}.items():
        assert int(table[name]) == nr, name


def test_the_memfd_holds_the_program_from_offset_zero() -> None:
    import os

    fd = seccomp.program_fd(b"\x01" * 16)
    try:
        assert os.read(fd, 100) == b"\x01" * 16
    finally:
        os.close(fd)
