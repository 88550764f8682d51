"""A minimal edit script between two texts, for applying a file change made outside the editor
to a shared document as small inserts and deletes (so remote cursors and concurrent edits around
the change survive), never as a replacement of the whole text."""

from __future__ import annotations

import difflib

# Above this many characters of differing middle, one replace of the middle (difflib is
# quadratic in the worst case; a change that large moves cursors anyway).
MAX_DIFF_CHARS = 200_000


def edits(old: str, new: str) -> list[tuple[int, int, str]]:
    """(start, delete count, insert text) in ``old``'s positions, last first, so each can be
    applied in order without shifting the following ones."""
    if old == new:
        return []
    prefix = 0
    limit = min(len(old), len(new))
    while prefix < limit and old[prefix] == new[prefix]:
        prefix += 1
    suffix = 0
    while suffix < limit - prefix and old[len(old) - 1 - suffix] == new[len(new) - 1 - suffix]:
        suffix += 1
    a = old[prefix : len(old) - suffix]
    b = new[prefix : len(new) - suffix]
    if len(a) + len(b) > MAX_DIFF_CHARS:
        return [(prefix, len(a), b)]
    # Line-level matching first (it is what people change), then characters inside lines.
    a_lines = a.splitlines(keepends=True)
    b_lines = b.splitlines(keepends=True)
    out: list[tuple[int, int, str]] = []
    a_pos = [0]
    for line in a_lines:
        a_pos.append(a_pos[-1] + len(line))
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(
        None, a_lines, b_lines, autojunk=False
    ).get_opcodes():
        if tag == "equal":
            continue
        start, end = a_pos[i1], a_pos[i2]
        repl = "".join(b_lines[j1:j2])
        if tag == "replace" and i2 - i1 == j2 - j1 == 1:
            out.extend((prefix + start + s, n, t) for s, n, t in _chars(a[start:end], repl))
        else:
            out.append((prefix + start, end - start, repl))
    out.sort(key=lambda e: e[0], reverse=True)
    return out


def _chars(old: str, new: str) -> list[tuple[int, int, str]]:
    res: list[tuple[int, int, str]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(
        None, old, new, autojunk=False
    ).get_opcodes():
        if tag != "equal":
            res.append((i1, i2 - i1, new[j1:j2]))
    return res


def apply(old: str, script: list[tuple[int, int, str]]) -> str:
    """``edits``' script applied to ``old`` (for tests and checks)."""
    text = old
    for start, count, ins in script:
        text = text[:start] + ins + text[start + count :]
    return text
