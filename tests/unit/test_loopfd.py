"""LoopFd: closing a watched fd unwatches it first, so the fd number's next owner is watched.

The control (``test_a_raw_close_while_watched_leaves_the_number_dead``) shows the failure this
guards against on the loop in question: the same steps with a bare ``add_reader`` + ``os.close``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from coolcoding.sandbox.local.loopfd import LoopFd

LOOPS: dict[str, Callable[[Coroutine[Any, Any, Any]], Any]] = {
    "asyncio": asyncio.run,
    "uvloop": uvloop.run,
}


async def next_owner_wakes(first_closed: Callable[[int], Coroutine[Any, Any, None]]) -> bool:
    """Open a pipe, let ``first_closed`` watch and close its read end, then check that a new
    pipe given the same number wakes a reader."""
    r, w = os.pipe2(os.O_NONBLOCK)
    await first_closed(r)
    os.close(w)
    await asyncio.sleep(0.02)
    r2, w2 = os.pipe2(os.O_NONBLOCK)
    assert r2 == r  # the lowest free number: reused
    fd = LoopFd(r2)
    try:
        os.write(w2, b"x")
        try:
            return await asyncio.wait_for(fd.readable(), 2.0)
        except TimeoutError:
            return False
    finally:
        fd.close()
        os.close(w2)


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_closing_a_watched_loopfd_keeps_its_number_usable(loop: str) -> None:
    async def watch_then_close(r: int) -> None:
        fd = LoopFd(r)
        waiter = asyncio.ensure_future(fd.readable())
        await asyncio.sleep(0.02)  # the reader is registered on the loop
        fd.close()
        assert await waiter is False  # the waiter wakes and sees it closed
        fd.close()  # idempotent

    assert LOOPS[loop](next_owner_wakes(watch_then_close)) is True


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_a_raw_close_while_watched_leaves_the_number_dead(loop: str) -> None:
    async def raw(r: int) -> None:
        asyncio.get_running_loop().add_reader(r, lambda: None)
        await asyncio.sleep(0.02)
        os.close(r)

    assert LOOPS[loop](next_owner_wakes(raw)) is False


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_waits_and_a_persistent_watch(loop: str) -> None:
    async def main() -> None:
        r, w = os.pipe2(os.O_NONBLOCK)
        fd = LoopFd(r)
        cancelled = fd.when_readable()
        cancelled.cancel()  # a cancelled wait unwatches; a later one watches again
        await asyncio.sleep(0.01)
        os.write(w, b"ab")
        assert await asyncio.wait_for(fd.readable(), 2.0) is True
        assert fd.read(10) == b"ab"
        with pytest.raises(BlockingIOError):
            fd.read(10)
        calls: list[int] = []
        ready = asyncio.get_running_loop().create_future()

        def seen() -> None:
            calls.append(len(fd.read(10)))
            if not ready.done():
                ready.set_result(None)

        fd.watch_readable(seen)
        with pytest.raises(RuntimeError):
            fd.when_readable()
        os.write(w, b"cd")
        await asyncio.wait_for(ready, 2.0)
        os.write(w, b"ef")
        fd.close()  # before the loop polls again: the watch is gone, no call on a closed fd
        await asyncio.sleep(0.02)
        assert calls == [2]
        assert fd.read(10) == b"" and fd.closed
        with pytest.raises(BrokenPipeError):
            fd.write(b"x")
        os.close(w)

    LOOPS[loop](main())
