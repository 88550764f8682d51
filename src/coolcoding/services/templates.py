"""Starter templates: rows of ``session_templates``/``template_files`` (seeded by migration 0005;
more can be added with SQL, no code). A new workspace gets its language's default template, or
the one named at creation."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from coolcoding.db.engine import Database
from coolcoding.db.models import CodeSession, SessionTemplate, TemplateFile
from coolcoding.errors import Conflict, InvalidInput
from coolcoding.services.workspace import WorkspaceService
from coolcoding.services.workspace_types import WorkspaceRef


@dataclass(frozen=True)
class TemplateInfo:
    key: str
    name: str
    language: str
    description: str
    entry_file: str | None
    is_default: bool
    files: tuple[str, ...]


class TemplateService:
    def __init__(self, db: Database, workspace: WorkspaceService) -> None:
        self.db = db
        self.workspace = workspace

    async def list(self) -> list[TemplateInfo]:
        async with self.db.session() as s:
            templates = (
                await s.scalars(
                    select(SessionTemplate).order_by(
                        SessionTemplate.sort_order, SessionTemplate.key
                    )
                )
            ).all()
            files = (
                await s.execute(
                    select(TemplateFile.template_id, TemplateFile.path).order_by(TemplateFile.path)
                )
            ).all()
        by_template: dict[int, list[str]] = {}
        for tid, path in files:
            by_template.setdefault(tid, []).append(path)
        return [
            TemplateInfo(
                t.key,
                t.name,
                t.language,
                t.description,
                t.entry_file,
                t.is_default,
                tuple(by_template.get(t.id, [])),
            )
            for t in templates
        ]

    async def find(self, key: str) -> SessionTemplate:
        async with self.db.session() as s:
            t = await s.scalar(select(SessionTemplate).where(SessionTemplate.key == key))
        if t is None:
            raise InvalidInput(f"unknown template {key!r}", code="unknown_template")
        return t

    async def _default_for(self, ref: WorkspaceRef) -> SessionTemplate | None:
        async with self.db.session() as s:
            language = await s.scalar(
                select(CodeSession.language).where(CodeSession.id == ref.session_id)
            )
            return await s.scalar(
                select(SessionTemplate)
                .where(SessionTemplate.language == language, SessionTemplate.is_default)
                .order_by(SessionTemplate.sort_order)
                .limit(1)
            )

    async def apply(self, ref: WorkspaceRef, key: str | None = None) -> str | None:
        """Create the template's files in an empty workspace; returns its entry file, or None
        when the workspace already has files (or no template fits)."""
        template = await self.find(key) if key else await self._default_for(ref)
        if template is None:
            return None
        count, _ = await self.workspace.stats(ref)
        if count:
            return None
        async with self.db.session() as s:
            files = (
                await s.execute(
                    select(TemplateFile.path, TemplateFile.content).where(
                        TemplateFile.template_id == template.id
                    )
                )
            ).all()
        try:
            await self.workspace.create_files(
                ref, [(p, c.encode("utf-8")) for p, c in files], source="template"
            )
        except Conflict:
            return None  # another tab filled it first
        async with self.db.session() as s, s.begin():
            sess = await s.get(CodeSession, ref.session_id)
            if sess is not None and template.entry_file:
                sess.entry_file = template.entry_file
        return template.entry_file
