"""What only FixedPool does: create everything up front and keep its size."""

from __future__ import annotations

import logging

import pytest

import respool
from tests.conftest import Boom, Tracker


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
    assert pool.stats().size == 2
    tracker.fail_reset = Boom("reset")
    with pool.acquire():
        pass
    tracker.fail_reset = None
    stats = pool.stats()
    assert (stats.size, stats.idle, stats.created, stats.destroyed) == (2, 2, 4, 2)
    pool.close()


def test_failed_replacement_is_retried_on_demand(
    tracker: Tracker, caplog: pytest.LogCaptureFixture
) -> None:
    """A replacement that cannot be created is logged; the next acquire creates it."""
    pool = respool.FixedPool(tracker.lifecycle(), size=1)
    lease = pool.acquire()
    tracker.fail_create = Boom("server down")
    with caplog.at_level(logging.WARNING, logger="respool"):
        lease.discard()
    assert "creating a replacement failed" in caplog.text
    assert pool.stats().size == 0
    tracker.fail_create = None
    with pool.acquire(timeout=0) as res:
        assert not res.destroyed
    assert pool.stats().size == 1
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
