"""WorkerPool: a resource per worker thread, a bounded queue, lazy map, exactly-once futures.

Scenarios that would leave deadlocked threads behind (and so hang the interpreter's exit hook)
run in a fresh interpreter (``run_script``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import gc
import itertools
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import weakref
from collections.abc import Callable, Iterator
from time import monotonic
from typing import Any

import pytest

import respool
from respool._future import WorkItem
from respool.worker import WorkerPool
from tests.conftest import (
    Abort,
    Boom,
    Life,
    Owned,
    assert_accounts,
    fork_and_wait,
    wait_until,
)

WAIT = 10.0  # generous bound for anything that should happen promptly


@pytest.fixture
def life() -> Life:
    return Life()


@pytest.fixture
def pools() -> Iterator[list[WorkerPool[Any]]]:
    """Pools registered here are shut down (cancelling leftovers) and checked at teardown."""
    made: list[WorkerPool[Any]] = []
    yield made
    for pool in made:
        pool.shutdown(wait=True, cancel_pending=True)
        stats = pool.stats()
        assert_accounts(stats)
        assert (stats.workers, stats.busy, stats.queued, stats.resources) == (0, 0, 0, 0)


def use(res: Owned, value: object = None) -> object:
    """A task: touch the resource from the worker and return *value*."""
    res.touch()
    res.uses += 1
    return value


def ident(res: Owned) -> tuple[int, int]:
    """A task returning which resource (and thread) served it."""
    res.touch()
    return res.n, threading.get_ident()


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """An event blocking tasks until the test opens it (always opened at teardown)."""
    event = threading.Event()
    yield event
    event.set()


def blocked(started: threading.Event | None, gate: threading.Event) -> Callable[[Owned], str]:
    """A task that announces it started, then waits for *gate*."""

    def task(res: Owned) -> str:
        if started is not None:
            started.set()
        assert gate.wait(WAIT)
        return "unblocked"

    return task


class Source:
    """An input iterator counting how many items were pulled."""

    def __init__(self, items: Iterator[int]) -> None:
        self.items = items
        self.pulled = 0

    def __iter__(self) -> Iterator[int]:
        return self

    def __next__(self) -> int:
        item = next(self.items)
        self.pulled += 1
        return item


def run_script(source: str) -> str:
    """Run *source* in a fresh interpreter; return its stdout (stripped)."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def shutdown_then_set(
    pool: WorkerPool[Any], done: threading.Event, cancel_pending: bool = False
) -> None:
    """Thread target: shutdown(wait=True) the pool, then signal *done*."""
    pool.shutdown(wait=True, cancel_pending=cancel_pending)
    done.set()


def inject(thread: threading.Thread, error: type[BaseException]) -> None:
    """Raise *error* in *thread* at its next bytecode, as a Ctrl-C lands in the main thread."""
    ident = ctypes.c_ulong(thread.ident or 0)
    assert ctypes.pythonapi.PyThreadState_SetAsyncExc(ident, ctypes.py_object(error)) == 1


class GatedLock:
    """Stands in for a future's lock: a worker entering it announces so, then waits for
    ``opened``; any other thread passes straight through."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.owner = threading.get_ident()

    def __enter__(self) -> Any:
        if threading.get_ident() != self.owner:
            self.entered.set()
            assert self.opened.wait(WAIT)
        return self.real.__enter__()

    def __exit__(self, *exc: object) -> Any:
        return self.real.__exit__(*exc)


def waiting_submitters(pool: WorkerPool[Any]) -> int:
    """Submitters blocked for room right now."""
    return pool.stats().waiting


# -- basics and thread affinity ----------------------------------------------------------------


def test_submit_runs_fn_with_the_resource_and_returns_a_future(
    life: Life, pools: list[WorkerPool[Any]]
) -> None:
    """fn(resource, *args, **kwargs) runs on a worker; the future carries its result."""
    pool = WorkerPool(life.lifecycle(), 2)
    pools.append(pool)

    def task(res: Owned, a: int, *, b: int) -> tuple[int, int]:
        res.touch()
        return a, b

    future = pool.submit(task, 1, b=2)
    assert isinstance(future, concurrent.futures.Future)
    assert future.result(WAIT) == (1, 2)


def test_every_resource_is_touched_only_by_its_own_thread(
    life: Life, pools: list[WorkerPool[Any]]
) -> None:
    """create, check, reset, fn and destroy all run in the thread that owns the resource."""
    pool = WorkerPool(life.lifecycle(), 4, max_tasks_per_resource=5)
    pools.append(pool)
    results = [f.result(WAIT) for f in [pool.submit(ident) for _ in range(200)]]
    pool.shutdown(wait=True)
    owner = {res.n: res.owner for res in life.made}
    assert all(owner[n] == thread for n, thread in results)
    assert len({thread for _, thread in results}) <= 4
    assert life.errors == []
    assert sorted(r.n for r in life.destroyed) == sorted(r.n for r in life.made)
    assert life.checks > 0


def test_sqlite_connection_per_worker(pools: list[WorkerPool[Any]]) -> None:
    """A real thread-affine resource: sqlite3 refuses use from another thread, and works here."""
    conn = sqlite3.connect(":memory:")
    elsewhere = threading.Thread(target=lambda: errors.append(_use_sqlite(conn)))
    errors: list[str] = []
    elsewhere.start()
    elsewhere.join()
    assert errors == ["ProgrammingError"]  # the premise: it really is thread-affine
    conn.close()

    closed: list[int] = []

    def close(connection: sqlite3.Connection) -> None:
        connection.close()  # raises ProgrammingError if called from another thread
        closed.append(threading.get_ident())

    pool = WorkerPool(
        lambda: sqlite3.connect(":memory:"),
        3,
        reset=lambda c: c.rollback(),
        check=lambda c: c.execute("select 1").fetchone() == (1,),
        destroy=close,
    )
    pools.append(pool)

    def query(connection: sqlite3.Connection, x: int) -> int:
        return int(connection.execute("select ? * 2", (x,)).fetchone()[0])

    assert list(pool.map(query, range(100))) == [x * 2 for x in range(100)]
    pool.shutdown(wait=True)
    stats = pool.stats()
    assert (stats.created, stats.destroyed, stats.destroy_errors) == (3, 3, 0)
    assert len(closed) == 3


def _use_sqlite(conn: sqlite3.Connection) -> str:
    try:
        conn.execute("select 1")
    except sqlite3.ProgrammingError:
        return "ProgrammingError"
    return "worked"


def test_each_worker_creates_its_resource_when_it_starts(
    life: Life, pools: list[WorkerPool[Any]]
) -> None:
    """Resources exist before any task: the cost is paid up front, once per worker."""
    pool = WorkerPool(life.lifecycle(), 3)
    pools.append(pool)
    wait_until(lambda: pool.stats().created == 3)
    assert len({r.owner for r in life.made}) == 3


# -- futures interoperate ----------------------------------------------------------------------


def test_futures_work_with_wait_as_completed_and_asyncio(
    life: Life, pools: list[WorkerPool[Any]]
) -> None:
    """Real concurrent.futures.Future objects: wait, as_completed and wrap_future all work."""
    pool = WorkerPool(life.lifecycle(), 2)
    pools.append(pool)
    futures = [pool.submit(use, i) for i in range(20)]
    done, not_done = concurrent.futures.wait(futures, timeout=WAIT)
    assert len(done) == 20 and not not_done
    more = [pool.submit(use, i) for i in range(20)]
    got = sorted(f.result() for f in concurrent.futures.as_completed(more, timeout=WAIT))
    assert got == list(range(20))

    async def main() -> list[object]:
        return list(
            await asyncio.gather(*(asyncio.wrap_future(pool.submit(use, i)) for i in [7, 8]))
        )

    assert asyncio.run(main()) == [7, 8]


def test_wait_sees_futures_cancelled_at_shutdown(
    life: Life, pools: list[WorkerPool[Any]], gate: threading.Event
) -> None:
    """wait() returns for queued futures cancelled by shutdown (they are notified)."""
    pool = WorkerPool(life.lifecycle(), 1)
    pools.append(pool)
    started = threading.Event()
    running = pool.submit(blocked(started, gate))
    assert started.wait(WAIT)
    queued = [pool.submit(use) for _ in range(5)]
    waiter = concurrent.futures.ThreadPoolExecutor(1)
    outcome = waiter.submit(concurrent.futures.wait, queued, WAIT)
    pool.shutdown(wait=False, cancel_pending=True)
    done, not_done = outcome.result(WAIT)
    assert len(done) == 5 and not not_done
    assert all(f.cancelled() for f in queued)
    gate.set()
    assert running.result(WAIT) == "unblocked"
    waiter.shutdown()


# -- failures in tasks and callbacks -----------------------------------------------------------


def test_exception_in_fn_reaches_only_its_future(life: Life, pools: list[WorkerPool[Any]]) -> None:
    """A failing task fails its own future; the others and the resource carry on."""
    pool = WorkerPool(life.lifecycle(), 1)
    pools.append(pool)

    def fail(res: Owned) -> None:
        raise Boom("task failed")

    futures = [pool.submit(fail) if i % 3 == 0 else pool.submit(use, i) for i in range(9)]
    for i, future in enumerate(futures):
        if i % 3 == 0:
            with pytest.raises(Boom, match="task failed"):
                future.result(WAIT)
        else:
            assert future.result(WAIT) == i
    stats = pool.stats()
    assert (stats.completed, stats.failed, stats.created, stats.replaced) == (6, 3, 1, 0)
    assert_accounts(stats)


def test_abort_in_fn_discards_the_resource_but_keeps_the_worker(
    life: Life, pools: list[WorkerPool[Any]]
) -> None:
    """A task aborted by a BaseException: its resource is destroyed, never reused."""
    pool = WorkerPool(life.lifecycle(), 1)
    pools.append(pool)

    def abort(res: Owned) -> None:
        raise Abort()

    first = pool.submit(ident).result(WAIT)
    with pytest.raises(Abort):
        pool.submit(abort).result(WAIT)
    second = pool.submit(ident).result(WAIT)
    assert first[0] != second[0] and first[1] == second[1]  # new resource, same thread
    assert life.made[0].destroyed and life.made[0].resets == 1  # reset after task 1 only
    stats = pool.stats()
    assert (stats.failed, stats.replaced, stats.workers) == (1, 1, 1)


def test_failing_reset_replaces_the_resource_before_the_next_task(
    life: Life, pools: list[WorkerPool[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    """reset raising: the task's result stands, the resource is destroyed and replaced."""
    pool = WorkerPool(life.lifecycle(), 1)
    pools.append(pool)
    life.fail_reset = True
    with caplog.at_level(logging.WARNING, logger="respool"):
        assert pool.submit(ident).result(WAIT)[0] == 0
        assert pool.submit(ident).result(WAIT)[0] == 1
        life.fail_reset = False
        wait_until(lambda: pool.stats().reset_errors == 2)
    assert "reset raised" in caplog.text
    assert pool.submit(ident).result(WAIT)[0] == 2
    stats = pool.stats()
    assert (stats.reset_errors, stats.replaced, stats.completed) == (2, 2, 3)
    assert life.made[0].destroyed and life.made[1].destroyed


@pytest.mark.timeout(30)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_callback_raising_base_exception_does_not_lose_the_worker(
    life: Life, gate: threading.Event
) -> None:
    """A done callback raising a BaseException is logged; the worker carries on."""
    pool = WorkerPool(life.lifecycle(), 1)
    started = threading.Event()
    first = pool.submit(blocked(started, gate))
    assert started.wait(WAIT)

    def callback(_: object) -> None:
        raise Abort("from a done callback")

    first.add_done_callback(callback)
    second = pool.submit(use, 2)
    gate.set()
    try:
        assert second.result(5.0) == 2
        assert pool.stats().workers == 1
    finally:
        pool.shutdown(wait=True, cancel_pending=True)


def test_destroy_errors_are_counted_and_logged_not_raised(
    life: Life, caplog: pytest.LogCaptureFixture
) -> None:
    """destroy raising at shutdown reaches nobody's code; it is counted and logged."""
    pool = WorkerPool(life.lifecycle(), 2)
    assert pool.submit(use, 1).result(WAIT) == 1
    life.fail_destroy = True
    with caplog.at_level(logging.WARNING, logger="respool"):
        pool.shutdown(wait=True)
    stats = pool.stats()
    assert (stats.destroy_errors, stats.destroyed, stats.resources) == (2, 2, 0)
    assert "destroy raised" in caplog.text


@pytest.mark.timeout(30)
def test_check_and_destroy_raising_base_exceptions_are_contained(
    life: Life, caplog: pytest.LogCaptureFixture
) -> None:
    """check or destroy raising a BaseException is counted and logged; the worker lives."""
    calls = itertools.count()

    def check(res: Owned) -> bool:
        if next(calls) == 0:
            raise Abort("check aborted")
        return True

    def destroy(res: Owned) -> None:
        life.destroy(res)
        raise Abort("destroy aborted")

    pool = WorkerPool(life.create, 1, check=check, destroy=destroy)
    first = pool.submit(lambda r: r.n).result(WAIT)  # start-up resource 0: check aborts
    second = pool.submit(lambda r: r.n).result(WAIT)  # its replacement passes the check
    assert (first, second) == (1, 1)
    pool.shutdown(wait=True)
    stats = pool.stats()
    assert (stats.check_failures, stats.destroy_errors, stats.destroyed) == (1, 2, 2)
    assert (stats.workers, stats.resources) == (0, 0)
    assert life.errors == []


# -- resource health: checks and wear ----------------------------------------------------------


def test_broken_resources_are_replaced_and_no_task_is_lost(
    life: Life, pools: list[WorkerPool[Any]]
) -> None:
    """check finds resources a task broke; each is replaced and every task still runs."""
    pool = WorkerPool(life.lifecycle(), 3)
    pools.append(pool)

    def break_it(res: Owned, i: int) -> int:
        res.touch()
        if i % 4 == 0:
            res.broken = True  # the server hung up, say
        return i

    assert list(pool.map(break_it, range(100))) == list(range(100))
    pool.shutdown(wait=True)
    stats = pool.stats()
    # Every break except possibly the last on each worker was caught by a check.
    assert stats.check_failures >= 25 - 3
    assert stats.replaced == stats.check_failures
    assert stats.completed == 100
    assert life.errors == []


def test_check_raising_counts_as_unviable(pools: list[WorkerPool[Any]]) -> None:
    """A check that raises is a failed check: replace, do not crash the worker."""
    calls = itertools.count()

    def check(res: object) -> bool:
        if next(calls) == 0:
            raise Boom("ping failed")
        return True

    pool = WorkerPool(object, 1, check=check)
    pools.append(pool)
    wait_until(lambda: pool.stats().created == 1)
    start_up = pool._shared.workers[0]  # the record, not the resource: count replacements
    first = pool.submit(lambda r: r).result(WAIT)  # the start-up resource: check raises
    second = pool.submit(lambda r: r).result(WAIT)  # the replacement, checked: passes
    assert first is second
    stats = pool.stats()
    assert stats.check_failures == 1
    assert stats.created == 2
    assert stats.replaced == 1
    assert start_up.alive


def test_check_after_skips_checks_on_recently_used_resources(
    life: Life, pools: list[WorkerPool[Any]]
) -> None:
    """check_after=0 checks before every task; a long check_after never checks a busy one."""
    always = WorkerPool(life.lifecycle(), 1)
    pools.append(always)
    for _ in range(5):
        always.submit(use).result(WAIT)
    assert life.checks == 5
    other = Life()
    lazy = WorkerPool(other.lifecycle(), 1, check_after=3600)
    pools.append(lazy)
    for _ in range(5):
        lazy.submit(use).result(WAIT)
    assert other.checks == 0


def test_check_after_checks_a_resource_idle_long_enough(
    life: Life, pools: list[WorkerPool[Any]]
) -> None:
    """A resource idle longer than check_after is checked before its next task."""
    pool = WorkerPool(life.lifecycle(), 1, check_after=0.02)
    pools.append(pool)
    pool.submit(use).result(WAIT)
    threading.Event().wait(0.05)  # idle time is the thing under test here
    pool.submit(use).result(WAIT)
    assert life.checks == 1


@pytest.mark.timeout(30)
def test_a_fresh_resource_idle_longer_than_check_after_is_checked(
    life: Life, pools: list[WorkerPool[Any]]
) -> None:
    """A start-up resource idle longer than check_after is checked before its first task."""
    pool = WorkerPool(life.lifecycle(), 1, check_after=0.02)
    pools.append(pool)
    wait_until(lambda: pool.stats().created == 1)
    threading.Event().wait(0.1)  # idle time is the thing under test
    life.made[0].broken = True  # e.g. the server dropped the idle connection
    assert pool.submit(lambda r: r.n).result(WAIT) == 1  # served by a replacement
    assert life.checks == 1


def test_max_tasks_per_resource_recycles_the_resource_not_the_thread(
    life: Life, pools: list[WorkerPool[Any]]
) -> None:
    """After N tasks the resource is destroyed and recreated in the same thread."""
    pool = WorkerPool(life.lifecycle(), 1, max_tasks_per_resource=3)
    pools.append(pool)
    served = [pool.submit(ident).result(WAIT) for _ in range(7)]
    assert [n for n, _ in served] == [0, 0, 0, 1, 1, 1, 2]
    assert len({thread for _, thread in served}) == 1
    wait_until(lambda: pool.stats().created == 3)
    stats = pool.stats()
    assert (stats.replaced, stats.destroyed, stats.resources) == (2, 2, 1)


# -- health options: max_uses, max_lifetime, keepalive ----------------------------------------


def retired(pool: WorkerPool[Any], reason: str) -> int:
    """How many resources *pool* retired for *reason* so far."""
    return pool.stats().retired[reason]


def test_max_uses_is_the_name_and_max_tasks_per_resource_its_alias(
    life: Life, pools: list[WorkerPool[Any]]
) -> None:
    """max_uses=N recycles the resource after N tasks, as its older name does."""
    pool = WorkerPool(life.lifecycle(), 1, max_uses=2)
    pools.append(pool)
    assert (pool.max_uses, pool.max_tasks_per_resource) == (2, 2)
    served = [pool.submit(ident).result(WAIT)[0] for _ in range(5)]
    assert served == [0, 0, 1, 1, 2]
    wait_until(lambda: pool.stats().created == 3)
    stats = pool.stats()
    assert stats.retired["uses"] == 2 == stats.replaced
    with pytest.raises(TypeError, match=r"max_uses.*max_tasks_per_resource"):
        WorkerPool(object, 1, max_uses=2, max_tasks_per_resource=2)


def test_lifetime_expired_resource_is_replaced_between_tasks(
    life: Life, pools: list[WorkerPool[Any]]
) -> None:
    """A resource that expires during a task finishes that task, then is replaced."""
    pool = WorkerPool(life.lifecycle(), 1, max_lifetime=0.05)
    pools.append(pool)

    def outlive(res: Owned) -> int:
        res.touch()
        threading.Event().wait(0.15)  # outliving the lifetime is the thing under test
        res.touch()  # still ours: never destroyed during a task
        return res.n

    served = pool.submit(outlive).result(WAIT)
    assert pool.submit(lambda r: r.n).result(WAIT) != served  # a new one
    assert life.made[served].destroyed
    assert retired(pool, "lifetime") >= 1
    assert life.errors == []


def test_idle_worker_replaces_its_resource_when_its_lifetime_ends(
    pools: list[WorkerPool[Any]],
) -> None:
    """No task needed: the idle worker wakes at the deadline, retires and replaces, each
    resource having lived between 90% and 100% of max_lifetime (plus scheduling delays)."""
    born: dict[int, float] = {}
    lived: list[float] = []
    numbers = itertools.count()

    def create() -> int:
        n = next(numbers)
        born[n] = monotonic()
        return n

    def destroy(n: int) -> None:
        lived.append(monotonic() - born[n])

    pool = WorkerPool(create, 2, destroy=destroy, max_lifetime=0.1)
    pools.append(pool)
    wait_until(lambda: pool.stats().retired["lifetime"] >= 6, timeout=WAIT)
    stats = pool.stats()
    assert stats.resources == 2
    assert stats.replaced == sum(stats.retired.values()) == stats.retired["lifetime"]
    assert all(age >= 0.09 for age in lived[:6]), lived


def test_keepalive_replaces_a_dead_idle_resource_before_a_task_meets_it(
    life: Life, pools: list[WorkerPool[Any]]
) -> None:
    """An idle worker checks its resource every keepalive seconds and replaces a dead one."""
    pool = WorkerPool(life.lifecycle(), 1, keepalive=0.02, check_after=3600)
    pools.append(pool)
    wait_until(lambda: life.checks >= 2, timeout=WAIT)  # pinging while idle
    assert pool.stats().created == 1
    life.made[0].broken = True  # the server dropped the idle connection
    wait_until(lambda: pool.stats().created == 2, timeout=WAIT)
    stats = pool.stats()
    assert (stats.check_failures, stats.retired["check"], stats.replaced) == (1, 1, 1)
    checks = life.checks
    seen = pool.submit(lambda r: (r.n, r.broken)).result(WAIT)
    assert seen == (1, False)  # the task met the replacement, checked while idle
    assert life.checks - checks <= 1  # check_after: no extra check before the task
    assert life.errors == []


def test_keepalive_without_check_has_nothing_to_run(pools: list[WorkerPool[Any]]) -> None:
    """Without a check, keepalive is accepted and does nothing."""
    pool = WorkerPool(object, 1, keepalive=0.01)
    pools.append(pool)
    assert pool.submit(lambda r: 1).result(WAIT) == 1
    assert pool.stats().replaced == 0


# -- resize and drain ------------------------------------------------------------------------


def test_resize_up_and_down_under_load_loses_no_task(
    life: Life, pools: list[WorkerPool[Any]]
) -> None:
    """Workers come and go while tasks stream through; every task runs exactly once."""
    pool = WorkerPool(life.lifecycle(), 2, max_pending=16)
    pools.append(pool)
    ran: list[int] = []
    lock = threading.Lock()

    def work(res: Owned, i: int) -> int:
        res.touch()
        with lock:
            ran.append(i)
        return i

    results = pool.map(work, range(2000))
    got = []
    for size, (i, value) in zip(itertools.cycle([6, 1, 3, 1, 4]), enumerate(results)):
        got.append(value)
        if i % 100 == 0:
            pool.resize(size)
    assert got == list(range(2000))
    assert sorted(ran) == list(range(2000))
    pool.resize(3)
    wait_until(lambda: pool.stats().workers == 3, timeout=WAIT)
    stats = pool.stats()
    assert_accounts(stats)
    assert stats.completed == 2000 and stats.failed == 0
    assert stats.resources == 3
    assert life.errors == []  # leavers destroyed their resources in their own threads


def test_shrink_lets_busy_workers_finish_their_task_first(
    life: Life, pools: list[WorkerPool[Any]], gate: threading.Event
) -> None:
    """resize down never interrupts a task; the queue is served by those who stay."""
    pool = WorkerPool(life.lifecycle(), 3)
    pools.append(pool)
    busy = [pool.submit(blocked(None, gate)) for _ in range(3)]
    wait_until(lambda: pool.stats().busy == 3)
    queued = [pool.submit(use, i) for i in range(5)]
    pool.resize(1)
    assert pool.workers == 1
    assert not any(f.done() for f in busy) and life.destroyed == []
    gate.set()
    assert [f.result(WAIT) for f in busy] == ["unblocked"] * 3
    assert [f.result(WAIT) for f in queued] == list(range(5))
    wait_until(lambda: pool.stats().workers == 1, timeout=WAIT)
    stats = pool.stats()
    assert (stats.resources, stats.replaced, len(life.destroyed)) == (1, 0, 2)
    assert life.errors == []


def test_shrink_then_grow_keeps_the_count(pools: list[WorkerPool[Any]]) -> None:
    """A grow right after a shrink cancels the leaves not yet done; the count ends right."""
    pool = WorkerPool(object, 4)
    pools.append(pool)
    for size in (1, 5, 2, 2, 6, 1, 3):
        pool.resize(size)
    wait_until(lambda: pool.stats().workers == 3, timeout=WAIT)
    assert pool.stats().resources <= 3
    assert list(pool.map(lambda r, i: i, range(50))) == list(range(50))


def test_resize_checks_its_argument_and_refuses_after_shutdown(
    pools: list[WorkerPool[Any]],
) -> None:
    """Bad sizes name the parameter; a shut-down pool cannot be resized."""
    pool = WorkerPool(object, 1)
    pools.append(pool)
    with pytest.raises(ValueError, match="workers"):
        pool.resize(0)
    with pytest.raises(TypeError, match="workers"):
        pool.resize(2.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="workers"):
        pool.resize(True)
    pool.shutdown()
    with pytest.raises(respool.PoolClosed):
        pool.resize(2)
    pool.drain()  # harmless


def test_drain_replaces_every_idle_resource(life: Life, pools: list[WorkerPool[Any]]) -> None:
    """Idle workers retire their resources at once; each makes a new one."""
    pool = WorkerPool(life.lifecycle(), 4)
    pools.append(pool)
    wait_until(lambda: pool.stats().created == 4)
    before = list(life.made)
    pool.drain()
    wait_until(lambda: all(res.destroyed for res in before), timeout=WAIT)
    wait_until(lambda: pool.stats().resources == 4, timeout=WAIT)
    stats = pool.stats()
    assert stats.retired["drain"] == 4 == stats.replaced
    assert {pool.submit(lambda r: r.n).result(WAIT) for _ in range(8)} <= {4, 5, 6, 7}
    assert life.errors == []


def test_drain_waits_for_a_busy_resource_to_finish_its_task(
    life: Life, pools: list[WorkerPool[Any]], gate: threading.Event
) -> None:
    """A resource in use is retired after its task, never during it."""
    pool = WorkerPool(life.lifecycle(), 2)
    pools.append(pool)
    wait_until(lambda: pool.stats().created == 2)
    started = threading.Event()
    held: list[Owned] = []

    def hold(res: Owned) -> int:
        held.append(res)
        started.set()
        assert gate.wait(WAIT)
        res.touch()  # not destroyed meanwhile
        return res.n

    running = pool.submit(hold)
    assert started.wait(WAIT)
    (other,) = [res for res in life.made[:2] if res is not held[0]]
    pool.drain()
    wait_until(lambda: other.destroyed, timeout=WAIT)  # the idle one: at once
    assert not held[0].destroyed and not running.done()
    gate.set()
    assert running.result(WAIT) == held[0].n
    wait_until(lambda: held[0].destroyed, timeout=WAIT)  # the busy one: after its task
    wait_until(lambda: pool.stats().resources == 2, timeout=WAIT)
    assert retired(pool, "drain") == 2
    assert life.errors == []


def test_drain_under_load_fails_no_task(life: Life, pools: list[WorkerPool[Any]]) -> None:
    """Drains while tasks stream through: no task fails, every older resource goes."""
    pool = WorkerPool(life.lifecycle(), 4, max_pending=32)
    pools.append(pool)
    before: list[Owned] = []
    got = []
    for i, value in enumerate(pool.map(use, range(3000))):
        got.append(value)
        if i % 500 == 250:
            with life.lock:
                before = list(life.made)
            pool.drain()
    assert got == list(range(3000))
    wait_until(lambda: all(res.destroyed for res in before), timeout=WAIT)
    stats = pool.stats()
    assert stats.failed == 0 and stats.completed == 3000
    assert stats.retired["drain"] >= 4
    assert stats.replaced == sum(stats.retired.values())
    assert life.errors == []


def test_drain_and_resize_together_under_load(life: Life, pools: list[WorkerPool[Any]]) -> None:
    """Drains and resizes mixed, from another thread, while tasks run: all complete."""
    pool = WorkerPool(life.lifecycle(), 3)
    pools.append(pool)
    stop = threading.Event()

    def churn() -> None:
        for size in itertools.cycle([1, 5, 2, 4]):
            if stop.is_set():
                return
            pool.drain()
            pool.resize(size)
            threading.Event().wait(0.002)

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        futures = [pool.submit(use, i) for i in range(2000)]
        assert [f.result(WAIT) for f in futures] == list(range(2000))
    finally:
        stop.set()
        thread.join()
    with life.lock:
        before = list(life.made)
    pool.drain()
    wait_until(lambda: all(res.destroyed for res in before), timeout=WAIT)
    assert life.errors == []


def test_drains_in_a_tight_loop_neither_deadlock_nor_pile_up(
    life: Life, pools: list[WorkerPool[Any]]
) -> None:
    """Two threads drain as fast as they can while tasks run: every task completes, the
    queue holds at most one drain marker per worker, and the pool still shuts down."""
    pool = WorkerPool(life.lifecycle(), 4)
    pools.append(pool)
    stop = threading.Event()
    most = [0]

    def hammer() -> None:
        while not stop.is_set():
            pool.drain()
            most[0] = max(most[0], pool._shared.drains_queued)

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        futures = [pool.submit(use, i) for i in range(2000)]
        assert [f.result(WAIT) for f in futures] == list(range(2000))
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert most[0] <= 4
    with life.lock:
        before = list(life.made)
    pool.drain()
    wait_until(lambda: all(res.destroyed for res in before), timeout=WAIT)
    assert life.errors == []


def test_resize_and_drain_from_inside_a_task(life: Life, pools: list[WorkerPool[Any]]) -> None:
    """A task may resize or drain its own pool: nothing waits, its resource goes after it."""
    pool = WorkerPool(life.lifecycle(), 3)
    pools.append(pool)

    def reshape(res: Owned) -> int:
        pool.drain()
        pool.resize(1)
        res.touch()  # still usable: the drain waits for the end of this task
        return res.n

    served = pool.submit(reshape).result(WAIT)
    wait_until(lambda: life.made[served].destroyed, timeout=WAIT)
    wait_until(lambda: pool.stats().workers == 1, timeout=WAIT)
    assert pool.submit(lambda r: r.n).result(WAIT) >= 3  # made after the drain
    assert life.errors == []


def test_queued_figure_ignores_drain_and_resize_markers(
    life: Life, pools: list[WorkerPool[Any]], gate: threading.Event
) -> None:
    """Markers share the queue with tasks; the unbounded pool's queued figure counts tasks."""
    pool = WorkerPool(life.lifecycle(), 2)
    pools.append(pool)
    busy = [pool.submit(blocked(None, gate)) for _ in range(2)]
    wait_until(lambda: pool.stats().busy == 2)
    queued = [pool.submit(use, i) for i in range(5)]
    pool.drain()
    pool.resize(1)  # both workers busy: the markers wait in the queue with the tasks
    stats = pool.stats()
    assert stats.queued == 5, stats
    assert_accounts(stats)
    gate.set()
    assert [f.result(WAIT) for f in queued] == list(range(5))
    assert all(f.result(WAIT) == "unblocked" for f in busy)
    wait_until(lambda: pool.stats().workers == 1, timeout=WAIT)
    assert pool.stats().queued == 0


def test_stats_report_retirements_by_reason_and_the_create_streak(
    life: Life, pools: list[WorkerPool[Any]]
) -> None:
    """Every reason is a key from the start; a failing create shows its streak."""
    pool = WorkerPool(life.lifecycle(), 1)
    pools.append(pool)
    pool.submit(use).result(WAIT)
    stats = pool.stats()
    assert stats.retired == dict.fromkeys(
        ["lifetime", "uses", "idle", "check", "drain", "error", "abort"], 0
    )
    assert (stats.create_failures, stats.create_retry_in) == (0, 0.0)

    def abort(res: Owned) -> None:
        raise Abort()

    life.fail_create_forever = True  # the replacement cannot be made
    with pytest.raises(Abort):
        pool.submit(abort).result(WAIT)
    wait_until(lambda: pool.stats().create_failures >= 2, timeout=WAIT)
    stats = pool.stats()
    assert stats.retired["abort"] == 1 == stats.replaced
    assert 0.0 <= stats.create_retry_in <= 2.5
    life.fail_create_forever = False
    wait_until(lambda: pool.stats().create_failures == 0, timeout=WAIT)


# -- create failing ----------------------------------------------------------------------------


def test_timeout_defaults_to_thirty_seconds(pools: list[WorkerPool[Any]]) -> None:
    """As on the free lists, a task never waits forever for a resource by default."""
    pool = WorkerPool(object, 1)
    pools.append(pool)
    assert pool.timeout == 30.0


def test_create_failing_then_recovering(
    life: Life, pools: list[WorkerPool[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    """Creates that fail are retried with backoff while tasks wait; the tasks then run."""
    life.fail_create = 3
    with caplog.at_level(logging.WARNING, logger="respool"):
        pool = WorkerPool(life.lifecycle(), 1)
        pools.append(pool)
        futures = [pool.submit(use, i) for i in range(5)]
        assert [f.result(WAIT) for f in futures] == list(range(5))
    assert "create failed" in caplog.text
    stats = pool.stats()
    assert (stats.create_errors, stats.created, stats.workers) == (3, 1, 1)


@pytest.mark.timeout(30)
def test_failing_create_logs_one_traceback_then_one_line_per_retry(
    life: Life, pools: list[WorkerPool[Any]], caplog: pytest.LogCaptureFixture
) -> None:
    """A failing create logs one traceback, then one line per retry: count and next try."""
    life.fail_create = 3
    with caplog.at_level(logging.INFO, logger="respool"):
        pool = WorkerPool(life.lifecycle(), 1)
        pools.append(pool)
        assert pool.submit(use, 1).result(WAIT) == 1
    records = [r for r in caplog.records if "create failed" in r.getMessage()]
    assert len(records) == 3, [r.getMessage() for r in records]
    assert records[0].exc_info is not None
    assert all(r.exc_info is None for r in records[1:])
    assert "3 in a row" in records[2].getMessage()
    assert "next try in" in records[2].getMessage()


def test_create_failing_for_good_fails_tasks_after_timeout(
    life: Life, pools: list[WorkerPool[Any]]
) -> None:
    """Tasks fail with PoolTimeout chained to the create error; the worker recovers later."""
    life.fail_create_forever = True
    pool = WorkerPool(life.lifecycle(), 1, timeout=0.1)
    pools.append(pool)
    futures = [pool.submit(use, i) for i in range(3)]
    for future in futures:
        error = future.exception(WAIT)
        assert isinstance(error, respool.PoolTimeout)
        assert isinstance(error.__cause__, Boom)
    stats = pool.stats()
    assert stats.failed == 3 and stats.create_errors >= 1 and stats.workers == 1
    life.fail_create_forever = False
    wait_until(lambda: pool.stats().created == 1)  # at its next retry
    assert pool.submit(use, 42).result(WAIT) == 42


@pytest.mark.timeout(30)
def test_timeout_zero_fails_tasks_at_once_while_create_fails(
    life: Life, pools: list[WorkerPool[Any]]
) -> None:
    """timeout=0 while create fails: a task fails at once, chained to the create error."""
    life.fail_create_forever = True
    pool = WorkerPool(life.lifecycle(), 1, timeout=0)
    pools.append(pool)
    error = pool.submit(use).exception(WAIT)
    assert isinstance(error, respool.PoolTimeout) and isinstance(error.__cause__, Boom)
    assert pool.stats().workers == 1


@pytest.mark.timeout(30)
def test_a_task_is_not_held_by_a_worker_that_cannot_create_while_another_idles(
    pools: list[WorkerPool[Any]],
) -> None:
    """A worker whose create keeps failing leaves tasks to a worker that has a resource."""

    def create() -> object:
        if threading.current_thread().name.endswith("-1"):
            raise Boom("this worker cannot connect")
        return object()

    pool = WorkerPool(create, 2, name="hostage")
    pools.append(pool)
    wait_until(lambda: pool.stats().created == 1 and pool.stats().create_errors >= 1)
    # Submit until worker 1 has taken one (it competes for tasks from its retry loop; a fix
    # may stop it doing so, hence the bound on how long we try).
    futures = []
    deadline = monotonic() + 3.0
    while not pool._shared.workers[1].holding and monotonic() < deadline and len(futures) < 1000:
        futures.append(pool.submit(lambda r: None))
    # Worker 0 is idle and healthy: every task should run, promptly; 5 s is generous.
    _, not_done = concurrent.futures.wait(futures, timeout=5.0)
    assert not not_done


def test_shutdown_does_not_hang_when_create_keeps_failing(life: Life) -> None:
    """timeout=None and create failing forever: shutdown still ends, failing queued tasks."""
    life.fail_create_forever = True
    pool = WorkerPool(life.lifecycle(), 2)
    futures = [pool.submit(use) for _ in range(4)]
    done = threading.Event()
    stopper = threading.Thread(target=lambda: (pool.shutdown(wait=True), done.set()))
    stopper.start()
    assert done.wait(WAIT)
    for future in futures:
        error = future.exception(WAIT)
        assert isinstance(error, respool.PoolClosed)
        assert isinstance(error.__cause__, Boom)
    assert_accounts(pool.stats())


@pytest.mark.timeout(60)
def test_shutdown_does_not_wait_out_the_task_timeout_when_create_keeps_failing(
    life: Life,
) -> None:
    """Shutdown makes one last create attempt, then fails held tasks with PoolClosed."""
    life.fail_create_forever = True
    pool = WorkerPool(life.lifecycle(), 1, timeout=40.0)
    future = pool.submit(use)
    wait_until(lambda: pool.stats().busy == 1)  # the worker holds it, retrying create
    done = threading.Event()
    stopper = threading.Thread(target=shutdown_then_set, args=(pool, done))
    stopper.start()
    try:
        # timeout=None gives up at once with PoolClosed; a finite timeout should not be worse.
        assert done.wait(WAIT)
        assert isinstance(future.exception(0), respool.PoolClosed)
    finally:
        pool.shutdown(wait=True, cancel_pending=True)  # release the held task
        stopper.join(WAIT)


@pytest.mark.timeout(30)
def test_unreferenced_pool_fails_queued_work_when_create_keeps_failing(life: Life) -> None:
    """A forgotten pool whose create always fails ends its workers, settles its futures."""
    life.fail_create_forever = True
    pool = WorkerPool(life.lifecycle(), 2)
    futures = [pool.submit(use, i) for i in range(4)]
    threads = [w.thread for w in pool._shared.workers]
    ref = weakref.ref(pool)
    del pool
    gc.collect()
    assert ref() is None
    for thread in threads:
        assert thread is not None
        thread.join(WAIT)
        assert not thread.is_alive()
    for future in futures:
        error = future.exception(0)
        assert isinstance(error, respool.PoolClosed) and isinstance(error.__cause__, Boom)


# -- capacity: block, reject, timeout ----------------------------------------------------------


def test_reject_raises_pool_full_when_the_queue_is_full(
    life: Life, pools: list[WorkerPool[Any]], gate: threading.Event
) -> None:
    """on_full="reject": the submit past max_pending raises PoolFull at once."""
    pool = WorkerPool(life.lifecycle(), 1, max_pending=2, on_full="reject")
    pools.append(pool)
    started = threading.Event()
    running = pool.submit(blocked(started, gate))
    assert started.wait(WAIT)
    queued = [pool.submit(use, i) for i in range(2)]
    with pytest.raises(respool.PoolFull, match="max_pending"):
        pool.submit(use, 99)
    stats = pool.stats()
    assert (stats.queued, stats.busy, stats.rejected, stats.submitted) == (2, 1, 1, 3)
    gate.set()
    assert running.result(WAIT) == "unblocked"
    assert [f.result(WAIT) for f in queued] == [0, 1]
    assert pool.submit(use, 3).result(WAIT) == 3  # room again


def test_block_waits_then_times_out(
    life: Life, pools: list[WorkerPool[Any]], gate: threading.Event
) -> None:
    """on_full="block" with a timeout: PoolTimeout (a TimeoutError) when no room appears."""
    pool = WorkerPool(life.lifecycle(), 1, max_pending=1, timeout=0.05)
    pools.append(pool)
    started = threading.Event()
    pool.submit(blocked(started, gate))
    assert started.wait(WAIT)
    pool.submit(use)
    with pytest.raises(respool.PoolTimeout) as caught:
        pool.submit(use)
    assert isinstance(caught.value, TimeoutError)
    stats = pool.stats()
    assert (stats.timeouts, stats.submitted, stats.queued) == (1, 2, 1)


def test_block_with_zero_timeout_never_waits(
    life: Life, pools: list[WorkerPool[Any]], gate: threading.Event
) -> None:
    """timeout=0 means never wait: a full queue raises PoolTimeout at once."""
    pool = WorkerPool(life.lifecycle(), 1, max_pending=1, timeout=0)
    pools.append(pool)
    started = threading.Event()
    pool.submit(blocked(started, gate))
    assert started.wait(WAIT)
    pool.submit(use)
    with pytest.raises(respool.PoolTimeout):
        pool.submit(use)


def test_blocked_submitters_get_in_when_room_frees_in_arrival_order(
    life: Life, pools: list[WorkerPool[Any]], gate: threading.Event
) -> None:
    """Submitters waiting for room are admitted first come, first served, and none is lost."""
    pool = WorkerPool(life.lifecycle(), 1, max_pending=1)
    pools.append(pool)
    started = threading.Event()
    pool.submit(blocked(started, gate))
    assert started.wait(WAIT)
    pool.submit(use, "queued")
    order: list[int] = []
    futures: dict[int, concurrent.futures.Future[object]] = {}

    def record(res: Owned, i: int) -> None:
        res.touch()
        order.append(i)

    def submitter(i: int) -> None:
        futures[i] = pool.submit(record, i)

    threads = []
    for i in range(4):
        thread = threading.Thread(target=submitter, args=(i,))
        thread.start()
        threads.append(thread)
        wait_until(lambda n=i: pool.stats().waiting == n + 1)
    gate.set()
    for thread in threads:
        thread.join(WAIT)
    for future in futures.values():
        future.result(WAIT)
    assert order == [0, 1, 2, 3]


@pytest.mark.timeout(30)
def test_cancelled_queued_tasks_free_their_max_pending_slot(
    life: Life, pools: list[WorkerPool[Any]], gate: threading.Event
) -> None:
    """Cancelling a queued task frees its max_pending slot at once."""
    pool = WorkerPool(life.lifecycle(), 1, max_pending=2, on_full="reject")
    pools.append(pool)
    started = threading.Event()
    pool.submit(blocked(started, gate))
    assert started.wait(WAIT)
    victims = [pool.submit(use, i) for i in range(2)]
    assert all(v.cancel() for v in victims)
    try:
        later = pool.submit(use, "later")
    finally:
        gate.set()
    assert later.result(WAIT) == "later"


@pytest.mark.timeout(30)
def test_max_pending_holds_while_a_worker_takes_a_cancelled_task(
    life: Life, pools: list[WorkerPool[Any]], gate: threading.Event
) -> None:
    """A worker between taking a cancelled task and settling it frees no extra slot."""
    pool = WorkerPool(life.lifecycle(), 1, max_pending=2, on_full="reject")
    pools.append(pool)
    started = threading.Event()
    pool.submit(blocked(started, gate))
    assert started.wait(WAIT)
    a = pool.submit(use, "a")
    b = pool.submit(use, "b")
    assert a.cancel()
    c = pool.submit(use, "c")  # a's slot was freed: queue is [a (cancelled), b, c]
    held = GatedLock(a._condition)  # type: ignore[attr-defined]
    a._condition = held  # type: ignore[attr-defined]
    gate.set()  # the worker finishes the blocker and takes a
    assert held.entered.wait(WAIT)
    try:
        with pytest.raises(respool.PoolFull):
            pool.submit(use, "d")
        assert pool.stats().queued == 2
    finally:
        held.opened.set()
    assert (b.result(WAIT), c.result(WAIT)) == ("b", "c")


@pytest.mark.timeout(30)
@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs signal.pthread_kill")
def test_interrupted_blocked_submit_leaves_the_line_and_leaks_no_task(
    life: Life, pools: list[WorkerPool[Any]], gate: threading.Event
) -> None:
    """An interrupt in a submit blocked for room propagates; its task never runs."""
    assert threading.current_thread() is threading.main_thread()
    pool = WorkerPool(life.lifecycle(), 1, max_pending=1)
    pools.append(pool)
    started = threading.Event()
    pool.submit(blocked(started, gate))
    assert started.wait(WAIT)
    queued = pool.submit(use, 1)
    ran: list[int] = []

    def interrupt(signum: int, frame: object) -> None:
        raise Abort("interrupted")

    def interrupter() -> None:
        wait_until(lambda: pool.stats().waiting == 1)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGUSR1)

    previous = signal.signal(signal.SIGUSR1, interrupt)
    try:
        thread = threading.Thread(target=interrupter)
        thread.start()
        with pytest.raises(Abort):
            pool.submit(lambda r: ran.append(2))
        thread.join(WAIT)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert pool.stats().waiting == 0
    gate.set()
    assert queued.result(WAIT) == 1
    assert pool.submit(use, 3).result(WAIT) == 3
    pool.shutdown(wait=True)
    assert ran == []
    stats = pool.stats()
    assert (stats.submitted, stats.completed, stats.timeouts) == (3, 3, 0)
    assert_accounts(stats)


@pytest.mark.timeout(30)
def test_submitter_interrupted_while_shutdown_refuses_it_is_not_counted(
    life: Life, gate: threading.Event
) -> None:
    """An interrupt landing in a blocked submit as shutdown refuses it: no task is counted."""
    pool = WorkerPool(life.lifecycle(), 1, max_pending=1)
    started = threading.Event()
    pool.submit(blocked(started, gate))
    assert started.wait(WAIT)
    pool.submit(use, 1)
    raised: list[BaseException] = []

    def submitter() -> None:
        try:
            pool.submit(use, 2)
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=submitter)
    thread.start()
    wait_until(lambda: waiting_submitters(pool) == 1)
    inject(thread, Abort)  # delivered when it wakes: shutdown is what wakes it
    pool.shutdown(wait=False)
    thread.join(WAIT)
    assert len(raised) == 1 and isinstance(raised[0], Abort)
    gate.set()
    pool.shutdown(wait=True)
    stats = pool.stats()
    assert (stats.submitted, stats.completed, stats.cancelled) == (2, 2, 0), stats
    assert_accounts(stats)


@pytest.mark.timeout(30)
def test_task_submitting_to_its_own_full_pool_gets_an_error_not_a_deadlock(
    life: Life, pools: list[WorkerPool[Any]]
) -> None:
    """A task submitting into its own full pool gets PoolFull or PoolTimeout."""
    cases = (("reject", None, respool.PoolFull), ("block", 0.05, respool.PoolTimeout))
    for on_full, timeout, error in cases:
        pool = WorkerPool(life.lifecycle(), 1, max_pending=1, on_full=on_full, timeout=timeout)
        pools.append(pool)
        running, release = threading.Event(), threading.Event()

        def task(
            res: Owned,
            pool: WorkerPool[Any] = pool,
            running: threading.Event = running,
            release: threading.Event = release,
        ) -> str:
            running.set()
            assert release.wait(WAIT)  # until the queue is full
            pool.submit(use)
            return "submitted"

        outer = pool.submit(task)
        assert running.wait(WAIT)
        filler = pool.submit(use, "filler")
        release.set()
        with pytest.raises(error):
            outer.result(WAIT)
        assert filler.result(WAIT) == "filler"


def test_shutdown_releases_blocked_submitters_with_pool_closed(
    life: Life, pools: list[WorkerPool[Any]], gate: threading.Event
) -> None:
    """A submit waiting for room when the pool shuts down raises PoolClosed."""
    pool = WorkerPool(life.lifecycle(), 1, max_pending=1)
    pools.append(pool)
    started = threading.Event()
    pool.submit(blocked(started, gate))
    assert started.wait(WAIT)
    pool.submit(use)
    outcome: list[BaseException] = []

    def submitter() -> None:
        try:
            pool.submit(use)
        except respool.PoolClosed as exc:
            outcome.append(exc)

    thread = threading.Thread(target=submitter)
    thread.start()
    wait_until(lambda: pool.stats().waiting == 1)
    pool.shutdown(wait=False)
    thread.join(WAIT)
    assert len(outcome) == 1
    gate.set()


# -- shutdown ----------------------------------------------------------------------------------


def test_shutdown_drains_queued_tasks_by_default(life: Life) -> None:
    """shutdown(wait=True) runs everything queued, then destroys every resource."""
    pool = WorkerPool(life.lifecycle(), 2)
    futures = [pool.submit(use, i) for i in range(50)]
    pool.shutdown(wait=True)
    assert [f.result(0) for f in futures] == list(range(50))
    stats = pool.stats()
    assert (stats.completed, stats.workers, stats.resources) == (50, 0, 0)
    assert all(r.destroyed for r in life.made)
    assert_accounts(stats)


def test_shutdown_cancel_pending_cancels_what_has_not_started(
    life: Life, gate: threading.Event
) -> None:
    """cancel_pending=True: the running task finishes, queued ones are cancelled."""
    pool = WorkerPool(life.lifecycle(), 1)
    started = threading.Event()
    running = pool.submit(blocked(started, gate))
    assert started.wait(WAIT)
    queued = [pool.submit(use, i) for i in range(10)]
    pool.shutdown(wait=False, cancel_pending=True)
    gate.set()
    pool.shutdown(wait=True)
    assert running.result(0) == "unblocked"
    assert all(f.cancelled() for f in queued)
    stats = pool.stats()
    assert (stats.cancelled, stats.completed) == (10, 1)
    assert_accounts(stats)


def test_submit_after_shutdown_raises_and_shutdown_is_idempotent(life: Life) -> None:
    """PoolClosed after shutdown; a second shutdown (any arguments) is harmless."""
    with WorkerPool(life.lifecycle(), 2) as pool:
        assert pool.submit(use, 1).result(WAIT) == 1
    assert pool.closed
    with pytest.raises(respool.PoolClosed):
        pool.submit(use)
    with pytest.raises(respool.PoolClosed):
        list(pool.map(use, [1]))
    pool.shutdown()
    pool.shutdown(wait=False, cancel_pending=True)
    assert pool.stats().destroyed == 2
    assert "closed" in repr(pool)


def test_cancelled_queued_future_never_runs(
    life: Life, pools: list[WorkerPool[Any]], gate: threading.Event
) -> None:
    """A caller may cancel a queued future; the worker skips it."""
    pool = WorkerPool(life.lifecycle(), 1)
    pools.append(pool)
    started = threading.Event()
    pool.submit(blocked(started, gate))
    assert started.wait(WAIT)
    ran: list[int] = []
    victim = pool.submit(lambda r: ran.append(1))
    assert victim.cancel()
    gate.set()
    assert pool.submit(use, 2).result(WAIT) == 2
    assert ran == [] and pool.stats().cancelled == 1


def test_shutdown_from_inside_a_task_does_not_deadlock(
    life: Life, pools: list[WorkerPool[Any]]
) -> None:
    """A task may shut its own pool down (with wait=True) without joining itself."""
    pool = WorkerPool(life.lifecycle(), 2)
    pools.append(pool)
    assert pool.submit(lambda r: pool.shutdown(wait=True)).result(WAIT) is None
    assert pool.closed


@pytest.mark.timeout(90)
def test_two_tasks_shutting_down_their_own_pool_do_not_deadlock() -> None:
    """shutdown(wait=True) from inside tasks does not make workers wait for each other."""
    out = run_script(
        """
        import os, threading
        from respool.worker import WorkerPool

        pool = WorkerPool(object, 2)
        both = threading.Barrier(2)

        def task(r):
            both.wait(10)
            pool.shutdown(wait=True)
            return "ok"

        futures = [pool.submit(task) for _ in range(2)]
        try:
            print([f.result(timeout=10) for f in futures], flush=True)
        except TimeoutError:
            print("DEADLOCK", flush=True)
            os._exit(0)  # the exit hook would join the deadlocked workers forever
        """
    )
    assert out == "['ok', 'ok']", out


@pytest.mark.timeout(30)
def test_shutdown_nowait_then_cancel_pending_cancels_queued_and_held_tasks_promptly(
    life: Life,
) -> None:
    """A later cancel_pending shutdown cancels queued and held tasks at once."""
    life.fail_create_forever = True
    pool = WorkerPool(life.lifecycle(), 1, timeout=3600.0)
    futures = [pool.submit(use, i) for i in range(3)]
    wait_until(lambda: pool.stats().busy == 1)
    pool.shutdown(wait=False)
    with pytest.raises(respool.PoolClosed):
        pool.submit(use)
    done = threading.Event()
    stopper = threading.Thread(target=shutdown_then_set, args=(pool, done, True))
    stopper.start()
    assert done.wait(WAIT)
    stopper.join(WAIT)
    # Cancelled, or (the held one, if wait=False already gave up on it) failed with PoolClosed.
    assert all(f.cancelled() or isinstance(f.exception(0), respool.PoolClosed) for f in futures)
    stats = pool.stats()
    assert stats.cancelled + stats.failed == 3
    assert (stats.workers, stats.busy, stats.queued) == (0, 0, 0)
    assert_accounts(stats)


def test_exactly_once_when_shutdown_races_with_submitters(life: Life) -> None:
    """Submitters racing a cancelling shutdown: every future handed out completes once."""
    pool = WorkerPool(life.lifecycle(), 3, max_pending=20)
    callbacks: dict[int, int] = {}
    lock = threading.Lock()
    handed_out: list[concurrent.futures.Future[object]] = []
    refused = itertools.count()
    start = threading.Barrier(7)

    def count(future: concurrent.futures.Future[object]) -> None:
        with lock:
            callbacks[id(future)] = callbacks.get(id(future), 0) + 1

    def submitter() -> None:
        start.wait(WAIT)
        while True:
            try:
                future = pool.submit(use, 1)
            except respool.PoolClosed:
                next(refused)
                return
            future.add_done_callback(count)
            with lock:
                handed_out.append(future)

    threads = [threading.Thread(target=submitter) for _ in range(6)]
    for thread in threads:
        thread.start()
    start.wait(WAIT)
    wait_until(lambda: len(handed_out) >= 200)
    pool.shutdown(wait=True, cancel_pending=True)
    for thread in threads:
        thread.join(WAIT)
    assert next(refused) == 6
    assert all(f.done() for f in handed_out)
    assert all(callbacks[id(f)] == 1 for f in handed_out)
    assert sum(f.cancelled() for f in handed_out) + sum(
        not f.cancelled() and f.result() == 1 for f in handed_out
    ) == len(handed_out)
    stats = pool.stats()
    assert stats.submitted == len(handed_out)
    assert stats.completed + stats.cancelled == stats.submitted
    assert_accounts(stats)
    assert life.errors == []


@pytest.mark.timeout(60)
def test_user_cancels_and_shutdown_race_counts_each_task_once(life: Life) -> None:
    """Caller cancels racing workers and a cancelling shutdown: each task counted once."""
    pool = WorkerPool(life.lifecycle(), 3, max_pending=50)
    lock = threading.Lock()
    calls: dict[int, int] = {}
    futures: list[concurrent.futures.Future[Any]] = []
    user_cancelled = 0

    def count(f: concurrent.futures.Future[Any]) -> None:
        with lock:
            calls[id(f)] = calls.get(id(f), 0) + 1

    for i in range(2000):
        try:
            f = pool.submit(use, i)
        except respool.PoolClosed:  # the shutdown thread got there
            break
        f.add_done_callback(count)
        futures.append(f)
        if i % 3 == 0 and f.cancel():
            user_cancelled += 1
        if i == 1500:
            threading.Thread(
                target=pool.shutdown, kwargs={"wait": False, "cancel_pending": True}
            ).start()
    pool.shutdown(wait=True)
    assert all(f.done() for f in futures)
    assert all(calls[id(f)] == 1 for f in futures)
    stats = pool.stats()
    assert stats.submitted == len(futures)
    assert stats.cancelled == sum(f.cancelled() for f in futures) >= user_cancelled
    assert stats.completed == sum(not f.cancelled() for f in futures)
    assert_accounts(stats)
    assert life.errors == []


def test_unreferenced_pool_stops_its_workers(life: Life) -> None:
    """A forgotten pool is collected; queued work runs, each resource is destroyed."""
    pool = WorkerPool(life.lifecycle(), 2)
    future = pool.submit(use, 5)
    threads = [w.thread for w in pool._shared.workers]
    ref = weakref.ref(pool)
    del pool
    gc.collect()
    assert ref() is None
    for thread in threads:
        assert thread is not None
        thread.join(WAIT)
        assert not thread.is_alive()
    assert future.result(0) == 5
    assert len(life.destroyed) == 2 and life.errors == []


@pytest.mark.timeout(90)
def test_exit_hook_does_not_strand_a_blocked_submitter() -> None:
    """At interpreter exit a submitter waiting for room is refused, never left behind the stops."""
    out = run_script(
        """
        import atexit, threading, time
        handed, refused = [], []

        def report():  # registered before respool's hook, so it runs after it
            late.join(5)
            if refused:
                print("REFUSED")
            elif not handed:
                print("STILL BLOCKED")
            else:
                try:
                    print("RESULT", handed[0].result(timeout=3))
                except TimeoutError:
                    print("STRANDED")

        atexit.register(report)
        from respool.errors import PoolClosed
        from respool.worker import WorkerPool

        pool = WorkerPool(object, 1, max_pending=2)
        shared = pool._shared
        started = threading.Event()

        def blocker(r):
            started.set()
            shared.stopping.wait(10)  # set by the exit hook

        pool.submit(blocker)
        started.wait(10)
        queued = [pool.submit(lambda r: None) for _ in range(2)]

        def submitter():
            try:
                handed.append(pool.submit(lambda r: "late"))
            except PoolClosed:
                refused.append(True)

        late = threading.Thread(target=submitter, daemon=True)
        late.start()
        while shared.admission.waiting != 1:
            time.sleep(0.001)
        """
    )
    assert out in ("REFUSED", "RESULT late"), out


# -- map ---------------------------------------------------------------------------------------


def test_map_is_lazy_over_an_infinite_iterator(life: Life, pools: list[WorkerPool[Any]]) -> None:
    """map over itertools.count(): results in order, input pulled only a window ahead."""
    pool = WorkerPool(life.lifecycle(), 2, max_pending=4)
    pools.append(pool)
    source = Source(itertools.count())
    results = pool.map(use, source)
    assert source.pulled == 0  # nothing happens until iteration starts
    assert list(itertools.islice(results, 50)) == list(range(50))
    assert source.pulled <= 50 + 4
    results.close()  # type: ignore[attr-defined]


def test_map_never_started_submits_nothing_and_pulls_nothing(
    life: Life, pools: list[WorkerPool[Any]]
) -> None:
    """A map never iterated submits nothing and pulls no input."""
    pool = WorkerPool(life.lifecycle(), 1)
    pools.append(pool)
    source = Source(itertools.count())
    results = pool.map(use, source)
    del results
    gc.collect()
    assert source.pulled == 0 and pool.stats().submitted == 0


def test_map_never_has_more_than_the_window_in_flight(
    life: Life, pools: list[WorkerPool[Any]]
) -> None:
    """In flight (pulled, not yet yielded) never exceeds max_pending, or 2*workers."""
    for max_pending, window in [(3, 3), (None, 4)]:
        pool = WorkerPool(life.lifecycle(), 2, max_pending=max_pending)
        pools.append(pool)
        source = Source(iter(range(200)))
        yielded = 0
        peak = 0
        for value in pool.map(use, source):
            peak = max(peak, source.pulled - yielded)
            assert value == yielded
            yielded += 1
        assert peak == window
        assert yielded == 200


def test_map_keeps_input_order_whatever_the_finishing_order(
    life: Life, pools: list[WorkerPool[Any]]
) -> None:
    """Later items may finish first; map still yields in input order."""
    pool = WorkerPool(life.lifecycle(), 4)
    pools.append(pool)
    gates = [threading.Event() for _ in range(4)]
    finished: list[int] = []

    def task(res: Owned, i: int) -> int:
        if i < 3:
            assert gates[i].wait(WAIT)  # item i finishes only after item i + 1
        finished.append(i)
        if i > 0:
            gates[i - 1].set()
        return i

    assert list(pool.map(task, range(4))) == [0, 1, 2, 3]
    assert finished == [3, 2, 1, 0]


def test_map_with_several_iterables_stops_at_the_shortest(
    life: Life, pools: list[WorkerPool[Any]]
) -> None:
    """Like the builtin map: items taken in step; the shortest iterable ends it."""
    pool = WorkerPool(life.lifecycle(), 2)
    pools.append(pool)
    out = list(pool.map(lambda r, a, b: a + b, [1, 2, 3], itertools.count(10)))
    assert out == [11, 13, 15]


def test_breaking_out_of_map_cancels_the_rest_and_pulls_nothing_more(
    life: Life, pools: list[WorkerPool[Any]], gate: threading.Event
) -> None:
    """Closing the iterator early cancels tasks not started and stops pulling input."""
    pool = WorkerPool(life.lifecycle(), 1, max_pending=5)
    pools.append(pool)
    source = Source(itertools.count())
    ran: list[int] = []

    def task(res: Owned, i: int) -> int:
        if i == 1:
            assert gate.wait(WAIT)
        ran.append(i)
        return i

    results = pool.map(task, source)
    assert next(results) == 0
    pulled = source.pulled
    results.close()  # type: ignore[attr-defined]
    gate.set()
    pool.shutdown(wait=True)
    assert source.pulled == pulled
    assert ran == [0, 1]  # 1 was already running; the rest were cancelled
    assert pool.stats().cancelled == pulled - 2


@pytest.mark.timeout(30)
def test_map_closed_from_another_thread_cancels_its_window(
    life: Life, pools: list[WorkerPool[Any]], gate: threading.Event
) -> None:
    """Closing a map from another thread cancels what it had in flight."""
    pool = WorkerPool(life.lifecycle(), 1, max_pending=4)
    pools.append(pool)
    source = Source(itertools.count())
    ran: list[int] = []

    def task(res: Owned, i: int) -> int:
        if i == 1:
            assert gate.wait(WAIT)
        ran.append(i)
        return i

    results = pool.map(task, source)
    assert next(results) == 0
    pulled = source.pulled
    closer = threading.Thread(target=results.close)  # type: ignore[attr-defined]
    closer.start()
    closer.join(WAIT)
    gate.set()
    pool.shutdown(wait=True)
    assert source.pulled == pulled and ran == [0, 1]
    assert_accounts(pool.stats())


def test_map_error_propagates_and_cancels_the_rest(
    life: Life, pools: list[WorkerPool[Any]]
) -> None:
    """An item's exception is raised from the iterator at that item's turn."""
    pool = WorkerPool(life.lifecycle(), 1, max_pending=4)
    pools.append(pool)

    def task(res: Owned, i: int) -> int:
        if i == 2:
            raise Boom("item 2")
        return i

    got: list[int] = []
    with pytest.raises(Boom, match="item 2"):
        for value in pool.map(task, itertools.count()):
            got.append(value)
    assert got == [0, 1]


def test_map_timeout_bounds_the_whole_iteration(
    life: Life, pools: list[WorkerPool[Any]], gate: threading.Event
) -> None:
    """map(timeout=) is a deadline for the iteration: PoolTimeout when it passes."""
    pool = WorkerPool(life.lifecycle(), 1)
    pools.append(pool)
    with pytest.raises(respool.PoolTimeout):
        list(pool.map(lambda r, _: blocked(None, gate)(r), [1, 2], timeout=0.05))


@pytest.mark.timeout(30)
def test_map_timeout_cancels_the_item_it_was_waiting_for(
    life: Life, pools: list[WorkerPool[Any]], gate: threading.Event
) -> None:
    """A map that times out cancels the item it was waiting on too, as Executor.map does."""
    pool = WorkerPool(life.lifecycle(), 1)
    pools.append(pool)
    started = threading.Event()
    blocker = pool.submit(blocked(started, gate))
    assert started.wait(WAIT)
    ran: list[int] = []
    results = pool.map(lambda r, i: ran.append(i), [1, 2], timeout=0.05)
    with pytest.raises(respool.PoolTimeout):
        next(results)
    gate.set()
    assert blocker.result(WAIT) == "unblocked"
    pool.shutdown(wait=True)
    assert ran == []  # neither item had started when map gave up: both must be cancelled
    assert pool.stats().cancelled == 2


def test_map_waits_for_room_instead_of_raising_pool_full(
    life: Life, pools: list[WorkerPool[Any]], gate: threading.Event
) -> None:
    """With on_full="reject", submit may raise PoolFull, but map waits for its window."""
    pool = WorkerPool(life.lifecycle(), 1, max_pending=1, on_full="reject")
    pools.append(pool)
    started = threading.Event()
    first = pool.submit(blocked(started, gate))
    assert started.wait(WAIT)
    other = pool.submit(use, "other")  # the queue is now full
    results = pool.map(use, range(5))

    def open_once_map_waits() -> None:
        wait_until(lambda: waiting_submitters(pool) == 1)
        gate.set()

    opener = threading.Thread(target=open_once_map_waits)
    opener.start()
    assert list(results) == list(range(5))
    assert first.result(WAIT) == "unblocked" and other.result(WAIT) == "other"
    assert pool.stats().rejected == 0
    opener.join(WAIT)


# -- fork --------------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
def test_pool_in_a_forked_child_refuses_work_clearly() -> None:
    """In a forked child submit raises PoolClosed saying why; the parent carries on."""
    life = Life()
    pool = WorkerPool(life.lifecycle(), 2)
    assert pool.submit(lambda r: r.n).result(WAIT) in (0, 1)

    def child() -> int:
        try:
            pool.submit(lambda r: r.n)
        except respool.PoolClosed as exc:
            if "fork" not in str(exc):
                return 2  # refused without saying why
        else:
            return 1  # accepted work it has no worker for
        pool.shutdown(wait=True)  # harmless: nothing of the parent's is destroyed
        return 3 if life.destroyed else 0

    assert fork_and_wait(child) == 0
    assert pool.submit(lambda r: 7).result(WAIT) == 7
    pool.shutdown()
    assert len(life.destroyed) == 2


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
def test_stats_invariants_hold_in_a_forked_child(life: Life) -> None:
    """In a forked child the pool reports no workers, no resources, nothing queued."""
    pool = WorkerPool(life.lifecycle(), 2)
    try:
        wait_until(lambda: pool.stats().created == 2)

        def child() -> int:
            stats = pool.stats()
            ok = stats.resources <= stats.workers and stats.queued == stats.busy == 0
            return 0 if ok else 1

        assert fork_and_wait(child) == 0
    finally:
        pool.shutdown()


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "names"),
    [
        ({"workers": 0}, ValueError, "workers"),
        ({"workers": -2}, ValueError, "workers"),
        ({"workers": "2"}, TypeError, "workers"),
        ({"workers": 2.0}, TypeError, "workers"),
        ({"workers": True}, TypeError, "workers"),
        ({"workers": 1, "on_full": "drop"}, ValueError, "on_full"),
        ({"workers": 1, "max_pending": -1}, ValueError, "max_pending"),
        ({"workers": 1, "max_pending": 0}, ValueError, "max_pending"),
        ({"workers": 1, "max_pending": 1.5}, TypeError, "max_pending"),
        ({"workers": 1, "timeout": -1}, ValueError, "timeout"),
        ({"workers": 1, "timeout": "soon"}, TypeError, "timeout"),
        ({"workers": 1, "check_after": -0.5}, ValueError, "check_after"),
        ({"workers": 1, "check_after": None}, TypeError, "check_after"),
        ({"workers": 1, "max_tasks_per_resource": 0}, ValueError, "max_tasks_per_resource"),
        ({"workers": 1, "max_uses": 0}, ValueError, "max_uses"),
        ({"workers": 1, "max_uses": 2.5}, TypeError, "max_uses"),
        ({"workers": 1, "max_lifetime": 0}, ValueError, "max_lifetime"),
        ({"workers": 1, "max_lifetime": -1.0}, ValueError, "max_lifetime"),
        ({"workers": 1, "max_lifetime": float("nan")}, ValueError, "max_lifetime"),
        ({"workers": 1, "max_lifetime": "1h"}, TypeError, "max_lifetime"),
        ({"workers": 1, "keepalive": 0.0}, ValueError, "keepalive"),
        ({"workers": 1, "keepalive": True}, TypeError, "keepalive"),
        ({"workers": 1, "name": 7}, TypeError, "name"),
        ({"workers": 1, "reset": "no"}, TypeError, "reset"),
    ],
)
def test_bad_arguments_name_the_parameter(
    options: dict[str, Any], error: type[Exception], names: str
) -> None:
    """Bad configuration fails at construction, naming the parameter and the range."""
    with pytest.raises(error, match=names):
        WorkerPool(object, **options)


def test_bad_create_and_fn_are_type_errors(pools: list[WorkerPool[Any]]) -> None:
    """A non-callable create, submitted fn or mapped fn is a TypeError naming it."""
    with pytest.raises(TypeError, match="create"):
        WorkerPool("nope", 1)  # type: ignore[arg-type]
    pool = WorkerPool(object, 1)
    pools.append(pool)
    with pytest.raises(TypeError, match="fn"):
        pool.submit("nope")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="fn"):
        pool.map("nope", [1])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        pool.map(use, [1], timeout=-1)
    assert pool.stats().submitted == 0


def test_lifecycle_and_keywords_combine(life: Life, pools: list[WorkerPool[Any]]) -> None:
    """A Lifecycle may be completed with keywords; naming a callback twice is an error."""
    with pytest.raises(TypeError, match="reset"):
        WorkerPool(life.lifecycle(), 1, reset=life.reset)
    pool = WorkerPool(respool.Lifecycle(life.create), 1, destroy=life.destroy, name="combo")
    pools.append(pool)
    assert pool.submit(use, 1).result(WAIT) == 1
    pool.shutdown()
    assert life.destroyed == life.made
    assert pool.stats().name == "combo"


def test_stats_snapshot_is_frozen_and_exports_as_dict(
    life: Life, pools: list[WorkerPool[Any]]
) -> None:
    """WorkerStats is immutable; as_dict carries every field."""
    pool = WorkerPool(life.lifecycle(), 2, name="stats")
    pools.append(pool)
    pool.submit(use).result(WAIT)
    stats = pool.stats()
    with pytest.raises(AttributeError):
        stats.completed = 5  # type: ignore[misc]
    exported = stats.as_dict()
    assert exported["name"] == "stats" and exported["completed"] == 1
    assert exported["workers"] == 2
    assert_accounts(stats)


# -- the hot loop: pools with nothing to do around a task ------------------------------------------


def plain(life: Life) -> respool.Lifecycle[Owned]:
    """A lifecycle with no reset and no check: its workers run tasks in the hot loop."""
    return life.lifecycle(check=False, reset=False)


def test_hot_loop_runs_tasks_counts_them_and_keeps_its_resource(
    life: Life, pools: list[WorkerPool[Any]]
) -> None:
    """Without reset/check, tasks run back to back on one resource; stats count each at once."""
    pool = WorkerPool(plain(life), 1)
    pools.append(pool)
    for k in range(50):
        assert pool.submit(use, k).result(WAIT) == k
        stats = pool.stats()
        assert (stats.completed, stats.busy, stats.queued) == (k + 1, 0, 0)
    with pytest.raises(Boom):
        pool.submit(lambda res: (_ for _ in ()).throw(Boom())).result(WAIT)
    assert pool.submit(ident).result(WAIT)[0] == life.made[0].n  # a plain error keeps it
    stats = pool.stats()
    assert (stats.completed, stats.failed, stats.created, stats.replaced) == (51, 1, 1, 0)


def test_hot_loop_abort_discards_the_resource(life: Life, pools: list[WorkerPool[Any]]) -> None:
    """Abort means discard in the hot loop too: the next task gets a new resource."""
    pool = WorkerPool(plain(life), 1)
    pools.append(pool)

    def abort(res: Owned) -> None:
        raise Abort()

    first = pool.submit(ident).result(WAIT)
    with pytest.raises(Abort):
        pool.submit(abort).result(WAIT)
    second = pool.submit(ident).result(WAIT)
    assert first[0] != second[0] and first[1] == second[1]
    assert life.made[0].destroyed
    stats = pool.stats()
    assert (stats.failed, stats.retired["abort"], stats.workers) == (1, 1, 1)


def test_hot_loop_skips_cancelled_tasks_and_keeps_the_bound(
    life: Life, pools: list[WorkerPool[Any]], gate: threading.Event
) -> None:
    """A bounded hot loop: cancelled queued tasks never run, free their slot, count once."""
    pool = WorkerPool(plain(life), 1, max_pending=2, on_full="reject")
    pools.append(pool)
    started = threading.Event()
    pool.submit(blocked(started, gate))
    assert started.wait(WAIT)
    a = pool.submit(use, "a")
    b = pool.submit(use, "b")
    assert a.cancel()
    c = pool.submit(use, "c")
    with pytest.raises(respool.PoolFull):
        pool.submit(use, "d")
    gate.set()
    assert (b.result(WAIT), c.result(WAIT)) == ("b", "c")
    stats = pool.stats()
    assert (stats.completed, stats.cancelled, stats.rejected, stats.queued) == (3, 1, 1, 0)


def test_hot_loop_hands_over_to_drain_and_resize(life: Life, pools: list[WorkerPool[Any]]) -> None:
    """Workers idle in the hot loop heed drain() and resize(); no task is lost meanwhile."""
    pool = WorkerPool(plain(life), 2)
    pools.append(pool)
    assert [pool.submit(use, k).result(WAIT) for k in range(10)] == list(range(10))
    wait_until(lambda: len(life.made) == 2, WAIT)
    pool.drain()
    wait_until(lambda: pool.stats().retired["drain"] == 2, WAIT)
    futures = [pool.submit(use, k) for k in range(100)]
    pool.resize(1)
    assert [f.result(WAIT) for f in futures] == list(range(100))
    wait_until(lambda: pool.stats().workers == 1, WAIT)
    assert pool.submit(use, "after").result(WAIT) == "after"
    stats = pool.stats()
    assert stats.completed == 111 and stats.resources == 1


def test_hot_loop_task_draining_its_own_pool_gets_a_new_resource_next(
    life: Life, pools: list[WorkerPool[Any]]
) -> None:
    """drain() from inside a hot-loop task: that task finishes, then its resource goes."""
    pool = WorkerPool(plain(life), 1)
    pools.append(pool)

    def drain_own(res: Owned) -> int:
        pool.drain()
        return res.n

    first = pool.submit(drain_own).result(WAIT)
    wait_until(lambda: pool.stats().retired["drain"] == 1, WAIT)
    assert pool.submit(ident).result(WAIT)[0] != first


def test_map_items_do_not_carry_a_ready_sleeper(life: Life, pools: list[WorkerPool[Any]]) -> None:
    """map's tasks are made without submit's ready sleeper; results still arrive in order."""
    pool = WorkerPool(plain(life), 2, max_pending=4)
    pools.append(pool)
    made: list[WorkItem[Any]] = []
    real = WorkItem.__init__

    def spy(self: WorkItem[Any], *args: Any) -> None:
        real(self, *args)
        made.append(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(WorkItem, "__init__", spy)
        assert list(pool.map(use, range(20))) == list(range(20))
        pool.submit(use, 1).result(WAIT)
    assert len(made) == 21
    assert all("_spare" not in item.__dict__ for item in made[:20])
    assert not made[20]._sleepers  # submit's: its sleeper was used, then dropped
