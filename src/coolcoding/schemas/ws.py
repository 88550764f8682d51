"""Every message of the WebSockets and the run events, defined once (docs/API.md).

The server builds its messages from these models; ``python -m coolcoding.schemas.ws`` prints
them as components of an OpenAPI document, from which ``scripts/gen-ws-types.sh`` generates
web/src/api/ws.gen.ts (a test fails when it is stale), as HTTP's types are generated.
The agent protocol (server <-> in-sandbox agent) has its own schema: ``agent/schema_export.py``.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, StrictInt
from pydantic.json_schema import models_json_schema

from coolcoding.execution.verdicts import Verdict


def _type_required(schema: dict[str, Any]) -> None:
    """``type`` has a default (so the server need not repeat it) but is always sent: required,
    which makes the generated TypeScript a union discriminated on it."""
    props = schema.get("properties", {})
    if "type" in props:
        props["type"].pop("default", None)
        schema["required"] = ["type", *(k for k in schema.get("required", []) if k != "type")]


class Message(BaseModel):
    """One JSON message; ``OMIT_NONE`` models leave out their unset optional fields."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, json_schema_extra=_type_required
    )
    OMIT_NONE: ClassVar[bool] = False

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=self.OMIT_NONE)

    def as_json(self) -> str:
        # ensure_ascii: a lone surrogate (an undecodable file name) is escaped, never an
        # encoding error that would end the socket.
        return json.dumps(self.as_dict(), separators=(",", ":"))


# --- terminal WebSocket (/api/sessions/{uuid}/terminals/{id}) --------------------------------


class TerminalReady(Message):
    """Sent once on attach. ``replay_bytes``: the length of the scrollback replay (the binary
    output that follows at once); the client ignores what its emulator answers to it."""

    type: Literal["ready"] = "ready"
    terminal_id: str
    reattached: bool
    replay_bytes: int = Field(ge=0)
    # A viewer watches: their input and resizes are refused (``error`` ``read_only``).
    read_only: bool = False


class TerminalCommand(Message):
    """A command the shell finished (shell integration)."""

    type: Literal["command"] = "command"
    command: str
    exit_code: int | None
    cwd: str | None
    duration_ms: float


class TerminalExit(Message):
    type: Literal["exit"] = "exit"
    code: int


class TerminalError(Message):
    """A malformed control message from the client (``bad_message``), or input from a viewer,
    which never reaches the terminal (``read_only``)."""

    type: Literal["error"] = "error"
    error: Literal["bad_message", "read_only"]
    message: str


class Pong(Message):
    type: Literal["pong"] = "pong"


class TerminalResize(Message):
    type: Literal["resize"] = "resize"
    cols: StrictInt
    rows: StrictInt


class Ping(Message):
    type: Literal["ping"] = "ping"


class TerminalServerMessage(RootModel[Any]):
    """A text frame from the server on the terminal WebSocket (binary frames are output)."""

    root: Annotated[
        TerminalReady | TerminalCommand | TerminalExit | TerminalError | Pong,
        Field(discriminator="type"),
    ]


class TerminalClientMessage(RootModel[Any]):
    """A text frame from the client on the terminal WebSocket (binary frames are input)."""

    root: Annotated[TerminalResize | Ping, Field(discriminator="type")]


# --- workspace events WebSocket (/api/sessions/{uuid}/events) ---------------------------------

ItemType = Literal["file", "folder"]
ChangeSource = Literal["api", "sandbox"]


class FileChanged(Message):
    type: Literal["file_changed"] = "file_changed"
    path: str
    item_type: ItemType
    version: int | None
    size: int | None
    source: ChangeSource


class FileDeleted(Message):
    type: Literal["file_deleted"] = "file_deleted"
    path: str
    item_type: ItemType
    source: ChangeSource


class FileMoved(Message):
    type: Literal["file_moved"] = "file_moved"
    from_: str = Field(alias="from")
    to: str
    item_type: ItemType
    source: ChangeSource


class SandboxStatusEvent(Message):
    """The session's sandbox status; sent on connect and on every change."""

    OMIT_NONE: ClassVar[bool] = True
    type: Literal["sandbox_status"] = "sandbox_status"
    status: Literal["stopped", "starting", "running", "error"]
    message: str | None = None


class ConflictEvent(Message):
    """Both versions kept: the loser is saved at ``conflict_path``."""

    type: Literal["conflict"] = "conflict"
    path: str
    conflict_path: str
    message: str


class SyncError(Message):
    """A sandbox file that is not stored. ``error`` is a domain error code: ``file_too_large``,
    ``quota_exceeded``, ``invalid_path``, ``not_synced`` (symlinks, special files), or the code
    of the workspace rule that refused it (``already_exists``, ``not_a_folder``...)."""

    type: Literal["sync_error"] = "sync_error"
    path: str
    error: str
    message: str


class Resync(Message):
    """Re-list the tree: events were dropped for a slow client (no reason), or a storm of
    sandbox changes was synced by a rescan (``sync_backlog``)."""

    OMIT_NONE: ClassVar[bool] = True
    type: Literal["resync"] = "resync"
    reason: Literal["sync_backlog"] | None = None


class RunStartedEvent(Message):
    """A member started a run in the session: every member may follow it at ``events``
    (server-sent events), viewers included."""

    type: Literal["run_started"] = "run_started"
    execution_id: str
    user_id: int
    events: str


WorkspaceEventModel = (
    FileChanged
    | FileDeleted
    | FileMoved
    | SandboxStatusEvent
    | ConflictEvent
    | SyncError
    | Resync
    | Pong
    | RunStartedEvent
)


class WorkspaceServerMessage(RootModel[Any]):
    """A text frame from the server on the workspace events WebSocket."""

    root: Annotated[WorkspaceEventModel, Field(discriminator="type")]


class WorkspaceClientMessage(RootModel[Any]):
    root: Annotated[Ping, Field(discriminator="type")]


# --- co-editing WebSocket (/api/sessions/{uuid}/collab) ---------------------------------------
# Binary frames carry y-protocols messages, each prefixed by its channel (collab/protocol.py):
# ``varString(path) + message``; the empty path is the workspace's presence (awareness only).
# Text frames are these JSON messages.


class CollabJoin(Message):
    """Open ``path`` for co-editing; answered by ``joined`` then a binary sync step 1."""

    type: Literal["join"] = "join"
    path: str = Field(max_length=4096)


class CollabLeave(Message):
    type: Literal["leave"] = "leave"
    path: str = Field(max_length=4096)


class CollabFlush(Message):
    """Save ``path`` now (before a run): answered by ``flushed`` with the same ``id`` once the
    replica holding the document's saver lease has saved every update that reached the server
    before this message."""

    type: Literal["flush"] = "flush"
    path: str = Field(max_length=4096)
    id: int = Field(ge=0, le=2**31)


class CollabUser(Message):
    """Who a connection is, as shown to the others (name and cursor colour)."""

    id: int
    name: str
    color: str


class CollabHello(Message):
    """Sent once on connect: who you are, whether you may write, the limits."""

    type: Literal["hello"] = "hello"
    user: CollabUser
    writable: bool
    max_update_bytes: int
    max_doc_bytes: int


class CollabJoined(Message):
    """``path`` is open. ``epoch`` names the document's lineage: a client holding a copy of
    another epoch discards it (its items would duplicate the text) and syncs afresh."""

    type: Literal["joined"] = "joined"
    path: str
    epoch: str
    version: int


class CollabClosed(Message):
    """``path`` can no longer be co-edited (``file_deleted``, ``file_moved``, ``binary_file``,
    ``file_too_large``); the client drops its copy."""

    type: Literal["closed"] = "closed"
    path: str
    reason: str
    message: str


class CollabSaved(Message):
    """The file of ``path`` in the DB is now ``version``, whose UTF-8 text is ``bytes`` long with
    CRC-32 ``crc32``: a client whose document has that text shows it as saved. Sent on join and
    after every save or outside change."""

    type: Literal["saved"] = "saved"
    path: str
    version: int
    bytes: int
    crc32: int


class CollabFlushed(Message):
    """The answer to ``flush`` ``id``: ``ok`` (the file is saved at ``version``) or not
    (``message`` says why, e.g. over the storage quota)."""

    OMIT_NONE: ClassVar[bool] = True
    type: Literal["flushed"] = "flushed"
    path: str
    id: int
    ok: bool
    version: int | None = None
    message: str | None = None


class CollabError(Message):
    """A refused message; the document is untouched. ``error``: ``bad_message``,
    ``malformed_update``, ``malformed_awareness``, ``update_too_large``,
    ``document_too_large``, ``read_only``, ``not_joined``, ``too_many_documents``,
    ``save_failed``, or the domain error of a refused join (``file_not_found``,
    ``binary_file``, ``file_too_large``, ``is_a_folder``)."""

    OMIT_NONE: ClassVar[bool] = True
    type: Literal["error"] = "error"
    path: str | None = None
    error: str
    message: str


class CollabServerMessage(RootModel[Any]):
    """A text frame from the server on the co-editing WebSocket."""

    root: Annotated[
        CollabHello
        | CollabJoined
        | CollabClosed
        | CollabSaved
        | CollabFlushed
        | CollabError
        | Pong,
        Field(discriminator="type"),
    ]


class CollabClientMessage(RootModel[Any]):
    """A text frame from the client on the co-editing WebSocket."""

    root: Annotated[CollabJoin | CollabLeave | CollabFlush | Ping, Field(discriminator="type")]


# --- run events (server-sent events of /api/executions/{id}/events) --------------------------


class RunOutput(Message):
    """The data of a ``stdout`` or ``stderr`` event: text as the program wrote it."""

    data: str


class RunFigure(Message):
    """The data of a ``figure`` event: an image a run showed (``plt.show()``: a PNG) or wrote
    (a PNG or SVG file of the workspace: ``path``), base64."""

    OMIT_NONE: ClassVar[bool] = True
    mime: Literal["image/png", "image/svg+xml"]
    data: str
    path: str | None = None


class RunResult(Message):
    """The data of the one ``result`` event (``status`` is the verdict, ``duration_ms`` the
    wall time rounded)."""

    id: str
    status: Verdict | None
    verdict: Verdict | None
    message: str | None
    exit_code: int | None
    signal: int | None
    signal_name: str | None
    duration_ms: int | None
    wall_ms: float | None
    cpu_ms: float | None
    memory_kb: int | None
    compile_output: str | None


class RunEvents(BaseModel):
    """The data of each server-sent event, by event name (``: ping`` comments carry none)."""

    compile: RunOutput
    stdout: RunOutput
    stderr: RunOutput
    figure: RunFigure
    result: RunResult


EXPORTED: tuple[type[BaseModel], ...] = (
    TerminalServerMessage,
    TerminalClientMessage,
    WorkspaceServerMessage,
    WorkspaceClientMessage,
    CollabServerMessage,
    CollabClientMessage,
    RunEvents,
)


def openapi_document() -> dict[str, Any]:
    """An OpenAPI document without paths whose components are these messages: the input of the
    same generator (openapi-typescript) as the HTTP types."""
    _, schema = models_json_schema(
        [(m, "serialization") for m in EXPORTED], ref_template="#/components/schemas/{model}"
    )
    return {
        "openapi": "3.1.0",
        "info": {"title": "coolcoding WebSocket and server-sent event messages", "version": "1"},
        "paths": {},
        "components": {"schemas": schema.get("$defs", {})},
    }


if __name__ == "__main__":
    json.dump(openapi_document(), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
