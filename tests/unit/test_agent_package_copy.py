"""The agent's code copy carries its bytecode: read-only, the agent cannot write a __pycache__."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from coolcoding.sandbox.local.agent_launch import AGENT_PYTHON, agent_package_copy


def test_every_module_has_bytecode_the_agents_interpreter_uses_as_is(tmp_path: Path) -> None:
    pkg = Path(agent_package_copy(tmp_path))
    modules = sorted(pkg.rglob("*.py"))
    assert modules
    tag = subprocess.run(
        [AGENT_PYTHON, "-S", "-c", "import sys; print(sys.implementation.cache_tag)"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    for module in modules:
        pyc = module.parent / "__pycache__" / f"{module.stem}.{tag}.pyc"
        flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
        assert flags == 0b01, module  # hash-based, unchecked: no stat of the source
        assert not pyc.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    # Imported from the copy, nothing is compiled: the agent's modules load from the pycs.
    env = {"PYTHONPATH": str(pkg.parent), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [AGENT_PYTHON, "-S", "-v", "-c", "import coolcoding.agent.server"],
        capture_output=True, text=True, check=True, env=env,
    ).stderr  # fmt: skip
    assert f"{pkg}/agent/__pycache__/server.{tag}.pyc matches" in out
    assert "code object from" in out and f"# code object from '{pkg}/agent/server.py'" not in out


def test_the_copy_is_named_by_content_and_made_once(tmp_path: Path) -> None:
    first = agent_package_copy(tmp_path)
    assert agent_package_copy(tmp_path) == first
    assert len(list(tmp_path.iterdir())) == 1
