"""The judge queue's fair share between users (execution/queue.py ``FairScheduler``)."""

from __future__ import annotations

import pytest

from coolcoding.errors import RateLimited, Unavailable
from coolcoding.execution.queue import FairScheduler, JobQueue

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


async def _never(_job_id: int) -> None:
    raise AssertionError("no worker runs in this test")


def test_one_owner_cannot_fill_the_shared_queue() -> None:
    q = JobQueue(_never, workers=1, max_size=10, max_queued_per_owner=4)
    q.submit([1, 2, 3], owner=A)
    with pytest.raises(RateLimited) as info:
        q.submit([4, 5], owner=A)  # all or nothing
    assert info.value.code == "too_many_queued" and q.depth == 3
    q.submit([4], owner=A)
    q.submit([10, 11, 12, 13], owner=B)  # another user still has room
    q.submit([20, 21], owner=C)
    with pytest.raises(Unavailable) as full:
        q.submit([22], owner=C)  # the whole queue's bound still holds
    assert full.value.code == "queue_full" and q.depth == 10
