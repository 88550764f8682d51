"""IDE resources outside one workspace: starter templates, per-user preferences, and a new
workspace made from a zip archive."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from coolcoding.api.deps import CurrentUser, PlatformDep
from coolcoding.api.responses import AUTHED, WRITE, errors, merge
from coolcoding.api.routes.files_io import ZIP_BODY
from coolcoding.errors import Conflict, DomainError, TooLarge
from coolcoding.schemas.ide import Preferences, TemplateOut
from coolcoding.schemas.limits import LanguageId, SessionName
from coolcoding.schemas.sessions import SessionOut
from coolcoding.services.sessions import ref_of

router = APIRouter(tags=["ide"])


@router.get("/api/templates", response_model=list[TemplateOut], responses=AUTHED)
async def list_templates(user: CurrentUser, platform: PlatformDep) -> list[TemplateOut]:
    """Starter templates (rows of session_templates; add more without code)."""
    return [
        TemplateOut(
            key=t.key,
            name=t.name,
            language=t.language,
            description=t.description,
            entry_file=t.entry_file,
            is_default=t.is_default,
            files=list(t.files),
        )
        for t in await platform.templates.list()
    ]


@router.get("/api/users/me/preferences", response_model=Preferences, responses=AUTHED)
async def get_preferences(user: CurrentUser, platform: PlatformDep) -> Preferences:
    stored: dict[str, Any] = await platform.preferences.get(user.user_id)
    known = {k: v for k, v in stored.items() if k in Preferences.model_fields}
    try:
        return Preferences.model_validate(known)
    except ValueError:
        return Preferences()


@router.put("/api/users/me/preferences", response_model=Preferences, responses=WRITE)
async def put_preferences(
    body: Preferences, user: CurrentUser, platform: PlatformDep
) -> Preferences:
    """Replace the user's preferences (omitted fields take their defaults)."""
    await platform.preferences.put(user.user_id, body.model_dump())
    return body


@router.post(
    "/api/sessions/import",
    status_code=201,
    response_model=SessionOut,
    responses=merge(WRITE, errors(Conflict, TooLarge)),
    openapi_extra={"requestBody": ZIP_BODY},
)
async def create_from_zip(
    request: Request,
    user: CurrentUser,
    platform: PlatformDep,
    name: Annotated[SessionName, Query()] = "Imported",
    language: Annotated[LanguageId, Query()] = "python",
) -> SessionOut:
    """A new workspace with the files of a zip archive; nothing is kept if the archive is
    refused."""
    archive = await platform.archives.spool(request.stream())
    with archive:
        sess = await platform.sessions.create(
            user.user_id, name.strip() or "Imported", language, False
        )
        try:
            await platform.archives.import_zip(ref_of(sess), archive)
        except DomainError:
            await platform.sessions.delete(user.user_id, str(sess.uuid))
            raise
    return SessionOut.model_validate(sess)
