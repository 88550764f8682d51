"""Attacks through files in and out: zip entries that escape the workspace (``../``, absolute
paths, symlinks), zip bombs (declared and lying sizes), too many entries; downloads of HTML and
SVG files that must not run script on the platform's origin."""

from __future__ import annotations

import stat
import struct
import zlib

import pytest

from tests.conftest import UserClient, module_live_server

server = module_live_server("zipattack", max_zip_entries=200)
GiB = 1 << 30


def raw_zip(entries: list[tuple[str, bytes, int, int, int]], *, deflate: bool = False) -> bytes:
    """A zip written by hand: (name, stored data, crc, declared size, unix mode) per entry, so
    that names, modes and sizes can lie."""
    method = 8 if deflate else 0
    out = bytearray()
    central = bytearray()
    for name, data, crc, size, mode in entries:
        raw = name.encode()
        offset = len(out)
        out += struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(data), size, len(raw), 0
        )
        out += raw + data
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            0x0314,  # made by unix, so the external attributes are a mode
            20,
            0,
            method,
            0,
            0x21,
            crc,
            len(data),
            size,
            len(raw),
            0,
            0,
            0,
            0,
            mode << 16,
            offset,
        )
        central += raw
    n = len(entries)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, len(central), len(out), 0)
    return bytes(out + central + end)


def stored(
    name: str, data: bytes, mode: int = stat.S_IFREG | 0o644
) -> tuple[str, bytes, int, int, int]:
    return (name, data, zlib.crc32(data), len(data), mode)


def _import(user: UserClient, body: bytes) -> tuple[int, str, list[str]]:
    sid = user.new_session("attack")
    r = user.client.post(f"/api/workspace/{sid}/import", content=body)
    items = user.client.get(f"/api/workspace/{sid}/files").json()["items"]
    code = r.json().get("error", "") if r.status_code >= 400 else ""
    return r.status_code, code, [i["path"] for i in items]


@pytest.mark.parametrize(
    "name",
    ["../escape.txt", "a/../../escape.txt", "/etc/cron.d/evil", "C:/evil.txt", "a\\..\\evil.txt"],
)
def test_zip_entry_outside_the_workspace_is_refused_and_nothing_written(
    user: UserClient, name: str
) -> None:
    body = raw_zip([stored("ok.txt", b"fine\n"), stored(name, b"pwned\n")])
    status, code, paths = _import(user, body)
    assert (status, code) == (400, "zip_unsafe_path")
    assert paths == []


def test_zip_symlink_entry_is_refused(user: UserClient) -> None:
    body = raw_zip([stored("link", b"/etc/passwd", stat.S_IFLNK | 0o777)])
    status, code, paths = _import(user, body)
    assert (status, code) == (400, "zip_symlink")
    assert paths == []


def _deflated_zeros(total: int) -> tuple[bytes, int]:
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = bytes(1 << 20)
    parts = []
    crc = 0
    for _ in range(total // len(block)):
        parts.append(comp.compress(block))
        crc = zlib.crc32(block, crc)
    parts.append(comp.flush())
    return b"".join(parts), crc


def test_zip_bomb_declaring_1_gib_is_refused_by_its_declared_size(user: UserClient) -> None:
    data, crc = _deflated_zeros(GiB)
    body = raw_zip([("bomb.bin", data, crc, GiB, stat.S_IFREG | 0o644)], deflate=True)
    assert len(body) < 2 << 20  # ~1 MiB on the wire
    status, code, paths = _import(user, body)
    assert status == 413 and code in ("zip_too_large_expanded", "file_too_large")
    assert paths == []


def test_zip_bomb_lying_about_its_size_cannot_expand_beyond_the_declared_size(
    user: UserClient,
) -> None:
    data, crc = _deflated_zeros(GiB)
    # Declares 1,000 bytes for 1 GiB of zeros: reading stops at the declared size and the
    # CRC (of the whole 1 GiB) does not match, so the entry is refused as corrupt.
    body = raw_zip([("bomb.bin", data, crc, 1000, stat.S_IFREG | 0o644)], deflate=True)
    status, code, paths = _import(user, body)
    assert (status, code) == (400, "invalid_zip")
    assert paths == []


def test_zip_with_too_many_entries_is_refused(user: UserClient) -> None:
    body = raw_zip([stored(f"f{i}.txt", b"x") for i in range(201)])
    status, code, paths = _import(user, body)
    assert (status, code) == (413, "zip_too_many_entries")
    assert paths == []


def test_not_a_zip_is_a_clear_400(user: UserClient) -> None:
    status, code, _ = _import(user, b"this is not a zip archive")
    assert (status, code) == (400, "invalid_zip")


def test_failed_import_of_a_new_workspace_leaves_no_workspace(user: UserClient) -> None:
    before = len(user.client.get("/api/sessions/").json())
    r = user.client.post("/api/sessions/import", content=raw_zip([stored("../x", b"x")]))
    assert r.status_code == 400 and r.json()["error"] == "zip_unsafe_path"
    assert len(user.client.get("/api/sessions/").json()) == before


@pytest.mark.parametrize(
    "name, body",
    [
        ("page.html", b"<html><script>alert(document.cookie)</script></html>"),
        ("logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'),
        ("evil.png", b"<html><script>alert(1)</script></html>"),
    ],
)
def test_downloads_cannot_run_script_on_the_platform_origin(
    user: UserClient, name: str, body: bytes
) -> None:
    sid = user.new_session("dl")
    assert user.client.put(f"/api/workspace/{sid}/upload/{name}", content=body).status_code == 201
    for url in (
        f"/api/workspace/{sid}/download/{name}",
        f"/api/workspace/{sid}/file/{name}?raw=true",
    ):
        r = user.client.get(url)
        assert r.status_code == 200 and r.content == body
        ctype = r.headers["content-type"]
        assert "html" not in ctype and "svg" not in ctype and "javascript" not in ctype
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["content-security-policy"].startswith("sandbox")
        assert r.headers["content-disposition"].startswith("attachment")
