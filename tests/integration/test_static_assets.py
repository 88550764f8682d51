"""The built web app as the server sends it: gzip-compressed once at level 9 for clients that
accept it, byte for byte the file otherwise, and client-side routes falling back to index.html."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import start_live_server


@pytest.fixture
def static_server(tmp_path: Path) -> Iterator[httpx.Client]:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><title>IDE</title>" + " " * 4000)
    (dist / "assets" / "app-1234.js").write_text("console.log('hi');\n" * 500)
    (dist / "assets" / "logo-1234.png").write_bytes(b"\x89PNG" + bytes(range(256)) * 20)
    (tmp_path / "data").mkdir()
    server, stop = start_live_server("sqlite", tmp_path / "data", static_dir=dist)
    with httpx.Client(base_url=server.base_url) as client:
        yield client
    stop()


def test_scripts_are_sent_gzip_compressed_at_level_9(static_server: httpx.Client) -> None:
    original = ("console.log('hi');\n" * 500).encode()
    r = static_server.get("/assets/app-1234.js", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["content-encoding"] == "gzip"
    assert r.headers["vary"] == "Accept-Encoding"
    assert "immutable" in r.headers["cache-control"]
    assert "javascript" in r.headers["content-type"]
    assert r.content == original  # httpx decompressed it
    assert int(r.headers["content-length"]) == len(gzip.compress(original, 9, mtime=0))


def test_without_gzip_the_file_is_sent_as_is(static_server: httpx.Client) -> None:
    r = static_server.get("/assets/app-1234.js", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in r.headers
    assert r.content == ("console.log('hi');\n" * 500).encode()
    png = static_server.get("/assets/logo-1234.png", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in png.headers  # already compressed formats are left alone
    assert png.content == b"\x89PNG" + bytes(range(256)) * 20


def test_client_routes_fall_back_to_index_html(static_server: httpx.Client) -> None:
    r = static_server.get("/sessions/abc", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-cache"
    assert r.text.startswith("<!doctype html><title>IDE</title>")
    missing = static_server.get("/api/nope")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"


@pytest.mark.parametrize("path", ["/judge0/nope", "/judge0/submissions/abc/x", "/judge0/"])
def test_unknown_judge0_paths_answer_json_404_not_the_web_app(
    static_server: httpx.Client, path: str
) -> None:
    """A Judge0 client that asks for a path the API lacks gets the API's JSON 404, not a 200
    index.html (it did: the fallback only left out /api and /ws)."""
    r = static_server.get(path)
    assert r.status_code == 404, r.text[:100]
    assert r.json()["error"] == "not_found"
    assert static_server.get("/judge0x/y").text.startswith("<!doctype html>")  # not a prefix
