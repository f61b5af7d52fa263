"""The state machine behind ``FixedPool`` and ``ElasticPool`` (and their asyncio twins).

The core owns the idle resources, the live and reserved counts, the waiter queue and the
lifetime counters. Its methods are the only code that changes them; each method either raises
(changing nothing) or performs one legal move and returns a :class:`Todo` naming the work to do
outside the shell's lock: waiters to wake, resources to destroy, replacements to create.

Hot path protocol
-----------------
Uncontended ``acquire``/``release`` must cost about as much as a bare locked ``deque`` pop and
append, so a threaded shell may make two moves **without** its lock, relying on ``deque.pop``,
``deque.popleft`` and ``deque.append`` being atomic (under the GIL, and per object on
free-threaded builds):

* take: if ``waiters`` is empty, ``take()`` an idle entry (``IndexError``: none left, go
  slow) and bump its ``uses``. A caller that sees someone waiting never takes, so a newcomer
  never barges past a waiter.
* put: if nobody waits, the pool is open, the idle list has room and the entry is of this
  generation, ``idle.append(entry)``; then look again, and if a waiter, a close or a surplus
  appeared meanwhile, call :meth:`FreeListCore.settle` under the lock. Otherwise call
  :meth:`FreeListCore.release` under the lock.

The put side publishes first and looks second, while :meth:`FreeListCore.request` registers a
waiter first and looks at the idle list second; whichever runs later sees the other, so an
idle resource and a waiter can coexist only until one of them settles (Dekker's handshake).
Every other move is made under the lock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Final, Generic, TypeVar

from respool.errors import PoolClosed, PoolFull
from respool.stats import PoolStats

T = TypeVar("T")

__all__ = [
    "CLOSED",
    "CREATE",
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


class Entry(Generic[T]):
    """One live resource and the bookkeeping the pool keeps about it."""

    __slots__ = ("created_at", "generation", "idle_since", "resource", "uses")

    def __init__(self, resource: T, generation: int, now: float) -> None:
        self.resource = resource
        #: The core generation that created it; another generation never reuses it (fork).
        self.generation = generation
        self.created_at = now
        self.idle_since = now
        self.uses = 0

    def __repr__(self) -> str:
        return f"<Entry {self.resource!r}>"


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
    ``destroy`` entries whose resources must be destroyed, and ``create`` how many
    replacements the caller should create (each through ``filled`` then ``release``).
    """

    __slots__ = ("create", "destroy", "outcome", "wake")

    def __init__(self) -> None:
        self.outcome: Entry[T] | Waiter[T] | _Token | None = None
        self.wake: list[Waiter[T]] = []
        self.destroy: list[Entry[T]] = []
        self.create = 0

    def __bool__(self) -> bool:
        """Is there any work to perform? (``outcome`` is an answer, not work.)"""
        return bool(self.wake or self.destroy or self.create)


class FreeListCore(Generic[T]):
    """Idle list, counts and FIFO waiter queue of one free-list pool.

    Invariants (checked by :meth:`check_invariants`; those marked *settled* may be broken
    briefly by a lock-free put, until :meth:`settle` runs):

    * ``created - destroyed == size`` and ``0 <= len(idle) <= size``;
    * ``max_size is None or size + creating <= max_size``;
    * *settled*: ``waiters`` non-empty implies ``idle`` empty and no room to create — a
      newcomer can never overtake a waiter;
    * *settled*: ``len(idle) <= max_idle``;
    * ``closed`` implies ``waiters`` empty and, *settled*, ``idle`` empty.
    """

    __slots__ = (
        "check_failures",
        "closed",
        "create_errors",
        "created",
        "creating",
        "destroy_errors",
        "destroyed",
        "generation",
        "idle",
        "leaks",
        "lifo",
        "live",
        "max_idle",
        "max_size",
        "max_waiting",
        "min_size",
        "name",
        "rejected",
        "reset_errors",
        "retired_uses",
        "size",
        "take",
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
        generation: int = 0,
    ) -> None:
        self.name = name
        #: Replace destroyed resources while fewer than this many are live (FixedPool).
        self.min_size = min_size
        self.max_size = max_size
        self.max_idle = max_idle
        self.max_waiting = max_waiting
        self.generation = generation
        self.lifo = lifo

        self.idle: deque[Entry[T]] = deque()
        #: Lock-free take; the most recently returned entry first for LIFO.
        self.take: Callable[[], Entry[T]] = self.idle.pop if lifo else self.idle.popleft
        self.waiters: deque[Waiter[T]] = deque()
        self.closed = False
        #: Live resources (idle + in use).
        self.size = 0
        #: Slots reserved for resources being created.
        self.creating = 0

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
        #: Every live entry, idle or in use. Acquires are not counted on the lock-free path
        #: (a shared counter would need the lock); instead each acquirer bumps ``uses`` on the
        #: entry it now owns alone, and the total is summed when stats are read.
        self.live: set[Entry[T]] = set()
        self.retired_uses = 0

    # -- moves (call with the shell's lock held) ----------------------------------------

    def request(self, now: float, handle: object | None) -> Todo[T]:
        """A caller wants a resource.

        ``outcome`` is an idle :class:`Entry` (now in use), ``CREATE`` (a slot is reserved for
        the caller), a :class:`Waiter` to park on (when *handle* is given), or ``None`` when
        nothing is available and the caller will not wait. Raises ``PoolClosed``, or
        ``PoolFull`` when ``max_waiting`` callers already wait.
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
        if handle is None:
            return todo
        if self.max_waiting is not None and len(self.waiters) >= self.max_waiting:
            self.rejected += 1
            raise PoolFull(
                f"pool {self.name!r} already has {len(self.waiters)} callers waiting"
                f" (max_waiting={self.max_waiting})"
            )
        waiter: Waiter[T] = Waiter(handle, now)
        self.waiters.append(waiter)
        # Registered first, looked second: a lock-free put that missed us is served here.
        self._serve(todo, now)
        if waiter.grant is not None:
            todo.wake.remove(waiter)
            todo.outcome = waiter.grant
        else:
            todo.outcome = waiter
        return todo

    def cancel(self, waiter: Waiter[T], *, timed_out: bool) -> Entry[T] | _Token | None:
        """A waiter stops waiting (deadline, interrupt, cancellation); twice is harmless.

        Returns the grant it received before it could cancel (the caller must use it or hand
        it to :meth:`give_back`), or ``None`` when it was still queued and has now left.
        """
        if waiter.queued:
            self.waiters.remove(waiter)
            waiter.queued = False
            if timed_out:
                self.timeouts += 1
        return waiter.grant

    def check_failed(self, entry: Entry[T], now: float) -> Todo[T]:
        """``check`` found *entry* unviable: count it and destroy it."""
        self.check_failures += 1
        return self.discard(entry, now)

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
        """A reserved slot now holds a live *resource*, in use by whoever created it."""
        assert self.creating > 0, "filled() without a reserved slot"
        self.creating -= 1
        self.size += 1
        self.created += 1
        entry = Entry(resource, self.generation, now)
        self.live.add(entry)
        return entry

    def stock(self, resource: T, now: float) -> Todo[T]:
        """A slot reserved for the pool itself (priming, a replacement) now holds *resource*:
        it goes to the first waiter, or to the idle list."""
        return self.release(self.filled(resource, now), now)

    def create_failed(self, now: float, *, error: bool = True) -> Todo[T]:
        """A reserved slot produced nothing; its room goes to the first waiter, if any.

        It does not ask for a replacement: a ``create`` that keeps failing must not loop.
        """
        assert self.creating > 0, "create_failed() without a reserved slot"
        self.creating -= 1
        if error:
            self.create_errors += 1
        todo: Todo[T] = Todo()
        self._serve(todo, now)
        return todo

    def release(self, entry: Entry[T], now: float) -> Todo[T]:
        """A clean entry comes back: to the first waiter, the idle list, or destruction."""
        todo: Todo[T] = Todo()
        if entry.generation != self.generation:
            return todo  # the parent's resource, seen in a forked child: not ours to touch
        if self.closed or (not self.waiters and len(self.idle) >= self.max_idle):
            self._retire(entry, todo, now)
            return todo
        entry.idle_since = now
        self.idle.append(entry)
        self._serve(todo, now)
        return todo

    def discard(self, entry: Entry[T], now: float) -> Todo[T]:
        """An entry must be destroyed (failed check or reset, abort, explicit discard)."""
        todo: Todo[T] = Todo()
        if entry.generation == self.generation:
            self._retire(entry, todo, now)
        return todo

    def leaked(self, entry: Entry[T], now: float) -> Todo[T]:
        """A lease was lost without being ended (debug mode saw it collected): destroy the
        entry, since nobody knows what state it was left in, and count a leak."""
        todo: Todo[T] = Todo()
        if entry in self.idle:
            raise ValueError(f"{entry!r} is idle, not leased: it cannot have leaked")
        if entry.generation == self.generation and entry in self.live:
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
            self._retire(surplus, todo, now, replace=False)
        return todo

    def fill(self) -> int:
        """Reserve the slots needed to bring the pool up to ``min_size``; return their count."""
        return self.reserve(self.min_size - self.size - self.creating)

    def reserve(self, count: int) -> int:
        """Reserve up to *count* slots for the caller to create (priming); return how many.

        Each reserved slot ends in ``filled`` (then ``release``) or ``create_failed``.
        """
        if self.closed or count <= 0:
            return 0
        if self.max_size is not None:
            count = min(count, self.max_size - self.size - self.creating)
        count = max(count, 0)
        self.creating += count
        return count

    def forked(self) -> FreeListCore[T]:
        """The core a forked child starts with: the same settings, the next generation, and
        nothing live. Entries of this core are foreign to it (see :meth:`release`)."""
        child: FreeListCore[T] = FreeListCore(
            name=self.name,
            min_size=self.min_size,
            max_size=self.max_size,
            max_idle=self.max_idle,
            max_waiting=self.max_waiting,
            lifo=self.lifo,
            generation=self.generation + 1,
        )
        child.closed = self.closed
        return child

    def close(self) -> Todo[T]:
        """Refuse new callers, release the waiting ones with ``CLOSED``, destroy idle entries.

        Idempotent. Entries in use are destroyed when they come back.
        """
        todo: Todo[T] = Todo()
        if self.closed:
            return todo
        self.closed = True
        while self.waiters:
            waiter = self.waiters.popleft()
            waiter.grant = CLOSED
            waiter.queued = False
            todo.wake.append(waiter)
        self._destroy_idle(todo)
        return todo

    # -- counters the shell reports ------------------------------------------------------

    def acquires(self) -> int:
        """Successful acquires so far (call with the lock held)."""
        return self.retired_uses + sum(entry.uses for entry in self.live)

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

    def check_invariants(self, *, settled: bool = True) -> None:
        """Assert the invariants in the class docstring (tests call this at quiescent points)."""
        assert self.created - self.destroyed == self.size == len(self.live), (
            self.created,
            self.destroyed,
            len(self.live),
        )
        assert 0 <= len(self.idle) <= self.size, (len(self.idle), self.size)
        assert self.creating >= 0
        if self.max_size is not None:
            assert self.size + self.creating <= self.max_size
        if self.closed:
            assert not self.waiters
        if settled:
            assert len(self.idle) <= self.max_idle
            if self.waiters:
                assert not self.idle
                assert not self._has_room()
            if self.closed:
                assert not self.idle

    # -- internals ------------------------------------------------------------------------

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

    def _destroy_idle(self, todo: Todo[T]) -> None:
        while (entry := self._take_idle()) is not None:
            self._destroy(entry, todo)

    def _has_room(self) -> bool:
        return self.max_size is None or self.size + self.creating < self.max_size

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

    def _grant(
        self, waiter: Waiter[T], grant: Entry[T] | _Token, todo: Todo[T], now: float
    ) -> None:
        waited = now - waiter.since
        self.waits += 1
        self.wait_time_total += waited
        if waited > self.wait_time_max:
            self.wait_time_max = waited
        waiter.grant = grant
        waiter.queued = False
        todo.wake.append(waiter)

    def _destroy(self, entry: Entry[T], todo: Todo[T]) -> None:
        self.live.remove(entry)
        self.retired_uses += entry.uses
        self.size -= 1
        self.destroyed += 1
        todo.destroy.append(entry)

    def _retire(self, entry: Entry[T], todo: Todo[T], now: float, *, replace: bool = True) -> None:
        """Destroy *entry*; its room goes to a waiter, or to a replacement below min_size."""
        self._destroy(entry, todo)
        if self.closed:
            return
        self._serve(todo, now)
        if replace:
            todo.create += self.fill()
