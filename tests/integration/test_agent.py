"""The agent for real: as a plain subprocess on a temp dir, and as the first process of a real
bubblewrap sandbox (socket on a host path bound into it). Terminals survive their client;
files, watcher and exec work through the protocol."""

from __future__ import annotations

import asyncio
import os
import re
import stat
from collections.abc import AsyncIterator
from typing import Any

import pytest

from coolcoding.agent.client import CHANNEL_HIGH_WATER, AgentClient, AgentError
from tests.agent_helpers import TIMEOUT, RunningAgent, read_until, running_agent
from tests.integration.conftest_sandbox import requires_sandbox

KINDS = [
    "plain",
    pytest.param("sandbox", marks=[pytest.mark.sandbox, requires_sandbox]),
]


@pytest.fixture(params=KINDS)
async def agent(request: pytest.FixtureRequest) -> AsyncIterator[RunningAgent]:
    async with running_agent(request.param) as a:
        yield a


async def next_event(c: AgentClient, pred: Any, timeout: float = TIMEOUT) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            ev = await c.events.get()
            if pred(ev):
                return ev


async def test_terminal_echo_then_reattach_from_a_new_client_sees_scrollback_and_live_loop(
    agent: RunningAgent,
) -> None:
    c1 = await agent.client()
    await c1.pty_open(100, 30, terminal_id="main", argv=agent.shell)
    att = await c1.pty_attach("main")
    await att.write(b"echo hi\r")
    await read_until(att, b"hi\r\n")
    # A loop that goes on writing after the client left, then waits for a line: n5 can only
    # come live, after the new client typed it (was: five lines a second apart, 5 s).
    await att.write(b"for i in 1 2 3; do echo n$i; sleep 0.2; done; read x; echo n$((4+1))\r")
    await read_until(att, b"n1\r\n")
    await c1.close()  # the client goes away; the shell and its loop do not

    c2 = await agent.client()
    [info] = await c2.pty_list()
    assert info["terminal_id"] == "main" and info["alive"]
    att2 = await c2.pty_attach("main")
    out = await read_until(att2, b"n3\r\n")  # the loop went on while no client was there
    await att2.write(b"go\r")
    out += await read_until(att2, b"n5\r\n")
    assert b"hi\r\n" in out and b"n1\r\n" in out  # the scrollback, then live output
    assert out.index(b"n1") < out.index(b"n3") < out.index(b"go") < out.index(b"n5")
    await att2.write(b"echo done$((40+2))\r")
    await read_until(att2, b"done42")
    await c2.close()


async def test_several_attachments_share_output_and_resize_reaches_the_shell(
    agent: RunningAgent,
) -> None:
    c = await agent.client()
    await c.pty_open(80, 24, terminal_id="t", argv=agent.shell)
    a1 = await c.pty_attach("t")
    a2 = await c.pty_attach("t", replay=False)
    await c.pty_resize("t", 123, 45)
    await a1.write(b"stty size\r")
    await read_until(a1, b"45 123")
    await read_until(a2, b"45 123")
    await a2.detach()
    await c.pty_close("t")
    assert await c.pty_list() == []
    await c.close()


async def test_shell_integration_reports_commands_and_exit(agent: RunningAgent) -> None:
    c = await agent.client()
    await c.subscribe(pty=True)
    await c.pty_open(80, 24, terminal_id="t", argv=agent.shell)
    att = await c.pty_attach("t")
    await att.write(b"(exit 3)\r")
    ev = await next_event(c, lambda e: e["event"] == "pty.command")
    assert ev["data"]["command"] == "(exit 3)" and ev["data"]["exit_code"] == 3
    assert ev["data"]["cwd"] == "/workspace" if agent.kind == "sandbox" else ev["data"]["cwd"]
    await att.write(b"exit 7\r")
    items = [i async for i in att]  # ends when the terminal does
    exits = [i for i in items if isinstance(i, dict) and i["event"] == "pty.exit"]
    assert exits and exits[-1]["data"]["exit_code"] == 7
    [info] = await c.pty_list()
    assert not info["alive"] and info["exit_code"] == 7
    await c.close()


async def test_protocol_4_reports_who_typed_each_command(agent: RunningAgent) -> None:
    """Each attachment names its typist; a command's event names the one whose input started
    it, on every connection of protocol 4 (an older connection gets no ``typist`` and may not
    name one)."""
    c = await agent.client()
    await c.subscribe(pty=True)
    old = await asyncio.wait_for(
        AgentClient.connect(agent.socket, agent.secret, version=3), TIMEOUT
    )
    await old.subscribe(pty=True)
    await c.pty_open(80, 24, terminal_id="t", argv=agent.shell)
    alice = await c.pty_attach("t", typist=7)
    bob_c = await agent.client()
    bob = await bob_c.pty_attach("t", typist=9)
    await bob.write(b"echo by-bob\r")
    ev = await next_event(c, lambda e: e["event"] == "pty.command")
    assert (ev["data"]["command"], ev["data"]["typist"]) == ("echo by-bob", 9)
    ev_old = await next_event(old, lambda e: e["event"] == "pty.command")
    assert ev_old["data"]["command"] == "echo by-bob" and "typist" not in ev_old["data"]
    await alice.write(b"echo by-al")
    await bob.write(b"ice\r")  # the Enter is Bob's: the command started with his input
    ev = await next_event(c, lambda e: e["event"] == "pty.command")
    assert (ev["data"]["command"], ev["data"]["typist"]) == ("echo by-alice", 9)
    await alice.write(b"echo again\r")
    ev = await next_event(c, lambda e: e["event"] == "pty.command")
    assert (ev["data"]["command"], ev["data"]["typist"]) == ("echo again", 7)
    unnamed = await c.pty_attach("t", replay=False)
    await unnamed.write(b"echo nobody\r")
    ev = await next_event(c, lambda e: e["event"] == "pty.command")
    assert (ev["data"]["command"], ev["data"]["typist"]) == ("echo nobody", None)
    with pytest.raises(AgentError) as e:
        await old.call("pty.attach", {"terminal_id": "t", "typist": 1})
    assert e.value.code == "bad_params"
    for client in (old, bob_c, c):
        await client.close()


async def test_file_write_is_atomic_compare_and_swap(agent: RunningAgent) -> None:
    c = await agent.client()
    first = await c.write_file("src/a.txt", b"one", expect_absent=True)
    with pytest.raises(AgentError) as e:
        await c.write_file("src/a.txt", b"two", expect_absent=True)
    assert e.value.code == "conflict"
    with pytest.raises(AgentError) as e:
        await c.write_file("src/a.txt", b"two", expected_sha256="0" * 64)
    assert e.value.code == "conflict"
    assert (await c.read_file("src/a.txt"))[0] == b"one"
    second = await c.write_file("src/a.txt", b"two", expected_sha256=first["sha256"])
    assert (await c.read_file("src/a.txt")) == (b"two", second["sha256"])
    assert (agent.workspace / "src/a.txt").read_bytes() == b"two"
    # An existing file's mode survives a save (a script keeps its x bit).
    os.chmod(agent.workspace / "src/a.txt", 0o755)
    await c.write_file("src/a.txt", b"three")
    assert stat.S_IMODE(os.stat(agent.workspace / "src/a.txt").st_mode) == 0o755
    await c.close()


async def test_files_list_move_delete_mkdir_and_big_content(agent: RunningAgent) -> None:
    c = await agent.client()
    big = os.urandom(3 * 1024 * 1024 + 7)  # several frames each way
    await c.write_file("d/big.bin", big)
    await c.mkdir("e/f")
    await c.move("d/big.bin", "e/f/big.bin")
    with pytest.raises(AgentError) as e:
        await c.move("e", "e/f/inside")
    assert e.value.code == "invalid_path"
    entries = {x["path"]: x for x in await c.list_tree(hashes=True)}
    assert set(entries) == {"d", "e", "e/f", "e/f/big.bin"}
    import hashlib

    assert entries["e/f/big.bin"]["sha256"] == hashlib.sha256(big).hexdigest()
    assert (await c.read_file("e/f/big.bin"))[0] == big
    assert await c.delete("e") is True
    assert await c.delete("e") is False
    assert await c.stat("e") is None
    await c.close()


async def test_watcher_reports_a_file_created_in_the_terminal(agent: RunningAgent) -> None:
    c = await agent.client()
    await c.subscribe(fs=True)
    await c.pty_open(80, 24, terminal_id="t", argv=agent.shell)
    att = await c.pty_attach("t")
    await att.write(b"mkdir -p made && echo x > made/new.txt && ln -s /etc made/link\r")

    seen: dict[str, str] = {}

    def done(ev: dict[str, Any]) -> bool:
        if ev["event"] == "fs.changes":
            seen.update({ch["path"]: ch["type"] for ch in ev["data"]["changes"]})
        return seen.get("made/new.txt") == "file" and seen.get("made/link") == "symlink"

    await next_event(c, done)
    assert seen["made"] == "dir"
    await att.write(b"rm made/new.txt\r")
    await next_event(c, lambda ev: any(ch == {"path": "made/new.txt", "type": "absent"}
                                       for ch in ev["data"]["changes"]))  # fmt: skip
    await c.close()


async def test_exec_streams_output_stdin_exit_and_limits(agent: RunningAgent) -> None:
    c = await agent.client()
    run = await c.exec_start(["sh", "-c", "cat; echo oops >&2; exit 4"], stdin=b"in\n")
    out, err, ex = await run.collect()
    assert (out, err, ex["exit_code"], ex["timed_out"]) == (b"in\n", b"oops\n", 4, False)

    run = await c.exec_start(["sh", "-c", "sleep 1000 & sleep 1000"], timeout_s=0.5)
    _out, _err, ex = await run.collect()
    assert ex["timed_out"] and ex["signal"] == 9

    run = await c.exec_start(["sh", "-c", "yes"], output_limit_bytes=10_000)
    out, _err, ex = await run.collect()
    assert ex["output_truncated"] and len(out) == 10_000

    run = await c.exec_start(["sleep", "1000"])
    await run.kill()
    _out, _err, ex = await run.collect()
    assert ex["signal"] == 9
    await c.close()


async def test_exec_reports_the_programs_cpu_time_and_peak_memory(agent: RunningAgent) -> None:
    """The agent reaps the program itself (wait4): its CPU time and peak RSS reach the exit
    event, so a Run through a replica that does not hold the sandbox still reports them."""
    c = await agent.client()
    burn = (
        "import time\n"
        "block = bytearray(64 * 1024 * 1024)\n"
        "for i in range(0, len(block), 4096): block[i] = 1\n"
        "t = time.process_time()\n"
        "while time.process_time() - t < 0.3: pass\n"
    )
    run = await c.exec_start(["python3", "-c", burn])
    _out, err, ex = await run.collect()
    assert ex["exit_code"] == 0, err
    assert 250 <= ex.get("cpu_ms", 0) < 30_000, ex
    assert 64 * 1024 <= ex.get("memory_kb", 0) < 1024 * 1024, ex
    run = await c.exec_start(["true"])
    _out, _err, ex = await run.collect()
    assert ex.get("memory_kb", 0) < 64 * 1024, ex  # per program, not the agent's running peak
    await c.close()


async def test_closing_a_terminal_kills_its_jobs_in_other_groups(agent: RunningAgent) -> None:
    c = await agent.client()
    await c.pty_open(80, 24, terminal_id="t", argv=agent.shell)
    att = await c.pty_attach("t")
    # A job-control shell puts each job in its own group; nohup ignores the hang-up.
    await att.write(b"nohup sleep 4242 >/dev/null 2>&1 & echo started$((6*7))\r")
    await read_until(att, b"started42")
    run = await c.exec_start(["sh", "-c", "pgrep -f 'slee[p] 4242' || true"])
    out, _err, _ex = await run.collect()
    assert out.strip(), "the job is running"
    await c.pty_close("t")
    # The kill is sent at close; the process may take a moment to be gone on a loaded machine.
    for _ in range(50):
        run = await c.exec_start(["sh", "-c", "pgrep -f 'slee[p] 4242' || echo none"])
        out, _err, _ex = await run.collect()
        if out.strip() == b"none":
            break
        await asyncio.sleep(0.1)
    assert out.strip() == b"none"
    await c.close()


async def test_a_small_frame_limit_is_respected_both_ways() -> None:
    from tests.agent_helpers import plain_agent

    async with plain_agent("--max-frame-bytes", "4096") as agent:
        c = await agent.client()
        assert c.max_frame == 4096  # learnt from the welcome
        data = os.urandom(100_000)
        await c.write_file("f.bin", data)  # sent in 4 KiB frames, or the agent would hang up
        assert (await c.read_file("f.bin"))[0] == data
        await c.pty_open(80, 24, terminal_id="t", argv=["/bin/bash", "--norc", "-i"])
        att = await c.pty_attach("t")
        await att.write(b"head -c 300000 /dev/zero | tr '\\0' a; echo; echo E$((1+1))\r")
        out = await read_until(att, b"E2")
        assert out.count(b"a") >= 300_000
        await c.close()


async def test_a_flood_of_output_held_and_coalesced_comes_whole_and_in_order(
    agent: RunningAgent,
) -> None:
    """Linux hands a PTY's output over in reads of at most 4 KiB; under a flood the agent holds
    them for up to 2 ms and sends them as larger frames. Nothing is lost or reordered by that,
    and a keystroke afterwards still echoes at once. (How large the frames get depends on the
    machine's load, so it is a figure of bench/bench_agent_terminal.py, not an assertion.)"""
    c = await agent.client()
    await c.pty_open(80, 24, terminal_id="t", argv=["/bin/bash", "--norc", "-i"])
    att = await c.pty_attach("t", replay=False)
    lines = 40_000  # 100 bytes a line: 4 MB, ~1,000 of the line discipline's reads
    await c.write_file("big.txt", b"".join(b"%099d\n" % i for i in range(1, lines + 1)))
    await att.write(b"echo R$((1+1))\r")
    await read_until(att, b"R2")
    await att.write(b"cat big.txt; echo E$((2+3))\r")
    out = bytearray()
    async with asyncio.timeout(60):
        it = aiter(att)
        while b"E5" not in out[-64:]:
            item = await anext(it)
            if isinstance(item, bytes):
                out += item
    numbers = [int(n) for n in re.findall(rb"(?<![0-9])[0-9]{99}(?=\r\n)", bytes(out))]
    assert numbers == list(range(1, lines + 1))  # whole and in order
    await att.write(b"x")
    await read_until(att, b"x")
    await c.close()


async def test_a_client_that_reads_nothing_stops_reading_its_connection_and_loses_nothing(
    agent: RunningAgent,
) -> None:
    """The client handles the agent's frames in its protocol's ``data_received``: a channel
    holding more than ``CHANNEL_HIGH_WATER`` unread bytes pauses reading the connection (which
    pushes back on the agent and the shell), and reading it resumes it: the whole flood then
    arrives in order, and a keystroke afterwards still echoes."""
    c = await agent.client()
    await c.pty_open(80, 24, terminal_id="t", argv=["/bin/bash", "--norc", "-i"])
    att = await c.pty_attach("t", replay=False)
    total = CHANNEL_HIGH_WATER * 2
    await att.write(b"head -c %d /dev/zero | tr '\\0' a; echo; echo E$((2+3))\r" % total)
    async with asyncio.timeout(60):
        while att.stream.pending <= CHANNEL_HIGH_WATER:
            await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)  # nothing is read meanwhile: the connection stays paused
    assert not att.stream.room.is_set()
    # bounded: what was already read from the socket when the pause began, no more
    assert att.stream.pending <= CHANNEL_HIGH_WATER + 2 * c.max_frame + 1024 * 1024
    out = await read_until(att, b"E5")
    assert b"a" * total in out  # whole (the echoed command line holds a few more)
    await att.write(b"x")
    await read_until(att, b"x")
    await c.close()
