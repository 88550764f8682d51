"""Building, caching and loading the C zygote (sandbox/local/czygote.py), and the fallback to
bash when it cannot be built or trusted. Needs a C compiler (skipped without one)."""

from __future__ import annotations

import logging
import os
import shutil
import struct
import subprocess
from pathlib import Path
from unittest.mock import Mock

import pytest

from coolcoding.sandbox.base import SandboxError
from coolcoding.sandbox.local import czygote
from coolcoding.sandbox.local.environment import HostEnvironment
from coolcoding.sandbox.local.runtime import LocalRuntime
from coolcoding.settings import Settings

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler (cc)")


def has_interpreter(elf: bytes) -> bool:
    """A PT_INTERP program header: a dynamically linked executable."""
    (phoff,) = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    return any(struct.unpack_from("<I", elf, phoff + i * phentsize)[0] == 3 for i in range(phnum))


def count_compiles(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    outs: list[Path] = []
    real = czygote._compile

    def counting(cc: str, src: Path, out: Path) -> None:
        outs.append(out)
        real(cc, src, out)

    monkeypatch.setattr(czygote, "_compile", counting)
    return outs


def test_a_build_is_cached_under_the_sha_of_source_and_flags_and_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiles = count_compiles(monkeypatch)
    data = czygote.build(tmp_path)
    key = czygote.cache_key(czygote.SOURCE.read_bytes())
    assert sorted(os.listdir(tmp_path)) == [key]
    assert (tmp_path / key / czygote.BINARY).read_bytes() == data
    assert len(compiles) == 1 and not has_interpreter(data)  # static
    zyg = czygote.load(tmp_path)  # a cache hit, self-tested
    try:
        assert len(compiles) == 1
        assert os.readlink(f"/proc/self/fd/{zyg.fd}").startswith("/memfd:coolcoding-zygote")
    finally:
        zyg.close()
    assert czygote.cache_key(b"other source") != key


def test_a_corrupt_cached_binary_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = czygote.build(tmp_path)
    binary = tmp_path / czygote.cache_key(czygote.SOURCE.read_bytes()) / czygote.BINARY
    binary.write_bytes(good[:1000])  # truncated, e.g. a disk error
    compiles = count_compiles(monkeypatch)
    assert czygote.build(tmp_path) == binary.read_bytes()
    assert len(compiles) == 1 and binary.read_bytes() != good[:1000]
    czygote.load(tmp_path).close()


def test_a_stale_build_dir_is_removed_by_the_next_load(tmp_path: Path) -> None:
    czygote.build(tmp_path)
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f"{czygote.BUILD_PREFIX}{dead.pid}-deadbeef"
    live = tmp_path / f"{czygote.BUILD_PREFIX}{os.getpid()}-cafe0000"  # a build in progress
    ancient = tmp_path / f"{czygote.BUILD_PREFIX}{os.getpid()}-01d01d00"  # our pid, reused
    for d in (stale, live, ancient):
        d.mkdir()
        (d / czygote.BINARY).write_bytes(b"half")
    os.utime(ancient, (0, 0))
    czygote.build(tmp_path)  # a cache hit
    assert not stale.exists() and live.exists() and not ancient.exists()


def test_without_a_compiler_auto_falls_back_to_bash_and_c_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with caplog.at_level(logging.WARNING):
        assert czygote.ZygoteChoice("auto", tmp_path / "cache").resolve() is None
    assert "no C compiler (cc) in PATH" in caplog.text
    with pytest.raises(czygote.ZygoteUnavailable, match="no C compiler"):
        czygote.ZygoteChoice("c", tmp_path / "cache").resolve()
    assert czygote.ZygoteChoice("bash", tmp_path / "cache").resolve() is None
    assert not (tmp_path / "cache").exists()


def test_a_binary_failing_its_self_test_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Writes R, then exits 0 at once whatever the request: it never runs the program.
    monkeypatch.setattr(czygote, "build", lambda root: Path("/bin/true").read_bytes())
    with caplog.at_level(logging.WARNING):
        assert czygote.ZygoteChoice("auto", tmp_path).resolve() is None
    assert "self-test" in caplog.text


def test_a_source_that_does_not_compile_is_reported(tmp_path: Path) -> None:
    with pytest.raises(czygote.ZygoteUnavailable, match="failed"):
        czygote.build(tmp_path, b"int main(void) { return x; }\n")
    assert [p for p in os.listdir(tmp_path) if p.startswith(czygote.BUILD_PREFIX)] == []


def test_without_a_static_libc_the_build_is_dynamic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    real_cc = shutil.which("cc")
    fake = bindir / "cc"
    fake.write_text(
        f'#!/bin/sh\nfor a; do [ "$a" = -static ] && exit 1; done\nexec {real_cc} "$@"\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    data = czygote.build(tmp_path / "cache")
    assert has_interpreter(data)
    czygote.load(tmp_path / "cache").close()


def test_the_compilers_temporary_files_go_in_the_build_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compiler killed midway leaves its temporary files (gcc's ccXXXXXX.s/.o) in its
    TMPDIR: the build dir, which the next start removes (clean_stale_builds), not /tmp."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    seen = tmp_path / "tmpdir"
    fake = bindir / "cc"
    fake.write_text(f'#!/bin/sh\necho "$TMPDIR" >> {seen}\nexec {shutil.which("cc")} "$@"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("TMPDIR", "/tmp")
    czygote.build(tmp_path / "cache")
    dirs = seen.read_text().split()
    assert dirs and all(
        Path(d).parent == tmp_path / "cache" and Path(d).name.startswith(czygote.BUILD_PREFIX)
        for d in dirs
    ), dirs


def test_sandbox_zygote_c_without_a_compiler_fails_the_runtime_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    settings = Settings(data_dir=tmp_path, environment="test", sandbox_zygote="c")
    with pytest.raises(SandboxError) as e:
        LocalRuntime(settings, host=Mock(spec=HostEnvironment))
    assert e.value.reason == "zygote_unavailable"
    assert "no C compiler" in e.value.log_message
