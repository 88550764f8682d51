"""Migrations: the same schema on SQLite and PostgreSQL, matching the models, and upgrades that keep data."""

import asyncio
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import create_async_engine

from coolcoding.db.migrate import upgrade
from coolcoding.db.models import Base
from tests.conftest import make_database


def _not_search_index(name: str | None, type_: str, parent_names: object) -> bool:
    # The search index's table and indexes (migrations 0005, 0010), its restore guard (0011) and
    # its marks of entries to refresh (0012),
    # named workspace_search*, are not models; nor is PostgreSQL's generated flag of the text
    # files with a NUL (0013), which the database computes.
    if type_ == "column" and name == "search_nul":
        return False
    return not (type_ in ("table", "index") and (name or "").startswith("workspace_search"))


async def _diff_after_upgrade(url: str) -> list[object]:
    engine = create_async_engine(url)
    try:
        await upgrade(engine)
        await upgrade(engine)  # a second run is a no-op

        def diff(conn: object) -> list[object]:
            # The search index (migration 0005) is maintained by triggers, not by the models.
            ctx = MigrationContext.configure(
                conn,  # type: ignore[arg-type]
                opts={"include_name": _not_search_index},
            )
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


def _insert_user(username: str, email: str) -> Any:
    return text(
        "INSERT INTO users (username, email, password_hash, created_at, updated_at) "
        f"VALUES ('{username}', '{email}', 'x', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
    )


async def _case_variants_after_upgrade(url: str) -> list[str]:
    """Upgrade a schema holding 'Mixed'; then insert case variants: each must be refused."""
    engine = create_async_engine(url)
    refused = []
    try:
        await upgrade(engine, "0001")
        async with engine.begin() as conn:
            await conn.execute(_insert_user("Mixed", "mixed@example.com"))
        await upgrade(engine, "head")
        for username, email in [("mIXED", "other@example.com"), ("other", "MIXED@example.com")]:
            try:
                async with engine.begin() as conn:
                    await conn.execute(_insert_user(username, email))
            except IntegrityError:
                refused.append(username)
        return refused
    finally:
        await engine.dispose()


def test_upgrade_makes_usernames_and_emails_case_insensitive(backend: str, tmp_path: Path) -> None:
    db = make_database(backend, tmp_path)
    try:
        assert asyncio.run(_case_variants_after_upgrade(db.url)) == ["mIXED", "other"]
    finally:
        db.drop()


async def _upgrade_with_case_duplicates(url: str) -> tuple[str, int]:
    engine = create_async_engine(url)
    try:
        await upgrade(engine, "0001")
        async with engine.begin() as conn:
            await conn.execute(_insert_user("dup", "a@example.com"))
            await conn.execute(_insert_user("DUP", "b@example.com"))
        with pytest.raises(RuntimeError) as refused:
            await upgrade(engine, "head")
        async with engine.connect() as conn:
            n = (await conn.execute(text("SELECT count(*) FROM users"))).scalar_one()
        return str(refused.value), int(n)
    finally:
        await engine.dispose()


def test_upgrade_refuses_accounts_that_differ_only_in_case(backend: str, tmp_path: Path) -> None:
    """Existing case duplicates are not merged or dropped: the upgrade stops and names them."""
    db = make_database(backend, tmp_path)
    try:
        message, rows = asyncio.run(_upgrade_with_case_duplicates(db.url))
        assert "'dup'" in message and "'DUP'" in message and "differ only in case" in message
        assert rows == 2
    finally:
        db.drop()


async def _search_indexes(url: str, revision: str) -> set[str]:
    from coolcoding.db.migrate import alembic_config

    engine = create_async_engine(url)
    try:
        await upgrade(engine, "head")
        if revision != "head":
            from alembic import command

            def down(conn: Any) -> None:
                cfg = alembic_config(url)
                cfg.attributes["connection"] = conn
                command.downgrade(cfg, revision)

            async with engine.begin() as conn:
                await conn.run_sync(down)
        sql = (
            "SELECT indexname FROM pg_indexes WHERE indexname LIKE 'workspace_search_%'"
            if engine.dialect.name == "postgresql"
            else "SELECT name FROM sqlite_master WHERE type = 'index' "
            "AND name LIKE 'workspace_search_%'"
        )
        async with engine.connect() as conn:
            return {str(r[0]) for r in (await conn.execute(text(sql))).all()}
    finally:
        await engine.dispose()


def test_migration_0010_search_indexes_upgrade_and_downgrade(backend: str, tmp_path: Path) -> None:
    db = make_database(backend, tmp_path)
    try:
        up = asyncio.run(_search_indexes(db.url, "head"))
        assert "workspace_search_nul_files" in up
        assert ("workspace_search_doubled" in up) == (backend == "postgres")
        down = asyncio.run(_search_indexes(db.url, "0009"))
        assert not {"workspace_search_nul_files", "workspace_search_doubled"} & down
        assert "workspace_search_nul_files" in asyncio.run(_search_indexes(db.url, "head"))
    finally:
        db.drop()


async def _nul_index(url: str, revision: str) -> tuple[str, bool, list[str]]:
    """Upgrade or downgrade to ``revision``; the NUL-file index's definition, whether
    ``workspace_items`` has the generated flag, and the paths the index's predicate lists."""
    engine = create_async_engine(url)
    try:
        from alembic import command

        from coolcoding.db.migrate import alembic_config

        cfg = alembic_config(url)

        def run(conn: Any) -> None:
            cfg.attributes["connection"] = conn
            current = MigrationContext.configure(conn).get_current_revision()
            if revision != "head" and current is not None and int(current) > int(revision):
                command.downgrade(cfg, revision)
            else:
                command.upgrade(cfg, revision)

        async with engine.begin() as conn:
            await conn.run_sync(run)
        async with engine.connect() as conn:
            indexdef = str(
                (
                    await conn.execute(
                        text(
                            "SELECT indexdef FROM pg_indexes"
                            " WHERE indexname = 'workspace_search_nul_files'"
                        )
                    )
                ).scalar_one()
            )
            has_flag = bool(
                (
                    await conn.execute(
                        text(
                            "SELECT COUNT(*) FROM information_schema.columns"
                            " WHERE table_name = 'workspace_items' AND column_name = 'search_nul'"
                        )
                    )
                ).scalar_one()
            )
            where = indexdef.split(" WHERE ", 1)[1]
            paths = sorted(
                str(r[0])
                for r in (
                    await conn.execute(text(f"SELECT full_path FROM workspace_items WHERE {where}"))
                ).all()
            )
            return indexdef, has_flag, paths
    finally:
        await engine.dispose()


def test_migration_0013_nul_flag_upgrade_and_downgrade(backend: str, tmp_path: Path) -> None:
    """PostgreSQL: 0013 moves the NUL-file index's predicate onto a generated flag (computed for
    the rows already there) and back on downgrade, listing the same files; SQLite: unchanged."""
    if backend != "postgres":
        pytest.skip("0013 changes PostgreSQL only (SQLite has no HOT update)")
    db = make_database(backend, tmp_path)

    async def seed() -> None:
        from sqlalchemy.ext.asyncio import AsyncSession

        from coolcoding.db.models import CodeSession, User, WorkspaceItem

        engine = create_async_engine(db.url)
        try:
            await upgrade(engine, "head")
            async with AsyncSession(engine) as s:
                u = User(username="nul", email="nul@example.com", password_hash="x")
                s.add(u)
                await s.flush()
                sess = CodeSession(user_id=u.id, name="n")
                s.add(sess)
                await s.flush()
                for path, content in (
                    ("late.txt", b"x" * 9000 + b"\0 after"),
                    ("early.bin", b"\0" + b"x" * 9000),
                    ("plain.txt", b"x" * 9000),
                ):
                    s.add(
                        WorkspaceItem(
                            session_id=sess.id,
                            name=path,
                            type="file",
                            content=content,
                            is_binary=path.endswith(".bin"),
                            size_bytes=len(content),
                            full_path=path,
                        )
                    )
                await s.commit()
        finally:
            await engine.dispose()

    try:
        asyncio.run(seed())
        indexdef, flag, paths = asyncio.run(_nul_index(db.url, "0013"))
        assert flag and indexdef.endswith("WHERE search_nul"), indexdef
        assert paths == ["late.txt"]
        indexdef, flag, paths = asyncio.run(_nul_index(db.url, "0012"))
        assert not flag and "position" in indexdef.lower(), indexdef
        assert paths == ["late.txt"]
        indexdef, flag, paths = asyncio.run(_nul_index(db.url, "head"))
        assert flag and paths == ["late.txt"]
    finally:
        db.drop()
