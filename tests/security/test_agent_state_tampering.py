"""A replica reaches another replica's sandbox agent through the paths its DB row names
(``sessions.sandbox_state.agent``). A tampered row must not make the server read an arbitrary
file as the secret (and send proofs made with it), nor connect to an arbitrary socket:
``locate_agent`` accepts only the shapes the local runtime makes, and a secret file that is the
server's own, private and exactly the size of a secret."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from coolcoding.sandbox.local.agents import SECRET_BYTES, locate_agent

SID = "2f1c9a70-3b53-4c3e-9d7e-0a4b5c6d7e8f"


def _layout(tmp: Path) -> tuple[Path, dict[str, Any]]:
    tmpfs = tmp / "shm"
    sock_dir = tmpfs / "cc-sock-0123abcd" / SID
    sock_dir.mkdir(parents=True)
    secrets_dir = tmp / "data" / "sandbox-state" / "agent-secrets"
    secrets_dir.mkdir(parents=True)
    secret = secrets_dir / SID
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"s" * SECRET_BYTES)
    os.close(fd)
    state = {"agent": {"socket": str(sock_dir / "agent.sock"), "secret_file": str(secret),
                       "pid": 1234}}  # fmt: skip
    return tmpfs, state


def test_the_runtimes_own_shapes_are_accepted(tmp_path: Path) -> None:
    tmpfs, state = _layout(tmp_path)
    loc = locate_agent(SID, state, tmpfs)
    assert loc is not None and loc.secret == b"s" * SECRET_BYTES and loc.pid == 1234


def _with(state: dict[str, Any], **agent: Any) -> dict[str, Any]:
    return {"agent": {**state["agent"], **agent}}


@pytest.mark.parametrize(
    "tamper",
    [
        "secret_is_etc_shadow",
        "secret_of_another_session",
        "secret_via_dotdot",
        "secret_symlink",
        "secret_group_readable",
        "secret_wrong_size",
        "socket_elsewhere",
        "socket_of_another_session",
        "socket_not_agent_sock",
        "not_a_dict",
        "relative_paths",
    ],
)
def test_a_tampered_state_is_refused(tmp_path: Path, tamper: str) -> None:
    tmpfs, state = _layout(tmp_path)
    a = state["agent"]
    secret = Path(a["secret_file"])
    other = "9a8b7c6d-0000-4000-8000-000000000000"
    if tamper == "secret_is_etc_shadow":
        bad = _with(state, secret_file="/etc/shadow")
    elif tamper == "secret_of_another_session":  # a valid secret, of another sandbox
        (secret.parent / other).write_bytes(b"o" * SECRET_BYTES)
        os.chmod(secret.parent / other, 0o600)
        bad = _with(state, secret_file=str(secret.parent / other))
    elif tamper == "secret_via_dotdot":
        bad = _with(state, secret_file=f"{secret.parent}/../agent-secrets/{SID}")
    elif tamper == "secret_symlink":
        target = tmp_path / "elsewhere"
        target.write_bytes(b"x" * SECRET_BYTES)
        os.chmod(target, 0o600)
        secret.unlink()
        secret.symlink_to(target)
        bad = state
    elif tamper == "secret_group_readable":
        os.chmod(secret, 0o640)
        bad = state
    elif tamper == "secret_wrong_size":
        secret.write_bytes(b"s" * (SECRET_BYTES + 1))
        bad = state
    elif tamper == "socket_elsewhere":
        bad = _with(state, socket=f"/run/{SID}/agent.sock")
    elif tamper == "socket_of_another_session":
        bad = _with(state, socket=str(tmpfs / "cc-sock-0123abcd" / other / "agent.sock"))
    elif tamper == "socket_not_agent_sock":
        bad = _with(state, socket=str(Path(a["socket"]).parent / "other.sock"))
    elif tamper == "not_a_dict":
        bad = {"agent": "unix:/tmp/x"}
    else:
        bad = _with(state, socket=f"cc-sock-0123abcd/{SID}/agent.sock",
                    secret_file=f"sandbox-state/agent-secrets/{SID}")  # fmt: skip
    assert locate_agent(SID, bad, tmpfs) is None
