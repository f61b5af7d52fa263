"""Unit tests of the free-list core's moves: each legal move, and each illegal one refused."""

from __future__ import annotations

import weakref

import pytest

from respool._core.free_list import (
    CLOSED,
    CREATE,
    PUT_DONE,
    PUT_REFUSED,
    Entry,
    FreeListCore,
    Waiter,
)
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
    assert core.last_create_error is None  # a caller's error is its own answer, not kept
    core.check_invariants()


def test_a_callers_failed_create_below_min_size_is_owed_to_the_filler() -> None:
    """A caller's slot below min_size that produced nothing is reserved for the filler."""
    core = make_core(min_size=2, max_size=2)
    assert core.reserve(2) == 2
    todo = core.create_failed(0.0)
    assert todo.fill
    assert (core.creating, core.owed) == (2, 1)
    core.check_invariants()


def test_discard_below_min_size_is_owed_to_the_filler() -> None:
    """A FixedPool-like core replaces what it destroys, through the filler, not the caller."""
    core = make_core(min_size=2, max_size=2)
    a, _ = fill_idle(core, "a", "b")
    assert core.request(0.0, handle=None).outcome is not None
    todo = core.discard(a, 0.0)
    assert todo.destroy == [a]
    assert todo.fill
    assert (core.creating, core.owed) == (1, 1)
    core.check_invariants()


def test_filler_fills_owed_slots_and_hands_them_to_waiters_first() -> None:
    """The filler's new resource goes to the first waiter, fresh (it needs no check)."""
    core = make_core(min_size=1, max_size=1)
    (entry,) = fill_idle(core, "a")
    assert core.request(0.0, handle=None).outcome is entry
    waiter = core.request(0.0, handle="w").outcome
    assert isinstance(waiter, Waiter)
    core.discard(entry, 1.0)
    assert waiter.grant is None  # the room is owed to the filler, not to the waiter
    assert core.start_fills(1.0) == 1
    todo = core.stock("b", 2.0, owed=True)
    assert todo.wake == [waiter]
    assert isinstance(waiter.grant, Entry)
    assert not core.needs_check(waiter.grant, since=1.0)  # made for the waiter
    core.check_invariants()


def test_failed_fill_stays_owed_and_backs_off() -> None:
    """A fill that fails is retried only when the backoff says, never in a busy loop."""
    core = make_core(min_size=1, max_size=1)
    (entry,) = fill_idle(core, "a")
    core.request(0.0, handle=None)
    core.discard(entry, 0.0)
    assert core.start_fills(0.0) == 1
    error = RuntimeError("down")
    todo = core.fill_failed(10.0, error)
    assert todo.fill
    assert (core.creating, core.owed, core.create_errors) == (1, 1, 1)
    assert core.last_create_error is error
    assert core.start_fills(10.0) == 0  # backing off
    assert 10.0 < core.backoff.retry_at < 10.1
    assert core.start_fills(core.backoff.retry_at) == 1
    core.stock("b", 11.0, owed=True)
    assert core.backoff.failures == 0
    assert core.last_create_error is None
    core.check_invariants()


def test_fill_failed_puts_back_the_unstarted_fills() -> None:
    """Fills taken together and not started after a failure are owed again."""
    core = make_core(min_size=3, max_size=3, max_idle=3)
    entries = fill_idle(core, "a", "b", "c")
    for entry in entries:
        core.request(0.0, handle=None)
        core.discard(entry, 0.0)
    assert core.start_fills(0.0) == 3
    core.fill_failed(0.0, RuntimeError("down"), unstarted=2)
    assert (core.creating, core.owed) == (3, 3)
    with pytest.raises(ValueError, match="unstarted"):
        core.fill_failed(0.0, RuntimeError("down"), unstarted=5)
    core.check_invariants()


def test_close_forgets_owed_slots() -> None:
    """Nothing is owed to a closed pool."""
    core = make_core(min_size=1, max_size=1)
    (entry,) = fill_idle(core, "a")
    core.request(0.0, handle=None)
    core.discard(entry, 0.0)
    core.close()
    assert (core.creating, core.owed) == (0, 0)
    assert core.start_fills(0.0) == 0
    core.check_invariants()


def test_discard_hands_freed_room_to_a_waiter() -> None:
    """Destroying an entry while someone waits lets that waiter create one (above min_size)."""
    core = make_core(max_size=1)
    (entry,) = fill_idle(core, "a")
    core.request(0.0, handle=None)
    waiter = core.request(0.0, handle="w").outcome
    todo = core.discard(entry, 1.0)
    assert todo.wake == [waiter]
    assert isinstance(waiter, Waiter)
    assert waiter.grant is CREATE
    assert not todo.fill


def test_leaked_entry_is_destroyed_counted_and_replaced() -> None:
    """A lost lease's entry is destroyed, counted as a leak, and its room filled."""
    core = make_core(min_size=1, max_size=1)
    (entry,) = fill_idle(core, "a")
    assert core.request(0.0, handle=None).outcome is entry
    todo = core.leaked(entry, 1.0)
    assert todo.destroy == [entry]
    assert todo.fill
    assert core.stats().leaks == 1
    assert not core.leaked(entry, 2.0)  # reported twice: nothing more happens
    assert core.stats().leaks == 1


def test_check_failed_keeps_the_callers_place_at_the_head() -> None:
    """A served waiter whose resource fails its check is served again before later ones."""
    core = make_core(min_size=1, max_size=1)
    (entry,) = fill_idle(core, "a")
    assert core.request(0.0, handle=None).outcome is entry
    w1 = core.request(1.0, handle=1).outcome
    w2 = core.request(2.0, handle=2).outcome
    assert isinstance(w1, Waiter) and isinstance(w2, Waiter)
    core.release(entry, 3.0)
    assert w1.grant is entry
    todo = core.check_failed(entry, 4.0, handle=11)
    again = todo.outcome
    assert isinstance(again, Waiter)
    assert list(core.waiters) == [again, w2]
    assert core.start_fills(4.0) == 1
    core.stock("b", 5.0, owed=True)
    assert isinstance(again.grant, Entry)
    assert w2.grant is None
    assert core.check_failures == 1
    core.check_invariants()


def test_check_failed_with_room_lets_the_caller_create() -> None:
    """Above min_size the destroyed entry's room goes to the caller, not the next waiter."""
    core = make_core(max_size=1)
    (entry,) = fill_idle(core, "a")
    core.request(0.0, handle=None)
    waiter = core.request(0.0, handle="w").outcome
    todo = core.check_failed(entry, 1.0, handle=None)
    assert todo.outcome is CREATE
    assert isinstance(waiter, Waiter)
    assert waiter.grant is None
    core.check_invariants()


def test_check_failed_on_a_closed_pool_says_closed() -> None:
    """A caller whose check failed after close gets CLOSED, and the entry is destroyed."""
    core = make_core()
    (entry,) = fill_idle(core, "a")
    core.request(0.0, handle=None)
    core.close()
    todo = core.check_failed(entry, 0.0, handle="h")
    assert todo.outcome is CLOSED
    assert todo.destroy == [entry]
    core.check_invariants()


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
    assert core.cancel(waiter, 0.0, timed_out=True).outcome is None
    assert core.cancel(waiter, 0.0, timed_out=True).outcome is None
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
    assert core.cancel(w1, 1.0, timed_out=True).outcome is entry
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


def test_entries_of_another_epoch_are_forgotten_not_destroyed() -> None:
    """After a fork the child's core ignores the parent's entries entirely."""
    parent = make_core()
    (entry,) = fill_idle(parent, "a")
    child = parent.forked()
    assert child.foreign(entry)
    assert child.put_nowait(entry) == PUT_REFUSED
    assert not child.release(entry, 0.0)
    assert not child.discard(entry, 0.0)
    assert not child.leaked(entry, 0.0)
    with pytest.raises(ValueError, match="another process"):
        child.check_failed(entry, 0.0, None)
    assert not child.idle
    assert child.destroyed == 0


def test_a_forked_child_owes_its_min_size_and_disowns_the_parents_entries() -> None:
    """The child keeps its size by creating its own; the parent's entries no longer report
    losses to the pool."""
    parent = make_core(min_size=2, max_size=2)
    entries = fill_idle(parent, "a", "b")

    class Shell:
        def _lost(self, entry: object) -> None:
            raise AssertionError("a parent's entry reported as lost in the child")

    shell = Shell()
    for entry in entries:
        entry.owner = weakref.ref(shell)
    child = parent.forked()
    assert all(entry.owner is None for entry in entries)
    assert (child.size, child.owed) == (0, 2)
    todo = child.request(0.0, handle="w")
    assert todo.fill and isinstance(todo.outcome, Waiter)
    child.check_invariants()


def test_non_blocking_moves_answer_without_the_lock() -> None:
    """take_nowait never overtakes a waiter; put_nowait says when the lock is needed."""
    core = make_core(max_size=1)
    (entry,) = fill_idle(core, "a")
    assert core.take_nowait() is entry
    with pytest.raises(IndexError):  # none idle
        core.take_nowait()
    assert core.put_nowait(entry) == PUT_DONE
    assert core.take_nowait() is entry
    waiter = core.request(0.0, handle="w").outcome
    assert core.put_nowait(entry) == PUT_REFUSED  # someone waits: the lock decides
    todo = core.finish_put(entry, PUT_REFUSED, 1.0)
    assert todo.wake == [waiter]
    with pytest.raises(ValueError, match="finish_put"):
        core.finish_put(entry, PUT_DONE, 1.0)


def test_timeout_figures_describe_the_pool() -> None:
    """describe() gives what a PoolTimeout message needs."""
    core = make_core(max_size=2)
    fill_idle(core, "a", "b")
    core.request(0.0, handle=None)
    assert core.describe() == "size=2, lent=1, waiting=0"


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


def test_only_entries_older_than_the_caller_need_a_check() -> None:
    """Made for the caller, or made while it acquired and never lent: no check needed."""
    core = make_core(max_size=3)
    old, new = fill_idle(core, "old", "new")
    assert core.needs_check(old, since=1.0)  # idle from before the caller began
    new.created_at = 2.0
    assert not core.needs_check(new, since=1.0)  # made meanwhile, never lent
    new.uses = 1
    assert core.needs_check(new, since=1.0)  # lent since: it may have gone bad
    assert core.request(5.0, handle=None).outcome is new
    assert core.reserve(1) == 1
    assert not core.needs_check(core.filled("mine", 6.0), since=5.0)  # made for the caller


def test_lock_free_take_refuses_exactly_while_someone_waits() -> None:
    """A waiter in the queue makes take_nowait refuse even an idle entry (a racing put)."""
    core = make_core(max_size=1)
    (entry,) = fill_idle(core, "a")
    assert core.take_nowait() is entry
    waiter = core.request(0.0, handle="w").outcome
    assert isinstance(waiter, Waiter)
    core.idle.append(entry)  # a lock-free put that has not looked again yet
    assert core.take_nowait() is None
    core.settle(1.0)  # the waiter is served: nobody waits any more
    assert waiter.grant is entry
    with pytest.raises(IndexError):
        core.take_nowait()
    core.check_invariants()
