"""One hot statement straight on the asyncpg connection (PostgreSQL), SQLAlchemy's result as is.

The read and the save of one file are one statement each; through SQLAlchemy's
``AsyncConnection.execute`` each pays the greenlet hop, the execution context, the cursor
adapter and the result object around asyncpg's own prepared-statement call (py-spy: ~10% of the
server's CPU under the save/read load). ``first_row`` compiles the statement once with the
connection's dialect (the same SQL text SQLAlchemy sends, casts included), applies the same bind
and result processors (the UTC datetime type), and calls asyncpg's ``fetchrow`` (its statement
cache). Only on a connection of ``Database.reader`` (autocommit: the statement is its own
transaction) whose engine has the ``raw_statements`` execution option
(``COOLCODING_DB_RAW_HOT_STATEMENTS``). Any error (of the statement on the server: a unique
violation of a concurrent save, a serialization failure...; or of the connection) reruns it
through SQLAlchemy, which raises it wrapped as the rest of the code expects and invalidates a
dead connection (nothing was written: the failed statement rolled back on its own); SQLite always
goes through SQLAlchemy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import text
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import Executable, sqltypes
from sqlalchemy.sql.elements import TextClause

log = logging.getLogger(__name__)
RAW_OPTION = "coolcoding_raw_statements"
Processor = Callable[[Any], Any] | None


@dataclass(slots=True)
class WriteResult:
    """What one write statement did: its row count and the rows it returned (RETURNING)."""

    rowcount: int
    rows: list[tuple[Any, ...]] = field(default_factory=list)

    def scalar_one(self) -> Any:
        if len(self.rows) != 1:
            raise ValueError(f"expected one row, got {len(self.rows)}")
        return self.rows[0][0]


def _result_processor(type_: Any, dialect: Dialect) -> Callable[[Any], Any] | None:
    """SQLAlchemy's result processor of ``type_``. asyncpg's Float asks for the column's type
    oid, known only from a cursor: a Float column of ours is ``double precision`` (oid 701),
    for which it has none."""
    try:
        return cast("Callable[[Any], Any] | None", type_._cached_result_processor(dialect, None))
    except TypeError:
        if isinstance(type_, sqltypes.Float):
            return cast("Callable[[Any], Any] | None", type_._cached_result_processor(dialect, 701))
        raise


class _Compiled:
    __slots__ = ("by_name", "defaults", "names", "params", "positions", "returns_rows", "sql")

    def __init__(self, stmt: Executable, dialect: Dialect) -> None:
        compiled = stmt.compile(dialect=dialect)  # type: ignore[attr-defined]
        self.sql: str = compiled.string
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        binds: Mapping[str, Processor] = compiled._bind_processors
        self.params: tuple[Processor, ...] = tuple(binds.get(n) for n in self.names)
        # The values the statement carries itself (``version + 1``, ``type = 'file'``).
        self.defaults: dict[str, Any] = {
            n: compiled.binds[n].effective_value
            for n in self.names
            if n in compiled.binds and not compiled.binds[n].required
        }
        # By result column name (a text() statement's typed columns are matched by name too);
        # their positions come from the first record (``positions``).
        by_name: dict[str, Callable[[Any], Any]] = {}
        for column in compiled._result_columns:
            proc = _result_processor(column[3], dialect)
            if proc is not None:
                by_name[column[0]] = proc
        self.by_name = by_name
        self.positions: tuple[tuple[int, Callable[[Any], Any]], ...] | None = None
        self.returns_rows = bool(compiled._result_columns)

    def arguments(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        """The driver's positional arguments: ``params`` (or the statement's own values) through
        SQLAlchemy's bind processors."""
        defaults = self.defaults
        args = []
        for n, p in zip(self.names, self.params, strict=True):
            v = params[n] if n in params else defaults[n]
            args.append(v if p is None else p(v))
        return tuple(args)

    def row(self, record: Any) -> tuple[Any, ...]:
        if not self.by_name:
            return tuple(record)
        if self.positions is None:
            self.positions = tuple(
                (i, self.by_name[k]) for i, k in enumerate(record.keys()) if k in self.by_name
            )
        values = list(record)
        for i, proc in self.positions:
            values[i] = proc(values[i])
        return tuple(values)


_CACHE: dict[tuple[int, str], tuple[Executable, _Compiled | None]] = {}


def compiled_statement(stmt: Executable, dialect: Dialect) -> _Compiled | None:
    """``stmt`` compiled once per dialect (None: not one this path can run as is)."""
    key = (id(stmt), f"{dialect.name}+{dialect.driver}")
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is stmt:
        return hit[1]
    try:
        compiled: _Compiled | None = _Compiled(stmt, dialect)
    except Exception:  # anything SQLAlchemy compiles differently per call: not for this path
        compiled = None
    if compiled is not None and "POSTCOMPILE" in compiled.sql:
        compiled = None
    _CACHE[key] = (stmt, compiled)  # module-level statements: a handful, kept alive
    return compiled


async def first_row(
    conn: AsyncConnection, stmt: Executable, params: Mapping[str, Any]
) -> Sequence[Any] | None:
    """``(await conn.execute(stmt, params)).first()``, straight on asyncpg when allowed."""
    sync = conn.sync_connection
    if (
        sync is not None
        and conn.dialect.name == "postgresql"
        and sync.get_execution_options().get(RAW_OPTION)
    ):
        compiled = compiled_statement(stmt, conn.dialect)
        if compiled is not None:
            args = compiled.arguments(params)
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            try:
                record = await driver.fetchrow(compiled.sql, *args)
            except Exception as exc:
                # Rerun below: SQLAlchemy raises it wrapped, and invalidates a dead connection
                # (a PostgreSQL restart) instead of leaving it in the pool for the next request.
                log.debug("raw statement failed, rerun through SQLAlchemy: %r", exc)
            else:
                return None if record is None else compiled.row(record)
    return (await conn.execute(stmt, dict(params))).first()


async def write(
    conn: AsyncConnection,
    stmt: Executable,
    params: Mapping[str, Any],
    listeners: Sequence[Callable[[str], None]] = (),
) -> WriteResult:
    """ONE write statement on ``conn`` (PostgreSQL, autocommit: ``Database.write``), straight on
    asyncpg when allowed (~0.06 ms of CPU against ~0.33 through SQLAlchemy). Unlike a read, a
    write is rerun through SQLAlchemy only when PostgreSQL itself refused it (the statement rolled
    back by itself: nothing was written); any other failure (the connection lost, a cancel) may
    have come after the commit: the connection is invalidated and the error raised, never rerun
    (the API answers asyncpg's connection errors with a 503, as it does SQLAlchemy's)."""
    sync = conn.sync_connection
    compiled = None
    # A plain text() does not say whether it returns rows (SQLAlchemy learns it from the
    # cursor): only Core statements, whose RETURNING is known, take the raw path.
    if (
        sync is not None
        and conn.dialect.name == "postgresql"
        and sync.get_execution_options().get(RAW_OPTION)
        and not isinstance(stmt, TextClause)
    ):
        compiled = compiled_statement(stmt, conn.dialect)
    if compiled is not None:
        args = compiled.arguments(params)
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        try:
            if compiled.returns_rows:
                # The typed columns through SQLAlchemy's result processors, as ``first_row``
                rows = [compiled.row(r) for r in await driver.fetch(compiled.sql, *args)]
                result = WriteResult(len(rows), rows)
            else:
                status: str = await driver.execute(compiled.sql, *args)
                result = WriteResult(int(status.rsplit(" ", 1)[-1]))
        except asyncpg.PostgresError as exc:
            log.debug("raw write refused, rerun through SQLAlchemy: %r", exc)
        except Exception as exc:
            # Not rerun. SQLAlchemy's own disconnect handling (this connection and every older
            # one in the pool invalidated, a DBAPIError with connection_invalidated: a 503) by a
            # no-op statement on the same connection; if that works, drop the connection anyway.
            try:
                await conn.execute(text("SELECT 1"))
            except Exception as probe:
                raise probe from exc
            await conn.invalidate()
            raise
        except BaseException:  # cancelled mid-statement: the connection's state is unknown
            await conn.invalidate()
            raise
        else:
            for listener in listeners:  # SQLAlchemy's cursor events did not see it
                listener(compiled.sql)
            return result
    res = await conn.execute(stmt, dict(params))
    rows = [tuple(r) for r in res.all()] if res.returns_rows else []
    return WriteResult(res.rowcount, rows)
