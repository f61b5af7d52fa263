"""Scenario ``health``: what the health options cost per acquire, and a fault drill.

*Overhead*: the uncontended ``with pool.acquire():`` of a ``FixedPool`` with no option, with
``check_after`` (and a ``check``), and with ``max_lifetime``, next to the two-lock floor of
:mod:`.uncontended`, all in one run. Time-based options read the clock on each acquire and
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
from typing import Final

from respool.bench._report import Column, Goal, Row, Table, rows_from
from respool.bench._run import Context
from respool.bench._timing import repeated
from respool.bench.uncontended import FLOOR, two_locks, with_acquire
from respool.fixed import FixedPool

__all__ = ["Server", "fault_drill", "keepalive_drill", "overhead", "run"]

PLAIN: Final = "FixedPool, no option"


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


def overhead(ctx: Context) -> Table:
    """ns per ``with pool.acquire():`` with no option, with check_after, with max_lifetime."""
    number, rounds = ctx.budget.n(200_000, 20), ctx.budget.rounds(7)
    plain = FixedPool(object, size=1, name="bench-plain")
    checked = FixedPool(object, size=1, check=lambda r: True, check_after=60.0)
    aging = FixedPool(object, size=1, max_lifetime=3600.0)

    try:
        spreads = repeated(
            [
                (FLOOR, two_locks()),
                (PLAIN, with_acquire(plain)),
                ("FixedPool, check_after=60", with_acquire(checked)),
                ("FixedPool, max_lifetime=3600", with_acquire(aging)),
            ],
            number,
            rounds,
            on_step=ctx.on_step("health"),
        )
    finally:
        for pool in (plain, checked, aging):
            pool.close()
    rows = rows_from(spreads, FLOOR)
    by_name = {row.name: row for row in rows}
    base = by_name[PLAIN].median or 0.0
    return Table(
        key="health-overhead",
        title="Health options: uncontended with pool.acquire(), one thread",
        unit="ns/op",
        baseline=FLOOR,
        rows=rows,
        notes=[
            f"{row.name}: +{(row.median or 0.0) - base:.0f} ns per acquire over no option"
            for row in rows
            if row.name not in (FLOOR, PLAIN)
        ],
    )


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


def drills(ctx: Context) -> Table:
    """Both fault drills, once each: their figures are outcomes (failures, time to heal),
    not costs to compare with a baseline, so the table has no ratios."""
    ctx.progress.note("[health] fault drills")
    failures, healed = fault_drill()
    alone = keepalive_drill()
    rows = [
        Row(
            "check=, check_after=0: 100 acquires",
            healed * 1000,
            healed * 1000,
            extra={"failures": failures},
        ),
        Row("keepalive=0.05, no caller", alone * 1000, alone * 1000, extra={"failures": 0}),
    ]
    return Table(
        key="health-drill",
        title="Fault drill: the server drops all 8 idle connections",
        unit="ms until the pool is full of live connections again",
        baseline="none",
        rows=rows,
        columns=[Column("failures", "failed requests", "{:d}")],
        goals=[
            Goal(
                "check=, check_after=0: 0 failed requests, pool full again in < 100 ms",
                f"{failures} failed, {healed * 1000:.1f} ms",
                failures == 0 and healed < 0.1,
            )
        ],
        notes=[
            "With keepalive and no caller, housekeeping alone replaces the dead within about"
            " one keepalive period, plus the creates.",
        ],
    )


def run(ctx: Context) -> list[Table]:
    """The overhead table and the fault drills."""
    return [overhead(ctx), drills(ctx)]
