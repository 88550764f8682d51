"""Migrations: the same schema on SQLite and PostgreSQL, matching the models, and upgrades that keep data."""

import asyncio
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from coolcoding.db.migrate import upgrade
from coolcoding.db.models import Base
from tests.conftest import make_database


async def _diff_after_upgrade(url: str) -> list[object]:
    engine = create_async_engine(url)
    try:
        await upgrade(engine)
        await upgrade(engine)  # a second run is a no-op

        def diff(conn: object) -> list[object]:
            ctx = MigrationContext.configure(conn)  # type: ignore[arg-type]
            return list(compare_metadata(ctx, Base.metadata))

        async with engine.connect() as conn:
            return await conn.run_sync(diff)
    finally:
        await engine.dispose()


def test_migrations_produce_exactly_the_models_schema(backend: str, tmp_path: Path) -> None:
    db = make_database(backend, tmp_path)
    try:
        assert asyncio.run(_diff_after_upgrade(db.url)) == []
    finally:
        db.drop()


async def _upgrade_with_data(url: str) -> tuple[int, str]:
    engine = create_async_engine(url)
    try:
        await upgrade(engine, "0001")
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO users (username, email, password_hash, created_at, updated_at) "
                    "VALUES ('old', 'old@example.com', 'x', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
        await upgrade(engine, "head")
        async with engine.connect() as conn:
            n = (await conn.execute(text("SELECT count(*) FROM users"))).scalar_one()
            name = (await conn.execute(text("SELECT username FROM users"))).scalar_one()
            return int(n), str(name)
    finally:
        await engine.dispose()


def test_upgrade_from_the_first_schema_keeps_existing_rows(backend: str, tmp_path: Path) -> None:
    db = make_database(backend, tmp_path)
    try:
        assert asyncio.run(_upgrade_with_data(db.url)) == (1, "old")
    finally:
        db.drop()
