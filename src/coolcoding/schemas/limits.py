"""Constraints the API states in its OpenAPI schema and enforces before a service (or the
database) sees a value: integer bounds of the columns and of JSON clients, and the characters a
name, a path or an account field may hold. A request the schema calls valid passes them."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator, Field

from coolcoding.errors import InvalidInput
from coolcoding.execution.languages import LANGUAGES
from coolcoding.filesync.paths import DEFAULT_RULES, normalize_path

# Bounds of the database's integer columns: a larger value would fail in the driver (a 500).
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
# Pagination: far beyond any real list, below JavaScript's 2**53 exact integers.
MAX_OFFSET = 10**9

# PostgreSQL text cannot hold NUL, and no name needs a control character.
NO_CONTROL_CHARS = r"^[^\x00-\x1f\x7f]*$"
NO_NUL = r"^[^\x00]*$"

_CHAR = r"[^\x00-\x1f\x7f/]"
_FIRST = r"[^\x00-\x1f\x7f/.]"
# A name that is not '.' or '..' (written without look-ahead: JSON Schema and pydantic's regex
# engine both accept it).
_NAME = (
    rf"(?:{_FIRST}{_CHAR}{{0,{DEFAULT_RULES.max_name_bytes - 1}}}"
    rf"|\.{_FIRST}{_CHAR}{{0,{DEFAULT_RULES.max_name_bytes - 2}}}"
    rf"|\.\.{_CHAR}{{1,{DEFAULT_RULES.max_name_bytes - 2}}})"
)
PATH_PATTERN = rf"^{_NAME}(?:/{_NAME}){{0,{DEFAULT_RULES.max_depth - 1}}}/?$"
PATH_DESCRIPTION = (
    "A workspace-relative path: names joined by '/', no leading '/', no empty, '.' or '..' "
    f"names, no control characters; at most {DEFAULT_RULES.max_name_bytes} bytes (UTF-8) a "
    f"name, {DEFAULT_RULES.max_path_bytes} bytes and {DEFAULT_RULES.max_depth} levels in all."
)


def _valid_path(raw: str) -> str:
    """The path rules of ``filesync/paths.py``, as a validation error (422) instead of a 400."""
    try:
        normalize_path(raw)
    except InvalidInput as exc:
        raise ValueError(exc.message) from None
    return raw


# The pattern states the rule; the services enforce it with ``normalize_path`` (400
# ``invalid_path``, the answer clients know; pydantic's regex engine cannot compile the pattern's
# counted repetitions within its size limit anyway).
WorkspacePath = Annotated[
    str,
    Field(
        min_length=1,
        max_length=DEFAULT_RULES.max_path_bytes,
        description=PATH_DESCRIPTION,
        json_schema_extra={"pattern": PATH_PATTERN},
    ),
]

# The same rule as a path parameter (FastAPI wants its own ``Path`` marker there).
WorkspacePathParam = Annotated[
    str,
    Path(
        min_length=1,
        max_length=DEFAULT_RULES.max_path_bytes,
        description=PATH_DESCRIPTION,
        json_schema_extra={"pattern": PATH_PATTERN},
    ),
]

_EXTENSIONS = sorted({ext.lstrip(".") for lang in LANGUAGES for ext in lang.extensions})
# A path whose last name ends with the extension of a language (a file that can be run).
RUNNABLE_PATTERN = (
    rf"^(?:{_NAME}/){{0,{DEFAULT_RULES.max_depth - 1}}}"
    rf"{_CHAR}{{0,{DEFAULT_RULES.max_name_bytes - 8}}}\.(?:{'|'.join(_EXTENSIONS)})$"
)


def _runnable_path(raw: str) -> str:
    if re.fullmatch(RUNNABLE_PATTERN, _valid_path(raw)) is None:
        raise ValueError(f"no language runs {raw!r} (by its extension)")
    return raw


RunnablePath = Annotated[
    str,
    Field(
        min_length=1,
        max_length=DEFAULT_RULES.max_path_bytes,
        description=PATH_DESCRIPTION + " Its extension names a language: " + ", ".join(_EXTENSIONS),
        json_schema_extra={"pattern": RUNNABLE_PATTERN},
    ),
    AfterValidator(_runnable_path),
]

LANGUAGE_PATTERN = "^(?:" + "|".join(lang.id for lang in LANGUAGES) + ")$"
LanguageId = Annotated[
    str,
    Field(
        max_length=32,
        pattern=LANGUAGE_PATTERN,
        description="a language id of GET /api/languages",
        examples=["python"],
    ),
]

SessionName = Annotated[
    str, Field(min_length=1, max_length=255, pattern=NO_CONTROL_CHARS, examples=["Untitled"])
]

USERNAME_PATTERN = r"^[A-Za-z0-9_.-]{3,32}$"
_EMAIL_CHAR = r"[^@\s\x00-\x1f\x7f]"
EMAIL_PATTERN = rf"^\s*{_EMAIL_CHAR}{{1,64}}@{_EMAIL_CHAR}{{1,185}}\.{_EMAIL_CHAR}{{1,63}}\s*$"
