"""``LocalRuntime.start`` holds one lock per session: a slow start (an agent still importing on
a loaded host) does not hold up other sessions' starts; two starts of one session still run one
after the other."""

# ruff: noqa: F811 (pytest fixtures imported from conftest_sandbox, then requested by name)
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from coolcoding.sandbox.local.runtime import LocalRuntime
from coolcoding.sandbox.local.sandbox import LocalSandbox
from tests.integration.conftest_sandbox import (  # noqa: F401 (fixtures)
    new_spec,
    requires_sandbox,
    runtime,
)

pytestmark = [pytest.mark.sandbox, requires_sandbox]
HANG_CHECK_S = 120  # not a measurement: only a start that waits for the blocked one hits it


def block_agent_start_of(
    monkeypatch: pytest.MonkeyPatch, session: str
) -> tuple[asyncio.Event, asyncio.Event]:
    """The start of ``session`` stops right before its agent (its workspace is mounted)."""
    reached, release = asyncio.Event(), asyncio.Event()
    original = LocalRuntime._start_agent

    async def start_agent(self: LocalRuntime, sb: LocalSandbox) -> Any:
        if sb.spec.session_uuid == session:
            reached.set()
            await release.wait()
        return await original(self, sb)

    monkeypatch.setattr(LocalRuntime, "_start_agent", start_agent)
    return reached, release


async def test_a_slow_start_does_not_hold_up_another_sessions_start(
    runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow, fast = new_spec(), new_spec()
    reached, release = block_agent_start_of(monkeypatch, slow.session_uuid)
    slow_start = asyncio.create_task(runtime.start(slow))
    try:
        await asyncio.wait_for(reached.wait(), HANG_CHECK_S)
        sb = await asyncio.wait_for(runtime.start(fast), HANG_CHECK_S)
        assert isinstance(sb, LocalSandbox) and sb.agent is not None
        assert not slow_start.done()
    finally:
        release.set()
    assert (await slow_start).spec == slow


async def test_a_second_start_of_the_same_session_waits_for_the_first(
    runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = new_spec()
    reached, release = block_agent_start_of(monkeypatch, spec.session_uuid)
    first = asyncio.create_task(runtime.start(spec))
    try:
        await asyncio.wait_for(reached.wait(), HANG_CHECK_S)
        second = asyncio.create_task(runtime.start(spec))
        await asyncio.sleep(0.2)
        assert not second.done()
    finally:
        release.set()
    assert await first is await second  # one sandbox, one agent
