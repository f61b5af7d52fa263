"""WorkerPool under random workloads: every task settles once, every resource is accounted for."""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import CancelledError
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import respool
from respool.worker import WorkerPool, WorkerStats
from tests.conftest import Abort, Boom

#: What each submitted task does; "drain" and "resize" also drain or resize the pool just
#: before it is submitted (the task itself is then an ordinary one).
KINDS = ("ok", "raise", "abort", "break", "cancel", "drain", "resize")


@dataclass(eq=False)
class Owned:
    """A resource that knows the thread that made it and whether it was destroyed."""

    n: int
    owner: int = field(default_factory=threading.get_ident)
    broken: bool = False
    destroyed: bool = False
    resets: int = 0

    def touch(self) -> None:
        assert threading.get_ident() == self.owner, f"{self} touched from another thread"
        assert not self.destroyed, f"{self} used after destroy"


class Life:
    """A lifecycle recording every resource; a callback touching one from a foreign thread,
    or after its destroy, is recorded in ``errors``."""

    def __init__(self, *, fail_reset: bool) -> None:
        self.fail_reset = fail_reset
        self.made: list[Owned] = []
        self.destroyed: list[Owned] = []
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.numbers = itertools.count()

    def guard(self, res: Owned) -> None:
        try:
            res.touch()
        except AssertionError as exc:
            with self.lock:
                self.errors.append(str(exc))
            raise

    def create(self) -> Owned:
        with self.lock:
            res = Owned(next(self.numbers))
            self.made.append(res)
        return res

    def reset(self, res: Owned) -> None:
        self.guard(res)
        res.resets += 1
        if self.fail_reset:
            raise Boom("cannot clean")

    def check(self, res: Owned) -> bool:
        self.guard(res)
        return not res.broken

    def destroy(self, res: Owned) -> None:
        self.guard(res)
        res.destroyed = True
        with self.lock:
            self.destroyed.append(res)

    def lifecycle(self) -> respool.Lifecycle[Owned]:
        return respool.Lifecycle(
            self.create, reset=self.reset, check=self.check, destroy=self.destroy
        )


def assert_accounts(stats: WorkerStats) -> None:
    """Every accepted task is accounted for exactly once; resources add up."""
    settled = stats.completed + stats.failed + stats.cancelled
    assert stats.submitted == settled + stats.queued + stats.busy, stats
    assert stats.created - stats.destroyed == stats.resources, stats
    assert stats.busy + stats.idle == stats.workers, stats


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
