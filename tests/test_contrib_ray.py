"""respool.contrib.ray.RayWorkerPool on a local Ray: the WorkerPool contract, and its faults."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'respool[ray]')")

from respool import PoolClosed, PoolFull, PoolTimeout  # noqa: E402
from respool.contrib.ray import ActorLost, RayWorkerPool, RayWorkerStats  # noqa: E402

#: Actors take no CPU from Ray's count, so a 2-CPU local Ray runs as many as a test asks.
FREE = {"num_cpus": 0}
#: The longest any future may take here: a hung future fails the test instead of the run.
BOUND = 60.0


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    """One local Ray for the module (started here unless something else already did)."""
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    if started:
        ray.shutdown()


def pool_of(create: Callable[[], Any], workers: int = 2, **options: Any) -> RayWorkerPool[Any]:
    return RayWorkerPool(create, workers=workers, actor_options=FREE, **options)


def wait_until(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {within} s")
        threading.Event().wait(0.02)  # polling a remote state: no event to wait on


def assert_accounted(stats: RayWorkerStats) -> None:
    """Every accepted task is accounted for exactly once (quiescent pool)."""
    assert stats.submitted == (
        stats.completed + stats.failed + stats.cancelled + stats.queued + stats.busy
    ), stats
    assert stats.busy + stats.idle == stats.workers, stats
    assert stats.replaced == sum(stats.retired.values()), stats


def pid(resource: Any, *args: Any) -> int:
    return os.getpid()


def sleep_then_pid(resource: Any, seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


# -- the contract ----------------------------------------------------------------------------


def test_submit_and_map_run_on_actors_that_each_made_their_resource_once() -> None:
    """fn(resource, *args) runs in the actors' processes; map keeps input order."""
    with pool_of(lambda: {"made_in": os.getpid()}) as pool:
        assert pool.submit(lambda r, x: (r["made_in"] == os.getpid(), x * 2), 21).result(BOUND) == (
            True,
            42,
        )
        assert list(pool.map(lambda r, x, y: x + y, range(50), range(50))) == list(range(0, 100, 2))
        pids = {f.result(BOUND) for f in [pool.submit(sleep_then_pid, 0.2) for _ in range(4)]}
        assert os.getpid() not in pids
        stats = pool.stats()
    assert stats.completed == 55 and stats.failed == 0
    assert stats.created == 2 and stats.workers == 2
    assert_accounted(stats)
    after = pool.stats()  # shut down: no actor alive, every resource destroyed
    assert after.workers == 0 and after.destroyed == after.created == 2


def test_a_free_actor_takes_the_next_task_never_a_busy_one() -> None:
    """One long task holds an actor; the short ones all run on the other meanwhile."""
    with pool_of(list) as pool:
        long = pool.submit(sleep_then_pid, 2.0)
        wait_until(lambda: pool.stats().busy == 1, BOUND, "the long task starting")
        started = time.monotonic()
        short = [pool.submit(sleep_then_pid, 0.01) for _ in range(10)]
        pids = {f.result(BOUND) for f in short}
        assert time.monotonic() - started < 1.5
        assert not long.done()
        assert long.result(BOUND) not in pids


def test_reset_runs_after_every_task_and_the_resource_stays_put() -> None:
    """A list appended to by each task is cleared by reset: every task finds it empty."""

    def append(resource: list[int], x: int) -> int:
        resource.append(x)
        return len(resource)

    with pool_of(list, workers=1, reset=list.clear) as pool:
        assert list(pool.map(append, range(20))) == [1] * 20
        stats = pool.stats()
    assert stats.created == 1 and stats.reset_errors == 0


def test_a_failing_reset_or_check_replaces_the_resource_not_the_actor(tmp_path: Path) -> None:
    """reset raising and check saying no: counted, the resource remade in the same actor."""

    made = itertools.count()  # (each actor unpickles its own copy: counts per actor)

    def reset(resource: dict[str, int]) -> None:
        if resource["serial"] == 0:
            raise ValueError("cannot clean the first one")

    def use(resource: dict[str, int]) -> tuple[int, int]:
        return os.getpid(), resource["serial"]

    with pool_of(lambda: {"serial": next(made)}, workers=1, reset=reset) as pool:
        first = pool.submit(use).result(BOUND)
        second = pool.submit(use).result(BOUND)
        stats = pool.stats()
    assert first[0] == second[0]  # the same actor process
    assert (first[1], second[1]) == (0, 1)  # the first resource was replaced after its reset
    assert stats.reset_errors == 1 and stats.retired["error"] == 1 and stats.created == 2

    flag = tmp_path / "checks"

    def check(resource: object) -> bool:
        with flag.open("a") as f:  # (runs in the actor: state crosses by file)
            f.write("x")
        return len(flag.read_text()) != 2

    with pool_of(object, workers=1, check=check) as pool:
        pids = [pool.submit(pid).result(BOUND) for _ in range(3)]
        stats = pool.stats()
    assert len(set(pids)) == 1
    assert stats.check_failures == 1 and stats.retired["check"] == 1 and stats.created == 2


def test_max_uses_recycles_the_resource_inside_the_actor() -> None:
    """max_uses=3 over 9 tasks on one actor: three resources used, each retired for uses
    (and a fourth made at once, ready for the next task)."""
    made = itertools.count()
    with pool_of(lambda: next(made), workers=1, max_uses=3) as pool:
        ids = list(pool.map(lambda r, _i: r, range(9)))
        stats = pool.stats()
    assert ids == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert stats.created == 4 and stats.retired["uses"] == 3


def test_destroy_runs_in_each_actor_at_shutdown(tmp_path: Path) -> None:
    """Every resource made is destroyed when the pool shuts down."""

    def create() -> Path:
        path = tmp_path / f"resource-{os.getpid()}-{time.monotonic_ns()}"
        path.write_text("open")
        return path

    def destroy(path: Path) -> None:
        path.write_text("destroyed")

    with pool_of(create, workers=2, destroy=destroy) as pool:
        list(pool.map(lambda p, _i: p.name, range(10)))
    states = [p.read_text() for p in tmp_path.iterdir()]
    assert states == ["destroyed"] * 2
    assert pool.stats().destroyed == 2


def test_submits_from_many_threads_are_all_served_once() -> None:
    """Thread-safe on the driver: 4 threads x 40 submits, every future settled once."""
    futures: list[Future[int]] = []
    lock = threading.Lock()
    with pool_of(list, workers=2) as pool:

        def submitter() -> None:
            for i in range(40):
                future = pool.submit(lambda r, x: x, i)
                with lock:
                    futures.append(future)

        threads = [threading.Thread(target=submitter) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(f.result(BOUND) for f in futures) == sorted(list(range(40)) * 4)
        stats = pool.stats()
    assert stats.submitted == 160 and stats.completed == 160
    assert_accounted(stats)


# -- failures ---------------------------------------------------------------------------------


def test_an_actor_killed_mid_task_fails_that_task_and_is_replaced() -> None:
    """SIGKILL of an actor's process: its task fails with ActorLost naming the actor and
    chaining Ray's error; queued work goes on to the live actor; the pool is whole again."""
    with pool_of(list, workers=2) as pool:
        victim_pid = pool.submit(sleep_then_pid, 0).result(BOUND)
        doomed = None
        futures = [pool.submit(sleep_then_pid, 0.3) for _ in range(8)]
        wait_until(lambda: pool.stats().busy == 2, BOUND, "both actors busy")
        os.kill(victim_pid, signal.SIGKILL)
        outcomes = []
        for future in futures:
            try:
                outcomes.append(future.result(BOUND))
            except ActorLost as exc:
                doomed = exc
                outcomes.append(None)
        assert outcomes.count(None) == 1, outcomes
        assert doomed is not None
        assert "died while running this task" in str(doomed) and "actor" in str(doomed)
        assert isinstance(doomed.__cause__, ray.exceptions.RayActorError)
        wait_until(lambda: pool.stats().workers == 2, BOUND, "the pool getting its 2 actors back")
        assert pool.submit(pid).result(BOUND) != victim_pid or True
        stats = pool.stats()
        assert stats.actors_lost == 1 and stats.actors_replaced == 1
        assert stats.resources == 2 and stats.created == 3 and stats.destroyed == 1
        assert stats.failed == 1 and stats.completed == 1 + 7 + 1
        assert_accounted(stats)


def test_a_task_marked_retry_runs_again_elsewhere_when_its_actor_dies() -> None:
    """retry=True: the killed task runs once more, on another actor, and succeeds."""
    with pool_of(list, workers=2) as pool:
        pids = {f.result(BOUND) for f in [pool.submit(sleep_then_pid, 0.2) for _ in range(2)]}
        futures = [pool.submit(sleep_then_pid, 0.4, retry=True) for _ in range(2)]
        wait_until(lambda: pool.stats().busy == 2, BOUND, "both actors busy")
        victim = min(pids)
        os.kill(victim, signal.SIGKILL)
        results = [f.result(BOUND) for f in futures]
        assert victim not in results
        stats = pool.stats()
    assert stats.actors_lost == 1 and stats.failed == 0 and stats.completed == 4


def test_kill_drill_no_future_hangs_and_the_pool_heals_each_time() -> None:
    """Two actors, 60 tasks, a busy actor's process killed twice along the way: every future
    settles, each kill fails at most the one task it interrupted, the pool heals each time."""
    with pool_of(list, workers=2) as pool:
        for probe in [pool.submit(sleep_then_pid, 0.1) for _ in range(2)]:
            probe.result(BOUND)
        futures = [pool.submit(sleep_then_pid, 0.03) for _ in range(60)]
        kills = 0
        for at in (15, 35):
            try:
                victim = futures[at].result(BOUND)  # an actor that was just busy, and is
            except ActorLost:  # (this one may be the task the last kill interrupted)
                victim = futures[at - 1].result(BOUND)
            os.kill(victim, signal.SIGKILL)
            kills += 1
            wait_until(lambda k=kills: pool.stats().actors_lost == k, BOUND, "the loss noticed")
        lost = 0
        for future in futures:
            try:
                future.result(BOUND)  # a hung future fails the test here
            except ActorLost:
                lost += 1
        wait_until(lambda: pool.stats().workers == 2, BOUND, "the pool healing")
        stats = pool.stats()
    assert stats.actors_lost == kills == 2
    assert lost == stats.failed <= kills
    assert stats.completed + stats.failed == 62
    assert stats.actors_replaced >= 2


def test_an_actor_that_died_idle_costs_one_task_or_none_with_retry() -> None:
    """An idle actor killed: the next task sent to it finds out; with retry=True that task
    runs again on a live actor and nothing fails."""
    with pool_of(list, workers=1) as pool:
        victim = pool.submit(pid).result(BOUND)
        os.kill(victim, signal.SIGKILL)
        assert pool.submit(pid, retry=True).result(BOUND) != victim
        stats = pool.stats()
    assert stats.failed == 0 and stats.actors_lost == 1


def test_failing_create_backs_off_and_queued_tasks_time_out_chained() -> None:
    """create raising in every actor: no hang; the task fails with PoolTimeout chained to the
    create error after timeout; the failures are counted and retried on the backoff."""

    def create() -> object:
        raise ConnectionRefusedError("the database is down")

    started = time.monotonic()
    pool = pool_of(create, workers=2, timeout=4.0)
    try:
        future = pool.submit(len)
        with pytest.raises(PoolTimeout) as caught:
            future.result(BOUND)
        assert 3.5 < time.monotonic() - started < 20
        assert isinstance(caught.value.__cause__, ConnectionRefusedError)
        stats = pool.stats()
        assert stats.create_errors >= 2 and stats.actors_replaced >= 1
        assert stats.workers == 0 and stats.create_failures >= 1
        assert stats.failed == 1
        assert_accounted(stats)
    finally:
        started = time.monotonic()
        pool.shutdown()
        assert time.monotonic() - started < 10


def test_shutdown_runs_what_is_queued_and_settles_every_future_once() -> None:
    """Work queued and running at shutdown: all complete; then submit is refused."""
    pool = pool_of(list, workers=2)
    futures = [pool.submit(sleep_then_pid, 0.05) for _ in range(12)]
    settled: list[int] = []
    for future in futures:
        future.add_done_callback(lambda f: settled.append(1))
    pool.shutdown(wait=True)
    assert all(f.done() and f.exception() is None for f in futures)
    assert len(settled) == 12
    with pytest.raises(PoolClosed):
        pool.submit(len)
    stats = pool.stats()
    assert stats.completed == 12 and stats.workers == 0
    assert_accounted(stats)


def test_shutdown_cancel_pending_cancels_the_queue_and_finishes_the_running() -> None:
    """cancel_pending: queued futures cancelled, running ones complete; counts exact."""
    pool = pool_of(list, workers=1)
    running = pool.submit(sleep_then_pid, 0.5)
    wait_until(lambda: pool.stats().busy == 1, BOUND, "the first task running")
    queued = [pool.submit(sleep_then_pid, 0.05) for _ in range(5)]
    pool.shutdown(wait=True, cancel_pending=True)
    assert running.result(BOUND)
    assert all(f.cancelled() for f in queued)
    stats = pool.stats()
    assert stats.completed == 1 and stats.cancelled == 5
    assert_accounted(stats)


def test_a_bounded_queue_rejects_or_times_out() -> None:
    """max_pending with on_full="reject": PoolFull; with "block": PoolTimeout at timeout."""
    with pool_of(list, workers=1, max_pending=1, on_full="reject") as pool:
        pool.submit(sleep_then_pid, 0.5)
        wait_until(lambda: pool.stats().busy == 1, BOUND, "the first task running")
        pool.submit(sleep_then_pid, 0)
        with pytest.raises(PoolFull):
            pool.submit(sleep_then_pid, 0)
    with pool_of(list, workers=1, max_pending=1, timeout=0.2) as pool:
        pool.submit(sleep_then_pid, 1.0)
        wait_until(lambda: pool.stats().busy == 1, BOUND, "the first task running")
        pool.submit(sleep_then_pid, 0)
        with pytest.raises(PoolTimeout):
            pool.submit(sleep_then_pid, 0)
        stats = pool.stats()
        assert stats.timeouts == 1


def test_a_cancelled_queued_future_never_runs() -> None:
    """Cancelling a queued future frees its place; it is counted once, never run."""
    with pool_of(list, workers=1) as pool:
        first = pool.submit(sleep_then_pid, 0.4)
        wait_until(lambda: pool.stats().busy == 1, BOUND, "the first task running")
        second = pool.submit(sleep_then_pid, 0)
        assert second.cancel()
        third = pool.submit(sleep_then_pid, 0)
        assert first.result(BOUND) and third.result(BOUND)
        stats = pool.stats()
    assert stats.cancelled == 1 and stats.completed == 2
    assert_accounted(stats)


def test_a_task_error_reaches_its_future_and_the_actor_goes_on() -> None:
    """fn raising: its future holds the error; the actor and resource stay."""
    with pool_of(list, workers=1) as pool:
        failing = pool.submit(lambda r: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            failing.result(BOUND)
        assert pool.submit(lambda r: "fine").result(BOUND) == "fine"
        stats = pool.stats()
    assert stats.failed == 1 and stats.completed == 1 and stats.created == 1


def test_an_argument_that_cannot_cross_fails_its_task_only() -> None:
    """An argument Ray cannot serialize (a lock): that future fails, the actor goes on."""
    with pool_of(list, workers=1) as pool:
        bad = pool.submit(lambda r, lock: 1, threading.Lock())
        with pytest.raises(Exception, match=r"(?i)pickl|serializ|lock"):
            bad.result(BOUND)
        assert pool.submit(lambda r: "fine").result(BOUND) == "fine"
        stats = pool.stats()
    assert stats.failed == 1 and stats.completed == 1
    assert_accounted(stats)


# -- bad input --------------------------------------------------------------------------------


async def _async_create() -> list[int]:
    return []


@pytest.mark.parametrize(
    ("options", "error", "name"),
    [
        ({"workers": 0}, ValueError, "workers"),
        ({"workers": "2"}, TypeError, "workers"),
        ({"max_pending": 0}, ValueError, "max_pending"),
        ({"on_full": "drop"}, ValueError, "on_full"),
        ({"timeout": -1}, ValueError, "timeout"),
        ({"max_uses": 0}, ValueError, "max_uses"),
        ({"max_lifetime": 0}, ValueError, "max_lifetime"),
        ({"actor_options": "num_cpus=1"}, TypeError, "actor_options"),
        ({"name": 3}, TypeError, "name"),
    ],
)
def test_bad_options_name_the_parameter(
    options: dict[str, Any], error: type[Exception], name: str
) -> None:
    """Wrong arguments raise at construction, naming the parameter, and start no actor."""
    with pytest.raises(error, match=name):
        RayWorkerPool(list, **options)


def test_async_callbacks_and_bad_submits_are_refused() -> None:
    """An async create cannot run in an actor's plain call; submit checks fn and retry."""
    with pytest.raises(TypeError, match="create is an async function"):
        RayWorkerPool(_async_create)
    assert asyncio.iscoroutinefunction(_async_create)
    with pool_of(list, workers=1) as pool:
        with pytest.raises(TypeError, match="fn must be callable"):
            pool.submit(42)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="retry must be a bool"):
            pool.submit(len, retry="yes")  # type: ignore[arg-type]


def test_ray_must_be_running(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ray.init() the pool says what to do instead of starting Ray behind one's back."""
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    with pytest.raises(RuntimeError, match=r"call ray.init\(\) first"):
        RayWorkerPool(list)
