"""The languages this server runs, with the versions detected at start-up."""

from __future__ import annotations

from fastapi import APIRouter

from coolcoding.api.responses import errors
from coolcoding.api.routes.executions import Executions
from coolcoding.errors import Unavailable
from coolcoding.schemas.executions import LanguageOut

router = APIRouter(prefix="/api", tags=["languages"])


@router.get("/languages", response_model=list[LanguageOut], responses=errors(Unavailable))
async def list_languages(svc: Executions) -> list[LanguageOut]:
    reg = svc.languages
    return [
        LanguageOut(
            id=lang.id,
            name=lang.name,
            version=reg.versions.get(lang.id),
            extensions=list(lang.extensions),
            compiled=lang.compiled,
            available=reg.available(lang.id),
        )
        for lang in reg.all()
    ]
