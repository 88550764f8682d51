"""Interactive problems in real sandboxes: a guessing game whose Python interactor talks to C
and Python submissions through pipes; every verdict and who decides it (interactive.py)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coolcoding.execution import interactive
from coolcoding.execution.judge import Judge, JudgeJob, resolve_limits
from coolcoding.execution.testcases import Checker, JudgeCase
from coolcoding.execution.verdicts import Verdict
from coolcoding.sandbox.base import ExecLimits
from coolcoding.sandbox.local.runtime import LocalRuntime
from coolcoding.sandbox.local.sandbox import LocalSandbox
from tests.conftest import UserClient
from tests.integration import interactive_programs as game
from tests.integration.test_judge import judge_settings, running_judge

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def judge() -> Iterator[Judge]:
    data_dir = Path(tempfile.mkdtemp(prefix="cc-judge-int-"))
    data_dir.chmod(0o711)
    # A short CPU limit for interactors, so that the looping one ends soon.
    with running_judge(judge_settings(data_dir, exec_checker_cpu_s=1.0)) as j:
        yield j
    shutil.rmtree(data_dir, ignore_errors=True)


def interactor(source: str = game.GUESS_INTERACTOR, language: str = "python") -> Checker:
    name = "interactor.py" if language == "python" else "interactor.c"
    return Checker(kind="interactive", language=language, files={name: source.encode()},
                   entry=name)  # fmt: skip


def game_job(
    judge: Judge,
    language: str,
    source: str,
    cases: list[tuple[str, str]],
    checker: Checker | None = None,
    **kw: Any,
) -> JudgeJob:
    lang = judge.languages.get(language)
    assert lang is not None
    name = lang.source_name(source)
    return JudgeJob(
        language=language,
        files={name: source.encode()},
        entry=name,
        limits=resolve_limits(kw.pop("limits", {"wall_s": 5}), judge.settings),
        cache_scope="tests-interactive",
        cases=[JudgeCase(i.encode(), e.encode()) for i, e in cases],
        checker=checker or interactor(),
        **kw,
    )


def verdicts(r: Any) -> list[str]:
    return [c["verdict"] for c in r.extra["cases"]]


@pytest.mark.parametrize(
    ("language", "source"), [("python", game.PY_BINARY_SEARCH), ("c", game.C_BINARY_SEARCH)]
)
async def test_a_binary_search_is_accepted(judge: Judge, language: str, source: str) -> None:
    cases = [("100 7", "1"), ("100 7", "100"), ("1000000 20", "123457")]
    r = await judge.judge(game_job(judge, language, source, cases))
    assert r.verdict == Verdict.ACCEPTED, (r.message, r.extra, r.stderr)
    assert verdicts(r) == ["accepted"] * 3
    assert all(c["cpu_ms"] is not None and c["memory_kb"] > 0 for c in r.extra["cases"])


async def test_a_wrong_guess_is_a_wrong_answer_with_the_interactors_message(judge: Judge) -> None:
    r = await judge.judge(game_job(judge, "python", game.PY_WRONG_GUESS, [("100 7", "42")]))
    assert r.verdict == Verdict.WRONG_ANSWER
    assert r.message == "test case 1: wrong answer (wrong guess 43, the number was 42)"


async def test_too_many_queries_is_a_wrong_answer(judge: Judge) -> None:
    r = await judge.judge(game_job(judge, "python", game.PY_LINEAR_SEARCH, [("100 7", "50")]))
    assert r.verdict == Verdict.WRONG_ANSWER
    assert r.message and "too many queries (8 > 7)" in r.message


async def test_a_crashing_submission_is_a_runtime_error(judge: Judge) -> None:
    r = await judge.judge(game_job(judge, "c", game.C_CRASH_AFTER_ONE_QUERY, [("100 7", "50")]))
    assert r.verdict == Verdict.RUNTIME_ERROR, (r.message, r.extra)
    assert r.signal == 11


async def test_a_deadlock_is_the_submissions_time_limit(judge: Judge) -> None:
    job = game_job(judge, "python", game.PY_DEADLOCK, [("100 7", "50")], limits={"wall_s": 1})
    r = await judge.judge(job)
    assert r.verdict == Verdict.TIME_LIMIT, (r.message, r.extra)
    assert r.message and "wall" in r.message
    assert r.wall_ms is not None and 900 < r.wall_ms < 3000


async def test_a_crashing_interactor_is_a_checker_error(judge: Judge) -> None:
    job = game_job(judge, "python", game.PY_BINARY_SEARCH, [("100 7", "50")],
                   checker=interactor(game.INTERACTOR_CRASH))  # fmt: skip
    r = await judge.judge(job)
    assert r.verdict == Verdict.INTERNAL_ERROR
    assert verdicts(r) == ["checker_error"]
    assert r.message and "the interactor failed (exit code 3)" in r.message


async def test_a_looping_interactor_hits_its_own_limit(judge: Judge) -> None:
    # A long wall limit for the submission: a loaded host must not make it the first to end.
    job = game_job(judge, "python", game.PY_BINARY_SEARCH, [("100 7", "50")],
                   checker=interactor(game.INTERACTOR_LOOPS), limits={"wall_s": 15})  # fmt: skip
    r = await judge.judge(job)
    assert r.verdict == Verdict.INTERNAL_ERROR, (r.message, r.extra)
    assert verdicts(r) == ["checker_error"]
    assert r.message and "the interactor hit its cpu limit" in r.message


async def test_an_interactor_that_does_not_compile(judge: Judge) -> None:
    job = game_job(judge, "python", game.PY_BINARY_SEARCH, [("100 7", "50")],
                   checker=interactor("int main( {", "c"))  # fmt: skip
    r = await judge.judge(job)
    assert r.verdict == Verdict.INTERNAL_ERROR
    assert r.message and r.message.startswith("the interactor does not compile")


async def test_cases_stop_on_the_first_failure(judge: Judge) -> None:
    cases = [("100 7", "3"), ("100 3", "77"), ("100 7", "5")]
    job = game_job(judge, "python", game.PY_BINARY_SEARCH, cases, stop_on_failure=True)
    r = await judge.judge(job)
    assert verdicts(r) == ["accepted", "wrong_answer", "skipped"]
    assert r.message and r.message.startswith("test case 2: wrong answer (too many queries")


async def test_ten_thousand_exchanges_finish_well_within_the_limits(judge: Judge) -> None:
    job = game_job(judge, "c", game.C_LINEAR_SEARCH, [("10000 10000", "10000")],
                   limits={"wall_s": 5})  # fmt: skip
    r = await judge.judge(job)
    assert r.verdict == Verdict.ACCEPTED, (r.message, r.extra)
    assert r.wall_ms is not None and r.wall_ms < 2500, r.wall_ms


async def test_the_server_keeps_no_copy_of_the_pipes(
    judge: Judge, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[tuple[int, int]] = []  # (fd, inode) of each pipe end interactive.py created
    real_pipe2 = os.pipe2

    def pipe2(flags: int) -> tuple[int, int]:
        r, w = real_pipe2(flags)
        # os is one module: only interactive.py's pipes (not, say, a refilled pool sandbox's
        # zygote pipes, which rightly stay open after the job).
        if sys._getframe(1).f_globals.get("__name__") == interactive.__name__:
            made.extend((fd, os.fstat(fd).st_ino) for fd in (r, w))
        return r, w

    monkeypatch.setattr(interactive.os, "pipe2", pipe2)
    r = await judge.judge(game_job(judge, "python", game.PY_BINARY_SEARCH, [("10 4", "3")] * 2))
    assert r.verdict == Verdict.ACCEPTED
    assert len(made) == 8  # two pipes per case, two cases
    for fd, inode in made:
        try:
            still = os.fstat(fd).st_ino == inode
        except OSError:
            still = False
        assert not still, f"fd {fd} still open in the server"


async def test_start_connected_runs_on_the_callers_pipes_never_the_zygote(judge: Judge) -> None:
    rt = judge.runtime()
    assert isinstance(rt, LocalRuntime)
    await rt.pool.wait_full()
    async with rt.ephemeral({}) as box:
        assert isinstance(box, LocalSandbox) and box.warm is not None  # a pooled one
        in_r, in_w = os.pipe2(os.O_CLOEXEC)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        run = await box.start_connected(["/bin/sh", "-c", "read x; echo got $x; echo err >&2"],
                                        stdin_fd=in_r, stdout_fd=out_w,
                                        limits=ExecLimits(wall_s=5))  # fmt: skip
        os.close(in_r)
        os.close(out_w)
        os.write(in_w, b"hello\n")
        os.close(in_w)
        res = await run.result()
        try:
            assert os.read(out_r, 100) == b"got hello\n"
            assert os.read(out_r, 100) == b""  # no other writer left: not even the server
        finally:
            os.close(out_r)
        assert res.exit_code == 0 and res.stdout == b"" and res.stderr == b"err\n", res
        assert box.warm is None and box.pooled_execs == 0  # its zygote was discarded
        # The sandbox's next exec is an ordinary one.
        again = await box.exec(["/bin/cat"], stdin=b"plain")
        assert again.stdout == b"plain"


# --- over HTTP, both databases -------------------------------------------------------------------


def test_an_interactive_problem_over_http(api: UserClient) -> None:
    checker = {
        "type": "interactive",
        "language": "python",
        "files": {"game/interactor.py": game.GUESS_INTERACTOR},
        "entry": "game/interactor.py",
    }
    body = {
        "language": "python",
        "source": game.PY_BINARY_SEARCH,
        "testcases": [{"stdin": "100 7", "expected_output": "64"}, {"stdin": "100 7"}],
        "checker": checker,
    }
    r = api.client.post("/api/executions?wait=true", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    # The second case has no expected output (the interactor's file is empty: it picks N).
    assert [c["verdict"] for c in out["testcases"]] == ["accepted", "accepted"], out
    assert out["verdict"] == "accepted" and out["testcases"][0]["stdout"] == ""
    body["testcases"] = [{"stdin": "100 2", "expected_output": "64"}]
    r = api.client.post("/api/executions?wait=true", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["verdict"] == "wrong_answer"
    assert r.json()["message"] == "test case 1: wrong answer (too many queries (3 > 2))"


@pytest.mark.parametrize(
    ("checker", "code"),
    [
        ({"type": "interactive", "language": "python"}, "invalid_checker"),
        ({"type": "interactive", "language": "python", "source": "x", "files": {"a.py": "x"}},
         "invalid_checker"),
        ({"type": "interactive", "language": "python", "files": {"a.py": "x", "b.py": "y"}},
         "entry_required"),
        ({"type": "interactive", "language": "python", "files": {"a.py": "x"}, "entry": "b.py"},
         "invalid_entry"),
        ({"type": "interactive", "language": "cobol-74", "source": "x"}, "validation_error"),
        ({"type": "token", "files": {"a.py": "x"}}, "invalid_checker"),
    ],
)  # fmt: skip
def test_bad_interactive_checkers_answer_400(
    api: UserClient, checker: dict[str, Any], code: str
) -> None:
    body = {"language": "python", "source": "print(1)", "testcases": [{"stdin": "1"}],
            "checker": checker}  # fmt: skip
    r = api.client.post("/api/executions", json=body)
    assert r.status_code in (400, 422) and r.json()["error"] == code, r.text


def test_a_runtime_that_cannot_connect_two_programs_answers_400(
    api: UserClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As the Kubernetes runtime: its sandboxes have no ``start_connected``.
    monkeypatch.setattr(LocalRuntime, "connected_execs", False)
    body = {"language": "python", "source": game.PY_BINARY_SEARCH, "testcases": [{"stdin": "9 4"}],
            "checker": {"type": "interactive", "language": "python",
                        "source": game.GUESS_INTERACTOR}}  # fmt: skip
    r = api.client.post("/api/executions", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "interactive_unsupported"
    assert "cannot run interactive problems" in r.json()["message"]
