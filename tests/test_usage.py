"""Usage observation (``observe=True``, ``stats().usage``): the sans-I/O recorder, then every
pool kind on both shells, then an observing pool under threads."""

from __future__ import annotations

import asyncio
import gc
import math
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import respool
from respool._core.usage import TIMELINE_PERIODS, UsageRecorder
from respool._usage import Observer
from respool.stats import Usage
from tests.async_facade import LoopThread, PoolFacade

PATIENCE = 10.0


# -- the recorder -----------------------------------------------------------------------------


def assert_consistent(usage: Usage) -> None:
    """What every snapshot must satisfy, whatever happened before it."""
    assert usage.in_use >= 0
    assert usage.uses >= usage.in_use
    assert 0 <= usage.reuses <= usage.uses
    assert sum(count for _, count in usage.gap_histogram) == usage.reuses
    assert 0.0 <= usage.gap_p50 <= usage.gap_p90 <= usage.gap_p99 <= usage.gap_max
    if usage.reuses == 0:
        assert usage.gap_max == 0.0
        assert usage.gap_histogram == ()
    tops = [top for top, _ in usage.gap_histogram]
    assert tops == sorted(tops)
    assert usage.in_use_min <= usage.in_use_p10 <= usage.in_use_p50
    assert usage.in_use_p50 <= usage.in_use_p90 <= usage.in_use_p99 <= usage.in_use_max
    assert usage.in_use <= usage.in_use_max
    assert usage.in_use_min - 1e-9 <= usage.in_use_mean <= usage.in_use_max + 1e-9
    assert 0 <= usage.burst_peak <= usage.in_use_max
    assert 1 <= len(usage.timeline) <= TIMELINE_PERIODS
    for start, low, high in usage.timeline:
        assert 0 <= low <= high <= usage.in_use_max
        assert start <= usage.observed + usage.timeline_step
    assert usage.observed >= 0.0
    assert 0.0 <= usage.fluctuation <= 1.0


class RecorderMachine(RuleBasedStateMachine):
    """Random uses on a fake monotonic clock, against a model of the counts."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 1000.0
        self.recorder = UsageRecorder(self.now, full_collections=7)
        self.uses = 0
        self.level = 0
        self.most = 0
        self.reuses = 0
        self.longest = 0.0
        #: When each idle resource of the model became idle (what began() is told).
        self.idle: list[float] = []

    @rule(dt=st.one_of(st.just(0.0), st.floats(0.0, 0.05), st.floats(0.0, 30.0)))
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule(reuse=st.booleans(), pick=st.integers(0, 1000))
    def begin(self, reuse: bool, pick: int) -> None:
        idle_since = None
        if reuse and self.idle:
            idle_since = self.idle.pop(pick % len(self.idle))
            self.reuses += 1
            self.longest = max(self.longest, self.now - idle_since)
        self.recorder.began(self.now, idle_since)
        self.uses += 1
        self.level += 1
        self.most = max(self.most, self.level)

    @precondition(lambda self: self.level > 0)
    @rule()
    def end(self) -> None:
        self.recorder.ended(self.now)
        self.level -= 1
        self.idle.append(self.now)

    @precondition(lambda self: self.level == 0)
    @rule()
    def end_unseen(self) -> None:
        """An end without a begin (a lease taken before observing began) is dropped."""
        self.recorder.ended(self.now)

    @rule(collections=st.integers(7, 20))
    def snapshot(self, collections: int) -> None:
        usage = self.recorder.snapshot(self.now, collections)
        assert_consistent(usage)
        assert usage.uses == self.uses
        assert usage.in_use == self.level
        assert usage.in_use_max == self.most
        assert usage.reuses == self.reuses
        assert usage.gap_max == pytest.approx(self.longest)
        assert usage.observed == pytest.approx(self.now - 1000.0)
        assert usage.full_collections == collections - 7

    @invariant()
    def recorder_is_consistent(self) -> None:
        self.recorder.check_invariants()


RecorderMachine.TestCase.settings = settings(
    max_examples=120, stateful_step_count=50, deadline=None
)
TestRecorderKeepsItsInvariants = RecorderMachine.TestCase


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.tuples(st.floats(0.0, 500.0), st.booleans()), min_size=1, max_size=80))
def test_long_observations_keep_the_timeline_short(steps: list[tuple[float, bool]]) -> None:
    """However long the observation, the timeline stays within its periods and covers it."""
    now = 0.0
    recorder = UsageRecorder(now, 0)
    level = 0
    for dt, up in steps:
        now += dt
        if up or level == 0:
            recorder.began(now, None)
            level += 1
        else:
            recorder.ended(now)
            level -= 1
        recorder.check_invariants()
    usage = recorder.snapshot(now, 0)
    assert_consistent(usage)
    assert len(usage.timeline) * usage.timeline_step >= usage.observed


def test_two_levels_by_hand() -> None:
    """Level 2 for 9 s, then 10 for 1 s: the figures worked out on paper."""
    recorder = UsageRecorder(0.0, 0)
    for _ in range(2):
        recorder.began(0.0, None)
    for _ in range(8):
        recorder.began(9.0, None)
    usage = recorder.snapshot(10.0, 0)
    recorder.check_invariants()
    assert usage.uses == 10
    assert usage.in_use == 10
    assert usage.reuses == 0
    assert usage.in_use_min == 2
    assert usage.in_use_p10 == 2
    assert usage.in_use_p50 == 2
    assert usage.in_use_p99 == 10
    assert usage.in_use_max == 10
    assert usage.in_use_mean == pytest.approx(2.8)
    assert usage.observed == 10.0
    assert usage.gc_interval is None


def test_gaps_by_hand() -> None:
    """Gaps of 1 ms and 1 s: binned in buckets a factor of two wide, capped by the longest."""
    recorder = UsageRecorder(0.0, 0)
    recorder.began(2.0, 1.999)  # 1 ms: bucket 2**10 us
    recorder.ended(2.0)
    recorder.began(3.0, 2.0)  # 1 s
    recorder.ended(3.5)
    recorder.began(4.0, None)  # a new resource: no gap
    usage = recorder.snapshot(4.0, 3)
    recorder.check_invariants()
    assert usage.uses == 3
    assert usage.reuses == 2
    assert usage.gap_max == pytest.approx(1.0)
    assert usage.gap_p50 == pytest.approx(1024e-6)
    assert usage.gap_p99 == pytest.approx(1.0)  # the bucket's top (about 1.05 s), capped
    assert [count for _, count in usage.gap_histogram] == [1, 1]
    assert usage.full_collections == 3
    assert usage.gc_interval == pytest.approx(4.0 / 3)


def test_an_end_never_seen_to_begin_is_dropped() -> None:
    recorder = UsageRecorder(0.0, 0)
    recorder.ended(1.0)
    recorder.check_invariants()
    usage = recorder.snapshot(2.0, 0)
    assert (usage.uses, usage.in_use, usage.in_use_max) == (0, 0, 0)


def test_a_clock_read_late_by_another_thread_counts_as_the_same_instant() -> None:
    recorder = UsageRecorder(0.0, 0)
    recorder.began(5.0, None)
    recorder.ended(4.0)  # read before the begin's clock, reported after it
    recorder.check_invariants()
    usage = recorder.snapshot(6.0, 0)
    assert usage.in_use == 0
    assert usage.in_use_max == 1


# -- every pool kind --------------------------------------------------------------------------


@dataclass
class Seen:
    """What a scenario read from ``stats().usage``: while it held ``held`` uses at once, and
    at the end."""

    held: Usage | None
    after: Usage | None


#: A scenario: (observe, held at once, sequential uses, seconds of idle before the last use)
#: -> the usages seen; or, not observing, ``stats().usage`` (None).
Scenario = Callable[[bool, int, int, float], Any]
HELD = 3
SEQUENTIAL = 5
GAP = 0.05


def free_list(cls: Any, *, fixed: bool) -> Scenario:
    def run(observe: bool, held: int, sequential: int, gap: float) -> Any:
        options: dict[str, Any] = {"size": held} if fixed else {"max_size": held}
        pool = cls(object, observe=observe, **options)
        with pool:
            if not observe:
                with pool.acquire():
                    pass
                return pool.stats().usage
            leases = [pool.acquire() for _ in range(held)]
            during = pool.stats().usage
            for lease in leases:
                lease.release()
            for _ in range(sequential):
                with pool.acquire():
                    pass
            time.sleep(gap)
            with pool.acquire():
                pass
            return Seen(during, pool.stats().usage)

    return run


def async_free_list(cls: Any, *, fixed: bool) -> Scenario:
    def run(observe: bool, held: int, sequential: int, gap: float) -> Any:
        runner = LoopThread()
        try:
            options: dict[str, Any] = {"size": held} if fixed else {"max_size": held}
            pool = PoolFacade(cls(object, observe=observe, **options), runner)
            with pool:
                if not observe:
                    with pool.acquire():
                        pass
                    return pool.stats().usage
                leases = [pool.acquire() for _ in range(held)]
                during = pool.stats().usage
                for lease in leases:
                    lease.release()
                for _ in range(sequential):
                    with pool.acquire():
                        pass
                time.sleep(gap)
                tried = pool.try_acquire()  # the other way in
                assert tried is not None
                tried.release()
                return Seen(during, pool.stats().usage)
        finally:
            runner.stop()

    return run


def worker_pool(observe: bool, held: int, sequential: int, gap: float) -> Any:
    pool = respool.WorkerPool(object, workers=held, observe=observe)
    with pool:
        if not observe:
            pool.submit(lambda r: None).result(PATIENCE)
            return pool.stats().usage
        running = threading.Barrier(held + 1, timeout=PATIENCE)
        go = threading.Event()

        def hold(resource: object) -> None:
            running.wait()
            assert go.wait(PATIENCE)

        futures = [pool.submit(hold) for _ in range(held)]
        running.wait()  # every task runs, each on its own worker
        during = pool.stats().usage
        go.set()
        for future in futures:
            future.result(PATIENCE)
        for _ in range(sequential):
            pool.submit(lambda r: None).result(PATIENCE)
        time.sleep(gap)
        pool.submit(lambda r: None).result(PATIENCE)
        return Seen(during, pool.stats().usage)


def async_worker_pool(observe: bool, held: int, sequential: int, gap: float) -> Any:
    async def scenario() -> Any:
        pool = respool.AsyncWorkerPool(object, workers=held, observe=observe)
        async with pool:
            if not observe:
                await pool.submit(lambda r: None)
                return pool.stats().usage
            started = 0
            all_running = asyncio.Event()
            go = asyncio.Event()

            async def hold(resource: object) -> None:
                nonlocal started
                started += 1
                if started == held:
                    all_running.set()
                await go.wait()

            tasks = [asyncio.ensure_future(pool.submit(hold)) for _ in range(held)]
            await asyncio.wait_for(all_running.wait(), PATIENCE)
            during = pool.stats().usage
            go.set()
            await asyncio.gather(*tasks)
            for _ in range(sequential):
                await pool.submit(lambda r: None)
            await asyncio.sleep(gap)
            await pool.submit(lambda r: None)
            return Seen(during, pool.stats().usage)

    return asyncio.run(scenario())


def transient_pool(observe: bool, held: int, sequential: int, gap: float) -> Any:
    pool: respool.TransientPool[list[int]] = respool.TransientPool(list, observe=observe)
    if not observe:
        pool.put(pool.get())
        return pool.stats().usage
    objects = [pool.get() for _ in range(held)]  # misses: new objects, no gap
    during = pool.stats().usage
    for obj in objects:
        pool.put(obj)
    del objects
    for _ in range(sequential):
        with pool.borrow():
            pass
    time.sleep(gap)
    pool.put(pool.get())
    return Seen(during, pool.stats().usage)


def buffer_pool(observe: bool, held: int, sequential: int, gap: float) -> Any:
    pool = respool.BufferPool(observe=observe)
    if not observe:
        pool.put(pool.get(100))
        return pool.stats().by_size[pool.min_size].usage

    def usage() -> Usage:
        found = pool.stats().by_size[pool.min_size].usage
        assert found is not None
        return found

    buffers = [pool.get(100) for _ in range(held)]
    during = usage()
    for buf in buffers:
        pool.put(buf)
    del buffers
    for _ in range(sequential):
        with pool.borrow(100):
            pass
    time.sleep(gap)
    pool.put(pool.get(100))
    return Seen(during, usage())


#: kind -> (scenario, are the first uses' resources new? (else made ahead, idle since then))
KINDS: dict[str, tuple[Scenario, bool]] = {
    "FixedPool": (free_list(respool.FixedPool, fixed=True), False),
    "ElasticPool": (free_list(respool.ElasticPool, fixed=False), True),
    "AsyncFixedPool": (async_free_list(respool.AsyncFixedPool, fixed=True), False),
    "AsyncElasticPool": (async_free_list(respool.AsyncElasticPool, fixed=False), True),
    "WorkerPool": (worker_pool, False),
    "AsyncWorkerPool": (async_worker_pool, False),
    "TransientPool": (transient_pool, True),
    "BufferPool": (buffer_pool, True),
}


@pytest.fixture(params=sorted(KINDS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_a_pool_that_does_not_observe_reports_no_usage(kind: str) -> None:
    scenario, _ = KINDS[kind]
    assert scenario(False, HELD, SEQUENTIAL, 0.0) is None


def test_an_observing_pool_counts_uses_concurrency_and_gaps(kind: str) -> None:
    scenario, first_uses_are_new = KINDS[kind]
    seen: Seen = scenario(True, HELD, SEQUENTIAL, GAP)
    held, after = seen.held, seen.after
    assert held is not None and after is not None
    assert_consistent(held)
    assert_consistent(after)
    # While the first uses were held, all at once.
    assert held.uses == HELD
    assert held.in_use == HELD
    assert held.in_use_max == HELD
    # Then one at a time, and one more after an idle gap.
    uses = HELD + SEQUENTIAL + 1
    assert after.uses == uses
    assert after.in_use == 0
    assert after.in_use_max == HELD
    assert after.in_use_min == 0
    # A resource made for its first user has no gap before that use; every later use
    # (and every use of a resource made ahead of need) has one.
    assert after.reuses == (uses - HELD if first_uses_are_new else uses)
    assert held.reuses == (0 if first_uses_are_new else HELD)
    assert GAP * 0.8 <= after.gap_max < 60.0
    assert after.gap_p50 <= after.gap_max
    assert after.observed >= GAP


def test_observe_must_be_a_bool() -> None:
    makers: list[Callable[[], object]] = [
        lambda: respool.FixedPool(object, observe="yes"),  # type: ignore[arg-type]
        lambda: respool.ElasticPool(object, observe="yes"),  # type: ignore[arg-type]
        lambda: respool.AsyncFixedPool(object, observe="yes"),  # type: ignore[arg-type]
        lambda: respool.AsyncElasticPool(object, observe="yes"),  # type: ignore[arg-type]
        lambda: respool.WorkerPool(object, observe="yes"),  # type: ignore[arg-type]
        lambda: respool.AsyncWorkerPool(object, observe="yes"),  # type: ignore[arg-type]
        lambda: respool.TransientPool(object, observe="yes"),  # type: ignore[arg-type]
        lambda: respool.BufferPool(observe="yes"),  # type: ignore[arg-type]
        lambda: respool.FixedPool(object, observe=1),  # type: ignore[arg-type]
    ]
    for make in makers:
        with pytest.raises(TypeError, match="observe"):
            make()


# -- every way a use ends ---------------------------------------------------------------------


class Abort(BaseException):
    """Stands for cancellation or KeyboardInterrupt: a use cut short."""


def in_use(pool: Any) -> int:
    usage = pool.stats().usage
    assert usage is not None
    return int(usage.in_use)


def test_free_list_uses_end_by_release_discard_abort_and_loss() -> None:
    with respool.ElasticPool(object, max_size=4, observe=True) as pool:
        pool.acquire().release()
        assert in_use(pool) == 0
        pool.acquire().discard()
        assert in_use(pool) == 0
        with pytest.raises(Abort), pool.acquire():
            raise Abort
        assert in_use(pool) == 0
        lease = pool.acquire()
        assert in_use(pool) == 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            del lease
            gc.collect()
        assert in_use(pool) == 0  # stats() recovers the lost lease first
        usage = pool.stats().usage
        assert usage is not None
        assert usage.uses == 4
        assert usage.in_use_max == 1
        # Created anew after each discard: only the second and fourth found an idle one.
        assert usage.reuses == 1


def test_free_list_use_ends_when_its_reset_fails_or_it_is_worn_out() -> None:
    def reset(resource: object) -> None:
        raise ValueError("cannot reset")

    with respool.FixedPool(object, size=1, reset=reset, max_uses=2, observe=True) as pool:
        with pool.acquire():
            pass
        assert in_use(pool) == 0
        with pool.acquire():
            pass
        assert in_use(pool) == 0


def test_worker_uses_end_whatever_the_task_does() -> None:
    with respool.WorkerPool(object, workers=1, observe=True) as pool:
        with pytest.raises(ValueError, match="task failed"):
            pool.submit(_raise, ValueError("task failed")).result(PATIENCE)
        assert in_use(pool) == 0
        with pytest.raises(Abort):
            pool.submit(_raise, Abort()).result(PATIENCE)  # the resource is replaced
        assert in_use(pool) == 0
        pool.submit(lambda r: None).result(PATIENCE)
        usage = pool.stats().usage
        assert usage is not None
        assert (usage.uses, usage.in_use, usage.reuses) == (3, 0, 3)


def _raise(resource: object, error: BaseException) -> None:
    raise error


def test_async_worker_uses_end_when_cancelled() -> None:
    async def scenario() -> Usage | None:
        async with respool.AsyncWorkerPool(object, workers=1, observe=True) as pool:
            started = asyncio.Event()

            async def forever(resource: object) -> None:
                started.set()
                await asyncio.Event().wait()

            task = asyncio.ensure_future(pool.submit(forever))
            await asyncio.wait_for(started.wait(), PATIENCE)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await pool.submit(lambda r: None)
            return pool.stats().usage

    usage = asyncio.run(scenario())
    assert usage is not None
    assert (usage.uses, usage.in_use, usage.in_use_max) == (2, 0, 1)


def test_transient_use_ends_at_put_and_at_an_aborted_borrow() -> None:
    pool: respool.TransientPool[list[int]] = respool.TransientPool(list, observe=True)
    with pytest.raises(Abort), pool.borrow():
        raise Abort
    assert in_use(pool) == 0
    with pool.borrow():
        assert in_use(pool) == 1
    usage = pool.stats().usage
    assert usage is not None
    assert (usage.uses, usage.in_use, usage.reuses) == (2, 0, 0)  # the aborted one was dropped


def test_transient_never_compares_the_objects_it_observes() -> None:
    class Hostile:
        def __eq__(self, other: object) -> bool:
            raise AssertionError("compared")

        def __hash__(self) -> int:
            raise AssertionError("hashed")

    pool = respool.TransientPool(Hostile, reset=lambda obj: None, observe=True)
    obj = pool.get()
    pool.put(obj)
    assert pool.get() is obj
    pool.put(obj)
    usage = pool.stats().usage
    assert usage is not None
    assert (usage.uses, usage.reuses) == (2, 1)


def test_transient_side_table_stays_bounded_and_new_objects_have_no_gap() -> None:
    pool: respool.TransientPool[bytearray] = respool.TransientPool(
        lambda: bytearray(64), observe=True
    )
    for _ in range(12):
        for _ in range(500):
            pool.put(bytearray(64))  # objects the collector will drop, ids left behind
        gc.collect()
        gc.collect()
    assert len(pool._seen) <= 2 * 1024 + 500
    before = pool.stats().usage
    assert before is not None
    got = [pool.get() for _ in range(50)]  # misses: new objects, maybe at a dropped one's id
    after = pool.stats().usage
    assert after is not None
    assert after.uses == before.uses + len(got)
    assert after.reuses == before.reuses


def test_observing_pools_leave_the_plain_hot_paths_to_plain_pools() -> None:
    """Not observing, nothing changes: the lock-free lend and put, the lean transient class."""
    with (
        respool.FixedPool(object, size=1) as plain,
        respool.FixedPool(object, size=1, observe=True) as observing,
    ):
        assert plain._plain and plain._observer is None
        assert plain._put == plain._core.put_nowait
        assert not observing._plain
        assert observing._put == observing._put_slow
    assert type(respool.TransientPool(list)) is respool.TransientPool
    assert type(respool.TransientPool(list, observe=True)) is not respool.TransientPool
    assert isinstance(respool.TransientPool(list, observe=True), respool.TransientPool)

    class Mine(respool.TransientPool[list[int]]):
        __slots__ = ()

    mine = Mine(list, observe=True)
    assert isinstance(mine, Mine)
    mine.put(mine.get())
    usage = mine.stats().usage
    assert usage is not None and usage.uses == 1


def test_a_forked_child_observes_afresh() -> None:
    """What ``os.fork()`` runs in the child (called here on a pool of our own): a new record,
    in which the parent's lease does not end a use."""
    pool = respool.FixedPool(object, size=2, observe=True)
    parents = pool.acquire()
    pool._after_fork_in_child()
    usage = pool.stats().usage
    assert usage is not None
    assert (usage.uses, usage.in_use) == (0, 0)
    with pool.acquire():
        assert in_use(pool) == 1
    parents.release()  # the parent's: foreign here
    usage = pool.stats().usage
    assert usage is not None
    assert (usage.uses, usage.in_use) == (1, 0)
    pool.close()
    plain = respool.FixedPool(object, size=1)
    plain._after_fork_in_child()
    assert plain.stats().usage is None
    plain.close()


def test_fake_clock_gap_on_a_free_list() -> None:
    """With the pool's clock swapped for a fake one, gaps are exactly the fake seconds."""
    now = [100.0]
    pool = respool.ElasticPool(object, observe=True)
    pool._clock = lambda: now[0]
    pool._observer = Observer(now[0])
    with pool.acquire():
        now[0] += 1.0
    now[0] += 2.5
    with pool.acquire():
        now[0] += 0.5
    usage = pool.stats().usage
    assert usage is not None
    assert usage.reuses == 1
    assert usage.gap_max == pytest.approx(2.5)
    assert usage.observed == pytest.approx(4.0)
    assert usage.in_use_mean == pytest.approx(1.5 / 4.0)
    pool.close()


# -- under threads ---------------------------------------------------------------------------


def test_observing_fixed_pool_under_eight_threads() -> None:
    rounds = 1500
    threads = 8
    pool = respool.FixedPool(object, size=3, observe=True, timeout=PATIENCE)
    start = threading.Barrier(threads, timeout=PATIENCE)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            start.wait()
            for i in range(rounds):
                if i % 3:
                    with pool.acquire():
                        pass
                else:
                    lease = pool.try_acquire() or pool.acquire()
                    lease.release()
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(60)
    assert not errors, errors
    stats = pool.stats()
    usage = stats.usage
    assert usage is not None
    assert usage.uses == rounds * threads
    assert usage.in_use == 0
    assert 1 <= usage.in_use_max <= 3
    assert usage.reuses == usage.uses  # all three made up front
    assert_consistent(usage)
    assert stats.created - stats.destroyed == stats.size == stats.idle + stats.in_use
    assert stats.in_use == 0
    assert stats.acquires == rounds * threads
    assert pool._observer is not None
    with pool._observer._lock:
        pool._observer._recorder.check_invariants()
    pool.close()


def test_observing_transient_pool_under_threads() -> None:
    rounds = 2000
    threads = 4
    pool: respool.TransientPool[list[int]] = respool.TransientPool(list, observe=True)
    start = threading.Barrier(threads, timeout=PATIENCE)

    def work() -> None:
        start.wait()
        for _ in range(rounds):
            with pool.borrow():
                pass

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(60)
    usage = pool.stats().usage
    assert usage is not None
    assert usage.uses == rounds * threads
    assert usage.in_use == 0
    assert 1 <= usage.in_use_max <= threads
    assert usage.reuses <= usage.uses
    assert not math.isnan(usage.in_use_mean)
