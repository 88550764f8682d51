"""The lock files of ``serve`` / ``serve --workers`` (modeswitch.py): a live holder (another
process) is seen, a dead one's lock is free, and each mode reclaims only the other mode's
identities whose locks it could take."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from coolcoding import modeswitch
from coolcoding.settings import Settings

_HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""


class Holder:
    """Another process holding ``path`` locked until it is killed."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline() == b"held\n"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


@pytest.fixture
def holders() -> Iterator[list[Holder]]:
    made: list[Holder] = []
    yield made
    for h in made:
        h.kill()


def _hold(holders: list[Holder], path: Path) -> Holder:
    h = Holder(path)
    holders.append(h)
    return h


@pytest.fixture
def reclaimed(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The dirs the mode switch would reclaim (the reclaim itself is the replicas test's)."""
    seen: list[Path] = []
    monkeypatch.setattr(modeswitch, "_run", lambda _settings, dirs: seen.extend(dirs))
    return seen


def _settings(data: Path) -> Settings:
    return Settings(data_dir=data, environment="test")


def test_a_live_holder_is_seen_and_a_sigkilled_ones_lock_is_free(
    tmp_path: Path, holders: list[Holder]
) -> None:
    lock = tmp_path / "serve.lock"
    assert not modeswitch.is_live(lock)  # no file: nobody
    h = _hold(holders, lock)
    assert modeswitch.is_live(lock)
    assert modeswitch.try_lock(lock) is None
    assert modeswitch.wait_lock(lock, timeout_s=0.2) is None
    h.kill()
    assert not modeswitch.is_live(lock)
    fd = modeswitch.try_lock(lock)
    assert fd is not None
    try:
        assert modeswitch.is_live(lock)  # held by this process now (another open file)
    finally:
        os.close(fd)


def test_the_lock_fd_is_not_inherited_by_an_exec(tmp_path: Path) -> None:
    """A sandbox (or helper) started by the server must not keep its lock after it died."""
    lock = tmp_path / "serve.lock"
    fd = modeswitch.try_lock(lock)
    assert fd is not None
    child = subprocess.Popen(["sleep", "30"], close_fds=False)
    try:
        os.close(fd)
        assert not modeswitch.is_live(lock)
    finally:
        child.kill()
        child.wait()


def test_serve_is_refused_while_another_serve_holds_its_lock(
    tmp_path: Path, holders: list[Holder], monkeypatch: pytest.MonkeyPatch, reclaimed: list[Path]
) -> None:
    monkeypatch.setattr(modeswitch, "LOCK_WAIT_S", 0.2)
    h = _hold(holders, tmp_path / modeswitch.SERVE_LOCK)
    assert modeswitch.enter_serve(_settings(tmp_path)) is None
    h.kill()
    fd = modeswitch.enter_serve(_settings(tmp_path))
    assert fd is not None
    os.close(fd)


def test_serve_reclaims_the_dead_workers_only(
    tmp_path: Path, holders: list[Holder], reclaimed: list[Path]
) -> None:
    for k in range(3):
        (tmp_path / "workers" / str(k)).mkdir(parents=True)
    (tmp_path / "workers" / "notes").mkdir()  # not a worker's dir
    _hold(holders, tmp_path / "workers" / "1" / modeswitch.WORKER_LOCK)  # still stopping
    fd = modeswitch.enter_serve(_settings(tmp_path))
    assert fd is not None
    os.close(fd)
    assert reclaimed == [tmp_path.resolve() / "workers" / "0", tmp_path.resolve() / "workers" / "2"]


def test_serve_reclaims_nothing_while_a_workers_supervisor_lives(
    tmp_path: Path, holders: list[Holder], reclaimed: list[Path]
) -> None:
    (tmp_path / "workers" / "0").mkdir(parents=True)
    sup = _hold(holders, tmp_path / "workers" / modeswitch.SUPERVISOR_LOCK)
    fd = modeswitch.enter_serve(_settings(tmp_path))
    assert fd is not None
    os.close(fd)
    assert reclaimed == []
    sup.kill()
    fd = modeswitch.enter_serve(_settings(tmp_path))
    assert fd is not None
    os.close(fd)
    assert reclaimed == [tmp_path.resolve() / "workers" / "0"]


def test_workers_reclaim_a_dead_serve_but_not_a_live_one(
    tmp_path: Path, holders: list[Holder], reclaimed: list[Path]
) -> None:
    serve = _hold(holders, tmp_path / modeswitch.SERVE_LOCK)
    modeswitch.reclaim_serve(_settings(tmp_path), tmp_path)
    assert reclaimed == []
    serve.kill()
    modeswitch.reclaim_serve(_settings(tmp_path), tmp_path)
    assert reclaimed == [tmp_path]
    assert not modeswitch.is_live(tmp_path / modeswitch.SERVE_LOCK)  # given back after it


def test_a_worker_waits_for_its_predecessors_lock(
    tmp_path: Path, holders: list[Holder], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(modeswitch, "LOCK_WAIT_S", 0.2)
    h = _hold(holders, tmp_path / modeswitch.WORKER_LOCK)
    assert modeswitch.enter_worker(tmp_path) is None
    h.kill()
    fd = modeswitch.enter_worker(tmp_path)
    assert fd is not None
    os.close(fd)


def test_reclaim_of_a_dir_without_a_server_id_does_nothing(tmp_path: Path) -> None:
    import asyncio

    assert asyncio.run(modeswitch.reclaim(_settings(tmp_path), tmp_path)) == 0
    assert not (tmp_path / "server-id").exists()  # not made by looking


def test_judge_workers_take_the_first_free_dir_and_serve_reclaims_only_dead_ones(
    tmp_path: Path, holders: list[Holder], reclaimed: list[Path]
) -> None:
    base = tmp_path.resolve() / modeswitch.JUDGE_WORKERS
    _hold(holders, base / "0" / modeswitch.WORKER_LOCK)  # a live judge worker
    own, fd = modeswitch.enter_judge_worker(_settings(tmp_path))
    try:
        assert own.data_dir == base / "1"
        assert own.effective_database_url == _settings(tmp_path).effective_database_url
        serve = modeswitch.enter_serve(_settings(tmp_path))
        assert serve is not None
        os.close(serve)
        assert reclaimed == []  # 0 and 1 live
    finally:
        os.close(fd)
    serve = modeswitch.enter_serve(_settings(tmp_path))
    assert serve is not None
    os.close(serve)
    assert reclaimed == [base / "1"]
