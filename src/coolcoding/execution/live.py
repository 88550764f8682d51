"""Live output of running executions, for the server-sent events of ``/api/executions/{id}/events``.

Each running execution has a ``LiveOutput``: an append-only list of events (``compile``,
``stdout``, ``stderr``, ``figure``, then one ``result``) that any number of followers read from the start, so a browser
that connects a moment after the run began still gets every byte, in order. Bounded: the exec
itself stops at its output limit. Kept a short while after the end for late followers; after
that the stored result in the database answers.
"""

from __future__ import annotations

import asyncio
import codecs
from collections.abc import AsyncIterator
from typing import Any

from coolcoding.schemas.ws import RunOutput

Event = tuple[str, dict[str, Any]]


class LiveOutput:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.done = False
        self._changed = asyncio.Condition()
        self._decoders = {
            name: codecs.getincrementaldecoder("utf-8")(errors="replace")
            for name in ("compile", "stdout", "stderr")
        }

    async def append(self, stream: str, data: bytes) -> None:
        text = self._decoders[stream].decode(data)
        if text:
            await self._add((stream, RunOutput(data=text).as_dict()))

    async def add_event(self, name: str, data: dict[str, Any]) -> None:
        """An event of its own (a ``figure``), in order with the output."""
        await self._add((name, data))

    async def finish(self, result: dict[str, Any]) -> None:
        for name, decoder in self._decoders.items():
            tail = decoder.decode(b"", final=True)
            if tail:
                await self._add((name, RunOutput(data=tail).as_dict()))
        await self._add(("result", result))
        self.done = True

    async def _add(self, event: Event) -> None:
        async with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    async def follow(self) -> AsyncIterator[Event]:
        """Every event from the first, waiting for new ones until the result."""
        i = 0
        while True:
            async with self._changed:
                while i >= len(self.events):
                    await self._changed.wait()
                batch = self.events[i:]
            for event in batch:
                yield event
                if event[0] == "result":
                    return
            i += len(batch)


class LiveHub:
    """Live outputs by execution uuid; finished ones linger ``keep_s`` seconds."""

    def __init__(self, keep_s: float = 60.0) -> None:
        self.keep_s = keep_s
        self._live: dict[str, LiveOutput] = {}

    def open(self, key: str) -> LiveOutput:
        live = self._live.get(key)
        if live is None:
            live = self._live[key] = LiveOutput()
        return live

    def get(self, key: str) -> LiveOutput | None:
        return self._live.get(key)

    def release(self, key: str) -> None:
        """Forget ``key`` after the grace period (its result is in the database by then)."""
        loop = asyncio.get_running_loop()
        loop.call_later(self.keep_s, self._live.pop, key, None)

    def __len__(self) -> int:
        return len(self._live)
