"""Request/response models of the IDE features: search, templates, preferences, imports."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool


class SearchLine(BaseModel):
    line: int = Field(description="1-based line number")
    text: str = Field(description="The line (cut to 400 characters)")
    ranges: list[tuple[int, int]] = Field(description="[start, end) columns of the matches")


class SearchFile(BaseModel):
    path: str
    matches: list[SearchLine]


class SearchOut(BaseModel):
    """One page of a search: the lines after the previous page's (``after``), in path order."""

    files: list[SearchFile]
    match_count: int = Field(description="Matching lines in this page")
    truncated: bool = Field(
        description="The page is full (max_results lines): `next` continues it; the next page "
        "may be empty when nothing matches after this one"
    )
    next: str | None = Field(
        description="Opaque cursor for the next page (pass it as `after` with the same query); "
        "null when the search is complete"
    )


class TemplateOut(BaseModel):
    key: str
    name: str
    language: str
    description: str
    entry_file: str | None
    is_default: bool
    files: list[str]


class ImportOut(BaseModel):
    files: int
    folders: int
    bytes: int


class Preferences(BaseModel):
    """A user's IDE settings; every field has a default, unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    font_size: int = Field(default=14, ge=8, le=40)
    tab_size: int = Field(default=4, ge=1, le=8)
    word_wrap: StrictBool = False
    key_bindings: Literal["default", "vim"] = "default"
    theme: Literal["system", "light", "dark"] = "system"
