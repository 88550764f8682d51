"""The per-user pip wheelhouse (sandbox/pipcache.py): the host copies the wheels a session's pip
downloaded (pip's HTTP cache) or built (its wheels/ cache) into that user's own wheelhouse,
checking each on its side. A session owns its pip cache: links at every level, hard links,
wheels named for another package than they hold, oversized files and entries over the quota are
never promoted, an existing entry is never replaced, and another user's sessions never see it.
The real Debian pip fills the cache from an index on this host's loopback."""

from __future__ import annotations

import asyncio
import functools
import http.server
import io
import os
import shutil
import subprocess
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from coolcoding.db.engine import Database
from coolcoding.db.migrate import upgrade
from coolcoding.sandbox.base import Runtime
from coolcoding.sandbox.packages import package_env, shared_binds
from coolcoding.sandbox.pipcache import (
    SHARED_PIP_USER,
    http_body,
    promote,
    promote_from_sandbox,
    user_dir,
    user_key,
)
from coolcoding.services.accounts import AccountService
from coolcoding.services.events import EventBus
from coolcoding.services.ratelimit import RateLimiter
from coolcoding.services.sandboxes import SandboxManager
from coolcoding.services.sessions import SessionService
from tests.conftest import make_database, make_settings, register_user, start_live_server
from tests.package_archives import wheel_bytes

SYSTEM_PIP = "/usr/bin/python3"


def wheel(name: str, version: str, source: str, *, dist_name: str | None = None) -> bytes:
    """A pure-Python wheel; ``dist_name`` lets its metadata name another project."""
    return wheel_bytes(name, version, {f"{name}.py": source.encode()}, meta_name=dist_name)


GOOD = wheel("demo_pkg", "1.0", "VALUE = 'good'\n")
GOOD_NAME = "demo_pkg-1.0-py3-none-any.whl"
STORED = "demo_pkg-1.0-0-py3-none-any.whl"  # with build tag 0: pip prefers it to the index's


def built(cache: Path, name: str, data: bytes, sub: str = "aa/bb/cc/dd/rest") -> Path:
    """A wheel where pip's wheels/ cache keeps the wheels it built."""
    folder = cache / "wheels" / sub
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return folder / name


@pytest.fixture
def dirs(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    cache = tmp_path / "session" / ".cache" / "pip"
    cache.mkdir(parents=True)
    store = tmp_path / "store"
    store.mkdir()
    yield cache, store / "pip-users" / "7"


def test_a_built_wheel_is_promoted_once_and_read_only(dirs: tuple[Path, Path]) -> None:
    cache, dest = dirs
    built(cache, GOOD_NAME, GOOD)
    r = promote(cache, dest, quota_bytes=10**9)
    assert (r.promoted, r.rejected) == (1, 0)
    assert (dest / STORED).read_bytes() == GOOD
    assert (dest / STORED).stat().st_mode & 0o777 == 0o444
    assert promote(cache, dest, quota_bytes=10**9).already == 1


@pytest.mark.parametrize("level", ["kind", "middle", "file"])
def test_a_link_at_any_level_of_the_pip_cache_is_not_followed(
    dirs: tuple[Path, Path], tmp_path: Path, level: str
) -> None:
    """Links to a folder or wheel outside the session's cache (on the host, another user's):
    at the wheels/ folder, at a folder below it, at the wheel itself."""
    cache, dest = dirs
    outside = tmp_path / "outside"
    built(outside, GOOD_NAME, GOOD)
    if level == "kind":
        os.symlink(outside / "wheels", cache / "wheels")
    elif level == "middle":
        (cache / "wheels").mkdir()
        os.symlink(outside / "wheels" / "aa", cache / "wheels" / "aa")
    else:
        folder = cache / "wheels" / "aa"
        folder.mkdir(parents=True)
        os.symlink(outside / "wheels" / "aa/bb/cc/dd/rest" / GOOD_NAME, folder / GOOD_NAME)
    r = promote(cache, dest, quota_bytes=10**9)
    assert r.promoted == 0
    assert not (dest / STORED).exists()


def test_a_link_above_the_cache_in_the_sandbox_home_is_not_followed(tmp_path: Path) -> None:
    """promote_from_sandbox opens the home's .cache/pip one folder at a time (here through
    this process's own /proc/PID/root, the host's /)."""
    home = tmp_path / "home"
    home.mkdir()
    outside = tmp_path / "outside" / ".cache" / "pip"
    built(outside, GOOD_NAME, GOOD)
    os.symlink(outside.parent, home / ".cache")
    dest = tmp_path / "store" / "pip-users" / "7"
    (tmp_path / "store").mkdir()
    r = promote_from_sandbox(os.getpid(), str(home), dest, quota_bytes=10**9)
    assert r.promoted == 0 and not dest.exists()
    os.unlink(home / ".cache")
    shutil.move(outside.parent, home / ".cache")
    assert promote_from_sandbox(os.getpid(), str(home), dest, quota_bytes=10**9).promoted == 1


def test_a_hard_link_is_not_promoted(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    cache, dest = dirs
    elsewhere = tmp_path / GOOD_NAME
    elsewhere.write_bytes(GOOD)
    folder = cache / "wheels" / "aa"
    folder.mkdir(parents=True)
    os.link(elsewhere, folder / GOOD_NAME)
    assert promote(cache, dest, quota_bytes=10**9).rejected == 1
    assert not (dest / STORED).exists()


def test_a_wheel_named_for_another_package_is_not_promoted(dirs: tuple[Path, Path]) -> None:
    """``requests-2.31.0-py3-none-any.whl`` holding another project, or requests' name with a
    file changed after its RECORD was written: neither is promoted."""
    cache, dest = dirs
    evil = wheel("evilpkg", "2.31.0", "VALUE = 'POISONED'\n")
    built(cache, "requests-2.31.0-py3-none-any.whl", evil, "aa/x")
    tampered = wheel("requests", "2.31.0", "VALUE = 'harmless'\n", dist_name="requests")
    with zipfile.ZipFile(io.BytesIO(tampered)) as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    members["requests.py"] = b"VALUE = 'POISONED'\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for path, data in members.items():
            z.writestr(path, data)
    built(cache, "requests-2.31.0-py3-none-any.whl", buf.getvalue(), "bb/x")
    r = promote(cache, dest, quota_bytes=10**9)
    assert (r.promoted, r.rejected) == (0, 2)
    assert not dest.exists() or not os.listdir(dest)


def test_a_huge_file_and_what_exceeds_the_quota_stay_private(dirs: tuple[Path, Path]) -> None:
    cache, dest = dirs
    big = wheel("big_pkg", "1.0", "X = '" + "x" * 50000 + "'\n")
    built(cache, "big_pkg-1.0-py3-none-any.whl", big, "aa/x")
    r = promote(cache, dest, quota_bytes=10**9, max_blob_bytes=len(big) - 1)
    assert (r.promoted, r.rejected) == (0, 1)
    built(cache, GOOD_NAME, GOOD, "bb/x")
    # Room for one of the two only (the files are promoted in name order: big_pkg first).
    r = promote(cache, dest, quota_bytes=len(big) + 10)
    assert (r.promoted, r.rejected) == (1, 1)
    assert os.listdir(dest) == ["big_pkg-1.0-0-py3-none-any.whl"]


def test_an_entry_is_never_replaced(dirs: tuple[Path, Path]) -> None:
    cache, dest = dirs
    dest.parent.mkdir()
    dest.mkdir()
    first = wheel("demo_pkg", "1.0", "VALUE = 'first'\n")
    (dest / STORED).write_bytes(first)
    built(cache, GOOD_NAME, GOOD)
    r = promote(cache, dest, quota_bytes=10**9)
    assert (r.promoted, r.rejected) == (0, 1)
    assert (dest / STORED).read_bytes() == first


def test_another_users_sessions_do_not_see_the_wheelhouse(tmp_path: Path) -> None:
    dest_a = user_dir(str(tmp_path), "7-1700000000000000")
    assert dest_a is not None
    dest_a.mkdir(parents=True)
    (tmp_path / "pip").mkdir()
    a = shared_binds(str(tmp_path), "7-1700000000000000")
    b = shared_binds(str(tmp_path), "8-1700000000000001")
    assert a[str(dest_a)] == SHARED_PIP_USER
    assert SHARED_PIP_USER not in b.values()
    assert package_env(True, True)["PIP_FIND_LINKS"] == f"/opt/package-cache/pip {SHARED_PIP_USER}"
    assert user_dir(str(tmp_path), "../8") is None and user_dir(str(tmp_path), "") is None
    assert user_dir(str(tmp_path), "7") is None  # a bare id is not a wheelhouse name


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_reused_user_id_does_not_inherit_the_deleted_accounts_wheelhouse(
    backend: str, tmp_path: Path
) -> None:
    """SQLite gives the next account the id of the most recently deleted one: a user who
    planted wheels and deleted the account must not hand them to whoever gets the id next."""
    database = make_database(backend, tmp_path)
    settings = make_settings(tmp_path, database.url, package_cache_dir=str(tmp_path / "store"))

    async def main() -> tuple[int, str, int, str]:
        db = Database(settings)
        try:
            await upgrade(db.engine)
            accounts = AccountService(db, settings, RateLimiter(1000, 60))
            sandboxes = SandboxManager(
                settings, cast(Runtime, None), SessionService(db), EventBus()
            )
            planter = await accounts.register("planter", "p@example.com", "long-enough-pass")
            planted = await sandboxes._package_user(planter.id)
            await accounts.delete_user(planter.id)
            victim = await accounts.register("victim", "v@example.com", "long-enough-pass")
            return planter.id, planted, victim.id, await sandboxes._package_user(victim.id)
        finally:
            await db.dispose()

    planter_id, planted, victim_id, victims = asyncio.run(main())
    if backend == "sqlite":
        assert victim_id == planter_id  # the premise: the id is reused
    assert planted and victims and planted != victims
    assert user_dir(settings.package_cache_dir, planted) != user_dir(
        settings.package_cache_dir, victims
    )


def test_deleting_the_account_removes_its_wheelhouse_and_nothing_else(
    backend: str, tmp_path: Path
) -> None:
    """The wheelhouse's name holds the account's creation time, so after the account is deleted
    nobody can reach it: it is removed with the account. Another user's wheelhouse stays, and a
    link planted inside the removed one is not followed out of it."""
    store = tmp_path / "store"
    (tmp_path / "live").mkdir()
    server, stop = start_live_server(backend, tmp_path / "live", package_cache_dir=str(store))
    try:
        a, b = register_user(server), register_user(server)

        async def keys() -> list[str]:
            db = Database(server.settings)
            try:
                accounts = AccountService(db, server.settings, RateLimiter(1000, 60))
                return [
                    user_key(u.user_id, (await accounts.get_user(u.user_id)).created_at)
                    for u in (a, b)
                ]
            finally:
                await db.dispose()

        key_a, key_b = asyncio.run(keys())
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "keep.txt").write_text("not the wheelhouse's")
        homes = []
        for key in (key_a, key_b):
            home = user_dir(str(store), key)
            assert home is not None
            (home / "sub").mkdir(parents=True)
            (home / "demo-1.0-py3-none-any.whl").write_bytes(b"PK")
            os.chmod(home / "demo-1.0-py3-none-any.whl", 0o444)
            (home / "sub" / "escape").symlink_to(outside)
            homes.append(home)
        r = a.client.request("DELETE", "/api/users/me", json={"password": a.password})
        assert r.status_code == 204, r.text
        assert not homes[0].exists()
        assert (homes[1] / "demo-1.0-py3-none-any.whl").exists()
        assert (outside / "keep.txt").read_text() == "not the wheelhouse's"
        # A wrong password deletes nothing, the wheelhouse included.
        bad = b.client.request("DELETE", "/api/users/me", json={"password": "not it at all"})
        assert bad.status_code == 403 and homes[1].exists()
        a.client.close()
        b.client.close()
    finally:
        stop()


def test_http_body_reads_only_a_well_formed_entry() -> None:
    body = b"PK\x03\x04" + b"z" * 70000
    entry = (
        b"cc=4,\x82\xa4vary\x80\xa8response\x83\xa6status\xcc\xc8\xa7headers\x81\xa1a\xa1b"
        b"\xa4body\xc6" + len(body).to_bytes(4, "big") + body
    )
    start, n = http_body(entry) or (0, 0)
    assert entry[start : start + n] == body
    assert http_body(entry[:-1]) is None  # truncated
    assert http_body(b"cc=4,\xdf\xff\xff\xff\xff") is None
    assert http_body(b"cc=2," + entry[5:]) is None


class _Index(http.server.SimpleHTTPRequestHandler):
    def end_headers(self) -> None:
        if self.path.endswith(".whl"):  # as PyPI's files
            self.send_header("Cache-Control", "max-age=365000000, immutable, public")
        super().end_headers()

    def log_message(self, *a: object) -> None:
        pass


@pytest.mark.skipif(not os.path.exists(SYSTEM_PIP), reason="needs the system's python3 and pip")
def test_the_real_pips_download_is_promoted(tmp_path: Path) -> None:
    """Debian's pip downloads a wheel from an index on the loopback into its HTTP cache; the
    host finds it there, names it from its metadata."""
    root = tmp_path / "index"
    (root / "simple" / "demo-pkg").mkdir(parents=True)
    (root / "simple" / "demo-pkg" / GOOD_NAME).write_bytes(GOOD)
    (root / "simple" / "demo-pkg" / "index.html").write_text(f'<a href="{GOOD_NAME}">x</a>')
    srv = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Index, directory=str(root))
    )
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    cache = tmp_path / "cache"
    try:
        env = {
            "PATH": os.environ["PATH"],
            "PIP_CACHE_DIR": str(cache),
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        }
        p = subprocess.run(
            [SYSTEM_PIP, "-m", "pip", "install", "--target", str(tmp_path / "t"),
             "--index-url", f"http://127.0.0.1:{srv.server_address[1]}/simple",
             "--trusted-host", "127.0.0.1", "demo-pkg"],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
    finally:
        srv.shutdown()
        srv.server_close()
    assert p.returncode == 0, p.stderr
    (tmp_path / "store").mkdir()
    dest = tmp_path / "store" / "pip-users" / "7"
    r = promote(cache, dest, quota_bytes=10**9)
    assert (r.promoted, r.rejected) == (1, 0)
    assert (dest / STORED).read_bytes() == GOOD


def test_a_file_is_checked_once_per_sandbox_unless_it_changes(dirs: tuple[Path, Path]) -> None:
    """The runtime promotes every interval: ``seen`` skips what an earlier pass handled (a
    rejected file too), but a file rewritten since (new mtime or size) is handled again."""
    cache, dest = dirs
    seen: set[tuple[int, int, int]] = set()
    path = built(cache, GOOD_NAME, b"not a zip")
    assert promote(cache, dest, quota_bytes=10**9, seen=seen).rejected == 1
    assert promote(cache, dest, quota_bytes=10**9, seen=seen).rejected == 0
    path.write_bytes(GOOD)
    assert promote(cache, dest, quota_bytes=10**9, seen=seen).promoted == 1
    assert promote(cache, dest, quota_bytes=10**9, seen=seen).already == 0


def test_a_pip_23_3_http_cache_body_is_named_from_its_metadata(dirs: tuple[Path, Path]) -> None:
    """pip >= 23.3 keeps a response's bytes in ``http-v2/.../<key>.body``: a wheel there is
    named from its own metadata; an index page or a wheel whose RECORD lies is not promoted."""
    cache, dest = dirs
    folder = cache / "http-v2" / "a" / "b" / "c" / "d" / "e"
    folder.mkdir(parents=True)
    (folder / "k1.body").write_bytes(GOOD)
    (folder / "k1").write_bytes(b"metadata")
    (folder / "k2.body").write_bytes(b"<html>index page</html>")
    bad = bytearray(wheel("other_pkg", "1.0", "VALUE = 'harmless'\n"))
    at = bad.index(b"harmless")
    bad[at : at + 8] = b"POISONED"  # stored uncompressed: the member's bytes change
    (folder / "k3.body").write_bytes(bytes(bad))
    r = promote(cache, dest, quota_bytes=10**9)
    assert (r.promoted, r.rejected) == (1, 1)
    assert os.listdir(dest) == [STORED]
