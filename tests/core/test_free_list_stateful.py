"""Stateful property test: random moves against the free-list core keep every invariant.

The machine plays every caller and the background filler at once, through the very methods
the threaded shell calls: it requests, parks, cancels, creates (successfully or not), checks
(a failed check keeps the caller's place), releases, discards, loses leases, closes, fills
owed slots with backoff, wakes waiters (granted, or roused to compete within the fairness
window, who then look and may park again), and makes the lock-free ``take_nowait`` and
``put_nowait``, with the ``finish_put`` under the lock delayed while other moves run (the
race the core must settle).
Besides the core's own invariants it checks the accounting from outside: every live resource
is in exactly one place (idle, held by a caller, or granted to a woken waiter) and every
reserved slot is held by exactly one creator, that no wake-up is signalled twice, and that
no newcomer overtakes a waiter who has waited the whole fairness window.
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
        self.waiting: list[Waiter[int]] = []  # callers in acquire: queued, or served unclaimed
        self.signalled: set[int] = set()  # ids of waiters whose wake-up is pending
        self.dozing: set[int] = set()  # ids of overtaken waiters that look again when due
        self.unfinished: list[tuple[Entry[int], int]] = []  # puts awaiting finish_put
        self.filling = 0  # owed slots the filler has started on
        self.fill_wanted = False  # a move asked for the filler
        self.destroyed: set[int] = set()
        self.checking: list[Entry[int]] = []  # out for a keepalive check

    @initialize(
        min_size=st.integers(0, 2),
        extra=st.one_of(st.none(), st.integers(0, 3), st.just(0)),
        max_idle=st.integers(0, 4),
        max_waiting=st.one_of(st.none(), st.integers(0, 3)),
        lifo=st.booleans(),
        prime=st.integers(0, 3),
        health=st.booleans(),
        leak_timeout=st.one_of(st.none(), st.sampled_from([2.0, 10.0])),
        window=st.sampled_from([0.0, 1.5, 4.5]),
        fixed=st.booleans(),
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
        window: float,
        fixed: bool,
    ) -> None:
        max_size = None if extra is None else max(1, min_size + extra)
        if fixed:  # a primed FixedPool, where callers contend for a few resources at once
            min_size = max_size = max_idle = 1 + min_size % 2
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
            window=window,
        )
        # The shells prime at least min_size (a FixedPool its whole size) before anything.
        self.permits += self.core.reserve(max(prime, min_size))
        if fixed:
            while self.permits:
                self.permits -= 1
                self.perform(self.core.stock(next(self.names), self.tick()))

    # -- helpers ------------------------------------------------------------------------

    def tick(self) -> float:
        self.now += 1.0
        return self.now

    def perform(self, todo: Todo[int]) -> None:
        for waiter in todo.wake:
            assert waiter in self.waiting
            assert id(waiter) not in self.signalled, "a wake-up signalled twice"
            if id(waiter) in self.dozing:  # only to hand it a grant
                assert not waiter.queued and waiter.grant is not None
                self.dozing.discard(id(waiter))
            self.signalled.add(id(waiter))
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
            self.waiting.append(outcome)

    def claim_grant(self, waiter: Waiter[int]) -> None:
        """The caller behind a served *waiter* takes its grant."""
        self.waiting.remove(waiter)
        self.signalled.discard(id(waiter))
        self.dozing.discard(id(waiter))
        if isinstance(waiter.grant, Entry):
            waiter.grant.uses += 1
            self.held.append(waiter.grant)
        elif waiter.grant is CREATE:
            self.permits += 1
        else:
            assert waiter.grant is CLOSED

    # -- rules ----------------------------------------------------------------------------

    @rule(wait=st.booleans())
    def request(self, wait: bool) -> None:
        core = self.core
        waiting_before = len(core.waiters)
        oldest = core.waiters[0].since if core.waiters else None
        now = self.tick()
        overtakes = core.overtakes
        try:
            todo = core.request(now, "h" if wait else None)
        except PoolClosed:
            assert core.closed
            return
        except PoolFull:
            assert core.max_waiting is not None and waiting_before >= core.max_waiting
            return
        outcome = todo.outcome
        if isinstance(outcome, Waiter):
            self.waiting.append(outcome)
        self.perform(todo)
        if outcome is CREATE:
            assert waiting_before == 0, "a newcomer took room a waiter was owed"
        if isinstance(outcome, Entry) and oldest is not None:
            assert now - oldest < core.window, "overtook a waiter past the window"
            assert core.overtakes == overtakes + 1
        if isinstance(outcome, Entry):
            outcome.uses += 1
            self.held.append(outcome)
        elif outcome is CREATE:
            self.permits += 1
        elif outcome is None:
            assert todo.fill == (core.owed > 0)
            assert not wait or core.closed
            assert not (self.settled() and core.idle and not core.waiters)

    @precondition(lambda self: self.held)
    @rule(data=st.data(), lock_free=st.booleans())
    def cycle(self, data: st.DataObject, lock_free: bool) -> None:
        """The contended loop: a caller gives its resource back and at once asks again
        (where a strict hand-off convoys, and a bounded one lets it overtake)."""
        entry = self.held.pop(data.draw(st.integers(0, len(self.held) - 1)))
        if lock_free:
            answer = self.core.put_nowait(entry)
            if answer != PUT_DONE:
                self.perform(self.core.finish_put(entry, answer, self.tick()))
        else:
            self.perform(self.core.release(entry, self.tick()))
        self.request(wait=True)

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
            core = self.core
            waiting = list(core.waiters)
            over = core.max_size is not None and core.size + 1 > core.max_size
            todo = core.stock(next(self.names), self.tick(), owed=True)
            if waiting and not over:  # made for the first waiter, handed over unchecked
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

    @precondition(lambda self: self.signalled)
    @rule(data=st.data())
    def wake_up(self, data: st.DataObject) -> None:
        """A woken caller runs: it takes its grant, or (roused) looks and may park again."""
        woken = [w for w in self.waiting if id(w) in self.signalled]
        waiter = woken[data.draw(st.integers(0, len(woken) - 1))]
        if waiter.grant is not None:
            assert not waiter.queued
            self.claim_grant(waiter)
            return
        assert waiter.queued, "woken with nothing, out of the queue"
        self.signalled.discard(id(waiter))
        self.looks(waiter)

    def looks(self, waiter: Waiter[int]) -> None:
        """*waiter*'s thread looks: it claims what it finds, parks, or dozes until due."""
        todo = self.core.look(waiter, self.tick())
        self.perform(todo)
        if todo.outcome is waiter:
            assert waiter.queued and waiter.woken == (waiter.recheck_at is not None)
            if waiter.recheck_at is not None:
                self.dozing.add(id(waiter))
        else:
            assert todo.outcome is waiter.grant is not None
            self.claim_grant(waiter)

    @precondition(lambda self: self.dozing)
    @rule(data=st.data())
    def doze_ends(self, data: st.DataObject) -> None:
        """A dozing waiter's time comes: it looks again, unsignalled."""
        dozing = [w for w in self.waiting if id(w) in self.dozing]
        waiter = dozing[data.draw(st.integers(0, len(dozing) - 1))]
        self.dozing.discard(id(waiter))
        if waiter.recheck_at is not None:
            self.now = max(self.now, waiter.recheck_at - 1.0)  # looks() ticks once more
        if waiter.grant is not None:
            self.claim_grant(waiter)
        else:
            self.looks(waiter)

    @precondition(lambda self: self.waiting)
    @rule(data=st.data(), timed_out=st.booleans(), use=st.booleans())
    def cancel(self, data: st.DataObject, timed_out: bool, use: bool) -> None:
        """A waiter gives up; a grant that raced it is used or given back."""
        waiter = self.waiting[data.draw(st.integers(0, len(self.waiting) - 1))]
        queued = waiter.queued
        todo = self.core.cancel(waiter, self.tick(), timed_out=timed_out)
        grant = todo.outcome
        self.waiting.remove(waiter)
        self.signalled.discard(id(waiter))
        self.dozing.discard(id(waiter))
        self.perform(todo)
        if queued:
            assert grant is None
            return
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
            self.waiting.append(outcome)
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
        granted = [w.grant for w in self.waiting if isinstance(w.grant, Entry)]
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
        granted = sum(1 for w in self.waiting if w.grant is CREATE)
        core = self.core
        assert core.creating == self.permits + granted + self.filling + core.owed

    @invariant()
    def owed_slots_reach_the_filler(self) -> None:
        if hasattr(self, "core") and self.core.owed:
            assert self.fill_wanted, "slots are owed but no move asked for the filler"

    @invariant()
    def queued_waiters_are_the_queue(self) -> None:
        if hasattr(self, "core"):
            queued = [w for w in self.waiting if w.queued]
            assert sorted(self.core.waiters, key=id) == sorted(queued, key=id)

    @invariant()
    def an_idle_entry_always_has_a_waiter_on_its_way(self) -> None:
        """Settled, the first ``len(idle)`` waiters have a wake-up pending: none sleeps while
        a resource it could take lies idle."""
        if hasattr(self, "core") and self.settled():
            core = self.core
            for waiter in itertools.islice(core.waiters, len(core.idle)):
                assert id(waiter) in self.signalled | self.dozing

    @invariant()
    def overtaken_waits_stay_within_the_window(self) -> None:
        if hasattr(self, "core"):
            core = self.core
            assert core.overtaken_wait_max < core.window or core.overtakes == 0


FreeListMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=60, deadline=None
)
TestFreeListCore = FreeListMachine.TestCase
