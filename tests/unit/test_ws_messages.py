"""The messages the server builds (terminal, workspace events, run events) are the ones
schemas/ws.py defines: each validates against its channel's union, so web/src/api/ws.gen.ts
describes what the browser really receives."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from coolcoding.db.models import Execution
from coolcoding.platform import change_event
from coolcoding.schemas.ws import (
    ConflictEvent,
    Resync,
    RunResult,
    SandboxStatusEvent,
    SyncError,
    TerminalClientMessage,
    TerminalServerMessage,
    WorkspaceServerMessage,
)
from coolcoding.services.session_runs import result_event
from coolcoding.services.workspace import Change
from coolcoding.terminal import protocol


@pytest.mark.parametrize(
    "text",
    [
        protocol.ready("t1", True, 12),
        protocol.command("ls", 0, "/workspace", 1.23456),
        protocol.command("sleep", None, None, 0),
        protocol.exited(-1),
        protocol.error("bad_message", "control message is not JSON"),
        protocol.pong(),
    ],
)
def test_terminal_server_messages_validate(text: str) -> None:
    TerminalServerMessage.model_validate_json(text)


def test_terminal_ready_keeps_its_wire_shape() -> None:
    assert json.loads(protocol.ready("t1", False, 3)) == {
        "type": "ready",
        "terminal_id": "t1",
        "reattached": False,
        "replay_bytes": 3,
        "read_only": False,
    }


def test_parsed_client_controls_are_the_schema_messages() -> None:
    resize = protocol.parse_client_text('{"type":"resize","cols":5000,"rows":2}')
    assert resize == protocol.Resize(cols=protocol.MAX_COLS, rows=2)
    TerminalClientMessage.model_validate(resize.as_dict())
    TerminalClientMessage.model_validate(protocol.parse_client_text('{"type":"ping"}').as_dict())


def test_a_bool_row_count_is_a_protocol_error() -> None:
    with pytest.raises(protocol.ProtocolError):
        protocol.parse_client_text('{"type":"resize","cols":80,"rows":true}')


@pytest.mark.parametrize(
    "change",
    [
        Change("write", "a/b.py", version=3, size=10, source="sandbox"),
        Change("mkdir", "a", "folder", version=1),
        Change("delete", "a/b.py"),
        Change("move", "a", "folder", to_path="c"),
    ],
)
def test_change_events_validate(change: Change) -> None:
    event = change_event(change)
    WorkspaceServerMessage.model_validate(event)
    if change.kind == "move":
        assert (event["from"], event["to"]) == ("a", "c")


@pytest.mark.parametrize(
    "event",
    [
        SandboxStatusEvent(status="running").as_dict(),
        SandboxStatusEvent(status="error", message="The sandbox failed to start").as_dict(),
        ConflictEvent(path="a", conflict_path="a (conflict 1)", message="kept").as_dict(),
        SyncError(path="bad\\xff", error="invalid_path", message="not UTF-8").as_dict(),
        Resync().as_dict(),
        Resync(reason="sync_backlog").as_dict(),
    ],
)
def test_workspace_events_validate(event: dict[str, Any]) -> None:
    WorkspaceServerMessage.model_validate(event)


def test_optional_fields_are_left_out_not_null() -> None:
    assert SandboxStatusEvent(status="running").as_dict() == {
        "type": "sandbox_status",
        "status": "running",
    }
    assert Resync().as_dict() == {"type": "resync"}


def test_an_undecodable_name_is_escaped_not_an_encoding_error() -> None:
    text = SyncError(path="a\udcffb", error="invalid_path", message="m").as_json()
    assert "\\udcff" in text


def test_an_unknown_message_type_is_refused() -> None:
    with pytest.raises(ValidationError):
        WorkspaceServerMessage.model_validate({"type": "file_exploded", "path": "a"})


def test_run_result_event_validates() -> None:
    row = Execution(
        uuid="00000000-0000-0000-0000-000000000001",
        verdict="time_limit",
        message="wall time limit",
        exit_code=None,
        signal=9,
        wall_ms=1500.4,
        cpu_ms=10.0,
        memory_kb=2048,
        compile_output=None,
        created_at=datetime.now(UTC),
    )
    result = result_event(row)
    RunResult.model_validate(result)
    assert result["status"] == "time_limit" and result["signal_name"] == "SIGKILL"
    assert result["duration_ms"] == 1500
