"""The documented error answers of each route, built from the one domain-error -> status map.

A route lists what it may raise (``errors(NotFound, Conflict)``); every status gets the same
``ErrorOut`` body, so a generated client knows the shape of every answer. The bundles below add
what the layers in front of every route may answer: the login check, request validation, the
body-size and cross-site guards, and the database being unreachable.
"""

from __future__ import annotations

from typing import Any

from coolcoding.api.errors import HTTP_STATUS
from coolcoding.errors import (
    DomainError,
    Forbidden,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    TooLarge,
    Unavailable,
)
from coolcoding.schemas.errors import ErrorOut

Responses = dict[int | str, dict[str, Any]]

DESCRIPTIONS: dict[int, str] = {
    400: "Invalid input that the schema cannot state (e.g. a rule between two fields) or a "
    "body that is not JSON",
    401: "Not logged in, or the login expired (`not_authenticated`, `login_expired`)",
    403: "Refused: a cross-site request (`cross_site_request`), a wrong password, or a "
    "collaborator whose role is too low (`forbidden_role`, `required_role` names the role needed)",
    404: "Not found, or not yours (never told apart)",
    405: "Method not allowed; `Allow` lists the methods of this path",
    409: "Conflict with the current state (e.g. a stale `base_version`, a taken name)",
    410: "Gone: an expired or revoked public link (`link_expired`, `link_revoked`)",
    413: "Too large: the request body, or a workspace quota (`quota_exceeded`)",
    415: "Unsupported media type",
    422: "The request does not match the schema (`validation_error`; `fields` lists each problem)",
    429: "Rate limited; retry after `Retry-After` seconds",
    503: "A dependency is unavailable: the database (`database_unavailable`), sandboxes or code "
    "execution; retry after `Retry-After` seconds when given",
    502: "the program a preview relays to did not answer",
}

_RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before retrying",
        "schema": {"type": "integer", "minimum": 0},
    }
}


def errors(*raised: type[DomainError] | int) -> Responses:
    """OpenAPI ``responses`` for these domain errors (or bare statuses), each with ``ErrorOut``."""
    out: Responses = {}
    for item in raised:
        status = item if isinstance(item, int) else HTTP_STATUS[item]
        doc: dict[str, Any] = {"model": ErrorOut, "description": DESCRIPTIONS[status]}
        if status in (429, 503):
            doc["headers"] = _RETRY_AFTER
        out[status] = doc
    return out


def merge(*parts: Responses) -> Responses:
    merged: Responses = {}
    for part in parts:
        merged.update(part)
    return merged


# Request validation (422) and the database being down (503): every route that reads a row.
PUBLIC = errors(422, Unavailable)
# Plus the login check.
AUTHED = merge(PUBLIC, errors(NotAuthenticated))
# What guards a state-changing request: the body size limit, the cross-site check, a body that is
# not JSON at all.
GUARDS = errors(TooLarge, Forbidden, InvalidInput)
WRITE = merge(AUTHED, GUARDS)
# A resource addressed by its id (a session, an execution) that is not the user's or is gone.
OWNED = merge(AUTHED, errors(NotFound, Forbidden))
WRITE_OWNED = merge(WRITE, errors(NotFound))
