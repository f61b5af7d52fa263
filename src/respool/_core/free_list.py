"""The state machine behind ``FixedPool`` and ``ElasticPool`` (and their coming asyncio twins).

The core owns the idle resources, the live and reserved counts, the waiter queue, the create
backoff and the lifetime counters. Its methods are the only code that changes them; each one
either raises (changing nothing) or performs one legal move and returns a :class:`Todo` naming
the work to do outside the shell's lock: waiters to wake, resources to destroy, and whether the
background filler has slots to fill. It never blocks, sleeps, reads the clock or calls user
code: the shell passes ``now`` in and runs the callbacks.

Vocabulary
----------
*reserve*: count a slot as ``creating`` before its resource exists, so that ``max_size`` holds
while ``create`` runs outside the lock. A reserved slot always ends in exactly one of
:meth:`FreeListCore.filled` / :meth:`FreeListCore.stock` (it holds a resource now) or
:meth:`FreeListCore.create_failed` / :meth:`FreeListCore.fill_failed` (it does not). *owed*:
reserved for the pool's own filler, below ``min_size``. *retire*: a live entry leaves the pool
for good (its resource is destroyed). *epoch*: which process the entry belongs to; a forked
child starts the next epoch and never touches entries of an earlier one.

Non-blocking moves
------------------
``FreeListCore.take_nowait`` and :meth:`FreeListCore.put_nowait` are the two moves a
threaded shell makes **without** its lock, so that an uncontended acquire/release costs about a
bare locked ``deque`` pop and append. They rely on ``deque.pop``, ``deque.popleft`` and
``deque.append`` being atomic (under the GIL, and per object on free-threaded builds), and on
an attribute store or load being atomic.

* ``take_nowait`` takes an idle entry only while nobody waits: whether a newcomer may overtake
  a waiter is decided under the lock (:meth:`FreeListCore.request` and
  :meth:`FreeListCore.barge`, see *Fairness* in the class docstring). The moves that change
  the waiter queue swap it between the idle list's own pop and ``take_contended`` (a refusal,
  or the shell's locked call of ``barge``). A lock-free take on another thread may empty the
  list between any look and the pop, so the pop itself is the test (``IndexError``: none
  idle).
* ``put_nowait`` publishes first and looks second, while :meth:`FreeListCore.request` registers
  a waiter first and looks at the idle list second; whichever runs later sees the other, so an
  idle resource and a waiter coexist only until :meth:`FreeListCore.finish_put` settles them
  (Dekker's handshake).

Every other move is made under the shell's lock.
"""

from __future__ import annotations

import itertools
import math
import sys
import weakref
from collections import deque
from collections.abc import Callable
from traceback import StackSummary
from typing import Any, Final, Generic, TypeVar

from respool._core import health
from respool._core.backoff import Backoff
from respool._core.health import ABORT, CHECK, DRAIN, ERROR, IDLE, LEAK, LIFETIME, USES, Rules
from respool.errors import PoolClosed, PoolFull
from respool.stats import PoolStats

T = TypeVar("T")

__all__ = [
    "ABORT",
    "CHECK",
    "CLOSE",
    "CLOSED",
    "CREATE",
    "DRAIN",
    "ERROR",
    "IDLE",
    "LEAK",
    "LIFETIME",
    "MAX_DOZE",
    "PUT_DONE",
    "PUT_PUBLISHED",
    "PUT_REFUSED",
    "REASONS",
    "SURPLUS",
    "USES",
    "Entry",
    "FreeListCore",
    "Todo",
    "Waiter",
]


class _Token:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: Grant meaning "a slot is reserved for you: create a resource, then call ``filled``".
CREATE: Final = _Token("CREATE")
#: Grant meaning "the pool closed while you waited".
CLOSED: Final = _Token("CLOSED")

#: Answers of :meth:`FreeListCore.put_nowait`: done; published but a waiter, a close or a
#: surplus raced it (call ``finish_put``); not published at all (call ``finish_put``).
PUT_DONE: Final = 0
PUT_PUBLISHED: Final = 1
PUT_REFUSED: Final = 2

_keys = itertools.count(1)  # next() on it is atomic
#: The longest an overtaken waiter dozes before it looks again (see ``FreeListCore.look``):
#: the longest a resource may lie idle while its waiter dozes, with a wide window.
MAX_DOZE: Final = 0.002
_NEVER: Final = math.inf

# Why a resource was retired (the keys of ``PoolStats.retired``): the reasons every pool
# shares come from the health rules (``lifetime``, ``uses``, ``idle``, ``check``, ``drain``,
# ``leak``, ``error``, ``abort``); a free list adds two of its own.
#: Beyond ``max_idle`` (or the size, after a ``resize()`` down) when it came back.
SURPLUS: Final = "surplus"
#: The pool was closed.
CLOSE: Final = "close"
REASONS: Final = (*health.REASONS, SURPLUS, CLOSE)


def _refuse() -> None:
    """``take_nowait`` while someone waits: a newcomer never takes ahead of a waiter."""


class Entry(Generic[T]):
    """One live resource and the bookkeeping the pool keeps about it.

    The core holds entries in use only weakly: a lease its caller dropped without ending it
    takes the entry with it, and ``__del__`` reports the loss to the shell named by ``owner``
    (a weak reference), so the slot is recovered instead of lost for good. Entries that stay
    with the pool (idle) never die this way, so the hot path pays nothing for it.
    """

    __slots__ = (
        "__weakref__",
        "checked_at",
        "created_at",
        "epoch",
        "expires_at",
        "generation",
        "idle_since",
        "key",
        "lent_at",
        "owner",
        "reported",
        "resource",
        "trace",
        "uses",
    )

    def __init__(
        self,
        resource: T,
        epoch: int,
        now: float,
        owner: weakref.ref[Any] | None = None,
    ) -> None:
        self.resource = resource
        #: The process epoch that created it; a forked child's core has the next one.
        self.epoch = epoch
        self.key = next(_keys)
        self.created_at = now
        self.idle_since = now
        #: Last time ``check`` passed, for ``keepalive``; creation counts as one.
        self.checked_at = now
        #: Retire at or after this instant (``inf``: never); jittered once, at birth.
        self.expires_at = _NEVER
        #: The drain generation it was made in; an older one is retired (``drain()``).
        self.generation = 0
        #: When it was last lent, and whether that lease was reported as held too long
        #: (kept only with ``leak_timeout``).
        self.lent_at = now
        self.reported = False
        self.uses = 0
        #: The shell to tell if the entry is lost while lent; None once retired.
        self.owner = owner
        #: Where it was acquired, when debug mode or ``leak_timeout`` recorded it.
        self.trace: StackSummary | None = None

    def __del__(self, _finalizing: Callable[[], bool] = sys.is_finalizing) -> None:
        owner = self.owner
        if owner is None or _finalizing():  # at exit, modules may already be torn down
            return
        pool = owner()
        if pool is not None:
            pool._lost(self)

    def __repr__(self) -> str:
        return f"<Entry #{self.key}>"


class Waiter(Generic[T]):
    """A caller queued in ``acquire``; ``grant`` stays None until the core serves it."""

    __slots__ = ("grant", "handle", "queued", "recheck_at", "since", "woken")

    def __init__(self, handle: object, since: float) -> None:
        #: The shell's wake-up object (a lock, a future): opaque to the core.
        self.handle = handle
        #: When it began waiting: the queue is kept in this order, and fairness reads it.
        self.since = since
        self.grant: Entry[T] | _Token | None = None
        #: In the core's queue: neither served nor cancelled yet.
        self.queued = True
        #: Its wake-up is signalled and it has not looked since: a grant, or a *rouse* (an
        #: idle entry it may compete for, see :meth:`FreeListCore.look`), or it dozes (see
        #: ``recheck_at``). A handle is signalled only while ``woken`` is False, or to hand
        #: a dozing waiter a grant (which clears ``recheck_at``): at most one signal per look.
        self.woken = False
        #: Set while it dozes: overtaken once, it looks again at this time (when it becomes
        #: due) without being signalled.
        self.recheck_at: float | None = None


class Todo(Generic[T]):
    """What a shell must do, outside its lock, after a core move.

    ``outcome`` answers the move itself (see each method); ``wake`` lists served waiters,
    ``destroy`` entries whose resources must be destroyed, and ``fill`` says that slots are
    owed to the pool's background filler. Housekeeping adds ``check``: idle entries taken
    out for a keepalive check (each ends in :meth:`FreeListCore.keepalive_done`), and
    ``report``: lent entries held past ``leak_timeout``, to report once.
    """

    __slots__ = ("check", "destroy", "fill", "outcome", "report", "wake")

    def __init__(self) -> None:
        self.outcome: Entry[T] | Waiter[T] | _Token | None = None
        self.wake: list[Waiter[T]] = []
        self.destroy: list[Entry[T]] = []
        self.fill = False
        self.check: list[Entry[T]] = []
        self.report: list[Entry[T]] = []

    def __bool__(self) -> bool:
        """Is there any work to perform? (``outcome`` is an answer, not work.)"""
        return bool(self.wake or self.destroy or self.fill or self.check or self.report)


class FreeListCore(Generic[T]):
    """Idle list, counts, FIFO waiter queue and create backoff of one free-list pool.

    Invariants (checked by :meth:`check_invariants`; those marked *settled* may be broken
    briefly by a lock-free put, until :meth:`finish_put` runs):

    * ``created - destroyed == size == len(live)`` and ``0 <= len(idle) <= size``;
    * ``0 <= owed <= creating`` and ``max_size is None or size + creating <= max_size``;
    * open: ``size + creating >= min_size`` — a slot below ``min_size`` is always reserved
      (owed to the filler, or being created), so no loss shrinks a pool for good;
    * *settled*: ``waiters`` non-empty implies no room to create, and that each of the first
      ``len(idle)`` waiters is woken (on its way to look: see *Fairness*);
    * ``waiters`` is ordered by ``since`` (arrival), and ``woken`` waiters are still queued;
    * *settled*: ``len(idle) <= max_idle``;
    * ``closed`` implies ``waiters`` empty, ``owed == 0`` and, *settled*, ``idle`` empty;
    * ``destroyed == sum(retired.values())``: every retirement has one reason.

    Fairness: a waiter is *due* once it has waited ``window`` seconds (0: at once, strict
    FIFO). While the oldest waiter is not due, a returned entry goes idle and the waiter at
    the head is *roused* to compete for it with newcomers, which may take it first (neither
    the releasing thread nor a newcomer parks behind a sleeping thread: no lock convoy).
    Once the oldest waiter is due, entries are handed to waiters in arrival order and
    newcomers queue behind them, until no waiter is due. A roused waiter that finds nothing
    left *dozes* until it is due, or ``MAX_DOZE`` at most (:meth:`look`), instead of being
    roused by every return: the thread that returned an entry and asks again at once nearly
    always wins the race, and a futile wake-up costs a thread switch. (An entry may then lie
    idle while its waiter dozes, that long at most.) ``overtakes`` counts the entries
    newcomers took while someone waited, ``overtaken_wait_max`` the longest the oldest
    waiter had waited at such a moment (at most ``window``, by construction).

    Health (``rules``, ``leak_timeout``; all optional): an entry past its lifetime, worn by
    its uses or made before a ``drain()`` is retired when it comes back, when a caller is
    about to take it (:meth:`worn`), and by housekeeping while idle (:meth:`housekeep`),
    which also evicts surplus entries idle too long, takes idle ones out for keepalive
    checks, and reports leases held too long; :meth:`next_deadline` says when it is next due.
    A lent entry is never taken from its holder.
    """

    __slots__ = (
        "_append",
        "backoff",
        "check_failures",
        "checking",
        "closed",
        "create_errors",
        "created",
        "creating",
        "destroy_errors",
        "destroyed",
        "epoch",
        "finish_later",
        "generation",
        "idle",
        "idle_cap",
        "last_create_error",
        "leak_timeout",
        "leaks",
        "lifo",
        "live",
        "max_idle",
        "max_size",
        "max_waiting",
        "min_size",
        "name",
        "overtaken_wait_max",
        "overtakes",
        "owed",
        "owner",
        "put_fast",
        "rejected",
        "reset_errors",
        "retired",
        "retired_uses",
        "rules",
        "shrinking",
        "size",
        "stale_out",
        "take",
        "take_contended",
        "take_nowait",
        "timeouts",
        "trivial_put",
        "wait_time_max",
        "wait_time_total",
        "waiters",
        "waits",
        "window",
    )

    def __init__(
        self,
        *,
        name: str,
        min_size: int,
        max_size: int | None,
        max_idle: int,
        max_waiting: int | None,
        lifo: bool,
        epoch: int = 0,
        owner: weakref.ref[Any] | None = None,
        backoff: Backoff | None = None,
        rules: Rules | None = None,
        leak_timeout: float | None = None,
        window: float = 0.0,
    ) -> None:
        if not window >= 0:
            raise ValueError(f"window must be >= 0 seconds, got {window!r}")
        self.name = name
        #: The filler keeps at least this many live or reserved (FixedPool: its size).
        self.min_size = min_size
        self.max_size = max_size
        self.max_idle = max_idle
        #: ``max_idle`` as configured (``max_idle`` itself is 0 while a resize shrinks).
        self.idle_cap = max_idle
        self.max_waiting = max_waiting
        self.epoch = epoch
        self.lifo = lifo
        #: Seconds a waiter may be overtaken by newcomers (0: never; see *Fairness*).
        self.window = window
        #: The shell that lost entries report to (see :class:`Entry`).
        self.owner = owner
        #: Called by :meth:`put_nowait` when a put needs the lock (see there); None: not.
        self.finish_later: Callable[[Entry[T], int], object] | None = None
        #: Health settings (None: no time-based option, so nothing needs the clock).
        self.rules = rules
        #: Report a lease held this long (None: never).
        self.leak_timeout = leak_timeout
        #: After a ``resize()`` down, until the surplus has come back: ``size + creating``
        #: may exceed ``max_size`` meanwhile.
        self.shrinking = False
        #: Drain generation: entries made in an older one are retired (``drain()``).
        self.generation = 0
        #: Keys of idle entries taken out by housekeeping for a keepalive check right now.
        self.checking: set[int] = set()
        #: Retired resources by reason (see ``REASONS``).
        self.retired: dict[str, int] = dict.fromkeys(REASONS, 0)
        #: The failure streak of creates made for the pool itself (the filler's).
        self.backoff = backoff if backoff is not None else Backoff()

        self.idle: deque[Entry[T]] = deque()
        #: Pop an idle entry (``IndexError`` when none): the most recently returned first for
        #: LIFO, the longest idle first for FIFO.
        self.take: Callable[[], Entry[T]] = self.idle.pop if lifo else self.idle.popleft
        #: The lock-free take: an idle entry if one can be had without overtaking a waiter;
        #: ``None`` while someone waits; ``IndexError`` when none is idle. The caller owns the
        #: entry and bumps its ``uses`` once it keeps it (after any ``check``). It *is*
        #: ``take`` while nobody waits and a refusal while someone does, swapped by the moves
        #: that change the waiter queue, so that the uncontended acquire makes one C call
        #: and no Python call to decide (a fifth of its cost).
        self.take_nowait: Callable[[], Entry[T] | None] = self.take
        #: What ``take_nowait`` is while someone waits: a refusal (the caller goes to
        #: :meth:`request`), or, set by a shell when ``window`` allows overtaking, a call
        #: that takes the shell's lock and makes :meth:`barge` (one step instead of a wait's
        #: preparations, on every contended acquire).
        self.take_contended: Callable[[], Entry[T] | None] = _refuse
        self.waiters: deque[Waiter[T]] = deque()
        self.closed = False
        #: An entry of an earlier generation (made before a ``drain()``, or the parent's in
        #: a forked child) may still come back: a put must look at generations.
        self.stale_out = False
        self._append = self.idle.append
        #: The put of a shell that no other thread can race (asyncio): the idle list's own
        #: ``append`` while nothing but the idle list can be concerned (see
        #: :meth:`_put_rules_changed`), else None: call :meth:`put_nowait`. Swapped like
        #: ``take_nowait``, so that the uncontended release makes no Python call. (None
        #: rather than the bound ``put_nowait``: that would make the core a reference cycle,
        #: and a dropped pool's idle resources would wait for the cyclic collector.)
        self.put_fast: Callable[[Entry[T]], object] | None = None
        self.trivial_put = False
        #: Live resources (idle + in use).
        self.size = 0
        #: Slots reserved for resources being created (by callers or the filler).
        self.creating = 0
        #: Of those, slots owed to the filler that it has not started on yet.
        self.owed = 0

        self.created = 0
        self.destroyed = 0
        self.timeouts = 0
        self.rejected = 0
        self.create_errors = 0
        self.reset_errors = 0
        self.check_failures = 0
        self.destroy_errors = 0
        self.leaks = 0
        self.waits = 0
        self.wait_time_total = 0.0
        self.wait_time_max = 0.0
        self.overtakes = 0
        self.overtaken_wait_max = 0.0
        #: The error of the filler's most recent failed create, while they keep failing: the
        #: cause a waiter's ``PoolTimeout`` carries.
        self.last_create_error: BaseException | None = None
        #: Every live entry, by key, held weakly (see :class:`Entry`). Acquires are not
        #: counted on the lock-free path (a shared counter would need the lock); instead each
        #: acquirer bumps ``uses`` on the entry it now owns alone, summed when stats are read.
        self.live: dict[int, weakref.ref[Entry[T]]] = {}
        self.retired_uses = 0
        self._put_rules_changed()

    # -- non-blocking moves (no lock needed: see the module docstring) ------------------

    # ``take_nowait()`` is an attribute, not a method: see ``__init__``.

    def put_nowait(self, entry: Entry[T]) -> int:
        """Give back a clean *entry* if nothing but the idle list is concerned.

        ``PUT_DONE``: it is idle now. Otherwise :meth:`finish_put` must run under the lock
        with the answer: ``PUT_PUBLISHED`` (it went idle, but a waiter, close or surplus may
        have raced it) or ``PUT_REFUSED`` (not published: it is for a waiter, the surplus, a
        closed pool, or another process's). When the shell set :attr:`finish_later`, this
        calls it with the entry and the answer, so that the shell can use this very method
        as its release path (one call frame less on the hot path).
        """
        idle = self.idle
        # (A generation differs for a drained entry, and for another process's.)
        if (
            self.waiters
            or self.closed
            or len(idle) >= self.max_idle
            or entry.generation != self.generation
        ):
            answer = PUT_REFUSED
        else:
            idle.append(entry)
            # Published first, looked second: a waiter or close that raced us must be settled.
            if not (self.waiters or self.closed or len(idle) > self.max_idle):
                return PUT_DONE
            answer = PUT_PUBLISHED
        finish = self.finish_later
        if finish is not None:
            finish(entry, answer)
        return answer

    def foreign(self, entry: Entry[T]) -> bool:
        """Does *entry* belong to another process (the parent, seen from a forked child)?

        Nothing may be done to a foreign entry's resource: not reset, checked or destroyed.
        """
        return entry.epoch != self.epoch

    def needs_check(self, entry: Entry[T], since: float, now: float | None = None) -> bool:
        """Must *entry* pass ``check`` before a caller that began acquiring at *since* uses it
        (at *now*, when ``check_after`` is set)?

        Not when it was made while the caller was acquiring and never lent since: made by
        the caller itself, or by the filler for it. Checking what was created a moment ago
        proves nothing, and with a check that always fails it would make the caller chase
        each replacement the filler makes, one create per round, for as long as it runs.
        Nor, with ``check_after``, when it has been idle (or last checked) less than that.
        """
        if entry.uses == 0 and entry.created_at >= since:
            return False
        rules = self.rules
        if rules is None or not rules.check_after or now is None:
            return True
        return now - max(entry.idle_since, entry.checked_at) >= rules.check_after

    # -- moves (call with the shell's lock held) ----------------------------------------

    def finish_put(self, entry: Entry[T], answer: int, now: float) -> Todo[T]:
        """Complete a :meth:`put_nowait` that did not answer ``PUT_DONE``."""
        if answer == PUT_PUBLISHED:
            return self.settle(now)
        if answer == PUT_REFUSED:
            return self.release(entry, now)
        raise ValueError(f"finish_put() needs PUT_PUBLISHED or PUT_REFUSED, got {answer!r}")

    def request(self, now: float, handle: object | None) -> Todo[T]:
        """A caller wants a resource.

        ``outcome`` is an idle :class:`Entry` (now the caller's), ``CREATE`` (a slot is
        reserved for the caller), a :class:`Waiter` to park on (when *handle* is given), or
        ``None`` when nothing is available and the caller will not wait. Raises
        ``PoolClosed``, or ``PoolFull`` when ``max_waiting`` callers already wait.

        While nobody waiting is due (see *Fairness*), the caller may take an idle entry
        ahead of the waiters; a reserved slot always goes to the waiters first.
        """
        if self.closed:
            raise PoolClosed(f"pool {self.name!r} is closed")
        todo: Todo[T] = Todo()
        entry = self.barge(now)
        if entry is not None:
            todo.outcome = entry
            return todo
        if not self.waiters and self._has_room():
            self.creating += 1
            todo.outcome = CREATE
            return todo
        # Nothing at hand: if slots are owed, make sure the filler knows (a forked child's
        # pool owes its whole size until first used).
        todo.fill = self.owed > 0
        if handle is None:
            return todo
        if self.max_waiting is not None and len(self.waiters) >= self.max_waiting:
            self.rejected += 1
            raise PoolFull(
                f"pool {self.name!r} already has {len(self.waiters)} callers waiting"
                f" (max_waiting={self.max_waiting})"
            )
        self._enqueue(Waiter(handle, now), todo, now)
        return todo

    def barge(self, now: float) -> Entry[T] | None:
        """A newcomer that will not queue (yet) asks for an idle entry: it may take one ahead
        of the waiters while none of them is due (see *Fairness*); None otherwise."""
        if self.closed:
            return None
        if self.waiters:
            if self._due(now):
                return None
            entry = self._take_idle()
            if entry is not None:
                self._overtook(now)
            return entry
        return self._take_idle()

    def look(self, waiter: Waiter[T], now: float) -> Todo[T]:
        """A woken (or dozing) *waiter* looks for what woke it, in its own thread.

        ``outcome`` is its grant (an entry, ``CREATE``, ``CLOSED``), or the waiter itself,
        still queued at its place, to park again: signalled by the next return or grant, or,
        when newcomers overtook it and it is not due yet, dozing until it is
        (``recheck_at``): a woken thread usually loses the race to the thread that returned
        the resource and asks again at once, so waking it at every return would cost a thread
        switch each time for nothing. It dozes until it is due, when hand-offs become
        strict (then a return goes to it as to any due waiter), or for ``MAX_DOZE`` seconds
        if that is sooner: what is returned meanwhile may lie idle that long, unless a
        newcomer takes it.
        """
        todo: Todo[T] = Todo()
        if waiter.queued:
            waiter.woken = False
            waiter.recheck_at = None
            self._look(waiter, todo, now)
            due_at = waiter.since + self.window
            if waiter.queued and now < due_at:  # overtaken within the window: doze
                waiter.woken = True
                waiter.recheck_at = min(due_at, now + MAX_DOZE)
        else:
            todo.outcome = waiter.grant
        return todo

    def cancel(self, waiter: Waiter[T], now: float, *, timed_out: bool) -> Todo[T]:
        """A waiter stops waiting (deadline, interrupt, cancellation); twice is harmless.

        ``outcome`` is the grant it received before it could cancel (the caller must use it
        or hand it to :meth:`give_back`), or ``None`` when it was still queued and has now
        left. A roused waiter's chance passes to the next in line.
        """
        todo: Todo[T] = Todo()
        if waiter.queued:
            self.waiters.remove(waiter)
            self._waiters_changed()
            waiter.queued = False
            if timed_out:
                self.timeouts += 1
            self._serve(todo, now)
        todo.outcome = waiter.grant
        return todo

    def check_failed(
        self,
        entry: Entry[T],
        now: float,
        handle: object | None,
        reason: str = CHECK,
        *,
        since: float | None = None,
        give_up: bool = False,
    ) -> Todo[T]:
        """``check`` found the caller's *entry* unviable (or *reason*: :meth:`worn` found it
        due for retirement): destroy it and serve the caller again.

        *give_up*: the caller's deadline has passed, so it takes nothing more (``outcome``
        None, or ``CLOSED``): the destroyed one's room goes to the others. Without this, a
        caller past its deadline would go on taking idle entries and checking each on time
        it no longer has (a check of a silent connection lasts its whole timeout).

        The caller had been served, so it keeps its place at the head of the line: ``outcome``
        is the next idle entry, ``CREATE`` when the destroyed one's room is free for it, a
        :class:`Waiter` at its place in the queue (when *handle* is given: e.g. FixedPool,
        whose room is owed to the filler and whose replacement will reach this waiter
        first), or ``None``. A closed pool answers ``CLOSED``. *since*: when the caller began
        acquiring; its place is by that time, ahead of anyone who came later (default: the
        head of the line).
        """
        if entry.epoch != self.epoch:
            raise ValueError(f"{entry!r} belongs to another process")
        if reason == CHECK:
            self.check_failures += 1
        todo: Todo[T] = Todo()
        if give_up:
            self._retire(entry, todo, now, reason)
            todo.outcome = CLOSED if self.closed else None
            return todo
        self._retire(entry, todo, now, reason, serve=False)
        if self.closed:
            todo.outcome = CLOSED
            return todo
        following = self._take_idle()
        if following is not None:
            todo.outcome = following
        elif self._has_room():
            self.creating += 1
            todo.outcome = CREATE
        elif handle is not None:
            first = since is None
            if since is None:  # at the head
                since = min(now, self.waiters[0].since) if self.waiters else now
            self._enqueue(Waiter(handle, min(since, now)), todo, now, first=first)
            return todo
        self._serve(todo, now)  # the caller is served: anything left goes to the others
        return todo

    def reset_failed(self, entry: Entry[T], now: float, reason: str = ERROR) -> Todo[T]:
        """``reset`` could not clean *entry* (it raised: ``error``; it was interrupted or
        cancelled: ``abort``): count it and destroy it."""
        self.reset_errors += 1
        return self.discard(entry, now, reason)

    def note_destroy_error(self) -> None:
        """A ``destroy`` callback raised; the resource is gone from the pool all the same."""
        self.destroy_errors += 1

    def note_timeout(self) -> None:
        """A caller that would not wait found nothing (``acquire(timeout=0)``)."""
        self.timeouts += 1

    def give_back(self, grant: Entry[T] | _Token, now: float) -> Todo[T]:
        """Return a grant its receiver will not use: the entry or the slot goes to the next."""
        if isinstance(grant, Entry):
            return self.release(grant, now)
        if grant is CREATE:
            return self.create_failed(now, error=False)
        return Todo()

    def filled(self, resource: T, now: float) -> Entry[T]:
        """The slot reserved for a caller (``CREATE``) now holds *resource*, in its use."""
        if self.creating <= self.owed:
            raise ValueError("filled() without a slot reserved for a caller")
        self.creating -= 1
        return self._new_entry(resource, now)

    def create_failed(self, now: float, *, error: bool = True) -> Todo[T]:
        """The slot reserved for a caller produced nothing (*error*: ``create`` raised;
        False: the slot went unused).

        Its room goes to the first waiter, or back to the filler below ``min_size``. It does
        not ask for a retry on the caller's behalf: the caller has its answer (the error),
        which is not kept either (its traceback holds the caller's frames).
        """
        if self.creating <= self.owed:
            raise ValueError("create_failed() without a slot reserved for a caller")
        self.creating -= 1
        if self.shrinking:
            self._update_shrinking()
        if error:
            self.create_errors += 1
        todo: Todo[T] = Todo()
        self._owe(todo)
        self._serve(todo, now)
        return todo

    def reserve(self, count: int) -> int:
        """Reserve up to *count* slots for the shell to create now (priming); return how many.

        Each ends in :meth:`stock` or :meth:`create_failed`, like a caller's slot.
        """
        if self.closed or count <= 0:
            return 0
        if self.max_size is not None:
            count = min(count, self.max_size - self.size - self.creating)
        count = max(count, 0)
        self.creating += count
        return count

    def stock(self, resource: T, now: float, *, owed: bool = False) -> Todo[T]:
        """A slot reserved for the pool itself (priming; the filler: *owed*) now holds
        *resource*: it goes to the first waiter (made for it: it needs no check, see
        :meth:`needs_check`), or to the idle list."""
        if owed:
            self.backoff.succeeded()
            self.last_create_error = None
        entry = self._new_entry(resource, now)
        self.creating -= 1
        todo: Todo[T] = Todo()
        if self.closed:
            self._retire(entry, todo, now, CLOSE)
        elif self._over_size():
            self._retire(entry, todo, now, SURPLUS)
        elif self.waiters:
            self._hand_over(entry, todo, now)
        elif len(self.idle) >= self.max_idle:
            self._retire(entry, todo, now, SURPLUS)
        else:
            self._idle(entry, todo, now)
        return todo

    def start_fills(self, now: float) -> int:
        """The filler asks how many owed slots to create now (0 while backing off)."""
        if self.closed or not self.owed or not self.backoff.due(now):
            return 0
        count = self.owed
        self.owed = 0
        return count

    def fill_failed(self, now: float, error: BaseException, *, unstarted: int = 0) -> Todo[T]:
        """The filler's ``create`` raised: the slot stays owed, retried when the backoff says,
        and so do the *unstarted* slots the filler had taken from :meth:`start_fills`.

        Waiters keep waiting (until their deadline, when their ``PoolTimeout`` carries
        *error* as its cause): a database that is down for a second must not fail them all.
        """
        if unstarted < 0 or self.creating - 1 < self.owed + unstarted:
            raise ValueError(f"fill_failed() with {unstarted} unstarted of too few fills")
        self.creating -= 1
        if self.closed:
            self.creating -= unstarted  # nothing is owed to a closed pool
        else:
            self.owed += unstarted
        if self.shrinking:
            self._update_shrinking()
        self.create_errors += 1
        self.last_create_error = error
        self.backoff.failed(now, error)
        todo: Todo[T] = Todo()
        self._owe(todo)
        self._serve(todo, now)
        return todo

    def release(self, entry: Entry[T], now: float) -> Todo[T]:
        """A clean entry comes back: to the first waiter (once one is due, see *Fairness*),
        the idle list (rousing a waiter, if any, to compete for it), or destruction."""
        todo: Todo[T] = Todo()
        if entry.epoch != self.epoch:
            return todo  # the parent's resource, seen in a forked child: not ours to touch
        if self.closed:
            self._retire(entry, todo, now, CLOSE)
            return todo
        if entry.generation != self.generation:
            self._retire(entry, todo, now, DRAIN)
            return todo
        waiters = self.waiters
        full = len(self.idle) >= self.max_idle
        if self._over_size() or (full and not waiters):
            self._retire(entry, todo, now, SURPLUS)
        elif waiters and (full or self._due(now)):
            self._hand_over(entry, todo, now)
        else:  # idle; any waiter is roused to compete for it (see _serve)
            self._idle(entry, todo, now)
        return todo

    def discard(self, entry: Entry[T], now: float, reason: str = ABORT) -> Todo[T]:
        """An entry must be destroyed for *reason* (one of ``REASONS``): a failed reset, an
        abort, an explicit discard, or worn out when it came back (:meth:`worn`)."""
        if reason not in self.retired:
            raise ValueError(f"unknown retirement reason {reason!r}")
        todo: Todo[T] = Todo()
        if entry.epoch == self.epoch:
            self._retire(entry, todo, now, reason)
        return todo

    def leaked(self, entry: Entry[T], now: float) -> Todo[T]:
        """A lease was lost without being ended (its entry was garbage-collected): destroy
        the resource, since nobody knows what state it was left in, and count a leak.

        An entry already retired, or of another process, is ignored.
        """
        todo: Todo[T] = Todo()
        if entry.epoch == self.epoch and entry.key in self.live:
            if not entry.reported:  # a lease reported as held too long was counted then
                self.leaks += 1
            self._retire(entry, todo, now, LEAK)
        return todo

    def settle(self, now: float) -> Todo[T]:
        """Restore the *settled* invariants after lock-free puts raced with other moves."""
        todo: Todo[T] = Todo()
        if self.closed:
            self._destroy_idle(todo, CLOSE)
            return todo
        self._serve(todo, now)
        while len(self.idle) > self.max_idle:
            surplus = self._take_idle(coldest=True)
            if surplus is None:
                break
            self._retire(surplus, todo, now, SURPLUS)
        return todo

    # -- health (call with the lock held, but for :meth:`worn`) ---------------------------

    def worn(self, entry: Entry[T], now: float) -> str | None:
        """Is *entry* due for retirement (past its lifetime, lent ``max_uses`` times, made
        before a ``drain()``)? The reason, or None. A pure question: no lock needed."""
        if entry.generation != self.generation:
            return DRAIN
        if now >= entry.expires_at:
            return LIFETIME
        rules = self.rules
        if rules is not None and rules.max_uses is not None and entry.uses >= rules.max_uses:
            return USES
        return None

    def housekeep(self, now: float) -> Todo[T]:
        """Retire idle entries that are due (lifetime, drain, surplus idle past
        ``idle_timeout``), take idle ones due a keepalive check out for it (``todo.check``:
        each ends in :meth:`keepalive_done`), and list leases held past ``leak_timeout``
        (``todo.report``), counting each once. Waiters come first: nothing is taken for a
        check while anyone waits."""
        todo: Todo[T] = Todo()
        if self.closed:
            return todo
        rules = self.rules
        # (While anyone waits, what is idle is theirs to take: a caller checks it anyway.)
        if rules is not None and self.idle and not self.waiters:
            keep: list[Entry[T]] = []
            while (entry := self._take_idle(coldest=True)) is not None:
                reason = self.worn(entry, now)
                if reason is None and rules.idle_timeout is not None:
                    idle_for = now - entry.idle_since
                    surplus = self.size > self.min_size
                    if surplus and idle_for >= rules.idle_timeout:
                        reason = IDLE
                if reason is not None:
                    self._retire(entry, todo, now, reason, serve=False)
                elif self._keepalive_due(entry, now):
                    self.checking.add(entry.key)
                    todo.check.append(entry)
                else:
                    keep.append(entry)
            # Back in the same order (coldest first, so the hottest ends where takes look).
            for entry in keep if self.lifo else reversed(keep):
                self.idle.append(entry) if self.lifo else self.idle.appendleft(entry)
            self._owe(todo)
            self._serve(todo, now)
        timeout = self.leak_timeout
        if timeout is not None:
            for entry in self._lent():
                if not entry.reported and now - entry.lent_at >= timeout:
                    entry.reported = True
                    self.leaks += 1
                    todo.report.append(entry)
        return todo

    def keepalive_done(self, entry: Entry[T], now: float, *, alive: bool) -> Todo[T]:
        """A keepalive check of *entry* ended: *alive*, it is idle again (its idle time
        unchanged); dead, it is retired and replaced before a caller meets it."""
        if entry.key not in self.checking:
            raise ValueError(f"{entry!r} is not out for a keepalive check")
        self.checking.discard(entry.key)
        todo: Todo[T] = Todo()
        if not alive:
            self.check_failures += 1
            self._retire(entry, todo, now, CHECK)
            return todo
        entry.checked_at = now
        if self.closed:
            self._retire(entry, todo, now, CLOSE)
        elif self.waiters:
            self._hand_over(entry, todo, now)
        elif len(self.idle) >= self.max_idle or self._over_size():
            self._retire(entry, todo, now, SURPLUS)
        else:
            self._idle(entry, todo, now, stamp=False)
        return todo

    def next_deadline(self, now: float) -> float:
        """When housekeeping is next due (``inf``: nothing time-based to do).

        The earliest lifetime of any live entry, idle deadline of any idle one, and leak
        deadline of any lent one; and, for entries that go idle or are lent after *now*,
        no earlier than *now* plus the shortest of those periods.
        """
        if self.closed:
            return _NEVER
        rules = self.rules
        timeout = self.leak_timeout
        due = _NEVER
        periods = [timeout] if timeout is not None else []
        if rules is not None:
            periods += [p for p in (rules.idle_timeout, rules.keepalive) if p is not None]
            for ref in self.live.values():
                entry = ref()
                # A lent entry already past its lifetime waits for its return: it is no
                # deadline (counting it would wake housekeeping in a loop until then).
                if entry is not None and now < entry.expires_at < due:
                    due = entry.expires_at
            # While anyone waits, what is idle is theirs (housekeeping leaves it alone).
            for entry in () if self.waiters else self.idle:
                due = min(due, entry.expires_at)
                if rules.keepalive is not None:
                    due = min(due, max(entry.idle_since, entry.checked_at) + rules.keepalive)
                if rules.idle_timeout is not None and self.size > self.min_size:
                    due = min(due, entry.idle_since + rules.idle_timeout)
        if timeout is not None:
            for entry in self._lent():
                if not entry.reported:
                    due = min(due, entry.lent_at + timeout)
        if periods:
            due = min(due, now + min(periods))
        return due

    def drain(self, now: float) -> Todo[T]:
        """Retire every entry made before now: idle ones at once, lent ones when they come
        back (:meth:`worn` says ``DRAIN``). Replacements are owed as usual; nobody fails."""
        todo: Todo[T] = Todo()
        if self.closed:
            return todo
        self.generation += 1
        self.stale_out = True
        self._put_rules_changed()
        while (entry := self._take_idle(coldest=True)) is not None:
            self._retire(entry, todo, now, DRAIN, serve=False)
        self._owe(todo)
        self._serve(todo, now)
        return todo

    def resize(self, now: float, *, min_size: int, max_size: int | None, max_idle: int) -> Todo[T]:
        """Change the pool's sizes at run time. Growing owes the filler what ``min_size``
        now asks (or frees room for waiters); shrinking retires idle surplus at once and
        lent surplus as it comes back (``SURPLUS``), never taking a resource from a caller."""
        if min_size < 0 or max_idle < 0 or (max_size is not None and max_size < 1):
            raise ValueError("resize() needs min_size >= 0, max_idle >= 0, max_size >= 1")
        if max_size is not None and (min_size > max_size or max_idle > max_size):
            raise ValueError("resize() needs min_size and max_idle <= max_size")
        todo: Todo[T] = Todo()
        if self.closed:
            return todo
        self.min_size, self.max_size, self.max_idle = min_size, max_size, max_idle
        self.idle_cap = max_idle
        if max_size is not None:  # owed slots beyond the new size are forgotten
            drop = min(self.owed, self.size + self.creating - max_size)
            if drop > 0:
                self.owed -= drop
                self.creating -= drop
        while self.idle and (len(self.idle) > max_idle or self._over_size()):
            entry = self._take_idle(coldest=True)
            if entry is not None:
                self._retire(entry, todo, now, SURPLUS, serve=False)
        # While shrinking nothing goes idle (the lock-free put then refuses, and the move
        # under the lock retires the surplus); max_idle comes back once the surplus is gone.
        self._update_shrinking()
        self._put_rules_changed()
        self._owe(todo)
        self._serve(todo, now)
        return todo

    def open_lazily(self) -> Todo[T]:
        """A pool opened by its first use instead of by priming (an asyncio pool used before
        ``open()``): every slot below ``min_size`` is owed to the filler, whose resources
        reach the waiters in arrival order. Idempotent."""
        todo: Todo[T] = Todo()
        self._owe(todo)
        return todo

    def forked(self) -> FreeListCore[T]:
        """The core a forked child starts with: the same settings, the next epoch, and
        nothing live. Entries of this core are foreign to it (see :meth:`foreign`)."""
        child: FreeListCore[T] = FreeListCore(
            name=self.name,
            min_size=self.min_size,
            max_size=self.max_size,
            max_idle=self.idle_cap,
            max_waiting=self.max_waiting,
            lifo=self.lifo,
            epoch=self.epoch + 1,
            owner=self.owner,
            backoff=Backoff(base=self.backoff.base, cap=self.backoff.cap),
            rules=self.rules,
            leak_timeout=self.leak_timeout,
            window=self.window,
        )
        # The parent's entries still lent here are the parent's: losing one is no leak here.
        for ref in self.live.values():
            entry = ref()
            if entry is not None:
                entry.owner = None
        child.closed = self.closed
        # A generation of its own too: the lock-free put refuses the parent's entries by it.
        child.generation = self.generation + 1
        child.stale_out = True
        child._put_rules_changed()
        if not child.closed:
            child._owe(Todo())
        return child

    def close(self) -> Todo[T]:
        """Refuse new callers, release the waiting ones with ``CLOSED``, destroy idle entries
        and forget owed slots. Idempotent. Entries in use are destroyed when they come back.
        """
        todo: Todo[T] = Todo()
        if self.closed:
            return todo
        self.closed = True
        self._put_rules_changed()
        self.creating -= self.owed
        self.owed = 0
        if self.shrinking:
            self._update_shrinking()
        while self.waiters:
            waiter = self.waiters.popleft()
            self._waiters_changed()
            waiter.grant = CLOSED
            waiter.queued = False
            self._signal(waiter, todo)
        self._destroy_idle(todo, CLOSE)
        return todo

    # -- counters the shell reports ------------------------------------------------------

    def acquires(self) -> int:
        """Successful acquires so far (call with the lock held)."""
        total = self.retired_uses
        for ref in self.live.values():
            entry = ref()
            if entry is not None:
                total += entry.uses
        return total

    def stats(self) -> PoolStats:
        """A snapshot of the counts (call with the lock held)."""
        idle = len(self.idle)
        return PoolStats(
            name=self.name,
            size=self.size,
            idle=idle,
            in_use=self.size - idle,
            waiting=len(self.waiters),
            creating=self.creating,
            created=self.created,
            destroyed=self.destroyed,
            acquires=self.acquires(),
            timeouts=self.timeouts,
            rejected=self.rejected,
            create_errors=self.create_errors,
            reset_errors=self.reset_errors,
            check_failures=self.check_failures,
            destroy_errors=self.destroy_errors,
            leaks=self.leaks,
            waits=self.waits,
            wait_time_total=self.wait_time_total,
            wait_time_max=self.wait_time_max,
            retired=dict(self.retired),
            create_failures=self.backoff.failures,
            overtakes=self.overtakes,
            overtaken_wait_max=self.overtaken_wait_max,
        )

    def describe(self) -> str:
        """The figures a ``PoolTimeout`` message gives (call with the lock held)."""
        lent = self.size - len(self.idle)
        text = f"size={self.size}, lent={lent}, waiting={len(self.waiters)}"
        if self.creating:
            text += f", creating={self.creating}"
        return text

    def check_invariants(self, *, settled: bool = True) -> None:
        """Assert the invariants in the class docstring (tests call this at quiescent points)."""
        assert self.created - self.destroyed == self.size == len(self.live), (
            self.created,
            self.destroyed,
            self.size,
            len(self.live),
        )
        assert 0 <= len(self.idle) <= self.size, (len(self.idle), self.size)
        assert 0 <= self.owed <= self.creating, (self.owed, self.creating)
        assert self.destroyed == sum(self.retired.values()), self.retired
        if self.max_size is not None and not self.shrinking:
            assert self.size + self.creating <= self.max_size
        assert (self.take_nowait is self.take_contended) == bool(self.waiters)
        fast = self.trivial_put and not self.waiters
        assert self.put_fast == (self._append if fast else None)
        if self.trivial_put:
            assert not self.closed
            assert not self.shrinking
            assert not self.stale_out
        if self.closed:
            assert not self.waiters
            assert self.owed == 0
        else:
            assert self.size + self.creating >= self.min_size, (
                self.size,
                self.creating,
                self.min_size,
            )
        assert self.max_idle == (0 if self.shrinking else self.idle_cap)
        since = [waiter.since for waiter in self.waiters]
        assert since == sorted(since), since
        assert all(waiter.queued for waiter in self.waiters)
        if settled:
            assert len(self.idle) <= self.idle_cap
            if self.waiters:
                assert not self._has_room()
                roused = itertools.islice(self.waiters, len(self.idle))
                assert all(waiter.woken for waiter in roused), "an idle entry nobody looks for"
            if self.closed:
                assert not self.idle

    # -- internals ------------------------------------------------------------------------

    def _new_entry(self, resource: T, now: float) -> Entry[T]:
        self.size += 1
        self.created += 1
        entry = Entry(resource, self.epoch, now, self.owner)
        entry.generation = self.generation
        if self.rules is not None and self.rules.max_lifetime is not None:
            entry.expires_at = self.rules.born(now).expires_at
        self.live[entry.key] = weakref.ref(entry)
        return entry

    def _take_idle(self, *, coldest: bool = False) -> Entry[T] | None:
        """Pop an idle entry, or None. A lock-free take on another thread may empty the list
        between any look at it and the pop, so the pop itself is the test."""
        try:
            if not coldest:
                return self.take()
            # The least recently used end: the left for LIFO, the right for FIFO.
            return self.idle.popleft() if self.lifo else self.idle.pop()
        except IndexError:
            return None

    def _idle(self, entry: Entry[T], todo: Todo[T], now: float, *, stamp: bool = True) -> None:
        if stamp:
            entry.idle_since = now
        self.idle.append(entry)
        self._serve(todo, now)

    def _destroy_idle(self, todo: Todo[T], reason: str) -> None:
        while (entry := self._take_idle()) is not None:
            self._destroy(entry, todo, reason)

    def _over_size(self) -> bool:
        """Live beyond ``max_size`` (after a ``resize()`` down): what comes back is retired."""
        return self.max_size is not None and self.size > self.max_size

    def _lent(self) -> list[Entry[T]]:
        """Entries lent right now (live, neither idle nor out for a keepalive check)."""
        idle = {entry.key for entry in self.idle} | self.checking
        lent = []
        for key, ref in self.live.items():
            entry = ref()
            if entry is not None and key not in idle:
                lent.append(entry)
        return lent

    def _keepalive_due(self, entry: Entry[T], now: float) -> bool:
        rules = self.rules
        if rules is None or rules.keepalive is None:
            return False
        return now - max(entry.idle_since, entry.checked_at) >= rules.keepalive

    def _has_room(self) -> bool:
        return self.max_size is None or self.size + self.creating < self.max_size

    def _enqueue(
        self, waiter: Waiter[T], todo: Todo[T], now: float, *, first: bool = False
    ) -> None:
        """Queue *waiter* at the head (*first*) or at its place by ``since`` (usually the
        tail), then look: registered first, looked second, so a lock-free put that missed it
        is served here."""
        waiters = self.waiters
        if first:
            waiters.appendleft(waiter)
        elif not waiters or waiters[-1].since <= waiter.since:
            waiters.append(waiter)
        else:
            place = next(i for i, w in enumerate(waiters) if w.since > waiter.since)
            waiters.insert(place, waiter)
        self._waiters_changed()
        self._look(waiter, todo, now)

    def _look(self, waiter: Waiter[T], todo: Todo[T], now: float) -> None:
        """*waiter*, queued and awake in its own thread, takes what it can: ``outcome`` is its
        grant, or itself to park on. A waiter that is awake needs no wake-up."""
        self._serve(todo, now)
        if waiter.queued and waiter.woken:  # roused: it may take an idle entry itself
            waiter.woken = False
            todo.wake.remove(waiter)
            entry = self._take_idle()
            if entry is not None:
                self.waiters.remove(waiter)
                self._waiters_changed()
                self._served(waiter, entry, now)
        elif waiter.grant is not None and waiter.woken:
            todo.wake.remove(waiter)
        todo.outcome = waiter.grant if waiter.grant is not None else waiter

    def _due(self, now: float) -> bool:
        """Has the oldest waiter waited the whole ``window``? (Call only while some wait.)"""
        return now - self.waiters[0].since >= self.window

    def _overtook(self, now: float) -> None:
        """A newcomer took an idle entry while someone waited (within the window)."""
        self.overtakes += 1
        waited = now - self.waiters[0].since
        if waited > self.overtaken_wait_max:
            self.overtaken_wait_max = waited

    def _serve(self, todo: Todo[T], now: float) -> None:
        """Hand idle entries, then free room, to waiters in arrival order; while no waiter
        is due (see *Fairness*), rouse as many as there are idle entries instead."""
        waiters = self.waiters
        while waiters and self.idle:
            if not self._due(now):
                self._rouse(todo)
                break
            entry = self._take_idle()
            if entry is None:
                break
            self._grant(waiters.popleft(), entry, todo, now)
        while waiters and self._has_room():
            self.creating += 1
            self._grant(waiters.popleft(), CREATE, todo, now)

    def _hand_over(self, entry: Entry[T], todo: Todo[T], now: float) -> None:
        """Grant *entry* to the first waiter (made for it, or it is due); if that waiter had
        been roused, another must be roused in its stead for what is idle."""
        self._grant(self.waiters.popleft(), entry, todo, now)
        self._serve(todo, now)

    def _rouse(self, todo: Todo[T]) -> None:
        """Wake the first ``len(idle)`` waiters (those not woken yet) to compete for the idle
        entries: each then looks (:meth:`look`), and parks again if newcomers were faster."""
        for waiter in itertools.islice(self.waiters, len(self.idle)):
            if not waiter.woken:
                waiter.woken = True
                todo.wake.append(waiter)

    def _waiters_changed(self) -> None:
        """The waiter queue was added to or taken from: the lock-free take refuses exactly
        while someone waits, and the fast put is the bare append only while nobody does."""
        if self.waiters:
            self.take_nowait = self.take_contended
            self.put_fast = None
        else:
            self.take_nowait = self.take
            self.put_fast = self._append if self.trivial_put else None

    def _put_rules_changed(self) -> None:
        """A put is *trivial* (it can only end on the idle list) while the pool is open, not
        shrinking, has no entry of an earlier generation out, and can never hold more idle
        than ``max_idle`` (``max_idle >= max_size``: an entry coming back is live, so the
        idle list is shorter than the size). Then, with nobody waiting, ``put_fast`` is the
        bare append."""
        self.trivial_put = (
            not self.closed
            and not self.shrinking
            and not self.stale_out
            and self.max_size is not None
            and self.idle_cap >= self.max_size
        )
        self._waiters_changed()

    def _grant(
        self, waiter: Waiter[T], grant: Entry[T] | _Token, todo: Todo[T], now: float
    ) -> None:
        """Serve *waiter*, just popped off the head of the queue, and wake it (unless its
        wake-up is signalled already: a roused waiter finds the grant when it looks)."""
        self._waiters_changed()
        self._served(waiter, grant, now)
        self._signal(waiter, todo)

    def _signal(self, waiter: Waiter[T], todo: Todo[T]) -> None:
        """Wake *waiter*, now served, unless its wake-up is signalled already. A dozing
        waiter was not signalled (it sleeps until ``recheck_at``): it is now, so that a grant
        never waits for the end of a doze."""
        if not waiter.woken or waiter.recheck_at is not None:
            waiter.woken = True
            waiter.recheck_at = None
            todo.wake.append(waiter)

    def _served(self, waiter: Waiter[T], grant: Entry[T] | _Token, now: float) -> None:
        """*waiter* (out of the queue now) receives *grant*; count its wait."""
        waited = now - waiter.since
        self.waits += 1
        self.wait_time_total += waited
        if waited > self.wait_time_max:
            self.wait_time_max = waited
        waiter.grant = grant
        waiter.queued = False

    def _destroy(self, entry: Entry[T], todo: Todo[T], reason: str) -> None:
        entry.owner = None  # retired: its end is no loss
        self.retired[reason] += 1
        del self.live[entry.key]
        self.retired_uses += entry.uses
        self.size -= 1
        self.destroyed += 1
        todo.destroy.append(entry)
        if self.shrinking:
            self._update_shrinking()

    def _update_shrinking(self) -> None:
        """After ``resize()`` down, or once live plus reserved slots have fallen back to
        ``max_size`` (a retirement, or a create that produced nothing): ``max_idle`` is 0
        exactly while shrinking."""
        shrinking = self.max_size is not None and self.size + self.creating > self.max_size
        self.max_idle = 0 if shrinking else self.idle_cap
        if shrinking != self.shrinking:
            self.shrinking = shrinking
            self._put_rules_changed()

    def _owe(self, todo: Todo[T]) -> None:
        """Reserve, for the filler, every slot the pool lacks below ``min_size``."""
        if self.closed:
            return
        missing = self.min_size - self.size - self.creating
        if missing > 0:
            self.creating += missing
            self.owed += missing
        if self.owed:
            todo.fill = True

    def _retire(
        self, entry: Entry[T], todo: Todo[T], now: float, reason: str, *, serve: bool = True
    ) -> None:
        """Destroy *entry* for *reason*; its room goes to the filler below ``min_size``, else
        to a waiter."""
        self._destroy(entry, todo, reason)
        if self.closed:
            return
        self._owe(todo)
        if serve:
            self._serve(todo, now)
