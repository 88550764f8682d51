"""Workspace path normalization: the one gate every path passes."""

import pytest

from coolcoding.errors import InvalidInput
from coolcoding.filesync.paths import (
    PathRules,
    ancestors,
    is_inside,
    normalize_path,
    subtree_bounds,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a", "a"),
        ("a/b/c.py", "a/b/c.py"),
        ("dir/", "dir"),
        ("ünï/cödé ✓.py", "ünï/cödé ✓.py"),
        ("a b/.hidden", "a b/.hidden"),
    ],
)
def test_valid_paths_are_normalized(raw: str, expected: str) -> None:
    assert normalize_path(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "/etc/passwd",
        "../x",
        "a/../../b",
        "a/./b",
        ".",
        "..",
        "a//b",
        "a\x00b",
        "a\nb",
        "tab\there",
        "x\x7f",
        "a/\ud800",
    ],
)
def test_bad_paths_are_refused_with_invalid_path(raw: str) -> None:
    with pytest.raises(InvalidInput) as e:
        normalize_path(raw)
    assert e.value.code == "invalid_path"


def test_over_long_names_paths_and_depth_are_refused() -> None:
    rules = PathRules(max_name_bytes=10, max_path_bytes=30, max_depth=3)
    for raw in ["x" * 11, "/".join(["abcdefgh"] * 4), "a/b/c/d"]:
        with pytest.raises(InvalidInput):
            normalize_path(raw, rules)
    # multi-byte characters count in bytes
    with pytest.raises(InvalidInput):
        normalize_path("é" * 6, rules)


def test_subtree_bounds_cover_descendants_only() -> None:
    lo, hi = subtree_bounds("src")
    inside = ["src/a", "src/z/y", "src/~"]
    outside = ["src", "src0", "src-x", "srcx", "sr", "src.py"]
    assert all(lo <= p < hi for p in inside)
    assert not any(lo <= p < hi for p in outside)


def test_ancestors_and_is_inside() -> None:
    assert ancestors("a/b/c") == ["a", "a/b"]
    assert ancestors("a") == []
    assert is_inside("a/b", "a") and is_inside("a", "a") and not is_inside("ab", "a")
