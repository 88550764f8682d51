"""The language registry: how to compile and run a program in each supported language.

Adding a language is one ``Language`` entry in ``LANGUAGES``. Commands are argv templates (never
shell strings), expanded by ``expand`` with these placeholders, each a whole argument:

- ``{entry}``: the entry file (workspace-relative), ``{main}``: its stem (Java's main class),
- ``{sources}``: every file of the job with one of the language's extensions (several arguments),
- ``{build}``: where compiled artifacts go, ``{heap_mb}``: the memory limit in MiB (JVM heap).

Only Debian's ``/usr`` is visible inside a sandbox, so every binary is an absolute ``/usr/bin``
path (the host's pyenv python or ~/.cargo rust would not exist in there).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# The JVM sizes its heap from -Xmx; SerialGC and C1 only keep its thread count (pids) and
# start-up low; no hsperfdata files in /tmp; 64 MiB stacks for deep recursion (judge habit).
JVM_FLAGS = (
    "-Xmx{heap_mb}m",
    "-Xss64m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:ActiveProcessorCount=1",
    "-XX:-UsePerfData",
    "-Xshare:auto",
)


@dataclass(frozen=True)
class Language:
    """One language: everything the judge needs to know about it."""

    id: str
    name: str
    extensions: tuple[str, ...]
    default_file: str  # the file name used when a job gives ``source`` rather than ``files``
    run: tuple[str, ...]
    version_cmd: tuple[str, ...]
    compile: tuple[str, ...] | None = None
    # Files the compile step produces, relative to {build}; a trailing '/' means a directory.
    artifacts: tuple[str, ...] = ()
    # Added to the sandbox's limits for the run: the JVM's own memory beyond the heap the user
    # asked for, and its threads (each one counts against the pids limit).
    memory_extra_mb: int = 0
    pids_extra: int = 0
    env: Mapping[str, str] = field(default_factory=dict)
    # A stderr line that means "out of memory" for a runtime that reports it itself rather
    # than being killed by the kernel (the JVM's heap, V8's heap).
    oom_pattern: str | None = None

    @property
    def compiled(self) -> bool:
        return self.compile is not None

    def binary(self) -> str:
        return (self.compile or self.run)[0]

    def source_name(self, source: str) -> str:
        """The file name for a single-source job (Java: the public class's name)."""
        if self.id == "java":
            m = re.search(r"public\s+(?:final\s+|abstract\s+)*class\s+([A-Za-z_$][\w$]*)", source)
            if m:
                return f"{m.group(1)}.java"
        return self.default_file


LANGUAGES: tuple[Language, ...] = (
    Language(
        id="python",
        name="Python 3",
        extensions=(".py",),
        default_file="main.py",
        run=("/usr/bin/python3", "{entry}"),
        version_cmd=("/usr/bin/python3", "--version"),
        env={"PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8"},
        oom_pattern="MemoryError",
    ),
    Language(
        id="javascript",
        name="JavaScript (Node.js)",
        extensions=(".js", ".mjs", ".cjs"),
        default_file="main.js",
        run=("/usr/bin/node", "--max-old-space-size={heap_mb}", "--stack-size=65500", "{entry}"),
        version_cmd=("/usr/bin/node", "--version"),
        memory_extra_mb=64,
        pids_extra=16,
        oom_pattern="JavaScript heap out of memory",
    ),
    Language(
        id="bash",
        name="Bash",
        extensions=(".sh", ".bash"),
        default_file="main.sh",
        run=("/usr/bin/bash", "{entry}"),
        version_cmd=("/usr/bin/bash", "--version"),
    ),
    Language(
        id="c",
        name="C (gcc)",
        extensions=(".c",),
        default_file="main.c",
        compile=(
            "/usr/bin/gcc",
            "-O2",
            "-std=gnu17",
            "-pipe",
            "-o",
            "{build}/main",
            "{sources}",
            "-lm",
        ),
        artifacts=("main",),
        run=("{build}/main",),
        version_cmd=("/usr/bin/gcc", "--version"),
    ),
    Language(
        id="cpp",
        name="C++ (g++)",
        extensions=(".cpp", ".cc", ".cxx"),
        default_file="main.cpp",
        compile=("/usr/bin/g++", "-O2", "-std=gnu++17", "-pipe", "-o", "{build}/main", "{sources}"),
        artifacts=("main",),
        run=("{build}/main",),
        version_cmd=("/usr/bin/g++", "--version"),
    ),
    Language(
        id="java",
        name="Java",
        extensions=(".java",),
        default_file="Main.java",
        compile=(
            "/usr/bin/javac",
            "-J-Xmx512m",
            "-J-XX:+UseSerialGC",
            "-J-XX:TieredStopAtLevel=1",
            "-J-XX:-UsePerfData",
            "-encoding",
            "UTF-8",
            "-d",
            "{build}/classes",
            "{sources}",
        ),
        artifacts=("classes/",),
        run=("/usr/bin/java", *JVM_FLAGS, "-cp", "{build}/classes", "{main}"),
        version_cmd=("/usr/bin/java", "-version"),
        memory_extra_mb=96,
        pids_extra=32,
        oom_pattern="java.lang.OutOfMemoryError",
    ),
    Language(
        id="rust",
        name="Rust (rustc)",
        extensions=(".rs",),
        default_file="main.rs",
        compile=("/usr/bin/rustc", "--edition", "2021", "-O", "-o", "{build}/main", "{entry}"),
        artifacts=("main",),
        run=("{build}/main",),
        version_cmd=("/usr/bin/rustc", "--version"),
    ),
)


def expand(
    template: Sequence[str],
    *,
    entry: str,
    sources: Sequence[str] = (),
    build: str = ".",
    heap_mb: int = 256,
) -> list[str]:
    """The argv of ``template`` with its placeholders filled (pure; see the module docstring)."""
    main = os.path.splitext(os.path.basename(entry))[0]
    values = {"entry": entry, "main": main, "build": build, "heap_mb": str(heap_mb)}
    out: list[str] = []
    for arg in template:
        if arg == "{sources}":
            out.extend(sources or [entry])
            continue
        for key, value in values.items():
            arg = arg.replace("{" + key + "}", value)
        out.append(arg)
    return out


_VERSION = re.compile(r"\d+(?:\.\d+)+")


def parse_version(output: str) -> str | None:
    """The first dotted version number in ``output`` ("rustc 1.63.0" -> "1.63.0")."""
    m = _VERSION.search(output)
    return m.group(0) if m else None


class LanguageRegistry:
    """The languages of this server, with their versions detected once at start-up."""

    def __init__(self, languages: Sequence[Language] = LANGUAGES) -> None:
        self._by_id = {lang.id: lang for lang in languages}
        self.versions: dict[str, str | None] = {}

    def all(self) -> list[Language]:
        return list(self._by_id.values())

    def ids(self) -> set[str]:
        return set(self._by_id)

    def get(self, language_id: str) -> Language | None:
        return self._by_id.get(language_id)

    def by_extension(self, path: str) -> Language | None:
        ext = os.path.splitext(path)[1].lower()
        for lang in self._by_id.values():
            if ext in lang.extensions:
                return lang
        return None

    def available(self, language_id: str) -> bool:
        lang = self._by_id.get(language_id)
        return lang is not None and os.access(lang.binary(), os.X_OK)

    async def detect_versions(self, timeout_s: float = 15.0) -> None:
        """Run each language's ``--version`` once (concurrently) and cache the answers."""

        async def one(lang: Language) -> tuple[str, str | None]:
            if not self.available(lang.id):
                return lang.id, None
            try:
                proc = await asyncio.create_subprocess_exec(
                    *lang.version_cmd,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT,
                    env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                )
                out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
            except (OSError, TimeoutError) as exc:
                log.warning("version of %s: %s", lang.id, exc)
                return lang.id, None
            return lang.id, parse_version(out.decode(errors="replace"))

        results = await asyncio.gather(*(one(lang) for lang in self._by_id.values()))
        self.versions = dict(results)
