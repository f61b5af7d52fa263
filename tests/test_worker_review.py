"""Review of WorkerPool (issue 3): tests for bugs a review found, and for gaps.

The first group pinned down bugs the review found (each now fixed; the test docstring names
what was wrong); the second covers behaviour the other tests did not pin down.
Scenarios that would leave deadlocked threads behind (and so hang the interpreter's exit
hook) run in a subprocess.
"""

from __future__ import annotations

import concurrent.futures
import gc
import itertools
import os
import signal
import subprocess
import sys
import textwrap
import threading
import weakref
from time import monotonic
from typing import Any

import pytest

import respool
from respool.worker import WorkerPool
from tests import test_worker
from tests.conftest import Abort, Boom, wait_until
from tests.test_worker import WAIT, Life, Owned, Source, assert_accounts, blocked, use

# The recording lifecycle, the checked pool list and the gate of test_worker, as fixtures here.
life = test_worker.life
pools = test_worker.pools
gate = test_worker.gate


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


# == bugs found in review (fixed) ==============================================================


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
        while len(shared.waiters) != 1:
            time.sleep(0.001)
        """
    )
    assert out in ("REFUSED", "RESULT late"), out


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


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
def test_stats_invariants_hold_in_a_forked_child(life: Life) -> None:
    """In a forked child the pool reports no workers, no resources, nothing queued."""
    from tests.test_fork import fork_and_report

    pool = WorkerPool(life.lifecycle(), 2)
    try:
        wait_until(lambda: pool.stats().created == 2)

        def child() -> dict[str, Any]:
            stats = pool.stats()
            return {"workers": stats.workers, "resources": stats.resources}

        report = fork_and_report(child)
        assert report["resources"] <= report["workers"], report
    finally:
        pool.shutdown()


# == gaps: behaviour the other tests did not pin down ============================================


@pytest.mark.timeout(30)
@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs signal.pthread_kill")
def test_interrupted_blocked_submit_leaves_the_line_and_leaks_no_task(
    life: Life, pools: list[WorkerPool[Any]], gate: threading.Event
) -> None:
    """A KeyboardInterrupt-like BaseException in a submit blocked for room propagates, the
    waiter leaves the line, its task never runs, and later submits are unaffected."""
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
        wait_until(lambda: len(pool._shared.waiters) == 1)
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
    assert len(pool._shared.waiters) == 0
    gate.set()
    assert queued.result(WAIT) == 1
    assert pool.submit(use, 3).result(WAIT) == 3
    pool.shutdown(wait=True)
    assert ran == []
    stats = pool.stats()
    assert (stats.submitted, stats.completed, stats.timeouts) == (3, 3, 0)
    assert_accounts(stats)


@pytest.mark.timeout(30)
def test_shutdown_nowait_then_cancel_pending_cancels_queued_and_held_tasks_promptly(
    life: Life,
) -> None:
    """shutdown(wait=False) then shutdown(cancel_pending=True): the second call still cancels
    what is queued, and the task a worker holds while create keeps failing, without waiting
    for that task's (long) timeout."""
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


@pytest.mark.timeout(30)
def test_timeout_zero_fails_tasks_at_once_while_create_fails(
    life: Life, pools: list[WorkerPool[Any]]
) -> None:
    """timeout=0 means "never wait": with create failing, a task fails right away with a
    PoolTimeout chained to the create error, and the worker survives."""
    life.fail_create_forever = True
    pool = WorkerPool(life.lifecycle(), 1, timeout=0)
    pools.append(pool)
    error = pool.submit(use).exception(WAIT)
    assert isinstance(error, respool.PoolTimeout) and isinstance(error.__cause__, Boom)
    assert pool.stats().workers == 1


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


@pytest.mark.timeout(30)
def test_check_and_destroy_raising_base_exceptions_are_contained(
    life: Life, caplog: pytest.LogCaptureFixture
) -> None:
    """check raising a BaseException is a failed check; destroy raising one at shutdown is
    counted and logged; neither escapes nor loses the worker."""
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


@pytest.mark.timeout(30)
def test_task_submitting_to_its_own_full_pool_gets_an_error_not_a_deadlock(
    life: Life, pools: list[WorkerPool[Any]]
) -> None:
    """With a bound and a policy that does not wait forever, a task that resubmits into its
    own full pool gets PoolFull / PoolTimeout; the worker carries on. (With on_full="block"
    and timeout=None and every worker doing this, it deadlocks until shutdown: by design.)"""
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


@pytest.mark.timeout(30)
def test_unreferenced_pool_fails_queued_work_when_create_keeps_failing(life: Life) -> None:
    """A forgotten pool whose create fails forever (timeout=None) still ends its workers and
    settles its queued futures (PoolClosed chained to the create error)."""
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


@pytest.mark.timeout(60)
def test_user_cancels_and_shutdown_race_counts_each_task_once(life: Life) -> None:
    """Callers cancelling queued futures while workers run and shutdown(cancel_pending=True)
    lands: every future completes exactly once and the stats account for each task once."""
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
