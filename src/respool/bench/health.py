"""Health benchmarks: what the health options cost per acquire, and a fault drill.

*Overhead*: the uncontended ``with pool.acquire():`` of a ``FixedPool`` with no option, with
``check_after`` (and a ``check``), and with ``max_lifetime``, next to the two-lock floor of
:mod:`.acquire_release`, all in one run. Time-based options read the clock on each acquire and
return, so they leave the lock-free fast path; the table says what that costs.

*Fault drill*: a fake server hands out connections and can drop them all at once, as a
database restart or a fail-over does. A ``FixedPool`` with ``check=`` and ``check_after=0``
has all its idle connections dropped, then serves 100 acquires: none may fail (each dead
connection is caught by the check and replaced), and the pool must be full of live
connections again within 0.1 s. A second pool, with ``keepalive`` and no caller at all, shows
housekeeping doing the same alone.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from respool.bench._timing import interleaved, table
from respool.fixed import FixedPool

__all__ = ["Server", "fault_drill", "keepalive_drill", "main", "overhead"]

FLOOR = "(b) Lock around pop, Lock around append"


class Server:
    """A fake server: connections are plain objects it can drop all at once."""

    def __init__(self) -> None:
        self.live: set[int] = set()
        self.lock = threading.Lock()
        self.opened = 0

    def connect(self) -> object:
        conn = object()
        with self.lock:
            self.live.add(id(conn))
            self.opened += 1
        return conn

    def alive(self, conn: object) -> bool:
        return id(conn) in self.live

    def close(self, conn: object) -> None:
        with self.lock:
            self.live.discard(id(conn))

    def drop_all(self) -> None:
        with self.lock:
            self.live.clear()

    def use(self, conn: object) -> None:
        """One request on *conn*: fails on a dropped connection, as a real one would."""
        if id(conn) not in self.live:
            raise ConnectionError("server closed the connection")


def overhead(number: int, rounds: int) -> list[tuple[str, float]]:
    """ns per ``with pool.acquire():`` with no option, with check_after, with max_lifetime."""
    item = object()
    locked: deque[object] = deque([item])
    lock = threading.Lock()
    plain = FixedPool(object, size=1, name="bench-plain")
    checked = FixedPool(object, size=1, check=lambda r: True, check_after=60.0)
    aging = FixedPool(object, size=1, max_lifetime=3600.0)

    def lock_each() -> None:
        with lock:
            x = locked.pop()
        with lock:
            locked.append(x)

    def borrow(pool: FixedPool[object]) -> Callable[[], None]:
        def op() -> None:
            with pool.acquire():
                pass

        return op

    results = interleaved(
        [
            (FLOOR, lock_each),
            ("FixedPool, no option", borrow(plain)),
            ("FixedPool, check_after=60", borrow(checked)),
            ("FixedPool, max_lifetime=3600", borrow(aging)),
        ],
        number,
        rounds,
    )
    for pool in (plain, checked, aging):
        pool.close()
    print(table(results, FLOOR))
    return [(r.name, r.ns) for r in results]


def fault_drill(size: int = 8, requests: int = 100) -> tuple[int, float]:
    """Drop every idle connection, then serve *requests* acquires; return the failures and
    the seconds until the pool held *size* live connections again."""
    server = Server()
    pool = FixedPool(
        server.connect, size=size, check=server.alive, check_after=0, destroy=server.close
    )
    server.drop_all()
    started = time.perf_counter()
    failures = 0
    for _ in range(requests):
        try:
            with pool.acquire(timeout=5) as conn:
                server.use(conn)
        except Exception:
            failures += 1
    healed = _until_full(pool, server, size, started)
    pool.close()
    return failures, healed


def keepalive_drill(size: int = 8, keepalive: float = 0.05) -> float:
    """Drop every idle connection of a pool nobody uses; seconds until housekeeping alone
    has replaced them all."""
    server = Server()
    pool = FixedPool(
        server.connect, size=size, check=server.alive, keepalive=keepalive, destroy=server.close
    )
    server.drop_all()
    started = time.perf_counter()
    healed = _until_full(pool, server, size, started)
    pool.close()
    return healed


def _until_full(pool: FixedPool[object], server: Server, size: int, started: float) -> float:
    """Seconds from *started* until *pool* holds *size* live connections (or 10 s)."""
    while time.perf_counter() - started < 10.0:
        idle = list(pool._core.idle)
        if len(idle) == size and all(server.alive(entry.resource) for entry in idle):
            break
        time.sleep(0.001)
    return time.perf_counter() - started


def main(quick: bool = False) -> int:
    """Print the overhead table and the fault drills."""
    number, rounds = (20_000, 3) if quick else (200_000, 7)
    print("Health options: uncontended with pool.acquire(), one thread (lower is better)")
    ns = dict(overhead(number, rounds))
    plain = ns["FixedPool, no option"]
    for name in ("FixedPool, check_after=60", "FixedPool, max_lifetime=3600"):
        print(f"{name}: +{ns[name] - plain:.0f} ns per acquire over no option")
    print()
    print("Fault drill: the server drops all 8 idle connections, then 100 acquires")
    failures, healed = fault_drill()
    verdict = "meets" if failures == 0 and healed < 0.1 else "MISSES"
    print(
        f"  check=, check_after=0: {failures} failed requests, pool full again in"
        f" {healed * 1000:.1f} ms -> {verdict} the goal (0 failures, < 100 ms)"
    )
    alone = keepalive_drill()
    print(
        f"  keepalive=0.05, no caller: housekeeping replaced all 8 in {alone * 1000:.0f} ms"
        " (within about one keepalive period, plus the creates)"
    )
    return 0
