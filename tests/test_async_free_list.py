"""What only the asyncio free-list pools have: loops, async callbacks, and cancellation.

The behaviour both shells share runs in test_behaviour.py (the asyncio pools behind a
blocking facade); here the tests are coroutines, run by ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import random
import warnings
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import pytest

import respool
from respool.errors import LeaseError, PoolClosed, PoolTimeout
from tests.conftest import Boom

pytestmark = pytest.mark.timeout(60)

KINDS = ["fixed", "elastic"]


@dataclass(eq=False)
class Conn:
    """A fake connection: an identity, and what happened to it."""

    n: int
    destroyed: bool = False
    broken: bool = False
    users: int = 0  # lent right now (must never exceed 1)


@dataclass
class AsyncLife:
    """Async callbacks that record calls, with a switch per callback: ok, raise, slow, hang."""

    made: list[Conn] = field(default_factory=list)
    destroyed: list[Conn] = field(default_factory=list)
    create_mode: str = "ok"
    check_mode: str = "ok"
    reset_mode: str = "ok"
    destroy_mode: str = "ok"
    numbers: Any = field(default_factory=itertools.count)

    async def _behave(self, mode: str) -> None:
        if mode == "raise":
            raise Boom(mode)
        if mode == "slow":
            await asyncio.sleep(0.002)
        elif mode == "hang":
            await asyncio.sleep(3600)
        else:
            await asyncio.sleep(0)

    async def create(self) -> Conn:
        await self._behave(self.create_mode)
        conn = Conn(next(self.numbers))
        self.made.append(conn)
        return conn

    async def check(self, conn: Conn) -> bool:
        assert not conn.destroyed, f"check of destroyed {conn}"
        await self._behave(self.check_mode)
        return not conn.broken

    async def reset(self, conn: Conn) -> None:
        assert not conn.destroyed, f"reset of destroyed {conn}"
        await self._behave(self.reset_mode)

    async def destroy(self, conn: Conn) -> None:
        assert not conn.destroyed, f"{conn} destroyed twice"
        conn.destroyed = True
        self.destroyed.append(conn)
        await self._behave(self.destroy_mode)

    def lifecycle(self, *, check: bool = True) -> respool.Lifecycle[Any]:
        return respool.Lifecycle(
            self.create,
            reset=self.reset,
            check=self.check if check else None,
            destroy=self.destroy,
        )


def make(kind: str, lifecycle: Any, capacity: int = 2, **options: Any) -> Any:
    if kind == "fixed":
        return respool.AsyncFixedPool(lifecycle, size=capacity, **options)
    options.setdefault("max_idle", capacity)
    return respool.AsyncElasticPool(lifecycle, max_size=capacity, **options)


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def quiet(pool: Any) -> None:
    """Let the pool's background work and chores finish, then check the counting rules."""
    from tests.async_facade import quiesce

    await quiesce(pool)
    stats = pool.stats()
    assert stats.created - stats.destroyed == stats.size == stats.idle + stats.in_use, stats
    assert stats.waiting == 0, stats
    with pool._lock:
        pool._core.check_invariants()


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# -- loops, opening, closing -----------------------------------------------------------------


def test_pool_is_built_outside_a_loop_and_creates_nothing_until_opened(kind: str) -> None:
    """No loop is needed to construct; resources are made by open() on the running loop."""
    life = AsyncLife()
    pool = (
        make(kind, life.lifecycle(), min_idle=1)
        if kind == "elastic"
        else make(kind, life.lifecycle())
    )
    assert life.made == []

    async def main() -> None:
        async with pool:
            assert len(life.made) == (2 if kind == "fixed" else 1)
            async with pool.acquire() as conn:
                assert isinstance(conn, Conn)
        assert pool.closed

    run(main())
    assert all(conn.destroyed for conn in life.made)


def test_first_use_without_open_binds_the_loop_and_fills_in_the_background() -> None:
    """A pool used before open() still lends: the background task makes what it must hold."""
    life = AsyncLife()
    pool = respool.AsyncFixedPool(life.lifecycle(), size=2)

    async def main() -> None:
        async with pool.acquire(timeout=2) as conn:
            assert isinstance(conn, Conn)
        await quiet(pool)
        assert pool.stats().size == 2
        await pool.close()

    run(main())


def test_a_second_event_loop_is_refused_clearly() -> None:
    """Resources belong to the loop that made them: another loop gets a RuntimeError."""
    pool = respool.AsyncFixedPool(lambda: object(), size=1)

    async def first() -> None:
        await pool.open()
        async with pool.acquire():
            pass

    async def second() -> None:
        with pytest.raises(RuntimeError, match="event loop"):
            async with pool.acquire():
                pass
        with pytest.raises(RuntimeError, match="event loop"):
            pool.try_acquire()
        with pytest.raises(RuntimeError, match="event loop"):
            await pool.open()

    run(first())
    run(second())


def test_try_acquire_outside_a_loop_says_it_needs_one() -> None:
    """try_acquire() is plain, but an asyncio pool still needs its running loop."""
    pool = respool.AsyncFixedPool(lambda: object(), size=1)
    with pytest.raises(RuntimeError, match="running asyncio event loop"):
        pool.try_acquire()


def test_failing_open_destroys_what_it_made_and_raises(kind: str) -> None:
    """open(): the create error propagates, earlier resources are destroyed, the pool closes."""
    life = AsyncLife()
    calls = 0

    async def create() -> Conn:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise Boom("second")
        return await life.create()

    options = {"min_idle": 2} if kind == "elastic" else {}
    pool = make(kind, respool.Lifecycle(create, destroy=life.destroy), **options)

    async def main() -> None:
        with pytest.raises(Boom):
            await pool.open()
        assert pool.closed
        await pool.close()

    run(main())
    assert [c.destroyed for c in life.made] == [True]
    stats = pool.stats()
    assert stats.created - stats.destroyed == stats.size == 0


def test_close_with_waiters_and_leases_outstanding(kind: str) -> None:
    """Waiters get PoolClosed; a lease ended after close() destroys its resource."""
    life = AsyncLife()
    pool = make(kind, life.lifecycle(), capacity=1)

    async def main() -> None:
        await pool.open()
        lease = await pool.acquire()
        waiter = asyncio.create_task(pool.acquire(timeout=5).__aenter__())
        while pool.stats().waiting == 0:
            await asyncio.sleep(0)
        await pool.close()
        with pytest.raises(PoolClosed):
            await waiter
        assert not lease.resource.destroyed
        await lease.release()
        await quiet(pool)
        assert lease_resource_destroyed(life)
        with pytest.raises(PoolClosed):
            await pool.acquire()

    def lease_resource_destroyed(life: AsyncLife) -> bool:
        return all(conn.destroyed for conn in life.made)

    run(main())


def test_pool_collected_while_open_ends_its_task_and_destroys_idle_resources() -> None:
    """Nothing pending is left behind by a pool dropped while open (and its idle go)."""
    life = AsyncLife()

    async def main() -> None:
        pool = respool.AsyncFixedPool(life.lifecycle(), size=2, max_lifetime=60)
        await pool.open()
        async with pool.acquire():
            pass
        task = pool._tender
        assert task is not None
        del pool
        gc.collect()
        await asyncio.wait_for(task, 2)  # it ended
        for _ in range(10):
            await asyncio.sleep(0)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run(main())
    assert len(life.made) == 2
    assert all(conn.destroyed for conn in life.made)


def test_async_and_plain_callbacks_mix(kind: str) -> None:
    """Any callback may be plain or async def, or a plain function returning an awaitable."""
    made: list[Conn] = []
    reset_calls: list[int] = []

    async def connect() -> Conn:
        conn = Conn(len(made))
        made.append(conn)
        return conn

    pool = make(
        kind,
        lambda: connect(),  # a plain function returning a coroutine
        reset=lambda conn: reset_calls.append(conn.n),
        check=lambda conn: not conn.broken,
        destroy=lambda conn: setattr(conn, "destroyed", True),
    )

    async def main() -> None:
        async with pool:
            async with pool.acquire() as conn:
                conn.broken = True
            async with pool.acquire() as other:
                assert other is not conn  # the broken one failed its check
            assert conn.destroyed
        assert reset_calls

    run(main())


def test_threaded_pools_refuse_async_callbacks() -> None:
    """An async def callback on a threaded pool would never run: TypeError naming the twin."""

    async def create() -> object:
        return object()

    with pytest.raises(TypeError, match="AsyncFixedPool"):
        respool.FixedPool(create, size=1)
    with pytest.raises(TypeError, match="AsyncElasticPool"):
        respool.ElasticPool(lambda: object(), reset=create_reset)


async def create_reset(obj: object) -> None:
    """An async reset, for the refusal test."""


def test_acquire_is_awaitable_and_a_context_manager(kind: str) -> None:
    """await acquire() gives the lease; async with gives the resource; misuse is clear."""
    pool = make(kind, AsyncLife().lifecycle())

    async def main() -> None:
        async with pool:
            pending = pool.acquire()
            with pytest.raises(LeaseError, match="not acquired yet"):
                _ = pending.resource
            lease = await pending
            assert lease is pending and lease.active
            with pytest.raises(LeaseError, match="acquired already"):
                await lease
            async with lease as conn:  # a held lease can end with async with
                assert conn is lease.resource
            assert not lease.active
            with pytest.raises(LeaseError):
                await lease.release()
            other = await pool.acquire()
            await other.discard()
            assert pool.stats().retired["abort"] == 1

    run(main())


def test_try_acquire_with_an_async_check_never_waits(kind: str) -> None:
    """A resource due for an async check is checked by the pool's task; None meanwhile."""
    life = AsyncLife()
    pool = make(kind, life.lifecycle(), capacity=1)

    async def main() -> None:
        async with pool:
            async with pool.acquire():
                pass
            assert pool.try_acquire() is None  # its check runs in the background
            await quiet(pool)
            async with pool.acquire() as conn:
                assert not conn.destroyed

    run(main())


# -- cancellation -------------------------------------------------------------------------------


def test_cancelled_waiter_loses_nothing_even_when_granted_at_that_instant(kind: str) -> None:
    """A resource handed to a waiter as it is cancelled goes on to the next waiter."""
    pool = make(kind, AsyncLife().lifecycle(check=False), capacity=1, fairness="fifo")

    async def main() -> None:
        async with pool:
            held = await pool.acquire()
            first = asyncio.create_task(pool.acquire(timeout=5)._acquire())
            second = asyncio.create_task(pool.acquire(timeout=5)._acquire())
            while pool.stats().waiting < 2:
                await asyncio.sleep(0)
            await held.release()  # granted to `first`, whose task has not run yet...
            first.cancel()  # ...and is cancelled before it does
            with pytest.raises(asyncio.CancelledError):
                await first
            lease = await asyncio.wait_for(second, 2)  # the grant went on
            await lease.release()
            await quiet(pool)

    run(main())


def test_wait_for_around_acquire_always_bounds_it(kind: str) -> None:
    """wait_for and asyncio.timeout cut a waiting acquire short; nothing is stranded."""
    pool = make(kind, AsyncLife().lifecycle(), capacity=1)

    async def main() -> None:
        async with pool:
            held = await pool.acquire()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(pool.acquire(timeout=None)._acquire(), 0.05)
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05), pool.acquire(timeout=None):
                    pass
            await held.release()
            async with pool.acquire(timeout=1):
                pass
            await quiet(pool)

    run(main())


@pytest.mark.parametrize("how", ["cancel", "timeout", "wait_for", "inner timeout"])
def test_body_cut_short_destroys_the_resource(kind: str, how: str) -> None:
    """Cancelled or timed out inside the block: destroyed, never lent again."""
    life = AsyncLife()
    pool = make(kind, life.lifecycle(check=False), capacity=1)

    async def main() -> None:
        async with pool:
            inside = asyncio.Event()
            seen: list[Conn] = []

            async def body() -> None:
                async with pool.acquire() as conn:
                    seen.append(conn)
                    inside.set()
                    if how == "inner timeout":
                        async with asyncio.timeout(0.01):
                            await asyncio.sleep(10)
                    await asyncio.sleep(10)

            if how == "cancel":
                task = asyncio.create_task(body())
                await inside.wait()
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            elif how == "timeout":
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.01):
                        await body()
            else:
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(body(), 0.01 if how == "wait_for" else 5)
            await quiet(pool)
            assert seen[0].destroyed
            assert pool.stats().retired["abort"] == 1
            async with pool.acquire(timeout=1) as conn:
                assert conn is not seen[0]

    run(main())


@pytest.mark.parametrize("where", ["create", "check", "reset"])
def test_cancelled_inside_a_callback_leaves_counts_exact(kind: str, where: str) -> None:
    """Cancelled while create/check/reset runs for it: counts exact, nothing lent twice,
    the interrupted resource destroyed (or, for a create, handed to the pool)."""
    life = AsyncLife()
    setattr(life, f"{where}_mode", "slow")
    pool = make(kind, life.lifecycle(), capacity=1)

    async def main() -> None:
        if where != "create":
            await pool.open()
            async with pool.acquire():  # one idle resource, used once: the next is checked
                pass
        else:
            pool._enter("test")  # bound, nothing made yet: the acquire creates (elastic)
        lease: Any = None

        async def use() -> None:
            nonlocal lease
            lease = await pool.acquire(timeout=5)
            if where == "reset":
                await lease.release()

        task = asyncio.create_task(use())
        await asyncio.sleep(0.001)  # inside the slow callback (2 ms)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.01)  # let a create the caller left finish
        await quiet(pool)
        stats = pool.stats()
        assert stats.in_use == 0, stats
        if where in ("check", "reset"):
            assert any(conn.destroyed for conn in life.made)
            assert stats.retired["abort"] == 1, stats  # a cut-short callback is an abort
        async with pool.acquire(timeout=2) as conn:
            assert not conn.destroyed
        await pool.close()
        await quiet(pool)
        assert all(conn.destroyed for conn in life.made)

    run(main())


def test_a_hanging_async_create_is_bounded_by_the_acquire_timeout() -> None:
    """acquire(timeout=) bounds an async create that hangs; close() ends it."""
    life = AsyncLife(create_mode="hang")
    pool = respool.AsyncElasticPool(life.lifecycle(), max_size=1)

    async def main() -> None:
        pool._enter("test")
        with pytest.raises(PoolTimeout):
            await pool.acquire(timeout=0.05)
        for task in pool._chores.tasks:
            task.cancel()
        await pool.close()
        await quiet(pool)
        assert pool.stats().creating == 0

    run(main())


# -- the fault matrix ----------------------------------------------------------------------------

CALLBACKS = ["create", "check", "reset", "destroy"]
MODES = ["ok", "raise", "slow", "hang"]


@pytest.mark.parametrize("callback", CALLBACKS)
@pytest.mark.parametrize("mode", MODES)
def test_fault_matrix(kind: str, callback: str, mode: str) -> None:
    """Many tasks, cancelled at random points, one callback failing one way (raising, slow,
    hanging until cancelled): afterwards nothing was lent twice, size <= max,
    created - destroyed == size == idle + in_use, nobody waits, and once the pool is closed
    every resource made was destroyed exactly once."""
    rng = random.Random(f"{kind}-{callback}-{mode}")
    life = AsyncLife()
    capacity = 3
    pool = make(kind, life.lifecycle(), capacity=capacity, timeout=0.2)

    async def use() -> None:
        try:
            # A hang is cut short by this deadline: one more cancellation, at a random point.
            async with asyncio.timeout(0.3), pool.acquire(timeout=0.2) as conn:
                conn.users += 1
                try:
                    assert conn.users == 1, f"{conn} lent twice"
                    assert not conn.destroyed
                    await asyncio.sleep(rng.choice([0, 0, 0.001]))
                finally:
                    conn.users -= 1
        except (PoolTimeout, Boom, TimeoutError):
            pass

    async def main() -> None:
        await pool.open()
        setattr(life, f"{callback}_mode", mode)
        tasks = [asyncio.create_task(use()) for _ in range(60)]
        for _ in range(20):
            await asyncio.sleep(rng.choice([0, 0.0005, 0.001]))
            rng.choice(tasks).cancel()
            assert pool.stats().size <= capacity
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            assert result is None or isinstance(result, asyncio.CancelledError), result
        setattr(life, f"{callback}_mode", "ok")
        for chore in pool._chores.tasks:  # hanging destroys or creates left to the pool
            chore.cancel()
        await quiet(pool)
        await asyncio.wait_for(pool.close(), 2)
        await quiet(pool)

    run(main())
    stats = pool.stats()
    assert stats.size == 0 and stats.in_use == 0 and stats.waiting == 0, stats
    assert stats.created == stats.destroyed, stats
    assert all(conn.users == 0 for conn in life.made)
    # AsyncLife asserts that none is destroyed twice.
    assert len(life.destroyed) == len(life.made), (len(life.destroyed), len(life.made))


def test_chaos_soak_of_many_tasks_with_cancellations_and_faults(kind: str) -> None:
    """A longer mix: faults switching at random while tasks come, hold, cancel and time out."""
    rng = random.Random(kind)
    life = AsyncLife()
    pool = make(kind, life.lifecycle(), capacity=4, max_uses=7)

    async def worker(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with asyncio.timeout(rng.choice([0.002, 0.02, 1])):
                    async with pool.acquire(timeout=0.05) as conn:
                        conn.users += 1
                        try:
                            assert conn.users == 1
                            await asyncio.sleep(rng.choice([0, 0.001, 0.005]))
                        finally:
                            conn.users -= 1
            except (PoolTimeout, Boom, TimeoutError):
                pass

    async def main() -> None:
        await pool.open()
        stop = asyncio.Event()
        workers = [asyncio.create_task(worker(stop)) for _ in range(16)]
        for _ in range(40):
            await asyncio.sleep(0.005)
            for name in ("create", "check", "reset", "destroy"):
                setattr(life, f"{name}_mode", rng.choice(["ok", "ok", "raise", "slow"]))
            rng.choice(workers).cancel()
        stop.set()
        await asyncio.gather(*workers, return_exceptions=True)
        for name in ("create", "check", "reset", "destroy"):
            setattr(life, f"{name}_mode", "ok")
        await quiet(pool)
        await pool.close()
        await quiet(pool)

    run(main())
    assert len(life.destroyed) == len(life.made)
    assert all(conn.users == 0 for conn in life.made)


# -- debug mode ------------------------------------------------------------------------------


def test_debug_mode_refuses_a_resource_still_in_use_and_names_where_it_was_acquired(
    kind: str, debug_mode: None
) -> None:
    """Debug mode on an asyncio pool: a resource given back while still referenced is
    destroyed with StillInUse; a stale lease's error shows where it was acquired."""
    pool = make(kind, lambda: bytearray(16), capacity=1)
    holders: list[memoryview] = []

    async def acquire_here() -> respool.AsyncLease[bytearray]:
        return await pool.acquire()

    async def main() -> None:
        async with pool:
            lease = await acquire_here()
            assert isinstance(lease, respool.AsyncLease)
            holders.append(memoryview(lease.resource))
            with pytest.raises(respool.StillInUse, match="acquire_here"):
                await lease.release()
            holders.clear()
            with pytest.raises(LeaseError, match="acquire_here"):
                await lease.release()
            assert pool.stats().retired["error"] == 1
            async with pool.acquire(timeout=1) as buf:  # replaced, lent again
                assert isinstance(buf, bytearray)

    run(main())


def test_debug_mode_off_lends_plain_async_leases(kind: str, normal_mode: None) -> None:
    """Debug off: the plain AsyncLease, with nothing recorded."""
    pool = make(kind, lambda: object(), capacity=1)

    async def main() -> None:
        async with pool:
            lease = await pool.acquire()
            assert type(lease) is respool.AsyncLease
            await lease.release()

    run(main())


def test_threaded_worker_pool_refuses_async_callbacks() -> None:
    """WorkerPool calls its callbacks in its threads: an async def one names the twin."""
    with pytest.raises(TypeError, match="AsyncWorkerPool"):
        respool.WorkerPool(create_reset, workers=1)


def test_a_create_that_outlasts_the_acquire_timeout_counts_a_timeout() -> None:
    """acquire(timeout=) ending while its async create still runs is counted in timeouts."""
    life = AsyncLife(create_mode="hang")
    pool = respool.AsyncElasticPool(life.lifecycle(), max_size=1)

    async def main() -> None:
        pool._enter("test")
        with pytest.raises(PoolTimeout):
            await pool.acquire(timeout=0.02)
        assert pool.stats().timeouts == 1
        await pool.close()

    run(main())


def test_resources_with_hostile_eq_and_bool_are_never_compared(kind: str) -> None:
    """numpy arrays as resources (== is elementwise, bool() raises): lent, checked by a
    plain predicate, cancelled and destroyed without the pool ever comparing them."""
    np = pytest.importorskip("numpy")
    made: list[Any] = []

    async def create() -> Any:
        array = np.zeros(4)
        made.append(array)
        return array

    pool = make(kind, create, capacity=2, check=lambda a: a.shape == (4,), destroy=lambda a: None)

    async def use(hold: float) -> None:
        async with pool.acquire(timeout=1) as array:
            array += 1
            await asyncio.sleep(hold)

    async def main() -> None:
        async with pool:
            tasks = [asyncio.create_task(use(0.001 * (i % 3))) for i in range(20)]
            await asyncio.sleep(0.002)
            tasks[5].cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await quiet(pool)

    run(main())
    stats = pool.stats()
    assert stats.acquires >= 19 and stats.size == 0, stats


@pytest.mark.timeout(30)
def test_background_task_yields_while_creates_back_off_and_resources_sit_idle() -> None:
    """A refill that keeps failing while housekeeping has idle resources to look at: the
    pool's task waits for the retry, it never spins without yielding to the loop."""
    calls = 0

    def create() -> object:
        nonlocal calls
        calls += 1
        if calls > 2:
            raise Boom("down")
        return object()

    async def main() -> None:
        pool = respool.AsyncElasticPool(create, min_idle=2, max_idle=4, max_lifetime=60)
        await pool.open()
        lease = await pool.acquire()
        await lease.discard()  # owed: the refill fails and backs off; one stays idle
        ticks = 0
        loop = asyncio.get_running_loop()
        until = loop.time() + 0.2
        while loop.time() < until:  # other tasks keep running meanwhile
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks >= 5
        assert 3 <= calls <= 10, calls  # retried with backoff, not in a loop
        await pool.close()

    run(main())


@pytest.mark.timeout(60)
@pytest.mark.parametrize("seed", range(12))
def test_soak_with_resize_drain_try_acquire_and_a_close_race(seed: int) -> None:
    """Many tasks acquiring (by await, async with, try_acquire), cut short by timeouts and
    cancellations, while callbacks fail at random and the pool is resized, drained and
    closed under them: nothing lent twice or dead, and every resource made is destroyed."""
    rng = random.Random(seed)
    life = AsyncLife()
    kind = rng.choice(KINDS)
    options: dict[str, Any] = {
        "fairness": rng.choice(["bounded", "fifo"]),
        "max_uses": rng.choice([None, 5]),
        "max_lifetime": rng.choice([None, 0.05]),
    }
    if kind == "elastic":
        options.update(min_idle=1, max_idle=2, idle_timeout=rng.choice([None, 0.01]))
    pool = make(kind, life.lifecycle(), capacity=3, **options)

    async def use(conn: Conn) -> None:
        conn.users += 1
        try:
            assert conn.users == 1, f"{conn} lent twice"
            assert not conn.destroyed, f"{conn} lent after destroy"
            await asyncio.sleep(rng.choice([0, 0, 0.001]))
            if rng.random() < 0.05:
                raise Boom("in the block")
        finally:
            conn.users -= 1

    async def user(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with asyncio.timeout(rng.choice([0.002, 0.02, 1])):
                    if rng.random() < 0.2:
                        lease = pool.try_acquire()
                        if lease is not None:
                            async with lease as conn:
                                await use(conn)
                    else:
                        async with pool.acquire(timeout=rng.choice([0, 0.01, 0.1])) as conn:
                            await use(conn)
            except (PoolTimeout, Boom, TimeoutError):
                pass
            except PoolClosed:
                return
            await asyncio.sleep(0)

    async def main() -> None:
        await pool.open()
        stop = asyncio.Event()
        users = [asyncio.create_task(user(stop)) for _ in range(rng.choice([4, 16, 40]))]
        for _ in range(150):
            await asyncio.sleep(rng.choice([0, 0.001]))
            for name in CALLBACKS:
                setattr(life, f"{name}_mode", rng.choice(["ok"] * 6 + ["raise", "slow"]))
            roll = rng.random()
            if roll < 0.1:
                rng.choice(users).cancel()
            elif roll < 0.12:
                pool.drain()
            elif roll < 0.14:
                if kind == "fixed":
                    pool.resize(rng.choice([1, 2, 3, 5]))
                else:
                    pool.resize(max_size=rng.choice([2, 4, 6]))
        for name in CALLBACKS:
            setattr(life, f"{name}_mode", "ok")
        if rng.random() < 0.5:
            await pool.close()  # close races the users
        stop.set()
        await asyncio.gather(*users, return_exceptions=True)
        await pool.close()
        await quiet(pool)

    run(main())
    stats = pool.stats()
    assert stats.size == stats.in_use == stats.waiting == 0, stats
    assert stats.created == stats.destroyed, stats
    assert len(life.destroyed) == len(life.made)
    assert all(conn.users == 0 for conn in life.made)


# -- an async check at the acquire's deadline -------------------------------------------------


class Gated:
    """An async check the test answers: it waits for ``gate`` (open: it answers at once) and
    returns ``verdict``. Cancelled, it records it and, when ``slow_to_stop``, goes on until
    ``stop`` is set (2 s at most), as a psycopg check cancelled mid-query does. ``events``
    records, in order, each check begun, cancelled and stopped, and each destroy."""

    def __init__(self, life: AsyncLife, *, slow_to_stop: bool = False) -> None:
        self.life = life
        self.slow_to_stop = slow_to_stop
        self.events: list[str] = []
        self.entered = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.gate = asyncio.Event()
        self.gate.set()
        self.stop = asyncio.Event()
        self.verdict = True

    async def check(self, conn: Conn) -> bool:
        assert not conn.destroyed, f"check of destroyed {conn}"
        self.events.append(f"check {conn.n}")
        self.entered.set()
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.events.append(f"cancelled {conn.n}")
            self.cancelled.set()
            if self.slow_to_stop:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(2):
                        await self.stop.wait()
            assert not conn.destroyed, f"{conn} destroyed while its check ran"
            self.events.append(f"stopped {conn.n}")
            raise
        return self.verdict

    async def destroy(self, conn: Conn) -> None:
        self.events.append(f"destroyed {conn.n}")
        await self.life.destroy(conn)

    def lifecycle(self) -> respool.Lifecycle[Any]:
        return respool.Lifecycle(self.life.create, check=self.check, destroy=self.destroy)

    def hold(self) -> None:
        """From now on a check waits for the test (``gate``)."""
        self.gate.clear()
        self.entered.clear()


def record_loop_errors(errors: list[dict[str, Any]]) -> None:
    """Send what asyncio would log (a task destroyed while pending, an exception never
    retrieved) to *errors* instead, for the test to assert there is none."""
    asyncio.get_running_loop().set_exception_handler(lambda loop, context: errors.append(context))


async def used_once(pool: Any) -> Conn:
    """Open *pool* (capacity 1), lend its resource once and give it back: the next acquire
    checks it (it was not made for that caller)."""
    await pool.open()
    async with pool.acquire(timeout=2) as conn:
        pass
    assert isinstance(conn, Conn)
    return conn


@pytest.mark.parametrize("verdict", [True, False], ids=["passes", "fails"])
@pytest.mark.parametrize("slow_to_stop", [False, True], ids=["hangs", "slow-to-stop"])
def test_a_check_past_the_acquire_deadline_goes_on_as_the_pools_task(
    kind: str, slow_to_stop: bool, verdict: bool
) -> None:
    """acquire(timeout=0.2) whose check hangs (or would be slow to stop if cancelled) raises
    PoolTimeout well under 1 s, without cancelling the check; when the check ends, passed:
    the resource is idle again and lent next, not remade; failed: destroyed, counted, replaced.
    """
    life = AsyncLife()
    errors: list[dict[str, Any]] = []

    async def main() -> None:
        record_loop_errors(errors)
        loop = asyncio.get_running_loop()
        gated = Gated(life, slow_to_stop=slow_to_stop)
        pool = make(kind, gated.lifecycle(), capacity=1)
        conn = await used_once(pool)
        before = pool.stats()
        gated.hold()
        began = loop.time()
        with pytest.raises(PoolTimeout):
            await pool.acquire(timeout=0.2)
        assert loop.time() - began < 0.7
        stats = pool.stats()
        assert (stats.timeouts, stats.check_failures, stats.destroyed) == (1, 0, 0), stats
        assert (stats.idle, stats.in_use) == (0, 1), stats  # the check holds it
        assert gated.events[-1] == f"check {conn.n}"  # still running: not cancelled
        gated.verdict = verdict
        gated.gate.set()
        await quiet(pool)
        stats = pool.stats()
        if verdict:
            assert (stats.idle, stats.destroyed, stats.check_failures) == (1, 0, 0), stats
            async with pool.acquire(timeout=1) as again:
                assert again is conn
            assert pool.stats().created == before.created
        else:
            assert conn.destroyed
            assert (stats.check_failures, stats.retired["check"]) == (1, 1), stats
            async with pool.acquire(timeout=1) as again:
                assert again is not conn and not again.destroyed
        assert not any(event.startswith("cancelled") for event in gated.events)
        await pool.close()
        await quiet(pool)

    run(main())
    gc.collect()
    assert errors == []
    assert len(life.destroyed) == len(life.made)


@pytest.mark.parametrize("verdict", [True, False], ids=["passes", "fails"])
def test_a_waiter_is_served_when_a_check_left_running_ends(kind: str, verdict: bool) -> None:
    """A caller queued while a timed-out caller's check still runs is served when it ends:
    with that resource if it passed, else with its replacement; nobody is stranded."""
    life = AsyncLife()

    async def main() -> None:
        gated = Gated(life)
        pool = make(kind, gated.lifecycle(), capacity=1)
        conn = await used_once(pool)
        gated.hold()
        with pytest.raises(PoolTimeout):
            await pool.acquire(timeout=0.05)
        waiter = asyncio.create_task(pool.acquire(timeout=5)._acquire())
        while pool.stats().waiting < 1:
            await asyncio.sleep(0)
        gated.verdict = verdict
        gated.gate.set()
        lease = await asyncio.wait_for(waiter, 2)
        assert (lease.resource is conn) is verdict and not lease.resource.destroyed
        await lease.release()
        await quiet(pool)
        stats = pool.stats()
        assert (stats.created, stats.check_failures) == ((1, 0) if verdict else (2, 1)), stats
        await pool.close()
        await quiet(pool)

    run(main())


def test_a_caller_cancelled_mid_check_returns_at_once_and_the_resource_dies_after_the_check(
    kind: str,
) -> None:
    """Cancelling a caller whose check is slow to stop returns at once; the resource is
    destroyed, as an abort, only once its check has stopped, never while it runs."""
    life = AsyncLife()
    errors: list[dict[str, Any]] = []

    async def main() -> None:
        record_loop_errors(errors)
        loop = asyncio.get_running_loop()
        gated = Gated(life, slow_to_stop=True)
        pool = make(kind, gated.lifecycle(), capacity=1)
        conn = await used_once(pool)
        gated.hold()
        caller = asyncio.create_task(pool.acquire(timeout=5)._acquire())
        await asyncio.wait_for(gated.entered.wait(), 2)
        began = loop.time()
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        assert loop.time() - began < 0.5
        await asyncio.wait_for(gated.cancelled.wait(), 2)
        assert not conn.destroyed  # its check has not stopped yet
        assert pool.stats().destroyed == 0
        gated.stop.set()
        await quiet(pool)
        assert gated.events[-3:] == [
            f"cancelled {conn.n}",
            f"stopped {conn.n}",
            f"destroyed {conn.n}",
        ]
        stats = pool.stats()
        assert (stats.retired["abort"], stats.check_failures, stats.timeouts) == (1, 0, 0)
        gated.gate.set()
        async with pool.acquire(timeout=2) as fresh:
            assert fresh is not conn and not fresh.destroyed
        await pool.close()
        await quiet(pool)

    run(main())
    gc.collect()
    assert errors == []


@pytest.mark.parametrize("slow_to_stop", [False, True], ids=["hangs", "slow-to-stop"])
def test_close_cancels_a_check_left_running_and_destroys_its_resource(
    kind: str, slow_to_stop: bool
) -> None:
    """close() with a check left running by a timed-out caller cancels it, destroys its
    resource once it has stopped, and returns with nothing of the pool's left pending."""
    life = AsyncLife()
    errors: list[dict[str, Any]] = []

    async def main() -> None:
        record_loop_errors(errors)
        gated = Gated(life, slow_to_stop=slow_to_stop)
        pool = make(kind, gated.lifecycle(), capacity=1)
        conn = await used_once(pool)
        gated.hold()
        with pytest.raises(PoolTimeout):
            await pool.acquire(timeout=0.05)
        closing = asyncio.create_task(pool.close())
        await asyncio.wait_for(gated.cancelled.wait(), 2)
        if slow_to_stop:
            await asyncio.sleep(0.01)
            assert not closing.done() and not conn.destroyed  # close waits for the check
            gated.stop.set()
        await asyncio.wait_for(closing, 2)
        assert conn.destroyed
        assert gated.events[-2:] == [f"stopped {conn.n}", f"destroyed {conn.n}"]
        stats = pool.stats()
        assert stats.size == 0 and stats.retired["close"] == 1 and stats.check_failures == 0
        assert not pool._chores.tasks and not pool._checks
        assert asyncio.all_tasks() == {asyncio.current_task()}

    run(main())
    gc.collect()
    assert errors == []


@pytest.mark.parametrize("left", [False, True], ids=["caller-waits", "caller-left"])
def test_a_check_that_enters_asyncio_timeout_before_suspending_times_out_itself(
    kind: str, left: bool
) -> None:
    """A check entering asyncio.timeout in its first step (as the asyncpg and redis checks
    do) captures its own task, not the caller's: its timeout fails the check and never
    cancels the caller, whether the caller still waits for it or has timed out and left."""
    life = AsyncLife()
    armed = False

    async def check(conn: Conn) -> bool:
        if armed:
            async with asyncio.timeout(0.1):
                await asyncio.sleep(10)
        return True

    async def main() -> None:
        nonlocal armed
        loop = asyncio.get_running_loop()
        pool = make(kind, respool.Lifecycle(life.create, check=check, destroy=life.destroy), 1)
        conn = await used_once(pool)
        armed = True
        began = loop.time()
        if left:
            with pytest.raises(PoolTimeout):
                await pool.acquire(timeout=0.02)
            await asyncio.sleep(0.3)  # a stray cancellation of this task would land here
        else:
            async with pool.acquire(timeout=5) as fresh:  # (its replacement is not checked)
                assert fresh is not conn
        assert loop.time() - began < 1
        await quiet(pool)
        stats = pool.stats()
        assert conn.destroyed and stats.check_failures == 1, stats
        await pool.close()

    run(main())


def test_an_async_check_that_answers_at_once_takes_no_turn_of_the_loop(kind: str) -> None:
    """An async check that answers without suspending is heard within the acquire's own
    step (no other task runs meanwhile); acquire(timeout=0) whose check does suspend raises
    PoolTimeout without a turn of the loop either, and the check, passing, returns the
    resource to the pool."""
    life = AsyncLife()
    errors: list[dict[str, Any]] = []

    async def main() -> None:
        record_loop_errors(errors)
        gated = Gated(life)
        pool = make(kind, gated.lifecycle(), capacity=1)
        conn = await used_once(pool)
        turns = 0

        async def spin() -> None:
            nonlocal turns
            while True:
                turns += 1
                await asyncio.sleep(0)

        spinner = asyncio.create_task(spin())
        await asyncio.sleep(0)
        seen = turns
        for _ in range(3):
            async with pool.acquire(timeout=1) as again:
                assert again is conn
        assert turns == seen
        gated.hold()
        with pytest.raises(PoolTimeout):
            await pool.acquire(timeout=0)
        assert turns == seen
        assert gated.events[-1] == f"check {conn.n}"
        gated.gate.set()
        await quiet(pool)
        assert pool.stats().idle == 1
        spinner.cancel()
        await pool.close()

    run(main())
    gc.collect()
    assert errors == []


def test_try_acquire_hears_a_check_that_answers_at_once_and_close_ends_one_that_hangs(
    kind: str,
) -> None:
    """try_acquire() lends a resource whose async check answers at once; one whose check
    hangs gives None, and close() cancels that check and destroys the resource."""
    life = AsyncLife()

    async def main() -> None:
        gated = Gated(life)
        pool = make(kind, gated.lifecycle(), capacity=1)
        conn = await used_once(pool)
        lease = pool.try_acquire()
        assert lease is not None and lease.resource is conn
        await lease.release()
        gated.hold()
        assert pool.try_acquire() is None
        assert gated.events[-1] == f"check {conn.n}"
        await asyncio.wait_for(pool.close(), 2)
        assert conn.destroyed and gated.events[-1] == f"destroyed {conn.n}"
        assert pool.stats().size == 0

    run(main())


def test_an_acquire_past_its_deadline_starts_no_check() -> None:
    """A caller whose deadline has passed by the time its resource is to be checked does
    not start the check: the resource goes back unchecked and the caller times out."""
    life = AsyncLife()
    began: list[Conn] = []
    now = [0.0]

    async def body(conn: Conn) -> bool:
        began.append(conn)
        return True

    def check(conn: Conn) -> Awaitable[bool]:
        now[0] += 10  # the check is asked for past the deadline
        return body(conn)

    async def main() -> None:
        pool = respool.AsyncElasticPool(
            respool.Lifecycle(life.create, check=check, destroy=life.destroy), max_size=1
        )
        pool._clock = lambda: now[0]
        conn = await used_once(pool)  # (made for that acquire: not checked)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(PoolTimeout):
                await pool.acquire(timeout=1)
            gc.collect()
        assert began == [] and not caught
        stats = pool.stats()
        assert (stats.idle, stats.timeouts, stats.destroyed) == (1, 1, 0), stats
        assert not conn.destroyed
        await pool.close()

    run(main())
