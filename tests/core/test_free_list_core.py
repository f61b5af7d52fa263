"""Unit tests of the free-list core's moves: each legal move, and each illegal one refused."""

from __future__ import annotations

import pytest

from respool._core.free_list import CLOSED, CREATE, Entry, FreeListCore, Waiter
from respool.errors import PoolClosed, PoolFull


def make_core(
    *,
    min_size: int = 0,
    max_size: int | None = 2,
    max_idle: int = 2,
    max_waiting: int | None = None,
    lifo: bool = True,
) -> FreeListCore[str]:
    return FreeListCore(
        name="t",
        min_size=min_size,
        max_size=max_size,
        max_idle=max_idle,
        max_waiting=max_waiting,
        lifo=lifo,
    )


def fill_idle(core: FreeListCore[str], *names: str) -> list[Entry[str]]:
    """Create resources through the core's own moves and leave them idle."""
    entries = []
    assert core.reserve(len(names)) == len(names)
    for name in names:
        entry = core.filled(name, 0.0)
        entries.append(entry)
        assert not core.release(entry, 0.0)
    return entries


def test_request_takes_idle_entry() -> None:
    """An idle entry is handed out directly."""
    core = make_core()
    (entry,) = fill_idle(core, "a")
    todo = core.request(1.0, handle=None)
    assert todo.outcome is entry
    assert not core.idle
    core.check_invariants()


def test_request_reserves_a_slot_when_empty_with_room() -> None:
    """No idle entry but room: the caller is told to create, and the slot is reserved."""
    core = make_core(max_size=1)
    todo = core.request(0.0, handle=None)
    assert todo.outcome is CREATE
    assert core.creating == 1
    assert core.request(0.0, handle=None).outcome is None  # no room left, will not wait
    core.check_invariants()


def test_request_queues_a_waiter_when_full() -> None:
    """No idle entry and no room: the caller gets a Waiter to park on."""
    core = make_core(max_size=1)
    core.request(0.0, handle=None)
    todo = core.request(0.0, handle="h")
    assert isinstance(todo.outcome, Waiter)
    assert todo.outcome.handle == "h"
    assert list(core.waiters) == [todo.outcome]


def test_newcomer_never_overtakes_a_waiter() -> None:
    """With someone queued, even a newcomer that will not wait gets nothing."""
    core = make_core(max_size=1)
    core.request(0.0, handle=None)  # slot reserved
    waiter = core.request(0.0, handle="w").outcome
    assert isinstance(waiter, Waiter)
    # The slot's resource arrives and is released: it goes to the waiter, not to the idle list.
    entry = core.filled("a", 0.0)
    todo = core.release(entry, 2.0)
    assert todo.wake == [waiter]
    assert waiter.grant is entry
    assert not core.idle
    assert core.request(2.0, handle=None).outcome is None
    core.check_invariants()


def test_waiters_are_served_in_arrival_order() -> None:
    """Released entries go to waiters first-come, first-served."""
    core = make_core(max_size=2)
    a, b = (core.request(0.0, handle=None).outcome for _ in range(2))
    assert a is CREATE and b is CREATE
    e1, e2 = core.filled("1", 0.0), core.filled("2", 0.0)
    w1 = core.request(1.0, handle=1).outcome
    w2 = core.request(2.0, handle=2).outcome
    assert core.release(e2, 3.0).wake == [w1]
    assert core.release(e1, 4.0).wake == [w2]
    assert isinstance(w1, Waiter) and isinstance(w2, Waiter)
    assert (w1.grant, w2.grant) == (e2, e1)
    assert core.waits == 2
    assert core.wait_time_total == pytest.approx(2.0 + 2.0)
    assert core.wait_time_max == pytest.approx(2.0)


def test_max_waiting_rejects_with_pool_full_and_changes_nothing() -> None:
    """The caller past max_waiting is refused at once; the queue is untouched."""
    core = make_core(max_size=1, max_waiting=1)
    core.request(0.0, handle=None)
    core.request(0.0, handle="first")
    with pytest.raises(PoolFull, match="max_waiting=1"):
        core.request(0.0, handle="second")
    assert len(core.waiters) == 1
    assert core.rejected == 1


def test_closed_core_refuses_requests() -> None:
    """After close, request raises PoolClosed."""
    core = make_core()
    core.close()
    with pytest.raises(PoolClosed):
        core.request(0.0, handle=None)


def test_close_wakes_waiters_and_destroys_idle_once() -> None:
    """close() hands CLOSED to every waiter, destroys idle entries, and is idempotent."""
    core = make_core(max_size=2)
    idle_entry, used = fill_idle(core, "idle", "used")
    assert core.request(0.0, handle=None).outcome is used
    assert core.request(0.0, handle=None).outcome is idle_entry
    waiter = core.request(0.0, handle="w").outcome
    assert isinstance(waiter, Waiter)
    assert core.release(idle_entry, 0.0).wake == [waiter]
    assert waiter.grant is idle_entry
    waiter2 = core.request(0.0, handle="w2").outcome
    todo = core.close()
    assert todo.wake == [waiter2]
    assert waiter2.grant is CLOSED
    assert todo.destroy == []  # nothing idle: both entries are out
    assert not core.close()
    # Entries in use are destroyed when they come back.
    assert core.release(used, 0.0).destroy == [used]
    assert core.release(idle_entry, 0.0).destroy == [idle_entry]
    assert core.size == 0
    core.check_invariants()


def test_create_failed_frees_the_slot_for_the_next_waiter() -> None:
    """A failed create loses no capacity: the first waiter is told to create instead."""
    core = make_core(max_size=1)
    assert core.request(0.0, handle=None).outcome is CREATE
    waiter = core.request(0.0, handle="w").outcome
    todo = core.create_failed(1.0)
    assert todo.wake == [waiter]
    assert isinstance(waiter, Waiter)
    assert waiter.grant is CREATE
    assert core.creating == 1
    assert core.create_errors == 1
    core.check_invariants()


def test_create_failed_does_not_ask_for_a_replacement() -> None:
    """A create that keeps failing must not loop: no replacement is requested."""
    core = make_core(min_size=2, max_size=2)
    assert core.fill() == 2
    todo = core.create_failed(0.0)
    assert todo.create == 0
    assert core.creating == 1


def test_discard_below_min_size_asks_for_a_replacement() -> None:
    """A FixedPool-like core replaces what it destroys."""
    core = make_core(min_size=2, max_size=2)
    a, _ = fill_idle(core, "a", "b")
    assert core.request(0.0, handle=None).outcome is not None
    todo = core.discard(a, 0.0)
    assert todo.destroy == [a]
    assert todo.create == 1
    assert core.creating == 1
    core.check_invariants()


def test_discard_hands_freed_room_to_a_waiter() -> None:
    """Destroying an entry while someone waits lets that waiter create one."""
    core = make_core(max_size=1)
    (entry,) = fill_idle(core, "a")
    core.request(0.0, handle=None)
    waiter = core.request(0.0, handle="w").outcome
    todo = core.discard(entry, 1.0)
    assert todo.wake == [waiter]
    assert isinstance(waiter, Waiter)
    assert waiter.grant is CREATE
    assert todo.create == 0


def test_leaked_entry_is_destroyed_counted_and_replaced() -> None:
    """A lost lease's entry is destroyed, counted as a leak, and its room filled."""
    core = make_core(min_size=1, max_size=1)
    (entry,) = fill_idle(core, "a")
    assert core.request(0.0, handle=None).outcome is entry
    todo = core.leaked(entry, 1.0)
    assert todo.destroy == [entry]
    assert todo.create == 1
    assert core.stats().leaks == 1
    assert not core.leaked(entry, 2.0)  # reported twice: nothing more happens
    assert core.stats().leaks == 1


def test_an_idle_entry_cannot_leak() -> None:
    """Reporting an idle entry as leaked is refused and changes nothing."""
    core = make_core()
    (entry,) = fill_idle(core, "a")
    with pytest.raises(ValueError, match="idle"):
        core.leaked(entry, 0.0)
    assert list(core.idle) == [entry]
    assert core.stats().leaks == 0


def test_release_beyond_max_idle_destroys_the_surplus() -> None:
    """An elastic core keeps at most max_idle idle entries."""
    core = make_core(max_size=None, max_idle=1)
    e1, e2 = (core.filled(str(i), 0.0) for i in range(core.reserve(2)))
    assert not core.release(e1, 0.0)
    assert core.release(e2, 0.0).destroy == [e2]
    assert list(core.idle) == [e1]
    core.check_invariants()


def test_cancel_leaves_the_queue_and_counts_a_timeout() -> None:
    """A waiter that gives up leaves the queue; cancelling twice is harmless."""
    core = make_core(max_size=1)
    core.request(0.0, handle=None)
    waiter = core.request(0.0, handle="w").outcome
    assert isinstance(waiter, Waiter)
    assert core.cancel(waiter, timed_out=True) is None
    assert core.cancel(waiter, timed_out=True) is None
    assert not core.waiters
    assert core.timeouts == 1


def test_cancel_after_grant_returns_the_grant_and_give_back_passes_it_on() -> None:
    """A grant that raced a cancel is returned, and giving it back serves the next waiter."""
    core = make_core(max_size=1)
    (entry,) = fill_idle(core, "a")
    core.request(0.0, handle=None)
    w1 = core.request(0.0, handle=1).outcome
    w2 = core.request(0.0, handle=2).outcome
    assert isinstance(w1, Waiter) and isinstance(w2, Waiter)
    core.release(entry, 1.0)
    assert core.cancel(w1, timed_out=True) is entry
    assert core.timeouts == 0
    todo = core.give_back(entry, 2.0)
    assert todo.wake == [w2]
    assert w2.grant is entry


def test_give_back_of_a_create_grant_frees_the_slot() -> None:
    """An unused create permit is returned without counting an error."""
    core = make_core(max_size=1)
    assert core.request(0.0, handle=None).outcome is CREATE
    assert not core.give_back(CREATE, 0.0)
    assert core.creating == 0
    assert core.create_errors == 0


def test_entries_of_another_generation_are_forgotten_not_destroyed() -> None:
    """After a fork the child's core ignores the parent's entries entirely."""
    parent = make_core()
    (entry,) = fill_idle(parent, "a")
    child = FreeListCore[str](
        name="t", min_size=0, max_size=2, max_idle=2, max_waiting=None, lifo=True, generation=1
    )
    assert not child.release(entry, 0.0)
    assert not child.discard(entry, 0.0)
    assert not child.idle
    assert child.destroyed == 0


def test_settle_serves_a_waiter_that_raced_a_lock_free_put() -> None:
    """An entry appended without the lock while a waiter queued is handed over by settle."""
    core = make_core(max_size=1)
    core.request(0.0, handle=None)
    entry = core.filled("a", 0.0)
    waiter = core.request(0.0, handle="w").outcome
    core.idle.append(entry)  # the lock-free put, racing the waiter's registration
    with pytest.raises(AssertionError):
        core.check_invariants()
    todo = core.settle(1.0)
    assert todo.wake == [waiter]
    core.check_invariants()


def test_settle_after_close_destroys_what_was_put() -> None:
    """A lock-free put that raced close() is destroyed by settle."""
    core = make_core()
    (entry,) = fill_idle(core, "a")
    core.request(0.0, handle=None)
    core.close()
    core.idle.append(entry)
    assert core.settle(0.0).destroy == [entry]
    core.check_invariants()


def test_fifo_order_rotates_and_lifo_reuses_the_hottest() -> None:
    """order='lifo' reuses the last returned entry; 'fifo' the longest idle."""
    for lifo, expected in ((True, "b"), (False, "a")):
        core = make_core(lifo=lifo)
        fill_idle(core, "a", "b")
        outcome = core.request(0.0, handle=None).outcome
        assert isinstance(outcome, Entry)
        assert outcome.resource == expected


def test_stats_follow_the_counts() -> None:
    """stats() reports live, idle and in-use counts consistently."""
    core = make_core(max_size=3, max_idle=3)
    fill_idle(core, "a", "b", "c")
    taken = core.request(0.0, handle=None).outcome
    assert isinstance(taken, Entry)
    taken.uses += 1
    stats = core.stats()
    assert (stats.size, stats.idle, stats.in_use) == (3, 2, 1)
    assert stats.created - stats.destroyed == stats.size
    assert stats.acquires == 1
    core.discard(taken, 0.0)
    assert core.stats().acquires == 1  # uses of destroyed entries are kept
