"""Session/replica leases on SQLite and PostgreSQL: acquire, renew, lapse, takeover, and one
winner among contenders racing on separate connections (separate engines, as replicas are)."""

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest

from coolcoding.db import leases as stmts
from coolcoding.db.engine import Database
from coolcoding.db.migrate import upgrade
from coolcoding.db.models import utcnow
from coolcoding.services.leases import LeaseService, client_lease, session_lease
from tests.conftest import make_database, make_settings

TTL = timedelta(seconds=30)
DbFactory = Callable[[], Database]


@pytest.fixture
async def databases(backend: str, tmp_path: Path) -> AsyncIterator[DbFactory]:
    """Makes independent ``Database``s (engines, pools) on one fresh, migrated database."""
    test_db = await asyncio.to_thread(make_database, backend, tmp_path)
    made: list[Database] = []

    def make() -> Database:
        db = Database(make_settings(tmp_path, test_db.url, lease_ttl_s=30))
        made.append(db)
        return db

    await upgrade(make().engine)
    try:
        yield make
    finally:
        for db in made:
            await db.dispose()
        await asyncio.to_thread(test_db.drop)


async def test_acquire_renew_and_release(databases: DbFactory) -> None:
    db = databases()
    now = utcnow()
    assert await stmts.take(db.engine, "session:a", "rep-1", "http://a", now, now + TTL)
    assert await stmts.take(db.engine, "session:a", "rep-1", "http://a", now, now + 2 * TTL)
    assert not await stmts.take(db.engine, "session:a", "rep-2", None, now, now + TTL)
    assert await stmts.renew(db.engine, ["session:a", "session:b"], "rep-1", now + TTL) == {
        "session:a"
    }
    assert await stmts.renew(db.engine, ["session:a"], "rep-2", now + TTL) == set()
    assert await stmts.live(db.engine, ["session:a"], now) == {"session:a": ("rep-1", "http://a")}
    await stmts.release(db.engine, ["session:a"], "rep-2")  # not theirs: kept
    assert "session:a" in await stmts.live(db.engine, ["session:a"], now)
    await stmts.release(db.engine, ["session:a"], "rep-1")
    assert await stmts.live(db.engine, ["session:a"], now) == {}
    assert await stmts.take(db.engine, "session:a", "rep-2", None, now, now + TTL)


async def test_a_lapsed_lease_is_taken_over_and_its_old_holder_cannot_renew(
    databases: DbFactory,
) -> None:
    db = databases()
    now = utcnow()
    assert await stmts.take(db.engine, "session:x", "rep-1", None, now, now + TTL)
    later = now + TTL + timedelta(seconds=1)
    assert await stmts.live(db.engine, ["session:x"], later) == {}
    assert await stmts.take(db.engine, "session:x", "rep-2", None, later, later + TTL)
    assert await stmts.renew(db.engine, ["session:x"], "rep-1", later + TTL) == set()
    assert not await stmts.take(db.engine, "session:x", "rep-1", None, later, later + TTL)


@pytest.mark.parametrize("lapsed_row", [False, True], ids=["no-row", "lapsed-row"])
async def test_contenders_at_once_get_exactly_one_winner(
    databases: DbFactory, lapsed_row: bool
) -> None:
    contenders = [databases() for _ in range(6)]
    for round_no in range(5):
        name = f"session:race-{round_no}"
        now = utcnow()
        if lapsed_row:  # the row exists but lapsed: every contender's UPDATE may match it
            past = now - 2 * TTL
            assert await stmts.take(contenders[0].engine, name, "rep-dead", None, past, past + TTL)
        wins = await asyncio.gather(
            *(
                stmts.take(db.engine, name, f"rep-{i}", None, now, now + TTL)
                for i, db in enumerate(contenders)
            )
        )
        assert sum(wins) == 1, wins
        winner = f"rep-{wins.index(True)}"
        assert (await stmts.live(contenders[0].engine, [name], now))[name][0] == winner


async def test_a_replica_whose_lease_was_taken_over_is_told_and_stops_renewing_it(
    databases: DbFactory, tmp_path: Path
) -> None:
    db = databases()
    settings = make_settings(tmp_path, "sqlite://", lease_ttl_s=30)
    mine = LeaseService(db, settings)
    lost: list[str] = []

    async def on_lost(name: str) -> None:
        lost.append(name)

    name = session_lease("s1")
    assert await mine.acquire(name, on_lost)
    assert await mine.renew_all() == set()
    assert mine.holds(name)
    # The replica lost the DB past its TTL; another one took the session over.
    later = utcnow() + TTL + timedelta(seconds=1)
    assert await stmts.take(db.engine, name, "rep-other", None, later, later + TTL)
    assert await mine.renew_all() == {name}
    assert lost == [name]
    assert not mine.holds(name)
    assert (await stmts.live(db.engine, [name], later))[name][0] == "rep-other"


async def test_live_replicas_are_those_whose_replica_lease_is_live(
    databases: DbFactory, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, "sqlite://", lease_ttl_s=30, lease_renew_interval_s=60)
    a, b = LeaseService(databases(), settings), LeaseService(databases(), settings)
    await a.start()
    await b.start()
    assert await a.live_replicas([a.replica_id, b.replica_id, "rep-gone"]) == {
        a.replica_id,
        b.replica_id,
    }
    await b.stop()  # a clean stop gives its leases back at once
    assert await a.live_replicas([a.replica_id, b.replica_id]) == {a.replica_id}
    await a.stop()


async def test_job_recovery_leaves_live_replicas_rows_and_claims_dead_ones_once(
    databases: DbFactory, tmp_path: Path
) -> None:
    """Start-up recovery with leases: a live replica's running and queued jobs are left alone;
    a dead replica's running job is failed and its queued judge job re-queued by exactly one of
    two replicas recovering at once."""
    from coolcoding.db.models import Execution, User
    from coolcoding.execution.judge import Judge
    from coolcoding.execution.languages import LanguageRegistry
    from coolcoding.services.executions import ExecutionService
    from coolcoding.services.ratelimit import RateLimiter

    settings = make_settings(tmp_path, "sqlite://", lease_ttl_s=30, lease_renew_interval_s=60)
    live = LeaseService(databases(), settings)
    await live.start()
    db = databases()
    async with db.session() as s:
        user = User(username="jobs", email="jobs@example.com", password_hash="x")
        s.add(user)
        await s.flush()
        rows = {
            (owner, status): Execution(
                user_id=user.id, kind="judge", language="bash", status=status, owner=owner
            )
            for owner in (live.replica_id, "rep-dead")
            for status in ("running", "queued")
        }
        s.add_all(rows.values())
        await s.commit()

    def service() -> ExecutionService:
        svc = ExecutionService(
            databases(), settings, LanguageRegistry(), Judge(None, LanguageRegistry(), settings),
            RateLimiter(10, 60),
        )  # fmt: skip
        svc.leases = LeaseService(svc.db, settings)
        return svc

    first, second = service(), service()
    assert first.leases is not None and second.leases is not None
    await first.leases.start()
    await second.leases.start()
    requeued = await asyncio.gather(first.recover(), second.recover())
    assert sorted(requeued) == [0, 1]
    async with db.session() as s:
        got = {k: await s.get(Execution, r.id, populate_existing=True) for k, r in rows.items()}
    assert got[(live.replica_id, "running")].status == "running"  # type: ignore[union-attr]
    assert got[(live.replica_id, "queued")].status == "queued"  # type: ignore[union-attr]
    assert got[(live.replica_id, "queued")].owner == live.replica_id  # type: ignore[union-attr]
    assert got[("rep-dead", "running")].verdict == "internal_error"  # type: ignore[union-attr]
    claimed = got[("rep-dead", "queued")]
    assert claimed is not None and claimed.status == "queued"
    assert claimed.owner in {first.owner, second.owner}
    for svc in (first, second):
        assert svc.leases is not None
        await svc.leases.stop()
    await live.stop()


async def test_client_leases_tell_the_holder_that_other_replicas_serve_the_session(
    databases: DbFactory, tmp_path: Path
) -> None:
    """The holder's idle stop waits while another replica serves clients of the session (a
    ``client_lease``); a dead replica's lapses after the TTL; sessions are not confused."""
    settings = make_settings(tmp_path, "sqlite://", lease_ttl_s=30, lease_renew_interval_s=60)
    holder, other = LeaseService(databases(), settings), LeaseService(databases(), settings)
    assert not await holder.has_clients("s1")
    assert await other.acquire(client_lease("s1", other.replica_id))
    assert await other.acquire(client_lease("s10", other.replica_id))
    assert await holder.has_clients("s1") and await holder.has_clients("s10")
    await other.release(client_lease("s1", other.replica_id))
    assert not await holder.has_clients("s1")  # "s10"'s lease is not "s1"'s
    # A replica that died holding one: it counts until its TTL, then not.
    db = databases()
    past = utcnow() - TTL - TTL
    assert await stmts.take(db.engine, client_lease("s2", "dead"), "dead", None, past, past + TTL)
    assert not await holder.has_clients("s2")
