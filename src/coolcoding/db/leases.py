"""Statements of the ``leases`` table: conditional acquire/renew/release, the same on SQLite and
PostgreSQL.

A lease is taken by one conditional ``UPDATE ... WHERE name = :n AND (expires_at < :now OR
holder = :me)`` (or the ``INSERT`` of its first row, which the primary key lets only one
contender win): PostgreSQL re-checks the ``WHERE`` of a concurrent ``UPDATE`` on the row version
the winner committed, and SQLite serializes writers, so two contenders never both succeed.
Times are the callers' clocks (UTC): replicas' clocks must agree within a small part of the TTL.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from coolcoding.db.models import Lease


async def take(
    engine: AsyncEngine,
    name: str,
    holder: str,
    address: str | None,
    now: datetime,
    expires_at: datetime,
    predecessor_prefix: str | None = None,
) -> bool:
    """Take or renew ``name`` for ``holder`` unless another holder's lease is still live; with
    ``predecessor_prefix``, also from a live holder whose id starts with it (a dead earlier
    process of the same server, see ``LeaseService.acquire``)."""
    free = or_(Lease.expires_at < now, Lease.holder == holder)
    if predecessor_prefix:
        free = or_(free, Lease.holder.startswith(predecessor_prefix, autoescape=True))
    taken = (
        update(Lease)
        .where(Lease.name == name, free)
        .values(holder=holder, address=address, expires_at=expires_at)
    )
    async with engine.begin() as conn:
        if (await conn.execute(taken)).rowcount == 1:
            return True
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(Lease).values(
                    name=name, holder=holder, address=address, expires_at=expires_at
                )
            )
        return True
    except IntegrityError:
        # The row exists: someone else made it meanwhile (or holds it live); one more try.
        async with engine.begin() as conn:
            return bool((await conn.execute(taken)).rowcount == 1)


async def renew(
    engine: AsyncEngine, names: Collection[str], holder: str, expires_at: datetime
) -> set[str]:
    """Extend those of ``names`` that ``holder`` still holds; the names it holds."""
    if not names:
        return set()
    async with engine.begin() as conn:
        rows = await conn.execute(
            update(Lease)
            .where(Lease.name.in_(list(names)), Lease.holder == holder)
            .values(expires_at=expires_at)
            .returning(Lease.name)
        )
        return {str(r[0]) for r in rows}


async def release(engine: AsyncEngine, names: Collection[str], holder: str) -> None:
    """Give up ``names`` if ``holder`` holds them (another's lease is never touched)."""
    if not names:
        return
    async with engine.begin() as conn:
        await conn.execute(delete(Lease).where(Lease.name.in_(list(names)), Lease.holder == holder))


async def live(
    engine: AsyncEngine, names: Collection[str], now: datetime
) -> dict[str, tuple[str, str | None]]:
    """The live ones of ``names``: name -> (holder, address)."""
    if not names:
        return {}
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(Lease.name, Lease.holder, Lease.address).where(
                Lease.name.in_(list(names)), Lease.expires_at >= now
            )
        )
        return {str(n): (str(h), a) for n, h, a in rows}


async def live_prefixed(engine: AsyncEngine, prefix: str, now: datetime) -> int:
    """How many live leases have a name starting with ``prefix``."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(Lease.name).where(
                Lease.name.startswith(prefix, autoescape=True), Lease.expires_at >= now
            )
        )
        return len(rows.all())
