"""Fairness of the free-list core: bounded overtaking, rousing, and strict hand-off.

A focused stateful machine (the broad one in ``test_free_list_stateful.py`` rarely reaches
contention): a few resources, callers that give back and ask again at once, time that passes
between moves, woken waiters that look and may park again, cancellations. It checks that no
newcomer takes a resource from a waiter who has waited the whole window, that no wake-up is
signalled twice, that no resource sits idle while every waiter sleeps, and that every
resource is in exactly one place.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from respool._core.free_list import (
    CLOSED,
    CREATE,
    MAX_DOZE,
    PUT_DONE,
    Entry,
    FreeListCore,
    Todo,
    Waiter,
)


def make_core(size: int, window: float, max_idle: int | None = None) -> FreeListCore[str]:
    """A primed FixedPool-like core of *size* resources named r0, r1...; with *max_idle*, an
    ElasticPool-like one of at most *size* that keeps that many idle (none made yet)."""
    elastic = max_idle is not None
    core: FreeListCore[str] = FreeListCore(
        name="f", min_size=0 if elastic else size, max_size=size,
        max_idle=size if max_idle is None else max_idle, max_waiting=None, lifo=True,
        window=window,
    )  # fmt: skip
    if not elastic:
        core.reserve(size)
        for n in range(size):
            core.stock(f"r{n}", 0.0)
    return core


class FairnessMachine(RuleBasedStateMachine):
    core: FreeListCore[str]

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.held: list[Entry[str]] = []
        self.waiting: list[Waiter[str]] = []  # queued, or served and not yet claimed
        self.signalled: set[int] = set()  # ids of waiters with a wake-up pending
        self.dozing: set[int] = set()  # ids of overtaken waiters that look again when due
        self.unfinished: list[tuple[Entry[str], int]] = []
        self.names = (f"r{n}" for n in itertools.count())
        self.destroyed: set[str] = set()

    @initialize(
        size=st.integers(1, 3),
        window=st.sampled_from([0.0, 1.5, 4.5]),
        max_idle=st.one_of(st.none(), st.integers(0, 2)),
    )
    def setup(self, size: int, window: float, max_idle: int | None) -> None:
        self.core = make_core(size, window, max_idle)
        if max_idle is None:
            self.names = (f"r{n}" for n in itertools.count(size))

    def perform(self, todo: Todo[str]) -> None:
        assert not todo.fill
        for entry in todo.destroy:
            self.destroyed.add(entry.resource)
        for waiter in todo.wake:
            assert id(waiter) not in self.signalled, "a wake-up signalled twice"
            if id(waiter) in self.dozing:  # only to hand it a grant
                assert not waiter.queued and waiter.grant is not None
                self.dozing.discard(id(waiter))
            self.signalled.add(id(waiter))

    def claim(self, waiter: Waiter[str]) -> None:
        self.waiting.remove(waiter)
        self.signalled.discard(id(waiter))
        self.dozing.discard(id(waiter))
        self.take(waiter.grant)

    def looks(self, waiter: Waiter[str]) -> None:
        """*waiter*'s thread runs and looks: it claims what it finds, or parks again."""
        todo = self.core.look(waiter, self.now)
        self.perform(todo)
        if todo.outcome is not waiter:
            self.claim(waiter)
        elif waiter.recheck_at is not None:  # overtaken: dozes until due, unsignalled
            due_at = waiter.since + self.core.window
            assert self.now < waiter.recheck_at == min(due_at, self.now + MAX_DOZE)
            self.dozing.add(id(waiter))

    def take(self, grant: object) -> None:
        """A caller takes its grant: an entry, or room to create one (it does, at once)."""
        if grant is CREATE:
            grant = self.core.filled(next(self.names), self.now)
        assert isinstance(grant, Entry)
        self.held.append(grant)

    @rule(seconds=st.sampled_from([0.5, 1.0, 3.0]))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    @rule(wait=st.booleans())
    def acquire(self, wait: bool) -> None:
        """A newcomer asks; it may overtake waiters only while none is due."""
        core = self.core
        before = list(core.waiters)
        todo = core.request(self.now, "h" if wait else None)
        self.perform(todo)
        outcome = todo.outcome
        if outcome is CREATE:
            assert not before, "a newcomer took room a waiter was owed"
            self.take(outcome)
        elif isinstance(outcome, Entry):
            # Waiters due were served first; only those within the window were overtaken.
            for waiter in before:
                if waiter.queued:
                    assert self.now - waiter.since < core.window, (
                        "overtook a waiter past the window"
                    )
            self.held.append(outcome)
        elif isinstance(outcome, Waiter):
            self.waiting.append(outcome)
        else:
            assert outcome is None and not wait

    @precondition(lambda self: self.held)
    @rule(data=st.data(), how=st.sampled_from(["lock-free", "deferred", "locked"]))
    def release(self, data: st.DataObject, how: str) -> None:
        entry = self.held.pop(data.draw(st.integers(0, len(self.held) - 1)))
        if how == "locked":
            self.perform(self.core.release(entry, self.now))
            return
        answer = self.core.put_nowait(entry)
        if answer == PUT_DONE:
            return
        if how == "deferred":
            self.unfinished.append((entry, answer))
        else:
            self.perform(self.core.finish_put(entry, answer, self.now))

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def cycle(self, data: st.DataObject) -> None:
        """Give back and ask again at once: the loop that convoys under strict hand-off."""
        self.release(data, "lock-free")
        self.acquire(wait=True)

    @precondition(lambda self: self.unfinished)
    @rule()
    def finish_put(self) -> None:
        entry, answer = self.unfinished.pop(0)
        self.perform(self.core.finish_put(entry, answer, self.now))

    @precondition(lambda self: self.signalled)
    @rule(data=st.data())
    def wake_up(self, data: st.DataObject) -> None:
        """A woken waiter runs: it claims its grant, or looks for an idle resource."""
        woken = [w for w in self.waiting if id(w) in self.signalled]
        waiter = woken[data.draw(st.integers(0, len(woken) - 1))]
        if waiter.grant is not None:
            self.claim(waiter)
            return
        self.signalled.discard(id(waiter))
        self.looks(waiter)

    @precondition(lambda self: self.dozing)
    @rule(data=st.data())
    def doze_ends(self, data: st.DataObject) -> None:
        """A dozing waiter's time comes (it is due now): it looks again, unsignalled."""
        dozing = [w for w in self.waiting if id(w) in self.dozing]
        waiter = dozing[data.draw(st.integers(0, len(dozing) - 1))]
        assert waiter.recheck_at is not None or not waiter.queued
        if waiter.recheck_at is not None:
            self.now = max(self.now, waiter.recheck_at)
        self.dozing.discard(id(waiter))
        if waiter.grant is not None:
            self.claim(waiter)
            return
        self.looks(waiter)

    @precondition(lambda self: self.waiting)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        """A waiter gives up; a grant that raced it is given back."""
        waiter = self.waiting[data.draw(st.integers(0, len(self.waiting) - 1))]
        todo = self.core.cancel(waiter, self.now, timed_out=True)
        self.waiting.remove(waiter)
        self.signalled.discard(id(waiter))
        self.dozing.discard(id(waiter))
        self.perform(todo)
        if todo.outcome is not None:
            self.perform(self.core.give_back(todo.outcome, self.now))

    @rule()
    def take_nowait(self) -> None:
        """The lock-free take never serves anyone while someone waits."""
        core = self.core
        waiting = bool(core.waiters)
        try:
            entry = core.take_nowait()
        except IndexError:
            return
        assert (entry is None) == waiting
        if entry is not None:
            self.held.append(entry)

    @invariant()
    def invariants(self) -> None:
        if not hasattr(self, "core"):
            return
        core = self.core
        settled = not self.unfinished
        core.check_invariants(settled=settled)
        granted = [w.grant for w in self.waiting if isinstance(w.grant, Entry)]
        refused = [e for e, _ in self.unfinished if e not in core.idle]
        places = [e.resource for e in [*core.idle, *self.held, *granted, *refused]]
        live = [ref() for ref in core.live.values()]
        assert sorted(places) == sorted(e.resource for e in live if e is not None), places
        assert not set(places) & self.destroyed
        assert sorted(core.waiters, key=id) == sorted((w for w in self.waiting if w.queued), key=id)
        if settled:  # nobody sleeps while a resource it could take lies idle, but dozers
            for waiter in itertools.islice(core.waiters, len(core.idle)):
                assert id(waiter) in self.signalled | self.dozing
        assert core.overtakes == 0 or core.overtaken_wait_max < core.window


FairnessMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=50, deadline=None
)
TestFairness = FairnessMachine.TestCase


def test_strict_mode_hands_off_in_arrival_order() -> None:
    """With a zero window a returned resource goes to the oldest waiter, never to a newcomer."""
    core = make_core(1, 0.0)
    entry = core.request(0.0, None).outcome
    assert isinstance(entry, Entry)
    first = core.request(1.0, "a").outcome
    assert isinstance(first, Waiter)
    todo = core.release(entry, 1.0)  # waited 0 s: due at once
    assert todo.wake == [first] and first.grant is entry
    assert core.request(1.0, None).outcome is None
    assert core.overtakes == 0


def test_bounded_mode_lets_a_newcomer_overtake_within_the_window() -> None:
    """Within the window the waiter is roused; a faster newcomer may take the resource."""
    core = make_core(1, 10.0)
    entry = core.request(0.0, None).outcome
    assert isinstance(entry, Entry)
    waiter = core.request(1.0, "a").outcome
    assert isinstance(waiter, Waiter)
    todo = core.release(entry, 2.0)
    assert todo.wake == [waiter] and waiter.grant is None and waiter.queued
    assert core.request(3.0, None).outcome is entry  # the newcomer was faster
    assert (core.overtakes, core.overtaken_wait_max) == (1, 2.0)
    assert core.look(waiter, 3.5).outcome is waiter  # nothing left: it parks again
    core.release(entry, 4.0)
    assert core.look(waiter, 4.5).outcome is entry
    assert core.waits == 1 and core.wait_time_max == 3.5
    core.check_invariants()


@pytest.mark.parametrize("window", [1.0, 5.0])
def test_no_newcomer_overtakes_a_waiter_past_the_window(window: float) -> None:
    """Once the oldest waiter has waited the window, returns go to it and newcomers queue."""
    core = make_core(1, window)
    entry = core.request(0.0, None).outcome
    assert isinstance(entry, Entry)
    waiter = core.request(0.0, "a").outcome
    assert isinstance(waiter, Waiter)
    todo = core.release(entry, window)
    assert waiter.grant is entry and not waiter.queued and todo.wake == [waiter]
    late = core.request(window, "b").outcome
    assert isinstance(late, Waiter)


@pytest.mark.parametrize(("window", "dozes_until"), [(0.001, 1.001), (10.0, 1.0 + MAX_DOZE)])
def test_an_overtaken_waiter_dozes_until_due_or_max_doze(window: float, dozes_until: float) -> None:
    """A roused waiter that finds nothing looks again when due, or after MAX_DOZE if sooner."""
    core = make_core(1, window)
    entry = core.request(1.0, None).outcome
    assert isinstance(entry, Entry)
    waiter = core.request(1.0, "w").outcome
    assert isinstance(waiter, Waiter)
    assert core.release(entry, 1.0).wake == [waiter]  # roused
    assert core.request(1.0, None).outcome is entry  # overtaken
    assert core.look(waiter, 1.0).outcome is waiter
    assert waiter.woken and waiter.recheck_at == pytest.approx(dozes_until)
    assert core.release(entry, 1.0).wake == []  # dozing: not roused again
    assert core.look(waiter, dozes_until).outcome is entry


def test_a_grant_wakes_a_dozing_waiter_at_once() -> None:
    """A grant (here: close) signals a dozing waiter, which need not wait for its doze."""
    core = make_core(1, 10.0)
    entry = core.request(1.0, None).outcome
    assert isinstance(entry, Entry)
    waiter = core.request(1.0, "w").outcome
    assert isinstance(waiter, Waiter)
    core.release(entry, 1.0)
    assert core.request(1.0, None).outcome is entry
    assert core.look(waiter, 1.0).outcome is waiter and waiter.recheck_at is not None
    todo = core.close()
    assert todo.wake == [waiter] and waiter.grant is CLOSED and waiter.recheck_at is None


def test_a_roused_waiter_that_is_cancelled_passes_its_chance_on() -> None:
    """Cancelling a roused waiter rouses the next one: the idle resource is not stranded."""
    core = make_core(1, 10.0)
    entry = core.request(0.0, None).outcome
    assert isinstance(entry, Entry)
    first, second = (core.request(1.0, h).outcome for h in "ab")
    assert isinstance(first, Waiter) and isinstance(second, Waiter)
    assert core.release(entry, 2.0).wake == [first]
    todo = core.cancel(first, 3.0, timed_out=True)
    assert todo.outcome is None and todo.wake == [second]
    assert core.look(second, 3.0).outcome is entry
    assert core.timeouts == 1


def test_a_grant_to_a_roused_waiter_does_not_signal_it_twice() -> None:
    """A waiter roused and then granted (once due) finds the grant on its one wake-up."""
    core = make_core(2, 1.0)
    a = core.request(0.0, None).outcome
    b = core.request(0.0, None).outcome
    assert isinstance(a, Entry) and isinstance(b, Entry)
    waiter = core.request(0.0, "w").outcome
    assert isinstance(waiter, Waiter)
    assert core.release(a, 0.5).wake == [waiter]  # roused
    assert core.request(0.6, None).outcome is a  # overtaken
    todo = core.release(b, 2.0)  # now due: handed over, no second signal
    assert todo.wake == [] and waiter.grant is b
    assert core.look(waiter, 2.0).outcome is b


def test_a_failed_check_requeues_by_arrival_time() -> None:
    """A caller whose resource fails its check goes back at its place by when it began."""
    core = make_core(1, 10.0)
    entry = core.request(0.0, None).outcome
    assert isinstance(entry, Entry)
    early = core.request(1.0, "early").outcome
    late = core.request(5.0, "late").outcome
    assert isinstance(early, Waiter) and isinstance(late, Waiter)
    todo = core.check_failed(entry, 6.0, "me", since=3.0)
    me = todo.outcome
    assert isinstance(me, Waiter)
    assert list(core.waiters) == [early, me, late]


def test_window_must_not_be_negative() -> None:
    """A negative window is refused."""
    with pytest.raises(ValueError, match="window"):
        make_core(1, -1.0)
