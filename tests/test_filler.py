"""The background filler and housekeeper: one dispatcher for every pool, each pool's work on a
runner thread of its own, started on need, holding pools weakly, sleeping until the next
deadline, ending when nothing needs it."""

from __future__ import annotations

import gc
import logging
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterator

import pytest

import respool
from respool._threads import filler
from tests.conftest import Tracker, settle
from tests.test_fork import fork_and_report

pytestmark = pytest.mark.timeout(60)

#: Generous bound for what should take milliseconds.
WAIT = 5.0


class Gated:
    """A stand-in pool whose tend blocks until the test lets it go, recording its calls and
    how many of them ran at once."""

    name = "gated"

    def __init__(self, *, blocked: bool = True) -> None:
        self.go = threading.Event()
        if not blocked:
            self.go.set()
        self.entered = threading.Event()
        self.calls = 0
        self.active = 0
        self.most = 0
        self._lock = threading.Lock()

    def _tend(self) -> float | None:
        with self._lock:
            self.calls += 1
            self.active += 1
            self.most = max(self.most, self.active)
        self.entered.set()
        try:
            self.go.wait(WAIT * 2)
        finally:
            with self._lock:
                self.active -= 1
        return None


@pytest.fixture
def gates() -> Iterator[list[Gated]]:
    """Gated stand-ins made by the test: all let go when it ends, whatever happened."""
    made: list[Gated] = []
    yield made
    for gate in made:
        gate.go.set()
    assert filler.flush(WAIT)


def runners() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "respool-tend"]


def test_pools_whose_work_does_not_overlap_share_one_runner(tracker: Tracker) -> None:
    """Replacements for two pools, asked one after the other, are made by the same runner
    thread, under one dispatcher thread."""
    makers: set[int] = set()

    def create() -> object:
        makers.add(threading.get_ident())
        return object()

    pools = [respool.FixedPool(create, size=1) for _ in range(2)]
    makers.clear()
    for pool in pools:
        pool.acquire().discard()
        settle()
    assert len(makers) == 1
    (maker,) = makers
    assert any(t.ident == maker and t.name == "respool-tend" for t in threading.enumerate())
    assert sum(t.name == "respool-filler" for t in threading.enumerate()) == 1
    for pool in pools:
        pool.close()


def test_a_blocked_tend_does_not_delay_another_pools_refill(gates: list[Gated]) -> None:
    """While one pool's background create hangs, another pool's replacement is still made
    at once (and the hung one completes once let go)."""
    gate = Gated()
    gates.append(gate)
    made = 0

    def slow_create() -> object:
        nonlocal made
        made += 1
        if made > 1:  # the first is the pool's priming, in this thread
            gate.entered.set()
            assert gate.go.wait(WAIT * 2)
        return object()

    stuck = respool.FixedPool(slow_create, size=1)
    other = respool.FixedPool(object, size=1)
    try:
        stuck.acquire().discard()  # its replacement hangs in the background
        assert gate.entered.wait(WAIT)
        other.acquire().discard()  # its replacement is owed to the filler too
        began = time.monotonic()
        with other.acquire(timeout=WAIT):
            took = time.monotonic() - began
        assert took < 2.0, took
        assert not gate.go.is_set() and stuck.stats().size == 0  # still hung meanwhile
        gate.go.set()
        with stuck.acquire(timeout=WAIT):
            pass
    finally:
        gate.go.set()
        stuck.close()
        other.close()


def test_a_request_during_a_tend_reruns_it_after_never_alongside(gates: list[Gated]) -> None:
    """Requests for a pool while its tend runs start no second tend beside it; they make it
    run once more after it ends, and flush waits for that rerun."""
    gate, later = Gated(), Gated(blocked=False)
    gates += [gate, later]
    filler.request(gate)
    assert gate.entered.wait(WAIT)
    for _ in range(5):
        filler.request(gate)
    filler.request(later)  # queued behind the requests above: the dispatcher has seen them
    assert later.entered.wait(WAIT)
    assert (gate.calls, gate.active) == (1, 1)
    gate.go.set()
    assert filler.flush(WAIT)
    assert (gate.calls, gate.most) == (2, 1)


def test_flush_waits_for_a_running_tend(gates: list[Gated]) -> None:
    """flush() does not return while a tend asked before it is still running, and returns as
    soon as it ends."""
    gate = Gated()
    gates.append(gate)
    filler.request(gate)
    assert gate.entered.wait(WAIT)
    assert not filler.flush(0.2)
    flushed = threading.Event()
    waiter = threading.Thread(target=lambda: filler.flush(WAIT) and flushed.set())
    waiter.start()
    assert not flushed.wait(0.1)
    gate.go.set()
    waiter.join(WAIT)
    assert flushed.is_set() and gate.active == 0


def test_a_burst_of_quick_tends_is_served_by_few_threads() -> None:
    """Fifty pools asking at once, each tend quick, are served in turn by a thread or two,
    not by a thread each."""
    servers: set[int] = set()

    class Witness:
        name = "witness"

        def _tend(self) -> float | None:
            servers.add(threading.get_ident())
            return None

    witnesses = [Witness() for _ in range(50)]
    for witness in witnesses:
        filler.request(witness)
    assert filler.flush(WAIT)
    assert 1 <= len(servers) <= 10, len(servers)  # a thread each would be 50


def test_a_failing_tend_stops_nothing(gates: list[Gated], caplog: pytest.LogCaptureFixture) -> None:
    """A pool whose tend raises is logged; the same runner and dispatcher go on serving
    other pools, and that pool again."""

    class Broken:
        name = "broken"
        calls = 0

        def _tend(self) -> float | None:
            self.calls += 1
            raise RuntimeError("bug")

    broken, fine = Broken(), Gated(blocked=False)
    gates.append(fine)
    with caplog.at_level(logging.ERROR, logger="respool"):
        filler.request(broken)
        filler.request(fine)
        assert filler.flush(WAIT)
        filler.request(broken)
        assert filler.flush(WAIT)
    assert (broken.calls, fine.calls) == (2, 1)
    failures = [r for r in caplog.records if "background work failed" in r.getMessage()]
    assert len(failures) == 2


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

def ours():
    return [t for t in threading.enumerate() if t.name.startswith("respool-")]

filler.IDLE_EXIT = 0.05
go, entered = threading.Event(), threading.Event()
made = []
def create():
    made.append(1)
    if len(made) == 2:                # the first replacement hangs until let go
        entered.set()
        go.wait(10)
    return object()
slow = respool.FixedPool(create, size=1)
fast = respool.FixedPool(object, size=1)
slow.acquire().discard()              # starts the dispatcher and a runner, which hangs
assert entered.wait(5.0)
fast.acquire().discard()              # needs a second runner
with fast.acquire(timeout=5.0):
    pass
assert len([t for t in ours() if t.name == "respool-tend"]) == 2
go.set()
assert filler.flush(5.0)
deadline = time.monotonic() + 5.0
while ours() or filler._thread is not None:   # nothing left to do: every thread ends
    assert time.monotonic() < deadline, f"filler threads did not end: {ours()}"
    time.sleep(0.01)
slow.acquire().discard()              # a new request starts the threads again
assert filler.flush(5.0) and slow.stats().size == 1
print("ok")
"""


def test_thread_ends_when_nothing_needs_it_and_comes_back_on_demand() -> None:
    """With nothing to do for IDLE_EXIT seconds the dispatcher and every runner end (two
    here, one having hung); the next request starts them again and the work still gets
    done (in a fresh interpreter: no other test's pool)."""
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


def test_a_forked_child_gets_a_filler_of_its_own(gates: list[Gated]) -> None:
    """Forked while a tend hangs on a runner, the child has neither the parent's dispatcher
    nor its runner: its own requests start fresh ones, and its flush does not wait for the
    parent's hung tend."""
    gate = Gated()
    gates.append(gate)
    filler.request(gate)
    assert gate.entered.wait(WAIT)

    def child() -> dict[str, object]:
        reset = filler._thread is None
        fresh = Gated(blocked=False)
        filler.request(fresh)
        flushed = filler.flush(WAIT)
        return {"reset": reset, "flushed": flushed, "calls": fresh.calls}

    report = fork_and_report(child)
    assert report["reset"] is True
    assert report["flushed"] is True and report["calls"] == 1
    assert gate.calls == 1 and gate.active == 1  # the parent's tend still hangs, untouched
