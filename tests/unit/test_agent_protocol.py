"""The agent protocol: framing, the handshake and every refusal, against a real in-process agent
listening on a unix socket (the wire bytes are written by hand where a client would misbehave)."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import struct
import tempfile
from collections.abc import AsyncIterator

import pytest

from coolcoding.agent import connection, messages, protocol
from coolcoding.agent.client import AgentClient, AgentRefused
from coolcoding.agent.connection import start_tcp_server, start_unix_server
from coolcoding.agent.protocol import ProtocolError
from coolcoding.agent.schema_check import SchemaError, check
from coolcoding.agent.server import AgentLimits, AgentServer

SECRET = secrets.token_bytes(32)


def reader_of(data: bytes) -> asyncio.StreamReader:
    r = asyncio.StreamReader()
    r.feed_data(data)
    r.feed_eof()
    return r


async def test_frames_round_trip_control_and_raw_data() -> None:
    raw = bytes(range(256)) * 3
    stream = protocol.encode_control({"type": "x", "s": "é"}) + protocol.data_frame(7, raw)
    r = reader_of(stream)
    f1 = await protocol.read_frame(r, 1 << 20)
    f2 = await protocol.read_frame(r, 1 << 20)
    assert f1 is not None and f1.kind == protocol.KIND_CONTROL and f1.channel == 0
    assert protocol.decode_control(f1.payload) == {"type": "x", "s": "é"}
    assert f2 == protocol.Frame(protocol.KIND_DATA, 7, raw)  # bytes unescaped, untouched
    assert await protocol.read_frame(r, 1 << 20) is None  # clean end


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (struct.pack(">IBI", 1 << 30, 1, 0), "too_large"),  # refused before any buffering
        (struct.pack(">IBI", 0, 9, 0), "bad_kind"),
        (struct.pack(">IBI", 2, 1, 5) + b"{}", "bad_channel"),
        (struct.pack(">IBI", 10, 2, 1) + b"abc", "truncated"),
        (b"\x00\x00", "truncated"),
    ],
)
async def test_bad_frames_are_refused(data: bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as e:
        await protocol.read_frame(reader_of(data), 1 << 20)
    assert e.value.code == code


@pytest.mark.parametrize("payload", [b"not json", b"[1,2]", b"\xff\xfe", b'"s"'])
def test_control_payload_must_be_a_json_object(payload: bytes) -> None:
    with pytest.raises(ProtocolError) as e:
        protocol.decode_control(payload)
    assert e.value.code == "bad_json"


def test_proof_binds_the_role_both_nonces_and_the_secret() -> None:
    p = protocol.auth_proof(SECRET, "client", "a", "c")
    assert protocol.proof_matches(p, protocol.auth_proof(SECRET, "client", "a", "c"))
    for other in (
        protocol.auth_proof(SECRET, "agent", "a", "c"),  # a reflected agent proof
        protocol.auth_proof(SECRET, "client", "b", "c"),  # another connection's challenge
        protocol.auth_proof(b"x" * 32, "client", "a", "c"),
    ):
        assert not protocol.proof_matches(p, other)
    assert not protocol.proof_matches(p, None)
    assert SECRET.hex() not in p


def test_schema_check_is_strict() -> None:
    check({"cols": 80, "rows": 24}, messages.PtyOpenParams)
    check({"cols": 80, "rows": 24, "env": {"A": "b"}, "terminal_id": "t"}, messages.PtyOpenParams)
    for bad in (
        {"cols": 80},  # missing
        {"cols": 80, "rows": 24, "shell": "x"},  # unknown
        {"cols": True, "rows": 24},  # a bool is not an int
        {"cols": 80, "rows": 24, "env": {"A": 1}},
        {"cols": 80, "rows": 24, "argv": "bash"},
    ):
        with pytest.raises(SchemaError):
            check(bad, messages.PtyOpenParams)
    check({"path": "a", "channel": 3, "expected_sha256": "ab"}, messages.FilesWriteParams)
    check({"entry": None}, messages.FilesStatResult)


def test_every_message_exports_a_json_schema() -> None:
    from coolcoding.agent.schema_export import protocol_schema

    schema = protocol_schema()
    assert set(schema["methods"]) == set(messages.METHODS)
    write = schema["$defs"]["FilesWriteParams"]
    assert write["required"] == ["channel", "path"]
    assert write["properties"]["expected_sha256"] == {"type": "string"}
    info = schema["$defs"]["PtyInfo"]["properties"]["exit_code"]
    assert info == {"anyOf": [{"type": "integer"}, {"type": "null"}]}


@pytest.fixture
async def agent_socket() -> AsyncIterator[str]:
    base = tempfile.mkdtemp(prefix="cc-agent-unit-")
    os.mkdir(os.path.join(base, "ws"))
    path = os.path.join(base, "a.sock")
    agent = AgentServer(os.path.join(base, "ws"), SECRET, AgentLimits(max_frame_bytes=4096))
    server = await start_unix_server(agent.on_client, path)
    async with server:
        yield path
    await agent.shutdown()


async def raw_handshake(path: str, auth: dict[str, object] | None) -> dict[str, object]:
    """Speak the handshake by hand; return the agent's answer to ``auth`` (proof filled in)."""
    r, w = await asyncio.open_unix_connection(path)
    assert await r.readexactly(4) == protocol.MAGIC
    frame = await protocol.read_frame(r, 4096)
    assert frame is not None
    hello = protocol.decode_control(frame.payload)
    assert hello["type"] == "hello" and hello["protocols"] == [1, 2, 3, 4]
    msg = {"type": "auth", "protocol": 1, "challenge": "c" * 64,
           "proof": protocol.auth_proof(SECRET, "client", str(hello["challenge"]), "c" * 64)}  # fmt: skip
    msg.update(auth or {})
    w.write(protocol.MAGIC + protocol.encode_control(msg))
    answer = await protocol.read_frame(r, 4096)
    assert answer is not None
    w.close()
    return protocol.decode_control(answer.payload)


async def test_good_handshake_is_welcomed_with_the_agents_own_proof(agent_socket: str) -> None:
    answer = await raw_handshake(agent_socket, None)
    assert answer["type"] == "welcome" and answer["protocol"] == 1
    c = await AgentClient.connect(agent_socket, SECRET)  # also checks the agent's proof
    assert await c.ping()
    await c.close()


@pytest.mark.parametrize(
    ("auth", "code"),
    [
        ({"proof": "0" * 64}, "bad_secret"),
        ({"proof": protocol.auth_proof(b"y" * 32, "client", "x", "c" * 64)}, "bad_secret"),
        ({"protocol": 99}, "unsupported_version"),
        ({"protocol": True}, "auth_required"),
        ({"type": "request"}, "auth_required"),
        ({"extra": 1}, "auth_required"),
    ],
)
async def test_bad_auth_is_refused(agent_socket: str, auth: dict[str, object], code: str) -> None:
    answer = await raw_handshake(agent_socket, auth)
    assert answer["type"] == "refused" and answer["code"] == code


async def test_client_with_a_wrong_secret_gets_agent_refused(agent_socket: str) -> None:
    with pytest.raises(AgentRefused) as e:
        await AgentClient.connect(agent_socket, b"w" * 32)
    assert e.value.code == "bad_secret"


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\n\r\n",  # bad magic
        protocol.MAGIC + struct.pack(">IBI", 100_000, 1, 0),  # oversize before auth
        protocol.MAGIC + struct.pack(">IBI", 2, 1, 0) + b"{}",  # no auth fields
        protocol.MAGIC + struct.pack(">IBI", 3, 2, 1) + b"abc",  # data before auth
    ],
)
async def test_misbehaving_clients_are_refused_and_the_agent_keeps_serving(
    agent_socket: str, garbage: bytes
) -> None:
    good = await AgentClient.connect(agent_socket, SECRET)
    r, w = await asyncio.open_unix_connection(agent_socket)
    w.write(garbage)
    rest = await asyncio.wait_for(r.read(), 10)  # the agent answers and hangs up
    assert rest.startswith(protocol.MAGIC)
    last = rest[rest.rfind(b'{"type"') :]
    assert json.loads(last)["type"] == "refused"
    assert await good.ping()
    await good.close()


@pytest.mark.parametrize(
    "frame",
    [
        struct.pack(">IBI", 1 << 20, 2, 1),  # oversize data frame (limit 4096 here)
        struct.pack(">IBI", 4, 7, 0) + b"abcd",  # unknown kind
        struct.pack(">IBI", 3, 1, 0) + b"{x}",  # bad JSON
        protocol.encode_control({"type": "request", "id": "1", "method": "ping", "params": {}}),
    ],
)
async def test_protocol_errors_after_auth_close_only_that_connection(
    agent_socket: str, frame: bytes
) -> None:
    good = await AgentClient.connect(agent_socket, SECRET)
    bad = await AgentClient.connect(agent_socket, SECRET)
    bad._writer.write(frame)
    with pytest.raises(ConnectionError):
        for _ in range(100):
            await asyncio.wait_for(bad.ping(), 5)
            await asyncio.sleep(0.01)
    assert await good.ping()
    await good.close()
    await bad.close()


async def test_bad_params_and_unknown_methods_are_errors_not_disconnects(agent_socket: str) -> None:
    from coolcoding.agent.client import AgentError

    c = await AgentClient.connect(agent_socket, SECRET)
    for method, params, code in (
        ("nope", {}, "unknown_method"),
        ("pty.open", {"cols": "80", "rows": 24}, "bad_params"),
        ("pty.open", {"cols": 0, "rows": 24}, "bad_params"),
        ("files.read", {"path": "../etc/passwd"}, "invalid_path"),
        ("files.read", {"path": "/etc/passwd"}, "invalid_path"),
        ("files.read", {"path": "missing"}, "not_found"),
    ):
        with pytest.raises(AgentError) as e:
            await c.call(method, params)
        assert e.value.code == code, (method, e.value)
    assert await c.ping()
    await c.close()


async def test_the_same_protocol_runs_over_tcp(tmp_path: object) -> None:
    """The transport a Kubernetes port-forward gives: a plain TCP stream (loopback here)."""
    ws = tempfile.mkdtemp(prefix="cc-agent-tcp-")
    agent = AgentServer(ws, SECRET, AgentLimits())
    server = await start_tcp_server(agent.on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        c = await AgentClient.connect(("127.0.0.1", port), SECRET)
        await c.write_file("x.txt", b"over tcp")
        assert (await c.read_file("x.txt"))[0] == b"over tcp"
        with pytest.raises(AgentRefused):
            await AgentClient.connect(("127.0.0.1", port), b"z" * 32)
        await c.close()
    await agent.shutdown()


async def test_a_refused_upload_frees_its_buffer(agent_socket: str) -> None:
    from coolcoding.agent.client import AgentError

    c = await AgentClient.connect(agent_socket, SECRET)
    for path in ("../x", "/abs", "a/./b"):
        with pytest.raises(AgentError) as e:
            await c.write_file(path, b"data" * 100)
        assert e.value.code == "invalid_path"
    await c.write_file("ok.txt", b"fine")
    assert (await c.read_file("ok.txt"))[0] == b"fine"
    await c.close()


def test_frame_parser_gives_the_same_frames_whatever_the_chunking() -> None:
    frames = [
        protocol.encode_control({"type": "request", "id": 1}),
        protocol.data_frame(3, b"x" * 70_000),
        protocol.data_frame(3, b""),
        protocol.data_frame(5, b"\x00\xff" * 10),
    ]
    stream = b"".join(frames)
    want = None
    for size in (1, 7, 9, 4096, 65536, len(stream)):
        parser = protocol.FrameParser(1024 * 1024)
        got = []
        for i in range(0, len(stream), size):
            got += parser.feed(stream[i : i + size])
        assert not parser.partial
        assert len(got) == 4
        want = want or got
        assert got == want
    assert want is not None and want[1].payload == b"x" * 70_000 and want[2].payload == b""


def test_frame_parser_refuses_an_oversize_or_bad_header_before_its_payload() -> None:
    parser = protocol.FrameParser(1000)
    with pytest.raises(protocol.ProtocolError) as info:
        parser.feed(protocol.HEADER.pack(1001, protocol.KIND_DATA, 1))  # no payload sent yet
    assert info.value.code == "too_large"
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.FrameParser(1000).feed(protocol.HEADER.pack(1, 9, 1) + b"x")
    assert info.value.code == "bad_kind"
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.FrameParser(1000).feed(protocol.HEADER.pack(2, protocol.KIND_CONTROL, 4) + b"{}")
    assert info.value.code == "bad_channel"
    half = protocol.FrameParser(1000)
    assert half.feed(protocol.data_frame(1, b"abc")[:5]) == [] and half.partial


async def test_a_spare_shell_becomes_the_next_default_terminal(agent_socket: str) -> None:
    """Protocol 3's ``pty.spare`` (the session pool's first terminal): started ahead, not
    listed, taken by the next ``pty.open`` of the default shell only, once."""
    from coolcoding.agent.client import AgentError

    c = await AgentClient.connect(agent_socket, SECRET)
    assert c.protocol == 4
    spare = await c.pty_spare(80, 24)
    assert spare["started"] and spare["pid"] > 0
    assert await c.pty_spare(80, 24) == {"started": False, "pid": spare["pid"]}
    assert await c.pty_list() == []
    other = await c.pty_open(80, 24, terminal_id="cat", argv=["/bin/cat"])
    assert other["pid"] != spare["pid"]  # not the default shell: not the spare
    info = await c.pty_open(100, 30, terminal_id="t1")
    assert (info["terminal_id"], info["pid"], info["cols"], info["rows"]) == (
        "t1", spare["pid"], 100, 30,
    )  # fmt: skip
    again = await c.pty_open(80, 24, terminal_id="t2")
    assert again["pid"] not in (spare["pid"], other["pid"])  # taken once
    old = await AgentClient.connect(agent_socket, SECRET, version=2)
    with pytest.raises(AgentError) as e:
        await old.pty_spare(80, 24)
    assert e.value.code == "unknown_method"
    await old.close()
    await c.close()


async def _auth_then(path: str, after: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Authenticate by hand, sending ``after`` in the same write as the auth frame."""
    r, w = await asyncio.open_unix_connection(path)
    assert await r.readexactly(4) == protocol.MAGIC
    frame = await protocol.read_frame(r, 4096)
    assert frame is not None
    hello = protocol.decode_control(frame.payload)
    msg = {"type": "auth", "protocol": 4, "challenge": "c" * 64,
           "proof": protocol.auth_proof(SECRET, "client", str(hello["challenge"]), "c" * 64)}  # fmt: skip
    w.write(protocol.MAGIC + protocol.encode_control(msg) + after)
    welcome = await protocol.read_frame(r, 4096)
    assert welcome is not None and protocol.decode_control(welcome.payload)["type"] == "welcome"
    return r, w


async def test_frames_pipelined_behind_the_auth_and_over_the_in_flight_limit_are_all_answered(
    agent_socket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the handshake the agent parses frames in ``data_received``: the bytes that came
    with the auth frame are not lost, and requests past ``MAX_IN_FLIGHT`` wait, in order."""
    monkeypatch.setattr(connection, "MAX_IN_FLIGHT", 2)
    pings = b"".join(
        protocol.encode_control({"type": "request", "id": i, "method": "ping", "params": {}})
        for i in range(1, 41)
    )
    r, w = await _auth_then(agent_socket, pings)
    ids = []
    while len(ids) < 40:
        frame = await asyncio.wait_for(protocol.read_frame(r, 4096), 10)
        assert frame is not None
        answer = protocol.decode_control(frame.payload)
        assert answer["type"] == "response" and answer["result"] == {"pong": True}
        ids.append(answer["id"])
    assert sorted(ids) == list(range(1, 41))
    w.close()


async def test_a_bad_frame_after_the_handshake_is_refused_and_closes(agent_socket: str) -> None:
    r, w = await _auth_then(agent_socket, struct.pack(">IBI", 2, 9, 0) + b"{}")  # kind 9
    frame = await asyncio.wait_for(protocol.read_frame(r, 4096), 10)
    assert frame is not None
    answer = protocol.decode_control(frame.payload)
    assert answer["type"] == "refused" and answer["code"] == "bad_kind"
    assert await asyncio.wait_for(r.read(), 10) == b""
    w.close()
