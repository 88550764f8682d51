"""The zygote's exec (sandbox/local/zygote.py, the bash script and the C program zygote.c: each
pooled test runs on both) gives the program exactly what bwrap would: the
same environ bytes in the same order, rlimits, cwd and argv bytes, fds; and nothing in a request
is ever interpreted by the zygote's shell. Each test compares a pooled first exec against the
normal path (a fresh bwrap) and, where it can, against the bytes the request asked for.

Checked to fail against mutated zygote scripts: ``env`` without ``-i`` (environ tests), bash's own
``export`` + ``exec`` instead of env(1) (SHLVL, order), the request memfd left open (fds), ``mapfile``
split on newlines (odd bytes, environ, large request), ``cd`` on an unquoted field (odd cwd),
no soft ``ulimit`` (rlimits); the C zygote's counterparts are in
tests/security/test_czygote_attacks.py."""

# ruff: noqa: F811 (pytest fixtures imported from conftest_sandbox, then requested by name)
from __future__ import annotations

import ast
import os
import resource
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from coolcoding.sandbox.base import ExecLimits, SandboxError
from coolcoding.sandbox.local import bwrap, czygote, zygote
from coolcoding.sandbox.local.runtime import LocalRuntime
from coolcoding.sandbox.local.sandbox import LocalSandbox, rlimits_for
from tests.integration.conftest_sandbox import (  # noqa: F401 (fixtures)
    EPHEMERAL_DISK,
    make_runtime,
    plain_runtime,
    requires_sandbox,
)

pytestmark = [pytest.mark.sandbox, requires_sandbox]

# Names a shell would expand, split, glob or read as options; bytes that are not UTF-8.
ODD = [
    "a b",
    "line\nbreak",
    "-leading",
    "--",
    "",
    "ü€😀",
    "$(touch /workspace/pwned)",
    "`touch /workspace/pwned`",
    "*",
    "\\",
    "'\"",
    "tab\there",
    "\r\x01\x7f",
    os.fsdecode(b"\xff\xfe not utf-8"),
]
ODD_DIR = "d ü $(touch pwned)/-x\nnl/`id`*"
SHOW = (
    "import os; r = lambda p: open(p, 'rb').read(); print(repr((r('/proc/self/cmdline'), "
    "os.getcwdb(), r('/proc/self/environ'), sorted(os.listdir('/proc/self/fd')))))"
)


@pytest.fixture(params=["c", "bash"])
async def pooled_runtime(request: pytest.FixtureRequest) -> AsyncIterator[LocalRuntime]:
    """conftest_sandbox's pool of 2, its zygotes the C program or the bash script."""
    kind = request.param
    async with make_runtime(
        sandbox_pool_size=2, max_workspace_bytes=EPHEMERAL_DISK, sandbox_zygote=kind
    ) as rt:
        await rt.pool.wait_full()
        assert (rt.zygotes.current is not None) == (kind == "c")
        yield rt


async def run_first(
    rt: LocalRuntime, argv: list[str], *, pooled: bool, files: dict[str, bytes] | None = None,
    **kw: object,
) -> tuple[bytes, bytes, list[str]]:  # fmt: skip
    """stdout, stderr and the workspace listing of ``argv`` as a fresh sandbox's first exec."""
    if pooled:
        await rt.pool.wait_full()
    async with rt.ephemeral(files or {}, memory_mb=256, pids=64) as sb:
        assert isinstance(sb, LocalSandbox)
        assert (sb.warm is not None) == pooled
        r = await sb.exec(argv, **kw)  # type: ignore[arg-type]
        assert sb.pooled_execs == int(pooled), r
        listing = sorted(os.listdir(sb.workspace))
    assert r.exit_code == 0, r
    return r.stdout, r.stderr, listing


def expected_environ(env: dict[str, str], cwd: str) -> bytes:
    """What bwrap gives the program: the sandbox's env in order, PWD set to the cwd in place
    (appended when absent)."""
    full = bwrap.sandbox_env(env)
    full["PWD"] = cwd
    return b"".join(os.fsencode(f"{k}={v}") + b"\0" for k, v in full.items())


async def test_environ_is_byte_identical_to_the_request_in_order(
    plain_runtime: LocalRuntime, pooled_runtime: LocalRuntime
) -> None:
    # Names bash treats specially (SHLVL, _, BASH_ENV, LC_ALL of the zygote itself, ...) and
    # values with every odd byte: none may be added, dropped, reordered or rewritten.
    env = {"ZZZ": "last?", "SHLVL": "7", "_": "/x", "BASH_ENV": "/workspace/evil.sh",
           "IFS": "x", "LANG": "C.UTF-8", "AAA": "a b\nc", "ODD": os.fsdecode(b"\xff$(id)"),
           "PATH": bwrap.SANDBOX_PATH, "EMPTY": "", "EQ": "a=b=c"}  # fmt: skip
    argv = ["/usr/bin/cat", "/proc/self/environ"]
    files = {"evil.sh": b"touch /workspace/pwned\n"}
    normal, _, _ = await run_first(plain_runtime, argv, pooled=False, files=files, env=env)
    warm, _, listing = await run_first(pooled_runtime, argv, pooled=True, files=files, env=env)
    assert warm == normal == expected_environ(env, "/workspace")
    assert b"LC_ALL" not in warm and listing == ["evil.sh"]


async def test_environ_without_pwd_or_with_only_path_is_exact(
    plain_runtime: LocalRuntime, pooled_runtime: LocalRuntime
) -> None:
    argv = ["/usr/bin/cat", "/proc/self/environ"]
    normal, _, _ = await run_first(plain_runtime, argv, pooled=False, env={"PWD": "/nope"})
    warm, _, _ = await run_first(pooled_runtime, argv, pooled=True, env={"PWD": "/nope"})
    assert warm == normal == expected_environ({"PWD": "x"}, "/workspace")
    assert b"SHLVL" not in warm and b"\0_=" not in warm and b"OLDPWD" not in warm


async def test_argv_cwd_and_fds_with_odd_bytes_are_passed_verbatim(
    plain_runtime: LocalRuntime, pooled_runtime: LocalRuntime
) -> None:
    argv = ["python3", "-c", SHOW, *ODD]
    cwd = f"/workspace/{ODD_DIR}"
    files = {f"{ODD_DIR}/f": b""}
    normal, nerr, _ = await run_first(plain_runtime, argv, pooled=False, files=files, cwd=cwd)
    warm, werr, listing = await run_first(pooled_runtime, argv, pooled=True, files=files, cwd=cwd)
    cmdline, wcwd, environ, fds = ast.literal_eval(warm.decode())
    assert cmdline == b"".join(os.fsencode(a) + b"\0" for a in ["python3", "-c", SHOW, *ODD])
    assert wcwd == os.fsencode(cwd) and environ == expected_environ({}, cwd)
    assert fds == [
        "0",
        "1",
        "2",
        "3",
    ]  # stdin, stdout, stderr, and the listing's own fd: no zygote fd
    assert warm == normal and werr == nerr == b""
    assert "pwned" not in listing and listing == [ODD_DIR.split("/")[0]]


async def test_rlimits_are_the_normal_paths(
    plain_runtime: LocalRuntime, pooled_runtime: LocalRuntime
) -> None:
    argv = ["cat", "/proc/self/limits"]
    limits = ExecLimits(cpu_s=3, file_size_bytes=5 << 20, pids=20)
    normal, _, _ = await run_first(plain_runtime, argv, pooled=False, limits=limits)
    warm, _, _ = await run_first(pooled_runtime, argv, pooled=True, limits=limits)
    assert warm == normal
    lines = {line[:26].strip(): line[26:].split()[:2] for line in warm.decode().splitlines()}
    assert lines["Max cpu time"] == ["3", "4"]  # soft, hard (the hard one kills: SIGKILL)
    assert lines["Max file size"] == [str(5 << 20)] * 2
    assert lines["Max core file size"] == ["0", "0"]
    assert lines["Max open files"] == ["4096", "4096"]


@pytest.mark.parametrize(
    "kw",
    [
        {"argv": ["no-such-program"]},
        {"argv": ["/workspace/not-executable"]},
        {"argv": ["/workspace"]},  # a directory
        {"argv": ["-x"]},  # would be an option to type/env if not after "--"
        {"argv": ["true"], "cwd": "/workspace/not-executable"},  # a file, not a directory
        {"argv": ["true"], "cwd": "/workspace/$(touch pwned)"},
    ],
)
async def test_what_cannot_run_fails_as_exec_failed_on_both_paths(
    plain_runtime: LocalRuntime, pooled_runtime: LocalRuntime, kw: dict[str, object]
) -> None:
    for rt, pooled in ((plain_runtime, False), (pooled_runtime, True)):
        if pooled:
            await rt.pool.wait_full()
        async with rt.ephemeral({"not-executable": b"echo ran\n"}) as sb:
            assert isinstance(sb, LocalSandbox)
            with pytest.raises(SandboxError) as e:
                await sb.exec(**kw)  # type: ignore[arg-type]
            assert e.value.reason == "exec_failed"
            assert sb.pooled_execs == int(pooled)
            assert sorted(os.listdir(sb.workspace)) == ["not-executable"]


async def test_a_large_request_and_stdin_with_nuls_and_the_release_byte(
    plain_runtime: LocalRuntime, pooled_runtime: LocalRuntime
) -> None:
    # A request far above the few bytes bash used to read one by one, below the cap; stdin
    # with NULs and the release byte itself: the two memfds never mix.
    env = {f"V{i}": "x" * 400 for i in range(100)}
    stdin = zygote.RELEASE + b"\0\0data\0" + zygote.RELEASE
    argv = ["sh", "-c", "cat; cat /proc/self/environ | wc -c"]
    normal, _, _ = await run_first(plain_runtime, argv, pooled=False, env=env, stdin=stdin)
    warm, _, _ = await run_first(pooled_runtime, argv, pooled=True, env=env, stdin=stdin)
    assert warm == normal and warm.startswith(stdin)
    assert int(warm[len(stdin) :]) == len(expected_environ(env, "/workspace"))


async def test_a_request_above_the_cap_takes_the_normal_path(
    pooled_runtime: LocalRuntime,
) -> None:
    await pooled_runtime.pool.wait_full()
    async with pooled_runtime.ephemeral({}) as sb:
        assert isinstance(sb, LocalSandbox) and sb.warm is not None
        big = "y" * zygote.MAX_REQUEST_BYTES
        r = await sb.exec(["sh", "-c", "echo ${#BIG}"], env={"BIG": big})
        assert r.stdout == f"{len(big)}\n".encode() and sb.pooled_execs == 0


def test_the_zygote_closes_every_fd_it_was_given_before_the_exec() -> None:
    """The request memfd, the release pipe and the control fd are the zygote's alone."""
    script = zygote.ZYGOTE_SCRIPT
    assert "exec {go}<&- {ctl}>&- {req}<&-\n" in script
    assert script.index("{req}<&-") < script.index("exec /usr/bin/env -i -- ")


async def test_a_program_found_only_as_a_non_executable_file_is_exec_failed_like_bwrap(
    plain_runtime: LocalRuntime,
) -> None:
    """``type -P`` accepts a non-executable file found in PATH; the exec then fails. bwrap
    reports ``exec_failed``, and so does the C zygote (bash's env(1) would exit 126)."""
    kw: dict[str, object] = {"argv": ["not-executable"], "env": {"PATH": "/workspace"}}
    async with make_runtime(
        sandbox_pool_size=1, max_workspace_bytes=EPHEMERAL_DISK, sandbox_zygote="c"
    ) as c_runtime:
        for rt, pooled in ((plain_runtime, False), (c_runtime, True)):
            if pooled:
                await rt.pool.wait_full()
            async with rt.ephemeral({"not-executable": b"echo ran\n"}) as sb:
                assert isinstance(sb, LocalSandbox)
                with pytest.raises(SandboxError) as e:
                    await sb.exec(**kw)  # type: ignore[arg-type]
                assert e.value.reason == "exec_failed" and sb.pooled_execs == int(pooled)


async def test_auto_turns_to_bash_when_the_c_zygote_dies_in_the_sandbox(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A C zygote that passes its host check but cannot start under bwrap.
    monkeypatch.setattr(czygote, "self_test", lambda zyg: None)
    monkeypatch.setattr(
        czygote.CZygote, "command", lambda self, *fds: ["/nonexistent/zygote", *map(str, fds)]
    )
    async with make_runtime(sandbox_pool_size=1, max_workspace_bytes=EPHEMERAL_DISK) as rt:
        await rt.pool.wait_full()
        assert rt.zygotes.mode == "auto" and rt.zygotes.current is None
        assert "the C zygote failed in a sandbox" in caplog.text
        async with rt.ephemeral({}) as sb:
            assert isinstance(sb, LocalSandbox) and sb.warm is not None
            r = await sb.exec(["sh", "-c", "echo ok"])
            assert r.stdout == b"ok\n" and sb.pooled_execs == 1


@pytest.fixture(scope="module")
def lookup_dir() -> Iterator[Path]:
    """ex (executable), noexec (a file without x), dir/, d1/both (no x) and d2/both (x)."""
    base = Path(tempfile.mkdtemp(prefix="cc-zyg-lookup-", dir="/tmp"))
    for d in (base, base / "dir", base / "d1", base / "d2"):
        d.mkdir(exist_ok=True)
        d.chmod(0o755)
    for path, mode in (("ex", 0o755), ("noexec", 0o644), ("d1/both", 0o644), ("d2/both", 0o755)):
        shutil.copy("/bin/true", base / path)
        (base / path).chmod(mode)
    yield base
    shutil.rmtree(base)


RAN, REFUSED = (0, b"R"), (127, b"RX")
# (PATH, cwd under the lookup dir, program): bash's ``type -P`` and execvp on both zygotes.
LOOKUPS = [
    ("{d}", ".", "ex", RAN),
    ("{d}", ".", "missing", REFUSED),
    ("{d}", ".", "dir", REFUSED),  # a directory in PATH is skipped
    ("/nonexistent:{d}/d1:{d}/d2", ".", "both", RAN),  # an executable one wins
    ("", ".", "ex", RAN),  # an empty PATH: the cwd
    ("", "dir", "ex", REFUSED),
    ("/nonexistent:", ".", "ex", RAN),  # a trailing empty element: the cwd
    (":/nonexistent", ".", "ex", RAN),  # a leading one
    ("/nonexistent::/x", ".", "ex", RAN),
    ("/nonexistent", ".", "ex", REFUSED),
    ("/nonexistent", ".", "./ex", RAN),  # a slash: that file, no PATH search
    ("/nonexistent", "dir", "../ex", RAN),
    ("{d}", ".", "./noexec", REFUSED),
    ("{d}", ".", "{d}/dir", REFUSED),
    ("{d}", ".", "ex/", REFUSED),
    ("{d}", ".", "", REFUSED),
    ("{d}", "missing", "ex", REFUSED),  # no such cwd
    ("{d}", "ex", "ex", REFUSED),  # a file as the cwd
]


@pytest.mark.skipif(os.geteuid() != 0, reason="runs the zygotes as nobody (root's eaccess)")
@pytest.mark.parametrize(("path", "cwd", "program", "want"), LOOKUPS)
@pytest.mark.parametrize("kind", ["c", "bash"])
def test_the_program_lookup_is_bashs_type_p_on_both_zygotes(
    lookup_dir: Path, tmp_path_factory: pytest.TempPathFactory,
    kind: str, path: str, cwd: str, program: str, want: tuple[int, bytes],
) -> None:  # fmt: skip
    zyg = czygote.load(tmp_path_factory.getbasetemp() / "zygote-cache") if kind == "c" else None
    d = str(lookup_dir)
    env = {"PATH": path.format(d=d)}
    request = zygote.encode_request([program.format(d=d)], f"{d}/{cwd}", env, [])
    assert request is not None
    try:
        got = czygote.run_once(zyg, request, user=65534)
    finally:
        if zyg is not None:
            zyg.close()
    assert got[:2] == want, got


@pytest.mark.skipif(os.geteuid() != 0, reason="runs the zygotes as nobody (root's eaccess)")
def test_a_non_executable_file_in_path_is_the_one_difference(
    lookup_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """``type -P`` accepts it; the exec fails: X from C (bwrap's exec_failed), env(1)'s 126."""
    d = str(lookup_dir)
    request = zygote.encode_request(["noexec"], d, {"PATH": d}, [])
    assert request is not None
    zyg = czygote.load(tmp_path_factory.getbasetemp() / "zygote-cache")
    try:
        assert czygote.run_once(zyg, request, user=65534)[:2] == REFUSED
    finally:
        zyg.close()
    code, control, _, err = czygote.run_once(None, request, user=65534)
    assert (code, control) == (126, b"R") and b"Permission denied" in err


@pytest.mark.skipif(os.geteuid() != 0, reason="runs the zygotes as nobody (no CAP_SYS_RESOURCE)")
def test_rlimits_set_lowered_and_refused_alike_on_both_zygotes(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    zyg = czygote.load(tmp_path_factory.getbasetemp() / "zygote-cache")
    hard_nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    env = {"PATH": bwrap.SANDBOX_PATH}

    def both(rlimits: list[tuple[int, tuple[int, int]]]) -> list[tuple[int, bytes, bytes]]:
        request = zygote.encode_request(["cat", "/proc/self/limits"], "/", env, rlimits)
        assert request is not None
        return [czygote.run_once(z, request, user=65534)[:3] for z in (zyg, None)]

    try:
        lowered = both(rlimits_for(nproc=100, fsize=5 << 20, cpu_s=3, nofile=64))
        assert lowered[0] == lowered[1] and lowered[0][:2] == RAN
        assert b"Max open files            64                   64" in lowered[0][2]
        soft_above_hard = both([(resource.RLIMIT_NOFILE, (64, 32))])
        raised = both([(resource.RLIMIT_NOFILE, (64, hard_nofile + 1))])
        for got in (*soft_above_hard, *raised):
            assert got[:2] == REFUSED
    finally:
        zyg.close()
