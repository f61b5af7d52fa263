"""``map`` for the worker pools whose futures are ``concurrent.futures`` ones: lazy, ordered,
bounded, written once.

``WorkerPool.map`` and ``RayWorkerPool.map`` keep the same promises: results in input order;
at most *window* items in flight (submitted and not yet yielded), the next input pulled only
when a result has been taken, so an endless iterator is fine and memory stays flat; a deadline
for the whole iteration (``PoolTimeout``, the not-yet-started item cancelled, as
``Executor.map`` does); and closing the iterator (``break``, garbage collection) cancels what
has not started. Only how one item is submitted differs, so the pool passes that in.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from time import monotonic
from typing import Any, TypeVar

from respool.errors import PoolTimeout

__all__ = ["left", "ordered_map"]

R = TypeVar("R")


def left(deadline: float | None) -> float | None:
    """Seconds until *deadline* (never negative), or None for no deadline."""
    return None if deadline is None else max(0.0, deadline - monotonic())


def ordered_map(
    submit: Callable[[tuple[Any, ...], float | None], Future[R]],
    inputs: Iterator[tuple[Any, ...]],
    window: int,
    deadline: float | None,
    name: str,
) -> Iterator[R]:
    """Yield the results of ``submit(args, seconds_left)`` over *inputs*, in order, with at
    most *window* in flight, until *deadline* (pool *name* appears in the timeout's message).
    ``submit`` may wait for room, within the seconds it is given."""
    pending: deque[Future[R]] = deque()
    try:
        exhausted = False
        while True:
            while not exhausted and len(pending) < window:
                try:
                    args = next(inputs)
                except StopIteration:
                    exhausted = True
                    break
                pending.append(submit(args, left(deadline)))
            if not pending:
                return
            task = pending.popleft()
            try:
                result: R = task.result(left(deadline))
            except TimeoutError:
                if not task.done():
                    task.cancel()  # as Executor.map: what has not started never will
                    raise PoolTimeout(f"map on pool {name!r} ran past its timeout") from None
                # Finished meanwhile, or the task itself raised TimeoutError.
                result = task.result()
            del task
            yield result
            del result
    finally:
        for task in pending:
            task.cancel()
