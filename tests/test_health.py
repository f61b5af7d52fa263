"""Health and housekeeping on the threaded free lists: check_after, max_lifetime, max_uses,
idle_timeout, keepalive, leak_timeout, drain() and resize(). Most tests drive the pool's
clock by hand and run its housekeeping pass (``_tend``) directly, so nothing depends on the
machine's speed; a few let the real housekeeper thread do it, with generous bounds."""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any

import pytest

import respool
from tests.conftest import PoolFactory, Res, Tracker, settle, wait_until


@pytest.fixture(params=["threads", "asyncio"])
def shell(request: pytest.FixtureRequest) -> str:
    """Both shells (the asyncio one behind a blocking facade)."""
    return str(request.param)


PATIENCE = 5.0


class Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = time.monotonic()  # where the pool's real clock left off

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def on_clock(pool: Any) -> Clock:
    """Give *pool* a hand-driven clock."""
    clock = Clock()
    pool._clock = clock
    return clock


def housekeep(pool: Any) -> None:
    """Run one housekeeping pass now, in this thread, then let the filler catch up."""
    pool._tend()
    settle()


# -- check_after ------------------------------------------------------------------------------


def test_check_after_checks_only_resources_idle_that_long(
    make_pool: PoolFactory, tracker: Tracker
) -> None:
    """A resource back a moment ago is lent unchecked; one idle check_after seconds is checked."""
    pool = make_pool(1, check_after=10.0)
    clock = on_clock(pool)
    with pool.acquire():
        pass
    tracker.checked.clear()
    clock.advance(5.0)
    with pool.acquire():
        pass
    assert tracker.checked == []
    clock.advance(10.5)
    with pool.acquire():
        pass
    assert len(tracker.checked) == 1


def _slow_failing_check(tracker: Tracker, clock: Clock, seconds: float) -> respool.Lifecycle[Res]:
    """The tracker's lifecycle with a check that takes *seconds* of the pool's clock."""

    def check(res: Res) -> bool:
        clock.advance(seconds)
        return tracker.check(res)

    return respool.Lifecycle(
        tracker.create, reset=tracker.reset, check=check, destroy=tracker.destroy
    )


def test_acquire_past_its_deadline_checks_no_more_resources(
    make_pool: PoolFactory, tracker: Tracker
) -> None:
    """A check that fails after the deadline ends the acquire: the next idle ones are not
    checked on time the caller no longer has."""
    clock = Clock()
    pool = make_pool(3, lifecycle=_slow_failing_check(tracker, clock, 1.0), check_after=0.0)
    pool._clock = clock
    with pool.acquire(), pool.acquire(), pool.acquire():
        pass
    for res in tracker.made:
        res.broken = True
    tracker.checked.clear()
    with pytest.raises(respool.PoolTimeout):
        pool.acquire(timeout=0.5)
    assert len(tracker.checked) == 1
    stats = pool.stats()
    assert stats.check_failures == 1
    assert stats.timeouts == 1


def test_acquire_that_never_waits_checks_until_one_passes(
    make_pool: PoolFactory, tracker: Tracker
) -> None:
    """``timeout=0`` promises no wait, not no check: every idle one is tried in turn."""
    clock = Clock()
    pool = make_pool(3, lifecycle=_slow_failing_check(tracker, clock, 1.0), check_after=0.0)
    pool._clock = clock
    with pool.acquire() as first, pool.acquire() as second, pool.acquire():
        pass  # given back last, the first two are the next lent (LIFO)
    first.broken = second.broken = True
    tracker.checked.clear()
    with pool.acquire(timeout=0) as res:
        assert not res.broken
    assert tracker.checked[:2] == [first, second]
    assert pool.stats().check_failures == 2


# -- max_lifetime and max_uses ----------------------------------------------------------------


def test_expired_resource_is_never_lent_and_is_replaced(
    make_pool: PoolFactory, tracker: Tracker
) -> None:
    """A resource past its lifetime is retired when a caller is about to take it; the caller
    gets another, and the pool counts the retirement."""
    pool = make_pool(1, max_lifetime=60.0)
    clock = on_clock(pool)
    with pool.acquire() as first:
        pass
    clock.advance(61.0)
    with pool.acquire(timeout=PATIENCE) as second:
        assert second is not first
    assert first.destroyed
    assert pool.stats().retired["lifetime"] == 1


def test_lent_resource_is_retired_at_return_not_taken_from_its_holder(
    make_pool: PoolFactory,
) -> None:
    """Housekeeping leaves a lent resource alone even past its lifetime; it goes at return."""
    pool = make_pool(1, max_lifetime=60.0)
    clock = on_clock(pool)
    with pool.acquire() as res:
        clock.advance(100.0)
        housekeep(pool)
        assert not res.destroyed
    assert res.destroyed
    settle()
    assert pool.stats().retired["lifetime"] == 1


def test_housekeeping_retires_expired_idle_resources(
    make_pool: PoolFactory, tracker: Tracker, kind: str
) -> None:
    """An idle resource past its lifetime is retired by housekeeping alone (and a FixedPool
    makes a replacement), before any caller meets it."""
    pool = make_pool(2, max_lifetime=60.0, **({} if kind == "fixed" else {"min_idle": 2}))
    clock = on_clock(pool)
    clock.advance(61.0)
    housekeep(pool)
    assert all(res.destroyed for res in tracker.made[:2])
    stats = pool.stats()
    assert stats.retired["lifetime"] == 2
    assert stats.size == 2  # replaced: FixedPool's size, ElasticPool's min_idle


def test_max_uses_retires_after_that_many_leases(make_pool: PoolFactory) -> None:
    """A resource lent max_uses times is retired when it comes back the last time."""
    pool = make_pool(1, max_uses=3)
    seen = []
    for _ in range(4):
        with pool.acquire(timeout=PATIENCE) as res:
            seen.append(res)
    assert seen[0] is seen[1] is seen[2]
    assert seen[3] is not seen[0] and seen[0].destroyed
    assert pool.stats().retired["uses"] == 1


# -- idle_timeout -------------------------------------------------------------------------------


def test_idle_timeout_destroys_idle_resources_beyond_min_idle(tracker: Tracker) -> None:
    """ElasticPool: resources idle past idle_timeout go, down to min_idle."""
    pool = respool.ElasticPool(
        tracker.lifecycle(), min_idle=1, max_idle=4, idle_timeout=30.0, name="elastic"
    )
    clock = on_clock(pool)
    leases = [pool.acquire() for _ in range(4)]
    for lease in leases:
        lease.release()
    assert pool.stats().idle == 4
    clock.advance(29.0)
    housekeep(pool)
    assert pool.stats().idle == 4
    clock.advance(2.0)
    housekeep(pool)
    stats = pool.stats()
    assert (stats.idle, stats.size, stats.retired["idle"]) == (1, 1, 3)
    pool.close()


def test_min_idle_is_refilled_after_losses(tracker: Tracker) -> None:
    """ElasticPool keeps min_idle live resources: what is destroyed is made again."""
    pool = respool.ElasticPool(tracker.lifecycle(), min_idle=2, max_idle=2)
    pool.acquire().discard()
    settle()
    assert pool.stats().size == 2
    pool.close()


# -- keepalive ----------------------------------------------------------------------------------


def test_keepalive_replaces_dead_idle_resources_before_a_caller_meets_them(
    make_pool: PoolFactory, tracker: Tracker
) -> None:
    """Idle resources are checked every keepalive seconds; the dead are replaced in the
    background, so the next caller gets a live one without its own check failing."""
    pool = make_pool(2, keepalive=30.0, check_after=1e9)
    clock = on_clock(pool)
    with pool.acquire() as a, pool.acquire() as b:
        pass
    a.broken = True
    clock.advance(31.0)
    housekeep(pool)
    assert a.destroyed and not b.destroyed
    stats = pool.stats()
    assert (stats.retired["check"], stats.check_failures) == (1, 1)
    with pool.acquire() as x, pool.acquire() as y:
        assert not x.broken and not y.broken


def test_keepalive_runs_in_the_background_by_itself(tracker: Tracker) -> None:
    """Real time: with no caller at all, the housekeeper thread finds and replaces a dead
    idle resource within a few keepalive periods."""
    pool = respool.FixedPool(tracker.lifecycle(), size=1, keepalive=0.05)
    with pool.acquire() as res:
        pass
    res.broken = True
    wait_until(lambda: res.destroyed, timeout=PATIENCE)
    wait_until(lambda: pool.stats().size == 1, timeout=PATIENCE)
    pool.close()


def test_keepalive_needs_a_check() -> None:
    """keepalive without check= could do nothing: refused, naming both."""
    with pytest.raises(ValueError, match=r"keepalive.*check"):
        respool.FixedPool(object, size=1, keepalive=5.0)


# -- leak_timeout -------------------------------------------------------------------------------


def hold_here(pool: Any) -> respool.Lease[Res]:
    """Acquire from a function of this name, so that the report can be seen to name it."""
    return pool.acquire()  # type: ignore[no-any-return]


# (Threads only: behind the facade the acquiring stack is the facade's task, not the test's.)
@pytest.mark.parametrize("shell", ["threads"])
def test_lease_held_too_long_is_reported_once_with_its_stack(
    make_pool: PoolFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A lease held past leak_timeout: one WARNING with the acquiring stack, one
    ResourceWarning, one count in leaks; its return is logged too, and it is reused."""
    pool = make_pool(1, leak_timeout=60.0)
    clock = on_clock(pool)
    with caplog.at_level(logging.WARNING, logger="respool"):
        lease = hold_here(pool)
        clock.advance(61.0)
        with pytest.warns(ResourceWarning, match="leak_timeout"):
            housekeep(pool)
        clock.advance(100.0)
        housekeep(pool)  # reported once only
        lease.release()
    reports = [r for r in caplog.records if "held for" in r.getMessage()]
    assert len(reports) == 1
    assert "hold_here" in reports[0].getMessage()
    assert any("came back after" in r.getMessage() for r in caplog.records)
    stats = pool.stats()
    assert (stats.leaks, stats.in_use, stats.destroyed) == (1, 0, 0)


# -- drain and resize ---------------------------------------------------------------------------


def churn(pool: Any, stop: threading.Event, failures: list[BaseException]) -> None:
    """Acquire and release until told to stop, recording any failure."""
    rng = random.Random(threading.get_ident())
    while not stop.is_set():
        try:
            with pool.acquire(timeout=PATIENCE) as res:
                assert not res.destroyed
                if rng.random() < 0.3:
                    time.sleep(0)  # let another thread in while holding
        except BaseException as exc:
            failures.append(exc)
            return


def under_load(pool: Any, action: Any, threads: int = 4) -> list[BaseException]:
    """Run *action* while *threads* threads churn through *pool*; their failures."""
    stop = threading.Event()
    failures: list[BaseException] = []
    workers = [threading.Thread(target=churn, args=(pool, stop, failures)) for _ in range(threads)]
    for worker in workers:
        worker.start()
    try:
        wait_until(lambda: pool.stats().acquires > 50)
        action()
        wait_until(lambda: pool.stats().acquires > 400)
    finally:
        stop.set()
        for worker in workers:
            worker.join(PATIENCE)
    return failures


def test_drain_under_load_fails_nobody_and_retires_every_older_resource(
    make_pool: PoolFactory, tracker: Tracker
) -> None:
    """drain() while threads churn: no acquire fails, and every resource made before the
    call is destroyed by the end."""
    pool = make_pool(3)
    before: list[Res] = []

    def drain() -> None:
        before.extend(tracker.made)
        pool.drain()

    assert under_load(pool, drain) == []
    settle()
    assert before and all(res.destroyed for res in before)
    assert pool.stats().retired["drain"] == len(before)


def test_resize_up_and_down_under_load(tracker: Tracker) -> None:
    """FixedPool.resize() while threads churn: nobody fails; the pool ends at the new size."""
    pool = respool.FixedPool(tracker.lifecycle(), size=2, timeout=PATIENCE)
    assert under_load(pool, lambda: pool.resize(5)) == []
    settle()
    assert pool.stats().size == 5
    assert under_load(pool, lambda: pool.resize(1)) == []
    settle()
    stats = pool.stats()
    assert (stats.size, pool.size) == (1, 1)
    assert stats.created - stats.destroyed == 1
    pool.close()


def test_elastic_resize_checks_its_sizes_together(tracker: Tracker) -> None:
    """ElasticPool.resize() refuses inconsistent sizes, naming both, and keeps the others."""
    pool = respool.ElasticPool(tracker.lifecycle(), max_idle=4, max_size=4)
    with pytest.raises(ValueError, match=r"max_idle \(4\).*max_size \(2\)"):
        pool.resize(max_size=2)
    pool.resize(min_idle=2)
    settle()
    assert (pool.min_idle, pool.max_idle, pool.max_size) == (2, 4, 4)
    assert pool.stats().size == 2
    pool.close()


# -- bad values ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "error"),
    [
        ("check_after", -1, ValueError),
        ("check_after", float("nan"), ValueError),
        ("max_lifetime", 0, ValueError),
        ("max_lifetime", float("inf"), ValueError),
        ("max_lifetime", "1h", TypeError),
        ("max_uses", 0, ValueError),
        ("max_uses", 1.5, TypeError),
        ("keepalive", -5, ValueError),
        ("leak_timeout", float("nan"), ValueError),
        ("idle_timeout", 0, ValueError),
    ],
)
def test_bad_health_options_name_the_parameter(option: str, value: Any, error: type) -> None:
    """Each bad value raises ValueError/TypeError naming the option, and creates nothing."""
    made: list[object] = []
    with pytest.raises(error, match=option):
        respool.ElasticPool(
            lambda: made.append(1), check=lambda r: True, min_idle=1, **{option: value}
        )
    assert made == []


def test_fixed_resize_refuses_bad_sizes(tracker: Tracker) -> None:
    """resize(0) or resize('3') raise, naming size; the pool is unchanged."""
    pool = respool.FixedPool(tracker.lifecycle(), size=2)
    with pytest.raises(ValueError, match="size"):
        pool.resize(0)
    with pytest.raises(TypeError, match="size"):
        pool.resize("3")  # type: ignore[arg-type]
    assert pool.stats().size == 2
    pool.close()


def test_failing_refill_neither_blocks_callers_nor_spins_the_housekeeper(
    tracker: Tracker,
) -> None:
    """While create fails, replacements are retried on the backoff (a handful of attempts
    in half a second, not thousands), and a caller with a short timeout is answered in time."""
    attempts: list[float] = []
    down = threading.Event()
    down.set()

    def create() -> Res:
        if down.is_set():
            attempts.append(time.monotonic())
            raise ConnectionError("server down")
        return tracker.create()

    down.clear()
    pool = respool.FixedPool(create, size=1, check=tracker.check, keepalive=0.01)
    down.set()
    pool.acquire().discard()
    started = time.monotonic()
    with pytest.raises(respool.PoolTimeout):
        pool.acquire(timeout=0.2)
    assert time.monotonic() - started < 2.0
    wait_until(lambda: len(attempts) >= 3)
    time.sleep(0.5)  # let time pass: this test measures what the housekeeper does meanwhile
    assert len(attempts) <= 12  # 50 ms doubling: about 5 in 0.7 s, never a busy loop
    assert pool.stats().create_failures == len(attempts)
    down.clear()
    with pool.acquire(timeout=PATIENCE):
        pass
    assert pool.stats().create_failures == 0
    pool.close()


def test_expired_resources_are_never_lent_under_load(tracker: Tracker) -> None:
    """Real time, threads churning while housekeeping retires: no resource is lent past its
    lifetime at the moment the pool judged it."""
    lifetime = 0.02
    born: dict[int, float] = {}

    def create() -> Res:
        res = tracker.create()
        born[res.n] = time.monotonic()
        return res

    pool = respool.ElasticPool(create, max_idle=3, max_lifetime=lifetime, timeout=PATIENCE)
    decided = threading.local()  # the time this thread's acquire judged its resource by

    def clock() -> float:
        decided.at = time.monotonic()
        return decided.at  # type: ignore[no-any-return]

    pool._clock = clock
    stop = threading.Event()
    too_old: list[float] = []

    def churn_and_look() -> None:
        while not stop.is_set():
            lease = pool.acquire()
            with lease:
                entry = lease._entry
                assert entry is not None
                # Its birth as the pool stamped it (create's own clock reading comes earlier,
                # by however long this thread was descheduled in between).
                assert born[lease.resource.n] <= entry.created_at
                assert entry.expires_at <= entry.created_at + lifetime
                age = decided.at - entry.created_at
                if age >= lifetime:
                    too_old.append(age)

    threads = [threading.Thread(target=churn_and_look) for _ in range(3)]
    for thread in threads:
        thread.start()
    wait_until(lambda: pool.stats().retired["lifetime"] >= 20)
    stop.set()
    for thread in threads:
        thread.join(PATIENCE)
    assert too_old == []
    pool.close()
