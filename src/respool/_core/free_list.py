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

* ``take_nowait`` takes an idle entry only while nobody waits, so a newcomer never barges past
  a waiter: the moves that change the waiter queue swap it between the idle list's own pop and
  a refusal. A lock-free take on another thread may empty the list between any look and the
  pop, so the pop itself is the test (``IndexError``: none idle).
* ``put_nowait`` publishes first and looks second, while :meth:`FreeListCore.request` registers
  a waiter first and looks at the idle list second; whichever runs later sees the other, so an
  idle resource and a waiter coexist only until :meth:`FreeListCore.finish_put` settles them
  (Dekker's handshake).

Every other move is made under the shell's lock.
"""

from __future__ import annotations

import itertools
import sys
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, Final, Generic, TypeVar

from respool._core.backoff import Backoff
from respool.errors import PoolClosed, PoolFull
from respool.stats import PoolStats

T = TypeVar("T")

__all__ = [
    "CLOSED",
    "CREATE",
    "PUT_DONE",
    "PUT_PUBLISHED",
    "PUT_REFUSED",
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
        "created_at",
        "epoch",
        "idle_since",
        "key",
        "owner",
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
        self.uses = 0
        #: The shell to tell if the entry is lost while lent; None once retired.
        self.owner = owner
        #: Where it was acquired, when debug mode recorded it (for the leak report).
        self.trace: object = None

    def __del__(self, _finalizing: Callable[[], bool] = sys.is_finalizing) -> None:
        owner = self.owner
        if owner is None or _finalizing():  # at exit, modules may already be torn down
            return
        pool = owner()
        if pool is not None:
            pool._lost(self)

    def __repr__(self) -> str:
        return f"<Entry #{self.key}>"


Grant = Entry[T] | _Token


class Waiter(Generic[T]):
    """A caller queued in ``acquire``; ``grant`` stays None until the core serves it."""

    __slots__ = ("grant", "handle", "queued", "since")

    def __init__(self, handle: object, since: float) -> None:
        #: The shell's wake-up object (a lock, a future): opaque to the core.
        self.handle = handle
        self.since = since
        self.grant: Entry[T] | _Token | None = None
        #: In the core's queue: neither served nor cancelled yet.
        self.queued = True


class Todo(Generic[T]):
    """What a shell must do, outside its lock, after a core move.

    ``outcome`` answers the move itself (see each method); ``wake`` lists served waiters,
    ``destroy`` entries whose resources must be destroyed, and ``fill`` says that slots are
    owed to the pool's background filler.
    """

    __slots__ = ("destroy", "fill", "outcome", "wake")

    def __init__(self) -> None:
        self.outcome: Entry[T] | Waiter[T] | _Token | None = None
        self.wake: list[Waiter[T]] = []
        self.destroy: list[Entry[T]] = []
        self.fill = False

    def __bool__(self) -> bool:
        """Is there any work to perform? (``outcome`` is an answer, not work.)"""
        return bool(self.wake or self.destroy or self.fill)


class FreeListCore(Generic[T]):
    """Idle list, counts, FIFO waiter queue and create backoff of one free-list pool.

    Invariants (checked by :meth:`check_invariants`; those marked *settled* may be broken
    briefly by a lock-free put, until :meth:`finish_put` runs):

    * ``created - destroyed == size == len(live)`` and ``0 <= len(idle) <= size``;
    * ``0 <= owed <= creating`` and ``max_size is None or size + creating <= max_size``;
    * open: ``size + creating >= min_size`` — a slot below ``min_size`` is always reserved
      (owed to the filler, or being created), so no loss shrinks a pool for good;
    * *settled*: ``waiters`` non-empty implies ``idle`` empty and no room to create — a
      newcomer can never overtake a waiter;
    * *settled*: ``len(idle) <= max_idle``;
    * ``closed`` implies ``waiters`` empty, ``owed == 0`` and, *settled*, ``idle`` empty.
    """

    __slots__ = (
        "backoff",
        "check_failures",
        "closed",
        "create_errors",
        "created",
        "creating",
        "destroy_errors",
        "destroyed",
        "epoch",
        "finish_later",
        "idle",
        "last_create_error",
        "leaks",
        "lifo",
        "live",
        "max_idle",
        "max_size",
        "max_waiting",
        "min_size",
        "name",
        "owed",
        "owner",
        "rejected",
        "reset_errors",
        "retired_uses",
        "size",
        "take",
        "take_nowait",
        "timeouts",
        "wait_time_max",
        "wait_time_total",
        "waiters",
        "waits",
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
    ) -> None:
        self.name = name
        #: The filler keeps at least this many live or reserved (FixedPool: its size).
        self.min_size = min_size
        self.max_size = max_size
        self.max_idle = max_idle
        self.max_waiting = max_waiting
        self.epoch = epoch
        self.lifo = lifo
        #: The shell that lost entries report to (see :class:`Entry`).
        self.owner = owner
        #: Called by :meth:`put_nowait` when a put needs the lock (see there); None: not.
        self.finish_later: Callable[[Entry[T], int], object] | None = None
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
        self.waiters: deque[Waiter[T]] = deque()
        self.closed = False
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
        #: The error of the filler's most recent failed create, while they keep failing: the
        #: cause a waiter's ``PoolTimeout`` carries.
        self.last_create_error: BaseException | None = None
        #: Every live entry, by key, held weakly (see :class:`Entry`). Acquires are not
        #: counted on the lock-free path (a shared counter would need the lock); instead each
        #: acquirer bumps ``uses`` on the entry it now owns alone, summed when stats are read.
        self.live: dict[int, weakref.ref[Entry[T]]] = {}
        self.retired_uses = 0

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
        if self.waiters or self.closed or len(idle) >= self.max_idle or entry.epoch != self.epoch:
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

    def needs_check(self, entry: Entry[T], since: float) -> bool:
        """Must *entry* pass ``check`` before a caller that began acquiring at *since* uses it?

        Not when it was made while the caller was acquiring and never lent since: made by
        the caller itself, or by the filler for it. Checking what was created a moment ago
        proves nothing, and with a check that always fails it would make the caller chase
        each replacement the filler makes, one create per round, for as long as it runs.
        """
        return entry.uses > 0 or entry.created_at < since

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
        """
        if self.closed:
            raise PoolClosed(f"pool {self.name!r} is closed")
        todo: Todo[T] = Todo()
        if not self.waiters:
            entry = self._take_idle()
            if entry is not None:
                todo.outcome = entry
                return todo
            if self._has_room():
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
        self._enqueue(Waiter(handle, now), todo, now, first=False)
        return todo

    def cancel(self, waiter: Waiter[T], *, timed_out: bool) -> Entry[T] | _Token | None:
        """A waiter stops waiting (deadline, interrupt, cancellation); twice is harmless.

        Returns the grant it received before it could cancel (the caller must use it or hand
        it to :meth:`give_back`), or ``None`` when it was still queued and has now left.
        """
        if waiter.queued:
            self.waiters.remove(waiter)
            self._waiters_changed()
            waiter.queued = False
            if timed_out:
                self.timeouts += 1
        return waiter.grant

    def check_failed(self, entry: Entry[T], now: float, handle: object | None) -> Todo[T]:
        """``check`` found the caller's *entry* unviable: destroy it and serve the caller again.

        The caller had been served, so it keeps its place at the head of the line: ``outcome``
        is the next idle entry, ``CREATE`` when the destroyed one's room is free for it, a
        :class:`Waiter` at the head of the queue (when *handle* is given: e.g. FixedPool,
        whose room is owed to the filler and whose replacement will reach this waiter
        first), or ``None``. A closed pool answers ``CLOSED``.
        """
        self.check_failures += 1
        todo: Todo[T] = Todo()
        if entry.epoch != self.epoch:
            raise ValueError(f"{entry!r} belongs to another process")
        self._retire(entry, todo, now, serve=False)
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
            self._enqueue(Waiter(handle, now), todo, now, first=True)
            return todo
        self._serve(todo, now)  # the caller is served: anything left goes to the others
        return todo

    def reset_failed(self, entry: Entry[T], now: float) -> Todo[T]:
        """``reset`` could not clean *entry*: count it and destroy it."""
        self.reset_errors += 1
        return self.discard(entry, now)

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
        if self.waiters and not self.closed:
            self._grant(self.waiters.popleft(), entry, todo, now)
        elif self.closed or len(self.idle) >= self.max_idle:
            self._retire(entry, todo, now)
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
        self.create_errors += 1
        self.last_create_error = error
        self.backoff.failed(now, error)
        todo: Todo[T] = Todo()
        self._owe(todo)
        self._serve(todo, now)
        return todo

    def release(self, entry: Entry[T], now: float) -> Todo[T]:
        """A clean entry comes back: to the first waiter, the idle list, or destruction."""
        todo: Todo[T] = Todo()
        if entry.epoch != self.epoch:
            return todo  # the parent's resource, seen in a forked child: not ours to touch
        if self.closed or (not self.waiters and len(self.idle) >= self.max_idle):
            self._retire(entry, todo, now)
            return todo
        if self.waiters:
            self._grant(self.waiters.popleft(), entry, todo, now)
        else:
            self._idle(entry, todo, now)
        return todo

    def discard(self, entry: Entry[T], now: float) -> Todo[T]:
        """An entry must be destroyed (failed reset, abort, explicit discard)."""
        todo: Todo[T] = Todo()
        if entry.epoch == self.epoch:
            self._retire(entry, todo, now)
        return todo

    def leaked(self, entry: Entry[T], now: float) -> Todo[T]:
        """A lease was lost without being ended (its entry was garbage-collected): destroy
        the resource, since nobody knows what state it was left in, and count a leak.

        An entry already retired, or of another process, is ignored.
        """
        todo: Todo[T] = Todo()
        if entry.epoch == self.epoch and entry.key in self.live:
            self.leaks += 1
            self._retire(entry, todo, now)
        return todo

    def settle(self, now: float) -> Todo[T]:
        """Restore the *settled* invariants after lock-free puts raced with other moves."""
        todo: Todo[T] = Todo()
        if self.closed:
            self._destroy_idle(todo)
            return todo
        self._serve(todo, now)
        while len(self.idle) > self.max_idle:
            surplus = self._take_idle(coldest=True)
            if surplus is None:
                break
            self._retire(surplus, todo, now)
        return todo

    def forked(self) -> FreeListCore[T]:
        """The core a forked child starts with: the same settings, the next epoch, and
        nothing live. Entries of this core are foreign to it (see :meth:`foreign`)."""
        child: FreeListCore[T] = FreeListCore(
            name=self.name,
            min_size=self.min_size,
            max_size=self.max_size,
            max_idle=self.max_idle,
            max_waiting=self.max_waiting,
            lifo=self.lifo,
            epoch=self.epoch + 1,
            owner=self.owner,
            backoff=Backoff(base=self.backoff.base, cap=self.backoff.cap),
        )
        # The parent's entries still lent here are the parent's: losing one is no leak here.
        for ref in self.live.values():
            entry = ref()
            if entry is not None:
                entry.owner = None
        child.closed = self.closed
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
        self.creating -= self.owed
        self.owed = 0
        while self.waiters:
            waiter = self.waiters.popleft()
            self._waiters_changed()
            waiter.grant = CLOSED
            waiter.queued = False
            todo.wake.append(waiter)
        self._destroy_idle(todo)
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
        if self.max_size is not None:
            assert self.size + self.creating <= self.max_size
        assert (self.take_nowait is _refuse) == bool(self.waiters)
        if self.closed:
            assert not self.waiters
            assert self.owed == 0
        else:
            assert self.size + self.creating >= self.min_size, (
                self.size,
                self.creating,
                self.min_size,
            )
        if settled:
            assert len(self.idle) <= self.max_idle
            if self.waiters:
                assert not self.idle
                assert not self._has_room()
            if self.closed:
                assert not self.idle

    # -- internals ------------------------------------------------------------------------

    def _new_entry(self, resource: T, now: float) -> Entry[T]:
        self.size += 1
        self.created += 1
        entry = Entry(resource, self.epoch, now, self.owner)
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

    def _idle(self, entry: Entry[T], todo: Todo[T], now: float) -> None:
        entry.idle_since = now
        self.idle.append(entry)
        self._serve(todo, now)

    def _destroy_idle(self, todo: Todo[T]) -> None:
        while (entry := self._take_idle()) is not None:
            self._destroy(entry, todo)

    def _has_room(self) -> bool:
        return self.max_size is None or self.size + self.creating < self.max_size

    def _enqueue(self, waiter: Waiter[T], todo: Todo[T], now: float, *, first: bool) -> None:
        """Queue *waiter* (at the head: *first*), then serve: registered first, looked second,
        so a lock-free put that missed it is served here. ``outcome``: its grant, or itself."""
        if first:
            self.waiters.appendleft(waiter)
        else:
            self.waiters.append(waiter)
        self._waiters_changed()
        self._serve(todo, now)
        if waiter.grant is not None:
            todo.wake.remove(waiter)
            todo.outcome = waiter.grant
        else:
            todo.outcome = waiter

    def _serve(self, todo: Todo[T], now: float) -> None:
        """Hand idle entries, then free room, to waiters in arrival order."""
        waiters = self.waiters
        while waiters:
            entry = self._take_idle()
            if entry is None:
                break
            self._grant(waiters.popleft(), entry, todo, now)
        while waiters and self._has_room():
            self.creating += 1
            self._grant(waiters.popleft(), CREATE, todo, now)

    def _waiters_changed(self) -> None:
        """The waiter queue was added to or taken from: the lock-free take refuses exactly
        while someone waits."""
        self.take_nowait = _refuse if self.waiters else self.take

    def _grant(
        self, waiter: Waiter[T], grant: Entry[T] | _Token, todo: Todo[T], now: float
    ) -> None:
        """Serve *waiter*, just popped off the head of the queue."""
        self._waiters_changed()
        waited = now - waiter.since
        self.waits += 1
        self.wait_time_total += waited
        if waited > self.wait_time_max:
            self.wait_time_max = waited
        waiter.grant = grant
        waiter.queued = False
        todo.wake.append(waiter)

    def _destroy(self, entry: Entry[T], todo: Todo[T]) -> None:
        entry.owner = None  # retired: its end is no loss
        del self.live[entry.key]
        self.retired_uses += entry.uses
        self.size -= 1
        self.destroyed += 1
        todo.destroy.append(entry)

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

    def _retire(self, entry: Entry[T], todo: Todo[T], now: float, *, serve: bool = True) -> None:
        """Destroy *entry*; its room goes to the filler below ``min_size``, else to a waiter."""
        self._destroy(entry, todo)
        if self.closed:
            return
        self._owe(todo)
        if serve:
            self._serve(todo, now)
