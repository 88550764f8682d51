"""Accounts: register, login, logout, me."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from coolcoding.api.deps import CurrentUser, PlatformDep, client_ip
from coolcoding.api.responses import AUTHED, GUARDS, PUBLIC, WRITE, errors, merge
from coolcoding.db.models import User
from coolcoding.errors import Conflict, Forbidden, NotAuthenticated, NotFound, RateLimited
from coolcoding.sandbox.pipcache import remove_user_dir, user_key
from coolcoding.schemas.accounts import AuthOut, DeleteAccountIn, LoginIn, RegisterIn, UserOut
from coolcoding.schemas.limits import INT64_MAX

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/users", tags=["users"])

# Marks a browser that logged in to an account before (services/accounts.py: known devices).
DEVICE_COOKIE = "cc_device"


def _set_cookie(response: Response, platform: PlatformDep, token: str) -> None:
    s = platform.settings
    response.set_cookie(
        s.session_cookie_name,
        token,
        max_age=s.login_ttl_hours * 3600,
        httponly=True,
        samesite="lax",
        secure=s.cookie_secure,
        path="/",
    )


def _set_device_cookie(response: Response, platform: PlatformDep, user: User) -> None:
    response.set_cookie(
        DEVICE_COOKIE,
        platform.accounts.device_token(user),
        max_age=365 * 24 * 3600,
        httponly=True,
        samesite="lax",
        secure=platform.settings.cookie_secure,
        path="/api/users",
    )


@router.post(
    "/register",
    status_code=201,
    response_model=AuthOut,
    responses=merge(PUBLIC, GUARDS, errors(Conflict, RateLimited)),
)
async def register(
    body: RegisterIn, request: Request, response: Response, platform: PlatformDep
) -> AuthOut:
    user = await platform.accounts.register(
        body.username, body.email, body.password, client_ip(request)
    )
    token = await platform.accounts.create_login(
        user, request.headers.get("user-agent"), client_ip(request)
    )
    _set_cookie(response, platform, token)
    _set_device_cookie(response, platform, user)
    return AuthOut(user=UserOut.model_validate(user), token=token)


@router.post(
    "/login",
    response_model=AuthOut,
    responses=merge(PUBLIC, GUARDS, errors(NotAuthenticated, RateLimited)),
)
async def login(
    body: LoginIn, request: Request, response: Response, platform: PlatformDep
) -> AuthOut:
    user = await platform.accounts.authenticate(
        body.username, body.password, client_ip(request), request.cookies.get(DEVICE_COOKIE)
    )
    token = await platform.accounts.create_login(
        user, request.headers.get("user-agent"), client_ip(request)
    )
    _set_cookie(response, platform, token)
    _set_device_cookie(response, platform, user)
    return AuthOut(user=UserOut.model_validate(user), token=token)


@router.post("/logout", status_code=204, responses=WRITE)
async def logout(user: CurrentUser, platform: PlatformDep) -> Response:
    await platform.accounts.revoke(user.login_id)
    response = Response(status_code=204)
    response.delete_cookie(platform.settings.session_cookie_name, path="/")
    return response


@router.get("/me", response_model=UserOut, responses=AUTHED)
async def me(user: CurrentUser, platform: PlatformDep) -> UserOut:
    return UserOut.model_validate(await platform.accounts.get_user(user.user_id))


@router.delete("/me", status_code=204, responses=merge(WRITE, errors(RateLimited)))
async def delete_me(
    body: DeleteAccountIn, request: Request, user: CurrentUser, platform: PlatformDep
) -> Response:
    """Delete the account and everything in it, after checking the password (rate-limited like a
    login): each session's sandbox and terminals are stopped, then the rows are deleted."""
    account = await platform.accounts.get_user(user.user_id)
    try:
        await platform.accounts.authenticate(
            account.username, body.password, client_ip(request), request.cookies.get(DEVICE_COOKIE)
        )
    except NotAuthenticated as exc:  # signed in, but not this password: not a 401 (a new login)
        raise Forbidden("wrong password", code="wrong_password") from exc
    for sess in await platform.sessions.list_for(user.user_id):
        await platform.sessions.delete(user.user_id, str(sess.uuid))
    await platform.accounts.delete_user(user.user_id)
    if platform.settings.package_cache_dir:
        # The account's pip wheelhouse (its name holds the account's creation time, so nobody
        # else can reach it any more): disk only, removed after the rows are gone.
        key = user_key(user.user_id, account.created_at)
        try:
            await asyncio.to_thread(remove_user_dir, platform.settings.package_cache_dir, key)
        except OSError as exc:
            log.warning("could not remove the wheelhouse of deleted user %s: %s", key, exc)
    response = Response(status_code=204)
    response.delete_cookie(platform.settings.session_cookie_name, path="/")
    return response


# ``:int``: only digits reach this route, so ``GET /api/users/login`` is a 405 (the path exists,
# for POST), not a validation error of a user id.
@router.get("/{user_id:int}", response_model=UserOut, responses=merge(AUTHED, errors(NotFound)))
async def get_user(
    user_id: Annotated[int, Path(ge=1, le=INT64_MAX)], user: CurrentUser, platform: PlatformDep
) -> UserOut:
    if user_id != user.user_id:
        raise NotFound("no such user", code="user_not_found")
    return UserOut.model_validate(await platform.accounts.get_user(user_id))
