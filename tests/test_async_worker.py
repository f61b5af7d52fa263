"""AsyncWorkerPool: a resource per worker task, a bounded queue, lazy map, exact cancellation.

Every test runs its own event loop with ``asyncio.run``. Nothing waits on wall-clock sleeps
for synchronisation: tests wait on events the callbacks set, or yield to the loop until a
state holds (``until``); time bounds are generous and only there to fail instead of hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import logging
import random
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import respool
from respool._asyncio.worker import AsyncWorkerPool
from tests.conftest import Abort, Boom, assert_accounts

WAIT = 10.0  # generous bound for anything that should happen promptly
#: Every use of a destroyed resource, wherever the AssertionError it raises ends up.
MISUSE: list[str] = []


@dataclass(eq=False)
class Res:
    """A fake resource that complains when used after it was destroyed."""

    n: int
    broken: bool = False
    destroyed: bool = False
    uses: int = 0
    resets: int = 0

    def touch(self) -> None:
        if self.destroyed:
            MISUSE.append(f"{self} used after destroy")
        assert not self.destroyed, f"{self} used after destroy"


@dataclass
class Life:
    """A lifecycle recording everything; callbacks are plain or ``async def`` (``mode``), can
    be told to fail, and can be held at a gate (``hold``) to test cancellation inside them."""

    mode: str = "plain"
    made: list[Res] = field(default_factory=list)
    destroyed: list[Res] = field(default_factory=list)
    checks: int = 0
    fail_create: int = 0
    fail_create_forever: bool = False
    fail_create_with: BaseException | None = None
    fail_reset: BaseException | None = None
    fail_check: BaseException | None = None
    fail_destroy: BaseException | None = None
    errors: list[str] = field(default_factory=list)
    #: Callback name -> event it waits for (async mode only); ``entered`` is set on entry.
    hold: dict[str, asyncio.Event] = field(default_factory=dict)
    entered: dict[str, asyncio.Event] = field(default_factory=dict)
    numbers: Iterator[int] = field(default_factory=itertools.count)
    watchers: list[tuple[Callable[[], bool], asyncio.Future[None]]] = field(default_factory=list)

    def changed(self) -> None:
        for predicate, future in list(self.watchers):
            if not future.done() and predicate():
                future.set_result(None)

    async def until(self, predicate: Callable[[], bool]) -> None:
        """Wait until *predicate* holds, re-evaluated whenever a callback ran."""
        if predicate():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self.watchers.append(entry)
        try:
            await asyncio.wait_for(future, WAIT)
        finally:
            self.watchers.remove(entry)

    async def gate(self, name: str) -> None:
        if name in self.entered:
            self.entered[name].set()
        if name in self.hold:
            await self.hold[name].wait()

    def wrap(self, name: str, body: Callable[..., Any]) -> Callable[..., Any]:
        if self.mode == "plain":

            def plain(*args: Any) -> Any:
                try:
                    return body(*args)
                finally:
                    self.changed()

            return plain

        async def coro(*args: Any) -> Any:
            await self.gate(name)
            await asyncio.sleep(0)
            try:
                return body(*args)
            finally:
                self.changed()

        return coro

    def _create(self) -> Res:
        if self.fail_create_with is not None:
            error, self.fail_create_with = self.fail_create_with, None
            raise error
        if self.fail_create_forever or self.fail_create > 0:
            self.fail_create = max(0, self.fail_create - 1)
            raise Boom("cannot connect")
        res = Res(next(self.numbers))
        self.made.append(res)
        return res

    def _reset(self, res: Res) -> None:
        res.touch()
        res.resets += 1
        if self.fail_reset is not None:
            raise self.fail_reset

    def _check(self, res: Res) -> bool:
        res.touch()
        self.checks += 1
        if self.fail_check is not None:
            raise self.fail_check
        return not res.broken

    def _destroy(self, res: Res) -> None:
        if res.destroyed:
            self.errors.append(f"{res} destroyed twice")
        res.destroyed = True
        self.destroyed.append(res)
        if self.fail_destroy is not None:
            raise self.fail_destroy

    def lifecycle(self, *, check: bool = True, reset: bool = True) -> respool.Lifecycle[Res]:
        return respool.Lifecycle(
            self.wrap("create", self._create),
            reset=self.wrap("reset", self._reset) if reset else None,
            check=self.wrap("check", self._check) if check else None,
            destroy=self.wrap("destroy", self._destroy),
        )

    @property
    def live(self) -> list[Res]:
        return [res for res in self.made if not res.destroyed]


@pytest.fixture(params=["plain", "async"])
def life(request: pytest.FixtureRequest) -> Life:
    """Both kinds of callbacks: every behaviour holds with plain and ``async def`` ones."""
    return Life(mode=str(request.param))


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run *coro* on a fresh loop, failing instead of hanging."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coro, 3 * WAIT)

    return asyncio.run(bounded())


async def finish(pool: AsyncWorkerPool[Any], life: Life | None = None) -> respool.WorkerStats:
    """Shut *pool* down (cancelling leftovers) and check the books: nothing left anywhere."""
    await pool.shutdown(wait=True, cancel_pending=True)
    stats = pool.stats()
    assert_accounts(stats)
    assert (stats.workers, stats.busy, stats.queued, stats.resources) == (0, 0, 0, 0), stats
    assert MISUSE == []
    if life is not None:
        assert life.live == [], life.live
        assert life.errors == []
        assert stats.created == len(life.made)
    return stats


async def until(predicate: Callable[[], bool]) -> None:
    """Yield to the loop until *predicate* holds: for states no event announces (a submitter
    now waiting in line). It steps the loop; it never sleeps on the clock."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0)


def use(res: Res, value: object = None) -> object:
    """A plain task: touch the resource and return *value*."""
    res.touch()
    res.uses += 1
    return value


async def ause(res: Res, value: object = None) -> object:
    """An ``async def`` task: touch the resource, yield once, return *value*."""
    res.touch()
    await asyncio.sleep(0)
    res.touch()
    res.uses += 1
    return value


def which(res: Res) -> tuple[int, asyncio.Task[Any] | None]:
    """A task returning which resource and which worker task served it."""
    res.touch()
    return res.n, asyncio.current_task()


def blocker(
    gate: asyncio.Event, started: asyncio.Event | None = None
) -> Callable[[Res], Awaitable[str]]:
    """An ``async def`` task that announces it started, then waits for *gate*."""

    async def task(res: Res) -> str:
        res.touch()
        if started is not None:
            started.set()
        await gate.wait()
        res.touch()
        return "unblocked"

    return task


# -- basics ---------------------------------------------------------------------------------------


def test_submit_returns_the_result_of_fn_run_with_the_resource(life: Life) -> None:
    """submit awaits fn(resource, *args, **kwargs), plain or async, and returns its result."""

    async def main() -> None:
        async with AsyncWorkerPool(life.lifecycle(), workers=2) as wp:
            assert await wp.submit(use, 42) == 42
            assert await wp.submit(ause, value="kw") == "kw"
            assert await wp.submit(lambda res, a, b=0: a + b, 1, b=2) == 3
            future = wp.submit_nowait(ause, "later")
            assert isinstance(future, asyncio.Future)
            assert await future == "later"
            stats = wp.stats()
            assert (stats.submitted, stats.completed) == (4, 4)
        await finish(wp, life)

    run(main())


def test_each_worker_owns_its_resource_and_they_run_concurrently(life: Life) -> None:
    """open() starts one task per worker, each with its own resource, used concurrently."""

    async def main() -> None:
        wp = AsyncWorkerPool(life.lifecycle(), workers=3)
        await wp.open()
        gate, count = asyncio.Event(), [0]

        async def meet(res: Res) -> tuple[int, asyncio.Task[Any] | None]:
            count[0] += 1
            if count[0] == 3:
                gate.set()
            await gate.wait()
            res.touch()
            return res.n, asyncio.current_task()

        served = await asyncio.gather(*(wp.submit(meet) for _ in range(3)))
        assert len({n for n, _ in served}) == 3
        assert len({task for _, task in served}) == 3
        assert wp.stats().created == 3
        await finish(wp, life)

    run(main())


def test_constructed_outside_a_loop_and_opened_by_the_first_submit(life: Life) -> None:
    """Nothing touches asyncio in __init__; the first submit opens the pool on its loop."""
    wp = AsyncWorkerPool(life.lifecycle(), workers=1)
    assert life.made == [] and wp.stats().workers == 0

    async def main() -> None:
        assert await wp.submit(use, "x") == "x"
        assert wp.stats().workers == 1
        await finish(wp, life)

    run(main())


def test_a_pool_belongs_to_the_loop_it_opened_on(life: Life) -> None:
    """Using the pool from another event loop raises RuntimeError, clearly."""
    wp = AsyncWorkerPool(life.lifecycle(), workers=1)

    async def first() -> None:
        await wp.open()
        assert await wp.submit(use, 1) == 1

    asyncio.run(first())  # left open: the loop's end stops it

    async def second() -> None:
        with pytest.raises(RuntimeError, match="another loop"):
            await wp.submit(use, 2)
        with pytest.raises(RuntimeError, match="another loop"):
            wp.submit_nowait(use, 2)

    asyncio.run(second())
    assert wp.closed
    assert life.live == []


def test_submit_nowait_needs_a_running_loop(life: Life) -> None:
    """A plain method that makes a future refuses to run outside a loop."""
    wp = AsyncWorkerPool(life.lifecycle(), workers=1)
    with pytest.raises(RuntimeError, match="running asyncio event loop"):
        wp.submit_nowait(use)


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"workers": 0}, "workers"),
        ({"max_pending": 0}, "max_pending"),
        ({"on_full": "drop"}, "on_full"),
        ({"timeout": -1}, "timeout"),
        ({"check_after": -1}, "check_after"),
        ({"max_uses": 0}, "max_uses"),
        ({"max_tasks_per_resource": 0}, "max_tasks_per_resource"),
        ({"max_lifetime": 0}, "max_lifetime"),
        ({"keepalive": -2}, "keepalive"),
        ({"name": 3}, "name"),
        ({"max_uses": 2, "max_tasks_per_resource": 2}, "max_tasks_per_resource"),
    ],
)
def test_bad_arguments_name_the_parameter(options: dict[str, Any], needle: str) -> None:
    """Bad configuration fails at construction, naming the parameter."""
    with pytest.raises((ValueError, TypeError), match=needle):
        AsyncWorkerPool(Res, **options)


def test_bad_fn_is_a_type_error_and_repr_says_the_state() -> None:
    """A non-callable fn is refused at submit; repr shows the name and state."""

    async def main() -> None:
        wp = AsyncWorkerPool(lambda: Res(0), workers=1, name="repr-me")
        assert "repr-me" in repr(wp) and "workers=1" in repr(wp)
        with pytest.raises(TypeError, match="fn"):
            await wp.submit(42)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="fn"):
            wp.map(42, [1])  # type: ignore[arg-type]
        await wp.shutdown()
        assert "closed" in repr(wp)

    run(main())


def test_stats_snapshot_is_a_worker_stats() -> None:
    """stats() is the threaded pool's frozen WorkerStats."""

    async def main() -> None:
        async with AsyncWorkerPool(lambda: Res(0), workers=2) as wp:
            await wp.submit(use)
            stats = wp.stats()
        assert isinstance(stats, respool.WorkerStats)
        assert stats.as_dict()["completed"] == 1
        with pytest.raises(AttributeError):
            stats.completed = 5  # type: ignore[misc]

    run(main())


# -- failing tasks and callbacks -----------------------------------------------------------------


def test_exception_in_fn_reaches_only_its_caller_and_keeps_the_resource(life: Life) -> None:
    """An Exception from fn is the caller's; the resource is reset and reused."""

    async def main() -> None:
        async with AsyncWorkerPool(life.lifecycle(), workers=1) as wp:

            async def fail(res: Res) -> None:
                raise Boom("task failed")

            with pytest.raises(Boom, match="task failed"):
                await wp.submit(fail)
            n, _ = await wp.submit(which)
            assert n == 0
            stats = wp.stats()
            assert (stats.failed, stats.completed, stats.replaced) == (1, 1, 0)
            await life.until(lambda: life.made[0].resets == 2)  # reset runs after the result
        await finish(wp, life)

    run(main())


def test_abort_in_fn_destroys_the_resource_but_keeps_the_worker(life: Life) -> None:
    """A non-Exception from fn reaches the caller; its resource is replaced, the worker kept."""

    async def main() -> None:
        async with AsyncWorkerPool(life.lifecycle(), workers=1) as wp:
            _, worker = await wp.submit(which)

            def abort(res: Res) -> None:
                raise Abort

            with pytest.raises(Abort):
                await wp.submit(abort)
            n, again = await wp.submit(which)
            assert (n, again) == (1, worker)
            assert life.made[0].destroyed
            stats = wp.stats()
            assert stats.retired["abort"] == 1 and stats.failed == 1
        await finish(wp, life)

    run(main())


def test_fn_raising_stop_iteration_fails_with_a_runtime_error() -> None:
    """A future refuses StopIteration: the caller gets a RuntimeError chained to it."""

    async def main() -> None:
        async with AsyncWorkerPool(lambda: Res(0), workers=1) as wp:

            def stop(res: Res) -> None:
                raise StopIteration

            with pytest.raises(RuntimeError) as info:
                await wp.submit(stop)
            assert isinstance(info.value.__cause__, StopIteration)
            assert await wp.submit(use, "fine") == "fine"

    run(main())


def test_failing_reset_replaces_the_resource_before_the_next_task(
    life: Life, caplog: pytest.LogCaptureFixture
) -> None:
    """reset raising: the resource is destroyed (retired "error") and a new one serves."""

    async def main() -> None:
        life.fail_reset = Boom("cannot clean")
        async with AsyncWorkerPool(life.lifecycle(), workers=1) as wp:
            assert await wp.submit(use, 1) == 1
            await life.until(lambda: len(life.made) == 2)  # reset runs after the result
            life.fail_reset = None
            n, _ = await wp.submit(which)
            assert n == 1
            stats = wp.stats()
            assert (stats.reset_errors, stats.retired["error"]) == (1, 1)
        await finish(wp, life)

    with caplog.at_level(logging.WARNING, logger="respool"):
        run(main())
    assert "reset raised" in caplog.text


def test_callbacks_raising_base_exceptions_do_not_lose_the_worker(life: Life) -> None:
    """create/reset/check raising a non-Exception are contained: the worker carries on."""

    async def main() -> None:
        life.fail_create_with = Abort()
        life.fail_reset = Abort()
        async with AsyncWorkerPool(life.lifecycle(), workers=1, timeout=WAIT) as wp:
            assert await wp.submit(use, 1) == 1  # after one failed create; then reset fails
            await life.until(lambda: life.made[0].destroyed)
            life.fail_reset = None
            life.fail_check = Abort()
            assert await wp.submit(use, 2) == 2  # check raises: replaced, trusted new one
            life.fail_check = None
            stats = wp.stats()
            assert stats.create_errors == 1
            assert stats.reset_errors == 1
            assert stats.check_failures == 1
            assert stats.workers == 1
        await finish(wp, life)

    run(main())


def test_destroy_errors_are_counted_and_logged_not_raised(
    life: Life, caplog: pytest.LogCaptureFixture
) -> None:
    """destroy raising (plain or async) is counted and logged, never raised."""

    async def main() -> None:
        life.fail_destroy = Boom("cannot close")
        wp = AsyncWorkerPool(life.lifecycle(), workers=2)
        await wp.submit(use)
        await wp.shutdown()
        stats = wp.stats()
        assert stats.destroy_errors == 2
        assert stats.destroyed == 2

    with caplog.at_level(logging.WARNING, logger="respool"):
        run(main())
    assert "destroy raised" in caplog.text


def test_check_false_or_raising_replaces_the_resource(life: Life) -> None:
    """A resource that fails its check is replaced before the task; the task still runs."""

    async def main() -> None:
        async with AsyncWorkerPool(life.lifecycle(), workers=1) as wp:
            assert await wp.submit(use, 1) == 1
            life.made[0].broken = True
            n, _ = await wp.submit(which)
            assert n == 1
            life.fail_check = Boom("check blew up")
            n, _ = await wp.submit(which)  # raises: replaced by a trusted new one
            assert n == 2
            life.fail_check = None
            stats = wp.stats()
            assert stats.check_failures == 2 and stats.retired["check"] == 2
        await finish(wp, life)

    run(main())


# -- health ---------------------------------------------------------------------------------------


def test_check_after_skips_checks_on_recently_used_resources(life: Life) -> None:
    """With check_after, a resource used moments ago is not checked again."""

    async def main() -> None:
        async with AsyncWorkerPool(life.lifecycle(), workers=1, check_after=60.0) as wp:
            for i in range(5):
                assert await wp.submit(use, i) == i
            assert life.checks == 0
        await finish(wp, life)

    run(main())


def test_max_uses_recycles_the_resource_not_the_worker(life: Life) -> None:
    """After max_uses tasks the resource is replaced; the worker task stays the same."""

    async def main() -> None:
        async with AsyncWorkerPool(life.lifecycle(), workers=1, max_uses=2) as wp:
            served = [await wp.submit(which) for _ in range(5)]
            assert [n for n, _ in served] == [0, 0, 1, 1, 2]
            assert len({task for _, task in served}) == 1
            assert wp.stats().retired["uses"] == 2
        await finish(wp, life)
        async with AsyncWorkerPool(lambda: Res(0), workers=1, max_tasks_per_resource=1) as alias:
            assert alias.max_uses == 1
            await alias.submit(use)
            await alias.submit(use)
            await until(lambda: alias.stats().retired["uses"] == 2)
        await finish(alias)

    run(main())


def test_idle_worker_replaces_its_resource_when_its_lifetime_ends(life: Life) -> None:
    """An idle worker retires its resource at its (jittered) deadline, without a task."""

    async def main() -> None:
        async with AsyncWorkerPool(life.lifecycle(), workers=1, max_lifetime=0.05) as wp:
            await wp.submit(use)
            await life.until(lambda: len(life.made) >= 3)
            assert wp.stats().retired["lifetime"] >= 2
            n, _ = await wp.submit(which)
            assert n >= 2
        await finish(wp, life)

    run(main())


def test_keepalive_replaces_a_dead_idle_resource_before_a_task_meets_it(life: Life) -> None:
    """keepalive pings an idle resource with check; a dead one is replaced while idle."""

    async def main() -> None:
        async with AsyncWorkerPool(life.lifecycle(), workers=1, keepalive=0.02) as wp:
            await wp.submit(use)
            life.made[0].broken = True
            await life.until(lambda: len(life.made) == 2)
            stats = wp.stats()
            assert stats.retired["check"] == 1 and stats.check_failures == 1
            n, _ = await wp.submit(which)
            assert n == 1
        await finish(wp, life)

    run(main())


def test_drain_replaces_idle_resources_at_once_and_busy_ones_after_their_task(
    life: Life,
) -> None:
    """drain(): idle workers replace now, a busy one after its task; no task fails."""

    async def main() -> None:
        async with AsyncWorkerPool(life.lifecycle(), workers=2) as wp:
            gate, started = asyncio.Event(), asyncio.Event()
            busy = asyncio.create_task(wp.submit(blocker(gate, started)))
            await started.wait()
            await life.until(lambda: len(life.made) == 2)
            old = list(life.made)
            wp.drain()
            await life.until(lambda: len(life.made) == 3)  # the idle one, at once
            assert sum(res.destroyed for res in old) == 1
            gate.set()
            assert await busy == "unblocked"
            await life.until(lambda: len(life.made) == 4)
            assert all(res.destroyed for res in old)
            assert wp.stats().retired["drain"] == 2
            for _ in range(4):
                n, _ = await wp.submit(which)
                assert n >= 2
        await finish(wp, life)

    run(main())


def test_resize_up_and_down_under_load_loses_no_task(life: Life) -> None:
    """resize grows and shrinks the workers while tasks run; every task completes."""

    async def main() -> None:
        async with AsyncWorkerPool(life.lifecycle(), workers=2, max_pending=8) as wp:
            futures = []
            for i in range(60):
                futures.append(asyncio.ensure_future(wp.submit(ause, i)))
                if i == 10:
                    wp.resize(5)
                if i == 30:
                    wp.resize(1)
                if i == 45:
                    wp.resize(3)
            assert await asyncio.gather(*futures) == list(range(60))
            await until(lambda: wp.stats().workers == 3)
            stats = wp.stats()
            assert stats.resources == 3
            assert stats.replaced == 0  # leaving workers' resources are not retirements
        await finish(wp, life)

    run(main())


def test_shrink_lets_a_busy_worker_finish_its_task(life: Life) -> None:
    """A worker asked to leave finishes the task in hand first."""

    async def main() -> None:
        async with AsyncWorkerPool(life.lifecycle(), workers=1) as wp:
            gate, started = asyncio.Event(), asyncio.Event()
            busy = asyncio.create_task(wp.submit(blocker(gate, started)))
            await started.wait()
            wp.resize(2)
            wp.resize(1)  # the surplus is absorbed by the worker still to start, or leaves
            gate.set()
            assert await busy == "unblocked"
            await until(lambda: wp.stats().workers == 1)
        await finish(wp, life)

    run(main())


def test_resize_and_drain_before_open_and_after_shutdown(life: Life) -> None:
    """Before open they set what will start; after shutdown resize raises, drain is a no-op."""

    async def main() -> None:
        wp = AsyncWorkerPool(life.lifecycle(), workers=1)
        wp.resize(3)
        wp.drain()
        await wp.open()
        await life.until(lambda: len(life.made) == 3)
        assert wp.stats().workers == 3
        await wp.shutdown()
        with pytest.raises(respool.PoolClosed):
            wp.resize(2)
        wp.drain()
        with pytest.raises(ValueError, match="workers"):
            wp.resize(0)
        with pytest.raises(respool.PoolClosed):
            await wp.open()
        await finish(wp, life)

    run(main())


# -- failing create -------------------------------------------------------------------------------


def test_create_failing_then_recovering(life: Life) -> None:
    """A create that fails a few times is retried with backoff; the task still runs."""

    async def main() -> None:
        life.fail_create = 2
        async with AsyncWorkerPool(life.lifecycle(), workers=1) as wp:
            assert await wp.submit(use, "ok") == "ok"
            stats = wp.stats()
            assert stats.create_errors == 2 and stats.create_failures == 0
        await finish(wp, life)

    run(main())


def test_create_failing_for_good_fails_tasks_with_pool_timeout_chained(life: Life) -> None:
    """After timeout, a task fails with PoolTimeout whose cause is the last create error."""

    async def main() -> None:
        life.fail_create_forever = True
        async with AsyncWorkerPool(life.lifecycle(), workers=2, timeout=0.2) as wp:
            with pytest.raises(respool.PoolTimeout) as info:
                await wp.submit(use)
            assert isinstance(info.value.__cause__, Boom)
            stats = wp.stats()
            assert stats.failed == 1 and stats.create_failures >= 1
            assert stats.create_retry_in >= 0.0
        stats = await finish(wp, life)
        assert stats.created == 0

    run(main())


def test_timeout_zero_fails_a_task_at_once_while_create_fails(life: Life) -> None:
    """timeout=0: a task with no resource to run on fails at once, never waits."""

    async def main() -> None:
        life.fail_create_forever = True
        async with AsyncWorkerPool(life.lifecycle(), workers=1, timeout=0) as wp:
            with pytest.raises(respool.PoolTimeout):
                await wp.submit(use)
        await finish(wp, life)

    run(main())


def test_shutdown_does_not_hang_when_create_keeps_failing(life: Life) -> None:
    """A held task gets PoolClosed after one last attempt; shutdown returns promptly."""

    async def main() -> None:
        life.fail_create_forever = True
        wp = AsyncWorkerPool(life.lifecycle(), workers=1, timeout=None)
        task = asyncio.create_task(wp.submit(use))
        await until(lambda: wp.stats().busy == 1)
        await wp.shutdown()
        with pytest.raises(respool.PoolClosed) as info:
            await task
        assert isinstance(info.value.__cause__, Boom)
        await finish(wp, life)

    run(main())


def test_a_task_is_not_held_by_a_worker_that_cannot_create_while_another_idles() -> None:
    """A worker whose create keeps failing leaves tasks to a worker that has a resource."""

    def create() -> Res:
        task = asyncio.current_task()
        assert task is not None
        if task.get_name().endswith("-1"):
            raise Boom("this worker cannot connect")
        return Res(0)

    async def main() -> None:
        wp = AsyncWorkerPool(create, workers=2, name="hostage")
        await wp.open()
        await until(lambda: wp.stats().created == 1 and wp.stats().create_errors >= 1)
        futures = [wp.submit_nowait(ause, i) for i in range(50)]
        # The healthy worker runs every one, promptly: far sooner than the 30 s timeout.
        assert await asyncio.wait_for(asyncio.gather(*futures), WAIT) == list(range(50))
        await finish(wp)

    run(main())


def test_unreferenced_pool_fails_queued_work_when_create_keeps_failing(life: Life) -> None:
    """A forgotten pool whose create always fails ends its workers and settles its futures."""

    async def main() -> None:
        life.fail_create_forever = True
        wp = AsyncWorkerPool(life.lifecycle(), workers=2)
        futures = [wp.submit_nowait(use, i) for i in range(4)]
        tasks = [w.task for w in wp._shared.workers]
        ref = weakref.ref(wp)
        del wp
        gc.collect()
        assert ref() is None
        await asyncio.wait_for(asyncio.wait(tasks), WAIT)  # type: ignore[arg-type]
        for future in futures:
            with pytest.raises(respool.PoolClosed) as info:
                await future
            assert isinstance(info.value.__cause__, Boom)

    run(main())


# -- capacity -------------------------------------------------------------------------------------


def test_reject_raises_pool_full_when_the_queue_is_full(life: Life) -> None:
    """on_full="reject": PoolFull at once; submit_nowait always rejects when full."""

    async def main() -> None:
        wp = AsyncWorkerPool(life.lifecycle(), workers=1, max_pending=1, on_full="reject")
        gate, started = asyncio.Event(), asyncio.Event()
        running = wp.submit_nowait(blocker(gate, started))
        await started.wait()
        queued = wp.submit_nowait(use, "queued")
        with pytest.raises(respool.PoolFull):
            await wp.submit(use)
        with pytest.raises(respool.PoolFull):
            wp.submit_nowait(use)
        assert wp.stats().rejected == 2
        gate.set()
        assert (await running, await queued) == ("unblocked", "queued")
        await finish(wp, life)

    run(main())


def test_block_waits_for_room_then_times_out(life: Life) -> None:
    """on_full="block": a submit waits up to timeout for room, then PoolTimeout."""

    async def main() -> None:
        wp = AsyncWorkerPool(life.lifecycle(), workers=1, max_pending=1, timeout=0.05)
        gate, started = asyncio.Event(), asyncio.Event()
        running = wp.submit_nowait(blocker(gate, started))
        await started.wait()
        queued = wp.submit_nowait(use, "queued")
        with pytest.raises(respool.PoolTimeout):
            await wp.submit(use)
        with pytest.raises(respool.PoolFull):
            wp.submit_nowait(use)
        stats = wp.stats()
        assert (stats.timeouts, stats.waiting) == (1, 0)
        gate.set()
        await running
        await queued
        await finish(wp, life)

    run(main())


def test_blocked_submitters_get_in_in_arrival_order(life: Life) -> None:
    """Submitters waiting for room are admitted first come, first served."""

    async def main() -> None:
        wp = AsyncWorkerPool(life.lifecycle(), workers=1, max_pending=1)
        gate, started = asyncio.Event(), asyncio.Event()
        running = wp.submit_nowait(blocker(gate, started))
        await started.wait()
        order: list[int] = []

        def record(res: Res, i: int) -> int:
            order.append(i)
            return i

        first = wp.submit_nowait(record, -1)
        waiters = []
        for i in range(5):
            waiters.append(asyncio.create_task(wp.submit(record, i)))
            await until(lambda i=i: wp.stats().waiting == i + 1)  # type: ignore[misc]
        gate.set()
        assert await asyncio.gather(*waiters) == list(range(5))
        await running
        await first
        assert order == [-1, 0, 1, 2, 3, 4]
        await finish(wp, life)

    run(main())


# -- map ------------------------------------------------------------------------------------------


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


def test_map_keeps_input_order_whatever_the_finishing_order(life: Life) -> None:
    """Results come in input order even when later items finish first."""

    async def main() -> None:
        async with AsyncWorkerPool(life.lifecycle(), workers=4) as wp:
            gates = [asyncio.Event() for _ in range(8)]

            async def ordered(res: Res, i: int) -> int:
                if i > 0:
                    await gates[i].wait()
                if i + 1 < len(gates):
                    gates[i + 1].set()
                return i * i

            # Items are released in order here, but finish as soon as each is let through;
            # the point is that the yielded order is the input order.
            results = [r async for r in wp.map(ordered, range(8))]
            assert results == [i * i for i in range(8)]

            async def reverse(res: Res, i: int) -> int:
                await gates2[i].wait()
                if i > 0:
                    gates2[i - 1].set()
                return i

            gates2 = [asyncio.Event() for _ in range(4)]
            gates2[3].set()
            assert [r async for r in wp.map(reverse, range(4))] == [0, 1, 2, 3]
        await finish(wp, life)

    run(main())


def test_map_is_lazy_and_bounds_what_is_in_flight(life: Life) -> None:
    """map pulls input only as results are taken: at most the window ahead (endless ok)."""

    async def main() -> None:
        async with AsyncWorkerPool(life.lifecycle(), workers=2, max_pending=3) as wp:
            source = Source(itertools.count())
            results = wp.map(use, source)
            assert source.pulled == 0  # nothing before the first step
            got = []
            async for value in results:
                got.append(value)
                assert source.pulled <= len(got) + 3
                if len(got) == 20:
                    break
            await results.aclose()
            pulled = source.pulled
            assert got == list(range(20))
            assert pulled <= 23
            await until(lambda: wp.stats().queued == 0 and wp.stats().busy == 0)
            assert source.pulled == pulled
        await finish(wp, life)

    run(main())


def test_map_takes_async_iterables_and_several_stop_at_the_shortest(life: Life) -> None:
    """Inputs may be async iterables; several are zipped and stop at the shortest."""

    async def main() -> None:
        async def numbers() -> AsyncIterator[int]:
            for i in range(5):
                await asyncio.sleep(0)
                yield i

        async with AsyncWorkerPool(life.lifecycle(), workers=2) as wp:
            assert [r async for r in wp.map(use, numbers())] == list(range(5))

            def add(res: Res, a: int, b: int) -> int:
                return a + b

            assert [r async for r in wp.map(add, numbers(), [10, 20, 30])] == [10, 21, 32]
        await finish(wp, life)

    run(main())


def test_map_error_propagates_and_cancels_the_rest(life: Life) -> None:
    """A task's error ends the iteration; what has not run is cancelled, counts exact."""

    async def main() -> None:
        async with AsyncWorkerPool(life.lifecycle(), workers=1, max_pending=4) as wp:
            ran: list[int] = []

            async def maybe(res: Res, i: int) -> int:
                ran.append(i)
                if i == 1:
                    raise Boom("item 1")
                return i

            got = []
            with pytest.raises(Boom):
                async for value in wp.map(maybe, range(100)):
                    got.append(value)
            assert got == [0]
            await until(lambda: wp.stats().queued == 0 and wp.stats().busy == 0)
            assert max(ran) <= 4
            stats = wp.stats()
            assert stats.cancelled >= 1
            assert_accounts(stats)
        await finish(wp, life)

    run(main())


def test_map_timeout_bounds_the_whole_iteration(life: Life) -> None:
    """timeout bounds the iteration: PoolTimeout, and the item waited for is cancelled."""

    async def main() -> None:
        async with AsyncWorkerPool(life.lifecycle(), workers=1) as wp:
            hold = blocker(asyncio.Event())
            with pytest.raises(respool.PoolTimeout):
                async for _ in wp.map(lambda res, i: hold(res), range(3), timeout=0.05):
                    pass
            await until(lambda: wp.stats().busy == 0)
            assert wp.stats().retired["abort"] == 1  # the running item was cancelled
        await finish(wp, life)

    run(main())


def test_map_waits_for_room_instead_of_raising_pool_full(life: Life) -> None:
    """map never raises PoolFull: with the queue full it waits for room, whatever on_full."""

    async def main() -> None:
        wp = AsyncWorkerPool(life.lifecycle(), workers=1, max_pending=1, on_full="reject")
        gate, started = asyncio.Event(), asyncio.Event()
        running = wp.submit_nowait(blocker(gate, started))
        await started.wait()
        queued = wp.submit_nowait(use, "q")
        results = asyncio.create_task(_collect(wp.map(use, range(5))))
        await until(lambda: wp.stats().waiting == 1)
        gate.set()
        assert await results == list(range(5))
        assert (await running, await queued) == ("unblocked", "q")
        await finish(wp, life)

    run(main())


async def _collect(results: AsyncIterator[Any]) -> list[Any]:
    return [value async for value in results]


# -- cancellation ---------------------------------------------------------------------------------


def test_caller_cancelled_while_waiting_for_room_leaves_the_line(life: Life) -> None:
    """A submitter cancelled in line leaves it: nothing queued, counted or lost."""

    async def main() -> None:
        wp = AsyncWorkerPool(life.lifecycle(), workers=1, max_pending=1)
        gate, started = asyncio.Event(), asyncio.Event()
        running = wp.submit_nowait(blocker(gate, started))
        await started.wait()
        queued = wp.submit_nowait(use, "q")
        waiter = asyncio.create_task(wp.submit(use, "never"))
        behind = asyncio.create_task(wp.submit(use, "behind"))
        await until(lambda: wp.stats().waiting == 2)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        stats = wp.stats()
        assert (stats.waiting, stats.submitted, stats.timeouts) == (1, 2, 0)
        gate.set()
        assert await behind == "behind"
        await running
        await queued
        stats = await finish(wp, life)
        assert (stats.submitted, stats.completed, stats.cancelled) == (3, 3, 0)

    run(main())


def test_caller_cancelled_while_queued_frees_the_slot_and_the_task_never_runs(
    life: Life,
) -> None:
    """A queued task whose caller is cancelled never runs; its slot is free at once."""

    async def main() -> None:
        wp = AsyncWorkerPool(life.lifecycle(), workers=1, max_pending=1, on_full="reject")
        gate, started = asyncio.Event(), asyncio.Event()
        running = wp.submit_nowait(blocker(gate, started))
        await started.wait()
        ran: list[str] = []
        caller = asyncio.create_task(wp.submit(lambda res: ran.append("no")))
        await until(lambda: wp.stats().queued == 1)
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        assert wp.stats().queued == 0
        nowait = wp.submit_nowait(use, "slot")  # the freed slot: no PoolFull
        nowait2_error = None
        try:
            wp.submit_nowait(use)
        except respool.PoolFull as exc:
            nowait2_error = exc
        assert nowait2_error is not None
        gate.set()
        assert await running == "unblocked" and await nowait == "slot"
        assert ran == []
        stats = await finish(wp, life)
        assert stats.cancelled == 1

    run(main())


def test_cancelling_a_queued_nowait_future_frees_its_slot(life: Life) -> None:
    """submit_nowait: cancelling the queued future is cancelling the task."""

    async def main() -> None:
        wp = AsyncWorkerPool(life.lifecycle(), workers=1, max_pending=1, on_full="reject")
        gate, started = asyncio.Event(), asyncio.Event()
        running = wp.submit_nowait(blocker(gate, started))
        await started.wait()
        ran: list[str] = []
        queued = wp.submit_nowait(lambda res: ran.append("no"))
        queued.cancel()
        await until(lambda: wp.stats().queued == 0)
        again = wp.submit_nowait(use, "again")
        gate.set()
        assert (await running, await again) == ("unblocked", "again")
        assert ran == []
        stats = await finish(wp, life)
        assert stats.cancelled == 1

    run(main())


@pytest.mark.parametrize("how", ["submit", "nowait", "wait_for"])
def test_cancelled_while_running_cancels_fn_and_replaces_the_resource(life: Life, how: str) -> None:
    """Cancelling a running async fn's caller cancels it; resource replaced, worker kept."""

    async def main() -> None:
        async with AsyncWorkerPool(life.lifecycle(), workers=1) as wp:
            _, worker = await wp.submit(which)
            started, never = asyncio.Event(), asyncio.Event()
            seen: list[str] = []

            async def long(res: Res) -> None:
                started.set()
                try:
                    await never.wait()
                except asyncio.CancelledError:
                    seen.append("cancelled")
                    raise

            if how == "wait_for":
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(wp.submit(long), 0.05)
            else:
                if how == "submit":
                    caller: asyncio.Future[Any] = asyncio.ensure_future(wp.submit(long))
                else:
                    caller = wp.submit_nowait(long)
                await started.wait()
                caller.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await caller
            await life.until(lambda: life.made[0].destroyed and len(life.made) == 2)
            assert seen == ["cancelled"]
            n, again = await wp.submit(which)
            assert (n, again) == (1, worker)
            stats = wp.stats()
            assert stats.retired["abort"] == 1
            assert stats.cancelled == 1
            assert_accounts(stats)
            assert not worker.cancelling()  # type: ignore[union-attr]
        await finish(wp, life)

    run(main())


def test_fn_swallowing_its_cancellation_still_costs_the_resource(life: Life) -> None:
    """A coroutine that swallows the caller's cancellation still counts as cut short."""

    async def main() -> None:
        async with AsyncWorkerPool(life.lifecycle(), workers=1) as wp:
            started = asyncio.Event()

            async def stubborn(res: Res) -> str:
                started.set()
                try:
                    await asyncio.Event().wait()
                except asyncio.CancelledError:
                    return "swallowed"
                return "never"

            caller = asyncio.ensure_future(wp.submit(stubborn))
            await started.wait()
            caller.cancel()
            with pytest.raises(asyncio.CancelledError):
                await caller
            await life.until(lambda: len(life.made) == 2)
            assert await wp.submit(use, "next") == "next"
            assert wp.stats().retired["abort"] == 1
        await finish(wp, life)

    run(main())


def test_fn_raising_cancelled_error_itself_does_not_stop_the_worker() -> None:
    """A task whose own coroutine raises CancelledError is cancelled; the pool carries on."""

    async def main() -> None:
        async with AsyncWorkerPool(lambda: Res(0), workers=1) as wp:

            async def self_cancel(res: Res) -> None:
                raise asyncio.CancelledError

            future = wp.submit_nowait(self_cancel)
            with pytest.raises(asyncio.CancelledError):
                await future
            assert await wp.submit(use, "alive") == "alive"
            assert wp.stats().retired["abort"] == 1
            assert not wp.closed

    run(main())


def test_a_timeout_inside_fn_is_its_own_error_not_a_pool_stop() -> None:
    """fn's own asyncio.timeout cancels and uncancels its task: a TimeoutError, nothing more."""

    async def main() -> None:
        async with AsyncWorkerPool(lambda: Res(0), workers=1) as wp:
            _, worker = await wp.submit(which)

            async def slow(res: Res) -> None:
                async with asyncio.timeout(0.01):
                    await asyncio.Event().wait()

            with pytest.raises(TimeoutError):
                await wp.submit(slow)
            n, again = await wp.submit(which)
            assert (n, again) == (0, worker)  # an Exception: the resource is kept
            assert not wp.closed and wp.stats().failed == 1

    run(main())


def test_caller_cancelled_while_its_task_waits_for_a_resource(life: Life) -> None:
    """A task held by a worker whose create fails is dropped when its caller leaves."""

    async def main() -> None:
        life.fail_create_forever = True
        async with AsyncWorkerPool(life.lifecycle(), workers=1, timeout=None) as wp:
            ran: list[int] = []
            caller = asyncio.create_task(wp.submit(lambda res: ran.append(1)))
            await until(lambda: wp.stats().busy == 1)
            caller.cancel()
            with pytest.raises(asyncio.CancelledError):
                await caller
            await until(lambda: wp.stats().busy == 0)
            assert ran == []
            assert wp.stats().cancelled == 1
        await finish(wp, life)

    run(main())


def test_wait_for_always_bounds_submit(life: Life) -> None:
    """wait_for around submit returns on time whether waiting for room, queued or running."""

    async def main() -> None:
        wp = AsyncWorkerPool(life.lifecycle(), workers=1, max_pending=1, timeout=None)
        gate, started = asyncio.Event(), asyncio.Event()
        running = wp.submit_nowait(blocker(gate, started))
        await started.wait()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(wp.submit(use), 0.02)  # queued, then cancelled
        queued = wp.submit_nowait(use, "q")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(wp.submit(use), 0.02)  # waiting for room
        stats = wp.stats()
        assert (stats.waiting, stats.queued, stats.cancelled) == (0, 1, 1)
        gate.set()
        assert (await running, await queued) == ("unblocked", "q")
        await finish(wp, life)

    run(main())


# -- shutdown -------------------------------------------------------------------------------------


def test_shutdown_runs_queued_tasks_by_default(life: Life) -> None:
    """shutdown(wait=True) lets queued work finish, then destroys every resource."""

    async def main() -> None:
        wp = AsyncWorkerPool(life.lifecycle(), workers=2)
        futures = [wp.submit_nowait(ause, i) for i in range(20)]
        await wp.shutdown()
        assert [f.result() for f in futures] == list(range(20))
        await finish(wp, life)

    run(main())


def test_shutdown_cancel_pending_cancels_what_has_not_started(life: Life) -> None:
    """cancel_pending cancels queued futures (submit callers: PoolClosed); running ends."""

    async def main() -> None:
        wp = AsyncWorkerPool(life.lifecycle(), workers=1)
        gate, started = asyncio.Event(), asyncio.Event()
        running = wp.submit_nowait(blocker(gate, started))
        await started.wait()
        queued = [wp.submit_nowait(use, i) for i in range(3)]
        caller = asyncio.create_task(wp.submit(use, "caller"))
        await until(lambda: wp.stats().queued == 4)
        closing = asyncio.create_task(wp.shutdown(cancel_pending=True))
        await until(lambda: all(f.cancelled() for f in queued))
        with pytest.raises(respool.PoolClosed, match="before this task could finish"):
            await caller
        gate.set()
        await closing
        assert await running == "unblocked"
        stats = await finish(wp, life)
        assert (stats.cancelled, stats.completed) == (4, 1)

    run(main())


def test_shutdown_releases_blocked_submitters_with_pool_closed(life: Life) -> None:
    """Submitters waiting for room get PoolClosed when the pool shuts down."""

    async def main() -> None:
        wp = AsyncWorkerPool(life.lifecycle(), workers=1, max_pending=1, timeout=None)
        gate, started = asyncio.Event(), asyncio.Event()
        running = wp.submit_nowait(blocker(gate, started))
        await started.wait()
        queued = wp.submit_nowait(use, "q")
        blocked = asyncio.create_task(wp.submit(use))
        await until(lambda: wp.stats().waiting == 1)
        closing = asyncio.create_task(wp.shutdown())
        with pytest.raises(respool.PoolClosed, match="while waiting"):
            await blocked
        gate.set()
        await closing
        assert (await running, await queued) == ("unblocked", "q")
        await finish(wp, life)

    run(main())


def test_submit_after_shutdown_raises_and_shutdown_is_idempotent(life: Life) -> None:
    """After shutdown: PoolClosed; shutting down again is harmless."""

    async def main() -> None:
        wp = AsyncWorkerPool(life.lifecycle(), workers=1)
        await wp.submit(use)
        await wp.close()
        await wp.shutdown()
        with pytest.raises(respool.PoolClosed):
            await wp.submit(use)
        with pytest.raises(respool.PoolClosed):
            wp.submit_nowait(use)
        never = AsyncWorkerPool(life.lifecycle(), workers=1)
        await never.shutdown()
        with pytest.raises(respool.PoolClosed):
            await never.submit(use)
        await finish(wp, life)

    run(main())


def test_shutdown_from_inside_a_task_does_not_deadlock(life: Life) -> None:
    """A task shutting down its own pool returns at once; the pool still drains and stops."""

    async def main() -> None:
        wp = AsyncWorkerPool(life.lifecycle(), workers=2)

        async def stop_it(res: Res) -> str:
            await wp.shutdown(wait=True)
            return "stopped"

        assert await wp.submit(stop_it) == "stopped"
        await finish(wp, life)

    run(main())


def test_cancelled_shutdown_stops_at_once_and_keeps_counts_exact(life: Life) -> None:
    """A cancelled shutdown halts the pool: running and queued tasks cancelled, all destroyed."""

    async def main() -> None:
        wp = AsyncWorkerPool(life.lifecycle(), workers=2)
        gate, started = asyncio.Event(), asyncio.Event()
        running = asyncio.create_task(wp.submit(blocker(gate, started)))
        await started.wait()
        queued = wp.submit_nowait(blocker(gate))
        queued2 = wp.submit_nowait(blocker(gate))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(wp.shutdown(), 0.05)
        with pytest.raises(respool.PoolClosed):
            await running
        await wp.shutdown()
        assert queued.cancelled() or queued2.cancelled()
        stats = await finish(wp, life)
        assert stats.cancelled == 3 - stats.completed

    run(main())


@pytest.mark.parametrize("where", ["create", "check", "reset", "destroy"])
def test_halt_during_a_callback_keeps_counts_exact_and_cleans_up(where: str) -> None:
    """A worker cancelled inside a callback leaves counts exact and every resource destroyed."""
    life = Life(mode="async")

    async def main() -> None:
        uses = 1 if where == "destroy" else None
        wp = AsyncWorkerPool(life.lifecycle(), workers=1, max_uses=uses)
        if where != "create":
            await wp.submit(use)  # a resource exists; the next task checks, resets, retires
        life.hold[where] = asyncio.Event()
        life.entered[where] = asyncio.Event()
        if where == "create":
            await wp.open()
        caller = asyncio.create_task(wp.submit(use, "x"))
        await asyncio.wait_for(life.entered[where].wait(), WAIT)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(wp.shutdown(), 0.02)
        with contextlib.suppress(respool.PoolClosed):
            await caller  # finished before the halt, or told the pool stopped
        life.hold[where].set()  # a destroy chore in progress may now finish
        await wp.shutdown()
        stats = await finish(wp, life)
        assert stats.created == stats.destroyed

    run(main())


def test_pool_left_open_when_the_loop_ends_destroys_its_resources(
    life: Life, caplog: pytest.LogCaptureFixture
) -> None:
    """asyncio.run cancelling the worker tasks at its end stops the pool cleanly."""
    wp = AsyncWorkerPool(life.lifecycle(), workers=2)

    async def main() -> None:
        await wp.open()
        await wp.submit(use)
        wp.submit_nowait(ause)

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        asyncio.run(main())
    assert life.live == [] and len(life.made) == 2
    stats = wp.stats()
    assert_accounts(stats)
    assert (stats.workers, stats.resources) == (0, 0)
    assert wp.closed
    assert "destroyed but it is pending" not in caplog.text
    assert "never retrieved" not in caplog.text


def test_unreferenced_pool_stops_its_workers(life: Life, caplog: pytest.LogCaptureFixture) -> None:
    """A pool garbage-collected while open finishes its queue, destroys, and ends."""

    async def main() -> weakref.ref[Any]:
        wp = AsyncWorkerPool(life.lifecycle(), workers=2)
        await wp.open()
        futures = [wp.submit_nowait(ause, i) for i in range(5)]
        ref = weakref.ref(wp)
        shared = weakref.ref(wp._shared)
        del wp
        gc.collect()
        assert ref() is None
        assert [await f for f in futures] == list(range(5))
        await life.until(lambda: len(life.destroyed) == 2)
        await until(lambda: shared() is None or not any(w.alive for w in shared().workers))  # type: ignore[union-attr]
        return ref

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        run(main())
    gc.collect()
    assert life.live == []
    assert "destroyed but it is pending" not in caplog.text


# -- a chaos soak ---------------------------------------------------------------------------------


@pytest.mark.parametrize("ending", ["graceful", "cancel_pending", "halt"])
def test_chaos_soak_counts_stay_exact(ending: str, caplog: pytest.LogCaptureFixture) -> None:
    """Random cancels, failures, resizes, drains, each shutdown kind: counts stay exact."""
    rng = random.Random(f"chaos-{ending}")
    life = Life(mode="async")

    class Flaky:
        """Callbacks that fail now and then, plain and async mixed."""

        async def create(self) -> Res:
            await asyncio.sleep(0)
            if rng.random() < 0.1:
                raise Boom("create")
            res = Res(next(life.numbers))
            life.made.append(res)
            return res

        async def reset(self, res: Res) -> None:
            res.touch()
            await asyncio.sleep(0)
            if rng.random() < 0.05:
                raise Boom("reset")

        def check(self, res: Res) -> bool:
            res.touch()
            return rng.random() > 0.05

        async def destroy(self, res: Res) -> None:
            if res.destroyed:
                life.errors.append(f"{res} destroyed twice")
            res.destroyed = True
            await asyncio.sleep(0)
            if rng.random() < 0.05:
                raise Boom("destroy")

    flaky = Flaky()

    async def work(res: Res, i: int) -> int:
        res.touch()
        for _ in range(rng.randrange(3)):
            await asyncio.sleep(0)
            res.touch()
        roll = rng.random()
        if roll < 0.05:
            raise Boom("task")
        if roll < 0.07:
            raise Abort
        return i

    def plain(res: Res, i: int) -> int:
        res.touch()
        return i

    async def main() -> None:
        wp = AsyncWorkerPool(
            flaky.create,
            workers=4,
            max_pending=16,
            reset=flaky.reset,
            check=flaky.check,
            destroy=flaky.destroy,
            max_uses=7,
            timeout=WAIT,
        )
        settled: dict[int, int] = {}
        futures: list[asyncio.Future[Any]] = []

        def count(future: asyncio.Future[Any]) -> None:
            settled[id(future)] = settled.get(id(future), 0) + 1

        async def producer() -> None:
            for i in range(100):
                fn = work if i % 3 else plain
                future: asyncio.Future[Any]
                if rng.random() < 0.5:
                    future = asyncio.ensure_future(wp.submit(fn, i))
                else:
                    try:
                        future = wp.submit_nowait(fn, i)
                    except respool.PoolFull:
                        await asyncio.sleep(0)
                        continue
                    except respool.PoolClosed:
                        return
                future.add_done_callback(count)
                futures.append(future)
                roll = rng.random()
                if roll < 0.2:
                    rng.choice(futures[-8:]).cancel()
                elif roll < 0.22:
                    with contextlib.suppress(respool.PoolClosed):  # shut down meanwhile
                        wp.resize(rng.randrange(1, 6))
                elif roll < 0.23:
                    wp.drain()
                if rng.random() < 0.7:
                    await asyncio.wait([future])

        producers = [asyncio.create_task(producer()) for _ in range(8)]
        if ending != "graceful":
            await until(lambda: len(futures) >= 300)
        if ending == "graceful":
            await asyncio.gather(*producers)
            await wp.shutdown()
        elif ending == "cancel_pending":
            await wp.shutdown(cancel_pending=True)
        else:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(wp.shutdown(), 0)
            await wp.shutdown()
        await asyncio.gather(*producers)
        results = await asyncio.gather(*futures, return_exceptions=True)
        await asyncio.sleep(0)  # let the last done callbacks run (they are scheduled)
        assert sorted(set(settled.values())) == [1] and len(settled) == len(futures)
        outcomes: dict[str, int] = {}
        for result in results:
            key = type(result).__name__ if isinstance(result, BaseException) else "ok"
            outcomes[key] = outcomes.get(key, 0) + 1
        assert set(outcomes) <= {"ok", "Boom", "Abort", "CancelledError", "PoolClosed"}
        stats = wp.stats()
        assert_accounts(stats)
        assert (stats.workers, stats.busy, stats.queued, stats.resources) == (0, 0, 0, 0)
        assert stats.created == len(life.made)
        assert all(res.destroyed for res in life.made)
        assert life.errors == [] and MISUSE == []
        if ending == "graceful":
            # A caller cancelled just as its task completed sees CancelledError: completed
            # counts it, its caller does not.
            assert stats.completed >= outcomes["ok"] > 400, (stats, outcomes)

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        run(main())
    assert "never retrieved" not in caplog.text
    assert "destroyed but it is pending" not in caplog.text
