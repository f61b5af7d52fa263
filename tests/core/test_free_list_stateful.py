"""Stateful property test: random moves against the free-list core keep every invariant.

The machine plays every caller and the background filler at once, through the very methods
the threaded shell calls: it requests, parks, cancels, creates (successfully or not), checks
(a failed check keeps the caller's place), releases, discards, loses leases, closes, fills
owed slots with backoff, and makes the lock-free ``take_nowait`` and ``put_nowait``, with the
``finish_put`` under the lock delayed while other moves run (the race the core must settle).
Besides the core's own invariants it checks the accounting from outside: every live resource
is in exactly one place (idle, held by a caller, or granted to a woken waiter) and every
reserved slot is held by exactly one creator.
"""

from __future__ import annotations

import itertools

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from respool._core.free_list import (
    CLOSED,
    CREATE,
    PUT_DONE,
    Entry,
    FreeListCore,
    Todo,
    Waiter,
)
from respool._core.health import Rules
from respool.errors import PoolClosed, PoolFull


class FreeListMachine(RuleBasedStateMachine):
    core: FreeListCore[int]

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.names = itertools.count()
        self.held: list[Entry[int]] = []  # in use by a caller
        self.permits = 0  # reserved slots a caller is creating
        self.parked: list[Waiter[int]] = []  # waiters not yet woken
        self.woken: list[Waiter[int]] = []  # served, not yet claimed by their caller
        self.unfinished: list[tuple[Entry[int], int]] = []  # puts awaiting finish_put
        self.filling = 0  # owed slots the filler has started on
        self.fill_wanted = False  # a move asked for the filler
        self.destroyed: set[int] = set()
        self.checking: list[Entry[int]] = []  # out for a keepalive check

    @initialize(
        min_size=st.integers(0, 2),
        extra=st.one_of(st.none(), st.integers(0, 3)),
        max_idle=st.integers(0, 4),
        max_waiting=st.one_of(st.none(), st.integers(0, 3)),
        lifo=st.booleans(),
        prime=st.integers(0, 3),
        health=st.booleans(),
        leak_timeout=st.one_of(st.none(), st.sampled_from([2.0, 10.0])),
    )
    def setup(
        self,
        min_size: int,
        extra: int | None,
        max_idle: int,
        max_waiting: int | None,
        lifo: bool,
        prime: int,
        health: bool,
        leak_timeout: float | None,
    ) -> None:
        max_size = None if extra is None else max(1, min_size + extra)
        rules = None
        if health:
            rules = Rules(max_lifetime=8.0, max_uses=3, idle_timeout=4.0, keepalive=3.0)
        self.core = FreeListCore(
            name="m",
            min_size=min_size,
            max_size=max_size,
            max_idle=max(max_idle, min_size),
            max_waiting=max_waiting,
            lifo=lifo,
            rules=rules,
            leak_timeout=leak_timeout,
        )
        # The shells prime at least min_size (a FixedPool its whole size) before anything.
        self.permits += self.core.reserve(max(prime, min_size))

    # -- helpers ------------------------------------------------------------------------

    def tick(self) -> float:
        self.now += 1.0
        return self.now

    def perform(self, todo: Todo[int]) -> None:
        for waiter in todo.wake:
            self.parked.remove(waiter)
            self.woken.append(waiter)
        for entry in todo.destroy:
            assert entry.resource not in self.destroyed, "destroyed twice"
            assert entry not in self.held, "destroyed while lent"
            self.destroyed.add(entry.resource)
        self.checking.extend(todo.check)
        self.fill_wanted |= todo.fill

    def settled(self) -> bool:
        return not self.unfinished

    def grant_to(self, outcome: object) -> None:
        """Account for what a caller was handed."""
        if isinstance(outcome, Entry):
            outcome.uses += 1
            self.held.append(outcome)
        elif outcome is CREATE:
            self.permits += 1
        elif isinstance(outcome, Waiter):
            self.parked.append(outcome)

    # -- rules ----------------------------------------------------------------------------

    @rule(wait=st.booleans())
    def request(self, wait: bool) -> None:
        core = self.core
        waiting_before = len(core.waiters)
        try:
            todo = core.request(self.tick(), "h" if wait else None)
        except PoolClosed:
            assert core.closed
            return
        except PoolFull:
            assert core.max_waiting is not None and waiting_before >= core.max_waiting
            return
        outcome = todo.outcome
        if isinstance(outcome, Waiter):
            self.parked.append(outcome)
        self.perform(todo)
        if isinstance(outcome, Entry | type(CREATE)):
            assert waiting_before == 0, "a newcomer overtook a waiter"
        if isinstance(outcome, Entry):
            outcome.uses += 1
            self.held.append(outcome)
        elif outcome is CREATE:
            self.permits += 1
        elif outcome is None:
            assert todo.fill == (core.owed > 0)
            assert not wait or core.closed
            assert not (self.settled() and core.idle and not core.waiters)

    @precondition(lambda self: self.permits > 0)
    @rule(ok=st.booleans(), keep=st.booleans())
    def create(self, ok: bool, keep: bool) -> None:
        """A creator finishes: a caller keeps the new resource, or priming stocks the pool."""
        self.permits -= 1
        if not ok:
            self.perform(self.core.create_failed(self.tick()))
            return
        if keep:
            self.held.append(self.core.filled(next(self.names), self.tick()))
        else:
            self.perform(self.core.stock(next(self.names), self.tick()))

    @rule()
    def start_fills(self) -> None:
        """The filler takes the owed slots it may work on now (none while backing off)."""
        core = self.core
        owed, due = core.owed, core.backoff.due(self.now)
        started = core.start_fills(self.now)
        assert started == (owed if due and not core.closed else 0)
        self.filling += started

    @precondition(lambda self: self.filling > 0)
    @rule(ok=st.booleans(), data=st.data())
    def fill(self, ok: bool, data: st.DataObject) -> None:
        """The filler finishes one slot; a failure puts back the ones it had not started."""
        self.filling -= 1
        if ok:
            waiting = list(self.core.waiters)
            todo = self.core.stock(next(self.names), self.tick(), owed=True)
            if waiting:  # made for the first waiter, handed over unchecked
                grant = waiting[0].grant
                assert grant is not None
                assert not isinstance(grant, Entry) or not self.core.needs_check(
                    grant, since=waiting[0].since
                )
            self.perform(todo)
            return
        unstarted = data.draw(st.integers(0, self.filling))
        self.filling -= unstarted
        self.perform(self.core.fill_failed(self.tick(), RuntimeError("down"), unstarted=unstarted))

    @precondition(lambda self: self.woken)
    @rule(data=st.data())
    def claim(self, data: st.DataObject) -> None:
        """A woken waiter takes what it was granted."""
        waiter = self.woken.pop(data.draw(st.integers(0, len(self.woken) - 1)))
        if isinstance(waiter.grant, Entry):
            self.held.append(waiter.grant)
        elif waiter.grant is CREATE:
            self.permits += 1
        else:
            assert waiter.grant is CLOSED

    @precondition(lambda self: self.parked or self.woken)
    @rule(data=st.data(), timed_out=st.booleans(), use=st.booleans())
    def cancel(self, data: st.DataObject, timed_out: bool, use: bool) -> None:
        """A waiter gives up; a grant that raced it is used or given back."""
        pool = self.parked + self.woken
        waiter = pool[data.draw(st.integers(0, len(pool) - 1))]
        grant = self.core.cancel(waiter, timed_out=timed_out)
        if waiter in self.parked:
            assert grant is None
            self.parked.remove(waiter)
            return
        self.woken.remove(waiter)
        assert grant is waiter.grant
        if grant is CLOSED:
            return
        assert grant is not None
        if use:
            if isinstance(grant, Entry):
                self.held.append(grant)
            else:
                self.permits += 1
        else:
            self.perform(self.core.give_back(grant, self.tick()))

    @precondition(lambda self: self.held)
    @rule(
        data=st.data(),
        how=st.sampled_from(["release", "discard", "reset", "leaked"]),
    )
    def end(self, data: st.DataObject, how: str) -> None:
        entry = self.held.pop(data.draw(st.integers(0, len(self.held) - 1)))
        now = self.tick()
        move = {
            "release": self.core.release,
            "discard": self.core.discard,
            "reset": self.core.reset_failed,
            "leaked": self.core.leaked,
        }[how]
        self.perform(move(entry, now))

    @precondition(lambda self: self.held)
    @rule(data=st.data(), wait=st.booleans())
    def check_fails(self, data: st.DataObject, wait: bool) -> None:
        """A caller's resource fails its check: it is served again, ahead of everyone."""
        entry = self.held.pop(data.draw(st.integers(0, len(self.held) - 1)))
        entry.uses -= 1  # never lent after all
        core = self.core
        todo = core.check_failed(entry, self.tick(), "h" if wait else None)
        outcome = todo.outcome
        if isinstance(outcome, Waiter):
            assert core.waiters[0] is outcome, "a failed check lost the caller its place"
            self.parked.insert(0, outcome)
        else:
            self.grant_to(outcome)
        self.perform(todo)
        assert outcome is not CLOSED or core.closed

    @rule()
    def take_nowait(self) -> None:
        """The shell's lock-free take."""
        core = self.core
        waiting, idle = bool(core.waiters), bool(core.idle)
        try:
            entry = core.take_nowait()
        except IndexError:
            assert not idle and not waiting
            return
        assert (entry is None) == waiting
        if entry is not None:
            entry.uses += 1
            self.held.append(entry)

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def put_nowait(self, data: st.DataObject) -> None:
        """The shell's lock-free put; its finish under the lock may be delayed."""
        entry = self.held.pop(data.draw(st.integers(0, len(self.held) - 1)))
        answer = self.core.put_nowait(entry)
        if answer != PUT_DONE:
            self.unfinished.append((entry, answer))

    @precondition(lambda self: self.unfinished)
    @rule(data=st.data())
    def finish_put(self, data: st.DataObject) -> None:
        """The lock is taken at last: settle what the lock-free put could not."""
        entry, answer = self.unfinished.pop(data.draw(st.integers(0, len(self.unfinished) - 1)))
        self.perform(self.core.finish_put(entry, answer, self.tick()))

    @rule()
    def housekeep(self) -> None:
        """The housekeeper's pass: retire what is due, take entries out for keepalive."""
        core = self.core
        now = self.tick()
        self.perform(core.housekeep(now))
        # Nothing is left due at once: housekeeping never wakes itself in a loop.
        assert core.next_deadline(now) > now

    @precondition(lambda self: self.checking)
    @rule(alive=st.booleans())
    def keepalive_done(self, alive: bool) -> None:
        """A keepalive check ends."""
        entry = self.checking.pop()
        self.perform(self.core.keepalive_done(entry, self.tick(), alive=alive))

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def give_back_worn(self, data: st.DataObject) -> None:
        """The shell's health path at return: a worn entry is retired with its reason."""
        entry = self.held.pop(data.draw(st.integers(0, len(self.held) - 1)))
        now = self.tick()
        reason = self.core.worn(entry, now)
        if reason is None:
            entry.idle_since = now
            self.perform(self.core.release(entry, now))
        else:
            self.perform(self.core.discard(entry, now, reason))

    @rule()
    def drain(self) -> None:
        self.perform(self.core.drain(self.tick()))

    @rule(grow=st.booleans())
    def resize(self, grow: bool) -> None:
        """Resize within the setup's bounds, up or down."""
        core = self.core
        if core.max_size is None:
            return
        size = core.max_size + 1 if grow else max(1, core.max_size - 1)
        min_size = min(core.min_size, size)
        self.perform(core.resize(self.tick(), min_size=min_size, max_size=size, max_idle=min_size))

    @rule(now=st.integers(0, 15))
    def close(self, now: int) -> None:
        """Close, rarely: a closed pool only destroys, so most runs should stay open longer."""
        if now == 0:
            self.perform(self.core.close())

    # -- invariants -----------------------------------------------------------------------

    @invariant()
    def core_invariants(self) -> None:
        if hasattr(self, "core"):
            self.core.check_invariants(settled=self.settled())

    @invariant()
    def every_resource_is_in_exactly_one_place(self) -> None:
        if not hasattr(self, "core"):
            return
        core = self.core
        granted = [w.grant for w in self.woken if isinstance(w.grant, Entry)]
        refused = [e for e, _ in self.unfinished if e not in core.idle]
        out = [*core.idle, *self.held, *granted, *refused, *self.checking]
        places = [e.resource for e in out]
        assert len(places) == len(set(places)), "a resource is lent twice"
        live = [ref() for ref in core.live.values()]
        assert set(places) == {e.resource for e in live if e is not None}
        assert not set(places) & self.destroyed

    @invariant()
    def every_slot_has_one_creator(self) -> None:
        if not hasattr(self, "core"):
            return
        granted = sum(1 for w in self.woken if w.grant is CREATE)
        core = self.core
        assert core.creating == self.permits + granted + self.filling + core.owed

    @invariant()
    def owed_slots_reach_the_filler(self) -> None:
        if hasattr(self, "core") and self.core.owed:
            assert self.fill_wanted, "slots are owed but no move asked for the filler"

    @invariant()
    def parked_waiters_are_the_queue(self) -> None:
        if hasattr(self, "core"):
            assert list(self.core.waiters) == self.parked


FreeListMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=60, deadline=None
)
TestFreeListCore = FreeListMachine.TestCase
