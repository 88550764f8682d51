"""The judge queue's fair share between users (execution/queue.py ``FairScheduler``)."""

from __future__ import annotations

from coolcoding.execution.queue import FairScheduler

A, B, C = 1, 2, 3


def starts(s: FairScheduler, n: int) -> list[tuple[int, int]]:
    out = []
    for _ in range(n):
        picked = s.pick()
        assert picked is not None
        out.append(picked)
    return out


def test_a_newcomer_takes_the_next_free_worker_then_workers_alternate() -> None:
    s = FairScheduler()
    for job in range(10):
        s.add(A, job)
    assert starts(s, 2) == [(A, 0), (A, 1)]  # A alone: both workers
    s.add(B, 100)
    s.add(B, 101)
    s.done(A)
    assert starts(s, 1) == [(B, 100)]  # fewest running first
    s.done(A)
    assert starts(s, 1) == [(A, 2)]  # one each now: round robin
    s.done(B)
    assert starts(s, 1) == [(B, 101)]
    assert s.depth == 7


def test_round_robin_between_equal_owners_keeps_each_owners_order() -> None:
    s = FairScheduler()
    for job in range(3):
        s.add(A, job)
        s.add(B, 10 + job)
        s.add(C, 20 + job)
    order = []
    for _ in range(9):
        picked = s.pick()
        assert picked is not None
        order.append(picked)
        s.done(picked[0])
    assert [j for o, j in order if o == A] == [0, 1, 2]
    assert [o for o, _ in order] == [A, B, C] * 3
    assert s.pick() is None and s.depth == 0


def test_the_per_owner_cap_leaves_work_queued() -> None:
    s = FairScheduler(max_running_per_owner=1)
    s.add(A, 0)
    s.add(A, 1)
    assert s.pick() == (A, 0)
    assert s.pick() is None  # capped, although a worker may be free
    s.done(A)
    assert s.pick() == (A, 1)
