"""Finding 5: a reattach must not make the terminal emulator answer old queries into the shell.

A program's queries (cursor position, device attributes, colours) stay in the scrollback; an
emulator that is sent them again on reattach answers them, and the answers reached the shell as
typed input (``2RR0;276;0c...`` run as a command). The replay now carries no query, while the
rest of the program's output (colours, text) replays unchanged; the ``ready`` message says how
long the replay is, so the client can ignore its emulator's answers to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.conftest import LiveServer, UserClient, searchable, start_live_server
from tests.sandbox_helpers import Term

pytestmark = pytest.mark.sandbox

# What vim, less and friends print at start-up, as the shell's printf sends it.
QUERIES_PRINTF = r"printf '\e[6n\e[>c\e[c\e]10;?\a\e]11;?\e\\\eP$qm\e\\\e[?1$p\e[31mRED\e[0m\n'"
QUERY_BYTES = [
    b"\x1b[6n",
    b"\x1b[>c",
    b"\x1b[c",
    b"\x1b]10;?",
    b"\x1b]11;?",
    b"\x1bP$qm",
    b"\x1b[?1$p",
]

EMULATOR_ANSWERS = {
    b"\x1b[6n": b"\x1b[2;2R",
    b"\x1b[>c": b"\x1b[>0;276;0c",
    b"\x1b[c": b"\x1b[?1;2c",
    b"\x1b]10;?": b"\x1b]10;rgb:d7d7/dada/e0e0\x1b\\",
    b"\x1b]11;?": b"\x1b]11;rgb:0c0c/0e0e/1313\x1b\\",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    srv, stop = start_live_server("sqlite", searchable(tmp_path_factory.mktemp("replay")))
    yield srv
    stop()


async def test_the_replay_holds_no_terminal_query(server: LiveServer, user: UserClient) -> None:
    sid = user.new_session()
    t = await Term.open(server, user, sid, tid="vim")
    _, out = await t.run(QUERIES_PRINTF)
    assert b"\x1b[6n" in out and b"\x1b[31mRED\x1b[0m" in out  # live output is untouched
    await t.close()

    again = await Term.open(server, user, sid, tid="vim")
    ready = again.controls[0]
    assert ready["reattached"] is True
    replay = await asyncio.wait_for(again.ws.recv(), 15)
    assert isinstance(replay, bytes)
    assert ready["replay_bytes"] == len(replay)
    assert b"\x1b[31mRED\x1b[0m" in replay  # the program's output replays as it was
    for query in QUERY_BYTES:
        assert query not in replay, query
    # An emulator that answers what it is sent, as xterm.js does: whatever it answered would
    # be typed into the shell's line, in front of the next command.
    again.output += replay
    for query, answer in EMULATOR_ANSWERS.items():
        if query in replay:
            await again.ws.send(answer)
    msg, _ = await again.run("echo after")
    assert msg["command"] == "echo after"
    await again.close()
    commands = user.client.get(f"/api/sessions/{sid}/commands").json()
    assert [c["command"] for c in commands] == ["echo after", QUERIES_PRINTF]
