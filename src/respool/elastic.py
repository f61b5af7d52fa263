"""``ElasticPool`` and ``AsyncElasticPool``: eventual reuse in a dynamic pool.

Creates a resource whenever none is idle (up to ``max_size``) and, on return, keeps at most
``max_idle`` of them, destroying the surplus. Pick it when waiting for a resource costs more
than making one, and the pool only needs to absorb jumps in demand, not its peak.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from respool import _validate
from respool._asyncio.free_list import AsyncFreeListPool
from respool._free_list_shell import FreeListShell
from respool._threads.free_list import DEFAULT_TIMEOUT, _FreeListPool
from respool.lifecycle import Lifecycle

__all__ = ["AsyncElasticPool", "ElasticPool"]

T = TypeVar("T")


class _Default(int):
    """An ``int`` default that knows it was not given (shown as the plain number by
    ``help()``), so an explicit value can be checked where the default is adjusted."""

    __slots__ = ()

    def __repr__(self) -> str:
        return int.__repr__(self)


_MAX_IDLE: Final = _Default(4)


class _Keep:
    """``resize()``'s default: leave this size as it is."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<unchanged>"


_KEEP: Any = _Keep()


def _sizes(
    max_idle: int, min_idle: int, max_size: int | None, *, max_idle_given: bool
) -> tuple[int, int, int | None]:
    """Validate ElasticPool's three sizes together (naming both sides of a conflict); a
    ``max_idle`` not given is lowered to ``max_size``."""
    max_idle = _validate.integer("max_idle", max_idle, minimum=0)
    min_idle = _validate.integer("min_idle", min_idle, minimum=0)
    max_size = _validate.optional_integer("max_size", max_size, minimum=1)
    if max_size is not None and max_idle > max_size:
        if max_idle_given:
            raise ValueError(
                f"max_idle ({max_idle}) must not exceed max_size ({max_size}):"
                " no more resources can be idle than can exist"
            )
        max_idle = max_size
    if min_idle > max_idle:
        raise ValueError(f"min_idle ({min_idle}) must not exceed max_idle ({max_idle})")
    return int(max_idle), min_idle, max_size


class _Elastic(FreeListShell[T]):
    """The options and ``resize(min_idle=, max_idle=, max_size=)`` of a dynamic pool, the
    same for both shells (the options are documented on each public class). Its ``super()``
    is the shell that follows it in the public class's MRO: threaded or asyncio."""

    max_idle: int
    min_idle: int
    max_size: int | None

    def __init__(
        self,
        create: Lifecycle[T] | Callable[[], T | Awaitable[T]],
        *,
        max_idle: int = _MAX_IDLE,
        min_idle: int = 0,
        max_size: int | None = None,
        reset: Callable[[T], object] | None = None,
        check: Callable[[T], object] | None = None,
        destroy: Callable[[T], object] | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        max_waiting: int | None = None,
        idle_timeout: float | None = None,
        check_after: float = 0.0,
        max_lifetime: float | None = None,
        max_uses: int | None = None,
        keepalive: float | None = None,
        leak_timeout: float | None = None,
        discard_on_error: bool = False,
        order: str = "lifo",
        fairness: str = "bounded",
        fairness_window: float | None = None,
        name: str | None = None,
        observe: bool = False,
    ) -> None:
        max_idle, min_idle, max_size = _sizes(
            max_idle, min_idle, max_size, max_idle_given=max_idle is not _MAX_IDLE
        )
        self.max_idle = max_idle
        self.min_idle = min_idle
        self.max_size = max_size
        super().__init__(
            create,
            min_size=min_idle,
            max_size=max_size,
            max_idle=self.max_idle,
            prime=min_idle,
            reset=reset,
            check=check,
            destroy=destroy,
            timeout=timeout,
            max_waiting=max_waiting,
            discard_on_error=discard_on_error,
            order=order,
            name=name,
            check_after=check_after,
            max_lifetime=max_lifetime,
            max_uses=max_uses,
            idle_timeout=idle_timeout,
            keepalive=keepalive,
            leak_timeout=leak_timeout,
            fairness=fairness,
            fairness_window=fairness_window,
            observe=observe,
        )

    def resize(
        self,
        *,
        min_idle: int = _KEEP,
        max_idle: int = _KEEP,
        max_size: int | None = _KEEP,
    ) -> None:
        """Change the sizes at run time (those not given stay); the same rules as in the
        constructor. Growing ``min_idle`` creates in the background; shrinking destroys idle
        surplus at once and lent surplus as it comes back, never taking from a holder."""
        max_idle, min_idle, max_size = _sizes(
            self.max_idle if max_idle is _KEEP else max_idle,
            self.min_idle if min_idle is _KEEP else min_idle,
            self.max_size if max_size is _KEEP else max_size,
            max_idle_given=True,
        )
        self._resize(min_size=min_idle, max_size=max_size, max_idle=max_idle)
        self.max_idle, self.min_idle, self.max_size = max_idle, min_idle, max_size


class ElasticPool(_Elastic[T], _FreeListPool[T]):
    """A dynamic free list: create when empty, destroy surplus on return.

    ``create`` is a :class:`~respool.Lifecycle` or a bare callable plus ``reset=``,
    ``check=``, ``destroy=``.

    Options:

    * ``max_idle`` — idle resources kept at most; one returned beyond it is destroyed
      (default 4, lowered to ``max_size`` when that is smaller and ``max_idle`` is not given).
    * ``min_idle`` — resources created in the constructor and kept at least: after losses
      the background filler makes them again (default 0; at most ``max_idle``).
    * ``max_size`` — live resources at most (default ``None``: no limit); beyond it callers
      wait. ``resize(min_idle=, max_idle=, max_size=)`` changes the three at run time.
    * ``idle_timeout`` — destroy resources beyond ``min_idle`` idle this many seconds.
    * ``check_after``, ``max_lifetime``, ``max_uses``, ``keepalive``, ``leak_timeout`` — as
      on :class:`~respool.FixedPool`.
    * ``timeout`` — seconds ``acquire`` waits when ``max_size`` resources are lent (default
      30; ``None`` waits forever; ``0`` never waits), then ``PoolTimeout``;
      ``acquire(timeout=...)`` overrides it per call.
    * ``max_waiting`` — callers allowed to wait at once (default ``None``: no limit); the next
      one gets ``PoolFull`` at once.
    * ``discard_on_error`` — when a ``with`` body raises an ``Exception``, destroy the
      resource instead of resetting it (default False). A ``BaseException`` that is not an
      ``Exception`` (cancellation, ``KeyboardInterrupt``) always destroys it.
    * ``order`` — ``"lifo"`` (default: reuse the most recently returned resource, so the rest
      can age out) or ``"fifo"`` (rotate through all of them evenly).
    * ``fairness`` — ``"bounded"`` (default) or ``"fifo"``: see below.
      ``fairness_window`` — how long, in seconds, the oldest waiter may be overtaken with
      ``"bounded"`` (default 0.001).
    * ``name`` — used in logs and error messages.
    * ``observe`` — record how the pool is used (idle gaps between uses, resources in use
      over time) for ``stats().usage`` (default False). It costs a lock and a clock read at
      each acquire and release (the lock-free path is not taken); off, it costs nothing.

    Waiters (at ``max_size``) are served as in :class:`~respool.FixedPool`, by the same
    ``fairness`` rules. An acquire that must create a resource does so in its own thread
    and gets ``create``'s error if it fails. Inconsistent sizes given explicitly
    (``min_idle > max_idle``, ``max_idle > max_size``, ``min_idle > max_size``) raise
    ``ValueError`` naming both.
    """


class AsyncElasticPool(_Elastic[T], AsyncFreeListPool[T]):
    """The asyncio twin of :class:`ElasticPool`: the same options, rules and ``PoolStats``
    (``observe=True`` records idle gaps and resources in use for ``stats().usage``, at the
    cost of the slow path on each acquire and release).

    Callbacks may be plain or ``async def``; opening, loops, leases and cancellation are as
    on :class:`~respool.AsyncFixedPool` (``open()`` creates ``min_idle`` resources). An
    acquire that must create a resource awaits ``create`` itself, bounded by its timeout.
    """
