"""Full-text search across a workspace's files, served by the database (works with the sandbox
stopped).

Candidates come from the search index of migration 0005 (PostgreSQL: pg_trgm on
``workspace_search.body``; SQLite: an FTS5 trigram table), kept in sync by triggers on
``workspace_items``; the exact match (regex, case, whole word) then runs here, line by line.
A query the index cannot narrow (shorter than three characters, or a regex) scans the
workspace's text files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy import text

from coolcoding.db.engine import Database
from coolcoding.errors import InvalidInput
from coolcoding.services.workspace_types import WorkspaceRef
from coolcoding.settings import Settings

MAX_LINE_CHARS = 400

PG_CANDIDATES = text(
    "SELECT i.full_path, s.body FROM workspace_search s "
    "JOIN workspace_items i ON i.id = s.item_id "
    "WHERE s.session_id = :sid AND s.body ILIKE :pattern ESCAPE '\\' ORDER BY i.full_path"
)
SQLITE_CANDIDATES = text(
    "SELECT i.full_path, s.body FROM workspace_search s "
    "JOIN workspace_items i ON i.id = s.rowid "
    "WHERE s.body MATCH :match AND s.session_id = :sid ORDER BY i.full_path"
)
PG_ALL = text(
    "SELECT i.full_path, s.body FROM workspace_search s "
    "JOIN workspace_items i ON i.id = s.item_id WHERE s.session_id = :sid ORDER BY i.full_path"
)
SQLITE_ALL = text(
    "SELECT i.full_path, s.body FROM workspace_search s "
    "JOIN workspace_items i ON i.id = s.rowid WHERE s.session_id = :sid ORDER BY i.full_path"
)


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
        use_index = not q.regex and len(q.query) >= 3
        params: dict[str, object] = {"sid": ref.session_id}
        if use_index and postgres:
            stmt = PG_CANDIDATES
            params["pattern"] = "%" + re.sub(r"([\\%_])", r"\\\1", q.query) + "%"
        elif use_index:
            stmt = SQLITE_CANDIDATES
            params["match"] = '"' + q.query.replace('"', '""') + '"'
        else:
            stmt = PG_ALL if postgres else SQLITE_ALL
        limit = self.settings.search_max_results
        files: list[FileMatches] = []
        count = 0
        truncated = False
        async with self.db.read() as conn:
            rows = (await conn.execute(stmt, params)).all()
        for path, body in rows:
            if includes and not any(g.match(path) for g in includes):
                continue
            if excludes and any(g.match(path) for g in excludes):
                continue
            found = _match_file(path, body, pattern, limit - count)
            if found is None:
                continue
            files.append(found)
            count += len(found.matches)
            if count >= limit:
                truncated = True
                break
        return SearchResult(files, count, truncated)


def _match_file(path: str, body: str, pattern: re.Pattern[str], room: int) -> FileMatches | None:
    if pattern.search(body) is None:
        return None
    result = FileMatches(path)
    for number, line in enumerate(body.splitlines(), start=1):
        ranges = [
            (m.start(), m.end())
            for m in pattern.finditer(line)
            if m.end() > m.start() and m.start() < MAX_LINE_CHARS
        ]
        if not ranges:
            continue
        ranges = [(s, min(e, MAX_LINE_CHARS)) for s, e in ranges]
        result.matches.append(LineMatch(number, line[:MAX_LINE_CHARS], ranges))
        if len(result.matches) >= room:
            break
    return result if result.matches else None
