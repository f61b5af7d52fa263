"""Stress: many threads, thousands of operations, random user errors and broken resources.

Whatever happens, no resource is ever lent to two callers at once, nothing destroyed is ever
lent, and at the end ``created - destroyed == size == idle + in_use``.
"""

from __future__ import annotations

import queue
import random
import threading
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


@pytest.mark.parametrize("kind", ["fixed", "elastic"])
def test_stress_never_lends_twice_and_counts_stay_exact(kind: str) -> None:
    """12 threads x 400 random operations keep every promise of the pool."""
    life = Lifecycle()
    lifecycle = respool.Lifecycle(
        life.create, reset=life.reset, check=life.check, destroy=life.destroy
    )
    pool: Any
    if kind == "fixed":
        pool = respool.FixedPool(lifecycle, size=4, timeout=0.05, order="fifo")
    else:
        pool = respool.ElasticPool(lifecycle, max_idle=2, max_size=4, timeout=0.05)
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
