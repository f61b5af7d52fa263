"""A blocking facade over an asyncio pool, so that the threaded behaviour suite runs over the
asyncio twins unchanged.

The pool lives on an event loop running in a thread of its own; each facade call runs the
matching coroutine (or plain method) there and waits for it. Several test threads calling at
once are several tasks on that loop: waiting, hand-offs and timeouts are the asyncio shell's.
A test thread interrupted while it waits (``KeyboardInterrupt``) cancels its task: the asyncio
form of the same interruption.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

from respool._free_list_shell import FROM_POOL
from respool.lease import AsyncLease

R = TypeVar("R")

PATIENCE = 10.0


class LoopThread:
    """An event loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, R]) -> R:
        """Run *coro* on the loop and wait for it; interrupted, cancel it and wait for that."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(PATIENCE)
        except BaseException:
            if not future.done():
                future.cancel()
                try:
                    future.result(PATIENCE)
                except (concurrent.futures.CancelledError, Exception):
                    pass
            raise

    def call(self, fn: Callable[[], R]) -> R:
        """Call *fn* on the loop's thread (plain pool methods belong to it)."""

        async def on_loop() -> R:
            return fn()

        return self.run(on_loop())

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(PATIENCE)
        self.loop.close()


class FacadeLease:
    """A blocking view of an :class:`AsyncLease`."""

    def __init__(self, facade: PoolFacade, lease: AsyncLease[Any]) -> None:
        self._facade = facade
        self.lease = lease

    @property
    def resource(self) -> Any:
        return self.lease.resource

    @property
    def active(self) -> bool:
        return self.lease.active

    def release(self) -> None:
        self._facade._runner.run(self.lease.release())

    def discard(self) -> None:
        self._facade._runner.run(self.lease.discard())

    def __enter__(self) -> Any:
        return self._facade._runner.run(self.lease.__aenter__())

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._facade._runner.run(self.lease.__aexit__(exc_type, exc, tb))

    def __repr__(self) -> str:
        return repr(self.lease)


class PoolFacade:
    """A blocking view of an asyncio free-list pool; other attributes are the pool's."""

    def __init__(self, pool: Any, runner: LoopThread) -> None:
        object.__setattr__(self, "_pool", pool)
        object.__setattr__(self, "_runner", runner)
        runner.run(pool.open())

    def acquire(self, timeout: Any = FROM_POOL) -> FacadeLease:
        lease = self._pool.acquire() if timeout is FROM_POOL else self._pool.acquire(timeout)
        return FacadeLease(self, self._runner.run(_awaited(lease)))

    def try_acquire(self) -> FacadeLease | None:
        lease = self._runner.call(self._pool.try_acquire)
        return None if lease is None else FacadeLease(self, lease)

    def release(self, lease: Any) -> None:
        self._check(lease).release()

    def discard(self, lease: Any) -> None:
        self._check(lease).discard()

    def _check(self, lease: Any) -> FacadeLease:
        if not isinstance(lease, FacadeLease):
            raise TypeError(f"expected a Lease, got {lease!r}")
        self._pool._own_check(lease.lease, AsyncLease)
        return lease

    def close(self) -> None:
        self._runner.run(self._pool.close())

    def stats(self) -> Any:
        return self._runner.call(self._pool.stats)

    def drain(self) -> None:
        self._runner.call(self._pool.drain)

    def resize(self, *args: Any, **kwargs: Any) -> None:
        self._runner.call(lambda: self._pool.resize(*args, **kwargs))

    def _tend(self) -> float | None:
        """One round of the pool's background work, as the white-box tests call it."""
        result: float | None = self._runner.run(self._pool._tend())
        return result

    def settle(self) -> None:
        """Wait until the pool's background task has done what is asked of it so far."""
        self._runner.run(quiesce(self._pool))

    def __enter__(self) -> PoolFacade:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._pool, name, value)

    def __repr__(self) -> str:
        return f"<facade of {self._pool!r}>"


async def _awaited(lease: AsyncLease[Any]) -> AsyncLease[Any]:
    return await lease


async def quiesce(pool: Any, timeout: float = 5.0) -> None:
    """Until the pool's chores are done and its background task sleeps with nothing owed
    that is due (a create backing off may stay owed)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        await pool._chores.join()
        tender = pool._tender
        core = pool._core
        busy = tender is not None and not tender.done() and pool._tending.wake is None
        owed = core.owed and core.backoff.due(pool._clock())
        if not (busy or owed or pool._orphans or len(pool._chores)):
            return
        await asyncio.sleep(0.001)
    raise AssertionError("the pool's background task did not settle in time")
