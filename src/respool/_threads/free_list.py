"""The threaded shell shared by ``FixedPool`` and ``ElasticPool``.

It owns a lock and a :class:`~respool._core.free_list.FreeListCore`. Every state change is a
core move made under the lock; the lifecycle callbacks, wake-ups and destruction the move asks
for run after the lock is released, so a slow ``create`` or ``destroy`` never blocks another
caller's bookkeeping. Replacements are made by the background filler
(:mod:`respool._threads.filler`), never inside a caller's ``release()``. The uncontended path
skips the lock altogether, through the core's non-blocking moves.
"""

from __future__ import annotations

import logging
import threading
from _thread import LockType
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self, TypeVar

from respool import _debug, _fork, _validate
from respool._core.free_list import CHECK, CLOSED, CREATE, Entry, Todo, Waiter, _Token
from respool._free_list_shell import (
    DEFAULT_FAIRNESS_WINDOW,
    DEFAULT_TIMEOUT,
    FROM_POOL,
    FreeListShell,
)
from respool._threads import filler
from respool.errors import PoolClosed
from respool.lease import DebugLease, Lease
from respool.lifecycle import Lifecycle

__all__ = ["DEFAULT_FAIRNESS_WINDOW", "DEFAULT_TIMEOUT", "FROM_POOL"]

T = TypeVar("T")

log = logging.getLogger("respool")


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
    entry.uses += 1
    lease: Lease[T] = _new_lease(Lease)
    lease._pool = pool
    lease._entry = entry
    return lease


class _FreeListPool(FreeListShell[T]):
    """Acquire/release machinery common to the threaded free-list pools."""

    def __init__(
        self,
        create: Lifecycle[Any] | Callable[[], Any],
        **options: Any,
    ) -> None:
        super().__init__(create, **options)
        #: The thread running :meth:`_tend` right now, if any.
        self._tending_in: int | None = None
        _fork.register(self)
        self._prime(self._prime_count)
        if self._health:
            filler.request(self)  # housekeeping: lifetimes, idle eviction, keepalive, leaks

    def _wire(self) -> None:
        """Wire the core's lock-free moves in as the hot path.

        Without a ``reset``, giving a resource back *is* the core's ``put_nowait``: leases
        call it directly, and the core calls back :meth:`_finish_put` only when the lock is
        needed. Each Python call frame saved here is a tenth of an uncontended round trip.
        """
        super()._wire()
        plain_put = self._reset is None and not self._health and self._observer is None
        self._put: Callable[[Entry[T]], object] = (
            self._core.put_nowait if plain_put else self._put_slow
        )

    # -- public API -----------------------------------------------------------------------

    def acquire(self, timeout: float | None = FROM_POOL) -> Lease[T]:
        """Borrow a resource, waiting up to *timeout* seconds (default: the pool's).

        ``None`` waits forever, ``0`` never waits. Raises ``PoolTimeout`` at the deadline,
        ``PoolFull`` when ``max_waiting`` callers already wait, ``PoolClosed`` once closed,
        and whatever ``create`` raised when the pool had to create a resource for this caller
        and could not.
        """
        if timeout is not FROM_POOL:
            timeout = _validate.seconds("timeout", timeout)
        try:
            entry = self._core.take_nowait()
        except IndexError:  # none idle
            entry = None
        if entry is not None and self._plain:
            entry.uses += 1
            lease: Lease[T] = _new_lease(Lease)  # _lease(), inlined: this is the hot path
            lease._pool = self
            lease._entry = entry
            return lease
        lent = self._acquire_slow(timeout, entry, trying=False)
        assert lent is not None
        return lent

    def try_acquire(self) -> Lease[T] | None:
        """Borrow a resource if one can be had without waiting, else return ``None``.

        It may create a resource when the pool has room; it never waits for another caller.
        """
        try:
            entry = self._core.take_nowait()
        except IndexError:  # none idle
            entry = None
        if entry is not None and self._plain:
            return _lease(self, entry)
        return self._acquire_slow(0, entry, trying=True)

    def release(self, lease: Lease[T]) -> None:
        """End *lease* by giving its resource back for reuse (same as ``lease.release()``)."""
        self._own(lease).release()

    def discard(self, lease: Lease[T]) -> None:
        """End *lease* by destroying its resource (same as ``lease.discard()``)."""
        self._own(lease).discard()

    def close(self) -> None:
        """Stop lending: waiters get ``PoolClosed``, idle resources are destroyed now and
        leased ones when they come back. Calling it again does nothing."""
        if self._orphans:
            self._adopt_orphans()
        with self._lock:
            todo = self._core.close()
        self._perform(todo)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- acquire, the slow way ----------------------------------------------------------

    def _acquire_slow(
        self, timeout: float | None, entry: Entry[T] | None, *, trying: bool
    ) -> Lease[T] | None:
        """Acquire with waiting, creating and checking; *entry* came from the lock-free take.

        *timeout* is already validated, or ``FROM_POOL``. *trying*: a ``try_acquire``, which
        returns None rather than wait, and is not counted as a timeout.
        """
        if self._orphans:
            self._adopt_orphans()
        if timeout is FROM_POOL:
            timeout = self._timeout
        started = self._clock()
        deadline = None if timeout is None else started + timeout
        core = self._core
        failed: Entry[T] | None = None
        why = CHECK
        now = started
        while True:
            if entry is None:
                entry = self._obtain(timeout, deadline, trying, failed, why, started)
                if entry is None:
                    return None
                if self._health:
                    now = self._clock()  # it may have waited
            reason = core.worn(entry, now) if self._health else None
            if reason is None and (
                self._check is None
                or not core.needs_check(entry, started, now)
                or self._viable(entry, now)
            ):
                self._lending(entry, now)
                if self._observer is not None:
                    self._began(entry)
                return _lease(self, entry)
            # Due for retirement, or unviable: destroy it and go on at the head of the line
            # (a new resource needs no check, so a check that always fails cannot spin).
            failed, why, entry = entry, reason or CHECK, None

    def _obtain(
        self,
        timeout: float | None,
        deadline: float | None,
        trying: bool,
        failed: Entry[T] | None,
        why: str = CHECK,
        started: float | None = None,
    ) -> Entry[T] | None:
        """An idle entry, a waiter's grant, or a resource made for this caller; None when
        *trying* found nothing. *failed*: an entry of this caller's that failed its check
        (*started*: when this caller began acquiring, its place in the line)."""
        handle = None if trying else self._wake_up_lock(deadline)
        # Past its deadline (handle None), a caller whose check failed stops there, rather
        # than check the next idle resource on time it no longer has. One that never waits
        # (timeout 0) goes on through the idle ones: it was promised no wait, not no check.
        give_up = failed is not None and handle is None and not trying and bool(timeout)
        outcome = self._ask(handle, failed, why, started, trying=trying, give_up=give_up)
        if outcome is None:
            if trying:
                return None
            raise self._timed_out(timeout)
        if isinstance(outcome, Waiter):
            outcome = self._park(outcome, timeout, deadline)
        if outcome is CLOSED:
            raise PoolClosed(f"pool {self.name!r} is closed")
        if outcome is CREATE:
            return self._create_leased()
        assert isinstance(outcome, Entry)
        return outcome

    def _wake_up_lock(self, deadline: float | None) -> LockType | None:
        """A locked lock for this caller to sleep on until served, or None when its
        deadline has passed (it will not wait)."""
        if deadline is not None and deadline <= self._clock():
            return None
        handle = threading.Lock()
        handle.acquire()
        return handle

    def _park(
        self, waiter: Waiter[T], timeout: float | None, deadline: float | None
    ) -> Entry[T] | _Token:
        """Sleep until *waiter* is served or *deadline* passes; return its grant.

        Woken without a grant, the waiter was roused to compete for an idle resource (see
        *Fairness* in the core): it looks, and sleeps again if a newcomer was faster, until
        the next signal or, dozing, until ``recheck_at``.
        """
        handle = waiter.handle
        assert isinstance(handle, LockType)
        core = self._core
        try:
            while True:
                until = waiter.recheck_at  # set by look() in this thread
                if until is None or (deadline is not None and deadline < until):
                    until = deadline
                if until is None:
                    handle.acquire()
                else:
                    remaining = min(until - self._clock(), threading.TIMEOUT_MAX)
                    if not (remaining > 0 and handle.acquire(timeout=remaining)) and (
                        deadline is not None and self._clock() >= deadline
                    ):
                        with self._lock:
                            todo = core.cancel(waiter, self._clock(), timed_out=True)
                        self._perform(todo)
                        break
                if waiter.grant is not None:
                    break
                with self._lock:
                    todo = core.look(waiter, self._clock())
                self._perform(todo)
                if todo.outcome is not waiter:
                    break
        except BaseException:
            # Interrupted (KeyboardInterrupt in the main thread): leave the queue, and pass on
            # anything granted meanwhile so it is not stranded.
            self._forgo(waiter)
            raise
        return self._granted(waiter, timeout)

    def _create_leased(self) -> Entry[T]:
        """Fill the slot the core reserved for this caller; errors go to the caller."""
        try:
            resource = self._create()
        except BaseException:
            self._create_failed()
            raise
        return self._filled(resource)

    def _viable(self, entry: Entry[T], now: float) -> bool:
        """Run ``check``: False (or an ``Exception``) means *entry* must be destroyed. A
        check that returns an awaitable cannot be waited for here: it counts as failed."""
        verdict = self._check_start(entry, now)
        if isinstance(verdict, bool):
            return verdict
        close = getattr(verdict, "close", None)
        if close is not None:
            close()  # a coroutine never awaited would warn at a random later point
        log.warning("pool %r: check returned an awaitable; use an Async* pool", self.name)
        return False

    # -- release --------------------------------------------------------------------------

    def _put_slow(self, entry: Entry[T]) -> None:
        """Return *entry* for reuse when there is more to do than the lock-free put: retire
        it if it is due (lifetime, uses, drain), reset it, stamp its idle time."""
        now = self._returning(entry)
        if now is None:
            return
        reset = self._reset
        if reset is not None:
            try:
                reset(entry.resource)
            except BaseException as exc:
                self._reset_failed(entry, exc)
                return
        self._put_back(entry, now)

    def _finish_put(self, entry: Entry[T], answer: int) -> None:
        """The lock-free put could not finish alone: settle it under the lock."""
        with self._lock:
            todo = self._core.finish_put(entry, answer, self._clock())
        self._perform(todo)

    def _reset_failed(self, entry: Entry[T], exc: BaseException) -> None:
        """``reset`` raised: the resource cannot be cleaned, so it is destroyed; the error
        reaches the caller only as :mod:`respool._core.policy` says."""
        if self._count_reset_failure(entry, exc):
            raise exc

    def _own(self, lease: Lease[T]) -> Lease[T]:
        self._own_check(lease, Lease)
        return lease

    def _tend_soon(self) -> None:
        filler.request(self, start=False)

    # -- background work (on a filler thread) -----------------------------------------------

    def _tend(self) -> float | None:
        """The pool's background work: recover lost leases, housekeep (retire what is due,
        keepalive checks, leak reports), create what the pool owes itself. Returns in how
        many seconds to be called again (the earliest deadline or create retry), or None."""
        # Its own moves ask for fills (a create failing while others back off): those asks
        # are answered by the delay computed at the end, so they do not queue another call
        # (which would run at once, ask again, and spin: see _perform).
        self._tending_in = threading.get_ident()
        try:
            if self._orphans:
                self._adopt_orphans()
            if self._health:
                self._housekeep()
            with self._lock:
                count = self._core.start_fills(self._clock())
            for started in range(count):
                if not self._fill_one(unstarted=count - started - 1):
                    break
            return 0.0 if self._orphans else self._next_tend()
        finally:
            self._tending_in = None

    def _housekeep(self) -> None:
        """One housekeeping pass (see :meth:`FreeListCore.housekeep`), acted on."""
        with self._lock:
            todo = self._core.housekeep(self._clock())
        self._perform(todo, in_caller=False)
        for entry in todo.check:
            alive = False
            check = self._check
            assert check is not None
            try:
                alive = bool(check(entry.resource))
            except BaseException:  # the housekeeper's own thread: counted and logged
                log.warning("pool %r: keepalive check raised", self.name, exc_info=True)
            self._keepalive_done(entry, alive)
        for entry in todo.report:
            self._report_held(entry)

    def _fill_one(self, unstarted: int) -> bool:
        """Create one owed resource and hand it over; False if ``create`` failed.

        A frame of its own, with nothing but the pool in it: the failed create's traceback
        outlives this call (in the log, and as the cause of waiters' ``PoolTimeout``), and
        the frames it holds must not keep entries or resources alive.
        """
        try:
            resource = self._create()
        except BaseException as exc:
            self._fill_failed(exc, unstarted)
            return False
        self._stock(resource, owed=True)
        return True

    # -- performing what the core asked for --------------------------------------------------

    def _perform(self, todo: Todo[T], *, in_caller: bool = True) -> None:
        """Wake served waiters, ask the filler for what is owed, destroy retired resources.

        Every step runs whatever an earlier one raised: a ``destroy`` interrupted by a
        ``BaseException`` must not strand a woken waiter or an owed slot. *in_caller*: this
        runs in a caller's thread (see :func:`respool._core.policy.reaches_caller`).
        """
        for waiter in todo.wake:
            handle = waiter.handle
            assert isinstance(handle, LockType)
            handle.release()
        if todo.fill and threading.get_ident() != self._tending_in:
            filler.request(self)
        if todo.destroy:
            self._destroy_all(todo.destroy, in_caller)

    def _prime(self, count: int) -> None:
        """Create *count* resources now; if one fails, destroy the others and raise."""
        with self._lock:
            reserved = self._core.reserve(count)
        for made in range(reserved):
            try:
                resource = self._create()
            except BaseException:
                self._prime_failed(unmade=reserved - made)
                raise
            self._stock(resource)

    def _after_fork_in_child(self) -> None:
        """Forget the parent's resources (without touching them) and start afresh."""
        self._lock = threading.Lock()
        self._orphans = []
        self._core = self._core.forked()
        self._observe_afresh()
        self._wire()
