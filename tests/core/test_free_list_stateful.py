"""Stateful property test: random moves against the free-list core keep every invariant.

The machine plays every caller at once: it requests, parks, cancels, creates (successfully or
not), releases, discards, closes, and makes the shell's lock-free take and put, including a
put whose second look is delayed while other moves run (the race the core must settle).
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

from respool._core.free_list import CLOSED, CREATE, Entry, FreeListCore, Todo, Waiter
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
        self.published: list[Entry[int]] = []  # lock-free puts whose second look is pending
        self.destroyed: set[int] = set()

    @initialize(
        min_size=st.integers(0, 2),
        extra=st.one_of(st.none(), st.integers(0, 3)),
        max_idle=st.integers(0, 4),
        max_waiting=st.one_of(st.none(), st.integers(0, 3)),
        lifo=st.booleans(),
        prime=st.integers(0, 3),
    )
    def setup(
        self,
        min_size: int,
        extra: int | None,
        max_idle: int,
        max_waiting: int | None,
        lifo: bool,
        prime: int,
    ) -> None:
        max_size = None if extra is None else max(1, min_size + extra)
        self.core = FreeListCore(
            name="m",
            min_size=min_size,
            max_size=max_size,
            max_idle=max(max_idle, min_size),
            max_waiting=max_waiting,
            lifo=lifo,
        )
        self.permits += self.core.reserve(prime)

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
            self.destroyed.add(entry.resource)
        self.permits += todo.create

    def settled(self) -> bool:
        return not self.published

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
            assert not wait or core.closed
            assert not (self.settled() and core.idle and not core.waiters)

    @precondition(lambda self: self.permits > 0)
    @rule(ok=st.booleans(), keep=st.booleans())
    def create(self, ok: bool, keep: bool) -> None:
        """A creator finishes: it keeps the new resource, or releases it (a replenish)."""
        self.permits -= 1
        if not ok:
            self.perform(self.core.create_failed(self.tick()))
            return
        entry = self.core.filled(next(self.names), self.tick())
        if keep:
            self.held.append(entry)
        else:
            self.perform(self.core.release(entry, self.tick()))

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
        how=st.sampled_from(["release", "discard", "check", "reset", "leaked"]),
    )
    def end(self, data: st.DataObject, how: str) -> None:
        entry = self.held.pop(data.draw(st.integers(0, len(self.held) - 1)))
        now = self.tick()
        move = {
            "release": self.core.release,
            "discard": self.core.discard,
            "check": self.core.check_failed,
            "reset": self.core.reset_failed,
            "leaked": self.core.leaked,
        }[how]
        self.perform(move(entry, now))

    @rule()
    def take_nowait(self) -> None:
        """The shell's lock-free take."""
        core = self.core
        if core.waiters or not core.idle:
            return
        entry = core.take()
        entry.uses += 1
        self.held.append(entry)

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def put_nowait_publish(self, data: st.DataObject) -> None:
        """The first half of the shell's lock-free put: look, then append."""
        core = self.core
        entry = self.held[data.draw(st.integers(0, len(self.held) - 1))]
        if (
            core.waiters
            or core.closed
            or len(core.idle) >= core.max_idle
            or entry.generation != core.generation
        ):
            return
        self.held.remove(entry)
        core.idle.append(entry)
        self.published.append(entry)

    @precondition(lambda self: self.published)
    @rule()
    def put_nowait_look_again(self) -> None:
        """The second half: look again, and settle under the lock if something raced."""
        core = self.core
        self.published.pop()
        if core.waiters or core.closed or len(core.idle) > core.max_idle:
            self.perform(core.settle(self.tick()))

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
        places = [e.resource for e in [*core.idle, *self.held, *granted]]
        assert len(places) == len(set(places)), "a resource is lent twice"
        assert set(places) == {e.resource for e in core.live}
        assert not set(places) & self.destroyed

    @invariant()
    def every_slot_has_one_creator(self) -> None:
        if not hasattr(self, "core"):
            return
        granted = sum(1 for w in self.woken if w.grant is CREATE)
        assert self.core.creating == self.permits + granted

    @invariant()
    def parked_waiters_are_the_queue(self) -> None:
        if hasattr(self, "core"):
            assert list(self.core.waiters) == self.parked


FreeListMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=60, deadline=None
)
TestFreeListCore = FreeListMachine.TestCase
