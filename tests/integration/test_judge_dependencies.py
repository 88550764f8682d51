"""Dependency caching (issue 10): a job's pinned packages are installed once, in a sandbox, into
a content-addressed read-only directory that later jobs share. Packages come from a local
wheelhouse built here (a wheel, an npm tarball): nothing leaves this machine."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from coolcoding.errors import InvalidInput
from coolcoding.execution.dependencies import cache_key, validate_dependencies
from coolcoding.execution.judge import Judge, JudgeJob, resolve_limits
from coolcoding.execution.verdicts import Verdict
from coolcoding.settings import Settings
from tests.integration.conftest_sandbox import requires_sandbox
from tests.integration.test_judge import running_judge

pytestmark = [pytest.mark.sandbox, requires_sandbox]


def make_wheel(house: Path, name: str, version: str, value: str) -> None:
    files = {
        f"{name}/__init__.py": f"VALUE = {value!r}\n",
        f"{name}-{version}.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        ),
        f"{name}-{version}.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = "".join(f"{p},,\n" for p in files) + f"{name}-{version}.dist-info/RECORD,,\n"
    files[f"{name}-{version}.dist-info/RECORD"] = record
    with zipfile.ZipFile(house / f"{name}-{version}-py3-none-any.whl", "w") as z:
        for path, text in files.items():
            z.writestr(path, text)


def make_npm_tarball(house: Path, name: str, version: str, value: str) -> None:
    files = {
        "package/package.json": json.dumps({"name": name, "version": version, "main": "index.js"}),
        "package/index.js": f"module.exports = {json.dumps(value)};\n",
    }
    with tarfile.open(house / f"{name}-{version}.tgz", "w:gz") as tf:
        for path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def judge() -> Iterator[Judge]:
    base = Path(tempfile.mkdtemp(prefix="cc-judge-deps-"))
    base.chmod(0o711)
    house = base / "wheelhouse"
    house.mkdir(mode=0o755)
    make_wheel(house, "ccdemo", "1.0", "forty-two")
    make_npm_tarball(house, "ccdemo", "1.0.0", "npm-forty-two")
    for p in house.iterdir():
        p.chmod(0o644)
    settings = Settings(environment="test", data_dir=base / "data",  # type: ignore[call-arg]
                        sandbox_cgroup_parent=f"cc-test-deps-{os.getpid()}",
                        exec_deps_wheelhouse=house)  # fmt: skip
    (base / "data").mkdir(mode=0o711)
    with running_judge(settings) as j:
        yield j
    for dirpath, _, _ in os.walk(base):
        os.chmod(dirpath, 0o700)  # the cache is read-only
    shutil.rmtree(base, ignore_errors=True)


def job(judge: Judge, language: str, source: str, deps: list[str]) -> JudgeJob:
    name = "main.py" if language == "python" else "main.js"
    return JudgeJob(language=language, files={name: source.encode()}, entry=name,
                    limits=resolve_limits({}, judge.settings),
                    dependencies=validate_dependencies(language, deps, judge.settings))  # fmt: skip


async def test_python_dependencies_are_installed_once_and_shared(judge: Judge) -> None:
    src = "import ccdemo; print(ccdemo.VALUE)\n"
    before = judge.deps.installs
    first = await judge.judge(job(judge, "python", src, ["ccdemo==1.0"]))
    assert first.verdict == Verdict.ACCEPTED, (first.message, first.compile_output, first.stderr)
    assert first.stdout == b"forty-two\n"
    second = await judge.judge(job(judge, "python", src, ["ccdemo==1.0"]))
    assert second.verdict == Verdict.ACCEPTED and second.stdout == b"forty-two\n"
    assert judge.deps.installs == before + 1  # the second job used the cache
    version = judge.languages.versions.get("python")
    cached = judge.deps.root / cache_key("python", version, ["ccdemo==1.0"])
    assert cached.is_dir() and os.stat(cached).st_uid == 0


async def test_the_cache_is_read_only_inside_the_sandbox(judge: Judge) -> None:
    src = (
        "import ccdemo, pathlib\n"
        "p = pathlib.Path(ccdemo.__file__)\n"
        "try:\n    p.write_text('VALUE = \"hacked\"')\nexcept OSError as e:\n    print(type(e).__name__)\n"
    )
    res = await judge.judge(job(judge, "python", src, ["ccdemo==1.0"]))
    assert res.stdout in (b"OSError\n", b"PermissionError\n"), (res.stdout, res.stderr)
    again = await judge.judge(job(judge, "python", "import ccdemo; print(ccdemo.VALUE)\n",
                                  ["ccdemo==1.0"]))  # fmt: skip
    assert again.stdout == b"forty-two\n"


async def test_an_unknown_package_is_a_compilation_error(judge: Judge) -> None:
    res = await judge.judge(job(judge, "python", "print(1)\n", ["no-such-package==9.9"]))
    assert res.verdict == Verdict.COMPILATION_ERROR, res
    assert res.compile_output is not None and "no-such-package" in res.compile_output


async def test_javascript_dependencies_from_an_npm_tarball(judge: Judge) -> None:
    src = "console.log(require('ccdemo'));\n"
    res = await judge.judge(job(judge, "javascript", src, ["ccdemo@1.0.0"]))
    assert res.verdict == Verdict.ACCEPTED, (res.message, res.compile_output, res.stderr)
    assert res.stdout == b"npm-forty-two\n"


@pytest.mark.parametrize(
    ("language", "deps", "code"),
    [
        ("python", ["requests"], "invalid_dependency"),  # not pinned
        ("python", ["requests>=2"], "invalid_dependency"),
        ("python", ["x==1; os.system('id')"], "invalid_dependency"),
        ("python", ["--index-url=http://evil==1"], "invalid_dependency"),  # an option
        ("javascript", ["left-pad"], "invalid_dependency"),
        ("javascript", ["file:../x@1"], "invalid_dependency"),
        ("c", ["zlib==1"], "dependencies_unsupported"),
        ("python", [f"p{i}==1" for i in range(21)], "too_many_dependencies"),
    ],
)
def test_bad_dependency_lists_are_refused(language: str, deps: list[str], code: str) -> None:
    with pytest.raises(InvalidInput) as err:
        validate_dependencies(language, deps, Settings(environment="test"))  # type: ignore[call-arg]
    assert err.value.code == code


@pytest.mark.parametrize("attack", ["absolute_symlink", "dotdot_path", "escaping_symlink"])
def test_an_install_result_pointing_outside_the_cache_is_refused(
    tmp_path: Path, attack: str
) -> None:
    """What leaves the install sandbox is untrusted (a package's setup.py or npm script made
    it): links or paths out of the set must not reach the host's file system."""
    from coolcoding.execution.dependencies import DependencyCache

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("./pkg/__init__.py")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"\n"))
        if attack == "dotdot_path":
            evil = tarfile.TarInfo("../../escaped")
            evil.size = 1
            tf.addfile(evil, io.BytesIO(b"x"))
        else:
            link = tarfile.TarInfo("./pkg/link")
            link.type = tarfile.SYMTYPE
            link.linkname = "/etc/shadow" if attack == "absolute_symlink" else "../../../etc"
            tf.addfile(link)
    cache = DependencyCache(tmp_path / "cache", None, Settings(environment="test"))  # type: ignore[call-arg]
    with pytest.raises(tarfile.TarError):
        cache._store(buf.getvalue(), tmp_path / "cache" / "key")
    assert not (tmp_path / "cache" / "key").exists()
    assert not (tmp_path / "escaped").exists()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []  # no half-written set left
