"""The threaded shell shared by ``FixedPool`` and ``ElasticPool``.

It owns a lock and a :class:`~respool._core.free_list.FreeListCore`. Every state change is a
core move made under the lock; the lifecycle callbacks, wake-ups and destruction the move asks
for run after the lock is released, so a slow ``create`` or ``destroy`` never blocks another
caller's bookkeeping. The uncontended path skips the lock altogether, following the core's hot
path protocol.
"""

from __future__ import annotations

import itertools
import logging
import threading
from _thread import LockType
from collections.abc import Callable
from time import monotonic
from types import TracebackType
from typing import Any, Final, Generic, Self, TypeVar

from respool import _debug, _fork, _validate
from respool._core.free_list import (
    CLOSED,
    CREATE,
    Entry,
    FreeListCore,
    Todo,
    Waiter,
    _Token,
)
from respool.errors import LeaseError, PoolClosed, PoolTimeout, StillInUse
from respool.lease import DebugLease, Lease
from respool.lifecycle import Lifecycle, coerce
from respool.stats import PoolStats

__all__ = ["DEFAULT_TIMEOUT"]

T = TypeVar("T")

log = logging.getLogger("respool")

#: Seconds ``acquire`` waits by default, as psycopg_pool and HikariCP: waiting forever by
#: default turns an exhausted pool into a hung service.
DEFAULT_TIMEOUT: Final = 30.0

_ORDERS: Final = ("lifo", "fifo")
_FROM_POOL: Any = object()  # sentinel: "use the pool's own timeout"
_names = itertools.count(1)  # next() on it is atomic: safe for pools made in threads


def _debug_lease(cls: type[Lease[Any]]) -> Lease[Any]:
    return object.__new__(DebugLease)


#: Makes the (still empty) lease object. Leases skip ``__init__`` and pools fill their slots;
#: debug mode swaps in :class:`DebugLease` here, so the hot path has no debug branch.
_new_lease: Callable[[type[Lease[Any]]], Lease[Any]] = object.__new__


def _on_debug(on: bool) -> None:
    global _new_lease
    _new_lease = _debug_lease if on else object.__new__


_debug.subscribe(_on_debug)


def _lease(pool: _FreeListPool[T], entry: Entry[T]) -> Lease[T]:
    lease: Lease[T] = _new_lease(Lease)
    lease._pool = pool
    lease._entry = entry
    return lease


class _FreeListPool(Generic[T]):
    """Acquire/release machinery common to the threaded free-list pools."""

    def __init__(
        self,
        create: Lifecycle[T] | Callable[[], T],
        *,
        min_size: int,
        max_size: int | None,
        max_idle: int,
        prime: int,
        reset: Callable[[T], object] | None,
        check: Callable[[T], object] | None,
        destroy: Callable[[T], object] | None,
        timeout: float | None,
        max_waiting: int | None,
        discard_on_error: bool,
        order: str,
        name: str | None,
    ) -> None:
        lifecycle = coerce(create, reset=reset, check=check, destroy=destroy)
        self.lifecycle: Lifecycle[T] = lifecycle
        self._create = lifecycle.create
        self._reset = lifecycle.reset
        self._check = lifecycle.check
        self._destroy_fn = lifecycle.destroy
        self._timeout = _validate.seconds("timeout", timeout)
        max_waiting = _validate.optional_integer("max_waiting", max_waiting, minimum=0)
        if not isinstance(discard_on_error, bool):
            raise TypeError(f"discard_on_error must be a bool, got {discard_on_error!r}")
        self.discard_on_error = discard_on_error
        order = _validate.choice("order", order, _ORDERS)
        if name is None:
            name = f"{type(self).__name__}-{next(_names)}"
        self.name = _validate.text("name", name)

        self._lock = threading.Lock()
        #: Entries of leases lost without being ended, reported by debug mode at a moment the
        #: lock could not be taken; destroyed on the next slow-path call.
        self._orphans: list[Entry[T]] = []
        self._core: FreeListCore[T] = FreeListCore(
            name=self.name,
            min_size=min_size,
            max_size=max_size,
            max_idle=max_idle,
            max_waiting=max_waiting,
            lifo=order == "lifo",
        )
        _fork.register(self)
        self._prime(prime)

    # -- public API -----------------------------------------------------------------------

    def acquire(self, timeout: float | None = _FROM_POOL) -> Lease[T]:
        """Borrow a resource, waiting up to *timeout* seconds (default: the pool's).

        ``None`` waits forever, ``0`` never waits. Raises ``PoolTimeout`` at the deadline,
        ``PoolFull`` when ``max_waiting`` callers already wait, ``PoolClosed`` once closed,
        and whatever ``create`` raised when the pool had to create a resource and could not.
        """
        if timeout is not _FROM_POOL:
            timeout = _validate.seconds("timeout", timeout)
        # The core's lock-free take (see its hot path protocol), inlined for speed.
        core = self._core
        if not core.waiters and core.idle:
            try:
                entry = core.take()
            except IndexError:  # another thread took the last one since we looked
                return self._acquire_slow(timeout, None)
            if self._check is None:
                entry.uses += 1
                lease: Lease[T] = _new_lease(Lease)  # _lease(), inlined
                lease._pool = self
                lease._entry = entry
                return lease
            return self._acquire_slow(timeout, entry)
        return self._acquire_slow(timeout, None)

    def try_acquire(self) -> Lease[T] | None:
        """Borrow a resource if one can be had without waiting, else return ``None``.

        It may create a resource when the pool has room; it never waits for another caller.
        """
        try:
            return self._acquire_slow(0, None, trying=True)
        except PoolTimeout:
            return None

    def release(self, lease: Lease[T]) -> None:
        """End *lease* by giving its resource back for reuse (same as ``lease.release()``)."""
        self._own(lease).release()

    def discard(self, lease: Lease[T]) -> None:
        """End *lease* by destroying its resource (same as ``lease.discard()``)."""
        self._own(lease).discard()

    def stats(self) -> PoolStats:
        """A consistent snapshot of the pool's counts."""
        if self._orphans:
            self._adopt_orphans()
        with self._lock:
            return self._core.stats()

    def close(self) -> None:
        """Stop lending: waiters get ``PoolClosed``, idle resources are destroyed now and
        leased ones when they come back. Calling it again does nothing."""
        if self._orphans:
            self._adopt_orphans()
        with self._lock:
            todo = self._core.close()
        self._perform(todo)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._core.closed

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        core = self._core
        state = "closed" if core.closed else f"size={core.size} idle={len(core.idle)}"
        return f"<{type(self).__name__} {self.name!r} {state}>"

    # -- acquire, the slow way ----------------------------------------------------------

    def _acquire_slow(
        self, timeout: float | None, entry: Entry[T] | None, *, trying: bool = False
    ) -> Lease[T]:
        """Acquire with waiting, creating and checking; *entry* came from the lock-free take.

        *timeout* is already validated, or ``_FROM_POOL``. *trying*: a ``try_acquire``, whose
        coming back empty-handed is not counted as a timeout.
        """
        if self._orphans:
            self._adopt_orphans()
        if timeout is _FROM_POOL:
            timeout = self._timeout
        deadline = None if timeout is None else monotonic() + timeout
        while True:
            if entry is None:
                entry, fresh = self._obtain(deadline, trying)
                if fresh:
                    break  # just created: nothing to check
            if self._check is None or self._viable(entry):
                break
            # Unviable: destroy it. Where that frees a slot to refill (FixedPool), fill it for
            # this caller: a new resource needs no check, so a check that always fails cannot
            # spin. Otherwise try the next idle one, or wait, within the same deadline.
            with self._lock:
                todo = self._core.check_failed(entry, monotonic())
            own_slot = todo.create > 0
            if own_slot:
                todo.create -= 1
            self._perform(todo)
            if not own_slot:
                entry = None
                continue
            entry = self._create_leased()
            break
        entry.uses += 1
        return _lease(self, entry)

    def _obtain(self, deadline: float | None, trying: bool) -> tuple[Entry[T], bool]:
        """An entry from the idle list, a waiter's grant, or a new resource (fresh=True)."""
        handle: LockType | None = None
        if deadline is None or deadline > monotonic():
            handle = threading.Lock()
            handle.acquire()
        with self._lock:
            core = self._core
            todo = core.request(monotonic(), handle)
            if todo.outcome is None and not trying:
                core.note_timeout()
        if todo:
            self._perform(todo)
        outcome = todo.outcome
        if outcome is None:
            raise PoolTimeout(f"pool {self.name!r} has no resource free and may not wait")
        if isinstance(outcome, Waiter):
            outcome = self._park(outcome, deadline)
        if outcome is CREATE:
            return self._create_leased(), True
        assert isinstance(outcome, Entry)
        return outcome, False

    def _park(self, waiter: Waiter[T], deadline: float | None) -> Entry[T] | _Token:
        """Sleep until *waiter* is served or *deadline* passes; return its grant."""
        handle = waiter.handle
        assert isinstance(handle, LockType)
        try:
            if deadline is None:
                handle.acquire()
            else:
                remaining = min(deadline - monotonic(), threading.TIMEOUT_MAX)
                if not (remaining > 0 and handle.acquire(timeout=remaining)):
                    with self._lock:
                        self._core.cancel(waiter, timed_out=True)
        except BaseException:
            # Interrupted (KeyboardInterrupt in the main thread): leave the queue, and pass on
            # anything granted meanwhile so it is not stranded.
            with self._lock:
                core = self._core
                grant = core.cancel(waiter, timed_out=False)
                todo = core.give_back(grant, monotonic()) if grant is not None else Todo()
            self._perform(todo)
            raise
        # Served, or timed out; a grant that raced the deadline is taken all the same.
        grant = waiter.grant
        if grant is None:
            raise PoolTimeout(f"no resource from pool {self.name!r} before the deadline")
        if grant is CLOSED:
            raise PoolClosed(f"pool {self.name!r} was closed while waiting")
        return grant

    def _create_leased(self) -> Entry[T]:
        """Fill the slot the core reserved for this caller; errors go to the caller."""
        try:
            resource = self._create()
        except BaseException:
            with self._lock:
                todo = self._core.create_failed(monotonic())
            self._perform(todo)
            raise
        with self._lock:
            return self._core.filled(resource, monotonic())

    def _viable(self, entry: Entry[T]) -> bool:
        """Run ``check``: False (or an exception) means *entry* must be destroyed."""
        check = self._check
        assert check is not None
        try:
            return bool(check(entry.resource))
        except Exception:
            log.warning("pool %r: check raised; destroying the resource", self.name, exc_info=True)
            return False
        except BaseException:
            self._throw_away(entry)
            raise

    # -- release --------------------------------------------------------------------------

    def _put(self, entry: Entry[T]) -> None:
        """Reset *entry* and return it for reuse (the lease has already ended)."""
        reset = self._reset
        if reset is not None:
            try:
                reset(entry.resource)
            except BaseException as exc:
                self._reset_failed(entry, exc)
                return
        # The core's lock-free put (see its hot path protocol), inlined for speed.
        core = self._core
        idle = core.idle
        if not (
            core.waiters
            or core.closed
            or len(idle) >= core.max_idle
            or entry.generation != core.generation
        ):
            idle.append(entry)
            # Published first, looked second: a waiter or close that raced us is settled here.
            if not (core.waiters or core.closed or len(idle) > core.max_idle):
                return
            with self._lock:
                todo = self._core.settle(monotonic())
        else:
            with self._lock:
                todo = self._core.release(entry, monotonic())
        self._perform(todo)

    def _reset_failed(self, entry: Entry[T], exc: BaseException) -> None:
        """``reset`` raised: the resource cannot be cleaned, so it is destroyed.

        ``StillInUse`` (e.g. a buffer with a live ``memoryview``) is the caller's bug, not the
        resource's, so it reaches the caller, after the resource is safely gone.
        """
        loud = isinstance(exc, StillInUse) or not isinstance(exc, Exception)
        if not loud:
            log.warning("pool %r: reset raised; destroying the resource", self.name, exc_info=exc)
        with self._lock:
            todo = self._core.reset_failed(entry, monotonic())
        self._perform(todo)
        if loud:
            raise exc

    def _throw_away(self, entry: Entry[T]) -> None:
        """Destroy *entry*'s resource instead of reusing it (the lease has already ended)."""
        with self._lock:
            todo = self._core.discard(entry, monotonic())
        self._perform(todo)

    def _own(self, lease: Lease[T]) -> Lease[T]:
        if not isinstance(lease, Lease):
            raise TypeError(f"expected a Lease, got {lease!r}")
        if lease._pool is not self:
            raise LeaseError(
                f"this lease comes from pool {lease._pool.name!r}, not from {self.name!r}"
                f"{lease._history()}"
            )
        return lease

    # -- lost leases (debug mode) -----------------------------------------------------------

    def _leaked(self, entry: Entry[T], stack: str) -> None:
        """A debug lease was garbage-collected still active: report it, destroy its resource.

        This runs from ``__del__``, possibly while this very thread holds the pool's lock (a
        collection can start on any allocation), so it only *tries* the lock; when that fails
        the entry waits in ``_orphans`` for the next slow-path call.
        """
        log.warning(
            "pool %r: a lease was lost without being released; its resource will be"
            " destroyed. It was acquired at (most recent call last):\n%s",
            self.name,
            stack.rstrip(),
        )
        if not self._lock.acquire(blocking=False):
            self._orphans.append(entry)
            return
        try:
            todo = self._core.leaked(entry, monotonic())
        finally:
            self._lock.release()
        self._perform(todo)

    def _adopt_orphans(self) -> None:
        while self._orphans:
            try:
                entry = self._orphans.pop()
            except IndexError:  # another thread adopted the last one
                return
            with self._lock:
                todo = self._core.leaked(entry, monotonic())
            self._perform(todo)

    # -- performing what the core asked for --------------------------------------------------

    def _perform(self, todo: Todo[T]) -> None:
        """Wake served waiters, destroy retired resources, create replacements."""
        for waiter in todo.wake:
            handle = waiter.handle
            assert isinstance(handle, LockType)
            handle.release()
        for entry in todo.destroy:
            self._destroy(entry.resource)
        for _ in range(todo.create):
            self._replenish()

    def _destroy(self, resource: T) -> None:
        destroy = self._destroy_fn
        if destroy is None:
            return
        try:
            destroy(resource)
        except BaseException as exc:
            with self._lock:
                self._core.note_destroy_error()
            if not isinstance(exc, Exception):
                raise
            log.warning("pool %r: destroy raised", self.name, exc_info=True)

    def _replenish(self) -> None:
        """Create a replacement for a reserved slot; failure is logged, never raised."""
        try:
            resource = self._create()
        except BaseException as exc:
            with self._lock:
                todo = self._core.create_failed(monotonic())
            self._perform(todo)
            if not isinstance(exc, Exception):
                raise
            log.warning(
                "pool %r: creating a replacement failed; will retry on demand",
                self.name,
                exc_info=True,
            )
            return
        self._stock(resource)

    def _prime(self, count: int) -> None:
        """Create *count* resources now; if one fails, destroy the others and raise."""
        with self._lock:
            reserved = self._core.reserve(count)
        for made in range(reserved):
            try:
                resource = self._create()
            except BaseException:
                with self._lock:
                    self._core.create_failed(monotonic())
                    for _ in range(reserved - made - 1):
                        self._core.create_failed(monotonic(), error=False)
                self.close()
                raise
            self._stock(resource)

    def _stock(self, resource: T) -> None:
        with self._lock:
            todo = self._core.stock(resource, monotonic())
        self._perform(todo)

    def _after_fork_in_child(self) -> None:
        """Forget the parent's resources (without destroying them) and start afresh."""
        self._lock = threading.Lock()
        self._core = self._core.forked()
