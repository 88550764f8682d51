"""Paged search on both databases: the pages joined are one walk's answer, the walk resumes at
the cursor, bad cursors and page sizes are refused with 4xx JSON, files changed between pages."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from tests.conftest import LiveServer, UserClient
from tests.integration.test_ide_api import _QUERIES, _corpus, _reference, _save

Answer = dict[str, Any]


def _get(api: UserClient, sid: str, **params: object) -> Answer:
    r = api.client.get(f"/api/workspace/{sid}/search", params=params)
    assert r.status_code == 200, r.text
    body: Answer = r.json()
    assert (body["next"] is not None) == body["truncated"]
    assert body["match_count"] == sum(len(f["matches"]) for f in body["files"])
    return body


def _pages(api: UserClient, sid: str, size: int, most: int, **params: object) -> Iterator[Answer]:
    """Pages of ``size`` lines, following ``next``, until the search is complete or ``most``
    lines came."""
    after: str | None = None
    lines = 0
    while True:
        page = _get(api, sid, **params, max_results=size, **({"after": after} if after else {}))
        assert page["match_count"] <= size
        yield page
        lines += page["match_count"]
        after = page["next"]
        if after is None or lines >= most:
            return


def _join(pages: list[Answer]) -> list[dict[str, Any]]:
    """The pages' files in order, a file split across two pages made one again."""
    files: list[dict[str, Any]] = []
    for page in pages:
        for f in page["files"]:
            if files and files[-1]["path"] == f["path"]:
                files[-1]["matches"].extend(f["matches"])
            else:
                files.append({"path": f["path"], "matches": list(f["matches"])})
    return files


def _cursor_fields(cursor: str) -> list[Any]:
    head = cursor.split(".")[0]
    fields: list[Any] = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    return fields


def _import(api: UserClient, name: str, files: dict[str, bytes]) -> str:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for path, body in files.items():
            z.writestr(path, body)
    sid = api.new_session(name)
    r = api.client.post(f"/api/workspace/{sid}/import", content=buf.getvalue())
    assert r.status_code == 200, r.text
    return sid


def test_pages_joined_equal_one_walk_for_every_kind_of_query(
    api: UserClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from coolcoding.services import search as search_module

    files = _corpus()
    sid = _import(api, "pages", {p: b.encode() for p, b in files.items()})
    settings = api.server.platform.search.settings
    monkeypatch.setattr(settings, "search_max_results", 200)
    # Defaults (the index's candidates), then common terms walking the workspace in pages of
    # the database smaller than the workspace.
    for small in (False, True):
        if small:
            monkeypatch.setattr(settings, "search_max_files", 5)
            monkeypatch.setattr(search_module, "FIRST_PAGE", 2)
            monkeypatch.setattr(search_module, "MAX_PAGE", 3)
            monkeypatch.setattr(search_module, "FIRST_FILTERED_PAGE", 4)
            monkeypatch.setattr(search_module, "MAX_FILTERED_PAGE", 16)
        for params in _QUERIES:
            query = {k: str(v).lower() if isinstance(v, bool) else v for k, v in params.items()}
            # Every page (97 lines), the first lines a few at a time (a file's lines split
            # across pages) and one at a time.
            for size, most in ((97, 10**9), (2, 9), (1, 3)):
                pages = list(_pages(api, sid, size, most, **query))
                lines = sum(p["match_count"] for p in pages)
                complete = pages[-1]["next"] is None
                want = _reference(
                    files,
                    str(params["q"]),
                    10**9 if complete else lines,
                    bool(params.get("regex")),
                    bool(params.get("case")),
                    bool(params.get("word")),
                    str(params.get("include", "")),
                    str(params.get("exclude", "")),
                )
                assert _join(pages) == want["files"], (small, size, params)
                # Only the last page of a complete search may be short; it may be empty when
                # the previous page ended at the last match.
                assert all(p["match_count"] == size for p in pages[:-1])


def test_nul_files_and_short_queries_page_like_one_walk(api: UserClient) -> None:
    """Text files with a NUL after 8 KB are read whatever the index says, on every page."""
    filler = b"filler line\n" * 800  # past the 8,192 bytes looks_binary sniffs
    files = {
        f"d/f{i:02d}.txt": (filler + b"\0 qz one\nqz two\n" if i % 3 == 0 else b"qz a\nb qz\nc\n")
        for i in range(12)
    }
    sid = _import(api, "pages-nul", files)
    one = _get(api, sid, q="qz", max_results=200)
    assert one["next"] is None and one["match_count"] == 24
    for size in (1, 3, 5):
        pages = list(_pages(api, sid, size, 10**9, q="qz"))
        assert _join(pages) == one["files"]


def test_a_cursor_in_the_middle_of_a_file_continues_at_the_next_line(api: UserClient) -> None:
    sid = api.new_session("pages-mid")
    _save(api, sid, "a.txt", "".join(f"needle {i}\nother\n" for i in range(1, 11)))
    _save(api, sid, "b.txt", "needle b\n")
    first = _get(api, sid, q="needle", max_results=4)
    assert [m["line"] for m in first["files"][0]["matches"]] == [1, 3, 5, 7]
    assert first["truncated"] and _cursor_fields(first["next"]) == ["a.txt", 7, False]
    second = _get(api, sid, q="needle", max_results=4, after=first["next"])
    assert second["files"][0]["path"] == "a.txt"
    assert [m["line"] for m in second["files"][0]["matches"]] == [9, 11, 13, 15]
    third = _get(api, sid, q="needle", max_results=4, after=second["next"])
    assert [(f["path"], [m["line"] for m in f["matches"]]) for f in third["files"]] == [
        ("a.txt", [17, 19]),
        ("b.txt", [1]),
    ]
    assert third["next"] is None
    # A page that ends with a file's last line: the next page starts after that file, and a
    # page ending at the search's last match gives a cursor whose page is empty.
    full = _get(api, sid, q="needle", max_results=10)
    assert _cursor_fields(full["next"]) == ["a.txt", 0, False]
    rest = _get(api, sid, q="needle", max_results=1, after=full["next"])
    assert [f["path"] for f in rest["files"]] == ["b.txt"] and rest["truncated"]
    empty = _get(api, sid, q="needle", max_results=1, after=rest["next"])
    assert empty == {"files": [], "match_count": 0, "truncated": False, "next": None}


def test_the_default_page_is_search_page_results_lines(
    api: UserClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid = api.new_session("pages-default")
    _save(api, sid, "a.txt", "hit\n" * 30)
    settings = api.server.platform.search.settings
    monkeypatch.setattr(settings, "search_page_results", 12)
    page = _get(api, sid, q="hit")
    assert page["match_count"] == 12 and page["truncated"]
    # Never more than search_max_results.
    monkeypatch.setattr(settings, "search_max_results", 5)
    assert _get(api, sid, q="hit")["match_count"] == 5


def _walk_starts(server: LiveServer) -> tuple[list[dict[str, Any]], Any]:
    """The parameters of every statement with a ``last`` (the walk's start) run by ``server``."""
    seen: list[dict[str, Any]] = []

    def record(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        params = context.compiled_parameters[0] if context.compiled_parameters else {}
        if {"last", "path", "cap"} & params.keys():
            seen.append(dict(params))

    engine = server.platform.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    return seen, lambda: event.remove(engine, "before_cursor_execute", record)


def test_the_next_page_walks_from_the_cursor_not_from_the_top(
    api: UserClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid = api.new_session("pages-start")
    for i in range(8):
        _save(api, sid, f"f{i}.txt", "common phrase\n" * 3)
    # More files than search_max_files: the term is common, the search walks in path order.
    monkeypatch.setattr(api.server.platform.search.settings, "search_max_files", 2)
    first = _get(api, sid, q="common phrase", max_results=7)
    # The index found the phrase in more than search_max_files files: the cursor says so.
    assert _cursor_fields(first["next"]) == ["f2.txt", 1, True]
    seen, stop = _walk_starts(api.server)
    try:
        second = _get(api, sid, q="common phrase", max_results=7, after=first["next"])
    finally:
        stop()
    # The cursor's file is read by its path, the walk starts after it: nothing before it is
    # looked at again, and the index is not asked again whether the phrase is common.
    assert [p.get("path") for p in seen if "path" in p] == ["f2.txt"]
    assert not [p for p in seen if "cap" in p]
    walks = [p["last"] for p in seen if "last" in p]
    assert walks and walks[0] == "f2.txt"
    assert [(f["path"], len(f["matches"])) for f in second["files"]] == [
        ("f2.txt", 2),
        ("f3.txt", 3),
        ("f4.txt", 2),
    ]


@pytest.mark.parametrize(
    "after",
    [
        "",
        "abc",
        "a.b.c",
        "!!!.???",
        "é.é",
        "W10.AAAA",  # base64 of "[]" with a wrong digest
    ],
)
def test_garbage_cursors_are_refused_with_400(api: UserClient, after: str) -> None:
    sid = api.new_session("pages-garbage")
    _save(api, sid, "a.txt", "needle\n")
    r = api.client.get(f"/api/workspace/{sid}/search", params={"q": "needle", "after": after})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_cursor"


def test_cursors_of_another_query_or_workspace_or_altered_are_refused(api: UserClient) -> None:
    sid = api.new_session("pages-bind")
    other = api.new_session("pages-bind-other")
    for s in (sid, other):
        _save(api, s, "a.txt", "needle\n" * 5)
    cursor = _get(api, sid, q="needle", max_results=2)["next"]
    url = f"/api/workspace/{sid}/search"
    assert _get(api, sid, q="needle", max_results=2, after=cursor)["match_count"] == 2
    for params, where in (
        ({"q": "needl"}, sid),
        ({"q": "needle", "case": "true"}, sid),
        ({"q": "needle", "word": "true"}, sid),
        ({"q": "needle", "regex": "true"}, sid),
        ({"q": "needle", "include": "*.txt"}, sid),
        ({"q": "needle", "exclude": "b"}, sid),
        ({"q": "needle"}, other),
    ):
        r = api.client.get(
            url.replace(sid, where), params={**params, "after": cursor, "max_results": 2}
        )
        assert r.status_code == 400 and r.json()["error"] == "invalid_cursor", (params, r.text)
    head, digest = cursor.split(".")
    forged_head = base64.urlsafe_b64encode(b'["a.txt", 1, false]').rstrip(b"=").decode()
    for altered in (f"{forged_head}.{digest}", f"{head}.{digest[:-2]}AA", f"{head}x.{digest}"):
        r = api.client.get(url, params={"q": "needle", "after": altered})
        assert r.status_code == 400 and r.json()["error"] == "invalid_cursor", altered
    r = api.client.get(url, params={"q": "needle", "after": "A" * 5000})
    assert r.status_code == 422 and r.json()["error"] == "validation_error"


@pytest.mark.parametrize("size", ["0", "-1", "abc", "1.5", ""])
def test_page_sizes_out_of_range_are_refused_with_422(api: UserClient, size: str) -> None:
    sid = api.new_session("pages-size")
    r = api.client.get(f"/api/workspace/{sid}/search", params={"q": "x", "max_results": size})
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "validation_error"


def test_page_sizes_over_search_max_results_are_refused_with_400(api: UserClient) -> None:
    sid = api.new_session("pages-size-max")
    _save(api, sid, "a.txt", "x\n")
    most = api.server.platform.search.settings.search_max_results
    url = f"/api/workspace/{sid}/search"
    for size in (most + 1, 10**30):
        r = api.client.get(url, params={"q": "x", "max_results": size})
        assert r.status_code == 400, r.text
        assert r.json()["error"] == "invalid_search"
    assert _get(api, sid, q="x", max_results=most)["match_count"] == 1


def test_a_file_changed_between_pages_is_read_as_it_is_now(api: UserClient) -> None:
    """Each page reads the workspace as it is when asked: lines after the cursor's line number
    in its file's current text, then the files after it. No error, whatever changed."""
    sid = api.new_session("pages-change")
    _save(api, sid, "a.txt", "hit 1\nhit 2\nhit 3\nhit 4\n")
    _save(api, sid, "b.txt", "hit b\n")
    cursor = _get(api, sid, q="hit", max_results=2)["next"]
    # Shorter than the cursor's line: nothing more of it, the walk goes on.
    _save(api, sid, "a.txt", "hit 1\n")
    page = _get(api, sid, q="hit", max_results=5, after=cursor)
    assert [(f["path"], [m["line"] for m in f["matches"]]) for f in page["files"]] == [
        ("b.txt", [1])
    ]
    # Longer: its lines after the cursor's line as they are now.
    _save(api, sid, "a.txt", "x\nx\nhit new 3\nx\nhit new 5\n")
    page = _get(api, sid, q="hit", max_results=5, after=cursor)
    assert [(f["path"], [m["text"] for m in f["matches"]]) for f in page["files"]] == [
        ("a.txt", ["hit new 3", "hit new 5"]),
        ("b.txt", ["hit b"]),
    ]
    # Deleted: skipped.
    r = api.client.delete(f"/api/workspace/{sid}/file/a.txt")
    assert r.status_code in (200, 204), r.text
    page = _get(api, sid, q="hit", max_results=5, after=cursor)
    assert [f["path"] for f in page["files"]] == ["b.txt"]


def _session_id(server: LiveServer, sid: str) -> int:
    async def read() -> int:
        import uuid

        from sqlalchemy import select

        from coolcoding.db.engine import Database
        from coolcoding.db.models import CodeSession

        db = Database(server.settings)
        try:
            async with db.session() as s:
                found = await s.execute(
                    select(CodeSession.id).where(CodeSession.uuid == uuid.UUID(sid))
                )
                return int(found.scalar_one())
        finally:
            await db.dispose()

    return asyncio.run(read())


@pytest.mark.parametrize(
    "fields",
    [
        ["a\x00b", 1, False],  # NUL: PostgreSQL text cannot hold it (a driver error, a 500)
        ["\ud800", 1, False],  # a lone surrogate: not UTF-8
        ["", 1, False],
        ["x" * 2000, 1, False],
        ["a.txt", -1, False],
        ["a.txt", 2**40, False],
        ["a.txt", True, False],
        ["a.txt", "1", False],
        ["a.txt", 1],
        ["a.txt", 1, 0],
        ["a.txt", 1, False, 1],
        {"p": "a.txt"},
    ],
)
def test_a_forged_cursor_with_a_valid_digest_is_refused_before_the_database(
    api: UserClient, fields: Any
) -> None:
    """The digest is a checksum anyone can recompute: the fields themselves are checked."""
    from coolcoding.services.search import SearchQuery
    from coolcoding.services.search_cursor import _b64, _digest

    sid = api.new_session("pages-forged")
    _save(api, sid, "a.txt", "needle\n")
    payload = json.dumps(fields).encode()
    digest = _digest(_session_id(api.server, sid), SearchQuery("needle"), payload)
    r = api.client.get(
        f"/api/workspace/{sid}/search",
        params={"q": "needle", "after": f"{_b64(payload)}.{_b64(digest)}"},
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_cursor"


def test_a_forged_common_flag_only_changes_how_the_same_answer_is_found(api: UserClient) -> None:
    """``common`` (walk without asking the index) is not checked against the index: both ways
    give the exact answer."""
    from coolcoding.services.search import SearchQuery
    from coolcoding.services.search_cursor import SearchPosition, encode_cursor

    sid = api.new_session("pages-common")
    for name in ("a.txt", "b.txt", "c.txt"):
        _save(api, sid, name, f"rare_word in {name}\nrare_word again\n")
    session_id = _session_id(api.server, sid)
    q = SearchQuery("rare_word")
    pages = [
        _get(
            api,
            sid,
            q="rare_word",
            after=encode_cursor(session_id, q, SearchPosition("a.txt", 1, c)),
        )
        for c in (False, True)
    ]
    assert pages[0] == pages[1]
    assert [(f["path"], len(f["matches"])) for f in pages[0]["files"]] == [
        ("a.txt", 1),
        ("b.txt", 2),
        ("c.txt", 2),
    ]
