"""The admission core of worker pools: unit tests, then a stateful test of random moves.

The stateful machine plays the threaded shell exactly: it calls the same moves in the same
order (``submit_nowait`` then ``wait``; ``taken`` for every task a worker dequeues, putting the
tickets of the waiters served on its model of the transport; ``withdraw`` then ``cancelled``
for an interrupted submitter; ``close``; ``purge`` for a shutdown that cancels the queue), and
checks from outside that the transport, the line of waiters and the counts agree.
"""

from __future__ import annotations

import itertools
from collections import deque

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from respool._core.admission import (
    ADMITTED,
    CLOSED,
    GHOST,
    LEFT,
    QUEUED,
    REFUSED,
    TAKEN,
    WAITING,
    Admission,
    Waiter,
)
from respool.errors import PoolClosed


class Ticket:
    """A stand-in for the shell's task: a number, and the field the core owns."""

    __slots__ = ("admission", "n")

    def __init__(self, n: int) -> None:
        self.n = n
        self.admission = WAITING

    def __repr__(self) -> str:
        return f"T{self.n}"


def full_queue(max_pending: int) -> tuple[Admission[Ticket], list[Ticket]]:
    """A core whose queue holds *max_pending* tickets, and those tickets."""
    core: Admission[Ticket] = Admission(name="t", max_pending=max_pending)
    tickets = [Ticket(n) for n in range(max_pending)]
    assert all(core.submit_nowait(t) for t in tickets)
    return core, tickets


# -- unit tests --------------------------------------------------------------------------------


def test_unbounded_queue_admits_until_closed() -> None:
    """Without max_pending every submit is admitted; once closed, each raises PoolClosed."""
    core: Admission[Ticket] = Admission(name="t", max_pending=None)
    tickets = [Ticket(n) for n in range(100)]
    assert all(core.submit_nowait(t) for t in tickets)
    assert (core.queued, core.admitted) == (100, 100)
    core.close("was shut down")
    with pytest.raises(PoolClosed, match="was shut down"):
        core.submit_nowait(Ticket(100))
    assert core.admitted == 100
    core.check_invariants()


def test_full_queue_refuses_submit_nowait_and_changes_nothing() -> None:
    """submit_nowait on a full queue answers False and leaves every count as it was."""
    core, _ = full_queue(2)
    late = Ticket(9)
    assert core.submit_nowait(late) is False
    assert (late.admission, core.queued, core.admitted) == (WAITING, 2, 2)
    core.check_invariants()


def test_reject_counts_pool_full_or_timeout() -> None:
    """reject() counts a refusal as rejected, or as a timeout when told so."""
    core, _ = full_queue(1)
    core.reject()
    core.reject(timed_out=True)
    assert (core.rejected, core.timeouts) == (1, 1)


def test_waiters_are_admitted_in_arrival_order_as_slots_free() -> None:
    """Each take admits the oldest waiter; a newcomer never overtakes the line."""
    core, tickets = full_queue(1)
    waiters = [core.wait(Ticket(n), handle=n, now=0.0) for n in (1, 2)]
    assert [w.state for w in waiters] == [WAITING, WAITING]
    assert core.submit_nowait(Ticket(3)) is False  # someone waits: no barging
    served = core.taken(tickets[0])
    assert list(served) == [waiters[0]] and waiters[0].state == ADMITTED
    assert waiters[0].ticket.admission == QUEUED
    assert core.waiting == 1
    assert list(core.taken(waiters[0].ticket)) == [waiters[1]]
    core.check_invariants()


def test_wait_with_room_admits_at_once() -> None:
    """wait() on a queue with room admits the ticket: the submitter must not block."""
    core: Admission[Ticket] = Admission(name="t", max_pending=1)
    waiter = core.wait(Ticket(0), handle=None, now=0.0)
    assert waiter.state == ADMITTED and core.waiting == 0


def test_cancelling_a_queued_ticket_frees_its_slot_for_the_first_waiter() -> None:
    """A cancelled queued ticket becomes a ghost; its slot goes to the oldest waiter."""
    core, tickets = full_queue(2)
    waiter = core.wait(Ticket(5), handle=None, now=0.0)
    assert list(core.cancelled(tickets[0])) == [waiter]
    assert (tickets[0].admission, core.ghosts, core.live) == (GHOST, 1, 2)
    assert core.cancelled(tickets[0]) == ()  # twice: nothing more
    core.check_invariants()


def test_taking_a_ghost_frees_no_extra_slot() -> None:
    """Queue [a (cancelled), b, c] with max_pending=2: taking a leaves the queue full."""
    core, (a, _) = full_queue(2)
    core.cancelled(a)
    c = Ticket(2)
    assert core.submit_nowait(c)
    assert core.live == 2
    assert core.taken(a) == ()
    assert core.submit_nowait(Ticket(3)) is False
    assert (core.queued, core.ghosts, core.live) == (2, 0, 2)
    core.check_invariants()


def test_cancel_after_take_is_not_a_ghost() -> None:
    """A ticket cancelled after a worker took it changes no count."""
    core, (a,) = full_queue(1)
    core.taken(a)
    assert core.cancelled(a) == ()
    assert (a.admission, core.ghosts, core.queued) == (TAKEN, 0, 0)


def test_taking_a_ticket_not_on_the_transport_raises_and_changes_nothing() -> None:
    """taken()/purge() of a ticket never queued, or taken already: ValueError, no change."""
    core, (a,) = full_queue(1)
    core.taken(a)
    for ticket in (a, Ticket(7)):
        for move in (core.taken, core.purge):
            with pytest.raises(ValueError, match="not on the transport"):
                move(ticket)
    assert (core.queued, core.taken_count, core.purged) == (0, 1, 0)
    core.check_invariants()


def test_cancelling_a_waiting_ticket_is_refused() -> None:
    """A ticket still in line is cancelled only after its submitter withdraws."""
    core, _ = full_queue(1)
    waiter = core.wait(Ticket(1), handle=None, now=0.0)
    with pytest.raises(ValueError, match="withdraw"):
        core.cancelled(waiter.ticket)
    assert core.waiting == 1 and core.ghosts == 0


def test_withdrawing_waiter_leaves_the_line() -> None:
    """A waiter that times out leaves the line (counted); its ticket is refused."""
    core, _ = full_queue(1)
    waiter = core.wait(Ticket(1), handle=None, now=0.0)
    assert core.withdraw(waiter, timed_out=True) == LEFT
    assert core.withdraw(waiter, timed_out=True) == LEFT  # twice: harmless, counted once
    assert (core.waiting, core.timeouts, waiter.ticket.admission) == (0, 1, REFUSED)
    assert core.cancelled(waiter.ticket) == ()
    core.check_invariants()


def test_withdrawing_after_admission_makes_a_ghost_once_cancelled() -> None:
    """A submitter interrupted just after admission: its queued task, cancelled, is a ghost."""
    core, (a,) = full_queue(1)
    waiter = core.wait(Ticket(1), handle=None, now=0.0)
    core.taken(a)
    assert core.withdraw(waiter, timed_out=False) == ADMITTED
    core.cancelled(waiter.ticket)
    assert (core.admitted, core.ghosts, core.queued) == (2, 1, 1)
    core.check_invariants()


def test_withdrawing_after_close_counts_nothing() -> None:
    """A submitter interrupted as close refused it: its ticket was never queued, nothing counts."""
    core, _ = full_queue(1)
    waiter = core.wait(Ticket(1), handle=None, now=0.0)
    assert list(core.close("was shut down")) == [waiter]
    assert core.withdraw(waiter, timed_out=False) == CLOSED
    assert core.cancelled(waiter.ticket) == ()
    assert (core.admitted, core.ghosts, core.queued, core.timeouts) == (1, 0, 1, 0)
    core.check_invariants()


def test_close_refuses_waiters_once_and_keeps_the_first_reason() -> None:
    """close() returns the waiters once; a second close returns none and keeps the reason."""
    core, _ = full_queue(1)
    waiter = core.wait(Ticket(1), handle=None, now=0.0)
    assert list(core.close("first")) == [waiter]
    assert core.close("second") == []
    assert core.closed_reason == "first"
    with pytest.raises(PoolClosed, match="first"):
        core.wait(Ticket(2), handle=None, now=0.0)


def test_purge_counts_cancelled_queued_tickets_ghosts_included() -> None:
    """Tickets pulled off by a cancelling shutdown are counted once, ghost or not."""
    core, (a, b) = full_queue(2)
    core.cancelled(a)
    core.close("was shut down")
    core.purge(a)
    core.purge(b)
    assert (core.purged, core.ghosts, core.queued) == (2, 0, 0)
    core.check_invariants()


def test_max_pending_below_one_is_refused() -> None:
    """A bound of zero could never admit anything: ValueError."""
    with pytest.raises(ValueError, match="max_pending"):
        Admission(name="t", max_pending=0)


def test_waiter_repr_names_its_state() -> None:
    """A waiter's repr says where it stands."""
    assert "waiting" in repr(Waiter(Ticket(0), None, 0.0))


# -- stateful: the shell's moves in random order -------------------------------------------------


class AdmissionMachine(RuleBasedStateMachine):
    """The threaded shell, played move by move, with a deque standing for its transport."""

    core: Admission[Ticket]

    def __init__(self) -> None:
        super().__init__()
        self.numbers = itertools.count()
        self.now = 0.0
        self.transport: deque[Ticket] = deque()
        self.parked: list[Waiter[Ticket]] = []  # blocked submitters, oldest first
        self.handed_out: list[Ticket] = []  # futures the callers got
        self.taken: list[Ticket] = []  # tickets a worker took (it runs or skips them)
        self.admission_order: list[Ticket] = []

    @initialize(max_pending=st.one_of(st.none(), st.integers(1, 3)))
    def setup(self, max_pending: int | None) -> None:
        self.core = Admission(name="m", max_pending=max_pending)

    # -- what the shell does with an answer ----------------------------------------------------

    def put(self, ticket: Ticket) -> None:
        self.transport.append(ticket)
        self.admission_order.append(ticket)

    def admit(self, served: object) -> None:
        assert isinstance(served, list | tuple)
        for waiter in served:
            assert self.parked[0] is waiter, "served out of arrival order"
            self.parked.pop(0)
            assert waiter.state == ADMITTED
            self.put(waiter.ticket)
            self.handed_out.append(waiter.ticket)

    def ticket(self) -> Ticket:
        self.now += 1.0
        return Ticket(next(self.numbers))

    # -- submitting ------------------------------------------------------------------------------

    @rule(block=st.booleans())
    def submit(self, block: bool) -> None:
        """WorkerPool.submit: the fast path, then (block) wait or (reject) refuse."""
        ticket = self.ticket()
        try:
            if self.core.submit_nowait(ticket):
                self.put(ticket)
                self.handed_out.append(ticket)
                return
        except PoolClosed:
            assert self.core.closed
            return
        if not block:
            before = self.core.rejected
            self.core.reject()
            assert self.core.rejected == before + 1
            return
        waiter = self.core.wait(ticket, handle=ticket.n, now=self.now)
        if waiter.state == ADMITTED:
            self.put(ticket)
            self.handed_out.append(ticket)
        else:
            self.parked.append(waiter)

    @precondition(lambda self: self.parked)
    @rule(data=st.data(), timed_out=st.booleans())
    def withdraw(self, data: st.DataObject, timed_out: bool) -> None:
        """A blocked submitter's deadline passes, or an interrupt lands: it leaves."""
        waiter = data.draw(st.sampled_from(self.parked))
        assert self.core.withdraw(waiter, timed_out=timed_out) == LEFT
        self.parked.remove(waiter)
        assert self.core.cancelled(waiter.ticket) == ()  # the shell cancels its future

    @precondition(lambda self: self.handed_out)
    @rule(data=st.data())
    def late_interrupt(self, data: st.DataObject) -> None:
        """An interrupt lands in a submitter already served: withdraw, then cancel."""
        ticket = data.draw(st.sampled_from(self.handed_out))
        waiter: Waiter[Ticket] = Waiter(ticket, None, self.now)
        waiter.state = ADMITTED  # what the served waiter's record says
        assert self.core.withdraw(waiter, timed_out=False) == ADMITTED
        self.admit(self.core.cancelled(ticket))

    # -- cancelling, taking ------------------------------------------------------------------

    @precondition(lambda self: self.handed_out)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        """A caller cancels a future (queued, taken or already cancelled)."""
        ticket = data.draw(st.sampled_from(self.handed_out))
        ghosts = self.core.ghosts
        was_queued = ticket.admission == QUEUED
        self.admit(self.core.cancelled(ticket))
        assert self.core.ghosts == ghosts + was_queued

    @precondition(lambda self: self.transport)
    @rule()
    def take(self) -> None:
        """A worker dequeues the next ticket and reports it under the lock."""
        ticket = self.transport.popleft()
        self.admit(self.core.taken(ticket))
        assert ticket.admission == TAKEN
        self.taken.append(ticket)

    @precondition(lambda self: self.taken)
    @rule(data=st.data())
    def take_again_is_refused(self, data: st.DataObject) -> None:
        """Reporting a ticket taken twice is an illegal move: it raises, nothing changes."""
        ticket = data.draw(st.sampled_from(self.taken))
        before = (self.core.queued, self.core.ghosts, self.core.taken_count)
        with pytest.raises(ValueError, match="not on the transport"):
            self.core.taken(ticket)
        assert (self.core.queued, self.core.ghosts, self.core.taken_count) == before

    # -- closing ---------------------------------------------------------------------------

    @rule()
    def close(self) -> None:
        """shutdown(): every waiting submitter is refused."""
        refused = self.core.close("was shut down")
        assert list(refused) == self.parked
        for waiter in refused:
            assert waiter.state == CLOSED
            assert waiter.ticket.admission == REFUSED
        self.parked.clear()

    @precondition(lambda self: self.core.closed)
    @rule()
    def cancel_queued(self) -> None:
        """shutdown(cancel_pending=True): pull every ticket off and cancel it."""
        while self.transport:
            ticket = self.transport.popleft()
            assert self.core.purge(ticket) == ()
            assert self.core.cancelled(ticket) == ()

    # -- what must always hold ------------------------------------------------------------------

    @invariant()
    def core_invariants_hold(self) -> None:
        self.core.check_invariants()

    @invariant()
    def transport_matches_the_counts(self) -> None:
        assert self.core.queued == len(self.transport)
        assert self.core.ghosts == sum(t.admission == GHOST for t in self.transport)
        assert all(t.admission in (QUEUED, GHOST) for t in self.transport)
        if self.core.max_pending is not None:
            assert self.core.live <= self.core.max_pending

    @invariant()
    def line_matches_the_parked_submitters(self) -> None:
        assert list(self.core.waiters) == self.parked

    @invariant()
    def every_admitted_ticket_is_accounted_once(self) -> None:
        assert self.core.admitted == len(self.handed_out) == len(self.admission_order)
        assert len({id(t) for t in self.handed_out}) == len(self.handed_out)
        taken_or_purged = self.core.taken_count + self.core.purged
        assert self.core.admitted == taken_or_purged + len(self.transport)

    @invariant()
    def transport_is_in_admission_order(self) -> None:
        order = {id(t): i for i, t in enumerate(self.admission_order)}
        positions = [order[id(t)] for t in self.transport]
        assert positions == sorted(positions)


AdmissionMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40)
TestAdmissionMovesKeepEveryInvariant = AdmissionMachine.TestCase
