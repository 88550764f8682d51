"""Coding sessions (workspaces) of the current user."""

from __future__ import annotations

from fastapi import APIRouter, Response

from coolcoding.api.deps import CurrentUser, EditorAccess, OwnerAccess, PlatformDep, ViewerAccess
from coolcoding.api.responses import AUTHED, OWNED, WRITE, WRITE_OWNED, errors, merge
from coolcoding.errors import Conflict, Forbidden
from coolcoding.schemas.sessions import SessionIn, SessionOut, SessionPatch
from coolcoding.services.access import Role
from coolcoding.services.sessions import ref_of

router = APIRouter(prefix="/api/sessions", tags=["sessions"])


@router.get("/", response_model=list[SessionOut], responses=AUTHED)
async def list_sessions(user: CurrentUser, platform: PlatformDep) -> list[SessionOut]:
    return [SessionOut.model_validate(s) for s in await platform.sessions.list_for(user.user_id)]


# 409: the per-user cap on sessions (COOLCODING_MAX_SESSIONS_PER_USER).
@router.post(
    "/", status_code=201, response_model=SessionOut, responses=merge(WRITE, errors(Conflict))
)
async def create_session(body: SessionIn, user: CurrentUser, platform: PlatformDep) -> SessionOut:
    template = await platform.templates.find(body.template) if body.template else None
    language = template.language if template is not None else body.language
    # A pre-started sandbox (the session pool) when there is one: the session takes its uuid
    # and binds it once its files are in the DB (a template's), so that opening it is fast.
    sandboxes = platform.sandboxes
    reserved = sandboxes.reserve_new(body.network_enabled) if sandboxes is not None else None
    created = False
    try:
        sess = await platform.sessions.create(
            user.user_id,
            body.name.strip() or "Untitled",
            language,
            body.network_enabled,
            uuid=reserved,
        )
        created = True
        if template is not None:
            await platform.templates.apply(ref_of(sess), template.key)
    except BaseException:
        if sandboxes is not None:  # refused before the insert: the sandbox serves another
            await sandboxes.unreserve(reserved, unused=not created)
        raise
    if reserved is not None and sandboxes is not None:
        await sandboxes.start_reserved(sess)
    if template is not None or reserved is not None:
        sess = await platform.sessions.load(sess.id)
    return SessionOut.model_validate(sess)


SHARED = merge(OWNED, errors(Forbidden))


@router.get("/{session_uuid}", response_model=SessionOut, responses=SHARED)
async def get_session(access: ViewerAccess, platform: PlatformDep) -> SessionOut:
    sess = await platform.sessions.load(access.ref.session_id, touch=True)
    return SessionOut.model_validate(sess).model_copy(update={"role": access.role.label})


# Editors rename and set the language and entry file; the network setting is the owner's.
@router.patch("/{session_uuid}", response_model=SessionOut, responses=merge(WRITE_OWNED, SHARED))
async def patch_session(
    body: SessionPatch, access: EditorAccess, platform: PlatformDep
) -> SessionOut:
    changes = body.model_dump(exclude_unset=True)
    if "network_enabled" in changes and not access.is_owner:
        await platform.access.require(access.user_id, access.ref.session_uuid, Role.OWNER)
    if changes.get("entry_file"):
        changes["entry_file"] = platform.workspace.normalize(changes["entry_file"])
    sess = await platform.sessions.update(access.ref.session_id, changes)
    return SessionOut.model_validate(sess).model_copy(update={"role": access.role.label})


@router.delete("/{session_uuid}", status_code=204, responses=merge(WRITE_OWNED, SHARED))
async def delete_session(access: OwnerAccess, platform: PlatformDep) -> Response:
    await platform.sessions.delete(access.user_id, access.ref.session_uuid)
    await platform.access.changed(access.ref.session_uuid)
    return Response(status_code=204)
