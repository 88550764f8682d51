"""The agent terminal's scrollback: trimmed by an offset into the oldest chunk (no re-copy per
read), with the same bytes as cutting that chunk; flood output held and coalesced reaches the
peers whole and in order, and the scrollback is the tail of what they got."""

from __future__ import annotations

import asyncio
import collections
import random
from typing import Any

from coolcoding.agent import pty
from coolcoding.agent.pty import AgentTerminal


class _Peer:
    protocol = 4

    def __init__(self) -> None:
        self.data = bytearray()
        self.frames = 0

    def send_data(self, channel: int, data: bytes) -> None:
        self.data += data
        self.frames += 1

    def send_event(self, event: str, channel: int, data: dict[str, Any]) -> None:
        pass

    def backlog(self) -> int:
        return 0

    async def drained(self) -> None:
        pass


async def _no_hook(term: AgentTerminal, event: dict[str, Any]) -> None:
    pass


def _terminal(limit: int) -> AgentTerminal:
    return AgentTerminal("t", max_frame=1 << 20, scrollback_bytes=limit,
                         command_output_bytes=1 << 16, on_command=_no_hook)  # fmt: skip


def _cut_reference(chunks: list[bytes], limit: int) -> bytes:
    """The previous algorithm: re-slice the oldest chunk at each trim."""
    q: collections.deque[bytes] = collections.deque()
    total = 0
    for data in chunks:
        q.append(data)
        total += len(data)
        while total - len(q[0]) >= limit:
            total -= len(q.popleft())
        over = total - limit
        if over > 0:
            head = q[0]
            nl = head.find(b"\n", over, over + 4096)
            cut = nl + 1 if nl >= 0 else over
            q[0] = head[cut:]
            total -= cut
    return b"".join(q)


def _random_chunks(rng: random.Random, n: int, biggest: int) -> list[bytes]:
    out = []
    for _ in range(n):
        size = rng.choice([1, 7, 100, 4095, 4096, rng.randrange(1, biggest)])
        line = rng.randrange(10, 300)
        body = bytes(rng.randrange(32, 127) for _ in range(min(size, 512)))
        data = (body * (size // len(body) + 1))[:size]
        out.append(bytes(b if i % line else 10 for i, b in enumerate(data)))
    return out


async def test_scrollback_offset_trim_equals_cutting_the_chunk() -> None:
    rng = random.Random(14)
    for limit in (1000, 8192, 65536):
        for _ in range(5):
            chunks = _random_chunks(rng, 60, 3 * limit)
            term = _terminal(limit)
            for c in chunks:
                term._keep(c)
            expected = _cut_reference(chunks, limit)
            assert term.scrollback() == expected
            assert term._scrollback_bytes == len(expected)
            assert b"".join(chunks).endswith(expected)


async def test_flood_output_reaches_peers_whole_and_scrollback_is_its_tail() -> None:
    rng = random.Random(7)
    term = _terminal(256 * 1024)
    peer = _Peer()
    term.attach(peer, 2, replay=False, max_frame=1 << 20)
    sent = bytearray()
    for c in _random_chunks(rng, 400, 64 * 1024):
        term._output(c)
        sent += c
        if rng.random() < 0.1:
            await asyncio.sleep(pty.COALESCE_S * 2)  # the flush timer fires
    term.flush()
    assert bytes(peer.data) == bytes(sent)
    assert peer.frames < 400  # floods were coalesced
    tail = term.scrollback()
    assert 0 < len(tail) <= 256 * 1024
    assert bytes(sent).endswith(tail)
    # A new attachment replays exactly that tail.
    late = _Peer()
    term.attach(late, 4, replay=True, max_frame=1 << 20)
    assert bytes(late.data) == tail
