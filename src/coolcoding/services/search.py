"""Full-text search across a workspace's files, served by the database (works with the sandbox
stopped).

Candidates come from the search index of migration 0005 (PostgreSQL: pg_trgm on
``workspace_search.body``; SQLite: an FTS5 trigram table), kept in sync by triggers on
``workspace_items``; the exact match (regex, case, whole word) then runs here, line by line.
A query the index cannot narrow (shorter than three characters, or a regex) scans the
workspace's text files.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

# The standard library's regex parser (private, stable since 3.11), used only to find a literal
# that every match contains.
from re import _constants as sre_constants  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]

from sqlalchemy import text

from coolcoding.db.engine import Database
from coolcoding.errors import InvalidInput
from coolcoding.services.workspace_types import WorkspaceRef
from coolcoding.settings import Settings

MAX_LINE_CHARS = 400

PG_CANDIDATES = text(
    "SELECT s.item_id, i.full_path FROM workspace_search s "
    "JOIN workspace_items i ON i.id = s.item_id "
    "WHERE s.session_id = :sid AND s.body ILIKE :pattern ESCAPE '\\' LIMIT :max_files"
)
SQLITE_CANDIDATES = text(
    "SELECT s.rowid, i.full_path FROM workspace_search s "
    "JOIN workspace_items i ON i.id = s.rowid "
    "WHERE s.body MATCH :match AND s.session_id = :sid LIMIT :max_files"
)
PG_ALL = text(
    "SELECT s.item_id, i.full_path FROM workspace_search s "
    "JOIN workspace_items i ON i.id = s.item_id WHERE s.session_id = :sid"
)
SQLITE_ALL = text(
    "SELECT s.rowid, i.full_path FROM workspace_search s "
    "JOIN workspace_items i ON i.id = s.rowid WHERE s.session_id = :sid"
)
PG_BODIES = text("SELECT item_id, body FROM workspace_search WHERE item_id = ANY(:ids)")
SQLITE_BODIES = text(
    "SELECT rowid, body FROM workspace_search WHERE rowid IN (SELECT value FROM json_each(:ids))"
)
CUSTOM_PLAN = text("SET LOCAL plan_cache_mode = force_custom_plan")
# Bodies are fetched in path order, this many files at a time, until the result limit is reached.
BODY_BATCH = 100


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
    match_count: int
    truncated: bool


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

    async def search(self, ref: WorkspaceRef, q: SearchQuery) -> SearchResult:
        pattern = self.compile(q)
        includes, excludes = _globs(q.include), _globs(q.exclude)
        postgres = self.db.engine.dialect.name == "postgresql"
        literal = q.query if not q.regex else required_literal(q.query)
        params: dict[str, object] = {
            "sid": ref.session_id,
            "max_files": self.settings.search_max_files,
        }
        if literal is not None and len(literal) >= 3 and postgres:
            stmt = PG_CANDIDATES
            params["pattern"] = "%" + re.sub(r"([\\%_])", r"\\\1", literal) + "%"
        elif literal is not None and len(literal) >= 3:
            stmt = SQLITE_CANDIDATES
            params["match"] = '"' + literal.replace('"', '""') + '"'
        else:
            stmt = PG_ALL if postgres else SQLITE_ALL
        limit = self.settings.search_max_results
        files: list[FileMatches] = []
        count = 0
        async with self.db.engine.connect() as conn, conn.begin():
            if postgres and stmt is PG_CANDIDATES:
                # The statement is prepared: after a few runs PostgreSQL may switch to a generic
                # plan, which cannot see how rare the pattern is and, under the LIMIT, reads every
                # body of the session (200 ms at 10,000 files) instead of the trigram index (2 ms).
                await conn.execute(CUSTOM_PLAN)
            # Phase 1: which files (ids and paths only), filtered by the globs, in path order.
            rows = (await conn.execute(stmt, params)).all()
            # A term in more files than the index may hand over is answered from those it did
            # (the database stops reading there): the result says it is cut.
            from_index = stmt is PG_CANDIDATES or stmt is SQLITE_CANDIDATES
            truncated = from_index and len(rows) >= self.settings.search_max_files
            candidates = sorted(
                (
                    (path, item_id)
                    for item_id, path in rows
                    if (not includes or any(g.match(path) for g in includes))
                    and not (excludes and any(g.match(path) for g in excludes))
                ),
            )
            # Phase 2: their text, a batch at a time, until enough lines matched.
            for i in range(0, len(candidates), BODY_BATCH):
                batch = candidates[i : i + BODY_BATCH]
                ids = [item_id for _, item_id in batch]
                if postgres:
                    texts = await conn.execute(PG_BODIES, {"ids": ids})
                else:
                    texts = await conn.execute(SQLITE_BODIES, {"ids": json.dumps(ids)})
                bodies: dict[int, str] = {r[0]: r[1] for r in texts.all()}
                for path, item_id in batch:
                    found = _match_file(path, bodies.get(item_id) or "", pattern, limit - count)
                    if found is None:
                        continue
                    files.append(found)
                    count += len(found.matches)
                    if count >= limit:
                        break
                if count >= limit:
                    truncated = True
                    break
        return SearchResult(files, count, truncated)


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


def _match_file(path: str, body: str, pattern: re.Pattern[str], room: int) -> FileMatches | None:
    """The matching lines of one file: matches found over the whole text (no split into lines),
    line numbers counted between them."""
    result = FileMatches(path)
    line_no = 1
    scanned = 0  # newlines are counted up to here
    current: LineMatch | None = None
    current_start = -1
    for m in pattern.finditer(body):
        start, end = m.span()
        if end == start:
            continue
        line_start = body.rfind("\n", 0, start) + 1
        if line_start != current_start:
            if len(result.matches) >= room:
                break
            line_no += body.count("\n", scanned, line_start)
            scanned = line_start
            line_end = body.find("\n", start)
            line = body[line_start : line_end if line_end >= 0 else len(body)]
            current = LineMatch(line_no, line[:MAX_LINE_CHARS], [])
            current_start = line_start
            result.matches.append(current)
        assert current is not None
        col = start - line_start
        if col < MAX_LINE_CHARS:
            current.ranges.append((col, min(end - line_start, len(current.text))))
    return result if result.matches else None
