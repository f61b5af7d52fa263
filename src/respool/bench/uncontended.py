"""Scenario ``uncontended``: one thread takes a resource and gives it back, over and over.

This is the cost every caller pays on every use, even when nobody else wants the resource,
so it is judged against the least any thread-safe pool could cost: the *two-lock floor*, a
``threading.Lock`` around ``deque.pop()`` and another around ``deque.append()``. Acquire and
release are separate calls, each of which must change shared state safely, so a locked pool
cannot do with fewer than two lock round trips. (One lock around both, and a bare deque with
no lock at all, are printed too, so the floor's own price is visible.)

respool's free lists take no lock on this path (single ``deque`` operations are atomic), so
the goal is to cost no more than the floor, and to be at least ten times cheaper than the
pools of psycopg_pool and SQLAlchemy, measured with fake connections in the same run.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Final

from respool import _debug
from respool.bench import _contenders
from respool.bench._report import Goal, Row, Table, missing, ratio_text, rows_from
from respool.bench._run import Context
from respool.bench._timing import Spread, repeated, wall_seconds
from respool.elastic import ElasticPool
from respool.fixed import FixedPool

__all__ = ["FLOOR", "run"]

FLOOR: Final = "two-lock floor: Lock+pop, Lock+append"
BARE: Final = "deque.pop()+append(), no lock"
ONE_LOCK: Final = "one Lock around pop+append"
FIXED: Final = "FixedPool: with acquire()"
TRYING: Final = "FixedPool: with try_acquire()"
ELASTIC: Final = "ElasticPool: with acquire()"
SQLALCHEMY: Final = "SQLAlchemy QueuePool"
PSYCOPG: Final = "psycopg_pool ConnectionPool"

#: The figures to reach (issue 10).
FLOOR_GOAL: Final = 1.0
PEER_GOAL: Final = 10.0


def with_acquire(pool: FixedPool[object] | ElasticPool[object]) -> Callable[[], None]:
    """One use as callers write it: an empty ``with pool.acquire():`` block."""

    def op() -> None:
        with pool.acquire():
            pass

    return op


def _with_try(pool: FixedPool[object]) -> Callable[[], None]:
    """The same with ``try_acquire()``, which never waits; a ``None`` here would mean the
    pool lost its resource, so the case fails rather than timing nothing."""

    def op() -> None:
        lease = pool.try_acquire()
        if lease is None:
            raise RuntimeError("try_acquire() found no idle resource in an idle pool")
        with lease:
            pass

    return op


def _get_put(borrower: _contenders.Borrower) -> Callable[[], None]:
    get, put = borrower.get, borrower.put

    def op() -> None:
        put(get())

    return op


def two_locks() -> Callable[[], None]:
    """The baseline: a ``Lock`` around ``deque.pop()``, another around ``append()``."""
    locked: deque[object] = deque([object()])
    lock = threading.Lock()

    def op() -> None:
        with lock:
            x = locked.pop()
        with lock:
            locked.append(x)

    return op


def floors() -> list[tuple[str, Callable[[], object]]]:
    """The three floors: no lock, one lock, two locks (the baseline)."""
    bare: deque[object] = deque([object()])
    locked: deque[object] = deque([object()])
    lock = threading.Lock()

    def no_lock() -> None:
        bare.append(bare.pop())

    def one_lock() -> None:
        with lock:
            locked.append(locked.pop())

    return [(FLOOR, two_locks()), (BARE, no_lock), (ONE_LOCK, one_lock)]


def run(ctx: Context) -> list[Table]:
    """The uncontended table, with its goals, and what debug mode costs."""
    budget = ctx.budget
    number, rounds = budget.n(200_000, 20), budget.rounds(7)
    fixed = FixedPool(object, size=1, name="bench-fixed")
    trying = FixedPool(object, size=1, name="bench-try")
    elastic = ElasticPool(object, max_idle=1, min_idle=1, name="bench-elastic")
    borrowers: list[_contenders.Borrower] = []
    cases: list[tuple[str, Callable[[], object]]] = floors()
    absent: list[str] = []
    try:
        for name, opener in _contenders.BASELINES.items():
            borrowers.append(opener(1))
            cases.append((f"{name} get()+put()", _get_put(borrowers[-1])))
        cases += [
            (FIXED, with_acquire(fixed)),
            (TRYING, _with_try(trying)),
            (ELASTIC, with_acquire(elastic)),
        ]
        for name, opener in _contenders.PEERS.items():
            try:
                borrowers.append(opener(1))
            except _contenders.PeerMissing:
                absent.append(name)
                continue
            cases.append((name, _get_put(borrowers[-1])))
        spreads = repeated(
            cases, number, rounds, warmup=min(number, 1000), on_step=ctx.on_step("uncontended")
        )
    finally:
        for pool in (fixed, trying, elastic):
            pool.close()
        for borrower in borrowers:
            borrower.close()
    rows = rows_from(spreads, FLOOR) + [missing(name) for name in absent]
    order = [name for name, _ in cases] + absent
    rows.sort(key=lambda row: order.index(row.name))
    table = Table(
        key="uncontended",
        title="Uncontended: one thread takes a resource and gives it back",
        unit="ns/op",
        baseline=FLOOR,
        rows=rows,
        goals=_goals(rows),
        notes=[
            "Peers run with fake connections (no I/O): their rows price the pool's own"
            " bookkeeping.",
        ],
    )
    return [table, _debug_table(ctx)]


def _goals(rows: list[Row]) -> list[Goal]:
    by_name = {row.name: row for row in rows}
    fixed = by_name[FIXED]
    assert fixed.ratio is not None
    assert fixed.median is not None
    goals = [
        Goal(
            f"FixedPool with acquire() <= {FLOOR_GOAL:g}x the two-lock floor",
            ratio_text(fixed),
            fixed.ratio <= FLOOR_GOAL,
        )
    ]
    for peer in (PSYCOPG, SQLALCHEMY):
        row = by_name[peer]
        text = f"FixedPool >= {PEER_GOAL:g}x cheaper than {peer}"
        if row.median is None:
            goals.append(Goal(text, row.note, None))
            continue
        cheaper = row.median / fixed.median
        goals.append(Goal(text, f"{cheaper:.1f}x cheaper", cheaper >= PEER_GOAL))
    return goals


def _debug_table(ctx: Context) -> Table:
    """``with pool.acquire():`` with debug mode off and on.

    Debug mode records a stack and counts references on every acquire and release: useful in
    tests, far too slow for production; the table says how much. It is a switch for the
    whole process, so the two cases take turns round by round (debug mode switched on for the
    "on" rounds only) rather than call by call.
    """
    budget = ctx.budget
    number, rounds = budget.n(2_000, 20), budget.rounds(5)
    before = _debug.enabled
    hook = ctx.on_step("uncontended debug")
    taken: dict[str, list[float]] = {"debug off": [], "debug on": []}
    _debug.set_enabled(False)
    try:
        with FixedPool(object, size=1, name="bench-debug") as pool:
            op = with_acquire(pool)
            for round_number in range(1, rounds + 1):
                for step, (name, on) in enumerate((("debug off", False), ("debug on", True))):
                    hook(2 * round_number - 1 + step, 2 * rounds, round_number, name)
                    _debug.set_enabled(on)
                    try:
                        taken[name].append(wall_seconds(op, number) / number * 1e9)
                    finally:
                        _debug.set_enabled(False)
    finally:
        _debug.set_enabled(before)
    spreads = [Spread(name, tuple(ns)) for name, ns in taken.items()]
    return Table(
        key="uncontended-debug",
        title="Debug mode: FixedPool with acquire(), respool.debug(True) vs off",
        unit="ns/op",
        baseline="debug off",
        rows=rows_from(spreads, "debug off"),
        notes=[
            "Off, the first row is the pool's only code path: switching swaps in the debug"
            " lease once, so there is no flag to test per call."
        ],
    )
