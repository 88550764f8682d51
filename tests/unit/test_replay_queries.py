"""The replay filter removes terminal queries and nothing else."""

from __future__ import annotations

import pytest

from coolcoding.terminal.replay import without_queries

QUERIES = [
    b"\x1b[6n",  # cursor position
    b"\x1b[5n",
    b"\x1b[?6n",
    b"\x1b[?996n",
    b"\x1b[c",
    b"\x1b[0c",
    b"\x1b[>c",
    b"\x1b[>0c",
    b"\x1b[=c",
    b"\x1b[?2004$p",
    b"\x1b[4$p",
    b"\x1b[>0q",
    b"\x1b[?u",
    b"\x1b[?4m",
    b"\x1b[14t",
    b"\x1b[14;2t",
    b"\x1b[18t",
    b"\x1b[21t",
    b"\x1b[x",
    b"\x1b]10;?\x07",
    b"\x1b]11;?\x1b\\",
    b"\x1b]12;?\x07",
    b"\x1b]4;1;?\x07",
    b"\x1b]52;c;?\x07",
    b"\x1bP$qm\x1b\\",
    b'\x1bP$q"p\x1b\\',
    b"\x1bP+q544e\x1b\\",
    b"\xc2\x9b6n",  # 8-bit CSI, UTF-8 encoded
]
KEPT = [
    b"\x1b[31mred\x1b[0m",
    b"\x1b[2J\x1b[H",
    b"\x1b[?1049h\x1b[?1049l",
    b"\x1b[?2004h",
    b"\x1b[22;0t\x1b[23;0t",  # push/pop the title
    b"\x1b[8;24;80t",  # resize: not a query
    b"\x1b]0;title\x07",
    b"\x1b]10;#ffffff\x07",  # setting a colour, not asking for it
    b"\x1b]8;;https://example.com\x1b\\link\x1b]8;;\x1b\\",
    b"\x1b[>4;2m",  # XTMODKEYS set
    b"plain text 6n c ?",
    "héllo wörld".encode(),
]


@pytest.mark.parametrize("query", QUERIES)
def test_a_query_is_removed_from_its_surroundings(query: bytes) -> None:
    assert without_queries(b"ab" + query + b"cd" + query) == b"abcd"


@pytest.mark.parametrize("kept", KEPT)
def test_other_output_is_unchanged(kept: bytes) -> None:
    assert without_queries(kept) == kept


def test_vims_start_up_keeps_its_screen() -> None:
    start = b"\x1b[?1049h\x1b[22;0;0t\x1b[>4;2m\x1b[?1h\x1b=\x1b[?2004h\x1b[1;24r\x1b[?12h\x1b[?12l"
    queries = (
        b"\x1b[27m\x1b[29m\x1b[m\x1b[H\x1b[2J\x1b[2;1H\x1b[6n\x1b[>c\x1b]10;?\x07\x1b]11;?\x07"
    )
    out = without_queries(start + queries)
    assert out == start + b"\x1b[27m\x1b[29m\x1b[m\x1b[H\x1b[2J\x1b[2;1H"
