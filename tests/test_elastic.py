"""What only ElasticPool does: create when empty, keep at most max_idle, bound by max_size."""

from __future__ import annotations

import respool
from tests.conftest import Tracker


def test_primes_min_idle_and_creates_on_demand(tracker: Tracker) -> None:
    """min_idle resources exist up front; more are created when none is idle."""
    pool = respool.ElasticPool(tracker.lifecycle(), min_idle=2, max_idle=4)
    assert pool.stats().idle == 2
    leases = [pool.acquire(timeout=0) for _ in range(5)]
    assert pool.stats().size == 5
    for lease in leases:
        lease.release()
    pool.close()


def test_surplus_is_destroyed_on_return(tracker: Tracker) -> None:
    """Beyond max_idle, returned resources are destroyed, the coldest kept idle."""
    pool = respool.ElasticPool(tracker.lifecycle(), max_idle=2)
    leases = [pool.acquire() for _ in range(5)]
    resources = [lease.resource for lease in leases]
    for lease in leases:
        lease.release()
    stats = pool.stats()
    assert (stats.size, stats.idle, stats.destroyed) == (2, 2, 3)
    assert [r.destroyed for r in resources] == [False, False, True, True, True]
    pool.close()


def test_max_size_makes_callers_wait(tracker: Tracker) -> None:
    """With max_size reached, acquire does not create: it waits (here: try_acquire gives None)."""
    pool = respool.ElasticPool(tracker.lifecycle(), max_idle=1, max_size=2)
    held = [pool.acquire(), pool.acquire()]
    assert pool.try_acquire() is None
    assert len(tracker.made) == 2
    held[0].release()
    again = pool.try_acquire()
    assert again is not None
    again.release()
    held[1].release()
    pool.close()


def test_max_idle_zero_keeps_nothing(tracker: Tracker) -> None:
    """max_idle=0: every resource is destroyed on return (a pool that only limits)."""
    pool = respool.ElasticPool(tracker.lifecycle(), max_idle=0, max_size=1)
    with pool.acquire() as res:
        pass
    assert res.destroyed
    assert pool.stats().size == 0
    pool.close()
