"""``FixedPool``: eventual reuse in a static pool.

A fixed number of resources, created up front and kept at that number: callers wait when all
are in use. Pick it when a resource is expensive enough that waiting for one beats making
another, and a predictable footprint (say, connections a database will accept) matters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from respool import _validate
from respool.free_list import DEFAULT_TIMEOUT, _FreeListPool
from respool.lifecycle import Lifecycle

__all__ = ["FixedPool"]

T = TypeVar("T")


class FixedPool(_FreeListPool[T]):
    """A free list of exactly ``size`` resources, created in the constructor.

    A resource destroyed for any reason (failed ``check`` or ``reset``, discard, abort) is
    replaced, so the pool keeps its size; if the replacement cannot be created, the next
    acquire that finds the pool short tries again. If creating the initial resources fails,
    the ones already made are destroyed and the error is raised.
    """

    def __init__(
        self,
        create: Lifecycle[T] | Callable[[], T],
        size: int = 4,
        *,
        reset: Callable[[T], object] | None = None,
        check: Callable[[T], object] | None = None,
        destroy: Callable[[T], object] | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        max_waiting: int | None = None,
        discard_on_error: bool = False,
        order: str = "lifo",
        name: str | None = None,
    ) -> None:
        size = _validate.integer("size", size, minimum=1)
        self.size = size
        super().__init__(
            create,
            min_size=size,
            max_size=size,
            max_idle=size,
            prime=size,
            reset=reset,
            check=check,
            destroy=destroy,
            timeout=timeout,
            max_waiting=max_waiting,
            discard_on_error=discard_on_error,
            order=order,
            name=name,
        )
