"""Hostile interactive submissions: the submission cannot reach its interactor's files or
sandbox, neither program holds any fd but 0, 1 and 2, and output flooded into an interactor
that does not read stays in a pipe buffer bounded by the limits, never in the server."""

from __future__ import annotations

import os
import resource
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from coolcoding.execution.judge import Judge
from coolcoding.execution.verdicts import Verdict
from tests.integration.test_judge import judge_settings, running_judge
from tests.integration.test_judge_interactive import game_job, interactor

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def judge() -> Iterator[Judge]:
    data_dir = Path(tempfile.mkdtemp(prefix="cc-judge-isec-"))
    data_dir.chmod(0o711)
    settings = judge_settings(data_dir, sandbox_cgroup_parent=f"cc-test-jisec-{os.getpid()}")
    with running_judge(settings) as j:
        yield j
    shutil.rmtree(data_dir, ignore_errors=True)


# Allowed no question: only reading the interactor's ``expected`` could find the number.
PY_STEAL_THE_ANSWER = r"""
import glob, os, sys
input()
tried = []
paths = ["expected", "/workspace/expected", "../expected", "/tmp/expected", "/home/expected"]
paths += glob.glob("/proc/*/cwd/expected") + glob.glob("/proc/*/root/workspace/expected")
paths += glob.glob("/proc/*/root/app/expected")
for p in paths:
    try:
        secret = open(p).read().strip()
    except OSError as e:
        tried.append(f"{p}: {type(e).__name__}")
        continue
    print("!", secret, flush=True)
    sys.stderr.write(f"read {p}\n")
    sys.exit(0)
pids = sorted(int(d) for d in os.listdir("/proc") if d.isdigit())
sys.stderr.write(f"pids {pids}\n" + "\n".join(tried) + "\n")
print("! 1", flush=True)
"""


async def test_the_submission_cannot_read_the_interactors_files(judge: Judge) -> None:
    job = game_job(judge, "python", PY_STEAL_THE_ANSWER, [("1000000 0", "777777")])
    r = await judge.judge(job)
    assert r.verdict == Verdict.WRONG_ANSWER, (r.message, r.stderr)
    assert r.message == "test case 1: wrong answer (wrong guess 1, the number was 777777)"
    assert b"read " not in r.stderr and b"expected: FileNotFoundError" in r.stderr, r.stderr
    # Its own pid namespace: bwrap's pid 1 and itself, no process of the interactor's.
    pids = r.stderr.split(b"\n", 1)[0]
    assert pids.startswith(b"pids [") and len(pids.split(b",")) <= 2, pids


FD_REPORT = r"""
import os, stat
def report():
    fds = []
    for fd in range(4096):
        try:
            os.fstat(fd)
        except OSError:
            continue
        fds.append(fd)
    pipes = all(stat.S_ISFIFO(os.fstat(fd).st_mode) for fd in (0, 1, 2))
    return f"fds {fds} pipes {pipes}"
"""
# The interactor reports its fds and the submission's (sent over the pipe) as its message.
INTERACTOR_FDS = (
    FD_REPORT
    + r"""
import sys
mine = report()
theirs = sys.stdin.readline().strip()
sys.stderr.write(f"interactor {mine}; submission {theirs}\n")
sys.exit(1)
"""
)
SUBMISSION_FDS = FD_REPORT + "print(report(), flush=True)\n"


async def test_only_fds_0_1_2_are_open_in_both_programs(judge: Judge) -> None:
    job = game_job(judge, "python", SUBMISSION_FDS, [("1 1", "1")],
                   checker=interactor(INTERACTOR_FDS))  # fmt: skip
    r = await judge.judge(job)
    assert r.verdict == Verdict.WRONG_ANSWER, (r.message, r.stderr)
    assert r.message == (
        "test case 1: wrong answer (interactor fds [0, 1, 2] pipes True; "
        "submission fds [0, 1, 2] pipes True)"
    )


PY_FLOOD = "import os\nwhile True:\n    os.write(1, b'x' * 65536)\n"
INTERACTOR_DOES_NOT_READ = "import time\ntime.sleep(3600)\n"


async def test_a_flood_into_an_interactor_that_does_not_read_is_bounded(judge: Judge) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    job = game_job(judge, "python", PY_FLOOD, [("1 1", "1")], limits={"wall_s": 2},
                   checker=interactor(INTERACTOR_DOES_NOT_READ))  # fmt: skip
    r = await judge.judge(job)
    assert r.verdict == Verdict.TIME_LIMIT, (r.message, r.stderr)
    assert r.stdout == b"" and r.extra["cases"][0]["stdout"] == ""
    # Blocked on a full pipe: no CPU burnt, no byte through the server.
    assert r.cpu_ms is not None and r.cpu_ms < 1000
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 64 * 1024, grown_kb


async def test_the_submissions_stdin_and_stdout_are_anonymous_pipes(
    judge: Judge,
) -> None:
    # The submission's fd 0 is a pipe: its /proc link names no path to open the other end.
    src = (
        "import os, sys\n"
        "print(os.readlink('/proc/self/fd/0'), os.readlink('/proc/self/fd/1'), file=sys.stderr)\n"
    )
    r = await judge.judge(game_job(judge, "python", src, [("1 1", "1")]))
    assert r.verdict == Verdict.WRONG_ANSWER  # it asked nothing: the interactor rejects
    links = r.stderr.split()
    assert len(links) == 2 and all(x.startswith(b"pipe:[") for x in links), r.stderr
