"""The background filler and housekeeper: one thread for every pool, started on need,
holding pools weakly, sleeping until the next deadline, ending when nothing needs it."""

from __future__ import annotations

import gc
import logging
import subprocess
import sys
import threading
import time
import weakref

import respool
from tests.conftest import Tracker, settle


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


IDLE_EXIT_SCRIPT = """
import threading, time
import respool
from respool._threads import filler

filler.IDLE_EXIT = 0.05
pool = respool.FixedPool(object, size=1)
pool.acquire().discard()              # starts the thread, which makes the replacement
assert filler.flush(5.0)
deadline = time.monotonic() + 5.0
while filler._thread is not None:     # nothing left to do: the thread ends by itself
    assert time.monotonic() < deadline, "the filler thread did not end"
    time.sleep(0.01)
assert not any(t.name == "respool-filler" for t in threading.enumerate())
pool.acquire().discard()              # a new request starts a new thread
assert filler.flush(5.0) and pool.stats().size == 1
print("ok")
"""


def test_thread_ends_when_nothing_needs_it_and_comes_back_on_demand() -> None:
    """With nothing to do for IDLE_EXIT seconds the thread ends; the next request starts a
    new one and the work still gets done (in a fresh interpreter: no other test's pool)."""
    done = subprocess.run(
        [sys.executable, "-c", IDLE_EXIT_SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_filler_sleeps_while_creates_back_off_and_resources_sit_idle() -> None:
    """A refill that keeps failing while housekeeping has idle resources to look at: the
    filler waits for each retry instead of tending the pool again at once, forever."""
    calls = 0

    def create() -> object:
        nonlocal calls
        calls += 1
        if calls > 2:
            raise RuntimeError("down")
        return object()

    pool = respool.ElasticPool(create, min_idle=2, max_idle=4, max_lifetime=60)
    try:
        pool.acquire().discard()  # owed: the refill fails and backs off; one stays idle
        cpu = time.process_time()
        time.sleep(0.5)
        used = time.process_time() - cpu
        assert used < 0.25, f"the filler burnt {used:.2f} s of CPU in 0.5 s"
        assert 3 <= calls <= 10, calls  # retried with backoff
    finally:
        pool.close()
