"""The Run button: one command that builds (if needed) and runs a file in a session's sandbox.

A session sandbox starts every exec in a fresh private /tmp, so compiling and running must be one
exec: ``/bin/sh -c`` with a script built from quoted argv lists. The compiler writes into
/tmp (never into the workspace, where a binary would sync into the user's files) and all its
output goes to stderr, so stdout stays empty until the build succeeded; then the script prints
``BUILD_OK_MARKER`` on stdout and ``exec``s the program. ``MarkerFilter`` strips the marker;
its absence at the end means the build failed (``compilation_error``). The program cannot fake
it: it only starts after the marker was written.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from coolcoding.execution.languages import Language, expand

BUILD_DIR = "/tmp/.coolcoding-build"
BUILD_OK_MARKER = b"\x1e[coolcoding:build-ok]\x1e"
# C stdio buffers fully when stdout is a pipe: line-buffer it so output streams while it runs.
LINE_BUFFERED = ("/usr/bin/stdbuf", "-oL", "-eL")


@dataclass(frozen=True)
class RunCommand:
    argv: list[str]
    env: dict[str, str]
    has_build: bool


def session_run_command(
    lang: Language, entry: str, heap_mb: int, stdin_path: str | None = None
) -> RunCommand:
    """``stdin_path``: a workspace file (normalized, relative to the workspace) piped as stdin."""
    env = {**lang.env, "PYTHONUNBUFFERED": "1"}
    run = expand(lang.run, entry=entry, build=BUILD_DIR, heap_mb=heap_mb)
    redirect = f" < {shlex.quote('./' + stdin_path)}" if stdin_path else ""
    if lang.compile is None:
        if redirect:
            return RunCommand(["/bin/sh", "-c", f"exec {shlex.join(run)}{redirect}"], env, False)
        return RunCommand(run, env, has_build=False)
    # Only the entry file is compiled (a session may hold several programs of one language).
    build = expand(lang.compile, entry=entry, sources=[entry], build=BUILD_DIR)
    native = lang.run[0].startswith("{build}")
    program = [*LINE_BUFFERED, *run] if native else run
    script = "\n".join(
        (
            f"mkdir -p {BUILD_DIR} || exit 1",
            f"{shlex.join(build)} 1>&2 || exit 1",
            f"printf '{BUILD_OK_MARKER.decode()}'",
            f"exec {shlex.join(program)}{redirect}",
        )
    )
    return RunCommand(["/bin/sh", "-c", script], env, has_build=True)


class MarkerFilter:
    """Strips the build marker from the start of stdout; knows whether the build succeeded."""

    def __init__(self, expect_marker: bool) -> None:
        self.build_ok = not expect_marker
        self._pending = b""

    def feed(self, stream: str, data: bytes) -> bytes:
        if stream != "stdout" or self.build_ok:
            return data
        self._pending += data
        if self._pending.startswith(BUILD_OK_MARKER):
            rest = self._pending[len(BUILD_OK_MARKER) :]
            self.build_ok = True
            self._pending = b""
            return rest
        if not BUILD_OK_MARKER.startswith(self._pending):
            # Cannot happen with our script (stdout is silent before the marker); pass it on.
            self.build_ok = True
            out, self._pending = self._pending, b""
            return out
        return b""

    def strip(self, stdout: bytes) -> bytes:
        """The whole stdout of a finished run without the marker."""
        return stdout.removeprefix(BUILD_OK_MARKER)
