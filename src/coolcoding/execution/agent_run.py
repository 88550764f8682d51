"""A session run through the sandbox's agent (``exec.start``): what makes Run interactive.

Through the agent the program shares the sandbox's network namespace (so the preview reaches a
server it starts), keeps its stdin open for input typed while it runs (``ActiveRun.send``), and
Stop kills its whole process group at once (``exec.kill``: the agent's ``killpg`` plus every
member of its session). Output is split three ways: ``compile`` (what the build step writes,
before the build marker), ``stdout``/``stderr`` of the program, and ``figure`` events cut out of
stdout (``figures.py``). The wall limit is ``session_run_wall_s`` (long: a server runs until
stopped); the sandbox's cgroup bounds CPU and memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from coolcoding.agent.client import AgentClient, AgentError, ChannelStream, ExecRun
from coolcoding.errors import Conflict, InvalidInput
from coolcoding.execution.figures import FigureFilter, image_figure, image_snapshot, new_images
from coolcoding.execution.live import LiveOutput
from coolcoding.execution.session_run import MarkerFilter, RunCommand
from coolcoding.sandbox.base import ExecLimits, ExecResult, SandboxError

# The matplotlib backend of agent/plothook, as the local runtime binds the agent's package.
PLOTHOOK_PATH = "/opt/coolcoding/coolcoding/agent/plothook"
MAX_FILE_FIGURES = 20  # image files of one run shown inline at most
PLOT_ENV = {"MPLBACKEND": "module://coolcoding_plots", "PYTHONPATH": PLOTHOOK_PATH}


@dataclass
class ActiveRun:
    """The run a session has going: where its input goes and how to stop it."""

    execution_id: str
    run: ExecRun | None = None
    stopped: bool = False
    stdin_open: bool = True
    started: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, data: bytes, eof: bool) -> None:
        await self._wait_started()
        if not self.stdin_open or self.run is None or self.run.stdin_channel is None:
            raise Conflict("this run's input is closed", code="stdin_closed")
        if data:
            await self.run.write_stdin(data)
        if eof:
            self.stdin_open = False
            await self.run.write_stdin(b"")

    async def stop(self) -> None:
        self.stopped = True
        await self._wait_started()
        if self.run is not None:
            with contextlib.suppress(AgentError, ConnectionError, OSError):
                await self.run.kill()

    async def _wait_started(self) -> None:
        try:
            await asyncio.wait_for(self.started.wait(), 10.0)
        except TimeoutError:
            raise Conflict("the run has not started yet", code="run_not_started") from None


async def execute_via_agent(
    client: AgentClient,
    cmd: RunCommand,
    *,
    cwd: str,
    stdin: bytes | None,
    limits: ExecLimits,
    live: LiveOutput,
    active: ActiveRun,
    figure_bytes: int,
) -> tuple[ExecResult, bool]:
    """Runs ``cmd``; returns its result (stdout without figures) and whether the build passed.
    ``stdin``: all of the input at once (then EOF); ``None``: input stays open for ``send``."""
    markers = MarkerFilter(cmd.has_build)
    figures = FigureFilter(figure_bytes)
    images_before = await _images(client)
    out, err, compile_err = bytearray(), bytearray(), bytearray()
    try:
        run = await client.exec_start(
            cmd.argv,
            cwd=cwd,
            env={**cmd.env, **PLOT_ENV},
            stdin=stdin,
            stdin_open=stdin is None,
            timeout_s=limits.wall_s,
            output_limit_bytes=limits.output_bytes,
        )
    except AgentError as e:
        active.started.set()
        if e.code == "spawn_failed":
            raise InvalidInput(e.message, code="spawn_failed") from e
        raise
    active.run = run
    active.stdin_open = stdin is None
    active.started.set()
    if active.stopped:  # Stop came while it started
        await run.kill()

    async def stdout_pump(stream: ChannelStream) -> None:
        while (item := await stream.get()) is not None:
            if not isinstance(item, bytes):
                continue
            data = markers.feed("stdout", item)
            for _, piece in figures.feed(data):
                if isinstance(piece, dict):
                    await live.add_event("figure", piece)
                else:
                    out.extend(piece)
                    await live.append("stdout", piece)

    async def stderr_pump(stream: ChannelStream) -> None:
        while (item := await stream.get()) is not None:
            if not isinstance(item, bytes):
                continue
            if markers.build_ok:
                err.extend(item)
                await live.append("stderr", item)
            else:
                compile_err.extend(item)
                await live.append("compile", item)

    await asyncio.gather(stdout_pump(run.stdout), stderr_pump(run.stderr))
    for _, piece in figures.flush():
        if isinstance(piece, bytes):
            out.extend(piece)
            await live.append("stdout", piece)
    if images_before is not None:
        await _show_written_images(client, images_before, figure_bytes, live)
    exit_event: dict[str, object] | None = None
    while exit_event is None:  # the exit event follows the stdout channel's end
        if client.lost:  # the agent is gone (the sandbox stopped): no exit event comes
            raise SandboxError(
                "stopped", "The sandbox stopped while the program ran.", "agent connection lost"
            )
        item = await run.stdout.get()
        if isinstance(item, dict):
            exit_event = item.get("data")
    ev = exit_event
    limit_hit = None
    if ev.get("timed_out"):
        limit_hit = "wall"
    elif ev.get("output_truncated"):
        limit_hit = "output"
    code, sig = ev.get("exit_code"), ev.get("signal")
    wall = ev.get("wall_ms")
    res = ExecResult(
        exit_code=code if isinstance(code, int) else None,
        signal=sig if isinstance(sig, int) else None,
        stdout=bytes(out),
        stderr=bytes(compile_err + err) if not markers.build_ok else bytes(err),
        wall_ms=float(wall) if isinstance(wall, (int, float)) else 0.0,
        cpu_ms=_number(ev.get("cpu_ms")),
        memory_kb=int(_number(ev.get("memory_kb"))),
        limit_hit=limit_hit,
    )
    return res, markers.build_ok


async def _images(client: AgentClient) -> dict[str, tuple[float, int]] | None:
    try:
        return image_snapshot([dict(e) for e in await client.list_tree("")])
    except (AgentError, ConnectionError):
        return None


async def _show_written_images(
    client: AgentClient, before: dict[str, tuple[float, int]], max_bytes: int, live: LiveOutput
) -> None:
    """PNG/SVG files the run wrote (created or changed) become ``figure`` events at its end."""
    after = await _images(client)
    if after is None:
        return
    for path in new_images(before, after, max_bytes)[:MAX_FILE_FIGURES]:
        try:
            data, _ = await client.read_file(path, max_bytes=max_bytes)
        except (AgentError, ConnectionError):
            continue
        figure = image_figure(path, data)
        if figure is not None:
            await live.add_event("figure", figure)


def _number(value: object) -> float:
    """A figure of the agent's exit event (0 where an older agent sent none)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
