"""The user's API tokens (for the Judge0-compatible API): create (shown once), list, revoke."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from coolcoding.api.deps import CurrentUser, PlatformDep
from coolcoding.api.responses import AUTHED, OWNED, WRITE
from coolcoding.db.models import ApiToken

router = APIRouter(prefix="/api/tokens", tags=["api-tokens"])


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None

    @classmethod
    def of(cls, row: ApiToken) -> TokenOut:
        return cls(id=row.id, name=row.name, prefix=row.prefix, created_at=row.created_at,
                   last_used_at=row.last_used_at)  # fmt: skip


class TokenCreatedOut(TokenOut):
    token: str  # shown once: only its hash is kept


@router.get("", response_model=list[TokenOut], responses=AUTHED)
async def list_tokens(user: CurrentUser, platform: PlatformDep) -> list[TokenOut]:
    return [TokenOut.of(r) for r in await platform.api_tokens.list_for(user.user_id)]


@router.post("", status_code=201, response_model=TokenCreatedOut, responses=WRITE)
async def create_token(body: TokenIn, user: CurrentUser, platform: PlatformDep) -> TokenCreatedOut:
    row, raw = await platform.api_tokens.create(user.user_id, body.name)
    return TokenCreatedOut(**TokenOut.of(row).model_dump(), token=raw)


@router.delete("/{token_id}", status_code=204, responses=OWNED)
async def delete_token(
    token_id: Annotated[int, Path(ge=1, le=2**62)], user: CurrentUser, platform: PlatformDep
) -> Response:
    await platform.api_tokens.delete(user.user_id, token_id)
    return Response(status_code=204)
