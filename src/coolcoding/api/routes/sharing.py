"""Sharing a session: members and invitations, ownership transfer, public links, and the
invitee's side ("shared with me", pending invitations). docs/API.md, "Sharing"."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from coolcoding.api.deps import AdminAccess, CurrentUser, OwnerAccess, PlatformDep, ViewerAccess
from coolcoding.api.responses import AUTHED, OWNED, WRITE, WRITE_OWNED, errors, merge
from coolcoding.errors import Conflict, Forbidden, InvalidInput
from coolcoding.schemas.sessions import SessionOut
from coolcoding.schemas.sharing import (
    ForkPolicyIn,
    ForkPolicyOut,
    InviteIn,
    LinkCreatedOut,
    LinkIn,
    LinkOut,
    MemberOut,
    MembersOut,
    RoleIn,
    SharedSessionOut,
    TransferIn,
)
from coolcoding.services.sharing import Member, SharedSession

router = APIRouter(tags=["sharing"])
S = "/api/sessions/{session_uuid}"
Id = Annotated[int, Path(ge=1, le=2**62)]
SHARED = merge(OWNED, errors(Forbidden))
SHARED_WRITE = merge(WRITE_OWNED, errors(Forbidden))


def _member(m: Member) -> MemberOut:
    return MemberOut(
        user_id=m.user_id, username=m.username, role=m.role, status=m.status,
        invited_by=m.invited_by, created_at=m.created_at, updated_at=m.updated_at,
    )  # fmt: skip


def _shared(x: SharedSession) -> SharedSessionOut:
    return SharedSessionOut(
        session=SessionOut.model_validate(x.session).model_copy(update={"role": x.role}),
        role=x.role,
        status=x.status,
        owner_username=x.owner_username,
        invited_by_username=x.invited_by_username,
    )


# --- members (the owner's and admins' side) -------------------------------------------------


@router.get(f"{S}/members", response_model=MembersOut, responses=SHARED)
async def list_members(access: ViewerAccess, platform: PlatformDep) -> MembersOut:
    """The owner and the members, with their roles and invitation states (any member sees who
    else is in the workspace)."""
    owner = await platform.accounts.get_user(access.owner_id)
    return MembersOut(
        owner_id=access.owner_id,
        owner_username=owner.username,
        your_role=access.role.label,
        members=[_member(m) for m in await platform.sharing.members(access)],
        fork_policy=await platform.sharing.fork_policy(access),
    )


@router.put(f"{S}/fork-policy", response_model=ForkPolicyOut, responses=SHARED_WRITE)
async def set_fork_policy(
    body: ForkPolicyIn, access: AdminAccess, platform: PlatformDep
) -> ForkPolicyOut:
    """Who of the members may fork the workspace: ``members`` (viewers too), ``editors``
    (editors and admins, the default) or ``owner``; a public fork link is not affected."""
    await platform.sharing.set_fork_policy(access, body.fork_policy)
    return ForkPolicyOut(fork_policy=body.fork_policy)


@router.post(
    f"{S}/members",
    status_code=201,
    response_model=MemberOut,
    responses=merge(SHARED_WRITE, errors(Conflict, InvalidInput)),
)
async def invite_member(body: InviteIn, access: AdminAccess, platform: PlatformDep) -> MemberOut:
    """Invite a user by username or email as viewer, editor or admin (only the owner invites
    admins). 404 ``user_not_found``, 400 ``invite_self``, 409 ``already_member``."""
    if body.role == "admin" and not access.is_owner:
        raise Forbidden(
            "only the owner makes someone an admin",
            code="forbidden_role",
            required_role="owner",
            role=access.role.label,
        )
    return _member(await platform.sharing.invite(access, body.user, body.role))


@router.put(f"{S}/members/{{user_id}}", response_model=MemberOut, responses=SHARED_WRITE)
async def change_member_role(
    user_id: Id, body: RoleIn, access: AdminAccess, platform: PlatformDep
) -> MemberOut:
    """Change a member's role; their open sockets reconnect with the new role."""
    return _member(await platform.sharing.set_role(access, user_id, body.role))


@router.delete(f"{S}/members/{{user_id}}", status_code=204, responses=SHARED_WRITE)
async def revoke_member(user_id: Id, access: AdminAccess, platform: PlatformDep) -> Response:
    """Remove a member or withdraw an invitation (an admin: viewers and editors only). Their
    open sockets of this workspace are closed, on every replica."""
    await platform.sharing.revoke(access, user_id)
    return Response(status_code=204)


@router.post(f"{S}/leave", status_code=204, responses=merge(SHARED_WRITE, errors(Conflict)))
async def leave_session(access: ViewerAccess, platform: PlatformDep) -> Response:
    """Stop being a member (the owner cannot leave: transfer or delete instead)."""
    if access.is_owner:
        raise Conflict("the owner cannot leave; transfer the workspace first", code="owner_leave")
    await platform.sharing.revoke(access, access.user_id)
    return Response(status_code=204)


@router.post(
    f"{S}/transfer",
    response_model=SessionOut,
    responses=merge(SHARED_WRITE, errors(Conflict)),
)
async def transfer_ownership(
    body: TransferIn, access: OwnerAccess, platform: PlatformDep
) -> SessionOut:
    """Make an accepted member the owner; you become an admin of the workspace."""
    await platform.sharing.transfer(access, body.user_id)
    sess = await platform.sessions.load(access.ref.session_id)
    return SessionOut.model_validate(sess).model_copy(update={"role": "admin"})


# --- public links -----------------------------------------------------------------------------


def _link(row: object) -> LinkOut:
    return LinkOut.model_validate(row, from_attributes=True)


@router.get(f"{S}/links", response_model=list[LinkOut], responses=SHARED)
async def list_links(access: AdminAccess, platform: PlatformDep) -> list[LinkOut]:
    return [_link(x) for x in await platform.public_links.list(access)]


@router.post(
    f"{S}/links",
    status_code=201,
    response_model=LinkCreatedOut,
    responses=merge(SHARED_WRITE, errors(Conflict, InvalidInput)),
)
async def create_link(body: LinkIn, access: AdminAccess, platform: PlatformDep) -> LinkCreatedOut:
    """A public link (read, or fork: a logged-in user may fork the workspace); the token is in
    this answer only."""
    token, info = await platform.public_links.create(access, body.permission, body.expires_at)
    return LinkCreatedOut(**_link(info).model_dump(), token=token, url=f"/p/{token}")


@router.delete(f"{S}/links/{{link_id}}", status_code=204, responses=SHARED_WRITE)
async def revoke_link(link_id: Id, access: AdminAccess, platform: PlatformDep) -> Response:
    await platform.public_links.revoke(access, link_id)
    return Response(status_code=204)


# --- the invitee's side -----------------------------------------------------------------------


@router.get("/api/shared", response_model=list[SharedSessionOut], responses=AUTHED)
async def shared_with_me(user: CurrentUser, platform: PlatformDep) -> list[SharedSessionOut]:
    """Sessions others own that you are an accepted member of, with your role."""
    return [_shared(x) for x in await platform.sharing.shared_with(user.user_id, "accepted")]


@router.get("/api/invitations", response_model=list[SharedSessionOut], responses=AUTHED)
async def my_invitations(user: CurrentUser, platform: PlatformDep) -> list[SharedSessionOut]:
    """Your pending invitations."""
    return [_shared(x) for x in await platform.sharing.shared_with(user.user_id, "invited")]


@router.post(
    "/api/invitations/{session_uuid}/accept",
    response_model=SharedSessionOut,
    responses=merge(WRITE, errors(404)),
)
async def accept_invitation(
    session_uuid: str, user: CurrentUser, platform: PlatformDep
) -> SharedSessionOut:
    return _shared(await platform.sharing.answer(user.user_id, session_uuid, accept=True))


@router.post(
    "/api/invitations/{session_uuid}/decline",
    response_model=SharedSessionOut,
    responses=merge(WRITE, errors(404)),
)
async def decline_invitation(
    session_uuid: str, user: CurrentUser, platform: PlatformDep
) -> SharedSessionOut:
    return _shared(await platform.sharing.answer(user.user_id, session_uuid, accept=False))
