"""Finding 4: closing a terminal must not break the next terminal nor the judge.

Closing a PTY master while an event-loop reader was still registered on its fd number left a
stale registration; the next pipe, PTY or pidfd that got the same number was never watched:
the next terminal showed no prompt, judge jobs hung or came back with empty stdout.
Each close path is exercised: ``DELETE .../terminals/{id}``, the socket closing and the
reaper closing the detached terminal (``terminal_reattach_grace_s=1``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from tests.conftest import LiveServer, UserClient, searchable, start_live_server
from tests.sandbox_helpers import Term

pytestmark = pytest.mark.sandbox

ROUNDS = 4
JUDGE_JOBS = 12


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    srv, stop = start_live_server(
        "sqlite",
        searchable(tmp_path_factory.mktemp("fdreuse")),
        terminal_reattach_grace_s=1,
        exec_workers=2,
    )
    yield srv
    stop()


async def assert_terminal_works(server: LiveServer, u: UserClient, sid: str, tid: str) -> Term:
    """A fresh shell: it prints a prompt, echoes what is typed and runs it."""
    t = await Term.open(server, u, sid, tid=tid)
    assert t.controls[0]["reattached"] is False
    await t.wait_output(b"$ ")  # the prompt
    msg, out = await t.run("echo fd-$((40+2))")
    assert b"echo fd-$((40+2))" in out  # the typed command, echoed by the PTY
    assert b"fd-42" in out.replace(b"echo fd-$((40+2))", b"")
    assert msg["exit_code"] == 0
    return t


def wait_reaped(u: UserClient, sid: str, tid: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while any(t["id"] == tid for t in u.client.get(f"/api/sessions/{sid}/terminals").json()):
        assert time.monotonic() < deadline, "the detached terminal was not reaped"
        time.sleep(0.1)


def judge_echo_jobs(u: UserClient, n: int, timeout: float = 180.0) -> list[dict[str, object]]:
    job = {"language": "bash", "source": "echo hi\n"}
    r = u.client.post("/api/executions/batch", json={"jobs": [job] * n})
    assert r.status_code == 202, r.text
    ids = r.json()["ids"]
    deadline = time.monotonic() + timeout
    done: dict[str, dict[str, object]] = {}
    while len(done) < n:
        assert time.monotonic() < deadline, f"judge jobs stuck: {n - len(done)} of {n} unfinished"
        for eid in ids:
            if eid not in done:
                body = u.client.get(f"/api/executions/{eid}").json()
                if body["status"] == "finished":
                    done[eid] = body
        time.sleep(0.1)
    return [done[eid] for eid in ids]


def assert_judge_works(u: UserClient) -> None:
    for body in judge_echo_jobs(u, JUDGE_JOBS):
        assert (body["verdict"], body["stdout"]) == ("accepted", "hi\n"), body


async def test_a_terminal_opened_after_a_delete_works(server: LiveServer, user: UserClient) -> None:
    sid = user.new_session()
    for i in range(ROUNDS):
        t = await assert_terminal_works(server, user, sid, f"del{i}")
        r = user.client.delete(f"/api/sessions/{sid}/terminals/del{i}")
        assert r.status_code == 204, r.text
        await t.close()
    last = await assert_terminal_works(server, user, sid, "after-delete")
    await last.close()
    assert_judge_works(user)


async def test_a_terminal_opened_after_reaping_works(server: LiveServer, user: UserClient) -> None:
    sid = user.new_session()
    for i in range(ROUNDS):
        t = await assert_terminal_works(server, user, sid, f"reap{i}")
        await t.close()  # the socket goes; the reaper closes the shell after the grace
        await asyncio.to_thread(wait_reaped, user, sid, f"reap{i}")
    last = await assert_terminal_works(server, user, sid, "after-reap")
    await last.close()
    assert_judge_works(user)


async def test_a_terminal_opened_after_its_shell_exited_works(
    server: LiveServer, user: UserClient
) -> None:
    """``exit`` in the shell (the reader itself ends the terminal), then the socket closes."""
    sid = user.new_session()
    for i in range(ROUNDS):
        t = await assert_terminal_works(server, user, sid, f"exit{i}")
        await t.ws.send(b"exit\r")
        await t.recv_until(lambda m: m is not None and m["type"] == "exit")
        await t.close()
        await asyncio.to_thread(wait_reaped, user, sid, f"exit{i}")
    last = await assert_terminal_works(server, user, sid, "after-exit")
    await last.close()
    assert_judge_works(user)


async def test_judge_jobs_after_a_terminal_close_finish_with_their_output(
    server: LiveServer, user: UserClient
) -> None:
    sid = user.new_session()
    t = await assert_terminal_works(server, user, sid, "before-judge")
    assert user.client.delete(f"/api/sessions/{sid}/terminals/before-judge").status_code == 204
    await t.close()
    assert_judge_works(user)
