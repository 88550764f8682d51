"""Figure frames cut out of a run's stdout (any chunking), and /proc/net/tcp parsing."""

from __future__ import annotations

import base64
from pathlib import Path

from coolcoding.agent.ports import listening_ports
from coolcoding.execution.figures import FRAME_END, FRAME_START, FigureFilter

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40


def frame(data: bytes, mime: bytes = b"image/png") -> bytes:
    return FRAME_START + mime + b";" + base64.b64encode(data) + FRAME_END


def feed_in_chunks(f: FigureFilter, data: bytes, size: int) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for i in range(0, len(data), size):
        out += f.feed(data[i : i + size])
    return out + f.flush()


def test_a_figure_is_cut_out_of_the_text_around_it_whatever_the_chunks() -> None:
    stream = b"before\n" + frame(PNG) + b"after\x1e not a frame\n"
    for size in (1, 2, 3, 7, 64, len(stream)):
        pieces = feed_in_chunks(FigureFilter(1 << 20), stream, size)
        text = b"".join(p for k, p in pieces if k == "text" and isinstance(p, bytes))
        figures = [p for k, p in pieces if k == "figure"]
        assert text == b"before\nafter\x1e not a frame\n", size
        assert figures == [{"mime": "image/png", "data": base64.b64encode(PNG).decode()}]
        first_figure = next(i for i, (k, _) in enumerate(pieces) if k == "figure")
        before = b"".join(p for k, p in pieces[:first_figure] if isinstance(p, bytes))
        assert before == b"before\n", size  # in order


def test_frames_that_are_not_png_or_too_large_are_dropped_with_a_note() -> None:
    f = FigureFilter(100)
    out = f.feed(frame(b"<svg onload=alert(1)>", b"image/svg+xml"))
    assert out == [("text", b"[figure dropped: not a PNG or too large]\n")]
    out = f.feed(frame(b"GIF89a" + b"\x00" * 10))
    assert out == [("text", b"[figure dropped: not a PNG]\n")]
    big = frame(PNG + b"\x00" * 10_000)
    pieces = feed_in_chunks(f, big + b"tail\n", 512)
    assert ("text", b"[figure dropped: larger than the limit]\n") in pieces
    assert b"".join(p for k, p in pieces if k == "text" and isinstance(p, bytes)).endswith(
        b"tail\n"
    )
    assert not any(k == "figure" for k, _ in pieces)
    assert FigureFilter(100).feed(FRAME_START + b"image/png;!!!" + FRAME_END) == [
        ("text", b"[figure dropped: malformed]\n")
    ]
    unfinished = FigureFilter(100)
    unfinished.feed(FRAME_START + b"image/png;AAAA")
    assert unfinished.flush() == [("text", b"[figure dropped: incomplete]\n")]


TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1
   1: 00000000:1389 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 2 1
   2: 0100007F:1F40 0100007F:D3A2 01 00000000:00000000 00:00000000 00000000  1000        0 3 1
"""
TCP6 = """  sl  local_address                         remote_address                        st
   0: 00000000000000000000000001000000:0BB8 00000000000000000000000000000000:0000 0A 0
   1: 00000000000000000000000000000000:1F40 00000000000000000000000000000000:0000 0A 0
"""


def test_listening_ports_from_proc_net(tmp_path: Path) -> None:
    (tmp_path / "tcp").write_text(TCP)
    (tmp_path / "tcp6").write_text(TCP6)
    assert listening_ports(str(tmp_path)) == [
        {"port": 3000, "address": "::1", "family": "ipv6"},
        {"port": 5001, "address": "0.0.0.0", "family": "ipv4"},
        {"port": 8000, "address": "127.0.0.1", "family": "ipv4"},
    ]
    assert listening_ports(str(tmp_path / "missing")) == []
