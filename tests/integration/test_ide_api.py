"""IDE API on both databases: search, templates, preferences, upload/download, zip in and out."""

from __future__ import annotations

import io
import zipfile

import pytest

from tests.conftest import UserClient


def _save(api: UserClient, sid: str, path: str, content: str) -> None:
    r = api.client.post(f"/api/workspace/{sid}/file/{path}", json={"content": content})
    assert r.status_code in (200, 201), r.text


def _search(api: UserClient, sid: str, q: str, **params: object) -> dict[str, object]:
    r = api.client.get(f"/api/workspace/{sid}/search", params={"q": q, **params})
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


def _paths(result: dict[str, object]) -> list[str]:
    return [f["path"] for f in result["files"]]  # type: ignore[attr-defined, index]


def test_search_groups_lines_by_file_and_follows_every_change(api: UserClient) -> None:
    sid = api.new_session("search")
    _save(api, sid, "a.py", "import os\nvalue = compute_total(1)\n# compute_total again\n")
    _save(api, sid, "src/b.py", "def compute_total(x):\n    return x\n")
    _save(api, sid, "notes.md", "nothing here\n")
    res = _search(api, sid, "compute_total")
    assert _paths(res) == ["a.py", "src/b.py"]
    files = res["files"]
    assert [m["line"] for m in files[0]["matches"]] == [2, 3]  # type: ignore[index]
    assert files[0]["matches"][0]["ranges"] == [[8, 21]]  # type: ignore[index]
    assert res["match_count"] == 3
    # an edit, a move and a delete are seen by the index at once
    _save(api, sid, "notes.md", "now compute_total is here\n")
    assert _paths(_search(api, sid, "compute_total")) == ["a.py", "notes.md", "src/b.py"]
    r = api.client.post(f"/api/workspace/{sid}/move", json={"from": "src", "to": "lib"})
    assert r.status_code == 200, r.text
    assert "lib/b.py" in _paths(_search(api, sid, "compute_total"))
    assert api.client.delete(f"/api/workspace/{sid}/file/a.py").status_code == 204
    assert _paths(_search(api, sid, "compute_total")) == ["lib/b.py", "notes.md"]


def test_search_options_regex_case_word_and_globs(api: UserClient) -> None:
    sid = api.new_session("search-opts")
    _save(api, sid, "x.py", "Foo = 1\nfoo = 2\nfoobar = 3\n")
    _save(api, sid, "y.js", "const foo = 4;\n")
    _save(api, sid, "node_modules/z.js", "foo\n")
    assert _search(api, sid, "foo")["match_count"] == 5
    assert _search(api, sid, "Foo", case="true")["match_count"] == 1
    assert _search(api, sid, "foo", word="true")["match_count"] == 4
    assert _search(api, sid, r"^fo+\w* =", regex="true")["match_count"] == 3
    assert _paths(_search(api, sid, "foo", include="*.py")) == ["x.py"]
    assert _paths(_search(api, sid, "foo", exclude="node_modules")) == ["x.py", "y.js"]
    assert _search(api, sid, "fo")["match_count"] == 5  # under 3 characters: a scan
    r = api.client.get(f"/api/workspace/{sid}/search", params={"q": "(", "regex": "true"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_regex"


def test_search_does_not_see_other_workspaces_or_binary_files(api: UserClient) -> None:
    one, two = api.new_session("one"), api.new_session("two")
    _save(api, one, "a.txt", "secret-marker\n")
    r = api.client.put(f"/api/workspace/{two}/upload/bin.dat", content=b"\0secret-marker\0")
    assert r.status_code == 201, r.text
    assert _paths(_search(api, two, "secret-marker")) == []
    assert _paths(_search(api, one, "secret-marker")) == ["a.txt"]


def test_search_walk_reads_a_text_file_with_a_nul_after_its_first_8_kb(api: UserClient) -> None:
    """A NUL after the first 8,192 bytes leaves a file text (looks_binary) but PostgreSQL's index
    cannot hold it and SQLite's LIKE stops at it: the walk filtered in the database must still
    read that file (a two-letter query has no trigram: it is always a walk)."""
    sid = api.new_session("nul")
    body = b"filler line\n" * 700 + b"\0 then qz here\nQZ again\n"
    r = api.client.put(f"/api/workspace/{sid}/upload/late-nul.txt", content=body)
    assert r.status_code == 201, r.text
    _save(api, sid, "a.txt", "no match\n")
    got = _search(api, sid, "qz")
    assert _paths(got) == ["late-nul.txt"]
    assert [m["line"] for m in got["files"][0]["matches"]] == [701, 702]  # type: ignore[index]


def test_search_index_path_reads_a_text_file_with_a_nul_after_its_first_8_kb(
    api: UserClient,
) -> None:
    """A rare literal with trigrams is answered from the index's candidates; a text file with a
    NUL after its first 8,192 bytes has no PostgreSQL index row and SQLite's FTS5 text stops at
    the NUL, so the index alone misses it: search must still read it (migration 0010's partial
    index lists such files)."""
    sid = api.new_session("nul-index")
    body = b"filler line\n" * 700 + b"\0 then needle_after_nul here\nNeedle_After_Nul again\n"
    r = api.client.put(f"/api/workspace/{sid}/upload/late-nul.txt", content=body)
    assert r.status_code == 201, r.text
    _save(api, sid, "a.txt", "needle_after_nul in a plain file\n")
    _save(api, sid, "b.txt", "no match\n")
    got = _search(api, sid, "needle_after_nul")
    assert _paths(got) == ["a.txt", "late-nul.txt"]
    assert [m["line"] for m in got["files"][1]["matches"]] == [701, 702]  # type: ignore[index]
    # Case-sensitive and whole word take the same candidates.
    got = _search(api, sid, "Needle_After_Nul", case="true", word="true")
    assert _paths(got) == ["late-nul.txt"]
    # Two letters (no trigram): the short-run candidates (PostgreSQL: migration 0010's doubled
    # text index; SQLite: one LIKE scan) plus the NUL files.
    _save(api, sid, "c.txt", "a qz here\n")
    assert _paths(_search(api, sid, "qz")) == ["c.txt"]
    got = _search(api, sid, "nu")
    assert _paths(got) == ["a.txt", "late-nul.txt"]


def test_search_short_queries_use_the_index_and_stay_exact(api: UserClient) -> None:
    """One- and two-letter queries (no trigram) give the same files as a full match: rare ones
    from the candidates, common ones (more than ``search_max_files``) by the walk."""
    sid = api.new_session("short")
    _save(api, sid, "a.txt", "aqz\nQZ upper\n")
    _save(api, sid, "b.txt", "q z apart\nzq reversed\n")
    _save(api, sid, "c.txt", "xx qzqz yy\n")
    _save(api, sid, "d.txt", "q\n")
    got = _search(api, sid, "qz")
    assert _paths(got) == ["a.txt", "c.txt"]
    assert [m["line"] for m in got["files"][0]["matches"]] == [1, 2]  # type: ignore[index]
    assert _paths(_search(api, sid, "QZ", case="true")) == ["a.txt"]
    assert _paths(_search(api, sid, "qz", word="true")) == ["a.txt"]  # "QZ upper"
    assert _paths(_search(api, sid, "q")) == ["a.txt", "b.txt", "c.txt", "d.txt"]
    assert _paths(_search(api, sid, "q z")) == ["b.txt"]


def test_templates_are_listed_and_make_the_right_starter_files(api: UserClient) -> None:
    r = api.client.get("/api/templates")
    assert r.status_code == 200
    keys = {t["key"] for t in r.json()}
    assert {"python", "node", "typescript", "c", "cpp", "java", "rust", "bash", "flask"} <= keys
    assert "express" in keys
    for language, entry in [("c", "main.c"), ("java", "Main.java"), ("rust", "main.rs")]:
        sid = api.new_session(language, language=language)
        r = api.client.post(f"/api/workspace/{sid}/ensure-default")
        assert r.json() == {"created": True}
        paths = [i["path"] for i in api.client.get(f"/api/workspace/{sid}/files").json()["items"]]
        assert paths == [entry]
        assert api.client.get(f"/api/sessions/{sid}").json()["entry_file"] == entry
    sid = api.new_session("web", template="flask")
    paths = [i["path"] for i in api.client.get(f"/api/workspace/{sid}/files").json()["items"]]
    assert sorted(paths) == ["app.py", "requirements.txt"]
    r = api.client.post("/api/sessions/", json={"name": "x", "template": "nope"})
    assert r.status_code == 400 and r.json()["error"] == "unknown_template"


def test_preferences_default_save_and_validate(api: UserClient) -> None:
    r = api.client.get("/api/users/me/preferences")
    assert r.json() == {
        "font_size": 14,
        "tab_size": 4,
        "word_wrap": False,
        "key_bindings": "default",
        "theme": "system",
    }
    prefs = {"font_size": 18, "tab_size": 2, "word_wrap": True, "key_bindings": "vim"}
    r = api.client.put("/api/users/me/preferences", json={**prefs, "theme": "dark"})
    assert r.status_code == 200, r.text
    assert api.client.get("/api/users/me/preferences").json()["key_bindings"] == "vim"
    for bad in ({"font_size": 2}, {"key_bindings": "emacs"}, {"colour": "red"}):
        r = api.client.put("/api/users/me/preferences", json=bad)
        assert r.status_code in (400, 422), r.text
    assert api.client.get("/api/users/me/preferences").json()["font_size"] == 18


def test_upload_download_and_size_errors(api: UserClient) -> None:
    sid = api.new_session("upload")
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    r = api.client.put(f"/api/workspace/{sid}/upload/img/logo.png", content=png)
    assert r.status_code == 201 and r.json()["is_binary"] is True
    r = api.client.get(f"/api/workspace/{sid}/download/img/logo.png")
    assert r.content == png
    assert r.headers["content-type"] == "image/png"
    assert r.headers["content-disposition"].startswith('attachment; filename="logo.png"')
    limit = api.server.settings.max_file_bytes
    r = api.client.put(f"/api/workspace/{sid}/upload/big.bin", content=b"x" * (limit + 1))
    assert r.status_code == 413 and r.json()["error"] in ("file_too_large", "request_too_large")
    r = api.client.put(f"/api/workspace/{sid}/upload/../x", content=b"x")
    assert r.status_code in (400, 404)


def test_zip_export_and_import_round_trip(api: UserClient) -> None:
    sid = api.new_session("zip")
    _save(api, sid, "main.py", "print('hi')\n" * 100)
    api.client.put(f"/api/workspace/{sid}/upload/data/blob.bin", content=bytes(range(256)) * 10)
    assert api.client.post(f"/api/workspace/{sid}/folder/empty").status_code == 201
    r = api.client.get(f"/api/workspace/{sid}/export.zip")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    assert zf.testzip() is None
    assert zf.read("main.py") == b"print('hi')\n" * 100
    assert zf.read("data/blob.bin") == bytes(range(256)) * 10
    assert "empty/" in zf.namelist()
    r = api.client.post(
        "/api/sessions/import",
        params={"name": "copy"},
        content=r.content,
        headers={"content-type": "application/zip"},
    )
    assert r.status_code == 201, r.text
    copy = r.json()["uuid"]
    items = api.client.get(f"/api/workspace/{copy}/files").json()["items"]
    assert {i["path"] for i in items} == {"main.py", "data", "data/blob.bin", "empty"}
    blob = api.client.get(f"/api/workspace/{copy}/download/data/blob.bin").content
    assert blob == bytes(range(256)) * 10
    # importing again into the same workspace: the paths exist, nothing is written
    again = api.client.get(f"/api/workspace/{sid}/export.zip").content
    r = api.client.post(f"/api/workspace/{copy}/import", content=again)
    assert r.status_code == 409 and r.json()["error"] == "already_exists"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("extra/new.txt", "new\n")
    r = api.client.post(f"/api/workspace/{copy}/import", content=buf.getvalue())
    assert r.status_code == 200 and r.json()["files"] == 1
    assert "new.txt" in _paths(_search(api, copy, "new", include="extra/**"))[0]


def test_search_regex_uses_a_literal_and_reports_columns_per_line(api: UserClient) -> None:
    sid = api.new_session("search-regex")
    _save(api, sid, "m.py", "alpha = 1\nx = special_token_x1 + special_token_x2\n\nend\n")
    _save(api, sid, "n.py", "special_token_y\n")
    res = _search(api, sid, r"special_token_x\d", regex="true")
    assert _paths(res) == ["m.py"]
    line = res["files"][0]["matches"][0]  # type: ignore[index]
    assert line["line"] == 2 and line["ranges"] == [[4, 20], [23, 39]]
    res = _search(api, sid, "alpha|end", regex="true")  # top-level alternation: a scan
    assert [m["line"] for m in res["files"][0]["matches"]] == [1, 4]  # type: ignore[index]


# --- search equals a brute-force match of every file ------------------------------------------

_WORDS = ["alpha", "Beta", "GAMMA", "delta_x", "50%", "a_b", "back\\slash", "response", "Resp"]
# Characters whose case folding differs between Python's ``re`` and the databases: U+017F (long
# s ~ s), U+212A (Kelvin sign ~ k), U+0130/U+0131 (dotted/dotless i), and ordinary non-ASCII.
_TRICKY = [
    "\u017fecret",
    "\u212aelvin",
    "\u0130stanbul",
    "\u0131dle",
    "Straße",
    "ÉCOLE",
    "école",
    "ﬀ",
]


def _corpus() -> dict[str, str]:
    import random

    rng = random.Random(1313)
    files: dict[str, str] = {}
    for i in range(160):
        lines = []
        for _ in range(rng.randint(1, 14)):
            words = rng.choices(_WORDS, k=rng.randint(1, 6))
            if rng.random() < 0.2:
                words.append(rng.choice(_TRICKY))
            if rng.random() < 0.05:
                words.append("x" * 500)  # a line longer than the 400 characters shown
            lines.append(" ".join(words))
        folder = ["src", "lib/deep", "node_modules/pkg", "docs"][i % 4]
        ext = [".py", ".js", ".md"][i % 3]
        files[f"{folder}/f{i:03d}{ext}"] = "\n".join(lines) + ("\n" if i % 2 else "")
    files["top.txt"] = "SECRET Secret secret\nkelvin KELVIN\nistanbul idle\nstrasse école\n"
    return files


def _reference(
    files: dict[str, str], q: str, limit: int, regex: bool, case: bool, word: bool,
    include: str, exclude: str,
) -> dict[str, object]:  # fmt: skip
    """What matching every file in path order gives (written apart from services/search.py)."""
    import re

    from coolcoding.services.search import glob_to_regex

    src = q if regex else re.escape(q)
    if word:
        src = rf"(?<!\w)(?:{src})(?!\w)"
    pat = re.compile(src, re.MULTILINE | (0 if case else re.IGNORECASE))
    inc = [glob_to_regex(g) for g in include.split(",") if g.strip()]
    exc = [glob_to_regex(g) for g in exclude.split(",") if g.strip()]
    out: list[dict[str, object]] = []
    count = 0
    for path in sorted(files):
        if (inc and not any(g.match(path) for g in inc)) or any(g.match(path) for g in exc):
            continue
        body = files[path]
        starts = [0] + [i + 1 for i, c in enumerate(body) if c == "\n"]
        by_line: dict[int, list[list[int]]] = {}
        for m in pat.finditer(body):
            if m.end() == m.start():
                continue
            n = max(i for i, s in enumerate(starts) if s <= m.start())
            if n not in by_line and len(by_line) >= limit - count:
                break
            end = body.find("\n", starts[n])
            text = body[starts[n] : end if end >= 0 else len(body)][:400]
            col = m.start() - starts[n]
            ranges = by_line.setdefault(n, [])
            if col < 400:
                ranges.append([col, min(m.end() - starts[n], len(text))])
        if by_line:
            matches = []
            for n, ranges in by_line.items():
                end = body.find("\n", starts[n])
                text = body[starts[n] : end if end >= 0 else len(body)][:400]
                matches.append({"line": n + 1, "text": text, "ranges": ranges})
            out.append({"path": path, "matches": matches})
            count += len(matches)
            if count >= limit:
                return {"files": out, "match_count": count, "truncated": True}
    return {"files": out, "match_count": count, "truncated": False}


_QUERIES: list[dict[str, object]] = [
    {"q": "alpha"},
    {"q": "response"},
    {"q": "Resp", "case": True},
    {"q": "resp", "word": True},
    {"q": "secret"},  # U+017F
    {"q": "kelvin"},  # U+212A
    {"q": "istanbul"},
    {"q": "idle"},  # U+0131
    {"q": "ÉCOLE"},
    {"q": "straße"},
    {"q": "50%"},
    {"q": "a_b", "word": True},
    {"q": "alpha", "word": True},  # whole word found with str.find (services/search.py _spans)
    {"q": "Alpha", "word": True, "case": True},
    {"q": "kelvin", "word": True},
    {"q": "back\\slash"},
    {"q": "ga"},  # under three characters: no index
    {"q": "se"},  # two letters with an s: U+017F is an alternative (like_alternatives)
    {"q": "id"},  # U+0130, U+0131
    {"q": "ke", "case": True},
    {"q": "cret"},  # a phrase with a trigram and an s before it
    {"q": "x" * 450},
    {"q": r"delta_\w+ a_b", "regex": True},
    {"q": r"^beta", "regex": True},
    {"q": r"(alpha|gamma) beta", "regex": True},  # alternation: no literal
    {"q": r"ph.\s+Be", "regex": True},  # a match across words
    {"q": r"a\nb", "regex": True},  # across lines
    {"q": "alpha", "include": "*.py"},
    {"q": "alpha", "include": "src/**,docs", "exclude": "*.md"},
    {"q": "response", "exclude": "node_modules"},
    {"q": "zzz-nowhere"},
    {"q": "qz"},  # two letters, nowhere: a walk of every file filtered in the database
    {"q": "pha be"},  # a phrase whose trigrams are common: a walk filtered in the database
]


def test_search_results_equal_a_brute_force_match_of_every_file(
    api: UserClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from coolcoding.services import search as search_module

    files = _corpus()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for path, body in files.items():
            z.writestr(path, body.encode())
    sid = api.new_session("search-exact")
    r = api.client.post(f"/api/workspace/{sid}/import", content=buf.getvalue())
    assert r.status_code == 200, r.text
    settings = api.server.platform.search.settings
    # Defaults, then limits small enough to cut results and to make common terms walk the
    # workspace in path order instead of taking the index's candidates.
    for max_files, max_results in ((None, None), (5, 37), (1, 5)):
        if max_files is not None:
            monkeypatch.setattr(settings, "search_max_files", max_files)
            monkeypatch.setattr(settings, "search_max_results", max_results)
            # Pages smaller than the workspace: several walk pages, a filtered page's bodies
            # read in several chunks.
            monkeypatch.setattr(search_module, "FIRST_PAGE", 2)
            monkeypatch.setattr(search_module, "MAX_PAGE", 3)
            monkeypatch.setattr(search_module, "FIRST_FILTERED_PAGE", 4)
            monkeypatch.setattr(search_module, "MAX_FILTERED_PAGE", 16)
        limit = settings.search_max_results
        for params in _QUERIES:
            query = {k: str(v).lower() if isinstance(v, bool) else v for k, v in params.items()}
            got = _search(api, sid, **query, max_results=limit)
            assert (got.pop("next") is not None) == got["truncated"]
            want = _reference(
                files,
                str(params["q"]),
                limit,
                bool(params.get("regex")),
                bool(params.get("case")),
                bool(params.get("word")),
                str(params.get("include", "")),
                str(params.get("exclude", "")),
            )
            assert got == want, (max_files, params)
