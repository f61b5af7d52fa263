"""Fairness of the threaded free lists: ``fairness="bounded"`` (default) and ``"fifo"``.

The core's rules are tested move by move in ``tests/core/test_free_list_fairness.py``; here
they are checked through real threads: options, overtaking within the window and never past
it, and the figures ``stats()`` reports under contention.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import respool
from respool._threads.free_list import DEFAULT_FAIRNESS_WINDOW
from tests.conftest import Res, Tracker, wait_until

KINDS = ["fixed", "elastic"]
PATIENCE = 5.0


def build(kind: str, tracker: Tracker, capacity: int = 1, **options: Any) -> Any:
    if kind == "fixed":
        return respool.FixedPool(tracker.lifecycle(check=False), size=capacity, **options)
    return respool.ElasticPool(
        tracker.lifecycle(check=False), max_size=capacity, max_idle=capacity, **options
    )


class FakeClock:
    """A clock the test moves by hand (the pools time every decision through ``_clock``)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def long_slices() -> Iterator[None]:
    """Threads switch only when they block: a woken waiter cannot run between two steps of
    the test's own thread, so which of them takes a resource first is decided, not raced."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(5.0)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def waiting_thread(pool: Any, got: list[Res]) -> threading.Thread:
    """A caller that waits for a resource, keeps it in *got* and gives it back at once."""

    def run() -> None:
        with pool.acquire(timeout=PATIENCE) as res:
            got.append(res)

    before = pool.stats().waiting
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_until(lambda: pool.stats().waiting == before + 1)
    return thread


@pytest.mark.parametrize("kind", KINDS)
def test_bounded_is_the_default_with_a_one_millisecond_window(kind: str, tracker: Tracker) -> None:
    """Without options a pool may let newcomers overtake for 1 ms; fifo never does."""
    pool = build(kind, tracker)
    strict = build(kind, tracker, fairness="fifo")
    wide = build(kind, tracker, fairness_window=0.25)
    assert DEFAULT_FAIRNESS_WINDOW == 0.001
    assert pool._core.window == DEFAULT_FAIRNESS_WINDOW
    assert strict._core.window == 0.0
    assert wide._core.window == 0.25
    for each in (pool, strict, wide):
        each.close()


@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ({"fairness": "random"}, ValueError, "fairness must be one of 'bounded', 'fifo'"),
        ({"fairness": None}, ValueError, "fairness must be one of"),
        ({"fairness_window": 0}, ValueError, "fairness_window must be a finite number"),
        ({"fairness_window": -1.0}, ValueError, "fairness_window"),
        ({"fairness_window": float("inf")}, ValueError, "fairness_window"),
        ({"fairness_window": "1ms"}, TypeError, "fairness_window must be a number"),
        (
            {"fairness": "fifo", "fairness_window": 0.5},
            ValueError,
            "fairness_window=0.5 applies to fairness='bounded' only",
        ),
    ],
)
@pytest.mark.parametrize("kind", KINDS)
def test_bad_fairness_options_are_refused_naming_the_parameter(
    kind: str, tracker: Tracker, options: dict[str, Any], error: type[Exception], words: str
) -> None:
    """Bad fairness options raise at construction, naming the parameter; nothing is created."""
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        build(kind, tracker, **options)
    assert tracker.made == []


@pytest.mark.usefixtures("long_slices")
@pytest.mark.parametrize("kind", KINDS)
def test_a_newcomer_may_overtake_a_waiter_within_the_window(kind: str, tracker: Tracker) -> None:
    """Bounded: the thread that gives a resource back and asks again at once gets it, ahead
    of the waiter it roused (no convoy); the waiter is served at the next return."""
    pool = build(kind, tracker, fairness_window=60.0)
    lease = pool.acquire()
    got: list[Res] = []
    waiter = waiting_thread(pool, got)
    lease.release()  # rouses the waiter, which cannot run before this thread blocks
    again = pool.try_acquire()
    assert again is not None, "the newcomer was made to wait behind the roused waiter"
    stats = pool.stats()
    assert (stats.overtakes, stats.waiting) == (1, 1)
    assert 0 <= stats.overtaken_wait_max < 60.0
    again.release()
    waiter.join(PATIENCE)
    assert got and not waiter.is_alive()
    pool.close()


@pytest.mark.usefixtures("long_slices")
@pytest.mark.parametrize("kind", KINDS)
def test_fifo_never_lets_a_newcomer_overtake(kind: str, tracker: Tracker) -> None:
    """Strict: a returned resource goes to the waiter even when its thread is slow to run."""
    pool = build(kind, tracker, fairness="fifo")
    lease = pool.acquire()
    got: list[Res] = []
    waiter = waiting_thread(pool, got)
    lease.release()
    assert pool.try_acquire() is None
    waiter.join(PATIENCE)
    assert got and not waiter.is_alive()
    assert pool.stats().overtakes == 0
    pool.close()


@pytest.mark.usefixtures("long_slices")
@pytest.mark.parametrize("kind", KINDS)
def test_no_newcomer_overtakes_a_waiter_past_the_window(kind: str, tracker: Tracker) -> None:
    """Bounded: once the oldest waiter has waited the window, a return is handed to it and a
    newcomer finds nothing, even though the waiter's thread has not run yet."""
    clock = FakeClock()
    pool = build(kind, tracker, fairness_window=0.5)
    pool._clock = clock
    lease = pool.acquire()
    got: list[Res] = []
    waiter = waiting_thread(pool, got)
    clock.now += 0.5
    lease.release()
    assert pool.try_acquire() is None
    with pytest.raises(respool.PoolTimeout):
        pool.acquire(timeout=0)
    waiter.join(PATIENCE)
    assert got and not waiter.is_alive()
    assert pool.stats().overtakes == 0
    pool.close()


@pytest.mark.parametrize("fairness", ["bounded", "fifo"])
@pytest.mark.parametrize("kind", KINDS)
def test_contended_threads_stay_within_the_window_and_lose_nothing(
    kind: str, fairness: str, tracker: Tracker
) -> None:
    """Eight threads on two resources, holding across a thread switch: overtaking happens
    only in bounded mode and never past the window, and the counts stay exact."""
    window = 0.002
    options: dict[str, Any] = {"fairness": fairness, "timeout": PATIENCE}
    if fairness == "bounded":
        options["fairness_window"] = window
    pool = build(kind, tracker, capacity=2, **options)
    rounds, threads = 300, 8
    held: set[int] = set()
    twice: list[int] = []
    start = threading.Barrier(threads)

    def work() -> None:
        start.wait(PATIENCE)
        for _ in range(rounds):
            with pool.acquire() as res:
                if res.n in held:
                    twice.append(res.n)
                held.add(res.n)
                time.sleep(0)
                held.discard(res.n)

    workers = [threading.Thread(target=work, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(PATIENCE)
    assert not any(worker.is_alive() for worker in workers)
    assert twice == []
    stats = pool.stats()
    assert stats.acquires == rounds * threads
    assert stats.waiting == 0 and stats.idle == stats.size == 2
    if fairness == "bounded":
        assert stats.overtakes > 0, "nobody overtook under contention"
        assert stats.overtaken_wait_max < window
    else:
        assert (stats.overtakes, stats.overtaken_wait_max) == (0, 0.0)
    pool.close()


@pytest.mark.parametrize("kind", KINDS)
def test_an_overtaken_waiter_gets_a_resource_nobody_else_takes(kind: str, tracker: Tracker) -> None:
    """Overtaken once, a waiter dozes (not woken by returns) yet still gets a resource that
    lies idle: it looks again within MAX_DOZE, even with a window of a minute."""
    pool = build(kind, tracker, fairness_window=60.0)
    lease = pool.acquire()
    got: list[Res] = []
    before = sys.getswitchinterval()
    sys.setswitchinterval(5.0)
    try:
        waiter = waiting_thread(pool, got)
        lease.release()  # rouses the waiter...
        lease = pool.acquire(timeout=0)  # ...which this thread overtakes
        wait_until(lambda: pool._core.waiters[0].recheck_at is not None)  # it dozes now
    finally:
        sys.setswitchinterval(before)
    lease.release()  # no newcomer: the waiter must find it by itself
    waiter.join(PATIENCE)
    assert got and not waiter.is_alive()
    assert pool.stats().overtakes == 1
    pool.close()
