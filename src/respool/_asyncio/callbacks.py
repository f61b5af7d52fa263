"""Calling user callbacks from the asyncio shells, and running cleanup nobody may cancel.

Lifecycle callbacks of the async pools may be plain functions or ``async def`` ones (or plain
functions returning an awaitable, such as ``lambda: asyncpg.connect(dsn)``): :func:`call`
awaits the result only when it is awaitable, so a plain callback costs no extra step of the
event loop.

Cleanup (destroying a resource, finishing a ``create`` whose caller was cancelled) must never
be cut short by the caller's cancellation, yet must never swallow it either: a caller wrapped
in ``asyncio.wait_for`` has to get its ``CancelledError`` on time. :class:`Chores` runs such
work as tasks of the pool's own, which a cancelled caller does not wait for and which
``close()`` awaits.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["Chores", "call", "running_loop"]

T = TypeVar("T")

log = logging.getLogger("respool")


async def call(fn: Callable[..., T | Awaitable[T]], *args: Any) -> T:
    """``fn(*args)``, awaited when it returns an awaitable."""
    result = fn(*args)
    if inspect.isawaitable(result):
        return await result
    return result


def running_loop(what: str) -> asyncio.AbstractEventLoop:
    """The running event loop, or a ``RuntimeError`` saying that *what* needs one."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(f"{what} must be called from a running asyncio event loop") from None


class Chores:
    """Background tasks of one pool on its loop: cleanup that outlives a cancelled caller.

    Every task is kept (a task nobody references may be garbage-collected mid-flight) until
    it ends; :meth:`join` waits for all of them, including those started meanwhile. An
    exception a chore raises is logged, never lost silently and never raised elsewhere.
    """

    __slots__ = ("_name", "_tasks")

    def __init__(self, name: str) -> None:
        self._name = name
        self._tasks: set[asyncio.Future[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def tasks(self) -> set[asyncio.Future[Any]]:
        """The chores running now (a copy)."""
        return set(self._tasks)

    def start(
        self, coro: Coroutine[Any, Any, Any], loop: asyncio.AbstractEventLoop
    ) -> asyncio.Task[Any]:
        """Run *coro* as a chore on *loop* (the caller may be cancelled; the chore is not)."""
        task = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._ended)
        return task

    def track(self, task: asyncio.Future[Any]) -> None:
        """Keep *task* (whose outcome its owner collects) until it ends; :meth:`join`
        waits for it too."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _ended(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.warning("pool %r: a background task failed", self._name, exc_info=exc)

    async def join(self) -> None:
        """Wait until no chore is left (cancelling the waiter leaves the chores running)."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    def cancel(self) -> None:
        """Cancel every chore (a pool abandoned with its loop gone)."""
        for task in list(self._tasks):
            task.cancel()
