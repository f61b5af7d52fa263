"""Stress: many threads, thousands of operations, random user errors and broken resources.

Whatever happens, no resource is ever lent to two callers at once, nothing destroyed is ever
lent, and at the end ``created - destroyed == size == idle + in_use``.
"""

from __future__ import annotations

import gc
import logging
import queue
import random
import threading
import warnings
from dataclasses import dataclass
from typing import Any

import pytest

import respool
from tests.conftest import Abort, Boom, assert_quiescent

THREADS = 12
OPERATIONS = 400  # per thread


@dataclass(eq=False)
class Conn:
    n: int
    broken: bool = False
    unresettable: bool = False
    destroyed: bool = False


class Lifecycle:
    """Callbacks that fail when the resource was marked so by a previous user."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0
        self.fail_every = 0

    def create(self) -> Conn:
        with self.lock:
            self.count += 1
            n = self.count
        if n % 17 == 0:
            raise Boom("create failed")
        return Conn(n)

    def reset(self, conn: Conn) -> None:
        assert not conn.destroyed
        if conn.unresettable:
            raise Boom("reset failed")

    def check(self, conn: Conn) -> bool:
        assert not conn.destroyed
        return not conn.broken

    def destroy(self, conn: Conn) -> None:
        assert not conn.destroyed, "destroyed twice"
        conn.destroyed = True


@pytest.mark.parametrize("fairness", ["bounded", "fifo"])
@pytest.mark.parametrize("kind", ["fixed", "elastic"])
def test_stress_never_lends_twice_and_counts_stay_exact(kind: str, fairness: str) -> None:
    """12 threads x 400 random operations keep every promise of the pool."""
    life = Lifecycle()
    lifecycle = respool.Lifecycle(
        life.create, reset=life.reset, check=life.check, destroy=life.destroy
    )
    pool: Any
    if kind == "fixed":
        pool = respool.FixedPool(lifecycle, size=4, timeout=0.05, order="fifo", fairness=fairness)
    else:
        pool = respool.ElasticPool(
            lifecycle, max_idle=2, max_size=4, timeout=0.05, fairness=fairness
        )
    busy: set[int] = set()
    busy_lock = threading.Lock()
    failures: queue.SimpleQueue[str] = queue.SimpleQueue()
    start = threading.Barrier(THREADS)

    def borrow(conn: Conn) -> None:
        with busy_lock:
            if conn.n in busy:
                failures.put(f"{conn} lent twice")
            if conn.destroyed:
                failures.put(f"{conn} lent after destruction")
            busy.add(conn.n)

    def give_back(conn: Conn) -> None:
        with busy_lock:
            busy.discard(conn.n)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        start.wait(10)
        for _ in range(OPERATIONS):
            roll = rng.random()
            try:
                if roll < 0.1:
                    lease = pool.try_acquire()
                    if lease is None:
                        continue
                    borrow(lease.resource)
                    give_back(lease.resource)
                    lease.release()
                    continue
                with pool.acquire() as conn:
                    borrow(conn)
                    try:
                        if roll < 0.2:
                            raise Boom("user error")
                        if roll < 0.25:
                            raise Abort
                        if roll < 0.3:
                            conn.broken = True
                        elif roll < 0.33:
                            conn.unresettable = True
                    finally:
                        give_back(conn)
            except (Boom, Abort, respool.PoolTimeout):
                pass
            except BaseException as exc:
                failures.put(repr(exc))

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
        assert not thread.is_alive()
    problems = []
    while not failures.empty():
        problems.append(failures.get())
    assert problems == []
    assert_quiescent(pool)
    stats = pool.stats()
    assert stats.in_use == 0
    assert stats.acquires > THREADS * OPERATIONS // 2
    assert stats.check_failures > 0
    assert stats.reset_errors > 0
    assert stats.create_errors > 0
    pool.close()
    assert_quiescent(pool)
    assert pool.stats().size == 0


class Hostile:
    """Callbacks that fail at random, with Exceptions and with interrupts (BaseException),
    until told to behave; a resource is lent at most once at a time or the test fails."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.count = 0
        self.calm = False

    def _maybe_fail(self, rate: float) -> None:
        if self.calm:
            return
        with self.lock:
            roll = self.rng.random()
        if roll < rate / 2:
            raise Boom("callback failed")
        if roll < rate:
            raise Abort("callback interrupted")

    def create(self) -> Conn:
        self._maybe_fail(0.1)
        with self.lock:
            self.count += 1
            return Conn(self.count)

    def reset(self, conn: Conn) -> None:
        assert not conn.destroyed
        self._maybe_fail(0.05)

    def check(self, conn: Conn) -> bool:
        assert not conn.destroyed
        self._maybe_fail(0.05)
        return not conn.broken

    def destroy(self, conn: Conn) -> None:
        assert not conn.destroyed, "destroyed twice"
        conn.destroyed = True
        self._maybe_fail(0.1)


#: Health options that make the housekeeper retire, check and report all the time.
HEALTHY: dict[str, Any] = {
    "max_lifetime": 0.01,
    "max_uses": 5,
    "keepalive": 0.002,
    "leak_timeout": 0.005,
    "check_after": 0.001,
}


@pytest.mark.parametrize("fairness", ["bounded", "fifo"])
@pytest.mark.parametrize("health", [False, True], ids=["plain", "health"])
@pytest.mark.parametrize("kind", ["fixed", "elastic"])
def test_chaos_with_interrupts_and_lost_leases_strands_no_slot(
    kind: str, health: bool, fairness: str
) -> None:
    """Callbacks raising Exceptions and BaseExceptions, leases dropped unreleased, tiny
    timeouts, and (with health options) housekeeping retiring and checking all along:
    nothing is lent twice, and once the callbacks behave the pool lends its whole capacity
    again, then closes cleanly."""
    capacity = 3
    life = Hostile(seed=7)
    lifecycle = respool.Lifecycle(
        life.create, reset=life.reset, check=life.check, destroy=life.destroy
    )
    options: dict[str, Any] = dict(HEALTHY) if health else {}
    options["fairness"] = fairness
    pool: Any
    if kind == "fixed":
        pool = respool.FixedPool(lifecycle, size=capacity, timeout=0.02, **options)
    else:
        pool = respool.ElasticPool(
            lifecycle, max_idle=capacity, max_size=capacity, timeout=0.02, **options
        )
    busy: set[int] = set()
    busy_lock = threading.Lock()
    failures: queue.SimpleQueue[str] = queue.SimpleQueue()
    start = threading.Barrier(THREADS)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        start.wait(10)
        for _ in range(OPERATIONS // 2):
            roll = rng.random()
            try:
                lease = pool.acquire(timeout=rng.choice([0, 0.001, 0.02]))
                conn = lease.resource
                with busy_lock:
                    if conn.n in busy or conn.destroyed:
                        failures.put(f"{conn} lent twice or after destruction")
                    busy.add(conn.n)
                with busy_lock:
                    busy.discard(conn.n)
                if roll < 0.05:
                    del lease  # lost: the pool must recover the slot
                    continue
                if roll < 0.1:
                    conn.broken = True
                with lease:
                    if roll < 0.2:
                        raise Abort
            except (Boom, Abort, respool.PoolTimeout):
                pass
            except BaseException as exc:
                failures.put(repr(exc))

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(THREADS)]
    # No log records during the storm: a record kept with its traceback (as pytest keeps
    # them) pins the frames it went through, and with them leases the workers dropped.
    logger = logging.getLogger("respool")
    logger.disabled = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)  # the lost leases, on purpose
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
                assert not thread.is_alive()
            gc.collect()
    finally:
        logger.disabled = False
    problems = []
    while not failures.empty():
        problems.append(failures.get())
    assert problems == []
    life.calm = True
    # Every slot comes back: the pool lends its whole capacity at once, within the timeout.
    held = [pool.acquire(timeout=5) for _ in range(capacity)]
    assert len({lease.resource.n for lease in held}) == capacity
    for lease in held:
        lease.release()
    assert_quiescent(pool)
    stats = pool.stats()
    assert stats.leaks > 0
    assert stats.destroy_errors > 0
    assert stats.create_errors > 0
    pool.close()
    assert_quiescent(pool)
    assert pool.stats().size == 0
