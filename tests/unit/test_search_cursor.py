"""The search cursor (services/search_cursor.py): round trip, bound to its query and workspace."""

from __future__ import annotations

import pytest

from coolcoding.errors import InvalidInput
from coolcoding.services.search import SearchQuery
from coolcoding.services.search_cursor import SearchPosition, decode_cursor, encode_cursor

Q = SearchQuery("needle", regex=False, case_sensitive=True, include=("*.py",))


@pytest.mark.parametrize(
    "pos",
    [
        SearchPosition("a.txt", 7),
        SearchPosition("dir/é ü/日本語 file.py", 0, True),
        SearchPosition("x" * 1024, 2**31 - 1),
    ],
)
def test_a_cursor_names_the_position_it_was_made_from(pos: SearchPosition) -> None:
    cursor = encode_cursor(3, Q, pos)
    assert cursor.isascii() and "=" not in cursor
    assert decode_cursor(cursor, 3, Q, 1024) == pos


@pytest.mark.parametrize(
    ("session_id", "query"),
    [
        (4, Q),
        (3, SearchQuery("needle", case_sensitive=True, include=("*.py",), regex=True)),
        (3, SearchQuery("needle", case_sensitive=False, include=("*.py",))),
        (3, SearchQuery("needle", case_sensitive=True, include=("*.py",), whole_word=True)),
        (3, SearchQuery("needle", case_sensitive=True, include=("*.py", "x"))),
        (3, SearchQuery("needle", case_sensitive=True, include=("*.py",), exclude=("x",))),
        (3, SearchQuery("needles", case_sensitive=True, include=("*.py",))),
    ],
)
def test_a_cursor_of_another_workspace_or_query_is_refused(
    session_id: int, query: SearchQuery
) -> None:
    cursor = encode_cursor(3, Q, SearchPosition("a.txt", 7))
    with pytest.raises(InvalidInput) as err:
        decode_cursor(cursor, session_id, query, 1024)
    assert err.value.code == "invalid_cursor"


def test_a_path_longer_than_max_path_length_is_refused() -> None:
    cursor = encode_cursor(3, Q, SearchPosition("ab", 1))
    assert decode_cursor(cursor, 3, Q, 2) == SearchPosition("ab", 1)
    with pytest.raises(InvalidInput):
        decode_cursor(cursor, 3, Q, 1)


def test_every_altered_character_is_refused() -> None:
    cursor = encode_cursor(3, Q, SearchPosition("a.txt", 7))
    for i, c in enumerate(cursor):
        for other in {"A", "b", "_", "-", ".", "="} - {c}:
            altered = cursor[:i] + other + cursor[i + 1 :]
            try:
                pos = decode_cursor(altered, 3, Q, 1024)
            except InvalidInput as exc:
                assert exc.code == "invalid_cursor"
            else:  # base64 padding bits: a different spelling of the same bytes
                assert pos == SearchPosition("a.txt", 7)
