"""Attacks on the C zygote (sandbox/local/zygote.c, czygote.py), as tests.

On the host, built with AddressSanitizer and UBSan: malformed, truncated and oversized requests
are refused with X and exit 127, never a read or write out of bounds (a sanitizer report exits
1 with it on stderr). In real sandboxes: the program holds no fd of the zygote and cannot
reopen its binary, nobody can write the binary (sealed memfd), and a request cannot raise the
pooled bwrap's rlimits.

Checked to fail against mutated zygote.c / czygote.py, one at a time: no check of the
request's last NUL, no size cap, no bound of k or of n against the fields read, no overflow
check of a count, unchecked setrlimit, no close of the fds, env entries without "=" accepted,
only F_SEAL_SEAL.
"""

from __future__ import annotations

import ast
import fcntl
import os
import resource
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from coolcoding.sandbox.base import SandboxError
from coolcoding.sandbox.local import czygote, zygote
from coolcoding.sandbox.local import sandbox as sandbox_module
from coolcoding.sandbox.local.runtime import LocalRuntime
from coolcoding.sandbox.local.sandbox import LocalSandbox
from tests.integration.conftest_sandbox import (
    EPHEMERAL_DISK,
    make_runtime,
    requires_sandbox,
)

needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler (cc)")
MAX = zygote.MAX_REQUEST_BYTES
ENV = {"PATH": "/usr/bin:/bin"}
RL = [(resource.RLIMIT_CORE, (0, 0))]


def fields(*fs: bytes) -> bytes:
    return b"".join(f + b"\0" for f in fs)


def valid(argv: Sequence[str] = ("true",), env: Mapping[str, str] = ENV) -> bytes:
    request = zygote.encode_request(list(argv), "/", env, RL)
    assert request is not None
    return request


@pytest.fixture(scope="module")
def asan_zygote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[czygote.CZygote]:
    """zygote.c with AddressSanitizer and UBSan, every report fatal (exit 1, on stderr)."""
    if shutil.which("cc") is None:
        pytest.skip("needs a C compiler (cc)")
    out = tmp_path_factory.mktemp("asan") / "zygote"
    cmd = ["cc", "-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
           f"-DMAX_REQUEST_BYTES={MAX}", "-o", str(out), str(czygote.SOURCE)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"no sanitizer build here: {done.stderr[-300:]!r}")
    zyg = czygote.CZygote(czygote.seal(out.read_bytes()))
    yield zyg
    zyg.close()


BIG_BLOCKS = str((1 << 64) // 1024).encode()  # times 1024 bytes: 2**64
TOO_BIG = str(10 * (1 << 64)).encode()
MALFORMED = {
    "empty": b"",
    "no_fields_nul_only": b"\0",
    "only_nuls": b"\0" * 200,
    "every_field_empty_up_to_the_cap": b"\0" * MAX,
    "last_nul_missing": valid()[:-1],  # "tru" or "true" without its end: never run
    "cut_in_the_env": valid(env={**ENV, "LONG": "x" * 100})[:40],
    "k_beyond_the_fields": fields(b"/", b"/usr/bin", b"5", b"c", b"0", b"0"),
    "k_huge": fields(b"/", b"/usr/bin", b"99999999999999999999999", b"c", b"0", b"0", b"0", b"t"),
    "k_negative": fields(b"/", b"/usr/bin", b"-1", b"0", b"true"),
    "k_not_a_number": fields(b"/", b"/usr/bin", b"0x1", b"0", b"true"),
    "n_beyond_the_fields": fields(b"/", b"/usr/bin", b"0", b"40", b"PATH=/usr/bin", b"true"),
    "n_leaves_no_argv": fields(b"/", b"/usr/bin", b"0", b"1", b"PATH=/usr/bin"),
    "n_huge": fields(b"/", b"/usr/bin", b"0", b"18446744073709551617", b"true"),
    "no_count_of_env": fields(b"/", b"/usr/bin", b"0"),
    "ulimit_flag_unknown": fields(b"/", b"/usr/bin", b"1", b"x", b"0", b"0", b"0", b"true"),
    "ulimit_flag_two_letters": fields(b"/", b"/usr/bin", b"1", b"cc", b"0", b"0", b"0", b"true"),
    "ulimit_flag_empty": fields(b"/", b"/usr/bin", b"1", b"", b"0", b"0", b"0", b"true"),
    "limit_overflows_in_units": fields(b"/", b"/", b"1", b"f", BIG_BLOCKS, b"0", b"0", b"true"),
    "limit_overflows_64_bits": fields(b"/", b"/", b"1", b"c", b"0", TOO_BIG, b"0", b"true"),
    "limit_not_a_number": fields(b"/", b"/usr/bin", b"1", b"c", b"+0", b"0", b"0", b"true"),
    "soft_above_hard": fields(b"/", b"/usr/bin", b"1", b"c", b"2", b"1", b"0", b"true"),
    "env_entry_without_equals": fields(b"/", b"/usr/bin", b"0", b"1", b"NOEQUALS", b"true"),
    "env_entry_without_name": fields(b"/", b"/usr/bin", b"0", b"1", b"=x", b"true"),
    "cwd_empty": fields(b"", b"/usr/bin", b"0", b"0", b"true"),
    "program_empty": fields(b"/", b"/usr/bin", b"0", b"0", b""),
}


@needs_cc
@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_request_is_refused_with_x_and_nothing_out_of_bounds(
    asan_zygote: czygote.CZygote, name: str
) -> None:
    assert czygote.run_once(asan_zygote, MALFORMED[name]) == (127, b"RX", b"", b"")


def request_of_size(size: int, then: bytes = b"") -> bytes:
    """A valid request of exactly ``size`` bytes (padded in an env value), then ``then``."""
    head, tail = fields(b"/", b"/usr/bin", b"0", b"1") + b"PAD=", fields(b"", b"true")
    return head + b"p" * (size - len(head) - len(tail)) + tail + then


@needs_cc
def test_a_request_above_the_cap_is_refused_even_when_its_first_bytes_are_valid(
    asan_zygote: czygote.CZygote,
) -> None:
    # Its first MAX + 1 bytes are a whole request: only the cap refuses it.
    request = request_of_size(MAX + 1, b"extra-argument\0")
    assert czygote.run_once(asan_zygote, request) == (127, b"RX", b"", b"")
    assert czygote.run_once(asan_zygote, request_of_size(MAX)) == (0, b"R", b"", b"")


@needs_cc
def test_the_binary_is_sealed_even_against_root(tmp_path: Path) -> None:
    zyg = czygote.load(tmp_path)
    try:
        assert fcntl.fcntl(zyg.fd, fcntl.F_GET_SEALS) == czygote.SEALS
        assert os.fstat(zyg.fd).st_mode & 0o777 == 0o555
        reopened = os.open(f"/proc/self/fd/{zyg.fd}", os.O_RDWR)  # root passes the mode
        try:
            for attempt in (
                lambda: os.pwrite(reopened, b"\xcc", 0),
                lambda: os.ftruncate(reopened, 10),
                lambda: os.ftruncate(reopened, 10 << 20),
                lambda: fcntl.fcntl(reopened, fcntl.F_ADD_SEALS, 0),
            ):
                with pytest.raises(PermissionError):
                    attempt()
        finally:
            os.close(reopened)
    finally:
        zyg.close()


@pytest.fixture
async def c_pool() -> AsyncIterator[LocalRuntime]:
    async with make_runtime(
        sandbox_pool_size=1, max_workspace_bytes=EPHEMERAL_DISK, sandbox_zygote="c"
    ) as rt:
        await rt.pool.wait_full()
        yield rt


# Every fd the program holds, and every fd of every process it can see (bwrap's pid 1), by
# what it points to; then an attempt to reopen each fd number the zygote was given.
SNOOP = r"""
import os, sys
mine = sorted(os.listdir("/proc/self/fd"))
seen = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            seen.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass
reopened = []
for n in sys.argv[1:]:
    for mode in (os.O_RDONLY, os.O_WRONLY):
        try:
            os.close(os.open(f"/proc/self/fd/{n}", mode))
            reopened.append((n, mode))
        except OSError:
            pass
print(repr((mine, seen, reopened)))
"""


@requires_sandbox
@needs_cc
async def test_the_program_holds_no_zygote_fd_and_cannot_reopen_the_binary(
    c_pool: LocalRuntime,
) -> None:
    binary = c_pool.zygotes.current
    assert binary is not None
    async with c_pool.ephemeral({}) as sb:
        assert isinstance(sb, LocalSandbox) and sb.warm is not None
        zygote_pid = max(sb.warm.cgroup.pids())  # bwrap, its pid 1, the zygote
        cmdline = Path(f"/proc/{zygote_pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[0] == f"/proc/self/fd/{binary.fd}".encode()
        given = [str(binary.fd), *(a.decode() for a in cmdline[1:4])]
        r = await sb.exec(["python3", "-c", SNOOP, *given])
        assert sb.pooled_execs == 1
    assert r.exit_code == 0, r
    mine, seen, reopened = ast.literal_eval(r.stdout.decode())
    assert mine == ["0", "1", "2", "3"]  # 3: the listing's own
    assert not [s for s in seen if "zygote" in s]
    assert reopened == []


async def exec_with_request(
    rt: LocalRuntime, monkeypatch: pytest.MonkeyPatch, request: bytes
) -> SandboxError:
    """The pooled exec of ``true``, its zygote released with ``request`` instead."""
    monkeypatch.setattr(sandbox_module, "encode_request", lambda *a: request)
    async with rt.ephemeral({}) as sb:
        assert isinstance(sb, LocalSandbox) and sb.warm is not None
        with pytest.raises(SandboxError) as e:
            await sb.exec(["true"])
        assert sb.pooled_execs == 1 and os.listdir(sb.workspace) == []
    return e.value


@requires_sandbox
@needs_cc
async def test_a_request_cannot_raise_the_pooled_rlimits(
    c_pool: LocalRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pooled bwrap's NOFILE is 4096 hard (zygote.POOL_RLIMITS): above it, refused.
    env = {**ENV, "PWD": "/workspace"}
    nofile = [(resource.RLIMIT_NOFILE, (4096, 1 << 20))]
    request = zygote.encode_request(["/usr/bin/true"], "/workspace", env, nofile)
    assert request is not None
    e = await exec_with_request(c_pool, monkeypatch, request)
    assert e.reason == "exec_failed" and "zygote: cannot" in e.log_message


@requires_sandbox
@needs_cc
@pytest.mark.parametrize("name", ["last_nul_missing", "k_beyond_the_fields", "n_huge"])
async def test_a_malformed_request_in_a_sandbox_fails_as_exec_failed(
    c_pool: LocalRuntime, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    e = await exec_with_request(c_pool, monkeypatch, MALFORMED[name])
    assert e.reason == "exec_failed"
