"""Every control message of the agent protocol, defined once as a TypedDict.

These are the schema: the agent validates requests against them (``schema_check.py``), the
client builds requests from them, and ``schema_export.py`` turns them into JSON Schema (the
input for TypeScript generation). TypedDicts rather than pydantic models so the agent imports
only the standard library (start-up time inside a sandbox).
"""

# No ``from __future__ import annotations`` here: TypedDict only sees ``NotRequired`` in
# evaluated annotations (``__required_keys__`` would be wrong with strings on Python 3.11).
from typing import Any, Literal, NotRequired, TypedDict

# --- handshake -------------------------------------------------------------------------------


class Hello(TypedDict):
    type: Literal["hello"]
    protocols: list[int]
    challenge: str
    agent: str


class Auth(TypedDict):
    type: Literal["auth"]
    protocol: int
    challenge: str
    proof: str


class Welcome(TypedDict):
    """``max_frame``: the agent's largest frame payload, both ways, for this connection."""

    type: Literal["welcome"]
    protocol: int
    proof: str
    agent: str
    max_frame: int


class Refused(TypedDict):
    type: Literal["refused"]
    code: str
    message: str


# --- envelopes -------------------------------------------------------------------------------


class Request(TypedDict):
    type: Literal["request"]
    id: int
    method: str
    params: dict[str, Any]


class ErrorBody(TypedDict):
    code: str
    message: str


class Response(TypedDict):
    type: Literal["response"]
    id: int
    result: NotRequired[dict[str, Any]]
    error: NotRequired[ErrorBody]


class Event(TypedDict):
    type: Literal["event"]
    event: str
    channel: int
    data: dict[str, Any]


# --- health ----------------------------------------------------------------------------------


class Empty(TypedDict):
    pass


class PingResult(TypedDict):
    pong: bool


class VersionResult(TypedDict):
    agent: str
    protocol: int
    pid: int
    uptime_s: float


# --- terminals -------------------------------------------------------------------------------


class PtyOpenParams(TypedDict):
    terminal_id: NotRequired[str]
    argv: NotRequired[list[str]]
    cols: int
    rows: int
    env: NotRequired[dict[str, str]]
    cwd: NotRequired[str]


class PtySpareParams(TypedDict):
    cols: int
    rows: int


class PtySpareResult(TypedDict):
    started: bool  # False: a spare shell was already waiting (``pid`` is that one's)
    pid: int


class PtyInfo(TypedDict):
    terminal_id: str
    pid: int
    cols: int
    rows: int
    alive: bool
    exit_code: int | None
    attachments: int


class PtyAttachParams(TypedDict):
    """``typist`` (protocol 4): the platform user whose keystrokes this attachment carries;
    the agent reports the last one before a command's start with its ``pty.command``."""

    terminal_id: str
    replay: NotRequired[bool]
    typist: NotRequired[int]


class PtyAttachResult(TypedDict):
    channel: int
    info: PtyInfo


class PtyRef(TypedDict):
    terminal_id: str


class PtyResizeParams(TypedDict):
    terminal_id: str
    cols: int
    rows: int


class ChannelRef(TypedDict):
    channel: int


class PtyListResult(TypedDict):
    terminals: list[PtyInfo]


class CommandEvent(TypedDict):
    """``pty.command``: one shell command finished (shell integration)."""

    terminal_id: str
    command: str
    exit_code: int | None
    cwd: str | None
    started_at: float
    duration_ms: float
    output: str
    output_truncated: bool
    # Protocol 4: the ``typist`` of the attachment whose input last preceded the command's
    # start (null: none was named); absent on connections of an older protocol.
    typist: NotRequired[int | None]


class PtyReplayEvent(TypedDict):
    """First on an attachment's channel when replay is on: how many bytes of scrollback follow
    (in their own frames), so the client can treat them apart from live output."""

    terminal_id: str
    bytes: int


class PtyExitEvent(TypedDict):
    """``pty.exit``: the terminal's process ended (also ends its attach channels)."""

    terminal_id: str
    exit_code: int


# --- files -----------------------------------------------------------------------------------

# ``invalid_name`` (protocol 2): a name that is not UTF-8, shown with backslash escapes.
EntryType = Literal["file", "dir", "symlink", "other", "invalid_name"]


class Entry(TypedDict):
    path: str
    type: EntryType
    size: int
    mtime: float
    sha256: NotRequired[str]


class PathRef(TypedDict):
    path: str


class FilesReadParams(TypedDict):
    path: str
    max_bytes: NotRequired[int]


class FilesReadResult(TypedDict):
    """The content follows on ``channel`` as data frames, then an empty frame."""

    channel: int
    size: int
    sha256: str


class FilesWriteParams(TypedDict):
    """Content: data frames on the client-chosen (odd) ``channel`` after this request, then an
    empty frame. ``expected_sha256``: write only if the current content hashes to this;
    ``expect_absent``: only if nothing is there (compare-and-swap)."""

    path: str
    channel: int
    expected_sha256: NotRequired[str]
    expect_absent: NotRequired[bool]


class FilesWriteResult(TypedDict):
    sha256: str
    size: int


class FilesDeleteResult(TypedDict):
    deleted: bool


class FilesMoveParams(TypedDict):
    src: str
    dst: str
    overwrite: NotRequired[bool]


class FilesListParams(TypedDict):
    path: NotRequired[str]
    hashes: NotRequired[bool]


class FilesListResult(TypedDict):
    entries: list[Entry]


class FilesStatResult(TypedDict):
    entry: Entry | None


class FilesProbeParams(TypedDict):
    """Protocol 2. ``paths`` as the sandbox spells them (e.g. from ``fs.changes``), not
    normalized; ``content`` (default true): send regular files' bytes up to ``max_bytes``."""

    paths: list[str]
    max_bytes: NotRequired[int]
    content: NotRequired[bool]


class ProbeEntry(TypedDict):
    path: str
    type: EntryType | Literal["absent"]
    size: int
    mtime: float
    sha256: NotRequired[str]


class FilesProbeResult(TypedDict):
    """The bytes of every entry with a ``sha256`` follow on ``channel``, in order, ``size``
    bytes each, then an empty frame."""

    channel: int
    entries: list[ProbeEntry]


class FilesSwapParams(TypedDict):
    """Protocol 2: the guarded write. New content as data on the client's odd ``channel`` (as
    ``files.write``); no ``channel``: remove the file. A replaced file whose sha256 is not in
    ``base`` is kept as a conflict copy next to it (``aside``)."""

    path: str
    base: list[str]
    channel: NotRequired[int]


class FilesSwapResult(TypedDict):
    """``existed``: a file was replaced; ``old_size``: its length (-1: over the file limit);
    ``aside``: where it was kept, or null when its content was in ``base`` (discarded)."""

    existed: bool
    old_size: int
    aside: str | None


class FsPendingResult(TypedDict):
    pending: bool


class LateCopy(TypedDict):
    """``fs.conflict`` event / ``fs.late`` result item: bytes written into a file after a swap
    replaced it were kept at ``conflict_path``."""

    path: str
    conflict_path: str


class FsLateResult(TypedDict):
    copies: list[LateCopy]


# --- watch -----------------------------------------------------------------------------------


class Change(TypedDict):
    path: str
    type: EntryType | Literal["absent", "invalid_name"]


class FsChangesEvent(TypedDict):
    """``fs.changes``: paths that changed (their state now); ``rescan``: the kernel queue
    overflowed, list everything with hashes and reconcile."""

    changes: list[Change]
    rescan: bool
    watches: NotRequired[int]  # protocol 2: inotify watches the watcher holds now


class SubscribeParams(TypedDict):
    fs: NotRequired[bool]
    pty: NotRequired[bool]


# --- exec ------------------------------------------------------------------------------------


class ExecStartParams(TypedDict):
    """stdin: data frames on the client-chosen ``stdin_channel`` then an empty frame (absent:
    /dev/null). Output: data on ``stdout``/``stderr`` channels of the result."""

    argv: list[str]
    cwd: NotRequired[str]
    env: NotRequired[dict[str, str]]
    stdin_channel: NotRequired[int]
    timeout_s: NotRequired[float]
    output_limit_bytes: NotRequired[int]


class ExecStartResult(TypedDict):
    stdout: int
    stderr: int
    pid: int


class ExecExitEvent(TypedDict):
    """``exec.exit`` on the stdout channel: after the last output of both channels."""

    exit_code: int | None
    signal: int | None
    timed_out: bool
    output_truncated: bool
    wall_ms: float
    cpu_ms: NotRequired[float]  # user + system CPU of the program and its reaped descendants
    memory_kb: NotRequired[int]  # peak RSS of the largest of them


# --- ports (protocol version 2) ---------------------------------------------------------------


class PortConnectParams(TypedDict):
    """A TCP connection to ``host`` (``127.0.0.1`` or ``::1`` only) ``port`` inside the
    sandbox's network namespace, relayed as data on the result's ``channel`` both ways."""

    port: int
    host: NotRequired[str]


class PortConnectResult(TypedDict):
    channel: int


class PortInfo(TypedDict):
    port: int
    address: str
    family: str


class PortsListResult(TypedDict):
    ports: list[PortInfo]


# method name -> (params, result): the agent dispatches on it, the client types its calls by it.
METHODS: dict[str, tuple[type[Any], type[Any]]] = {
    "ping": (Empty, PingResult),
    "version": (Empty, VersionResult),
    "subscribe": (SubscribeParams, Empty),
    "pty.open": (PtyOpenParams, PtyInfo),
    "pty.attach": (PtyAttachParams, PtyAttachResult),
    "pty.detach": (ChannelRef, Empty),
    "pty.resize": (PtyResizeParams, Empty),
    "pty.close": (PtyRef, Empty),
    "pty.list": (Empty, PtyListResult),
    "pty.spare": (PtySpareParams, PtySpareResult),
    "files.read": (FilesReadParams, FilesReadResult),
    "files.write": (FilesWriteParams, FilesWriteResult),
    "files.delete": (PathRef, FilesDeleteResult),
    "files.move": (FilesMoveParams, Empty),
    "files.mkdir": (PathRef, Empty),
    "files.list": (FilesListParams, FilesListResult),
    "files.stat": (PathRef, FilesStatResult),
    "files.probe": (FilesProbeParams, FilesProbeResult),
    "files.swap": (FilesSwapParams, FilesSwapResult),
    "fs.pending": (PathRef, FsPendingResult),
    "fs.flush": (Empty, Empty),
    "fs.late": (Empty, FsLateResult),
    "exec.start": (ExecStartParams, ExecStartResult),
    "exec.kill": (ChannelRef, Empty),
    "port.connect": (PortConnectParams, PortConnectResult),
    "ports.list": (Empty, PortsListResult),
}

# Methods a connection may call only once it negotiated this protocol version or later.
MIN_VERSION: dict[str, int] = {"port.connect": 2, "ports.list": 2, "pty.spare": 3}
# Parameters a connection may send only once it negotiated this protocol version or later.
MIN_PARAM_VERSION: dict[tuple[str, str], int] = {("pty.attach", "typist"): 4}

EVENTS: dict[str, type[Any]] = {
    "pty.command": CommandEvent,
    "pty.exit": PtyExitEvent,
    "pty.replay": PtyReplayEvent,
    "fs.changes": FsChangesEvent,
    "fs.conflict": LateCopy,
    "exec.exit": ExecExitEvent,
}
