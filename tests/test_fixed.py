"""What only FixedPool does: create everything up front and keep its size."""

from __future__ import annotations

import logging
import threading

import pytest

import respool
from tests.conftest import Abort, Boom, Res, Tracker, settle

PATIENCE = 5.0


def test_creates_size_resources_in_the_constructor(tracker: Tracker) -> None:
    """All `size` resources exist before the first acquire."""
    pool = respool.FixedPool(tracker.lifecycle(), size=3)
    stats = pool.stats()
    assert (stats.size, stats.idle, stats.created) == (3, 3, 3)
    assert len(tracker.made) == 3
    pool.close()


def test_constructor_failure_destroys_what_it_made_and_raises(tracker: Tracker) -> None:
    """If the third create fails, the first two are destroyed and the error propagates."""
    calls = 0
    error = Boom("third one fails")

    def create() -> object:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise error
        return tracker.create()

    with pytest.raises(Boom) as caught:
        respool.FixedPool(create, size=4, destroy=tracker.destroy)
    assert caught.value is error
    assert calls == 3
    assert sorted(tracker.destroyed, key=id) == sorted(tracker.made, key=id)
    assert len(tracker.made) == 2


def test_destroyed_resource_is_replaced_to_keep_the_size(tracker: Tracker) -> None:
    """Discard, abort and failed reset all leave the pool at its size."""
    pool = respool.FixedPool(tracker.lifecycle(), size=2)
    pool.acquire().discard()
    settle()
    assert pool.stats().size == 2
    tracker.fail_reset = Boom("reset")
    with pool.acquire():
        pass
    tracker.fail_reset = None
    settle()
    stats = pool.stats()
    assert (stats.size, stats.idle, stats.created, stats.destroyed) == (2, 2, 4, 2)
    pool.close()


def test_failed_replacement_is_retried_in_the_background_with_backoff(
    tracker: Tracker, caplog: pytest.LogCaptureFixture
) -> None:
    """A replacement that cannot be created is retried with backoff; the first failure is
    logged with its traceback, later ones in one line each; waiters get it once it works."""
    pool = respool.FixedPool(tracker.lifecycle(), size=1)
    lease = pool.acquire()
    tracker.fail_create, tracker.fail_create_times = Boom("server down"), 3
    with caplog.at_level(logging.WARNING, logger="respool"):
        lease.discard()
        with pool.acquire(timeout=PATIENCE) as res:  # waits for the third retry
            assert not res.destroyed
    failures = [r for r in caplog.records if "creating a replacement failed" in r.getMessage()]
    assert len(failures) == 3
    assert failures[0].exc_info is not None
    assert all(r.exc_info is None for r in failures[1:])
    assert "3 times in a row" in failures[2].getMessage()
    stats = pool.stats()
    assert (stats.size, stats.create_errors) == (1, 3)
    pool.close()


def test_waiter_times_out_with_the_create_error_as_cause(tracker: Tracker) -> None:
    """While replacements keep failing, a waiter gets PoolTimeout saying the timeout and the
    pool's figures, chained to the last create error."""
    pool = respool.FixedPool(tracker.lifecycle(), size=1, name="db")
    lease = pool.acquire()
    tracker.fail_create = error = Boom("server down")
    lease.discard()
    with pytest.raises(respool.PoolTimeout) as caught:
        pool.acquire(timeout=0.2)
    assert caught.value.__cause__ is error
    message = str(caught.value)
    assert "'db'" in message and "0.2 s" in message and "size=0" in message
    pool.close()


def test_timeout_message_says_how_many_are_lent(tracker: Tracker) -> None:
    """An exhausted pool's PoolTimeout names the timeout, the size and the lent count."""
    pool = respool.FixedPool(tracker.lifecycle(), size=2)
    held = [pool.acquire(), pool.acquire()]
    with pytest.raises(respool.PoolTimeout, match=r"within 0\.01 s \(size=2, lent=2"):
        pool.acquire(timeout=0.01)
    with pytest.raises(respool.PoolTimeout, match=r"may not wait \(size=2, lent=2"):
        pool.acquire(timeout=0)
    for lease in held:
        lease.release()
    pool.close()


def test_callers_wait_rather_than_grow(tracker: Tracker) -> None:
    """An exhausted FixedPool never creates beyond its size."""
    pool = respool.FixedPool(tracker.lifecycle(), size=2)
    held = [pool.acquire(), pool.acquire()]
    assert pool.try_acquire() is None
    assert len(tracker.made) == 2
    for lease in held:
        lease.release()
    pool.close()


def test_lifecycle_and_keywords_merge() -> None:
    """A Lifecycle plus a keyword for a callback it lacks works; the same one twice does not."""
    seen: list[str] = []
    base = respool.Lifecycle(lambda: "r", reset=lambda r: seen.append("reset"))
    pool = respool.FixedPool(base, size=1, destroy=lambda r: seen.append("destroy"))
    with pool.acquire():
        pass
    pool.close()
    assert seen == ["reset", "destroy"]
    with pytest.raises(TypeError, match="reset"):
        respool.FixedPool(base, size=1, reset=lambda r: None)


def test_replacement_is_created_in_the_background_not_in_release(tracker: Tracker) -> None:
    """release() after a failed reset returns at once; a background thread makes the
    replacement, and a waiter is handed it."""
    gate = threading.Event()
    makers: list[threading.Thread] = []

    def slow_create() -> Res:
        if makers:  # the replacement: held until the test opens the gate
            assert gate.wait(PATIENCE)
        makers.append(threading.current_thread())
        return tracker.create()

    pool = respool.FixedPool(slow_create, size=1, reset=tracker.reset)
    lease = pool.acquire()
    tracker.fail_reset = Boom("dirty")
    lease.release()  # with the create in this thread, this would block until the gate opened
    tracker.fail_reset = None
    assert not gate.is_set()
    assert pool.stats().creating == 1
    gate.set()
    with pool.acquire(timeout=PATIENCE) as res:
        assert not res.destroyed
    assert makers[-1] is not threading.current_thread()
    pool.close()


@pytest.mark.parametrize("where", ["discard", "abort"])
def test_base_exception_from_destroy_strands_no_slot(tracker: Tracker, where: str) -> None:
    """A BaseException from destroy reaches the caller, and the pool still refills: every
    reserved slot is filled or given back, whatever a callback raises."""
    interrupt = Abort("ctrl-c during cleanup")
    pool = respool.FixedPool(tracker.lifecycle(), size=1, timeout=PATIENCE)
    lease = pool.acquire()
    tracker.fail_destroy = interrupt
    if where == "discard":
        with pytest.raises(Abort):
            lease.discard()
    else:
        with pytest.raises(Abort), lease:
            raise Abort("the body was interrupted")
    tracker.fail_destroy = None
    with pool.acquire() as res:
        assert not res.destroyed
    stats = pool.stats()
    assert (stats.size, stats.destroy_errors, stats.creating) == (1, 1, 0)
    pool.close()


def test_base_exception_from_a_replacement_create_loses_no_capacity(tracker: Tracker) -> None:
    """A size-3 pool whose replacement create raises a BaseException once is back to 3."""
    pool = respool.FixedPool(tracker.lifecycle(), size=3, timeout=PATIENCE)
    leases = [pool.acquire() for _ in range(3)]
    tracker.fail_create, tracker.fail_create_times = KeyboardInterrupt(), 1
    leases[0].discard()
    leases[1].discard()
    leases[2].release()
    held = [pool.acquire() for _ in range(3)]  # all three are lent again
    assert len({id(lease.resource) for lease in held}) == 3
    for lease in held:
        lease.release()
    assert pool.stats().size == 3
    pool.close()


def test_base_exception_from_destroy_after_a_failed_check_strands_nothing(
    tracker: Tracker,
) -> None:
    """On acquire's path, a check fails and then destroy raises: the caller gets the
    BaseException, and the slot is refilled for the next caller."""
    pool = respool.FixedPool(tracker.lifecycle(), size=1, timeout=PATIENCE)
    with pool.acquire() as res:
        res.broken = True
    tracker.fail_destroy = Abort("interrupted cleanup")
    with pytest.raises(Abort):
        pool.acquire()
    tracker.fail_destroy = None
    with pool.acquire() as again:
        assert not again.broken
    stats = pool.stats()
    assert (stats.size, stats.check_failures, stats.waiting, stats.creating) == (1, 1, 0, 0)
    pool.close()


def test_base_exception_from_destroy_during_close_destroys_the_rest(tracker: Tracker) -> None:
    """close() whose first destroy is interrupted still destroys the other idle resources and
    the lent one at its return; the interrupt reaches the caller of close()."""
    pool = respool.FixedPool(tracker.lifecycle(), size=3, timeout=PATIENCE)
    lease = pool.acquire()
    tracker.fail_destroy = Abort("ctrl-c during cleanup")
    with pytest.raises(Abort):
        pool.close()
    tracker.fail_destroy = None
    assert len(tracker.destroyed) == 2  # both idle ones, though each destroy raised
    lease.release()
    stats = pool.stats()
    assert (stats.size, stats.destroyed, stats.destroy_errors) == (0, 3, 2)
