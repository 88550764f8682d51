"""Interactive judging: exchanges/s of one interactive test case through the judge (the
submission and the interactor in two sandboxes joined by two host pipes) vs the same two
programs joined by plain pipes, unsandboxed (the floor), in interleaved rounds of one run.

The guessing game of the tests (tests/integration/interactive_programs.py): a C submission that
asks about every number from 1 up (``--exchanges`` questions, one answer each) against a
Python interactor and against a C one. Per round and pair: one judge job of one case (ours:
exchanges / the submission's wall time, as the sandbox measured it; the job's end-to-end time
beside it) and one unsandboxed run (the floor: exchanges / the time from starting both programs
to both exited). Run as root:
``.venv/bin/python bench/bench_interactive.py [--exchanges 10000] [--rounds 15]``;
writes bench/results/interactive.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))
from tests.integration.interactive_programs import C_LINEAR_SEARCH, GUESS_INTERACTOR

from benchstats import ratio, summary
from ccserver import write_result
from coolcoding.execution.judge import Judge, JudgeJob, resolve_limits
from coolcoding.execution.languages import LanguageRegistry
from coolcoding.execution.testcases import Checker, JudgeCase
from coolcoding.execution.verdicts import Verdict
from coolcoding.settings import Settings
from sandboxruntime import bench_runtime

C_INTERACTOR = r"""
#include <stdio.h>
#include <string.h>
int main(void) {
    long n, limit, secret, g, asked = 0; char op[4];
    FILE *in = fopen("input", "r"), *ex = fopen("expected", "r");
    if (!in || fscanf(in, "%ld %ld", &n, &limit) != 2) return 2;
    if (!ex || fscanf(ex, "%ld", &secret) != 1) secret = n;
    printf("%ld\n", n); fflush(stdout);
    while (scanf("%3s %ld", op, &g) == 2) {
        if (op[0] == '!') {
            if (g == secret) return 0;
            fprintf(stderr, "wrong guess %ld\n", g); return 1;
        }
        if (++asked > limit) { fprintf(stderr, "too many queries\n"); return 1; }
        puts(secret < g ? "<" : secret > g ? ">" : "="); fflush(stdout);
    }
    fprintf(stderr, "the program ended without an answer\n");
    return 1;
}
"""
INTERACTORS = {"python": ("interactor.py", GUESS_INTERACTOR), "c": ("interactor.c", C_INTERACTOR)}


def build(tmp: Path) -> dict[str, list[str]]:
    """The floor's programs, compiled as the judge compiles C (gcc -O2 -std=gnu17)."""
    for name, src in (("solution", C_LINEAR_SEARCH), ("interactor", C_INTERACTOR)):
        (tmp / f"{name}.c").write_text(src)
        subprocess.run(["/usr/bin/gcc", "-O2", "-std=gnu17", "-o", str(tmp / name),
                        str(tmp / f"{name}.c")], check=True)  # fmt: skip
    (tmp / "interactor.py").write_text(GUESS_INTERACTOR)
    return {"python": [sys.executable, "-I", str(tmp / "interactor.py")],
            "c": [str(tmp / "interactor")]}  # fmt: skip


def floor_s(tmp: Path, cwd: Path, interactor: list[str]) -> float:
    """Both programs joined by two plain pipes, no sandbox, in ``cwd`` (the files ``input``
    and ``expected``): start to both exited, in s."""
    to_int_r, to_int_w = os.pipe()
    to_sol_r, to_sol_w = os.pipe()
    t = time.perf_counter()
    judge = subprocess.Popen(interactor, cwd=cwd, stdin=to_int_r, stdout=to_sol_w)
    sol = subprocess.Popen([str(tmp / "solution")], cwd=cwd, stdin=to_sol_r, stdout=to_int_w)
    for fd in (to_int_r, to_int_w, to_sol_r, to_sol_w):
        os.close(fd)
    codes = judge.wait(), sol.wait()
    elapsed = time.perf_counter() - t
    assert codes == (0, 0), codes
    return elapsed


def job_for(lang: str, n: int, secret: int, settings: Settings) -> JudgeJob:
    """One case of ``secret`` exchanges: the C submission against the ``lang`` interactor."""
    name, src = INTERACTORS[lang]
    return JudgeJob(
        language="c",
        files={"main.c": C_LINEAR_SEARCH.encode()},
        entry="main.c",
        limits=resolve_limits({"wall_s": 20, "cpu_s": 20}, settings),
        cache_scope="user:bench",
        cases=[JudgeCase(f"{n} {n}".encode(), str(secret).encode())],
        checker=Checker(kind="interactive", language=lang, files={name: src.encode()}, entry=name),
    )


async def ours_s(judge: Judge, job: JudgeJob) -> tuple[float, float]:
    """(the submission's wall time as measured by the sandbox, the job's end to end), in s."""
    t = time.perf_counter()
    r = await judge.judge(job)
    total = time.perf_counter() - t
    assert r.verdict == Verdict.ACCEPTED, (r.message, r.extra)
    return r.extra["cases"][0]["wall_ms"] / 1000, total


def marginal(ms: dict[str, list[float]], series: str, n: int) -> int:
    """Exchanges/s without the fixed costs: (n - 1) / (median of n - median of one exchange)."""
    extra_ms = statistics.median(ms[series]) - statistics.median(ms[f"{series}_1"])
    return round((n - 1) * 1000 / extra_ms) if extra_ms > 0 else -1


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--exchanges", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    n = args.exchanges
    load_start = round(os.getloadavg()[0], 2)
    languages = LanguageRegistry()
    await languages.detect_versions()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        floor_argv = build(tmp)
        dirs = {}
        for size in (n, 1):  # n exchanges, and one (the fixed costs)
            dirs[size] = tmp / str(size)
            dirs[size].mkdir()
            (dirs[size] / "input").write_text(f"{n} {n}\n")
            (dirs[size] / "expected").write_text(f"{size}\n")
        ms: dict[str, list[float]] = {}  # per series: the case's time, ms
        async with bench_runtime() as rt:
            judge = Judge(rt, languages, rt.settings)
            jobs = {(lang, size): job_for(lang, n, size, rt.settings)
                    for lang in INTERACTORS for size in dirs}  # fmt: skip
            for lang, size in jobs:  # warm-up: the compile cache, the page cache
                await ours_s(judge, jobs[lang, size])
                floor_s(tmp, dirs[size], floor_argv[lang])
            for i in range(args.rounds):
                order = list(INTERACTORS) if i % 2 == 0 else list(INTERACTORS)[::-1]
                for lang in order:
                    for kind in ("ours", "floor") if i % 2 == 0 else ("floor", "ours"):
                        for size in dirs:
                            tag = "" if size == n else "_1"
                            if kind == "ours":
                                case_s, job_s = await ours_s(judge, jobs[lang, size])
                                ms.setdefault(f"{lang}/ours{tag}", []).append(case_s * 1000)
                                ms.setdefault(f"{lang}/ours_job{tag}", []).append(job_s * 1000)
                            else:
                                t = floor_s(tmp, dirs[size], floor_argv[lang])
                                ms.setdefault(f"{lang}/floor{tag}", []).append(t * 1000)
    out: dict[str, object] = {
        "exchanges": n,
        "rounds": args.rounds,
        "load_start": load_start,
        "load_end": round(os.getloadavg()[0], 2),
        "case_ms": {k: summary(v) for k, v in ms.items()},
        # exchanges/s at the median and at the p99 time (the slow tail)
        "exchanges_per_s": {
            k: {
                "p50": round(n / summary(v)["p50"] * 1000),
                "p99": round(n / summary(v)["p99"] * 1000),
            }
            for k, v in ms.items()
        },
        # ours / floor time: how many times slower the sandboxed case is
        "ours_over_floor": {
            lang: ratio(ms[f"{lang}/ours"], ms[f"{lang}/floor"]) for lang in INTERACTORS
        },
        # per exchange, the fixed costs (a case of one exchange) taken off: medians
        "marginal_exchanges_per_s": {
            f"{lang}/{kind}": marginal(ms, f"{lang}/{kind}", n)
            for lang in INTERACTORS
            for kind in ("ours", "floor")
        },
        "raw_ms": {k: [round(x, 2) for x in v] for k, v in ms.items()},
    }
    print(f"{n} exchanges per case, {args.rounds} rounds")
    print(
        f"{'interactor':<10} {'series':<9} {'p50 ms':>9} {'p99 ms':>9} {'exch/s p50':>11} {'p99':>9}"
    )
    for k, v in ms.items():
        lang, kind = k.split("/")
        s, r = summary(v), out["exchanges_per_s"][k]  # type: ignore[index]
        print(
            f"{lang:<10} {kind:<9} {s['p50']:>9.1f} {s['p99']:>9.1f} {r['p50']:>11,} {r['p99']:>9,}"
        )
    print("ours / floor time (p50, p99):", out["ours_over_floor"])
    print("marginal exchanges/s (fixed costs off):", out["marginal_exchanges_per_s"])
    write_result("interactive", out)


if __name__ == "__main__":
    asyncio.run(main())
