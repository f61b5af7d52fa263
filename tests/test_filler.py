"""The background filler and housekeeper: one thread for every pool, started on need,
holding pools weakly, sleeping until the next deadline, ending when nothing needs it."""

from __future__ import annotations

import gc
import logging
import threading
import weakref

import pytest

import respool
from respool._threads import filler
from tests.conftest import Tracker, settle, wait_until


def test_one_thread_serves_every_pool(tracker: Tracker) -> None:
    """Replacements for two pools are made by the same, single filler thread."""
    makers: set[str] = set()

    def create() -> object:
        makers.add(threading.current_thread().name)
        return object()

    pools = [respool.FixedPool(create, size=1) for _ in range(2)]
    makers.clear()
    for pool in pools:
        pool.acquire().discard()
    settle()
    assert makers == {"respool-filler"}
    assert sum(t.name == "respool-filler" for t in threading.enumerate()) == 1
    for pool in pools:
        pool.close()


def test_filler_holds_pools_weakly() -> None:
    """A pool nobody references is collected even while its create keeps failing and the
    filler has a retry scheduled for it."""
    attempts = []

    def create() -> object:
        if attempts:
            raise OSError("down")
        attempts.append(1)
        return object()

    logger = logging.getLogger("respool")
    logger.disabled = True  # a kept log record's traceback would hold the pool's frame
    try:
        pool = respool.FixedPool(create, size=1)
        pool.acquire().discard()  # the replacement fails: a retry is scheduled
        settle()
        ref = weakref.ref(pool)
        del pool
        gc.collect()
        assert ref() is None
    finally:
        logger.disabled = False


def test_thread_ends_when_nothing_needs_it_and_comes_back_on_demand(
    monkeypatch: pytest.MonkeyPatch, tracker: Tracker
) -> None:
    """With nothing to do for IDLE_EXIT seconds the thread ends; the next request starts
    a new one, and the work still gets done."""
    monkeypatch.setattr(filler, "IDLE_EXIT", 0.05)
    gc.collect()
    assert filler.flush(5.0)  # wakes the thread, which then idles with the short limit
    wait_until(lambda: filler._thread is None)
    pool = respool.FixedPool(tracker.lifecycle(), size=1)
    pool.acquire().discard()
    settle()
    assert pool.stats().size == 1
    pool.close()
