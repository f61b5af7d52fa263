"""Admission to a worker pool's queue: who gets in, who waits, who is refused.

A worker pool accepts tasks into a bounded FIFO (``max_pending``), lets submitters wait for
room in arrival order (or refuses them), frees the slot of a queued task whose future was
cancelled (a *ghost*: it will never run), and refuses everyone once closed. This module owns
those decisions and the counts behind them; it never blocks, sleeps or touches a thread.

The shell (threaded or asyncio) keeps the *transport*, the queue workers actually block on,
and one lock. Under that lock it calls a move here and performs what the move answers:

* :meth:`Admission.submit_nowait` / :meth:`Admission.wait`: admitted tickets must be put on
  the transport before the lock is released, so that the transport's order is the order of
  admission (and every task precedes the stop markers a closing shell puts after it);
* moves that free a slot (:meth:`~Admission.taken`, :meth:`~Admission.cancelled`,
  :meth:`~Admission.purge`) return the waiters admitted into it, oldest first: the shell
  puts their tickets on the transport (still under the lock) and then wakes their handles;
* :meth:`~Admission.close` returns the waiters to wake with a refusal.

Why a worker reports every take under the lock: the bound is ``queued - ghosts``, and a take
of a ghost changes both. If the transport's own length stood for ``queued`` (it shrinks the
instant a worker dequeues) while the ghost count changed a moment later, a submit in between
would see one slot too many. Counting both here, in one move, closes that window; it also
makes the publish-then-look handshake a lock-free take needed unnecessary.

An *unbounded* queue (``max_pending=None``) has no bound to keep exact and never has waiters,
so its shell may skip reporting takes (a lock per task saved on the round trip's critical
path) and install no cancel hook; ``queued`` then counts tickets admitted and not purged, and
the transport's own length is the exact figure. A bounded queue must report every take.

A *ticket* is the shell's task record; the core only reads and writes its ``admission``
field (one of the ticket states below), so the shell needs no second object per task.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Final, Generic, Protocol, TypeVar

from respool.errors import PoolClosed

__all__ = [
    "ADMITTED",
    "CLOSED",
    "GHOST",
    "LEFT",
    "QUEUED",
    "REFUSED",
    "TAKEN",
    "WAITING",
    "Admission",
    "Ticket",
    "Waiter",
]

# Ticket states (``Ticket.admission``).
#: In the line of waiting submitters; not on the transport.
WAITING: Final = 0
#: On the transport, counted against ``max_pending``.
QUEUED: Final = 1
#: On the transport but cancelled: it will never run and takes no slot.
GHOST: Final = 2
#: Off the transport (a worker took it, or a shutdown pulled it to cancel it).
TAKEN: Final = 3
#: Never admitted: its submitter left the line, or the pool closed while it waited.
REFUSED: Final = 4

# Waiter states (``Waiter.state``); a waiter still in line is ``WAITING``, like its ticket.
#: The ticket was admitted: the shell put it on the transport.
ADMITTED: Final = 1
#: The pool closed while it waited: the submitter gets ``PoolClosed``.
CLOSED: Final = 2
#: The submitter left the line (deadline, interrupt) before being served.
LEFT: Final = 3

_NOBODY: Final[tuple[()]] = ()


class Ticket(Protocol):
    """The shell's record of one task; the core reads and writes only ``admission``."""

    admission: int


K = TypeVar("K", bound=Ticket)


class Waiter(Generic[K]):
    """A submitter waiting for room; the core admits its ticket for it, in arrival order."""

    __slots__ = ("handle", "since", "state", "ticket")

    def __init__(self, ticket: K, handle: object, since: float) -> None:
        self.ticket = ticket
        #: The shell's wake-up object (a lock, an asyncio future): opaque here.
        self.handle = handle
        self.since = since
        self.state = WAITING

    def __repr__(self) -> str:
        names = {WAITING: "waiting", ADMITTED: "admitted", CLOSED: "closed", LEFT: "left"}
        return f"<Waiter {names[self.state]}>"


class Admission(Generic[K]):
    """The bounded FIFO's counts, the line of waiting submitters, and the closed flag.

    Invariants (asserted by :meth:`check_invariants`, true after every move):

    * ``0 <= ghosts <= queued``, and ``queued - ghosts <= max_pending`` when bounded;
    * ``admitted == taken + purged + queued``: every admitted ticket is on the transport or
      was taken off it exactly once;
    * ``waiters`` non-empty implies the queue is full (``queued - ghosts >= max_pending``) —
      every move that frees a slot admits the oldest waiter first, so a newcomer can never
      overtake a submitter already waiting;
    * every waiter in line is ``WAITING`` and so is its ticket;
    * ``closed`` implies nobody waits (and no move admits anything any more).
    """

    __slots__ = (
        "admitted",
        "closed",
        "closed_reason",
        "ghosts",
        "max_pending",
        "name",
        "purged",
        "queued",
        "rejected",
        "taken_count",
        "timeouts",
        "waiters",
    )

    def __init__(self, *, name: str, max_pending: int | None) -> None:
        if max_pending is not None and max_pending < 1:
            raise ValueError(f"max_pending must be at least 1 or None, got {max_pending!r}")
        self.name = name
        self.max_pending = max_pending
        #: Tickets on the transport, ghosts included.
        self.queued = 0
        #: Tickets on the transport whose future was cancelled.
        self.ghosts = 0
        self.waiters: deque[Waiter[K]] = deque()
        self.closed = False
        #: Why submits are refused, once closed (completes "pool 'x' ...").
        self.closed_reason = "was shut down"

        #: Tickets admitted (futures handed out), taken by a worker, pulled off to be
        #: cancelled; submits refused at once (``PoolFull``) or after waiting (``PoolTimeout``).
        self.admitted = 0
        self.taken_count = 0
        self.purged = 0
        self.rejected = 0
        self.timeouts = 0

    # -- submitting -------------------------------------------------------------------------

    def submit_nowait(self, ticket: K) -> bool:
        """Admit *ticket* if nobody waits and there is room.

        True: it is admitted, put it on the transport now. False: no room (or someone waits
        ahead); nothing changed, the caller may :meth:`wait`, :meth:`reject` or give up.
        Raises ``PoolClosed`` (changing nothing) once closed.
        """
        # The hot path of every submit: the helpers are written out here, not called.
        if self.closed:
            raise PoolClosed(f"pool {self.name!r} {self.closed_reason}")
        if self.waiters:
            return False
        bound = self.max_pending
        if bound is not None and self.queued - self.ghosts >= bound:
            return False
        ticket.admission = QUEUED
        self.queued += 1
        self.admitted += 1
        return True

    def reject(self, *, timed_out: bool = False) -> None:
        """A submit that found no room will not wait: count it (``PoolFull`` or, when it may
        not wait at all, ``PoolTimeout``)."""
        if timed_out:
            self.timeouts += 1
        else:
            self.rejected += 1

    def wait(self, ticket: K, handle: object, now: float) -> Waiter[K]:
        """Admit *ticket* now if nobody waits and there is room, else join the line.

        The waiter returned is ``ADMITTED`` (put the ticket on the transport now, do not
        block) or ``WAITING`` (block on *handle* until a move returns this waiter).
        Raises ``PoolClosed`` (changing nothing) once closed.
        """
        if self.closed:
            raise PoolClosed(f"pool {self.name!r} {self.closed_reason}")
        if ticket.admission != WAITING:
            raise ValueError(f"ticket already handled (state {ticket.admission})")
        waiter: Waiter[K] = Waiter(ticket, handle, now)
        if not self.waiters and self._has_room():
            self._admit(ticket)
            waiter.state = ADMITTED
        else:
            self.waiters.append(waiter)
        return waiter

    def withdraw(self, waiter: Waiter[K], *, timed_out: bool) -> int:
        """The submitter stops waiting (its deadline passed, or it was interrupted).

        Returns the waiter's final state: ``LEFT`` (it was still in line and has left; its
        ticket is ``REFUSED``), ``ADMITTED`` (served first: its ticket is queued, and
        cancelling its future makes it a ghost) or ``CLOSED`` (refused first: its ticket
        was never queued). Calling it again is harmless.
        """
        if waiter.state == WAITING:
            self.waiters.remove(waiter)
            waiter.state = LEFT
            waiter.ticket.admission = REFUSED
            if timed_out:
                self.timeouts += 1
        return waiter.state

    # -- tickets leaving the queue ----------------------------------------------------------

    def taken(self, ticket: K) -> Sequence[Waiter[K]]:
        """A worker took *ticket* off the transport; return the waiters admitted into the
        slot it freed (put their tickets on the transport, then wake them).

        Raises ``ValueError`` (changing nothing) if *ticket* is not on the transport.
        """
        # The hot path of every task: ``_unqueue`` is written out here, not called.
        state = ticket.admission
        if state != QUEUED:
            if state != GHOST:
                raise ValueError(f"ticket is not on the transport (state {state})")
            self.ghosts -= 1
        ticket.admission = TAKEN
        self.queued -= 1
        self.taken_count += 1
        if self.waiters:
            return self._serve()
        return _NOBODY

    def purge(self, ticket: K) -> Sequence[Waiter[K]]:
        """The shell pulled *ticket* off the transport to cancel it (a shutdown with
        ``cancel_pending``); as :meth:`taken`, but counted in ``purged``."""
        self._unqueue(ticket)
        self.purged += 1
        return self._serve()

    def cancelled(self, ticket: K) -> Sequence[Waiter[K]]:
        """*ticket*'s future was cancelled. Still queued: it becomes a ghost and frees its
        slot (return the waiters admitted into it). Taken, already a ghost, or refused:
        nothing changes.

        Raises ``ValueError`` for a ticket still ``WAITING``: its submitter must
        :meth:`withdraw` first (nobody else holds its future yet).
        """
        state = ticket.admission
        if state == QUEUED:
            ticket.admission = GHOST
            self.ghosts += 1
            return self._serve()
        if state == WAITING:
            raise ValueError("a waiting ticket is cancelled only after its waiter withdraws")
        return _NOBODY

    # -- closing ----------------------------------------------------------------------------

    def close(self, reason: str) -> Sequence[Waiter[K]]:
        """Refuse every submit from now on; return the waiters to wake (each ``CLOSED``, its
        ticket ``REFUSED``). Idempotent; the first reason stays."""
        if not self.closed:
            self.closed = True
            self.closed_reason = reason
        refused: list[Waiter[K]] = []
        while self.waiters:
            waiter = self.waiters.popleft()
            waiter.state = CLOSED
            waiter.ticket.admission = REFUSED
            refused.append(waiter)
        return refused

    # -- figures ----------------------------------------------------------------------------

    @property
    def live(self) -> int:
        """Tickets queued that will run (or be cancelled by a shutdown): ghosts excluded."""
        return self.queued - self.ghosts

    @property
    def waiting(self) -> int:
        """Submitters in line right now."""
        return len(self.waiters)

    def check_invariants(self) -> None:
        """Assert the invariants in the class docstring."""
        assert 0 <= self.ghosts <= self.queued, (self.ghosts, self.queued)
        full = self.max_pending is not None and self.live >= self.max_pending
        if self.max_pending is not None:
            assert self.live <= self.max_pending, (self.live, self.max_pending)
        assert self.admitted == self.taken_count + self.purged + self.queued, (
            self.admitted,
            self.taken_count,
            self.purged,
            self.queued,
        )
        if self.waiters:
            assert full, "a submitter waits while there is room"
            assert not self.closed, "a submitter waits in a closed pool"
        for waiter in self.waiters:
            assert waiter.state == WAITING, waiter
            assert waiter.ticket.admission == WAITING, waiter

    # -- internals ----------------------------------------------------------------------------

    def _has_room(self) -> bool:
        return self.max_pending is None or self.queued - self.ghosts < self.max_pending

    def _admit(self, ticket: K) -> None:
        ticket.admission = QUEUED
        self.queued += 1
        self.admitted += 1

    def _unqueue(self, ticket: K) -> None:
        state = ticket.admission
        if state == GHOST:
            self.ghosts -= 1
        elif state != QUEUED:
            raise ValueError(f"ticket is not on the transport (state {state})")
        ticket.admission = TAKEN
        self.queued -= 1

    def _serve(self) -> Sequence[Waiter[K]]:
        """Admit waiting submitters, oldest first, while there is room."""
        waiters = self.waiters
        if not waiters or self.closed or not self._has_room():
            return _NOBODY
        served: list[Waiter[K]] = []
        while waiters and self._has_room():
            waiter = waiters.popleft()
            self._admit(waiter.ticket)
            waiter.state = ADMITTED
            served.append(waiter)
        return served
