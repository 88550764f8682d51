"""The agent's hand-written option parser (argparse cost ~8 ms at every sandbox start)."""

from __future__ import annotations

import pytest

from coolcoding.agent.__main__ import parse_args
from coolcoding.agent.server import AgentLimits
from coolcoding.sandbox.local.agent_launch import agent_argv


def test_the_runtimes_command_line_parses_back_to_its_limits() -> None:
    limits = {"max_frame_bytes": 4096, "exec_timeout_s": 2.5, "max_terminals": 3}
    argv = agent_argv("/usr/bin/python3", 5, 6, limits)
    args = parse_args(argv[argv.index("coolcoding.agent") + 1 :])
    assert (args.socket, args.workspace, args.secret_fd, args.ready_fd) == (
        "/run/coolcoding/agent.sock", "/workspace", 5, 6,
    )  # fmt: skip
    assert args.limits == AgentLimits(max_frame_bytes=4096, exec_timeout_s=2.5, max_terminals=3)
    assert args.listen is None and args.secret_file is None


def test_equals_form_and_defaults() -> None:
    args = parse_args(["--listen=127.0.0.1:7000", "--secret-file=/s", "--scrollback-bytes=10"])
    assert (args.listen, args.secret_file, args.workspace) == ("127.0.0.1:7000", "/s", "/workspace")
    assert args.limits.scrollback_bytes == 10
    assert args.limits.max_connections == AgentLimits().max_connections


@pytest.mark.parametrize(
    "argv",
    [
        ["--bogus", "1"],
        ["socket"],
        ["--socket"],
        ["--max-frame-bytes", "big"],
        ["--secret-fd", "3.5"],
        ["--max-terminals", "1.5"],
        ["--limits", "x"],
    ],
)
def test_bad_command_lines_are_usage_errors(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as e:
        parse_args(argv)
    assert e.value.code == 2
    assert capsys.readouterr().err.startswith("coolcoding-agent: ")
