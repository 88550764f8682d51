"""Per-user IDE preferences, one JSON row per user (defaults until the first save)."""

from __future__ import annotations

from typing import Any

from coolcoding.db.engine import Database
from coolcoding.db.models import UserPreferences, utcnow


class PreferencesService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, user_id: int) -> dict[str, Any]:
        async with self.db.session() as s:
            row = await s.get(UserPreferences, user_id)
            return dict(row.data) if row is not None else {}

    async def put(self, user_id: int, data: dict[str, Any]) -> None:
        async with self.db.session() as s, s.begin():
            row = await s.get(UserPreferences, user_id)
            if row is None:
                s.add(UserPreferences(user_id=user_id, data=data, updated_at=utcnow()))
            else:
                row.data = data
                row.updated_at = utcnow()
