"""The JSON body of every error answer (``api/errors.py`` builds it)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class FieldErrorOut(BaseModel):
    """One problem of a request that does not match the schema (422 ``validation_error``)."""

    loc: list[str | int] = Field(description="where: e.g. ['body', 'name'] or ['query', 'offset']")
    msg: str
    type: str


class ErrorOut(BaseModel):
    """``error`` is a stable machine-readable code (e.g. ``session_not_found``), ``message`` is
    safe to show a user. Some errors add fields (``current_version`` on a version conflict,
    ``retry_after`` when rate limited, ``fields`` on a validation error)."""

    model_config = ConfigDict(extra="allow")

    error: str
    message: str
    fields: list[FieldErrorOut] | None = None

    def extra_fields(self) -> dict[str, Any]:
        return dict(self.__pydantic_extra__ or {})
