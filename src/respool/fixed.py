"""``FixedPool`` and ``AsyncFixedPool``: eventual reuse in a static pool.

A fixed number of resources, created up front and kept at that number: callers wait when all
are in use. Pick it when a resource is expensive enough that waiting for one beats making
another, and a predictable footprint (say, connections a database will accept) matters.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from respool import _validate
from respool._asyncio.free_list import AsyncFreeListPool
from respool._free_list_shell import FreeListShell
from respool._threads.free_list import DEFAULT_TIMEOUT, _FreeListPool
from respool.lifecycle import Lifecycle

__all__ = ["AsyncFixedPool", "FixedPool"]

T = TypeVar("T")


class _Sized(FreeListShell[T]):
    """The options and ``resize(size)`` of a fixed-size pool, the same for both shells (the
    options are documented on each public class). Its ``super()`` is the shell that follows
    it in the public class's MRO: threaded or asyncio."""

    size: int

    def __init__(
        self,
        create: Lifecycle[T] | Callable[[], T | Awaitable[T]],
        size: int = 4,
        *,
        reset: Callable[[T], object] | None = None,
        check: Callable[[T], object] | None = None,
        destroy: Callable[[T], object] | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        max_waiting: int | None = None,
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
            check_after=check_after,
            max_lifetime=max_lifetime,
            max_uses=max_uses,
            keepalive=keepalive,
            leak_timeout=leak_timeout,
            fairness=fairness,
            fairness_window=fairness_window,
            observe=observe,
        )

    def resize(self, size: int) -> None:
        """Hold *size* resources from now on. Growing creates the new ones in the background
        (waiters get them); shrinking destroys idle ones at once and lent ones as they come
        back, never taking a resource from its holder."""
        size = _validate.integer("size", size, minimum=1)
        self._resize(min_size=size, max_size=size, max_idle=size)
        self.size = size


class FixedPool(_Sized[T], _FreeListPool[T]):
    """A free list of exactly ``size`` resources, created in the constructor.

    ``create`` is a :class:`~respool.Lifecycle` or a bare callable plus ``reset=``,
    ``check=``, ``destroy=``. If creating the initial resources fails, the ones already made
    are destroyed and the error is raised. A resource destroyed for any reason (failed
    ``check`` or ``reset``, ``discard()``, an aborted ``with`` body, a lost lease, retirement)
    is replaced by a background thread, so the pool keeps its size; while ``create`` keeps
    failing it is retried with backoff (about 50 ms at first, doubling to 2 s) and callers
    wait, up to their timeout, for the replacement.

    Options:

    * ``size`` — how many resources the pool holds (>= 1); ``resize(size)`` changes it.
    * ``timeout`` — seconds ``acquire`` waits for a resource (default 30; ``None`` waits
      forever; ``0`` never waits), then ``PoolTimeout``; ``acquire(timeout=...)`` overrides it
      per call.
    * ``max_waiting`` — callers allowed to wait at once (default ``None``: no limit); the next
      one gets ``PoolFull`` at once.
    * ``check_after`` — run ``check`` only on a resource idle (or unchecked) at least this
      many seconds (default 0: before every lend).
    * ``max_lifetime`` — retire a resource this many seconds old (each gets up to 10% less,
      so they do not all expire at once); never taken from a caller, retired when it comes
      back, when a caller is about to take it, or while idle.
    * ``max_uses`` — retire a resource after this many leases.
    * ``keepalive`` — check idle resources at least this often (needs ``check``) and replace
      the dead before a caller meets them.
    * ``leak_timeout`` — report, once, a lease held longer than this (a WARNING on the
      ``respool`` logger with the stack that acquired it, and a ``ResourceWarning``).
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

    Fairness: waiters are served in arrival order, and a waiter whose resource fails its
    ``check`` keeps its place. With ``fairness="fifo"`` a newcomer never takes a resource while
    someone waits. With ``"bounded"`` (the default) a newcomer may take an idle resource ahead
    of the waiters while the oldest of them has waited less than ``fairness_window`` (1 ms),
    so a thread that returns a resource and wants it back at once does not have to sleep
    behind a sleeping waiter (a lock convoy); past the window, hand-off is strict.
    """


class AsyncFixedPool(_Sized[T], AsyncFreeListPool[T]):
    """The asyncio twin of :class:`FixedPool`: the same options, rules and ``PoolStats``
    (``observe=True`` records idle gaps and resources in use for ``stats().usage``, at the
    cost of the slow path on each acquire and release).

    ``create``, ``reset``, ``check`` and ``destroy`` may be plain or ``async def``. Nothing
    is created in the constructor (it may run outside any event loop): ``await
    pool.open()``, or ``async with pool:``, creates the ``size`` resources on the running
    loop (a failure destroys the others and raises); a pool used before it is opened binds
    to the loop of its first use and creates them in the background. The pool then belongs
    to that loop; using it from another raises ``RuntimeError``.

    ``async with pool.acquire(timeout=...) as resource:`` borrows a resource for a block;
    ``lease = await pool.acquire()`` borrows it until ``await lease.release()`` or ``await
    lease.discard()``. ``try_acquire()``, ``stats()``, ``resize()`` and ``drain()`` never
    wait. ``await pool.close()`` (or the end of ``async with pool``) stops lending and waits
    for the destroys it starts.

    Cancellation never loses a resource: a task cancelled while waiting leaves the line
    (a resource granted to it at that instant goes to the next waiter); cancelled, or timed
    out, inside the ``async with`` block, its resource is destroyed, never reused (the
    destroy does not delay the cancellation); cancelled while a ``check`` or ``reset``
    runs, the resource is destroyed; while an async ``create`` runs for it, the create
    goes on and its resource joins the pool. ``asyncio.wait_for`` and ``asyncio.timeout``
    around ``acquire`` always bound it, and so does its own ``timeout``, even around a
    slow async ``create`` or ``check``.
    """
