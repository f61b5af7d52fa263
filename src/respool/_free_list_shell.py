"""What the threaded and the asyncio free-list shells share: options, core and bookkeeping.

Both shells hold a :class:`~respool._core.free_list.FreeListCore` behind a
``threading.Lock`` and make every state change as one core move under it. (The asyncio
shell makes its moves from its loop's thread only, but a lock that is never contended costs
a C call, and it lets ``stats()`` be read from any thread and lost leases be reported from a
garbage collection in any thread.) What differs is how each waits and runs callbacks: the
threaded shell parks a thread on a lock and calls the lifecycle inline; the asyncio shell
parks a task on a future and awaits callbacks that return awaitables. Everything that
neither waits nor runs a callback lives here, once: validating the options, building and
wiring the core, the moves that only count or retire (``stats``, ``drain``, ``resize``,
discarding, giving a grant back, recovering lost leases), and the messages.

A subclass provides :meth:`FreeListShell._perform` (wake waiters, ask for fills, destroy)
and :meth:`FreeListShell._tend_soon` (ask the background work to run).
"""

from __future__ import annotations

import inspect
import itertools
import logging
import math
import threading
import warnings
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import replace
from time import monotonic
from typing import Any, Final, Generic, TypeVar

from respool import _debug, _validate
from respool._core import policy
from respool._core.free_list import ABORT, CLOSED, Entry, FreeListCore, Todo, Waiter, _Token
from respool._core.health import Rules
from respool._usage import Observer
from respool.errors import LeaseError, PoolClosed, PoolTimeout
from respool.lifecycle import Lifecycle, coerce
from respool.stats import PoolStats

__all__ = ["DEFAULT_FAIRNESS_WINDOW", "DEFAULT_TIMEOUT", "FROM_POOL", "FreeListShell"]

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


def acquired_where(entry: Entry[Any]) -> str:
    """ " It was acquired at ..." and the stack, for a report, when one was recorded."""
    if entry.trace is None:
        return ""
    stack = _debug.format_stack(entry.trace).rstrip()
    return f" It was acquired at (most recent call last):\n{stack}"


def _finisher(ref: weakref.ref[FreeListShell[T]]) -> Callable[[Entry[T], int], None]:
    """The core's ``finish_later`` for the pool behind *ref* (held weakly: no cycle)."""

    def finish_later(entry: Entry[T], answer: int) -> None:
        pool = ref()
        if pool is not None:  # pool._finish_put(), inlined: every contended release runs it
            with pool._lock:
                todo = pool._core.finish_put(entry, answer, pool._clock())
            pool._perform(todo)

    return finish_later


def _barger(ref: weakref.ref[FreeListShell[T]]) -> Callable[[], Entry[T] | None]:
    """The core's ``take_contended`` for the pool behind *ref*: while others wait, a
    newcomer asks under the lock whether it may take an idle resource ahead of them."""

    def take_contended() -> Entry[T] | None:
        pool = ref()
        if pool is None:
            return None
        with pool._lock:
            return pool._core.barge(pool._clock())

    return take_contended


class FreeListShell(Generic[T]):
    """Construction and the non-waiting bookkeeping common to every free-list pool."""

    #: Does this shell await callbacks (asyncio)? The threaded one refuses ``async def``.
    _awaits: bool = False

    def __init__(
        self,
        create: Lifecycle[Any] | Callable[[], Any],
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
        observe: bool = False,
    ) -> None:
        lifecycle = coerce(create, reset=reset, check=check, destroy=destroy)
        if not self._awaits:
            pool = type(self).__name__
            for field in ("create", "reset", "check", "destroy"):
                hint = f"use Async{pool} for async callbacks"
                _validate.synchronous(field, getattr(lifecycle, field), pool=pool, hint=hint)
        self.lifecycle: Lifecycle[T] = lifecycle
        #: How many resources the pool makes when it opens (the threaded pools: in the
        #: constructor; the asyncio ones: in ``open()``).
        self._prime_count = prime
        self._create = lifecycle.create
        self._reset = lifecycle.reset
        self._check = lifecycle.check
        self._destroy_fn = lifecycle.destroy
        #: Which errors ending a lease are aborts besides the policy's own (the leases read it).
        self._abort_on = lifecycle.abort_on
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
        if not isinstance(observe, bool):
            raise TypeError(f"observe must be a bool, got {observe!r}")
        #: The clock every decision is timed with (tests may swap in a fake one).
        self._clock: Callable[[], float] = monotonic
        #: Usage observation (``observe=True``): the record, and the keys of entries created
        #: for the caller about to be lent them (a new resource has no idle gap). An observing
        #: pool is never plain: its lends and returns take the slow path, which reports here.
        self._observer = Observer(self._clock()) if observe else None
        self._fresh: set[int] = set()
        self._plain = self._check is None and not self._health and not observe

        self._lock = threading.Lock()
        #: Entries of leases lost without being ended (see :meth:`_lost`), waiting for the
        #: background work or the next slow-path call to recover their slots.
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
        self._wire()

    def _wire(self) -> None:
        """Wire the core's lock-free moves to this shell (again after a fork).

        A put the core cannot finish alone comes back through ``finish_later``; with a
        fairness window, a take while others wait asks under the lock (``take_contended``).
        """
        core = self._core
        core.finish_later = _finisher(weakref.ref(self))
        if core.window:
            core.take_contended = _barger(weakref.ref(self))
            core._waiters_changed()

    # -- what the subclass provides ----------------------------------------------------------

    def _perform(self, todo: Todo[T], *, in_caller: bool = True) -> None:
        """Wake served waiters, ask for what is owed, destroy retired resources."""
        raise NotImplementedError

    def _tend_soon(self) -> None:
        """Have the pool's background work run soon (callable from ``__del__``, any thread)."""
        raise NotImplementedError

    # -- public, never waiting -------------------------------------------------------------

    def stats(self) -> PoolStats:
        """A consistent snapshot of the pool's counts."""
        if self._orphans:
            self._adopt_orphans()
        with self._lock:
            stats = self._core.stats()
        return self._with_usage(stats)

    def _with_usage(self, stats: PoolStats) -> PoolStats:
        """*stats*, with what the observer saw when the pool observes."""
        observer = self._observer
        if observer is None:
            return stats
        return replace(stats, usage=observer.snapshot(self._clock()))

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
        """True once the pool has been closed."""
        return self._core.closed

    def __repr__(self) -> str:
        core = self._core
        state = "closed" if core.closed else f"size={core.size} idle={len(core.idle)}"
        return f"<{type(self).__name__} {self.name!r} {state}>"

    # -- usage observation (``observe=True`` only) ---------------------------------------------

    def _filled(self, resource: T) -> Entry[T]:
        """The slot reserved for this caller now holds *resource*: its entry, to be lent to
        it (remembered as new while observing: its use has no idle gap before it)."""
        with self._lock:
            entry = self._core.filled(resource, self._clock())
        if self._observer is not None:
            fresh = self._fresh
            if len(fresh) > 1024:  # keys of creates whose caller left before the lend
                fresh.clear()
            fresh.add(entry.key)
        return entry

    def _began(self, entry: Entry[T]) -> None:
        """Observing: *entry* is being lent; its idle gap is since it was last put back (or
        made for the pool), none if it was made for this very caller."""
        observer = self._observer
        assert observer is not None
        key = entry.key
        fresh = self._fresh
        if key in fresh:
            fresh.discard(key)
            observer.began(self._clock(), None)
        else:
            observer.began(self._clock(), entry.idle_since)

    def _ended(self, entry: Entry[T]) -> None:
        """Observing: the lease on *entry* ended (returned, discarded or lost); a forked
        child's pool did not see its parent's leases begin."""
        observer = self._observer
        if observer is not None and not self._core.foreign(entry):
            observer.ended(self._clock())

    def _observe_afresh(self) -> None:
        """In a forked child: an observing pool starts a new record (the parent's uses are
        not the child's)."""
        if self._observer is not None:
            self._observer = Observer(self._clock())
        self._fresh = set()

    # -- bookkeeping moves -----------------------------------------------------------------

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

    def _ask(
        self,
        handle: object | None,
        failed: Entry[T] | None,
        why: str,
        started: float | None,
        *,
        trying: bool,
        give_up: bool = False,
    ) -> Entry[T] | Waiter[T] | _Token | None:
        """One request to the core: what is at hand for this caller (see
        :meth:`FreeListCore.request`), or, after its *failed* entry did not pass its check
        (or was worn, *why*), what comes next at its place in the line (*started*). *handle*:
        what to wake it with, None when it will not wait. *trying*: a ``try_acquire``, whose
        finding nothing is no timeout. *give_up*: the *failed* entry's caller is past its
        deadline and takes nothing more (see :meth:`FreeListCore.check_failed`)."""
        with self._lock:
            core = self._core
            if failed is None:
                todo = core.request(self._clock(), handle)
            else:
                todo = core.check_failed(
                    failed, self._clock(), handle, why, since=started, give_up=give_up
                )
            if todo.outcome is None and not trying:
                core.note_timeout()
        if todo.wake or todo.fill or todo.destroy:  # (usually none: a call saved)
            try:
                self._perform(todo)
            except BaseException:
                self._forgo(todo.outcome)  # a destroy was interrupted: strand nothing
                raise
        return todo.outcome

    def _create_failed(self, *, error: bool = True) -> None:
        """The slot reserved for this caller produced nothing (*error*: ``create`` raised)."""
        with self._lock:
            todo = self._core.create_failed(self._clock(), error=error)
        self._perform(todo)

    def _check_interrupted(self, entry: Entry[T], *, in_caller: bool = True) -> None:
        """A ``check`` was cut short (an interrupt, a cancellation): the resource's state is
        unknown, so it is destroyed (abort means discard), and its caller gives up: its room
        goes to the next in line. *in_caller*: as in :meth:`_perform`."""
        with self._lock:
            todo = self._core.check_failed(entry, self._clock(), None, ABORT, give_up=True)
        self._perform(todo, in_caller=in_caller)

    def _check_start(self, entry: Entry[T], now: float) -> bool | Awaitable[object]:
        """Run ``check``: its verdict, or the awaitable an async check returned (for the
        caller to await, or to leave to a task of the pool's). An ``Exception`` is a failed
        check; an interrupt destroys the entry (its state is unknown) and goes on."""
        check = self._check
        assert check is not None
        try:
            alive = check(entry.resource)
            if inspect.isawaitable(alive):
                return alive
            alive = bool(alive)
        except Exception:
            log.warning("pool %r: check raised; destroying the resource", self.name, exc_info=True)
            return False
        except BaseException:
            self._check_interrupted(entry)
            raise
        if alive:
            entry.checked_at = now
        return alive

    def _lending(self, entry: Entry[T], now: float) -> None:
        """*entry* is about to be lent at *now*: with ``leak_timeout``, start its clock and
        record where it was acquired."""
        if self._leak_timeout is not None:
            entry.lent_at = now
            entry.reported = False
            if entry.trace is None:
                entry.trace = _debug.capture_stack()

    def _returning(self, entry: Entry[T]) -> float | None:
        """*entry* comes back to be reset and reused: the time to stamp it with, or None
        when it is not to be reset at all (another process's; or due for retirement, and
        retired here)."""
        core = self._core
        if core.foreign(entry):
            return None  # the parent's, in a forked child: not ours to reset
        now = 0.0
        observer = self._observer
        if observer is not None:
            now = self._clock()
            observer.ended(now)
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
                self._retire(entry, reason)
                return None
        return now

    def _put_back(self, entry: Entry[T], now: float) -> None:
        """*entry*, reset if there is a ``reset``, goes back (it was returning at *now*)."""
        if self._health or self._observer is not None:
            entry.idle_since = now if self._reset is None else self._clock()
        self._core.put_nowait(entry)

    def _stock(self, resource: T, *, owed: bool = False) -> None:
        """A resource made for the pool itself (priming; the filler: *owed*) goes in."""
        with self._lock:
            todo = self._core.stock(resource, self._clock(), owed=owed)
        self._perform(todo, in_caller=not owed)

    def _prime_failed(self, *, unmade: int) -> None:
        """Priming failed with *unmade* reserved slots still empty (the failed one first):
        the pool is closed, what it made is destroyed, the slots are given back."""
        with self._lock:
            core = self._core
            todo = core.close()
            core.create_failed(self._clock(), error=True)
            for _ in range(unmade - 1):
                core.create_failed(self._clock(), error=False)
        self._perform(todo, in_caller=False)

    def _keepalive_done(self, entry: Entry[T], alive: bool) -> None:
        with self._lock:
            done = self._core.keepalive_done(entry, self._clock(), alive=alive)
        self._perform(done, in_caller=False)

    def _next_tend(self) -> float | None:
        """In how many seconds the background work is next due (the earliest health
        deadline or create retry), or None."""
        with self._lock:
            core = self._core
            now = self._clock()
            due = core.next_deadline(now) if self._health else math.inf
            if core.owed:
                due = min(due, core.backoff.retry_at)
        return None if due == math.inf else max(0.0, due - now)

    def _granted(self, waiter: Waiter[T], timeout: float | None) -> Entry[T] | _Token:
        """What *waiter*, done waiting, was granted (an entry, or ``CREATE``); a grant that
        raced its deadline is taken all the same. Nothing: ``PoolTimeout``; the pool closed
        meanwhile: ``PoolClosed``."""
        grant = waiter.grant
        if grant is None:
            raise self._timed_out(timeout)
        if grant is CLOSED:
            raise PoolClosed(f"pool {self.name!r} was closed while waiting")
        return grant

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

    def _throw_away(self, entry: Entry[T], reason: str = ABORT) -> None:
        """Destroy *entry*'s resource instead of reusing it (its lease has just ended);
        *reason* is what ``stats().retired`` counts it under."""
        if self._observer is not None:
            self._ended(entry)
        self._retire(entry, reason)

    def _retire(self, entry: Entry[T], reason: str) -> None:
        """Destroy *entry*'s resource, counted under *reason* (:meth:`_throw_away` without
        the end of a lease: for one whose end was already seen)."""
        with self._lock:
            todo = self._core.discard(entry, self._clock(), reason)
        self._perform(todo)

    def _count_reset_failure(self, entry: Entry[T], exc: BaseException) -> bool:
        """``reset`` raised: log it unless it is for the caller (see
        :mod:`respool._core.policy`), and destroy the resource. True: re-raise *exc*."""
        loud = policy.reaches_caller(exc)
        if not loud:
            log.warning("pool %r: reset raised; destroying the resource", self.name, exc_info=exc)
        with self._lock:
            todo = self._core.reset_failed(
                entry, self._clock(), policy.retirement(type(exc), self._abort_on)
            )
        self._perform(todo)
        return loud

    def _own_check(self, lease: Any, lease_type: type[Any]) -> None:
        if not isinstance(lease, lease_type):
            raise TypeError(f"expected a {lease_type.__name__}, got {lease!r}")
        if lease._pool is not self:
            raise LeaseError(
                f"this lease comes from pool {lease._pool.name!r}, not from {self.name!r}"
                f"{lease._history()}"
            )

    # -- lost leases --------------------------------------------------------------------------

    def _lost(self, entry: Entry[T]) -> None:
        """A lease was garbage-collected still active (called from ``Entry.__del__``).

        This may run at any allocation in any thread, even one holding this pool's lock, so
        it only records the entry (a list append is atomic) and asks the background work to
        recover the slot; the pool's next slow-path call does it too, whichever comes first.
        """
        self._orphans.append(entry)
        self._tend_soon()
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
                acquired_where(entry),
            )
            if self._observer is not None:
                self._ended(entry)
            with self._lock:
                todo = self._core.leaked(entry, self._clock())
            self._perform(todo, in_caller=False)

    # -- background work's reports -----------------------------------------------------------

    def _report_held(self, entry: Entry[T]) -> None:
        """A lease is held past ``leak_timeout``: say so once, with where it was acquired."""
        held = self._clock() - entry.lent_at
        log.warning(
            "pool %r: a lease has been held for %.1f s (leak_timeout=%g s); is it leaked?%s",
            self.name,
            held,
            self._leak_timeout,
            acquired_where(entry),
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

    def _destroy_all(self, entries: list[Entry[T]], in_caller: bool) -> None:
        """Run ``destroy`` on each retired entry's resource; an awaitable it returns goes to
        :meth:`_destroy_later`. Errors are counted and dealt with as the policy says, after
        every entry has had its turn."""
        destroy = self._destroy_fn
        if destroy is None:
            return
        first: BaseException | None = None
        for entry in entries:
            try:
                result = destroy(entry.resource)
                if result is not None and inspect.isawaitable(result):
                    self._destroy_later(result)
            except BaseException as exc:
                if self._destroy_failed(exc, in_caller=in_caller):
                    first = first or exc
        if first is not None:
            raise first

    def _destroy_failed(self, exc: BaseException, *, in_caller: bool = False) -> bool:
        """Count a failed ``destroy``; log it, or answer True: it is for the caller."""
        with self._lock:
            self._core.note_destroy_error()
        if policy.reaches_caller(exc, in_caller=in_caller):
            return True
        log.warning("pool %r: destroy raised", self.name, exc_info=exc)
        return False

    def _destroy_later(self, awaitable: Any) -> None:
        """``destroy`` returned an awaitable: a threaded pool has no loop to run it on."""
        close = getattr(awaitable, "close", None)
        if close is not None:
            close()  # a coroutine never awaited would warn at a random later point
        self._destroy_failed(
            TypeError(
                f"destroy of pool {self.name!r} returned an awaitable; threaded pools call"
                " callbacks synchronously (use the Async* pools for async callbacks)"
            )
        )
