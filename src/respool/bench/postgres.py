"""Scenario ``postgres``: respool's pools with real PostgreSQL connections, against the
drivers' own pools, a hand-written pool and no pool at all.

Every other scenario prices a pool's bookkeeping with fake resources; this one asks what a
user sees: ``SELECT 1`` round trips through a real server, so the pool's cost is measured
next to the network and the server, where it matters or does not. Three tables, each timed in
interleaved rounds and read as throughput ratios to the baseline of the same run:

* **Threads**: 8 threads share 4 connections (psycopg, autocommit), each use one
  ``SELECT 1``. Baseline psycopg_pool's ``ConnectionPool``; rows ``FixedPool`` with
  :mod:`respool.contrib.psycopg`, a hand-written pool of a ``queue.LifoQueue`` (the least a
  pool can do), and a new connection per request (no pool). Goals (issue): ``FixedPool`` at
  least 1.0x psycopg_pool and at least 20x connect-per-request.
* **asyncio, psycopg**: 64 tasks share 8 connections on one event loop. Baseline
  psycopg_pool's ``AsyncConnectionPool``; row ``AsyncFixedPool`` with
  :func:`respool.contrib.psycopg.async_connections`. Goal: at least 1.0x.
* **asyncio, asyncpg**: the same with asyncpg. Baseline asyncpg's own pool
  (``create_pool(min_size=8, max_size=8)``), which by default *resets every connection on
  release with a round trip* (``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET
  ALL``); respool's :mod:`respool.contrib.asyncpg` by default sends nothing for a connection
  returned idle. So the table shows both comparisons: defaults against defaults, and like for
  like (asyncpg's pool with a no-op ``reset``; respool with ``full_reset=True``, which calls
  the same ``Connection.reset()`` on every return). Goal: at least 1.0x, both ways.

Fairness of the set-up: every pool holds the same number of connections, opened before the
timing; respool's pools run with ``check_after=30`` (a connection idle 30 s or more is checked
before it is lent, as the contrib modules recommend; none is, here), psycopg_pool and asyncpg
with their defaults (neither checks on checkout). connect-per-request is limited to 4
connections at a time, like the pools, and timed over fewer operations: it is slow.

The server is ``postgresql://postgres@127.0.0.1:5432/test`` unless the environment variable
``RESPOOL_BENCH_POSTGRES`` gives another URL. When it cannot be reached, or a driver is not
installed, the rows say so instead of figures and the goals read "not measured": the run
does not fail.

Run: ``respool bench postgres`` or ``python benchmarks/postgres.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import os
import queue
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from respool.bench._contenders import installed
from respool.bench._report import MISSING_HINT, Goal, Row, Table, rows_from
from respool.bench._run import Context
from respool.bench._timing import Spread, wall_seconds
from respool.bench.asyncio_ import _run_paused_gc

__all__ = [
    "ASYNC_CONNECTIONS",
    "CONNECTIONS",
    "DEFAULT_URL",
    "ENVIRONMENT",
    "TASKS",
    "THREADS",
    "asyncpg_table",
    "psycopg_async_table",
    "run",
    "server_url",
    "threads_table",
    "unreachable",
]

ENVIRONMENT: Final = "RESPOOL_BENCH_POSTGRES"
DEFAULT_URL: Final = "postgresql://postgres@127.0.0.1:5432/test"
#: Seconds to wait for a connection, in the probe and in every pool (a dead server must
#: give a note row, not a hung run).
CONNECT_TIMEOUT: Final = 5

QUERY: Final = "SELECT 1"
THREADS: Final = 8
CONNECTIONS: Final = 4
TASKS: Final = 64
ASYNC_CONNECTIONS: Final = 8

PSYCOPG_POOL: Final = "psycopg_pool ConnectionPool"
FIXED: Final = "FixedPool + contrib.psycopg"
LIFO: Final = "hand-written queue.LifoQueue pool"
CONNECT: Final = "connect per request (no pool)"

ASYNC_PSYCOPG_POOL: Final = "psycopg_pool AsyncConnectionPool"
ASYNC_FIXED: Final = "AsyncFixedPool + contrib.psycopg"

ASYNCPG_POOL: Final = "asyncpg Pool (default: resets on release)"
ASYNCPG_NO_RESET: Final = "asyncpg Pool, reset=no-op"
ASYNC_FIXED_ASYNCPG: Final = "AsyncFixedPool + contrib.asyncpg (default)"
ASYNC_FIXED_ASYNCPG_RESET: Final = "AsyncFixedPool + contrib.asyncpg, full_reset=True"

#: The figures to reach (the issue's).
PEER_GOAL: Final = 1.0
NO_POOL_GOAL: Final = 20.0


def server_url() -> str:
    """The server to measure: ``$RESPOOL_BENCH_POSTGRES``, or the test server."""
    return os.environ.get(ENVIRONMENT) or DEFAULT_URL


class _Skipped(Exception):
    """A row cannot be measured here; the message is its note."""


def _need(*modules: str) -> None:
    for module in modules:
        if not installed(module):
            raise _Skipped(MISSING_HINT)


def _respool_contrib(name: str) -> Any:
    """``respool.contrib.<name>``, imported when its row is about to be timed (it imports
    its driver); a module this build does not have gives a note row."""
    try:
        return importlib.import_module(f"respool.contrib.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"respool.contrib.{name}":
            raise _Skipped(f"not in this build (respool.contrib.{name})") from exc
        raise


def unreachable(url: str) -> str | None:
    """None if a PostgreSQL server answers at *url*, else the note the rows show instead.

    With psycopg installed the probe runs ``SELECT 1`` (so a wrong database or user shows
    too); without it, it only tries a TCP connection."""
    where = _where(url)
    try:
        if installed("psycopg"):
            import psycopg

            with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT, autocommit=True) as conn:
                conn.execute(QUERY)
        else:
            parts = urlsplit(url)
            socket.create_connection(
                (parts.hostname or "127.0.0.1", parts.port or 5432), timeout=CONNECT_TIMEOUT
            ).close()
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"PostgreSQL not reachable at {where} ({reason}); set {ENVIRONMENT}"
    return None


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname or '?'}:{parts.port or 5432}"


# -- rows --------------------------------------------------------------------------------------


def _rows(spreads: Sequence[Spread], baseline: str) -> list[Row]:
    """Throughput rows (k ops/s) with ratios to *baseline*; without it (its driver is
    missing), figures alone."""
    if not spreads:
        return []
    names = [s.name for s in spreads]
    anchor = baseline if baseline in names else names[0]
    rows = rows_from(spreads, anchor, sense="rate")
    if anchor != baseline:
        rows = [dataclasses.replace(r, ratio=None, ratio_best=None, baseline=False) for r in rows]
    return rows


def _pair(fast: Row, slow: Row) -> tuple[float, float] | None:
    """Throughput of *fast* over that of *slow*: medians, best rounds (None if unmeasured)."""
    if fast.median is None or slow.median is None or fast.best is None or slow.best is None:
        return None
    return fast.median / slow.median, fast.best / slow.best


def _goal(text: str, fast: Row, slow: Row, at_least: float) -> Goal:
    ratios = _pair(fast, slow)
    if ratios is None:
        return Goal(text, (fast if fast.median is None else slow).note or "not measured", None)
    median, best = ratios
    return Goal(text, f"{median:.2f}x (best rounds {best:.2f}x)", median >= at_least)


def _sorted(rows: list[Row], order: Sequence[str]) -> list[Row]:
    return sorted(rows, key=lambda row: order.index(row.name))


# -- threads -----------------------------------------------------------------------------------


@dataclass
class _ThreadCase:
    name: str
    op: Callable[[], object]
    per_thread: int
    close: Callable[[], object]
    rounds_ns: list[float] = field(default_factory=list)


def _psycopg_pool(url: str) -> tuple[Callable[[], object], Callable[[], object]]:
    _need("psycopg", "psycopg_pool")
    from psycopg_pool import ConnectionPool

    pool: ConnectionPool[Any] = ConnectionPool(
        url,
        kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT},
        min_size=CONNECTIONS,
        max_size=CONNECTIONS,
        open=False,
        name="bench-postgres-psycopg_pool",
    )
    pool.open(wait=True, timeout=30.0)
    connection = pool.connection

    def op() -> object:
        with connection() as conn:
            return conn.execute(QUERY).fetchone()

    return op, pool.close


def _fixed(url: str) -> tuple[Callable[[], object], Callable[[], object]]:
    _need("psycopg")
    pg = _respool_contrib("psycopg")
    from respool import FixedPool

    pool = FixedPool(
        pg.connections(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT),
        size=CONNECTIONS,
        check_after=30.0,
        name="bench-postgres-fixed",
    )
    acquire = pool.acquire

    def op() -> object:
        with acquire() as conn:
            return conn.execute(QUERY).fetchone()

    return op, pool.close


def _lifo(url: str) -> tuple[Callable[[], object], Callable[[], object]]:
    """The pool people write by hand: a ``LifoQueue`` of connections, ``get``/``put`` around
    the use, no reset, no check, no replacement of a broken connection."""
    _need("psycopg")
    import psycopg

    idle: queue.LifoQueue[psycopg.Connection[Any]] = queue.LifoQueue()
    made = []
    try:
        for _ in range(CONNECTIONS):
            made.append(psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT))
    except BaseException:
        for conn in made:
            conn.close()
        raise
    for conn in made:
        idle.put(conn)
    get, put = idle.get, idle.put

    def op() -> object:
        conn = get()
        try:
            return conn.execute(QUERY).fetchone()
        finally:
            put(conn)

    def close() -> None:
        for conn in made:
            conn.close()

    return op, close


def _connect_per_request(url: str) -> tuple[Callable[[], object], Callable[[], object]]:
    """A new connection for every request, at most CONNECTIONS at a time (as the pools)."""
    _need("psycopg")
    import psycopg

    slots = threading.BoundedSemaphore(CONNECTIONS)
    connect = psycopg.connect

    def op() -> object:
        with slots, connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT) as conn:
            return conn.execute(QUERY).fetchone()

    return op, lambda: None


def threads_table(ctx: Context, url: str, down: str | None) -> Table:
    """THREADS threads on CONNECTIONS connections, one ``SELECT 1`` per use."""
    budget = ctx.budget
    per_thread = budget.n(1_000, 2)
    slow_per_thread = budget.n(40, 1)
    rounds = budget.rounds(5)
    openers: dict[str, tuple[Callable[[str], Any], int]] = {
        PSYCOPG_POOL: (_psycopg_pool, per_thread),
        FIXED: (_fixed, per_thread),
        LIFO: (_lifo, per_thread),
        CONNECT: (_connect_per_request, slow_per_thread),
    }
    order = list(openers)
    cases: list[_ThreadCase] = []
    absent: list[Row] = []
    label = "postgres threads"
    try:
        for name, (opener, count) in openers.items():
            if down is not None:
                absent.append(Row(name, note=down))
                continue
            ctx.progress.note(f"[{label}] opening {name}…")
            try:
                op, close = opener(url)
            except _Skipped as exc:
                absent.append(Row(name, note=str(exc)))
                continue
            cases.append(_ThreadCase(name, op, count, close))
        for case in cases:  # warm-up: connections used, statements prepared, threads made
            wall_seconds(case.op, max(1, case.per_thread // 10), THREADS)
        steps, step = rounds * len(cases), 0
        for round_number in range(1, rounds + 1):
            for case in cases:
                step += 1
                ctx.progress.step(label, step, steps, round_number, case.name)
                seconds = wall_seconds(case.op, case.per_thread, THREADS)
                case.rounds_ns.append(seconds / (case.per_thread * THREADS) * 1e9)
    finally:
        for case in cases:
            case.close()
    spreads = [Spread(case.name, tuple(case.rounds_ns)) for case in cases]
    rows = _sorted(_rows(spreads, PSYCOPG_POOL) + absent, order)
    by_name = {row.name: row for row in rows}
    fixed, peer, bare = by_name[FIXED], by_name[PSYCOPG_POOL], by_name[CONNECT]
    goals = [
        _goal(f"{FIXED} throughput >= {PEER_GOAL:g}x {PSYCOPG_POOL}", fixed, peer, PEER_GOAL),
        _goal(f"{FIXED} throughput >= {NO_POOL_GOAL:g}x {CONNECT}", fixed, bare, NO_POOL_GOAL),
    ]
    notes = [
        f"Each use: take a connection, run {QUERY!r} and fetch its row, give the connection"
        f" back; psycopg, autocommit; {per_thread} uses per thread and round"
        f" ({slow_per_thread} for connect per request, which opens and closes a connection"
        f" each time, at most {CONNECTIONS} at once).",
        "On return: psycopg_pool and contrib.psycopg read the transaction status (no round"
        " trip for an idle connection); the LifoQueue pool does nothing at all. FixedPool runs"
        " with check_after=30 (no connection is idle that long here).",
        "The issue's figures on its machine: psycopg_pool 4.8k/s, the LifoQueue pool 6.4k/s.",
    ]
    return Table(
        key="postgres-threads",
        title=f"PostgreSQL, threads: {THREADS} threads on {CONNECTIONS} connections, {QUERY}",
        unit="k ops/s",
        baseline=PSYCOPG_POOL,
        rows=rows,
        higher_is_better=True,
        goals=goals,
        notes=notes,
    )


# -- asyncio -----------------------------------------------------------------------------------

AsyncUse = Callable[[], Awaitable[object]]


@dataclass
class _AsyncCase:
    name: str
    use: AsyncUse
    close: Callable[[], Awaitable[object]]
    rounds_ns: list[float] = field(default_factory=list)


async def _round(use: AsyncUse, per_task: int) -> float:
    """TASKS tasks released together, each making *per_task* uses; seconds until all end."""
    start = asyncio.Event()

    async def work() -> None:
        await start.wait()
        for _ in range(per_task):
            await use()

    tasks = [asyncio.create_task(work()) for _ in range(TASKS)]
    await asyncio.sleep(0)  # every task now waits for the start
    clock = time.perf_counter
    began = clock()
    start.set()
    await asyncio.gather(*tasks)
    return clock() - began


async def _async_psycopg_pool(url: str) -> tuple[AsyncUse, Callable[[], Awaitable[object]]]:
    _need("psycopg", "psycopg_pool")
    from psycopg_pool import AsyncConnectionPool

    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        url,
        kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT},
        min_size=ASYNC_CONNECTIONS,
        max_size=ASYNC_CONNECTIONS,
        open=False,
        name="bench-postgres-psycopg_pool-async",
    )
    await pool.open(wait=True, timeout=30.0)
    connection = pool.connection

    async def use() -> object:
        async with connection() as conn:
            cursor = await conn.execute(QUERY)
            return await cursor.fetchone()

    return use, pool.close


async def _async_fixed(url: str) -> tuple[AsyncUse, Callable[[], Awaitable[object]]]:
    _need("psycopg")
    pg = _respool_contrib("psycopg")
    from respool import AsyncFixedPool

    pool = AsyncFixedPool(
        pg.async_connections(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT),
        size=ASYNC_CONNECTIONS,
        check_after=30.0,
        name="bench-postgres-async-fixed",
    )
    await pool.open()
    acquire = pool.acquire

    async def use() -> object:
        async with acquire() as conn:
            cursor = await conn.execute(QUERY)
            return await cursor.fetchone()

    return use, pool.close


async def _no_reset(conn: Any) -> None:
    """asyncpg's ``reset=`` hook that sends nothing (the pool still rolls back an open
    transaction and drops listeners itself, without a round trip when there is none)."""


async def _asyncpg_pool(
    url: str, *, reset: bool
) -> tuple[AsyncUse, Callable[[], Awaitable[object]]]:
    _need("asyncpg")
    import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

    pool = await asyncpg.create_pool(
        url,
        min_size=ASYNC_CONNECTIONS,
        max_size=ASYNC_CONNECTIONS,
        timeout=CONNECT_TIMEOUT,
        reset=None if reset else _no_reset,
    )
    acquire = pool.acquire

    async def use() -> object:
        async with acquire() as conn:
            return await conn.fetchval(QUERY)

    return use, pool.close


async def _async_fixed_asyncpg(
    url: str, *, reset: bool
) -> tuple[AsyncUse, Callable[[], Awaitable[object]]]:
    _need("asyncpg")
    contrib = _respool_contrib("asyncpg")
    from respool import AsyncFixedPool

    pool = AsyncFixedPool(
        contrib.connections(url, full_reset=reset, timeout=CONNECT_TIMEOUT),
        size=ASYNC_CONNECTIONS,
        check_after=30.0,
        name="bench-postgres-async-fixed-asyncpg" + ("-reset" if reset else ""),
    )
    await pool.open()
    acquire = pool.acquire

    async def use() -> object:
        async with acquire() as conn:
            return await conn.fetchval(QUERY)

    return use, pool.close


AsyncOpener = Callable[[str], Awaitable[tuple[AsyncUse, Callable[[], Awaitable[object]]]]]


def _async_table(
    ctx: Context,
    runner: asyncio.Runner,
    label: str,
    openers: dict[str, AsyncOpener],
    url: str,
    down: str | None,
) -> tuple[list[Row], int]:
    """Time every opener's pool in interleaved rounds of TASKS tasks; rows in *openers*'
    order (the first is the baseline), and the uses per task in a round."""
    per_task = ctx.budget.n(60, 2)
    rounds = ctx.budget.rounds(5)
    cases: list[_AsyncCase] = []
    absent: list[Row] = []
    baseline = next(iter(openers))

    async def setup() -> None:
        for name, opener in openers.items():
            if down is not None:
                absent.append(Row(name, note=down))
                continue
            ctx.progress.note(f"[{label}] opening {name}…")
            try:
                use, close = await opener(url)
            except _Skipped as exc:
                absent.append(Row(name, note=str(exc)))
                continue
            cases.append(_AsyncCase(name, use, close))

    async def close_all() -> None:
        for case in cases:
            await case.close()

    try:
        runner.run(setup())
        for case in cases:  # warm-up
            runner.run(_round(case.use, max(1, per_task // 10)))
        steps, step = rounds * len(cases), 0
        for round_number in range(1, rounds + 1):
            for case in cases:
                step += 1
                ctx.progress.step(label, step, steps, round_number, case.name)
                seconds = _run_paused_gc(runner, _round(case.use, per_task))
                case.rounds_ns.append(seconds / (per_task * TASKS) * 1e9)
    finally:
        runner.run(close_all())
    spreads = [Spread(case.name, tuple(case.rounds_ns)) for case in cases]
    return _sorted(_rows(spreads, baseline) + absent, list(openers)), per_task


def psycopg_async_table(ctx: Context, runner: asyncio.Runner, url: str, down: str | None) -> Table:
    """TASKS tasks on ASYNC_CONNECTIONS psycopg connections, one loop."""
    openers: dict[str, AsyncOpener] = {
        ASYNC_PSYCOPG_POOL: _async_psycopg_pool,
        ASYNC_FIXED: _async_fixed,
    }
    rows, per_task = _async_table(ctx, runner, "postgres asyncio psycopg", openers, url, down)
    by_name = {row.name: row for row in rows}
    return Table(
        key="postgres-asyncio-psycopg",
        title=f"PostgreSQL, asyncio with psycopg: {TASKS} tasks on {ASYNC_CONNECTIONS}"
        f" connections, {QUERY}",
        unit="k ops/s",
        baseline=ASYNC_PSYCOPG_POOL,
        rows=rows,
        higher_is_better=True,
        goals=[
            _goal(
                f"{ASYNC_FIXED} throughput >= {PEER_GOAL:g}x {ASYNC_PSYCOPG_POOL}",
                by_name[ASYNC_FIXED],
                by_name[ASYNC_PSYCOPG_POOL],
                PEER_GOAL,
            )
        ],
        notes=[
            f"Each use: async with the pool's context manager, {QUERY!r}, fetch the row;"
            f" autocommit; {per_task} uses per task and round.",
            "On return both read the transaction status and send nothing for an idle"
            " connection. AsyncFixedPool runs with check_after=30 (no connection is idle that"
            " long here).",
        ],
    )


def asyncpg_table(ctx: Context, runner: asyncio.Runner, url: str, down: str | None) -> Table:
    """TASKS tasks on ASYNC_CONNECTIONS asyncpg connections: defaults, and like for like."""

    async def fixed_default(url: str) -> tuple[AsyncUse, Callable[[], Awaitable[object]]]:
        return await _async_fixed_asyncpg(url, reset=False)

    async def fixed_reset(url: str) -> tuple[AsyncUse, Callable[[], Awaitable[object]]]:
        return await _async_fixed_asyncpg(url, reset=True)

    async def pool_default(url: str) -> tuple[AsyncUse, Callable[[], Awaitable[object]]]:
        return await _asyncpg_pool(url, reset=True)

    async def pool_no_reset(url: str) -> tuple[AsyncUse, Callable[[], Awaitable[object]]]:
        return await _asyncpg_pool(url, reset=False)

    openers: dict[str, AsyncOpener] = {
        ASYNCPG_POOL: pool_default,
        ASYNC_FIXED_ASYNCPG: fixed_default,
        ASYNCPG_NO_RESET: pool_no_reset,
        ASYNC_FIXED_ASYNCPG_RESET: fixed_reset,
    }
    rows, per_task = _async_table(ctx, runner, "postgres asyncio asyncpg", openers, url, down)
    by_name = {row.name: row for row in rows}
    goals = [
        _goal(
            f"defaults: {ASYNC_FIXED_ASYNCPG} throughput >= {PEER_GOAL:g}x {ASYNCPG_POOL}",
            by_name[ASYNC_FIXED_ASYNCPG],
            by_name[ASYNCPG_POOL],
            PEER_GOAL,
        ),
        _goal(
            "like for like, asyncpg's reset round trip on each release:"
            f" {ASYNC_FIXED_ASYNCPG_RESET} >= {PEER_GOAL:g}x {ASYNCPG_POOL}",
            by_name[ASYNC_FIXED_ASYNCPG_RESET],
            by_name[ASYNCPG_POOL],
            PEER_GOAL,
        ),
        _goal(
            "like for like, no reset round trip: AsyncFixedPool + contrib.asyncpg >="
            f" {PEER_GOAL:g}x {ASYNCPG_NO_RESET}",
            by_name[ASYNC_FIXED_ASYNCPG],
            by_name[ASYNCPG_NO_RESET],
            PEER_GOAL,
        ),
    ]
    return Table(
        key="postgres-asyncio-asyncpg",
        title=f"PostgreSQL, asyncio with asyncpg: {TASKS} tasks on {ASYNC_CONNECTIONS}"
        f" connections, {QUERY}",
        unit="k ops/s",
        baseline=ASYNCPG_POOL,
        rows=rows,
        higher_is_better=True,
        goals=goals,
        notes=[
            f"Each use: async with pool.acquire(), fetchval({QUERY!r}); {per_task} uses per"
            " task and round.",
            "On release, asyncpg's pool by default sends a reset query (a round trip:"
            " pg_advisory_unlock_all(), CLOSE ALL, UNLISTEN *, RESET ALL), after rolling back"
            " an open transaction; with reset=no-op it only does the latter. contrib.asyncpg by"
            " default sends nothing for a connection returned outside a transaction; with"
            " full_reset=True it calls the same Connection.reset() on every return, as"
            " asyncpg's pool does. AsyncFixedPool runs with check_after=30.",
        ],
    )


def run(ctx: Context) -> list[Table]:
    """The three PostgreSQL tables; note rows instead of figures if the server is not there."""
    url = server_url()
    ctx.progress.note(f"[postgres] probing {_where(url)}…")
    down = unreachable(url)
    tables = [threads_table(ctx, url, down)]
    with asyncio.Runner() as runner:
        tables.append(psycopg_async_table(ctx, runner, url, down))
        tables.append(asyncpg_table(ctx, runner, url, down))
    return tables
