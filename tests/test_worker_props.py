"""WorkerPool under random workloads: every task settles once, every resource is accounted for."""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import CancelledError

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from respool.worker import WorkerPool
from tests.conftest import Abort, Boom, Life, Owned, assert_accounts

#: What each submitted task does; "drain" and "resize" also drain or resize the pool just
#: before it is submitted (the task itself is then an ordinary one).
KINDS = ("ok", "raise", "abort", "break", "cancel", "drain", "resize")


def run_task(res: Owned, kind: str, i: int) -> int:
    """What each kind of task does to its resource."""
    res.touch()
    if kind == "raise":
        raise Boom(f"task {i}")
    if kind == "abort":
        raise Abort()
    if kind == "break":
        res.broken = True
    return i


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    kinds=st.lists(st.sampled_from(KINDS), max_size=40),
    workers=st.integers(1, 3),
    max_pending=st.one_of(st.none(), st.integers(1, 4)),
    max_tasks=st.one_of(st.none(), st.integers(1, 3)),
    max_lifetime=st.sampled_from([None, 0.002]),
    fail_reset=st.booleans(),
    drain=st.booleans(),
)
def test_every_task_settles_once_with_its_own_outcome(
    kinds: list[str],
    workers: int,
    max_pending: int | None,
    max_tasks: int | None,
    max_lifetime: float | None,
    fail_reset: bool,
    drain: bool,
) -> None:
    """Whatever tasks do to their resources, and however the pool is drained and resized
    meanwhile, each future settles once; the stats add up."""
    life = Life(fail_reset=fail_reset)
    pool = WorkerPool(
        life.lifecycle(),
        workers,
        max_pending=max_pending,
        max_uses=max_tasks,
        max_lifetime=max_lifetime,
    )
    sizes = itertools.cycle([1, 3, 2])
    settled: dict[int, int] = {}
    lock = threading.Lock()
    futures = []
    for i, kind in enumerate(kinds):
        if kind == "drain":
            pool.drain()
        elif kind == "resize":
            pool.resize(next(sizes))
        future = pool.submit(run_task, kind, i)
        if kind == "cancel":
            future.cancel()  # may be too late: then it runs as "ok"

        def count(_: object, i: int = i) -> None:
            with lock:
                settled[i] = settled.get(i, 0) + 1

        future.add_done_callback(count)
        futures.append(future)
    pool.shutdown(wait=True, cancel_pending=not drain)

    assert all(settled[i] == 1 for i in range(len(kinds)))
    outcomes = {"completed": 0, "failed": 0, "cancelled": 0}
    for i, (kind, future) in enumerate(zip(kinds, futures, strict=True)):
        if future.cancelled():
            assert kind == "cancel" or not drain
            outcomes["cancelled"] += 1
            with pytest.raises(CancelledError):
                future.result(0)
        elif kind == "raise":
            assert isinstance(future.exception(0), Boom)
            outcomes["failed"] += 1
        elif kind == "abort":
            assert isinstance(future.exception(0), Abort)
            outcomes["failed"] += 1
        else:
            assert future.result(0) == i
            outcomes["completed"] += 1
    stats = pool.stats()
    assert (stats.completed, stats.failed, stats.cancelled) == (
        outcomes["completed"],
        outcomes["failed"],
        outcomes["cancelled"],
    )
    assert stats.submitted == len(kinds)
    assert_accounts(stats)
    assert (stats.workers, stats.resources, stats.queued) == (0, 0, 0)
    assert life.errors == []
    assert sorted(r.n for r in life.destroyed) == sorted(r.n for r in life.made)
    assert stats.created == len(life.made) == stats.destroyed
    # Destroyed: replaced while working, or once per worker when it stopped (shutdown, resize).
    started = len(pool._shared.workers)
    assert stats.destroyed - started <= stats.replaced <= stats.destroyed
    assert stats.replaced == sum(stats.retired.values())
    aborted = sum(k == "abort" and not f.cancelled() for k, f in zip(kinds, futures, strict=True))
    assert stats.replaced >= aborted
    assert stats.reset_errors == (sum(r.resets for r in life.made) if fail_reset else 0)
