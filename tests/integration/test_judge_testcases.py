"""Test cases: compiled once, a verdict per case, early stop, the built-in checkers and checker
programs (including ones that crash or loop), in real sandboxes; and their limits over HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from coolcoding.execution.judge import Judge, JudgeJob, resolve_limits
from coolcoding.execution.testcases import Checker, JudgeCase, floats_match, tokens_match
from coolcoding.execution.verdicts import Verdict
from tests.conftest import UserClient
from tests.integration.test_judge import judge  # noqa: F401 (the module's fixture)

C_ECHO_SUM = """#include <stdio.h>
int main(void){long a,b; if(scanf("%ld %ld",&a,&b)!=2) return 3; printf("%ld\\n",a+b); return 0;}
"""
PY_CHECKER_OK_IF_SAME_NUMBER = """
want = open("expected").read().split()
got = open("output").read().split()
import sys
if got == want:
    sys.exit(0)
print("expected", want, "got", got)
sys.exit(1)
"""


def cases_job(
    judge: Judge,  # noqa: F811
    language: str,
    source: str,
    cases: list[tuple[str, str]],
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
        cache_scope="tests-cases",
        cases=[JudgeCase(i.encode(), e.encode()) for i, e in cases],
        **kw,
    )


@pytest.mark.sandbox
async def test_cases_compile_once_and_each_has_a_verdict(judge: Judge) -> None:  # noqa: F811
    r = await judge.judge(
        cases_job(judge, "c", C_ECHO_SUM, [("1 2", "3"), ("2 2", "5"), ("x", "0"), ("5 5", "10")])
    )
    cases = r.extra["cases"]
    assert [c["verdict"] for c in cases] == [
        "accepted",
        "wrong_answer",
        "runtime_error",
        "accepted",
    ]
    assert r.verdict == Verdict.WRONG_ANSWER and r.message and r.message.startswith("test case 2")
    assert r.compile_ms is not None or r.cached_build  # one compile step for all the cases
    assert all(c["wall_ms"] is not None and c["memory_kb"] is not None for c in cases)


@pytest.mark.sandbox
async def test_stop_on_first_failure_skips_the_rest(judge: Judge) -> None:  # noqa: F811
    job = cases_job(judge, "python", "print(int(input()) * 2)\n",
                    [("1", "2"), ("2", "5"), ("3", "6")], stop_on_failure=True)  # fmt: skip
    r = await judge.judge(job)
    assert [c["verdict"] for c in r.extra["cases"]] == ["accepted", "wrong_answer", "skipped"]


@pytest.mark.sandbox
async def test_a_checker_program_judges_each_case(judge: Judge) -> None:  # noqa: F811
    checker = Checker(kind="program", language="python",
                      files={"main.py": PY_CHECKER_OK_IF_SAME_NUMBER.encode()}, entry="main.py")  # fmt: skip
    job = cases_job(judge, "python", "print(int(input()) + 1)\n", [("1", "2"), ("1", "3")],
                    checker=checker)  # fmt: skip
    r = await judge.judge(job)
    cases = r.extra["cases"]
    assert [c["verdict"] for c in cases] == ["accepted", "wrong_answer"]
    assert "expected ['3'] got ['2']" in (cases[1]["message"] or "")


@pytest.mark.sandbox
@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("raise SystemExit(7)\n", "exit code 7"),
        ("while True: pass\n", "limit"),
        ("import os\nos.kill(os.getpid(), 11)\n", "the checker"),
    ],
)
async def test_a_failing_checker_is_a_clear_internal_error(
    judge: Judge,  # noqa: F811
    source: str,
    why: str,
) -> None:
    checker = Checker(kind="program", language="python", files={"main.py": source.encode()},
                      entry="main.py")  # fmt: skip
    r = await judge.judge(cases_job(judge, "python", "print(1)\n", [("", "1")], checker=checker))
    assert r.verdict == Verdict.INTERNAL_ERROR
    assert r.extra["cases"][0]["verdict"] == "checker_error"
    assert r.message and "checker" in r.message and why in r.message


@pytest.mark.sandbox
async def test_a_checker_that_does_not_compile(judge: Judge) -> None:  # noqa: F811
    checker = Checker(kind="program", language="c", files={"main.c": b"int main( {"},
                      entry="main.c")  # fmt: skip
    r = await judge.judge(cases_job(judge, "python", "print(1)\n", [("", "1")], checker=checker))
    assert r.verdict == Verdict.INTERNAL_ERROR
    assert r.message and r.message.startswith("the checker does not compile")


def test_token_and_float_comparisons() -> None:
    assert tokens_match(b"1  2\n3", b"1 2 3\n")
    assert not tokens_match(b"1 2", b"1 2 3")
    assert floats_match(b"3.1415927 x", b"3.14159265 x", 1e-6)
    assert not floats_match(b"3.15", b"3.14159265", 1e-6)
    assert floats_match(b"1000000.5", b"1000000", 1e-6)  # relative
    assert not floats_match(b"nan", b"1.0", 1e-6)
    assert not floats_match(b"1 2", b"1", 1e-6)


# --- over HTTP, both databases: limits and bad input ---------------------------------------------


def post(api: UserClient, body: dict[str, Any]) -> Any:
    return api.client.post("/api/executions", json=body)


def test_testcases_over_http(api: UserClient) -> None:
    body = {
        "language": "python",
        "source": "print(input()[::-1])\n",
        "testcases": [
            {"stdin": "abc", "expected_output": "cba"},
            {"stdin": "xy", "expected_output": "xy"},
        ],
        "checker": {"type": "token"},
    }
    r = api.client.post("/api/executions?wait=true", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["verdict"] == "wrong_answer"
    assert [c["verdict"] for c in out["testcases"]] == ["accepted", "wrong_answer"]


def test_too_many_or_too_large_testcases_are_refused(api: UserClient) -> None:
    settings = api.server.settings
    many = [{"stdin": "", "expected_output": ""}] * (settings.exec_max_testcases + 1)
    r = post(api, {"language": "python", "source": "print(1)", "testcases": many})
    assert r.status_code == 413 and r.json()["error"] == "too_many_testcases"
    big = "x" * (settings.exec_max_testcases_bytes // 4 + 1)
    cases = [{"stdin": big, "expected_output": ""}] * 4
    r = post(api, {"language": "python", "source": "print(1)", "testcases": cases})
    assert r.status_code == 413 and r.json()["error"] in ("testcases_too_large", "stdin_too_large")


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({"testcases": []}, "invalid_testcases"),
        ({"testcases": [{"stdin": "1"}], "stdin": "1"}, "invalid_testcases"),
        ({"checker": {"type": "token"}}, "invalid_testcases"),
        ({"testcases": [{"stdin": "1"}], "checker": {"type": "program", "language": "python"}},
         "invalid_checker"),
        ({"testcases": [{"stdin": "1"}], "checker": {"type": "token", "source": "x"}},
         "invalid_checker"),
    ],
)  # fmt: skip
def test_bad_testcases_answer_400(api: UserClient, extra: dict[str, Any], code: str) -> None:
    r = post(api, {"language": "python", "source": "print(1)", **extra})
    assert r.status_code == 400 and r.json()["error"] == code, r.text
