"""Full-text search across a workspace's files, served by the database (works with the sandbox
stopped).

The answer is exact: files in path order with their matching lines (regex, case, whole word,
include/exclude globs, Python's ``re``), a page of at most ``search_max_results`` lines (by default
``search_page_results``), the same as matching every text file in path order. A page that is full
carries a cursor (services/search_cursor.py) from which the next page continues the walk: the
line after the last one returned (a file's lines may be split across pages), then the files after
it in path order, so the pages joined are the answer of one walk.

The search index (migration 0005; PostgreSQL: pg_trgm on the lower-cased
``workspace_search.body`` of migration 0007; SQLite: an FTS5 trigram table), kept in sync by
triggers on ``workspace_items``, only decides which bodies are read: a literal every match
contains (the query, or one taken from the regex) becomes a LIKE pattern that is a superset of
Python's match. A term in at most ``search_max_files`` files is answered from those; a more
common one, or
a query the index cannot narrow, walks the files in path order, a page at a time: the database
says which files of the page may match (LIKE in one scan, no text sent to Python) and only those
bodies are read; the walk stops when enough lines matched.
"""

from __future__ import annotations

import bisect
import dataclasses
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

# The standard library's regex parser (private, stable since 3.11), used only to find a literal
# that every match contains.
from re import _constants as sre_constants  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]

from sqlalchemy import TextClause, text

from coolcoding.db.engine import Database
from coolcoding.errors import InvalidInput
from coolcoding.services.search_cursor import (
    SearchPosition,
    decode_cursor,
    encode_cursor,
)
from coolcoding.services.workspace_types import WorkspaceRef
from coolcoding.settings import Settings

MAX_LINE_CHARS = 400

# Candidate files from the index, at most ``search_max_files + 1`` (the database stops there).
# PostgreSQL: ``body`` holds the lower-cased text (migration 0007), so the recheck is a plain LIKE
# (ILIKE lower-cased every body per query: 150 ms at 10,000 files); SQLite: LIKE on the FTS5
# trigram table uses its index and folds ASCII case.
# (Only the index's pattern, a superset: rechecking ``:alts`` here made a common phrase scan more
# rows before it knew it was common: +13% for ``urn res`` on PostgreSQL, A/B interleaved.)
PG_CANDIDATES = text(
    "SELECT item_id FROM workspace_search WHERE session_id = :sid AND body LIKE :pattern LIMIT :cap"
)
SQLITE_CANDIDATES = text(
    "SELECT rowid FROM workspace_search WHERE body LIKE :pattern AND session_id = :sid LIMIT :cap"
)
# A literal without a trigram (one or two letters): PostgreSQL's second trigram index holds the
# folded text with every character doubled (migration 0010), where ``qz`` is ``qqzz``; SQLite
# scans the text with LIKE in one statement (no ORDER BY: ~15-20 ms for 10,000 files), stopping
# at ``cap``.
PG_SHORT_CANDIDATES = text(
    "SELECT item_id FROM workspace_search WHERE session_id = :sid "
    "AND search_doubled(body) LIKE :pattern LIMIT :cap"
)
SQLITE_SHORT_CANDIDATES = text(
    "SELECT id FROM workspace_items WHERE session_id = :sid AND type = 'file' AND NOT is_binary "
    "AND content IS NOT NULL AND CAST(content AS TEXT) LIKE :pattern LIMIT :cap"
)
# Text files with a NUL after the 8,192 bytes ``looks_binary`` sniffs: neither index sees their
# text (PostgreSQL stores no row for them, SQLite's FTS5 and LIKE stop at the NUL), so they are
# always candidates. The predicates are those of the partial index, word for word: PostgreSQL's
# names the generated column of migration 0013 (0010's predicate, computed on write), SQLite's
# the predicate of migration 0010.
PG_NUL_FILES = text("SELECT id FROM workspace_items WHERE session_id = :sid AND search_nul")
SQLITE_NUL_FILES = text(
    "SELECT id FROM workspace_items WHERE session_id = :sid AND type = 'file' AND NOT is_binary "
    "AND size_bytes > 8192 AND instr(content, X'00') > 0"
)


# Text files whose index entry a large restore left to refresh after its commit (migration 0012,
# ``services/search_index.py``): their entry may hold the replaced text, so they are always
# candidates until the refresh drops the mark.
STALE_FILES = text(
    "SELECT t.item_id FROM workspace_search_stale t JOIN workspace_items w ON w.id = t.item_id"
    " WHERE t.session_id = :sid AND w.type = 'file' AND NOT w.is_binary"
    " AND w.content IS NOT NULL"
)


def _with_nul_files(candidates: TextClause, nul_files: TextClause) -> TextClause:
    """Candidates and the text files the index cannot see (a NUL) or may see wrong (stale), in
    one round trip (module constants only: no input is formatted into SQL)."""
    parts = (candidates.text, nul_files.text, STALE_FILES.text)
    sql = "SELECT * FROM (" + parts[0] + ") c UNION ALL " + " UNION ALL ".join(parts[1:])  # noqa: S608
    return text(sql)


PG_CANDIDATES_NUL = _with_nul_files(PG_CANDIDATES, PG_NUL_FILES)
PG_SHORT_CANDIDATES_NUL = _with_nul_files(PG_SHORT_CANDIDATES, PG_NUL_FILES)
SQLITE_CANDIDATES_NUL = _with_nul_files(SQLITE_CANDIDATES, SQLITE_NUL_FILES)
SQLITE_SHORT_CANDIDATES_NUL = _with_nul_files(SQLITE_SHORT_CANDIDATES, SQLITE_NUL_FILES)
# Paths of the candidates (PostgreSQL: an array; SQLite: a JSON array).
PG_PATHS = text("SELECT id, full_path FROM workspace_items WHERE id = ANY(:ids)")
SQLITE_PATHS = text(
    "SELECT id, full_path FROM workspace_items WHERE id IN (SELECT value FROM json_each(:ids))"
)
# The workspace's text files in path order (ids and paths only), a page after ``last``: the walk
# of a query the index cannot narrow or of a term in more than ``search_max_files`` files, on the
# (session_id, full_path) index, so it reads no more than it needs.
WALK = text(
    "SELECT id, full_path FROM workspace_items WHERE session_id = :sid AND full_path > :last "
    "AND type = 'file' AND NOT is_binary AND content IS NOT NULL ORDER BY full_path LIMIT :page"
)
# The file a cursor stopped in (the walk resumes in it from the line after).
RESUME_FILE = text(
    "SELECT id, content FROM workspace_items WHERE session_id = :sid AND full_path = :path "
    "AND type = 'file' AND NOT is_binary AND content IS NOT NULL"
)
PG_BODIES = text("SELECT id, content FROM workspace_items WHERE id = ANY(:ids)")
SQLITE_BODIES = text(
    "SELECT id, content FROM workspace_items WHERE id IN (SELECT value FROM json_each(:ids))"
)
# The walk of a common term or of one with no trigram: a page of the workspace's text files in
# path order, each with whether its text may contain the literal, decided in the database (a scan
# in C, no body sent to Python); only those bodies are then read. PostgreSQL: LIKE ANY of the
# exact alternatives on the folded text of the index table, looked up by primary key (one detoast
# per row: a second LIKE or a `` || ''`` copy cost 35-60% more); a file the index lacks (text
# PostgreSQL does not store, such as a NUL) or holds stale (a large restore's, until its
# refresh) is always read. SQLite: LIKE on the text itself (ASCII case folded, as
# ``like_pattern`` assumes); SQLite's LIKE stops at a NUL, which a text file can only have after
# its first 8,192 bytes (``looks_binary``), so such a file is always read.
PG_WALK_LIKE = text(
    "SELECT w.id, w.full_path, coalesce((SELECT s.body LIKE ANY(:alts) "
    "FROM workspace_search s WHERE s.item_id = w.id AND NOT EXISTS (SELECT 1 FROM "
    "workspace_search_stale t WHERE t.item_id = w.id)), true) FROM ("
    "SELECT id, full_path FROM workspace_items WHERE session_id = :sid AND full_path > :last "
    "AND type = 'file' AND NOT is_binary AND content IS NOT NULL ORDER BY full_path LIMIT :page"
    ") w ORDER BY w.full_path"
)
SQLITE_WALK_LIKE = text(
    "SELECT id, full_path, (CAST(content AS TEXT) LIKE :pattern AND EXISTS (SELECT 1 FROM "
    "json_each(:alts) WHERE CAST(workspace_items.content AS TEXT) LIKE value)) "
    "OR (size_bytes > 8192 AND instr(content, X'00') > 0) FROM workspace_items "
    "WHERE session_id = :sid AND full_path > :last AND type = 'file' AND NOT is_binary "
    "AND content IS NOT NULL ORDER BY full_path LIMIT :page"
)
# The same walks returning the body itself of each file that may match (NULL for the others):
# one round trip and one lookup per file instead of a second statement for the bodies (the
# phrase with common trigrams, ~1,500 bodies: see bench/README.md). PostgreSQL passes the
# content's TOAST pointer through the subquery and reads it only for the rows it sends.
# Used without include/exclude globs (those are applied in Python, before any body is read).
PG_WALK_LIKE_BODIES = text(
    "SELECT w.id, w.full_path, CASE WHEN coalesce((SELECT s.body LIKE ANY(:alts) "
    "FROM workspace_search s WHERE s.item_id = w.id AND NOT EXISTS (SELECT 1 FROM "
    "workspace_search_stale t WHERE t.item_id = w.id)), true) THEN w.content END FROM ("
    "SELECT id, full_path, content FROM workspace_items WHERE session_id = :sid "
    "AND full_path > :last AND type = 'file' AND NOT is_binary AND content IS NOT NULL "
    "ORDER BY full_path LIMIT :page) w ORDER BY w.full_path"
)
SQLITE_WALK_LIKE_BODIES = text(
    "SELECT id, full_path, CASE WHEN (CAST(content AS TEXT) LIKE :pattern AND EXISTS (SELECT 1 "
    "FROM json_each(:alts) WHERE CAST(workspace_items.content AS TEXT) LIKE value)) "
    "OR (size_bytes > 8192 AND instr(content, X'00') > 0) THEN content END FROM workspace_items "
    "WHERE session_id = :sid AND full_path > :last AND type = 'file' AND NOT is_binary "
    "AND content IS NOT NULL ORDER BY full_path LIMIT :page"
)
CUSTOM_PLAN = text("SET LOCAL plan_cache_mode = force_custom_plan")
# Bodies are fetched in path order, a page at a time (doubling up to the largest), until the
# result limit is reached.
FIRST_PAGE = 64
# Once lines matched, a page is sized by the lines still needed (1.25x the rate seen), at least:
MIN_PAGE = 16
MAX_PAGE = 1024
# A walk filtered in the database returns only ids and paths (and reads the bodies of the files
# that may match): larger pages, fewer statements.
FIRST_FILTERED_PAGE = 256
MAX_FILTERED_PAGE = 4096
# ASCII letters that a case-insensitive Python regex also matches with a non-ASCII character
# (i: U+0130, U+0131; k: U+212A; s: U+017F): wildcards in the index pattern, like every
# non-ASCII character, so the database's candidates always include every file Python matches.
UNSAFE_FOLD = frozenset("iks%_\\")
# What an i, k or s may be in the text the database sees (SQLite: the text itself, LIKE folds
# ASCII only; PostgreSQL: lower() of it, libc or ICU: U+0130 may become "i" or "i" + U+0307),
# tried as exact alternatives while there are at most MAX_ALTERNATIVES patterns.
FOLD_PARTNERS = {
    "i": ("i", "\u0131", "\u0130", "i\u0307"),
    "k": ("k", "\u212a"),
    "s": ("s", "\u017f"),
}
MAX_ALTERNATIVES = 8
_WORD_CHAR = re.compile(r"\w")


@dataclass(frozen=True)
class SearchQuery:
    query: str
    regex: bool = False
    case_sensitive: bool = False
    whole_word: bool = False
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


@dataclass
class LineMatch:
    line: int  # 1-based
    text: str  # the line, cut to MAX_LINE_CHARS
    ranges: list[tuple[int, int]]  # [start, end) columns (0-based) within ``text``


@dataclass
class FileMatches:
    path: str
    matches: list[LineMatch] = field(default_factory=list)


@dataclass
class SearchResult:
    files: list[FileMatches]
    match_count: int  # lines in this page
    truncated: bool  # the page is full: ``next`` continues it (its page may be empty)
    next: str | None = None  # the cursor of the next page (services/search_cursor.py)


@dataclass
class _Page:
    """The lines of one page, in path order, up to ``limit``."""

    limit: int
    files: list[FileMatches] = field(default_factory=list)
    count: int = 0
    stop: SearchPosition | None = None  # where a full page stopped

    @property
    def room(self) -> int:
        """Lines to ask of the next file: the room left and one more, which tells whether the
        file has lines beyond this page."""
        return self.limit - self.count + 1

    def add(self, found: FileMatches) -> bool:
        """Take a file's lines (at most ``room``); True once the page is full."""
        room = self.limit - self.count
        more = len(found.matches) > room
        del found.matches[room:]
        self.files.append(found)
        self.count += len(found.matches)
        if self.count < self.limit:
            return False
        self.stop = SearchPosition(found.path, found.matches[-1].line if more else 0)
        return True


def glob_to_regex(glob: str) -> re.Pattern[str]:
    """A VS Code-style glob: ``*`` within a name, ``**`` across folders, ``?`` one character,
    ``{a,b}`` alternatives. A glob without '/' matches a name at any depth (``*.py``,
    ``node_modules``), and a folder matches everything below it."""
    g = glob.strip().strip("/")
    out: list[str] = []
    i = 0
    while i < len(g):
        c = g[i]
        if g.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if g.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "{":
            end = g.find("}", i)
            if end < 0:
                out.append(re.escape(c))
            else:
                alts = g[i + 1 : end].split(",")
                out.append("(?:" + "|".join(re.escape(a) for a in alts) + ")")
                i = end + 1
                continue
        else:
            out.append(re.escape(c))
        i += 1
    body = "".join(out)
    prefix = "" if "/" in g else "(?:.*/)?"
    return re.compile(f"^{prefix}{body}(?:/.*)?$")


def _globs(raw: tuple[str, ...]) -> list[re.Pattern[str]]:
    return [glob_to_regex(g) for g in raw if g.strip()]


class SearchService:
    """Search and its limits (``search_max_results``, ``search_max_query_length``)."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings

    def compile(self, q: SearchQuery) -> re.Pattern[str]:
        if not q.query:
            raise InvalidInput("the search text is empty", code="invalid_search")
        if len(q.query) > self.settings.search_max_query_length:
            raise InvalidInput(
                f"the search text is longer than {self.settings.search_max_query_length} "
                "characters",
                code="invalid_search",
            )
        source = q.query if q.regex else re.escape(q.query)
        if q.whole_word:
            source = rf"(?<!\w)(?:{source})(?!\w)"
        try:
            flags = re.MULTILINE | (0 if q.case_sensitive else re.IGNORECASE)
            return re.compile(source, flags)
        except re.error as exc:
            raise InvalidInput(f"invalid regular expression: {exc}", code="invalid_regex") from exc

    def page_size(self, max_results: int | None) -> int:
        most = self.settings.search_max_results
        if max_results is None:
            return min(self.settings.search_page_results, most)
        if not 1 <= max_results <= most:
            raise InvalidInput(
                f"max_results must be between 1 and {most}", code="invalid_search", limit=most
            )
        return max_results

    async def search(
        self,
        ref: WorkspaceRef,
        q: SearchQuery,
        max_results: int | None = None,
        after: str | None = None,
    ) -> SearchResult:
        """Files in path order, their matching lines, until the page (``max_results`` lines,
        ``search_page_results`` by default) is full: the same answer as matching every text file
        of the workspace in path order (the index only decides which bodies need to be read).
        ``after``: the cursor of the previous page; the walk starts there, not at the top."""
        pattern = self.compile(q)
        limit = self.page_size(max_results)
        resume = (
            decode_cursor(after, ref.session_id, q, self.settings.max_path_length)
            if after is not None
            else None
        )
        includes, excludes = _globs(q.include), _globs(q.exclude)
        postgres = self.db.engine.dialect.name == "postgresql"
        literal = q.query if not q.regex else required_literal(q.query)
        like = like_pattern(literal) if literal else None
        alts = (like_alternatives(literal) if literal else None) or ([like] if like else [])
        # The query as a plain literal: Python's match may be a plain find (_spans).
        plain = None if q.regex else q.query
        cap = self.settings.search_max_files
        out = _Page(limit)
        truncated = False

        def wanted(path: str) -> bool:
            return (not includes or any(g.match(path) for g in includes)) and not (
                excludes and any(g.match(path) for g in excludes)
            )

        async with self.db.engine.connect() as conn, conn.begin():
            if postgres:
                # The statements are prepared: after a few runs PostgreSQL may switch to a
                # generic plan, which cannot see how rare the pattern is and reads every body of
                # the session instead of the trigram index.
                await conn.execute(CUSTOM_PLAN)
            if resume is not None and resume.line > 0 and wanted(resume.path):
                # The rest of the file the previous page stopped in, as it is now (changed or
                # gone since: its lines after that number, or none).
                row = (
                    await conn.execute(RESUME_FILE, {"sid": ref.session_id, "path": resume.path})
                ).first()
                if row is not None and row[1]:
                    found = _match_file(
                        resume.path, row[1].decode("utf-8", "replace"), pattern, out.room,
                        plain, q.case_sensitive, q.whole_word, after_line=resume.line,
                    )  # fmt: skip
                    truncated = found is not None and out.add(found)
            narrowed: list[tuple[str, int]] | None = None
            # The previous page found the literal common: walk without asking the index again.
            common = resume is not None and resume.common
            phase1: tuple[TextClause, str] | None = None
            if like is not None and has_trigram(like):
                phase1 = (PG_CANDIDATES_NUL if postgres else SQLITE_CANDIDATES_NUL, like)
            elif like is not None and not postgres:
                phase1 = (SQLITE_SHORT_CANDIDATES_NUL, like)
            elif like is not None and has_trigram(doubled := double_pattern(like)):
                phase1 = (PG_SHORT_CANDIDATES_NUL, doubled)
            if phase1 is not None and not truncated and not common:
                # Phase 1: which files have the literal, from the index; a term in more than
                # ``cap`` files is common enough for a walk in path order to stop early.
                stmt, stmt_pattern = phase1
                found_ids = [
                    r[0]
                    for r in (
                        await conn.execute(
                            stmt,
                            {"sid": ref.session_id, "pattern": stmt_pattern, "cap": cap + 1},
                        )
                    ).all()
                ]
                common = len(found_ids) > cap
                if not common:
                    found_ids = list(dict.fromkeys(found_ids))  # a NUL file may be in both
                    narrowed = []
                    if found_ids:
                        paths = await conn.execute(
                            PG_PATHS if postgres else SQLITE_PATHS,
                            {"ids": found_ids if postgres else json.dumps(found_ids)},
                        )
                        narrowed = sorted((r[1], r[0]) for r in paths.all())
                    if resume is not None:
                        # The files after the cursor's (paths compare as the database's do:
                        # byte-wise UTF-8, which is code point order).
                        keys = [path for path, _ in narrowed]
                        del narrowed[: bisect.bisect_right(keys, resume.path)]
            # Phase 2: the text of candidates in path order (globs applied before any text is
            # read), a page at a time, until enough lines matched. A walk with a literal reads
            # only the bodies the database found it in.
            filtered = narrowed is None and like is not None
            bodies_stmt = PG_BODIES if postgres else SQLITE_BODIES
            walk_stmt = WALK
            walk_params: dict[str, object] = {"sid": ref.session_id}
            # Without globs, a filtered walk brings the bodies with it (at most MAX_PAGE per
            # page, the bound the separate body statement had).
            with_bodies = filtered and not includes and not excludes
            if filtered:
                if with_bodies:
                    walk_stmt = PG_WALK_LIKE_BODIES if postgres else SQLITE_WALK_LIKE_BODIES
                else:
                    walk_stmt = PG_WALK_LIKE if postgres else SQLITE_WALK_LIKE
                walk_params["pattern"] = like
                walk_params["alts"] = alts if postgres else json.dumps(alts)
            last, start = (resume.path if resume is not None else ""), 0
            page, max_page = (
                (min(FIRST_FILTERED_PAGE, MAX_PAGE), MAX_PAGE)
                if with_bodies
                else (FIRST_FILTERED_PAGE, MAX_FILTERED_PAGE)
                if filtered
                else (FIRST_PAGE, MAX_PAGE)
            )
            walked_bodies: dict[int, bytes] | None = None
            seen = 1 if out.count else 0  # files looked at so far (walked, candidates, resumed)
            while not truncated:
                if count := out.count:
                    # Pages double, but no further than the lines still needed call for at the
                    # rate seen so far (a doubled page overshot: the capped common word read 512
                    # more bodies for its last 63 lines).
                    want = (limit - count) * seen * 5 // (count * 4) + MIN_PAGE
                    page = min(page, want)
                if narrowed is not None:
                    batch = narrowed[start : start + page]
                    start += page
                    seen += len(batch)
                else:
                    walked = (
                        await conn.execute(walk_stmt, {**walk_params, "last": last, "page": page})
                    ).all()
                    if not walked:
                        break
                    seen += len(walked)
                    last = walked[-1][1]
                    batch = [(r[1], r[0]) for r in walked if not filtered or r[2]]
                    if with_bodies:
                        walked_bodies = {r[0]: r[2] for r in walked if r[2]}
                if narrowed is not None and not batch:
                    break
                page = min(page * 2, max_page)
                batch = [(path, item_id) for path, item_id in batch if wanted(path)]
                if not batch:
                    continue
                # Bodies at most MAX_PAGE at a time (a filtered walk's page may hold more
                # files), so memory stays bounded whatever the page size.
                for chunk_start in range(0, len(batch), MAX_PAGE):
                    chunk = batch[chunk_start : chunk_start + MAX_PAGE]
                    bodies: dict[int, bytes]
                    if walked_bodies is not None:
                        bodies = walked_bodies
                    else:
                        ids = [item_id for _, item_id in chunk]
                        params: dict[str, object] = {"ids": ids if postgres else json.dumps(ids)}
                        bodies = {
                            r[0]: r[1] for r in (await conn.execute(bodies_stmt, params)).all()
                        }
                    for path, item_id in chunk:
                        content = bodies.get(item_id)
                        if not content:
                            continue
                        body = content.decode("utf-8", "replace")
                        found = _match_file(
                            path, body, pattern, out.room, plain, q.case_sensitive, q.whole_word
                        )
                        if found is not None and out.add(found):
                            truncated = True
                            break
                    if truncated:
                        break
        cursor = None
        if out.stop is not None:
            cursor = encode_cursor(ref.session_id, q, dataclasses.replace(out.stop, common=common))
        return SearchResult(out.files, out.count, truncated, cursor)


def like_pattern(literal: str) -> str | None:
    """A LIKE pattern (lower-case ASCII and ``%``) that the folded text of every file Python's
    match finds satisfies: characters whose case folding the database may not share with
    Python (non-ASCII, i/k/s) and LIKE's own specials become ``%``. None when nothing is left."""
    out: list[str] = []
    for c in literal:
        low = c.lower()
        if c.isascii() and low not in UNSAFE_FOLD:
            out.append(low)
        elif not out or out[-1] != "%":
            out.append("%")
    core = "".join(out).strip("%")
    return f"%{core}%" if core else None


def like_alternatives(literal: str) -> list[str] | None:
    """Patterns (at most MAX_ALTERNATIVES) one of which the text of every file Python's match
    finds satisfies, like ``like_pattern`` but with the ASCII letters i/k/s spelled out as each
    of their case partners (``urn res`` -> ``%urn res%``, ``%urn re\u017f%``) instead of a
    wildcard; None when there is no such letter."""
    alts = [""]
    spelled = False
    for c in literal:
        low = c.lower()
        partners = FOLD_PARTNERS.get(low) if c.isascii() else None
        if partners and len(alts) * len(partners) <= MAX_ALTERNATIVES:
            alts = [a + p for a in alts for p in partners]
            spelled = True
        elif c.isascii() and low not in UNSAFE_FOLD:
            alts = [a + low for a in alts]
        else:
            alts = [a if a.endswith("%") else a + "%" for a in alts]
    if not spelled:
        return None
    return [f"%{a.strip('%')}%" for a in alts]


def double_pattern(like: str) -> str:
    """``like`` for the doubled text of migration 0010 (``%qz%`` -> ``%qqzz%``)."""
    return "".join(c if c == "%" else c + c for c in like)


def has_trigram(like: str) -> bool:
    """Whether a trigram index can narrow ``like`` (a run of three characters)."""
    return any(len(run) >= 3 for run in like.split("%"))


def required_literal(regex: str) -> str | None:
    """The longest run of plain characters every match of ``regex`` contains (to take
    candidates from the index), or None when there is none (alternation at the top level)."""
    try:
        parsed = sre_parse.parse(regex)
    except re.error:
        return None
    best = ""
    run: list[str] = []
    for op, arg in parsed:
        if op is sre_constants.LITERAL:
            run.append(chr(arg))
            continue
        if len(run) > len(best):
            best = "".join(run)
        run = []
        if op is sre_constants.BRANCH:
            return None
    if len(run) > len(best):
        best = "".join(run)
    return best or None


def _spans(
    body: str, pattern: re.Pattern[str], literal: str | None, case: bool, word: bool
) -> Iterator[tuple[int, int]]:
    """The (start, end) of each match in ``body``, as ``pattern.finditer`` gives them. A plain
    literal (whole word or not) is found with ``str.find`` where that gives exactly the same
    matches: case-sensitive, or an ASCII literal in an ASCII text (Python's case folding maps no
    other character onto an ASCII one there); the regex engine's case-insensitive scan and the
    whole-word look-behind at every position were 3-6x slower (bench/README.md)."""
    if literal is not None and (case or (literal.isascii() and body.isascii())):
        hay = body if case else body.lower()
        needle = literal if case else literal.lower()
        n = len(needle)
        pos = hay.find(needle)
        while pos >= 0:
            end = pos + n
            # (?<!\w) and (?!\w) of the whole-word pattern, on the original text.
            if word and (
                (pos > 0 and _WORD_CHAR.match(body, pos - 1)) or _WORD_CHAR.match(body, end)
            ):
                pos = hay.find(needle, pos + 1)  # the regex would try the next position
                continue
            yield pos, end
            pos = hay.find(needle, end)
        return
    for m in pattern.finditer(body):
        yield m.span()


def _match_file(
    path: str,
    body: str,
    pattern: re.Pattern[str],
    room: int,
    literal: str | None = None,
    case: bool = False,
    word: bool = False,
    after_line: int = 0,
) -> FileMatches | None:
    """The matching lines of one file (at most ``room``, after line ``after_line``): matches
    found over the whole text (no split into lines), line numbers counted between them."""
    result = FileMatches(path)
    matches = result.matches
    skip_to = 0  # where line after_line + 1 starts
    for _ in range(after_line):
        skip_to = body.find("\n", skip_to) + 1
        if not skip_to:
            return None
    line_no = after_line + 1
    scanned = skip_to  # newlines are counted up to here
    current: LineMatch | None = None
    line_end = -1  # end of the current line (its newline), -1 before the first
    line_start = 0
    # Matches are found from the top even when resuming: where one ends decides where the next
    # may start (a match across lines), exactly as in one walk of the file.
    for start, end in _spans(body, pattern, literal, case, word):
        if end == start or start < skip_to:
            continue
        if current is None or start > line_end:
            if len(matches) >= room:
                break
            line_start = body.rfind("\n", 0, start) + 1
            line_no += body.count("\n", scanned, line_start)
            scanned = line_start
            line_end = body.find("\n", start)
            if line_end < 0:
                line_end = len(body)
            current = LineMatch(
                line_no, body[line_start : min(line_end, line_start + MAX_LINE_CHARS)], []
            )
            matches.append(current)
        col = start - line_start
        if col < MAX_LINE_CHARS:
            current.ranges.append((col, min(end - line_start, len(current.text))))
    return result if matches else None
