"""Debug mode: acquiring stacks in lease errors, *not quite done* resources, lost leases."""

from __future__ import annotations

import gc
import logging
import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

import respool
from respool import _debug
from respool.lease import DebugLease, Lease
from tests.conftest import Boom, PoolFactory, Res, Tracker, settle


def acquire_here(pool: respool.FixedPool[Res] | respool.ElasticPool[Res]) -> Lease[Res]:
    """A named frame, so the reported stack can be recognised."""
    return pool.acquire()


def test_debug_switch_reports_and_validates() -> None:
    """debug() sets and reports the mode; anything but a bool or None is a TypeError."""
    before = respool.debug()
    try:
        assert respool.debug(True) is True
        assert respool.debug() is True
        assert respool.debug(False) is False
        with pytest.raises(TypeError, match="debug"):
            respool.debug(1)  # type: ignore[arg-type]
        assert respool.debug() is False
    finally:
        respool.debug(before)


def test_environment_variable_turns_debug_mode() -> None:
    """RESPOOL_DEBUG=1 at start-up turns debug mode on; pools then lend debug leases."""
    code = (
        "import respool; p = respool.FixedPool(object, size=1); l = p.acquire();"
        " print(respool.debug(), type(l).__name__); l.release()"
    )
    env = {**os.environ, "RESPOOL_DEBUG": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.stdout.split() == ["True", "DebugLease"], done.stderr


def test_off_lends_plain_leases(make_pool: PoolFactory) -> None:
    """With debug mode off, leases are plain Lease objects: no stack, no extra checks."""
    assert not respool.debug()
    pool = make_pool(1)
    with pool.acquire():
        pass
    lease = pool.acquire()
    assert type(lease) is Lease
    lease.release()


def test_lease_error_shows_where_it_was_acquired_and_ended(
    debug_mode: None, make_pool: PoolFactory
) -> None:
    """Using an ended lease names the acquiring and the ending stack."""
    pool = make_pool(1)
    lease = acquire_here(pool)
    assert isinstance(lease, DebugLease)
    lease.release()
    with pytest.raises(respool.LeaseError) as caught:
        lease.release()
    message = str(caught.value)
    assert "acquired at" in message
    assert "in acquire_here" in message
    assert "ended at" in message
    assert "lease.release()" in message
    with pytest.raises(respool.LeaseError, match="acquire_here"):
        _ = lease.resource


def test_foreign_pool_error_shows_the_acquiring_stack(
    debug_mode: None, make_pool: PoolFactory
) -> None:
    """Releasing into the wrong pool names where the lease was acquired."""
    first, second = make_pool(1), make_pool(1)
    lease = acquire_here(first)
    with pytest.raises(respool.LeaseError, match="acquire_here"):
        second.release(lease)
    lease.release()


def test_local_variables_are_not_holders(
    debug_mode: None, make_pool: PoolFactory, tracker: Tracker
) -> None:
    """`with ... as r` blocks in a loop, and `r = lease.resource`, return cleanly."""
    pool = make_pool(1)
    for _ in range(3):
        with pool.acquire() as res:
            res.dirty = True
    lease = pool.acquire()
    res = lease.resource
    lease.release()
    pool.release(pool.acquire())
    assert tracker.destroyed == []
    assert pool.stats().acquires == 5


def test_resource_still_held_is_refused_and_destroyed(
    debug_mode: None, make_pool: PoolFactory, tracker: Tracker
) -> None:
    """A resource still referenced from a list at release raises StillInUse, is destroyed."""
    pool = make_pool(1)
    lease = acquire_here(pool)
    kept = [lease.resource]
    with pytest.raises(respool.StillInUse, match="acquire_here"):
        lease.release()
    assert tracker.destroyed == kept
    assert not lease.active
    with pool.acquire() as res:
        assert res is not kept[0]


def test_live_memoryview_at_the_end_of_a_with_block(
    debug_mode: None, make_pool: PoolFactory, tracker: Tracker
) -> None:
    """A memoryview still exported when the block ends is caught (*not quite done*)."""
    pool = make_pool(1, lifecycle=respool.Lifecycle(lambda: bytearray(8)))
    views = []
    with pytest.raises(respool.StillInUse), pool.acquire() as buf:
        views.append(memoryview(buf))
    views[0].release()
    stats = pool.stats()
    assert stats.destroyed == 1
    assert stats.created - stats.destroyed == stats.size


def test_failing_body_keeps_its_exception(
    debug_mode: None, make_pool: PoolFactory, tracker: Tracker
) -> None:
    """When the body raises, its exception propagates, never replaced by StillInUse."""
    pool = make_pool(1)
    kept: list[Res] = []
    with pytest.raises(Boom), pool.acquire() as res:
        kept.append(res)
        raise Boom
    assert pool.stats().in_use == 0


def test_lost_lease_is_reported_with_the_stack_that_acquired_it(
    debug_mode: None, make_pool: PoolFactory, tracker: Tracker, caplog: pytest.LogCaptureFixture
) -> None:
    """In debug mode a lease collected while active is logged with its acquiring stack."""
    pool = make_pool(1)

    def forget() -> None:
        acquire_here(pool)  # never released

    with caplog.at_level(logging.WARNING, logger="respool"):
        with pytest.warns(ResourceWarning, match="log shows where it was acquired"):  # noqa: PT031 - the loss happens across these lines
            forget()
            gc.collect()
        settle()
        assert pool.stats().leaks == 1
    assert "lost without being released" in caplog.text
    assert "acquire_here" in caplog.text
    assert len(tracker.destroyed) == 1
    with pool.acquire(timeout=2) as res:  # the slot is usable again
        assert not res.destroyed


def test_reset_raising_still_in_use_reaches_the_caller(make_pool: PoolFactory) -> None:
    """A reset that raises StillInUse is the caller's bug: it propagates, after the resource
    is destroyed; inside a failing block the block's own exception wins."""

    def refuse(res: Res) -> None:
        raise respool.StillInUse("still exported")

    pool = make_pool(1, lifecycle=respool.Lifecycle(lambda: Res(0), reset=refuse))
    lease = pool.acquire()
    with pytest.raises(respool.StillInUse, match="still exported"):
        lease.release()
    with pytest.raises(Boom), pool.acquire():
        raise Boom
    stats = pool.stats()
    assert stats.reset_errors == 2
    assert stats.in_use == 0


@given(st.binary(max_size=5000))
def test_poison_fills_buffers(data: bytes) -> None:
    """poison() overwrites every byte with the marker, whatever the length."""
    buf = bytearray(data)
    _debug.poison(buf)
    assert buf == bytes([_debug.POISON]) * len(data)


def test_poison_fills_views_of_any_format() -> None:
    """poison() works on a memoryview of another format, byte by byte."""
    words = memoryview(bytearray(8)).cast("I")
    _debug.poison(words)
    assert bytes(words) == bytes([_debug.POISON]) * 8
