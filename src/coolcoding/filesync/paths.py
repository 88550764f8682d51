"""Workspace path rules: one normalizer used by the API, the sync engine and the sandbox side."""

from __future__ import annotations

import posixpath
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime

from coolcoding.errors import InvalidInput


@dataclass(frozen=True)
class PathRules:
    max_name_bytes: int = 255
    max_path_bytes: int = 1024
    max_depth: int = 64


DEFAULT_RULES = PathRules()


def _check_name(name: str, rules: PathRules, raw: str) -> None:
    if name in (".", ".."):
        raise InvalidInput(f"path {raw!r}: '.' and '..' are not allowed", code="invalid_path")
    for ch in name:
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            raise InvalidInput(
                f"path {raw!r}: control characters (U+{ord(ch):04X}) are not allowed in names",
                code="invalid_path",
            )
        if unicodedata.category(ch) == "Cs":
            raise InvalidInput(f"path {raw!r}: invalid unicode (surrogate)", code="invalid_path")
    if len(name.encode("utf-8")) > rules.max_name_bytes:
        raise InvalidInput(
            f"path {raw!r}: a name is longer than {rules.max_name_bytes} bytes", code="invalid_path"
        )


def normalize_path(raw: str, rules: PathRules = DEFAULT_RULES) -> str:
    """Return the canonical workspace-relative form of ``raw`` or raise ``InvalidInput``.

    Canonical: components joined by '/', no leading/trailing '/', no empty, '.' or '..' parts.
    A leading '/' is refused rather than stripped: an absolute path is a client bug or an attack.
    """
    if not isinstance(raw, str) or raw == "":
        raise InvalidInput("path is empty", code="invalid_path")
    if raw.startswith("/"):
        raise InvalidInput(f"path {raw!r}: absolute paths are not allowed", code="invalid_path")
    trimmed = raw[:-1] if raw.endswith("/") else raw
    parts = trimmed.split("/")
    if any(p == "" for p in parts):
        raise InvalidInput(f"path {raw!r}: empty path component", code="invalid_path")
    for p in parts:
        _check_name(p, rules, raw)
    if len(parts) > rules.max_depth:
        raise InvalidInput(
            f"path {raw!r}: deeper than {rules.max_depth} levels", code="invalid_path"
        )
    path = "/".join(parts)
    if len(path.encode("utf-8")) > rules.max_path_bytes:
        raise InvalidInput(
            f"path {raw!r}: longer than {rules.max_path_bytes} bytes", code="invalid_path"
        )
    return path


def shown_path(path: str) -> str:
    """``path`` as printable text: bytes that are not UTF-8 (decoded by ``os.fsdecode`` as lone
    surrogates) are shown as ``\\xff``, so an event naming them can always be sent as JSON."""
    try:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeError:
        return path.encode("utf-8", "backslashreplace").decode("ascii")


def first_undecodable(path: str) -> str | None:
    """The shortest prefix of ``path`` whose last name is not valid UTF-8, or ``None``."""
    parts = path.split("/")
    for i, name in enumerate(parts):
        try:
            name.encode("utf-8")
        except UnicodeError:
            return "/".join(parts[: i + 1])
    return None


def parent_of(path: str) -> str | None:
    """``"a/b/c"`` -> ``"a/b"``; a top-level path has no parent (``None``)."""
    i = path.rfind("/")
    return None if i < 0 else path[:i]


def ancestors(path: str) -> list[str]:
    """``"a/b/c"`` -> ``["a", "a/b"]`` (outermost first)."""
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def name_of(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def subtree_bounds(path: str) -> tuple[str, str]:
    """Half-open string range holding every descendant of ``path``: ``[path + '/', path + '0')``.

    '0' is the character after '/', so the range is index-friendly and needs no LIKE escaping.
    """
    return path + "/", path + "0"


def is_inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder + "/")


def conflict_name(path: str, now: datetime | None = None, attempt: int = 0) -> str:
    """``src/app.py`` -> ``src/app.conflict-20250101T120000123.py`` (same folder, same extension,
    so editors still highlight it); ``attempt`` > 0 adds ``-<attempt>`` when that name is taken."""
    now = now or datetime.now(UTC)
    head, name = posixpath.split(path)
    stem, ext = posixpath.splitext(name)
    if not stem:  # ".bashrc"
        stem, ext = name, ""
    stamp = now.strftime("%Y%m%dT%H%M%S%f")[:-3] + (f"-{attempt}" if attempt else "")
    new = f"{stem}.conflict-{stamp}{ext}"
    return f"{head}/{new}" if head else new
