"""Scenario ``asyncio``: the asyncio pools against what asyncio code writes without them.

Three tables, each timed on one event loop in interleaved rounds and read as ratios to a
baseline of the same run:

* **Uncontended**: one task takes a resource and gives it back. ``async with pool.acquire()``
  and ``await pool.acquire()`` + ``await lease.release()`` on ``AsyncFixedPool`` and
  ``AsyncElasticPool``, next to an ``asyncio.Queue`` used as a pool (``await q.get()`` +
  ``await q.put()``, the baseline), its ``get_nowait()``/``put_nowait()`` (no coroutine at
  all), the threaded ``FixedPool`` used from a coroutine (it never waits when a resource is
  idle), and psycopg_pool's ``AsyncConnectionPool`` with a fake connection class (no server).
  Goals: at most 1.5x the queue, at least 4x cheaper than psycopg_pool.
* **Contended**: 64 tasks on 8 resources, each holding its resource across
  ``await asyncio.sleep(0)`` (as a task doing I/O would), so that most acquires wait.
  Throughput and the wait of every acquire (p50, p99, max), for ``fairness="bounded"`` and
  ``"fifo"``, against an ``asyncio.Queue`` used as a pool (which lets a newcomer take a
  returned resource ahead of a waiter). Goals: bounded at least 1.0x the queue's throughput,
  its longest overtaken wait within its window.
* **Worker round trip**: ``await wp.submit(noop)`` on ``AsyncWorkerPool(workers=1)`` against a
  consumer task fed through an ``asyncio.Queue`` that settles a ``Future`` per item.

A row whose class does not exist in this build of respool (the asyncio pools arrive one at a
time) says so instead of a figure, and its goals are "not measured".

Run: ``respool bench asyncio`` or ``python benchmarks/bench_asyncio.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from operator import methodcaller
from typing import Any, Final

from respool._threads.free_list import DEFAULT_FAIRNESS_WINDOW
from respool.bench import _contenders
from respool.bench._report import Column, Goal, Row, Table, missing, ratio_text, rows_from
from respool.bench._run import Context
from respool.bench._timing import Spread
from respool.fixed import FixedPool

__all__ = ["RESOURCES", "TASKS", "contended", "round_trip", "run", "uncontended"]

TASKS: Final = 64
RESOURCES: Final = 8

QUEUE: Final = "asyncio.Queue: await get()+put()"
NOWAIT: Final = "asyncio.Queue: get_nowait()+put_nowait()"
FIXED_WITH: Final = "AsyncFixedPool: async with acquire()"
FIXED_LEASE: Final = "AsyncFixedPool: await acquire()+release()"
FIXED_TRY: Final = "AsyncFixedPool: try_acquire()+await release()"
ELASTIC_WITH: Final = "AsyncElasticPool: async with acquire()"
ELASTIC_LEASE: Final = "AsyncElasticPool: await acquire()+release()"
THREADED: Final = "FixedPool (threaded): with acquire()"
PSYCOPG: Final = "psycopg_pool AsyncConnectionPool"

CONTENDED_BASELINE: Final = "asyncio.Queue"
BOUNDED: Final = "AsyncFixedPool(bounded)"
FIFO: Final = "AsyncFixedPool(fifo)"
ELASTIC_BOUNDED: Final = "AsyncElasticPool(bounded)"

RELAY: Final = "asyncio.Queue + Future, consumer task"
WORKER: Final = "AsyncWorkerPool(workers=1)"
WORKER_BOUNDED: Final = "AsyncWorkerPool(1, max_pending=64)"

#: The figures to reach (issue 11).
QUEUE_GOAL: Final = 1.5
PEER_GOAL: Final = 4.0
THROUGHPUT_GOAL: Final = 1.0

COLUMNS: Final = (
    Column("p50_us", "p50 µs", "{:.1f}"),
    Column("p99_us", "p99 µs", "{:.0f}"),
    Column("max_us", "max µs", "{:.0f}"),
    Column("overtaken_max_us", "overtaken max µs", "{:.1f}"),
    Column("window_us", "window µs", "{:.0f}"),
)

AsyncOp = Callable[[], Awaitable[object]]


class Unavailable(Exception):
    """The respool class a row needs does not exist in this build (yet)."""


def _respool_class(name: str, module: str = "respool") -> Any:
    """``respool.<name>`` (or ``<module>.<name>``), looked up at run time; raises
    :class:`Unavailable` when this build has no such class."""
    try:
        found = getattr(importlib.import_module(module), name, None)
    except ImportError:
        found = None
    if found is None:
        raise Unavailable(f"{module}.{name}")
    return found


def _unavailable(name: str, what: str) -> Row:
    return Row(name, note=f"not in this build ({what})")


# -- timing ------------------------------------------------------------------------------------


async def _timed(op: AsyncOp, number: int) -> float:
    """Seconds for *number* awaits of ``op()`` back to back, on the running loop."""
    clock = time.perf_counter
    started = clock()
    for _ in range(number):
        await op()
    return clock() - started


def _run_paused_gc(runner: asyncio.Runner, coro: Coroutine[Any, Any, float]) -> float:
    """``runner.run(coro)`` with the cyclic collector paused, as ``timeit`` times the threaded
    scenarios: a collection landing in one row's round would be charged to that row."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return runner.run(coro)
    finally:
        if enabled:
            gc.enable()


def _interleaved(
    ctx: Context,
    runner: asyncio.Runner,
    label: str,
    cases: list[tuple[str, AsyncOp]],
    number: int,
    rounds: int,
) -> list[Spread]:
    """Every case once per round, round after round, each round *number* operations: the
    asyncio form of :func:`respool.bench._timing.repeated`."""
    for _, op in cases:
        runner.run(_timed(op, min(number, 1000)))
    taken: dict[str, list[float]] = {name: [] for name, _ in cases}
    steps, step = rounds * len(cases), 0
    for round_number in range(1, rounds + 1):
        for name, op in cases:
            step += 1
            ctx.progress.step(label, step, steps, round_number, name)
            seconds = _run_paused_gc(runner, _timed(op, number))
            taken[name].append(seconds / number * 1e9)
    return [Spread(name, tuple(taken[name])) for name, _ in cases]


# -- uncontended -------------------------------------------------------------------------------


def _get_put(borrower: _contenders.AsyncBorrower) -> AsyncOp:
    get, put = borrower.get, borrower.put

    async def op() -> None:
        await put(await get())

    return op


def _async_with(pool: Any) -> AsyncOp:
    async def op() -> None:
        async with pool.acquire():
            pass

    return op


def _lease(pool: Any) -> AsyncOp:
    async def op() -> None:
        lease = await pool.acquire()
        await lease.release()

    return op


def _try(pool: Any) -> AsyncOp:
    """``try_acquire()`` never waits; a ``None`` here means the pool lost its resource, so
    the case fails rather than timing nothing."""

    async def op() -> None:
        lease = pool.try_acquire()
        if lease is None:
            raise RuntimeError("try_acquire() found no idle resource in an idle pool")
        await lease.release()

    return op


async def _queue_of(size: int, kind: type[asyncio.Queue[object]] = asyncio.Queue) -> Any:
    q = kind()
    for _ in range(size):
        q.put_nowait(object())
    return q


async def queue_borrower(size: int) -> _contenders.AsyncBorrower:
    """An ``asyncio.Queue`` of *size* objects used as a pool: the baseline of both tables."""
    q = await _queue_of(size)
    return _contenders.AsyncBorrower(q.get, q.put, _nothing)


async def lifo_borrower(size: int) -> _contenders.AsyncBorrower:
    """The same with ``asyncio.LifoQueue`` (the most recently returned resource first)."""
    q = await _queue_of(size, asyncio.LifoQueue)
    return _contenders.AsyncBorrower(q.get, q.put, _nothing)


async def _nothing() -> None:
    pass


async def _open(stack: contextlib.AsyncExitStack, pool: Any) -> Any:
    """Open *pool* (``async with pool``) and have *stack* close it."""
    return await stack.enter_async_context(pool)


def uncontended(ctx: Context, runner: asyncio.Runner) -> Table:
    """One task takes a resource and gives it back, every way the pools allow."""
    number, rounds = ctx.budget.n(100_000, 20), ctx.budget.rounds(7)
    stack = contextlib.AsyncExitStack()
    absent: list[Row] = []
    cases: list[tuple[str, AsyncOp]] = []
    threaded = FixedPool(object, size=1, name="bench-asyncio-threaded")

    async def setup() -> None:
        queue = await queue_borrower(1)
        cases.append((QUEUE, _get_put(queue)))
        nowait = await _queue_of(1)

        async def get_put_nowait() -> None:
            nowait.put_nowait(nowait.get_nowait())

        cases.append((NOWAIT, get_put_nowait))
        try:
            fixed_class = _respool_class("AsyncFixedPool")
        except Unavailable as exc:
            absent.extend(_unavailable(n, str(exc)) for n in (FIXED_WITH, FIXED_LEASE, FIXED_TRY))
        else:
            for name, make in ((FIXED_WITH, _async_with), (FIXED_LEASE, _lease), (FIXED_TRY, _try)):
                pool = await _open(stack, fixed_class(object, size=1, name=f"bench-{name}"))
                cases.append((name, make(pool)))
        try:
            elastic_class = _respool_class("AsyncElasticPool")
        except Unavailable as exc:
            absent.extend(_unavailable(n, str(exc)) for n in (ELASTIC_WITH, ELASTIC_LEASE))
        else:
            for name, make in ((ELASTIC_WITH, _async_with), (ELASTIC_LEASE, _lease)):
                pool = await _open(
                    stack, elastic_class(object, min_idle=1, max_idle=1, name=f"bench-{name}")
                )
                cases.append((name, make(pool)))

        async def with_threaded() -> None:
            with threaded.acquire():
                pass

        cases.append((THREADED, with_threaded))
        for name, opener in _contenders.ASYNC_PEERS.items():
            try:
                borrower = await opener(1)
            except _contenders.PeerMissing:
                absent.append(missing(name))
                continue
            stack.push_async_callback(borrower.close)
            cases.append((name, _get_put(borrower)))

    try:
        runner.run(setup())
        spreads = _interleaved(ctx, runner, "asyncio uncontended", cases, number, rounds)
    finally:
        runner.run(stack.aclose())
        threaded.close()
    order = [QUEUE, NOWAIT, FIXED_WITH, FIXED_LEASE, FIXED_TRY, ELASTIC_WITH, ELASTIC_LEASE]
    order += [THREADED, *_contenders.ASYNC_PEERS]
    rows = rows_from(spreads, QUEUE) + absent
    rows.sort(key=lambda row: order.index(row.name))
    return Table(
        key="asyncio-uncontended",
        title="asyncio, uncontended: one task takes a resource and gives it back",
        unit="ns/op",
        baseline=QUEUE,
        rows=rows,
        goals=_uncontended_goals(rows),
        notes=[
            "Each operation is one await of a coroutine doing the row's calls, so every row"
            " pays that await too. The threaded FixedPool never waits here (a resource is"
            " always idle); from a coroutine it would block the loop when one is not.",
            "psycopg_pool runs with a fake connection class (no I/O): its row prices the"
            " pool's own bookkeeping.",
        ],
    )


def _uncontended_goals(rows: list[Row]) -> list[Goal]:
    by_name = {row.name: row for row in rows}
    fixed = by_name[FIXED_WITH]
    text = f"AsyncFixedPool async with acquire() <= {QUEUE_GOAL:g}x {QUEUE}"
    if fixed.ratio is None or fixed.median is None:
        return [
            Goal(text, fixed.note, None),
            Goal(f"AsyncFixedPool >= {PEER_GOAL:g}x cheaper than {PSYCOPG}", fixed.note, None),
        ]
    goals = [Goal(text, ratio_text(fixed), fixed.ratio <= QUEUE_GOAL)]
    peer = by_name[PSYCOPG]
    text = f"AsyncFixedPool >= {PEER_GOAL:g}x cheaper than {PSYCOPG}"
    if peer.median is None:
        goals.append(Goal(text, peer.note, None))
    else:
        cheaper = peer.median / fixed.median
        goals.append(Goal(text, f"{cheaper:.1f}x cheaper", cheaper >= PEER_GOAL))
    return goals


# -- contended -----------------------------------------------------------------------------------


def _respool_opener(
    class_name: str, fairness: str, elastic: bool = False
) -> _contenders.AsyncOpener:
    """An opener for an asyncio pool of respool's, the class looked up when it runs."""

    async def open_(size: int) -> _contenders.AsyncBorrower:
        cls = _respool_class(class_name)
        name = f"bench-asyncio-{class_name}-{fairness}"
        if elastic:
            pool = cls(
                object,
                min_idle=size,
                max_idle=size,
                max_size=size,
                fairness=fairness,
                name=name,
            )
        else:
            pool = cls(object, size=size, fairness=fairness, name=name)
        await pool.open()
        window = DEFAULT_FAIRNESS_WINDOW if fairness == "bounded" else None
        return _contenders.AsyncBorrower(
            pool.acquire, methodcaller("release"), pool.close, pool.stats, window
        )

    return open_


def contended_openers() -> dict[str, _contenders.AsyncOpener]:
    """Every row of the contended table, baseline first."""
    return {
        CONTENDED_BASELINE: queue_borrower,
        BOUNDED: _respool_opener("AsyncFixedPool", "bounded"),
        FIFO: _respool_opener("AsyncFixedPool", "fifo"),
        ELASTIC_BOUNDED: _respool_opener("AsyncElasticPool", "bounded", elastic=True),
        "asyncio.LifoQueue": lifo_borrower,
        **_contenders.ASYNC_PEERS,
    }


@dataclass
class _Case:
    """One row being measured: its pool, what each round saw."""

    name: str
    borrower: _contenders.AsyncBorrower
    waits: _contenders.Waits = field(default_factory=_contenders.Waits)


async def _contended_round(case: _Case, per_task: int) -> float:
    """TASKS tasks, released together, each taking a resource *per_task* times (timing each
    wait) and holding it across ``sleep(0)``; the wall-clock seconds until all are done."""
    get, put, record = case.borrower.get, case.borrower.put, case.waits.current.append
    clock, sleep = time.perf_counter, asyncio.sleep
    start = asyncio.Event()

    async def work() -> None:
        await start.wait()
        for _ in range(per_task):
            began = clock()
            item = await get()
            record(clock() - began)
            await sleep(0)
            await put(item)

    tasks = [asyncio.create_task(work()) for _ in range(TASKS)]
    await sleep(0)  # every task is now waiting for the start
    began = clock()
    start.set()
    await asyncio.gather(*tasks)
    return clock() - began


def contended(ctx: Context, runner: asyncio.Runner) -> Table:
    """TASKS tasks on RESOURCES resources, holding across ``sleep(0)``."""
    per_task, rounds = ctx.budget.n(500, 5), ctx.budget.rounds(7)
    total = per_task * TASKS
    openers = contended_openers()
    cases: list[_Case] = []
    absent: list[Row] = []

    async def setup() -> None:
        for name, opener in openers.items():
            try:
                borrower = await opener(RESOURCES)
            except Unavailable as exc:
                absent.append(_unavailable(name, str(exc)))
                continue
            except _contenders.PeerMissing:
                absent.append(missing(name))
                continue
            cases.append(_Case(name, borrower))

    async def close_all() -> None:
        for case in cases:
            await case.borrower.close()

    try:
        runner.run(setup())
        for case in cases:  # warm-up
            runner.run(_contended_round(case, max(1, per_task // 10)))
        steps, step = rounds * len(cases), 0
        for round_number in range(1, rounds + 1):
            for case in cases:
                step += 1
                ctx.progress.step("asyncio contended", step, steps, round_number, case.name)
                case.waits.start_round()
                seconds = _run_paused_gc(runner, _contended_round(case, per_task))
                case.waits.end_round(case.name, seconds, total)
        extra = {case.name: case.waits.extra(case.borrower) for case in cases}
    finally:
        runner.run(close_all())
    spreads = [Spread(case.name, tuple(case.waits.rounds_ns)) for case in cases]
    rows = rows_from(spreads, CONTENDED_BASELINE, sense="rate", extra=extra) + absent
    names = list(openers)
    rows.sort(key=lambda row: names.index(row.name))
    return Table(
        key="asyncio-contended",
        title=f"asyncio, contended: {TASKS} tasks on {RESOURCES} resources,"
        " holding across sleep(0)",
        unit="k ops/s",
        baseline=CONTENDED_BASELINE,
        rows=rows,
        higher_is_better=True,
        columns=COLUMNS,
        goals=_contended_goals(rows),
        notes=_contended_notes(rows),
    )


def _contended_goals(rows: list[Row]) -> list[Goal]:
    bounded = {row.name: row for row in rows}[BOUNDED]
    text = f"{BOUNDED} throughput >= {THROUGHPUT_GOAL:g}x {CONTENDED_BASELINE}"
    wait_text = f"{BOUNDED} longest overtaken wait <= its window"
    if bounded.ratio is None:
        return [Goal(text, bounded.note, None), Goal(wait_text, bounded.note, None)]
    overtaken = bounded.extra.get("overtaken_max_us")
    window = bounded.extra.get("window_us")
    assert isinstance(overtaken, float)
    assert isinstance(window, float)
    return [
        Goal(text, ratio_text(bounded), bounded.ratio >= THROUGHPUT_GOAL),
        Goal(wait_text, f"{overtaken:.1f} µs, window {window:.0f} µs", overtaken <= window),
    ]


def _contended_notes(rows: list[Row]) -> list[str]:
    fifo = {row.name: row for row in rows}[FIFO]
    notes = []
    if fifo.ratio is not None:
        notes.append(
            f"Strict order, {FIFO}: {fifo.ratio:.2f}x {CONTENDED_BASELINE}'s throughput,"
            " beside the bounded default above."
        )
    notes.append(
        "Waits are per acquire, in microseconds: p50 and p99 are the median over rounds,"
        " max the longest of any round."
    )
    return notes


# -- worker round trip ---------------------------------------------------------------------------


def _noop(resource: object) -> None:
    """The task: nothing, so only the hand-off is timed."""


class _Relay:
    """The floor of a hand-off to another task: a consumer task fed by an ``asyncio.Queue``,
    settling one ``Future`` per item."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[tuple[Callable[[object], object], asyncio.Future[object]]]
        self._queue = asyncio.Queue()
        self._resource = object()
        self._task = asyncio.create_task(self._serve())

    async def _serve(self) -> None:
        get, resource = self._queue.get, self._resource
        while True:
            fn, future = await get()
            try:
                future.set_result(fn(resource))
            except Exception as exc:
                future.set_exception(exc)

    async def submit(self, fn: Callable[[object], object]) -> object:
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        await self._queue.put((fn, future))
        return await future

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def _submitter(wp: Any) -> AsyncOp:
    submit = wp.submit

    async def op() -> None:
        await submit(_noop)

    return op


def round_trip(ctx: Context, runner: asyncio.Runner) -> Table:
    """``await wp.submit(noop)``, one at a time, against the relay."""
    number, rounds = ctx.budget.n(20_000, 20), ctx.budget.rounds(7)
    stack = contextlib.AsyncExitStack()
    cases: list[tuple[str, AsyncOp]] = []
    absent: list[Row] = []

    async def setup() -> None:
        relay = _Relay()
        stack.push_async_callback(relay.close)

        async def relayed() -> None:
            await relay.submit(_noop)

        cases.append((RELAY, relayed))
        try:
            worker_class = _respool_class("AsyncWorkerPool", "respool._asyncio.worker")
        except Unavailable as exc:
            absent.extend(_unavailable(name, str(exc)) for name in (WORKER, WORKER_BOUNDED))
            return
        for name, pending in ((WORKER, None), (WORKER_BOUNDED, 64)):
            wp = await _open(
                stack, worker_class(object, workers=1, max_pending=pending, name=f"bench-{name}")
            )
            cases.append((name, _submitter(wp)))

    try:
        runner.run(setup())
        spreads = _interleaved(ctx, runner, "asyncio worker", cases, number, rounds)
    finally:
        runner.run(stack.aclose())
    rows = rows_from(spreads, RELAY) + absent
    notes = [
        "The relay is the least a hand-off to another task can cost: a queue put, a task"
        " switch, a Future settled and awaited."
    ]
    worker = {row.name: row for row in rows}[WORKER]
    if worker.ratio is not None:
        notes.append(f"{WORKER}: {ratio_text(worker)} the relay's round trip.")
    return Table(
        key="asyncio-worker",
        title="asyncio, one task at a time: await submit(noop) round trip",
        unit="ns/op",
        baseline=RELAY,
        rows=rows,
        notes=notes,
    )


def run(ctx: Context) -> list[Table]:
    """The three asyncio tables, on one event loop."""
    with asyncio.Runner() as runner:
        return [uncontended(ctx, runner), contended(ctx, runner), round_trip(ctx, runner)]
