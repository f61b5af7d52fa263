"""The threaded shell shared by ``FixedPool`` and ``ElasticPool``.

It owns a lock and a :class:`~respool._core.free_list.FreeListCore`. Every state change is a
core move made under the lock; the lifecycle callbacks, wake-ups and destruction the move asks
for run after the lock is released, so a slow ``create`` or ``destroy`` never blocks another
caller's bookkeeping. Replacements are made by the background filler
(:mod:`respool._threads.filler`), never inside a caller's ``release()``. The uncontended path
skips the lock altogether, through the core's non-blocking moves.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import warnings
import weakref
from _thread import LockType
from collections.abc import Callable
from time import monotonic
from types import TracebackType
from typing import Any, Final, Generic, Self, TypeVar

from respool import _debug, _fork, _validate
from respool._core import policy
from respool._core.free_list import (
    ABORT,
    CHECK,
    CLOSED,
    CREATE,
    Entry,
    FreeListCore,
    Todo,
    Waiter,
    _Token,
)
from respool._core.health import Rules
from respool._threads import filler
from respool.errors import LeaseError, PoolClosed, PoolTimeout
from respool.lease import DebugLease, Lease
from respool.lifecycle import Lifecycle, coerce
from respool.stats import PoolStats

__all__ = ["DEFAULT_FAIRNESS_WINDOW", "DEFAULT_TIMEOUT", "FROM_POOL"]

T = TypeVar("T")

log = logging.getLogger("respool")

#: Seconds ``acquire`` waits by default, as psycopg_pool and HikariCP: waiting forever by
#: default turns an exhausted pool into a hung service.
DEFAULT_TIMEOUT: Final = 30.0

_ORDERS: Final = ("lifo", "fifo")
_FAIRNESS: Final = ("bounded", "fifo")
#: How long the oldest waiter may be overtaken by newcomers with ``fairness="bounded"``:
#: Go's ``sync.Mutex`` uses the same 1 ms before it turns to strict hand-off.
DEFAULT_FAIRNESS_WINDOW: Final = 0.001
_names = itertools.count(1)  # next() on it is atomic: safe for pools made in threads


class _FromPool:
    """The default of ``acquire(timeout=...)``: use the pool's own ``timeout``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<the pool's timeout>"


FROM_POOL: Any = _FromPool()


def _debug_lease(cls: type[Lease[Any]]) -> Lease[Any]:
    return object.__new__(DebugLease)


#: Makes the (still empty) lease object. Leases skip ``__init__`` and pools fill their slots;
#: debug mode swaps in :class:`DebugLease` here, so the hot path has no debug branch.
_new_lease: Callable[[type[Lease[Any]]], Lease[Any]] = object.__new__


def _on_debug(on: bool) -> None:
    global _new_lease
    _new_lease = _debug_lease if on else object.__new__


_debug.subscribe(_on_debug)


def _health_rules(
    *,
    check: bool,
    check_after: float,
    max_lifetime: float | None,
    max_uses: int | None,
    idle_timeout: float | None,
    keepalive: float | None,
) -> Rules | None:
    """Validate the health options (naming the parameter) and bundle them; None when none
    is set, so that the pool's hot path stays the bare one."""
    after = _validate.seconds("check_after", check_after, allow_none=False)
    assert after is not None
    lifetime = _validate.positive_seconds("max_lifetime", max_lifetime)
    uses = _validate.optional_integer("max_uses", max_uses, minimum=1)
    idle = _validate.positive_seconds("idle_timeout", idle_timeout)
    alive = _validate.positive_seconds("keepalive", keepalive)
    if not check:
        for name, value in (("check_after", after or None), ("keepalive", alive)):
            if value is not None:
                raise ValueError(f"{name}={value!r} needs a check= callback to run")
    if not (after or lifetime or uses or idle or alive):
        return None
    return Rules(
        check_after=after,
        max_uses=uses,
        max_lifetime=lifetime,
        idle_timeout=idle,
        keepalive=alive,
    )


def _fairness_window(fairness: str, window: float | None) -> float:
    """The core's window for the ``fairness`` options (0: strict FIFO)."""
    fairness = _validate.choice("fairness", fairness, _FAIRNESS)
    window = _validate.positive_seconds("fairness_window", window)
    if fairness == "fifo":
        if window is not None:
            raise ValueError(
                f"fairness_window={window!r} applies to fairness='bounded' only;"
                " fairness='fifo' never lets a newcomer overtake a waiter"
            )
        return 0.0
    return DEFAULT_FAIRNESS_WINDOW if window is None else window


def _acquired_where(entry: Entry[Any]) -> str:
    """ " It was acquired at ..." and the stack, for a report, when one was recorded."""
    if entry.trace is None:
        return ""
    stack = _debug.format_stack(entry.trace).rstrip()
    return f" It was acquired at (most recent call last):\n{stack}"


def _finisher(ref: weakref.ref[_FreeListPool[T]]) -> Callable[[Entry[T], int], None]:
    """The core's ``finish_later`` for the pool behind *ref* (held weakly: no cycle)."""

    def finish_later(entry: Entry[T], answer: int) -> None:
        pool = ref()
        if pool is not None:  # pool._finish_put(), inlined: every contended release runs it
            with pool._lock:
                todo = pool._core.finish_put(entry, answer, pool._clock())
            pool._perform(todo)

    return finish_later


def _barger(ref: weakref.ref[_FreeListPool[T]]) -> Callable[[], Entry[T] | None]:
    """The core's ``take_contended`` for the pool behind *ref*: while others wait, a
    newcomer asks under the lock whether it may take an idle resource ahead of them."""

    def take_contended() -> Entry[T] | None:
        pool = ref()
        if pool is None:
            return None
        with pool._lock:
            return pool._core.barge(pool._clock())

    return take_contended


def _lease(pool: _FreeListPool[T], entry: Entry[T]) -> Lease[T]:
    entry.uses += 1
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
        check_after: float = 0.0,
        max_lifetime: float | None = None,
        max_uses: int | None = None,
        idle_timeout: float | None = None,
        keepalive: float | None = None,
        leak_timeout: float | None = None,
        fairness: str = "bounded",
        fairness_window: float | None = None,
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
        window = _fairness_window(fairness, fairness_window)
        if name is None:
            name = f"{type(self).__name__}-{next(_names)}"
        self.name = _validate.text("name", name)
        rules = _health_rules(
            check=lifecycle.check is not None,
            check_after=check_after,
            max_lifetime=max_lifetime,
            max_uses=max_uses,
            idle_timeout=idle_timeout,
            keepalive=keepalive,
        )
        self._leak_timeout = _validate.positive_seconds("leak_timeout", leak_timeout)
        #: With a time-based option, returns and acquires read the clock and go through the
        #: health rules; without (and without a check), the hot path is the bare lock-free one.
        self._health = rules is not None or self._leak_timeout is not None
        self._plain = self._check is None and not self._health
        #: The clock every decision is timed with (tests may swap in a fake one).
        self._clock: Callable[[], float] = monotonic

        self._lock = threading.Lock()
        #: Entries of leases lost without being ended (see :meth:`_lost`), waiting for the
        #: filler or the next slow-path call to recover their slots.
        self._orphans: list[Entry[T]] = []
        self._core: FreeListCore[T] = FreeListCore(
            name=self.name,
            min_size=min_size,
            max_size=max_size,
            max_idle=max_idle,
            max_waiting=max_waiting,
            lifo=order == "lifo",
            owner=weakref.ref(self),
            rules=rules,
            leak_timeout=self._leak_timeout,
            window=window,
        )
        self._bind()
        _fork.register(self)
        self._prime(prime)
        if self._health:
            filler.request(self)  # housekeeping: lifetimes, idle eviction, keepalive, leaks

    def _bind(self) -> None:
        """Wire the core's lock-free moves in as the hot path.

        Without a ``reset``, giving a resource back *is* the core's ``put_nowait``: leases
        call it directly, and the core calls back :meth:`_finish_put` only when the lock is
        needed. Each Python call frame saved here is a tenth of an uncontended round trip.
        """
        core = self._core
        core.finish_later = _finisher(weakref.ref(self))
        if core.window:
            core.take_contended = _barger(weakref.ref(self))
            core._waiters_changed()
        plain_put = self._reset is None and not self._health
        self._put: Callable[[Entry[T]], object] = core.put_nowait if plain_put else self._put_slow

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

    def drain(self) -> None:
        """Retire every resource made before this call: idle ones now, lent ones when they
        come back; replacements are made as usual and no caller fails (for instance after a
        database fail-over, so that no connection to the old primary is reused)."""
        with self._lock:
            todo = self._core.drain(self._clock())
        self._perform(todo)

    def _resize(self, *, min_size: int, max_size: int | None, max_idle: int) -> None:
        """Apply new sizes (already validated by the public ``resize``)."""
        with self._lock:
            todo = self._core.resize(
                self._clock(), min_size=min_size, max_size=max_size, max_idle=max_idle
            )
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
                if self._leak_timeout is not None:
                    entry.lent_at = now
                    entry.reported = False
                    if entry.trace is None:
                        entry.trace = _debug.capture_stack()
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
        with self._lock:
            core = self._core
            if failed is None:
                todo = core.request(self._clock(), handle)
            else:
                todo = core.check_failed(failed, self._clock(), handle, why, since=started)
            if todo.outcome is None and not trying:
                core.note_timeout()
        try:
            self._perform(todo)
        except BaseException:
            self._forgo(todo.outcome)  # a destroy was interrupted: strand nothing
            raise
        outcome = todo.outcome
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
        # Served, or timed out; a grant that raced the deadline is taken all the same.
        grant = waiter.grant
        if grant is None:
            raise self._timed_out(timeout)
        if grant is CLOSED:
            raise PoolClosed(f"pool {self.name!r} was closed while waiting")
        return grant

    def _forgo(self, outcome: Entry[T] | Waiter[T] | _Token | None) -> None:
        """This caller will not use *outcome* after all: cancel its wait, or hand its grant
        (an entry, a reserved slot) to the next in line."""
        todos: list[Todo[T]] = []
        with self._lock:
            core = self._core
            now = self._clock()
            if isinstance(outcome, Waiter):
                todos.append(core.cancel(outcome, now, timed_out=False))
                outcome = todos[0].outcome
            if outcome is not None:
                assert not isinstance(outcome, Waiter)
                todos.append(core.give_back(outcome, now))
        for todo in todos:
            self._perform(todo, in_caller=False)

    def _timed_out(self, timeout: float | None) -> PoolTimeout:
        """The error for a caller whose deadline passed: what it waited, what the pool had,
        and, while creates keep failing, the last create error as its cause."""
        with self._lock:
            figures = self._core.describe()
            cause = self._core.last_create_error
        waited = "may not wait" if not timeout else f"within {timeout:g} s"
        error = PoolTimeout(f"no resource from pool {self.name!r} {waited} ({figures})")
        error.__cause__ = cause
        return error

    def _create_leased(self) -> Entry[T]:
        """Fill the slot the core reserved for this caller; errors go to the caller."""
        try:
            resource = self._create()
        except BaseException:
            with self._lock:
                todo = self._core.create_failed(self._clock(), error=True)
            self._perform(todo)
            raise
        with self._lock:
            return self._core.filled(resource, self._clock())

    def _viable(self, entry: Entry[T], now: float) -> bool:
        """Run ``check``: False (or an ``Exception``) means *entry* must be destroyed."""
        check = self._check
        assert check is not None
        try:
            alive = bool(check(entry.resource))
        except Exception:
            log.warning("pool %r: check raised; destroying the resource", self.name, exc_info=True)
            return False
        except BaseException:
            # Interrupted mid-check: the resource's state is unknown (abort means discard).
            with self._lock:
                todo = self._core.check_failed(entry, self._clock(), None)
            self._forgo(todo.outcome)
            self._perform(todo)
            raise
        if alive:
            entry.checked_at = now
        return alive

    # -- release --------------------------------------------------------------------------

    def _put_slow(self, entry: Entry[T]) -> None:
        """Return *entry* for reuse when there is more to do than the lock-free put: retire
        it if it is due (lifetime, uses, drain), reset it, stamp its idle time."""
        core = self._core
        if core.foreign(entry):
            return  # the parent's, in a forked child: not ours to reset
        now = 0.0
        if self._health:
            now = self._clock()
            if entry.reported:
                log.warning(
                    "pool %r: the lease reported as held too long came back after %.1f s",
                    self.name,
                    now - entry.lent_at,
                )
            reason = core.worn(entry, now)
            if reason is not None:
                self._throw_away(entry, reason)
                return
        reset = self._reset
        if reset is not None:
            try:
                reset(entry.resource)
            except BaseException as exc:
                self._reset_failed(entry, exc)
                return
        if self._health:
            entry.idle_since = now if reset is None else self._clock()
        core.put_nowait(entry)

    def _finish_put(self, entry: Entry[T], answer: int) -> None:
        """The lock-free put could not finish alone: settle it under the lock."""
        with self._lock:
            todo = self._core.finish_put(entry, answer, self._clock())
        self._perform(todo)

    def _reset_failed(self, entry: Entry[T], exc: BaseException) -> None:
        """``reset`` raised: the resource cannot be cleaned, so it is destroyed; the error
        reaches the caller only as :mod:`respool._core.policy` says."""
        loud = policy.reaches_caller(exc)
        if not loud:
            log.warning("pool %r: reset raised; destroying the resource", self.name, exc_info=exc)
        with self._lock:
            todo = self._core.reset_failed(entry, self._clock())
        self._perform(todo)
        if loud:
            raise exc

    def _throw_away(self, entry: Entry[T], reason: str = ABORT) -> None:
        """Destroy *entry*'s resource instead of reusing it (the lease has already ended);
        *reason* is what ``stats().retired`` counts it under."""
        with self._lock:
            todo = self._core.discard(entry, self._clock(), reason)
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

    # -- lost leases --------------------------------------------------------------------------

    def _lost(self, entry: Entry[T]) -> None:
        """A lease was garbage-collected still active (called from ``Entry.__del__``).

        This may run at any allocation in any thread, even one holding this pool's lock, so
        it only records the entry (a list append is atomic) and asks the filler to recover
        the slot; the pool's next slow-path call does it too, whichever comes first.
        """
        self._orphans.append(entry)
        filler.request(self, start=False)
        where = (
            "; the respool log shows where it was acquired"
            if entry.trace is not None
            else " (respool.debug(True) records where leases are acquired)"
        )
        warnings.warn(
            f"a lease from pool {self.name!r} was garbage-collected without being released;"
            f" its resource will be destroyed and replaced{where}",
            ResourceWarning,
            stacklevel=2,
        )

    def _adopt_orphans(self) -> None:
        """Destroy the resources of lost leases and recover their slots."""
        while self._orphans:
            try:
                entry = self._orphans.pop()
            except IndexError:  # another thread adopted the last one
                return
            log.warning(
                "pool %r: a lease was lost without being released; its resource is destroyed"
                " and its slot recovered.%s",
                self.name,
                _acquired_where(entry),
            )
            with self._lock:
                todo = self._core.leaked(entry, self._clock())
            self._perform(todo, in_caller=False)

    # -- background work (the filler's thread) ----------------------------------------------

    def _tend(self) -> float | None:
        """The pool's background work: recover lost leases, housekeep (retire what is due,
        keepalive checks, leak reports), create what the pool owes itself. Returns in how
        many seconds to be called again (the earliest deadline or create retry), or None."""
        if self._orphans:
            self._adopt_orphans()
        if self._health:
            self._housekeep()
        with self._lock:
            count = self._core.start_fills(self._clock())
        for started in range(count):
            if not self._fill_one(unstarted=count - started - 1):
                break
        with self._lock:
            core = self._core
            now = self._clock()
            due = core.next_deadline(now) if self._health else math.inf
            if core.owed:
                due = min(due, core.backoff.retry_at)
        return None if due == math.inf else max(0.0, due - now)

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
            with self._lock:
                done = self._core.keepalive_done(entry, self._clock(), alive=alive)
            self._perform(done, in_caller=False)
        for entry in todo.report:
            self._report_held(entry)

    def _report_held(self, entry: Entry[T]) -> None:
        """A lease is held past ``leak_timeout``: say so once, with where it was acquired."""
        held = self._clock() - entry.lent_at
        log.warning(
            "pool %r: a lease has been held for %.1f s (leak_timeout=%g s); is it leaked?%s",
            self.name,
            held,
            self._leak_timeout,
            _acquired_where(entry),
        )
        try:
            warnings.warn(
                f"a lease from pool {self.name!r} has been held for {held:.1f} s, longer than"
                f" leak_timeout={self._leak_timeout:g} s (the respool log shows where it was"
                " acquired)",
                ResourceWarning,
                stacklevel=1,
            )
        except Exception:  # warnings turned into errors: the housekeeper must carry on
            log.debug("pool %r: the leak warning was raised as an error", self.name)

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
        with self._lock:
            todo = self._core.stock(resource, self._clock(), owed=True)
        self._perform(todo, in_caller=False)
        return True

    def _fill_failed(self, exc: BaseException, unstarted: int) -> None:
        """Count and log a failed fill: the first of a streak with its traceback, then one
        line per backoff step (a create that fails for minutes must not flood the log)."""
        with self._lock:
            core = self._core
            todo = core.fill_failed(self._clock(), exc, unstarted=unstarted)
            failures, delay = core.backoff.failures, core.backoff.remaining(self._clock())
        if failures == 1:
            log.warning(
                "pool %r: creating a replacement failed; retrying in %.2f s",
                self.name,
                delay,
                exc_info=exc,
            )
        else:
            log.warning(
                "pool %r: creating a replacement failed %d times in a row (%r); next try in %.2f s",
                self.name,
                failures,
                exc,
                delay,
            )
        self._perform(todo, in_caller=False)

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
        if todo.fill:
            filler.request(self)
        if todo.destroy:
            self._destroy_all(todo.destroy, in_caller)

    def _destroy_all(self, entries: list[Entry[T]], in_caller: bool) -> None:
        destroy = self._destroy_fn
        if destroy is None:
            return
        first: BaseException | None = None
        for entry in entries:
            try:
                destroy(entry.resource)
            except BaseException as exc:
                with self._lock:
                    self._core.note_destroy_error()
                if policy.reaches_caller(exc, in_caller=in_caller):
                    first = first or exc
                else:
                    log.warning("pool %r: destroy raised", self.name, exc_info=exc)
        if first is not None:
            raise first

    def _prime(self, count: int) -> None:
        """Create *count* resources now; if one fails, destroy the others and raise."""
        with self._lock:
            reserved = self._core.reserve(count)
        for made in range(reserved):
            try:
                resource = self._create()
            except BaseException:
                with self._lock:
                    core = self._core
                    todo = core.close()
                    core.create_failed(self._clock(), error=True)
                    for _ in range(reserved - made - 1):
                        core.create_failed(self._clock(), error=False)
                self._perform(todo, in_caller=False)
                raise
            with self._lock:
                todo = self._core.stock(resource, self._clock())
            self._perform(todo)

    def _after_fork_in_child(self) -> None:
        """Forget the parent's resources (without touching them) and start afresh."""
        self._lock = threading.Lock()
        self._orphans = []
        self._core = self._core.forked()
        self._bind()
