"""WorkerPool under random workloads, and across os.fork()."""

from __future__ import annotations

import os
import threading
from concurrent.futures import CancelledError
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import respool
from respool.worker import WorkerPool
from tests.conftest import Abort, Boom
from tests.test_worker import WAIT, Life, Owned, assert_accounts

KINDS = ("ok", "raise", "abort", "break", "cancel")


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
    fail_reset=st.booleans(),
    drain=st.booleans(),
)
def test_every_task_settles_once_with_its_own_outcome(
    kinds: list[str],
    workers: int,
    max_pending: int | None,
    max_tasks: int | None,
    fail_reset: bool,
    drain: bool,
) -> None:
    """Whatever tasks do to their resources, each future settles exactly once with its own
    outcome, no resource is touched by another thread or after destroy, every resource is
    destroyed exactly once, and the stats add up."""
    life = Life(fail_reset=fail_reset)
    pool = WorkerPool(
        life.lifecycle(), workers, max_pending=max_pending, max_tasks_per_resource=max_tasks
    )
    settled: dict[int, int] = {}
    lock = threading.Lock()
    futures = []
    for i, kind in enumerate(kinds):
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
    # Destroyed: replaced while working, or once per worker at shutdown.
    assert stats.destroyed - workers <= stats.replaced <= stats.destroyed
    aborted = sum(k == "abort" and not f.cancelled() for k, f in zip(kinds, futures, strict=True))
    assert stats.replaced >= aborted
    assert stats.reset_errors == (sum(r.resets for r in life.made) if fail_reset else 0)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
def test_pool_in_a_forked_child_refuses_work_clearly() -> None:
    """The child has none of the worker threads: submit raises PoolClosed saying why, and
    the parent's pool carries on untouched."""
    from tests.test_fork import fork_and_report

    life = Life()
    pool = WorkerPool(life.lifecycle(), 2)
    assert pool.submit(lambda r: r.n).result(WAIT) in (0, 1)

    def child() -> dict[str, Any]:
        try:
            pool.submit(lambda r: r.n)
        except respool.PoolClosed as exc:
            refused = str(exc)
        else:
            refused = ""
        pool.shutdown(wait=True)  # harmless: nothing of the parent's is destroyed
        return {"refused": refused, "destroyed": len(life.destroyed)}

    report = fork_and_report(child)
    assert "fork" in report["refused"]
    assert report["destroyed"] == 0
    assert pool.submit(lambda r: 7).result(WAIT) == 7
    pool.shutdown()
    assert len(life.destroyed) == 2
