"""Scenario ``contended``: eight threads share four resources, so callers really wait.

Two tables: with no hold (take a resource and give it back at once) and with a hold across
``time.sleep(0)`` (the holder gives up the interpreter lock while it holds the resource, as a
caller doing I/O would, so others find the pool empty and queue up). Each row gives the
throughput of all threads together and the acquire waits seen by callers: median, 99th
percentile and longest, which is where an unfair pool shows its cost.

The baseline is a ``queue.Queue`` used as a pool. It lets a newcomer take a returned
resource ahead of threads already sleeping for one, which never convoys but can starve a
waiter. respool's default (``fairness="bounded"``) lets newcomers overtake only waiters that
have waited less than a window (1 ms), so hand-offs do not convoy and no waiter is passed
over for longer than the window; ``fairness="fifo"`` serves strictly in arrival order, and
its row shows what that costs. For respool's rows ``stats().overtaken_wait_max`` (the longest
a waiter had waited when a newcomer overtook it) is printed next to the window.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from respool.bench import _contenders
from respool.bench._report import (
    Column,
    Goal,
    Row,
    Table,
    missing,
    ratio_text,
    rows_from,
)
from respool.bench._run import Context
from respool.bench._timing import Spread, wall_seconds

__all__ = ["BASELINE", "BOUNDED", "FIFO", "RESOURCES", "THREADS", "run"]

THREADS: Final = 8
RESOURCES: Final = 4
BASELINE: Final = "queue.Queue"
BOUNDED: Final = "FixedPool(bounded)"
FIFO: Final = "FixedPool(fifo)"

#: The figures to reach (issue 10), for the table with a hold.
THROUGHPUT_GOAL: Final = 1.0
THROUGHPUT_STRETCH: Final = 1.5

COLUMNS: Final = (
    Column("p50_us", "p50 µs", "{:.1f}"),
    Column("p99_us", "p99 µs", "{:.0f}"),
    Column("max_us", "max µs", "{:.0f}"),
    Column("overtaken_max_us", "overtaken max µs", "{:.1f}"),
    Column("window_us", "window µs", "{:.0f}"),
)


def openers() -> dict[str, _contenders.Opener]:
    """Every row of a contended table, baseline first."""
    baselines = _contenders.BASELINES
    return {
        BASELINE: baselines["queue.Queue"],
        **_contenders.respool_pools(),
        "queue.LifoQueue": baselines["queue.LifoQueue"],
        "Condition+deque": baselines["Condition+deque"],
        **_contenders.BLOCKING_PEERS,
    }


@dataclass
class _Case:
    """One row being measured: its pool, its timed operation and what each round saw."""

    name: str
    borrower: _contenders.Borrower
    op: Callable[[], None]
    waits: _contenders.Waits


def _operation(
    borrower: _contenders.Borrower, hold: bool, waits: list[float]
) -> Callable[[], None]:
    """Take a resource (timing the wait), optionally hold it across ``sleep(0)``, give it
    back. ``list.append`` is atomic, so all threads share one list of waits."""
    get, put, record = borrower.get, borrower.put, waits.append
    clock, sleep = time.perf_counter, time.sleep
    if hold:

        def op() -> None:
            started = clock()
            item = get()
            record(clock() - started)
            sleep(0)
            put(item)

    else:

        def op() -> None:
            started = clock()
            item = get()
            record(clock() - started)
            put(item)

    return op


def measure(ctx: Context, hold: bool) -> Table:
    """One contended table: every row timed in interleaved rounds of THREADS threads."""
    budget = ctx.budget
    per_thread = budget.n(5_000, 10)
    rounds = budget.rounds(7)
    total = per_thread * THREADS
    label = "contended hold" if hold else "contended"
    cases: list[_Case] = []
    absent: list[str] = []
    names = list(openers())
    try:
        for name, opener in openers().items():
            try:
                borrower = opener(RESOURCES)
            except _contenders.PeerMissing:
                absent.append(name)
                continue
            waits = _contenders.Waits()
            cases.append(_Case(name, borrower, _operation(borrower, hold, waits.current), waits))
        for case in cases:  # warm-up: threads, locks and waiter records made once
            wall_seconds(case.op, max(1, per_thread // 10), THREADS)
        steps = rounds * len(cases)
        step = 0
        for round_number in range(1, rounds + 1):
            for case in cases:
                step += 1
                ctx.progress.step(label, step, steps, round_number, case.name)
                case.waits.start_round()
                seconds = wall_seconds(case.op, per_thread, THREADS)
                case.waits.end_round(case.name, seconds, total)
        extra = {case.name: case.waits.extra(case.borrower) for case in cases}
    finally:
        for case in cases:
            case.borrower.close()
    spreads = [Spread(case.name, tuple(case.waits.rounds_ns)) for case in cases]
    rows = rows_from(spreads, BASELINE, sense="rate", extra=extra)
    rows += [missing(name) for name in absent]
    rows.sort(key=lambda row: names.index(row.name))
    how = "holding across sleep(0)" if hold else "no hold"
    return Table(
        key="contended-hold" if hold else "contended",
        title=f"Contended: {THREADS} threads on {RESOURCES} resources, {how}",
        unit="k ops/s",
        baseline=BASELINE,
        rows=rows,
        higher_is_better=True,
        columns=COLUMNS,
        goals=_goals(rows, hold),
        notes=_notes(rows),
    )


def _goals(rows: list[Row], hold: bool) -> list[Goal]:
    by_name = {row.name: row for row in rows}
    bounded = by_name[BOUNDED]
    goals = []
    if hold:
        assert bounded.ratio is not None
        stretch = "meets the stretch" if bounded.ratio >= THROUGHPUT_STRETCH else "not the stretch"
        goals.append(
            Goal(
                f"{BOUNDED} throughput >= {THROUGHPUT_GOAL:g}x {BASELINE}"
                f" (stretch {THROUGHPUT_STRETCH:g}x)",
                f"{ratio_text(bounded)}, {stretch}",
                bounded.ratio >= THROUGHPUT_GOAL,
            )
        )
    overtaken = bounded.extra.get("overtaken_max_us")
    window = bounded.extra.get("window_us")
    assert isinstance(overtaken, float)
    assert isinstance(window, float)
    goals.append(
        Goal(
            f"{BOUNDED} longest overtaken wait <= its window",
            f"{overtaken:.1f} µs, window {window:.0f} µs",
            overtaken <= window,
        )
    )
    return goals


def _notes(rows: list[Row]) -> list[str]:
    by_name = {row.name: row for row in rows}
    fifo = by_name[FIFO]
    return [
        f"Strict order, {FIFO}: {fifo.ratio or 0:.2f}x {BASELINE}'s throughput, beside the"
        " bounded default above: every hand-off then goes to a sleeping waiter.",
        "Waits are per acquire, in microseconds: p50 and p99 are the median over rounds,"
        " max the longest of any round.",
    ]


def run(ctx: Context) -> list[Table]:
    """Both contended tables: no hold, then a hold across ``sleep(0)``."""
    return [measure(ctx, hold=False), measure(ctx, hold=True)]
