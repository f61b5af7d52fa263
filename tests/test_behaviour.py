"""The behaviour every free-list pool shares, run over FixedPool and ElasticPool alike."""

from __future__ import annotations

import asyncio
import gc
import logging
import queue
import signal
import threading
from collections.abc import Callable

import pytest

import respool
from respool.errors import LeaseError, PoolClosed, PoolFull, PoolTimeout
from tests.async_facade import FacadeLease
from tests.conftest import Abort, Boom, PoolFactory, Res, Tracker, settle, wait_until

PATIENCE = 5.0
#: A KeyboardInterrupt raised inside an event loop's callback stops the loop (asyncio's own
#: rule), so these run on threads only; the asyncio form of an interrupt, cancellation, is
#: tested in test_async_free_list.py.
THREADS_ONLY = pytest.mark.parametrize("shell", ["threads"])


@pytest.fixture(params=["threads", "asyncio"])
def shell(request: pytest.FixtureRequest) -> str:
    """Every behaviour here holds on both shells (the asyncio one behind a blocking facade)."""
    return str(request.param)


class Caller(threading.Thread):
    """A thread that acquires once, reports the outcome, and holds until told to release."""

    def __init__(self, pool: respool.FixedPool[Res] | respool.ElasticPool[Res], **kw: object):
        super().__init__(daemon=True)
        self.pool = pool
        self.kw = kw
        self.outcome: Res | BaseException | None = None
        self.got = threading.Event()
        self.done = threading.Event()

    def run(self) -> None:
        try:
            lease = self.pool.acquire(**self.kw)  # type: ignore[arg-type]
        except BaseException as exc:
            self.outcome = exc
            self.got.set()
            return
        self.outcome = lease.resource
        self.got.set()
        self.done.wait(PATIENCE)
        lease.release()

    def finish(self) -> None:
        self.done.set()
        self.join(PATIENCE)
        assert not self.is_alive()


def start_waiting(pool: respool.FixedPool[Res] | respool.ElasticPool[Res], **kw: object) -> Caller:
    """Start a caller and return once it is queued in the pool."""
    before = pool.stats().waiting
    caller = Caller(pool, **kw)
    caller.start()
    wait_until(lambda: pool.stats().waiting == before + 1 or caller.got.is_set())
    return caller


# -- acquire and release -----------------------------------------------------------------


def test_with_block_lends_and_returns_the_resource(make_pool: PoolFactory) -> None:
    """A with block yields a resource and gives it back, clean, for reuse."""
    pool = make_pool(1)
    with pool.acquire() as res:
        assert isinstance(res, Res)
        res.dirty = True
        assert pool.stats().in_use == 1
    assert pool.stats().in_use == 0
    with pool.acquire() as again:
        assert again is res
        assert not again.dirty
        assert again.resets == 1
    assert pool.stats().acquires == 2


def test_lease_release_by_hand(make_pool: PoolFactory) -> None:
    """acquire() returns a Lease that can be ended without a with block."""
    pool = make_pool(1)
    lease = pool.acquire()
    assert isinstance(lease, respool.Lease | FacadeLease)
    assert lease.active
    res = lease.resource
    lease.release()
    assert not lease.active
    again = pool.acquire(timeout=0)
    assert again.resource is res
    again.release()


def test_try_acquire_returns_none_instead_of_waiting(make_pool: PoolFactory) -> None:
    """try_acquire never waits: None when everything is in use."""
    pool = make_pool(1)
    held = pool.try_acquire()
    assert held is not None
    assert pool.try_acquire() is None
    held.release()
    assert pool.stats().timeouts == 0  # try_acquire is not an acquire that timed out
    again = pool.try_acquire()
    assert again is not None
    again.release()


def test_lifo_reuses_the_most_recent_and_fifo_rotates(make_pool: PoolFactory) -> None:
    """order='lifo' hands out the last returned resource, 'fifo' the longest idle."""
    for order, pick_last in (("lifo", True), ("fifo", False)):
        pool = make_pool(2, order=order)
        a, b = pool.acquire(), pool.acquire()
        first, second = a.resource, b.resource
        a.release()
        b.release()
        with pool.acquire() as res:
            assert res is (second if pick_last else first)
        pool.close()


# -- ending a lease ----------------------------------------------------------------------


def test_ordinary_exception_resets_and_propagates_unchanged(
    make_pool: PoolFactory, tracker: Tracker
) -> None:
    """An Exception in the body: the resource is reset and reused; the error is untouched."""
    pool = make_pool(1)
    error = Boom("body failed")
    with pytest.raises(Boom) as caught, pool.acquire() as res:
        res.dirty = True
        raise error
    assert caught.value is error
    assert res.resets == 1
    assert not res.destroyed
    with pool.acquire() as again:
        assert again is res


@pytest.mark.parametrize(
    "abort", [Abort, KeyboardInterrupt, SystemExit, asyncio.CancelledError, GeneratorExit]
)
def test_abort_discards_the_resource(
    make_pool: PoolFactory, tracker: Tracker, abort: type[BaseException]
) -> None:
    """A BaseException that is not an Exception destroys the resource, never resets it."""
    pool = make_pool(1)
    error = abort()
    with pytest.raises(abort) as caught, pool.acquire() as res:
        raise error
    assert caught.value is error
    assert res.destroyed
    assert res.resets == 0
    with pool.acquire() as again:
        assert again is not res
    assert pool.stats().destroyed == 1


def test_discard_on_error_destroys_after_an_exception(make_pool: PoolFactory) -> None:
    """With discard_on_error, an ordinary Exception destroys the resource too."""
    pool = make_pool(1, discard_on_error=True)
    with pytest.raises(Boom), pool.acquire() as res:
        raise Boom
    assert res.destroyed
    assert res.resets == 0
    with pool.acquire() as res2:  # a clean exit still resets
        pass
    assert res2.resets == 1


def test_lease_discard_destroys(make_pool: PoolFactory) -> None:
    """lease.discard() destroys the resource; the pool goes on."""
    pool = make_pool(1)
    lease = pool.acquire()
    res = lease.resource
    lease.discard()
    assert res.destroyed
    with pool.acquire(timeout=1) as again:
        assert again is not res


# -- lease errors --------------------------------------------------------------------------


def test_ended_lease_refuses_every_use(make_pool: PoolFactory) -> None:
    """After release: resource, release and discard raise LeaseError."""
    pool = make_pool(1)
    lease = pool.acquire()
    lease.release()
    with pytest.raises(LeaseError):
        _ = lease.resource
    with pytest.raises(LeaseError):
        lease.release()
    with pytest.raises(LeaseError):
        lease.discard()
    with pytest.raises(LeaseError):
        lease.__enter__()
    assert pool.stats().in_use == 0


def test_double_release_cannot_end_the_next_callers_lease(make_pool: PoolFactory) -> None:
    """A stale lease for a resource now lent again cannot release it from under its user."""
    pool = make_pool(1)
    first = pool.acquire()
    first.release()
    second = pool.acquire()
    with pytest.raises(LeaseError):
        first.release()
    assert second.active
    assert pool.stats().in_use == 1
    second.release()


def test_release_inside_the_with_block_ends_it_once(make_pool: PoolFactory) -> None:
    """Releasing by hand inside the block leaves nothing for the block's end to do."""
    pool = make_pool(1)
    lease = pool.acquire()
    with lease as res:
        lease.release()
    assert res.resets == 1
    assert pool.stats().idle == 1


def test_releasing_into_another_pool_is_refused(make_pool: PoolFactory) -> None:
    """A lease can only be ended by the pool it came from."""
    one, other = make_pool(1), make_pool(1)
    lease = one.acquire()
    with pytest.raises(LeaseError, match="not from"):
        other.release(lease)
    with pytest.raises(LeaseError):
        other.discard(lease)
    assert lease.active
    one.release(lease)
    assert not lease.active


# -- waiting ---------------------------------------------------------------------------------


def test_acquire_times_out_with_pool_timeout(make_pool: PoolFactory) -> None:
    """When all is in use, acquire waits up to timeout and raises PoolTimeout (a TimeoutError)."""
    pool = make_pool(1)
    with pool.acquire():
        with pytest.raises(PoolTimeout) as caught:
            pool.acquire(timeout=0.05)
        assert isinstance(caught.value, TimeoutError)
        with pytest.raises(PoolTimeout):
            pool.acquire(timeout=0)
    stats = pool.stats()
    assert stats.timeouts == 2
    assert stats.waiting == 0


def test_pool_default_timeout_applies(make_pool: PoolFactory) -> None:
    """The constructor's timeout is used when acquire gives none."""
    pool = make_pool(1, timeout=0.01)
    with pool.acquire(), pytest.raises(PoolTimeout):
        pool.acquire()


def test_waiters_are_served_in_arrival_order(make_pool: PoolFactory) -> None:
    """Strict FIFO: each release goes to the longest-waiting caller."""
    pool = make_pool(1)
    lease = pool.acquire()
    callers = [start_waiting(pool, timeout=PATIENCE) for _ in range(5)]
    assert pool.stats().waiting == 5
    lease.release()
    for caller in callers:
        assert caller.got.wait(PATIENCE)
        assert isinstance(caller.outcome, Res)
        assert all(not c.got.is_set() for c in callers[callers.index(caller) + 1 :])
        caller.finish()
    assert pool.stats().waits == 5


def test_newcomer_never_barges_past_a_waiter(make_pool: PoolFactory) -> None:
    """While someone waits, a released resource is theirs, never a newcomer's."""
    pool = make_pool(1)
    lease = pool.acquire()
    waiter = start_waiting(pool, timeout=PATIENCE)
    assert pool.try_acquire() is None
    with pytest.raises(PoolTimeout):
        pool.acquire(timeout=0)
    lease.release()
    assert waiter.got.wait(PATIENCE)
    assert isinstance(waiter.outcome, Res)
    assert pool.try_acquire() is None  # the waiter holds it now
    waiter.finish()


def test_max_waiting_rejects_at_once_with_pool_full(make_pool: PoolFactory) -> None:
    """The caller beyond max_waiting gets PoolFull immediately, not after a timeout."""
    pool = make_pool(1, max_waiting=1)
    lease = pool.acquire()
    waiter = start_waiting(pool, timeout=PATIENCE)
    with pytest.raises(PoolFull):
        pool.acquire(timeout=PATIENCE)
    assert pool.stats().rejected == 1
    lease.release()
    assert waiter.got.wait(PATIENCE)
    waiter.finish()


def test_max_waiting_zero_never_queues(make_pool: PoolFactory) -> None:
    """max_waiting=0: an exhausted pool refuses instead of queueing."""
    pool = make_pool(1, max_waiting=0)
    with pool.acquire(), pytest.raises(PoolFull):
        pool.acquire()


def test_timed_out_waiter_strands_nothing(make_pool: PoolFactory) -> None:
    """After a waiter gives up, the next release still reaches the remaining waiter."""
    pool = make_pool(1)
    lease = pool.acquire()
    quitter = start_waiting(pool, timeout=0.05)
    assert quitter.got.wait(PATIENCE)
    assert isinstance(quitter.outcome, PoolTimeout)
    stayer = start_waiting(pool, timeout=PATIENCE)
    lease.release()
    assert stayer.got.wait(PATIENCE)
    assert isinstance(stayer.outcome, Res)
    stayer.finish()
    quitter.join(PATIENCE)


def test_wait_time_is_reported(make_pool: PoolFactory) -> None:
    """Acquires that waited are counted with their waiting time."""
    pool = make_pool(1)
    lease = pool.acquire()
    waiter = start_waiting(pool, timeout=PATIENCE)
    lease.release()
    assert waiter.got.wait(PATIENCE)
    waiter.finish()
    stats = pool.stats()
    assert stats.waits == 1
    assert stats.wait_time_total > 0
    assert stats.wait_time_max == stats.wait_time_total == stats.wait_time_mean


# -- failing callbacks ---------------------------------------------------------------------


def test_failing_create_never_loses_capacity(
    make_pool: PoolFactory, tracker: Tracker, kind: str
) -> None:
    """While create fails the pool serves nobody it cannot; once create works again the
    pool is back to full capacity, with the failures counted."""
    pool = make_pool(1)
    lease = pool.acquire()
    tracker.fail_create = error = Boom("cannot connect")
    lease.discard()  # a FixedPool's replacement fails in the background: logged, not raised
    settle()
    assert pool.stats().size == 0
    if kind == "elastic":
        with pytest.raises(Boom) as caught:  # an acquire's own create: its error is the answer
            pool.acquire(timeout=0)
        assert caught.value is error
    else:
        with pytest.raises(PoolTimeout) as timed_out:  # waits for the filler's replacement
            pool.acquire(timeout=0.05)
        assert timed_out.value.__cause__ is error
    assert pool.stats().create_errors >= 1
    tracker.fail_create = None
    with pool.acquire(timeout=PATIENCE) as res:
        assert isinstance(res, Res)
    assert pool.stats().size == 1


def test_failing_create_hands_the_slot_to_the_next_waiter(
    make_pool: PoolFactory, tracker: Tracker, kind: str
) -> None:
    """A failed create strands no waiter: the room or the replacement reaches the next one."""
    pool = make_pool(1)
    lease = pool.acquire()
    first = start_waiting(pool, timeout=PATIENCE)
    second = start_waiting(pool, timeout=PATIENCE)
    tracker.fail_create, tracker.fail_create_times = Boom("down"), 1
    lease.discard()
    assert first.got.wait(PATIENCE)
    if kind == "elastic":
        # The freed room goes to `first`, which creates its own resource and gets its error.
        assert isinstance(first.outcome, Boom)
        assert second.got.wait(PATIENCE)
        assert isinstance(second.outcome, Res)
        second.finish()
        first.join(PATIENCE)
    else:
        # The filler's first attempt fails, its retry succeeds: `first` gets it, in order.
        assert isinstance(first.outcome, Res)
        assert not second.got.is_set()
        first.finish()
        assert second.got.wait(PATIENCE)
        assert isinstance(second.outcome, Res)
        second.finish()
    assert pool.stats().create_errors == 1


def test_failing_reset_destroys_and_does_not_raise(
    make_pool: PoolFactory, tracker: Tracker, caplog: pytest.LogCaptureFixture
) -> None:
    """reset raising means 'cannot be cleaned': destroyed, counted, logged, not raised."""
    pool = make_pool(1)
    tracker.fail_reset = Boom("dirty for good")
    with caplog.at_level(logging.WARNING, logger="respool"), pool.acquire() as res:
        pass
    assert res.destroyed
    assert pool.stats().reset_errors == 1
    assert "reset raised" in caplog.text
    tracker.fail_reset = None
    with pool.acquire() as again:
        assert again is not res


def test_failing_reset_does_not_mask_the_body_error(
    make_pool: PoolFactory, tracker: Tracker
) -> None:
    """The body's exception propagates even when the reset after it fails."""
    pool = make_pool(1)
    tracker.fail_reset = Boom("reset")
    error = ValueError("body")
    with pytest.raises(ValueError, match="body") as caught, pool.acquire():
        raise error
    assert caught.value is error
    assert pool.stats().reset_errors == 1


@pytest.mark.parametrize("how", ["false", "raises"])
def test_unviable_resource_is_destroyed_and_another_used(
    make_pool: PoolFactory, tracker: Tracker, how: str
) -> None:
    """check returning False or raising: destroyed, and the acquire still succeeds."""
    pool = make_pool(2)
    a, b = pool.acquire(), pool.acquire()
    stale = {a.resource, b.resource}
    a.release()
    b.release()
    tracker.checked.clear()
    if how == "false":
        for res in stale:
            res.broken = True
    else:
        tracker.fail_check = Boom("probe failed")
    with pool.acquire(timeout=1) as got:
        tracker.fail_check = None
        assert got not in stale
        assert not got.destroyed
    assert tracker.checked, "check was never called"
    assert all(res.destroyed for res in tracker.checked)
    assert pool.stats().check_failures == len(tracker.checked) >= 1


def test_waiter_whose_resource_fails_its_check_keeps_its_place(
    make_pool: PoolFactory, tracker: Tracker
) -> None:
    """Strict FIFO: the first waiter, handed a resource that fails its check, gets the
    replacement (or the room to make one) before the second waiter."""
    pool = make_pool(1)
    lease = pool.acquire()
    first = start_waiting(pool, timeout=PATIENCE)
    second = start_waiting(pool, timeout=PATIENCE)
    lease.resource.broken = True
    lease.release()
    assert first.got.wait(PATIENCE)
    assert isinstance(first.outcome, Res)
    assert not first.outcome.broken
    assert not second.got.is_set()
    first.finish()
    assert second.got.wait(PATIENCE)
    second.finish()
    assert pool.stats().check_failures == 1


def test_check_that_always_fails_cannot_spin(make_pool: PoolFactory, tracker: Tracker) -> None:
    """Even a check that rejects everything ends: new resources are lent unchecked."""
    pool = make_pool(2)
    with pool.acquire():
        pass
    tracker.fail_check = Boom("broken probe")
    for _ in range(5):
        with pool.acquire(timeout=PATIENCE) as res:
            assert not res.destroyed
    # Each acquire checks at most the resources idle when it began (two here); whatever was
    # made since is taken unchecked, so no caller chases replacements.
    assert 1 <= pool.stats().check_failures <= 2 * 5


def test_check_failures_within_the_deadline_end_in_the_create_error(
    make_pool: PoolFactory, tracker: Tracker, kind: str
) -> None:
    """If every candidate is unviable and none can be made, the acquire keeps its deadline
    and says why: create's error (ElasticPool), or PoolTimeout caused by it (FixedPool)."""
    pool = make_pool(2)
    held = pool.acquire()
    with pool.acquire() as spare:
        pass
    spare.broken = True
    tracker.fail_create = error = Boom("no new ones")
    expected = Boom if kind == "elastic" else PoolTimeout
    with pytest.raises(expected) as caught:
        pool.acquire(timeout=0.05)  # checks `spare`, destroys it, cannot create another
    if kind == "fixed":
        assert caught.value.__cause__ is error
    tracker.fail_create = None
    held.release()


def test_failing_destroy_is_counted_and_logged_never_raised(
    make_pool: PoolFactory, tracker: Tracker, caplog: pytest.LogCaptureFixture
) -> None:
    """destroy raising never reaches an unrelated caller."""
    pool = make_pool(2)
    tracker.fail_destroy = Boom("close failed")
    with caplog.at_level(logging.WARNING, logger="respool"):
        first, second = pool.acquire(), pool.acquire()
        first.discard()
        second.release()
        pool.close()
    stats = pool.stats()
    assert stats.destroy_errors == stats.destroyed >= 2
    assert "destroy raised" in caplog.text


@THREADS_ONLY
def test_keyboard_interrupt_in_check_destroys_and_propagates(
    make_pool: PoolFactory, tracker: Tracker
) -> None:
    """A BaseException from check is raised to the acquirer; the resource is destroyed."""
    pool = make_pool(1)
    with pool.acquire() as res:
        pass
    tracker.fail_check = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt):
        pool.acquire()
    assert res.destroyed


@THREADS_ONLY
def test_keyboard_interrupt_in_reset_destroys_and_propagates(
    make_pool: PoolFactory, tracker: Tracker
) -> None:
    """A BaseException from reset is raised from the release; the resource is destroyed."""
    pool = make_pool(1)
    tracker.fail_reset = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt), pool.acquire() as res:
        pass
    assert res.destroyed
    assert pool.stats().reset_errors == 1


@THREADS_ONLY
def test_keyboard_interrupt_in_create_frees_the_slot(
    make_pool: PoolFactory, tracker: Tracker, kind: str
) -> None:
    """A BaseException from create is raised to the acquirer that ran it (or, in the
    filler, logged and retried); either way no reserved slot is stranded."""
    pool = make_pool(1)
    lease = pool.acquire()
    tracker.fail_create = KeyboardInterrupt()
    lease.discard()
    settle()
    assert pool.stats().size == 0
    if kind == "elastic":
        with pytest.raises(KeyboardInterrupt):
            pool.acquire()
        assert pool.stats().creating == 0
    tracker.fail_create = None
    with pool.acquire(timeout=PATIENCE):
        pass
    assert pool.stats().size == 1


# -- lost leases ----------------------------------------------------------------------------


def test_dropped_lease_is_recovered_destroyed_and_counted(
    make_pool: PoolFactory, tracker: Tracker
) -> None:
    """A lease dropped without being ended loses no slot: its resource (state unknown) is
    destroyed, the loss counted in leaks and reported with a ResourceWarning."""
    pool = make_pool(1)
    with pytest.warns(ResourceWarning, match="garbage-collected without being released"):
        pool.acquire()  # the lease is dropped at once, still active
    settle()
    stats = pool.stats()
    assert (stats.leaks, stats.in_use) == (1, 0)
    assert len(tracker.destroyed) == 1
    with pool.acquire(timeout=0.5) as res:  # not a PoolTimeout: the slot is back
        assert not res.destroyed


def test_lease_lost_in_a_reference_cycle_is_recovered(
    make_pool: PoolFactory, tracker: Tracker
) -> None:
    """A lease that dies with a reference cycle (found by the collector) is recovered too."""
    pool = make_pool(1)

    class Holder:
        pass

    holder = Holder()
    holder.me = holder  # type: ignore[attr-defined]
    holder.lease = pool.acquire()  # type: ignore[attr-defined]
    with pytest.warns(ResourceWarning):  # noqa: PT031 - the loss happens across these lines
        del holder
        gc.collect()
    settle()
    assert pool.stats().leaks == 1
    with pool.acquire(timeout=0.5):
        pass


def test_lease_lost_while_the_lock_is_held_is_recovered_later(
    make_pool: PoolFactory, tracker: Tracker
) -> None:
    """A lease lost while its pool's lock is taken (a collection can start anywhere) does
    not deadlock; the slot is recovered once the lock is free."""
    pool = make_pool(1)
    lease = pool.acquire()
    with pytest.warns(ResourceWarning), pool._lock:  # noqa: PT031 - the loss happens across these lines
        del lease
        assert tracker.destroyed == []
    settle()
    assert pool.stats().leaks == 1
    assert len(tracker.destroyed) == 1
    assert pool._orphans == []


def test_ended_lease_is_no_leak(make_pool: PoolFactory) -> None:
    """Leases ended normally, then dropped, are not counted as leaks."""
    pool = make_pool(1)
    with pool.acquire():
        pass
    pool.acquire().release()
    lease = pool.acquire()
    lease.discard()
    del lease
    gc.collect()
    settle()
    assert pool.stats().leaks == 0


def test_close_wakes_waiters_with_pool_closed(make_pool: PoolFactory) -> None:
    """Waiting callers get PoolClosed as soon as the pool closes."""
    pool = make_pool(1)
    lease = pool.acquire()
    waiters = [start_waiting(pool, timeout=PATIENCE) for _ in range(3)]
    pool.close()
    for waiter in waiters:
        assert waiter.got.wait(PATIENCE)
        assert isinstance(waiter.outcome, PoolClosed)
        waiter.join(PATIENCE)
    lease.release()


def test_close_destroys_idle_now_and_leased_on_return(make_pool: PoolFactory) -> None:
    """Idle resources go at close(); one still lent goes when it comes back."""
    pool = make_pool(2)
    lease = pool.acquire()
    with pool.acquire() as idle_res:
        pass
    pool.close()
    assert pool.closed
    assert idle_res.destroyed
    assert not lease.resource.destroyed
    lent = lease.resource
    lease.release()
    assert lent.destroyed
    assert pool.stats().size == 0


def test_close_is_idempotent_and_refuses_new_acquires(make_pool: PoolFactory) -> None:
    """A second close does nothing; acquire and try_acquire raise PoolClosed."""
    pool = make_pool(1)
    pool.close()
    pool.close()
    with pytest.raises(PoolClosed):
        pool.acquire()
    with pytest.raises(PoolClosed):
        pool.try_acquire()


def test_pool_is_a_context_manager(make_pool: PoolFactory) -> None:
    """Leaving the with block closes the pool."""
    with make_pool(1) as pool, pool.acquire():
        pass
    assert pool.closed


def test_stats_snapshot_is_frozen(make_pool: PoolFactory) -> None:
    """PoolStats cannot be changed after the fact."""
    stats = make_pool(1).stats()
    with pytest.raises(AttributeError):
        stats.size = 99  # type: ignore[misc]
    assert isinstance(stats, respool.PoolStats)


def test_many_threads_keep_counts_exact(make_pool: PoolFactory) -> None:
    """Contended acquire/release from several threads lends each resource to one at a time."""
    pool = make_pool(3)
    errors: queue.SimpleQueue[BaseException] = queue.SimpleQueue()
    busy: set[int] = set()
    busy_lock = threading.Lock()
    start = threading.Barrier(6)

    def work() -> None:
        try:
            start.wait(PATIENCE)
            for _ in range(300):
                with pool.acquire(timeout=PATIENCE) as res:
                    with busy_lock:
                        assert res.n not in busy, f"{res} lent twice"
                        busy.add(res.n)
                    with busy_lock:
                        busy.discard(res.n)
        except BaseException as exc:
            errors.put(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(PATIENCE * 4)
    assert errors.empty(), errors.get()
    assert pool.stats().acquires == 1800


def test_callbacks_never_run_under_the_pool_lock(make_pool: PoolFactory, tracker: Tracker) -> None:
    """create, reset, check and destroy all run with the pool's lock free."""
    pool = make_pool(2)
    seen: list[str] = []

    def spy(name: str, callback: Callable[..., object]) -> Callable[..., object]:
        def wrapped(*args: object) -> object:
            assert not pool._lock.locked(), f"{name} ran under the pool lock"
            seen.append(name)
            return callback(*args)

        return wrapped

    pool._create = spy("create", tracker.create)  # type: ignore[method-assign]
    pool._reset = spy("reset", tracker.reset)
    pool._check = spy("check", tracker.check)
    pool._destroy_fn = spy("destroy", tracker.destroy)
    a, b = pool.acquire(), pool.acquire()
    a.release()
    b.discard()
    with pool.acquire():
        pass
    pool.close()
    assert {"reset", "check", "destroy"} <= set(seen)


def test_interrupted_waiter_leaves_the_queue(make_pool: PoolFactory) -> None:
    """A waiter interrupted by KeyboardInterrupt leaves the queue; the next release is kept."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are delivered to the main thread only")
    pool = make_pool(1)
    lease = pool.acquire()
    interrupter = threading.Thread(
        target=lambda: (
            wait_until(lambda: pool.stats().waiting == 1),
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT),  # type: ignore[arg-type]
        )
    )
    interrupter.start()
    with pytest.raises(KeyboardInterrupt):
        pool.acquire(timeout=PATIENCE)
    interrupter.join(PATIENCE)
    assert pool.stats().waiting == 0
    lease.release()
    assert pool.stats().idle == 1
    with pool.acquire(timeout=0):
        pass


class Hostile:
    """A resource whose == and hash raise, like a numpy array's truth value."""

    def __eq__(self, other: object) -> bool:
        raise ValueError("the truth value of this object is ambiguous")

    def __hash__(self) -> int:
        raise TypeError("unhashable")


def test_resources_are_never_compared_or_hashed(make_pool: PoolFactory) -> None:
    """Lending, returning, discarding, losing and closing never call == or hash()."""
    made: list[Hostile] = []

    def create() -> Hostile:
        made.append(Hostile())
        return made[-1]

    pool = make_pool(2, lifecycle=respool.Lifecycle(create, reset=lambda r: None))
    with pool.acquire() as first, pool.acquire() as second:
        assert first is not second
    pool.acquire().discard()
    with pytest.warns(ResourceWarning):
        pool.acquire()  # dropped: recovered without comparing anything
    settle()
    with pool.acquire(timeout=PATIENCE):
        pass
    stats = pool.stats()
    assert (stats.leaks, stats.in_use) == (1, 0)
