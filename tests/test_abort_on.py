"""``Lifecycle(abort_on=...)``: a driver's own errors that mean "cut short mid-operation".

A use of a resource that ends with an error its lifecycle lists in ``abort_on`` (a subclass
too) is an abort, as a ``TimeoutError`` is: the resource is destroyed, never reset and reused,
and counted in ``retired["abort"]`` (``TransientStats.aborted`` for ``TransientPool``). An
unlisted ``Exception`` still resets and reuses, ``discard_on_error`` still discards, and a
pool's own ``PoolTimeout`` is never an abort, whatever ``abort_on`` lists. Checked on every
free list in both shells (normal and debug leases), on both worker pools (with and without
work around a task), on ``TransientPool.borrow()``, in the policy itself, and in the
arguments ``Lifecycle`` accepts.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

import respool
from respool._core import policy
from respool.lease import AsyncDebugLease, DebugLease
from respool.lifecycle import coerce
from tests.conftest import Abort, Boom, PoolFactory, Res, Tracker, settle

pytestmark = pytest.mark.timeout(60)


class DriverTimeout(Exception):
    """A driver's timeout that is not a ``TimeoutError`` (as ``redis.exceptions.TimeoutError``)."""


class ReadTimeout(DriverTimeout):
    """A subclass of a listed class: listed too, as ``except`` would have it."""


@pytest.fixture(params=["threads", "asyncio"])
def shell(request: pytest.FixtureRequest) -> str:
    """Both shells (the asyncio one behind a blocking facade)."""
    return str(request.param)


@pytest.fixture
def fairness() -> str:
    """The abort rule does not depend on fairness: one mode keeps the file short."""
    return "bounded"


def aborting(tracker: Tracker, *classes: type[BaseException]) -> respool.Lifecycle[Res]:
    """The tracker's lifecycle (reset, check, destroy) with *classes* as ``abort_on``."""
    return dataclasses.replace(tracker.lifecycle(), abort_on=classes or (DriverTimeout,))


def end_lease_with(pool: Any, error: BaseException) -> Res:
    """Raise *error* from a lease's body (it must propagate unchanged); the lease's resource."""
    held: list[Res] = []
    with pytest.raises(type(error)) as caught, pool.acquire() as res:
        held.append(res)
        raise error
    assert caught.value is error
    settle()
    return held[0]


# -- the free lists ------------------------------------------------------------------------


@pytest.mark.parametrize("error", [DriverTimeout("read"), ReadTimeout("read")])
def test_a_listed_error_ending_a_lease_destroys_the_resource(
    make_pool: PoolFactory, tracker: Tracker, error: Exception
) -> None:
    """A listed error (or a subclass) ending a lease destroys its resource unreset, counted
    as an abort; the next lease gets a new resource."""
    pool = make_pool(1, lifecycle=aborting(tracker))
    res = end_lease_with(pool, error)
    assert res.destroyed and res.resets == 0
    stats = pool.stats()
    assert (stats.retired["abort"], stats.retired["error"], stats.reset_errors) == (1, 0, 0)
    with pool.acquire() as again:
        assert again is not res


def test_an_unlisted_error_resets_and_reuses_the_resource(
    make_pool: PoolFactory, tracker: Tracker
) -> None:
    """With abort_on set, an error it does not list leaves the resource to reset and reuse."""
    pool = make_pool(1, lifecycle=aborting(tracker))
    res = end_lease_with(pool, Boom("ordinary"))
    assert not res.destroyed and res.resets == 1
    assert pool.stats().destroyed == 0
    with pool.acquire() as again:
        assert again is res


def test_the_same_error_without_abort_on_is_an_ordinary_error(
    make_pool: PoolFactory, tracker: Tracker
) -> None:
    """The control: without abort_on, the driver's error resets and reuses the resource (it is
    abort_on, nothing else, that makes it an abort)."""
    pool = make_pool(1)
    res = end_lease_with(pool, DriverTimeout("read"))
    assert not res.destroyed and res.resets == 1
    assert pool.stats().retired["abort"] == 0


def test_abort_on_survives_keyword_callbacks(make_pool: PoolFactory, tracker: Tracker) -> None:
    """A pool given a Lifecycle with abort_on plus a keyword callback (merged by coerce) still
    treats a listed error as an abort."""
    life = respool.Lifecycle(tracker.create, reset=tracker.reset, abort_on=DriverTimeout)
    pool = make_pool(1, lifecycle=life, destroy=tracker.destroy)
    res = end_lease_with(pool, DriverTimeout("read"))
    assert res.destroyed and pool.stats().retired["abort"] == 1


def test_discard_on_error_still_discards_and_keeps_its_reason(
    make_pool: PoolFactory, tracker: Tracker
) -> None:
    """With discard_on_error, an unlisted error destroys the resource as an error, a listed
    one as an abort."""
    pool = make_pool(1, lifecycle=aborting(tracker), discard_on_error=True)
    first = end_lease_with(pool, Boom("ordinary"))
    second = end_lease_with(pool, DriverTimeout("read"))
    assert first.destroyed and second.destroyed and first is not second
    retired = pool.stats().retired
    assert (retired["error"], retired["abort"]) == (1, 1)


@pytest.mark.parametrize("listed", [(TimeoutError,), (Exception,), (respool.PoolTimeout,)])
def test_pool_timeout_stays_exempt(
    make_pool: PoolFactory, tracker: Tracker, listed: tuple[type[BaseException], ...]
) -> None:
    """A PoolTimeout ending a lease (the pool had nothing to lend a second acquire) is not an
    abort even when abort_on covers it: the held resource is reset and reused."""
    pool = make_pool(1, lifecycle=aborting(tracker, *listed))
    held: list[Res] = []
    with pytest.raises(respool.PoolTimeout), pool.acquire() as res:
        held.append(res)
        pool.acquire(timeout=0)  # the only resource is the one held here
    settle()
    assert not held[0].destroyed and held[0].resets == 1
    assert pool.stats().retired["abort"] == 0


def test_a_non_exception_is_an_abort_whatever_abort_on_says(
    make_pool: PoolFactory, tracker: Tracker
) -> None:
    """abort_on adds to the rule, never takes from it: an interrupt still destroys."""
    pool = make_pool(1, lifecycle=aborting(tracker))
    res = end_lease_with(pool, Abort())
    assert res.destroyed and pool.stats().retired["abort"] == 1


def test_a_reset_failing_with_a_listed_error_is_retired_as_an_abort(
    make_pool: PoolFactory, tracker: Tracker
) -> None:
    """A reset cut short by a listed error is a reset failure retired as an abort, as one
    cut short by a TimeoutError is."""
    pool = make_pool(1, lifecycle=aborting(tracker))
    tracker.fail_reset = DriverTimeout("reset's read")
    with pool.acquire():
        pass
    settle()
    stats = pool.stats()
    assert (stats.reset_errors, stats.retired["abort"], stats.retired["error"]) == (1, 1, 0)


@pytest.mark.usefixtures("debug_mode")
def test_debug_leases_follow_abort_on(make_pool: PoolFactory, tracker: Tracker, shell: str) -> None:
    """Debug mode's leases apply the same rule: listed, destroyed; unlisted, reused."""
    pool = make_pool(1, lifecycle=aborting(tracker))
    lease = pool.acquire()
    inner = getattr(lease, "lease", lease)  # (behind the facade: the asyncio lease)
    assert isinstance(inner, AsyncDebugLease if shell == "asyncio" else DebugLease)
    lease.release()
    kept = end_lease_with(pool, Boom("ordinary"))
    lost = end_lease_with(pool, DriverTimeout("read"))
    assert kept is lost and lost.destroyed and lost.resets == 2  # (release, Boom)
    assert pool.stats().retired["abort"] == 1


# -- the worker pools ----------------------------------------------------------------------


def _worker_lifecycle(tracker: Tracker, cleanup: bool) -> respool.Lifecycle[Res]:
    """With *cleanup*, reset and check run around each task (the general loop); without,
    a task takes the worker's bare hot path."""
    if cleanup:
        return aborting(tracker)
    return respool.Lifecycle(tracker.create, destroy=tracker.destroy, abort_on=DriverTimeout)


def _which(res: Res) -> Res:
    return res


def _fail(res: Res, error: BaseException) -> None:
    raise error


@pytest.mark.parametrize("cleanup", [True, False], ids=["cleanup", "bare"])
def test_worker_pool_replaces_the_resource_after_a_listed_error(
    tracker: Tracker, cleanup: bool
) -> None:
    """WorkerPool: a task raising a listed error costs its worker the resource (a new one
    serves the next task, retired["abort"]); an unlisted one leaves it in place."""
    with respool.WorkerPool(_worker_lifecycle(tracker, cleanup), workers=1) as pool:
        first = pool.submit(_which).result(5)
        with pytest.raises(Boom):
            pool.submit(_fail, Boom("ordinary")).result(5)
        assert pool.submit(_which).result(5) is first
        with pytest.raises(DriverTimeout):
            pool.submit(_fail, ReadTimeout("read")).result(5)
        second = pool.submit(_which).result(5)
        assert second is not first and first.destroyed
        stats = pool.stats()
        assert (stats.retired["abort"], stats.failed) == (1, 2), stats


@pytest.mark.parametrize("cleanup", [True, False], ids=["cleanup", "bare"])
def test_async_worker_pool_replaces_the_resource_after_a_listed_error(
    tracker: Tracker, cleanup: bool
) -> None:
    """AsyncWorkerPool: the same, for plain and async tasks."""

    async def fail_async(res: Res, error: BaseException) -> None:
        await asyncio.sleep(0)
        raise error

    async def main() -> None:
        async with respool.AsyncWorkerPool(_worker_lifecycle(tracker, cleanup), workers=1) as pool:
            first = await pool.submit(_which)
            with pytest.raises(Boom):
                await pool.submit(fail_async, Boom("ordinary"))
            assert await pool.submit(_which) is first
            with pytest.raises(DriverTimeout):
                await pool.submit(_fail, DriverTimeout("read"))
            second = await pool.submit(_which)
            with pytest.raises(DriverTimeout):
                await pool.submit(fail_async, ReadTimeout("read"))
            third = await pool.submit(_which)
            assert len({id(first), id(second), id(third)}) == 3
            assert first.destroyed and second.destroyed
            stats = pool.stats()
            assert (stats.retired["abort"], stats.failed) == (2, 3), stats

    asyncio.run(main())


def test_worker_pool_pool_timeout_from_a_task_is_no_abort(tracker: Tracker) -> None:
    """A task ending with PoolTimeout (from another pool) keeps its resource, even when
    abort_on lists TimeoutError."""
    life = aborting(tracker, TimeoutError)
    with respool.WorkerPool(life, workers=1) as pool:
        first = pool.submit(_which).result(5)
        with pytest.raises(respool.PoolTimeout):
            pool.submit(_fail, respool.PoolTimeout("another pool")).result(5)
        assert pool.submit(_which).result(5) is first
        assert pool.stats().retired["abort"] == 0


# -- TransientPool -------------------------------------------------------------------------


@pytest.mark.parametrize("hooked", [True, False], ids=["hooked", "lean"])
def test_transient_borrow_drops_the_object_after_a_listed_error(
    tracker: Tracker, hooked: bool
) -> None:
    """TransientPool.borrow(): a listed error drops the object (counted in aborted, destroyed
    when the lifecycle says how); an unlisted one puts it back for reuse. Both borrow forms:
    with hooks, and the lean one that inlines get and put."""
    if hooked:
        life = respool.Lifecycle(
            tracker.create, reset=tracker.reset, destroy=tracker.destroy, abort_on=DriverTimeout
        )
    else:
        life = respool.Lifecycle(tracker.create, abort_on=DriverTimeout)
    pool = respool.TransientPool(life)
    with pytest.raises(Boom), pool.borrow() as first:
        raise Boom("ordinary")
    with pytest.raises(ReadTimeout), pool.borrow() as again:
        assert again is first
        raise ReadTimeout("read")
    with pool.borrow() as fresh:
        assert fresh is not first
    assert pool.stats().aborted == 1
    assert first.destroyed is hooked


def test_transient_borrow_keeps_pool_timeout_exempt(tracker: Tracker) -> None:
    """TransientPool.borrow(): PoolTimeout is not an abort even with TimeoutError listed."""
    pool = respool.TransientPool(respool.Lifecycle(tracker.create, abort_on=TimeoutError))
    with pytest.raises(respool.PoolTimeout), pool.borrow() as first:
        raise respool.PoolTimeout("another pool")
    with pool.borrow() as again:
        assert again is first
    assert pool.stats().aborted == 0


# -- the policy and the argument -----------------------------------------------------------


def test_the_policy_reads_abort_on() -> None:
    """aborted/discards/retirement: listed classes and subclasses abort, PoolError never does,
    non-Exceptions and TimeoutError always do."""
    listed = (DriverTimeout,)
    assert policy.aborted(ReadTimeout, listed) and not policy.aborted(ReadTimeout)
    assert not policy.aborted(Boom, listed)
    assert policy.aborted(TimeoutError) and policy.aborted(Abort)
    for covering in ((TimeoutError,), (Exception,), (respool.PoolError,)):
        assert not policy.aborted(respool.PoolTimeout, covering)
        assert not policy.aborted(respool.PoolClosed, covering)
    assert policy.discards(DriverTimeout, False, listed)
    assert not policy.discards(DriverTimeout, False)
    assert not policy.discards(None, True, listed)
    assert policy.retirement(DriverTimeout, listed) == "abort"
    assert policy.retirement(DriverTimeout) == "error"


def test_abort_on_accepts_a_class_or_a_tuple_of_them() -> None:
    """One class is stored as a one-tuple; a tuple as given; the default is empty."""
    assert respool.Lifecycle(list).abort_on == ()
    assert respool.Lifecycle(list, abort_on=DriverTimeout).abort_on == (DriverTimeout,)
    both = (DriverTimeout, KeyboardInterrupt)
    assert respool.Lifecycle(list, abort_on=both).abort_on == both


@pytest.mark.parametrize(
    "bad",
    [
        None,
        3,
        "TimeoutError",
        [DriverTimeout],
        {DriverTimeout},
        int,
        (DriverTimeout, 3),
        DriverTimeout(),
    ],
)
def test_a_bad_abort_on_is_a_type_error_naming_it(bad: object) -> None:
    """Anything but an exception class or a tuple of them is refused, naming abort_on."""
    with pytest.raises(TypeError, match="abort_on"):
        respool.Lifecycle(list, abort_on=bad)  # type: ignore[arg-type]


def test_coerce_and_replace_keep_abort_on() -> None:
    """coerce (merging keyword callbacks) and dataclasses.replace keep abort_on."""
    base: respool.Lifecycle[list[Any]] = respool.Lifecycle(list, abort_on=DriverTimeout)
    merged = coerce(base, reset=list.clear, destroy=list.clear)
    assert merged.abort_on == (DriverTimeout,) and merged.reset is list.clear
    assert dataclasses.replace(base, check=bool).abort_on == (DriverTimeout,)
    assert dataclasses.replace(base, abort_on=()).abort_on == ()
    assert coerce(list).abort_on == ()


def test_every_redis_lifecycle_lists_redis_timeouts_only() -> None:
    """respool.contrib.redis: its four lifecycles list redis-py's TimeoutError (not its
    ConnectionError: reset refuses a closed connection anyway). Building them connects
    nothing, so no server is needed."""
    redis_exceptions = pytest.importorskip("redis.exceptions")
    from respool.contrib import redis as rp_redis

    for factory in (
        rp_redis.clients,
        rp_redis.connections,
        rp_redis.async_clients,
        rp_redis.async_connections,
    ):
        life: respool.Lifecycle[Any] = factory()
        assert life.abort_on == (redis_exceptions.TimeoutError,), factory
        assert not policy.aborted(redis_exceptions.ConnectionError, life.abort_on)
