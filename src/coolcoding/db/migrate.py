"""Apply Alembic migrations programmatically (``coolcoding db upgrade`` and app start-up)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine

from coolcoding.settings import Settings

_HERE = Path(__file__).resolve().parent


def alembic_config(url: str) -> Config:
    cfg = Config(str(_HERE / "alembic.ini"))
    cfg.set_main_option("script_location", str(_HERE / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade the database behind ``engine`` to ``revision``."""

    def _do(connection: object) -> None:
        cfg = alembic_config(str(engine.url))
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)

    async with engine.begin() as conn:
        await conn.run_sync(_do)


async def upgrade_database(settings: Settings) -> None:
    """Upgrade the database of ``settings`` to head on an engine of its own, then dispose of
    it (before a process's app exists: the ``--workers`` supervisor, a mode switch's reclaim)."""
    from coolcoding.db.engine import Database

    db = Database(settings)
    try:
        await upgrade(db.engine)
    finally:
        await db.dispose()
