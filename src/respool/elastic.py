"""``ElasticPool``: eventual reuse in a dynamic pool.

Creates a resource whenever none is idle (up to ``max_size``) and, on return, keeps at most
``max_idle`` of them, destroying the surplus. Pick it when waiting for a resource costs more
than making one, and the pool only needs to absorb jumps in demand, not its peak.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from respool import _validate
from respool.free_list import DEFAULT_TIMEOUT, _FreeListPool
from respool.lifecycle import Lifecycle

__all__ = ["ElasticPool"]

T = TypeVar("T")


class ElasticPool(_FreeListPool[T]):
    """A dynamic free list: create when empty, destroy surplus on return.

    ``min_idle`` resources are created in the constructor; ``max_size`` (None: unbounded)
    caps live resources, beyond which callers wait; ``max_idle`` caps the idle ones kept.
    """

    def __init__(
        self,
        create: Lifecycle[T] | Callable[[], T],
        *,
        max_idle: int = 4,
        min_idle: int = 0,
        max_size: int | None = None,
        reset: Callable[[T], object] | None = None,
        check: Callable[[T], object] | None = None,
        destroy: Callable[[T], object] | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        max_waiting: int | None = None,
        discard_on_error: bool = False,
        order: str = "lifo",
        name: str | None = None,
    ) -> None:
        max_idle = _validate.integer("max_idle", max_idle, minimum=0)
        min_idle = _validate.integer("min_idle", min_idle, minimum=0)
        max_size = _validate.optional_integer("max_size", max_size, minimum=1)
        if min_idle > max_idle:
            raise ValueError(f"min_idle ({min_idle}) must not exceed max_idle ({max_idle})")
        if max_size is not None and min_idle > max_size:
            raise ValueError(f"min_idle ({min_idle}) must not exceed max_size ({max_size})")
        self.max_idle = max_idle
        self.min_idle = min_idle
        self.max_size = max_size
        super().__init__(
            create,
            min_size=0,
            max_size=max_size,
            max_idle=max_idle,
            prime=min_idle,
            reset=reset,
            check=check,
            destroy=destroy,
            timeout=timeout,
            max_waiting=max_waiting,
            discard_on_error=discard_on_error,
            order=order,
            name=name,
        )
