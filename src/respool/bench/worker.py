"""Scenario ``worker``: ``WorkerPool`` against a bare queue round trip and the executor.

Three tables, each with ratios to a baseline measured in the same run:

* **One task at a time**: ``submit(noop).result()`` with one worker, next to the floor of any
  thread hand-off (a bare thread relaying an item from one ``queue.SimpleQueue`` to another:
  two wake-ups and nothing else), ``ThreadPoolExecutor(1)``, and ``ThreadPoolExecutor(1)``
  whose task fetches a per-thread resource from a ``threading.local`` (the usual way to give
  executor threads a resource each). A pool must also build a ``Future`` and settle it.
* **map throughput**: ``WorkerPool.map`` over N items next to ``Executor.map``, two workers,
  nanoseconds per item.
* **Memory of a long map**: ``WorkerPool.map`` keeps at most ``max_pending`` items in flight,
  so its footprint must not grow with the input, while ``Executor.map`` submits its whole
  input up front. Each case runs in a fresh interpreter and reports how much its peak RSS
  grew (or its ``tracemalloc`` peak, where the ``resource`` module is missing).
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

from respool.bench._report import Column, Goal, Row, Table, ratio_text, rows_from
from respool.bench._run import Context
from respool.bench._timing import repeated
from respool.worker import WorkerPool

__all__ = ["map_memory", "map_throughput", "round_trip", "run"]

#: The goals the figures are read against (issue 10 for the relay, issue 3 for the executor).
QUEUE_GOAL: Final = 1.3
EXECUTOR_GOAL: Final = 0.8
WINDOW: Final = 64

SQ: Final = "SimpleQueue relay, bare thread"
TPE: Final = "ThreadPoolExecutor(1)"
TPE_LOCAL: Final = "ThreadPoolExecutor(1) + threading.local"
WP: Final = "WorkerPool(workers=1)"
WP_BOUNDED: Final = f"WorkerPool(1, max_pending={WINDOW})"

EXECUTOR_MAP: Final = "Executor.map, 2 threads"
EXECUTOR_LOCAL_MAP: Final = "Executor.map + threading.local"
WP_MAP: Final = "WorkerPool(2).map"
WP_MAP_BOUNDED: Final = f"WorkerPool(2, max_pending={WINDOW}).map"


def _noop_task(resource: object) -> None:
    """The task: nothing, so only the pool's own cost is timed."""


def _noop() -> None:
    """The same for ThreadPoolExecutor, which passes no resource."""


class _PerThread(threading.local):
    """A resource per executor thread, made on the thread's first task: what users of
    ``ThreadPoolExecutor`` write to give each thread its own connection."""

    resource: object | None = None


def _local_task(local: _PerThread) -> object:
    """Fetch (or make) this thread's resource, then do nothing with it."""
    resource = local.resource
    if resource is None:
        resource = local.resource = object()
    return resource


class _Relay:
    """The floor of a thread hand-off: a thread moving items from one SimpleQueue to another."""

    def __init__(self) -> None:
        self.inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.outbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._relay, name="bench-relay", daemon=True)
        self.thread.start()

    def _relay(self) -> None:
        inbox, outbox = self.inbox, self.outbox
        while (item := inbox.get()) is not None:
            outbox.put(item)

    def round_trip(self) -> None:
        self.inbox.put(self)
        self.outbox.get()

    def close(self) -> None:
        self.inbox.put(None)
        self.thread.join()


def round_trip(ctx: Context) -> Table:
    """``submit(noop).result()``, one at a time, next to its baselines."""
    number, rounds = ctx.budget.n(2_000, 10), ctx.budget.rounds(15)
    relay = _Relay()
    executor = ThreadPoolExecutor(1)
    local_executor = ThreadPoolExecutor(1)
    local = _PerThread()
    pool = WorkerPool(object, 1, name="bench-worker")
    bounded = WorkerPool(object, 1, max_pending=WINDOW, name="bench-worker-bounded")
    cases: list[tuple[str, Callable[[], object]]] = [
        (SQ, relay.round_trip),
        (TPE, lambda: executor.submit(_noop).result()),
        (TPE_LOCAL, lambda: local_executor.submit(_local_task, local).result()),
        (WP, lambda: pool.submit(_noop_task).result()),
        (WP_BOUNDED, lambda: bounded.submit(_noop_task).result()),
    ]
    try:
        spreads = repeated(
            cases, number, rounds, warmup=min(200, number), on_step=ctx.on_step("worker")
        )
    finally:
        relay.close()
        executor.shutdown()
        local_executor.shutdown()
        pool.shutdown()
        bounded.shutdown()
    rows = rows_from(spreads, SQ)
    by_name = {row.name: row for row in rows}
    goals = []
    for name in (WP, WP_BOUNDED):
        row = by_name[name]
        assert row.ratio is not None
        goals.append(
            Goal(
                f"{name} <= {QUEUE_GOAL:g}x the bare SimpleQueue round trip",
                ratio_text(row),
                row.ratio <= QUEUE_GOAL,
            )
        )
    worker_median, executor_median = by_name[WP].median, by_name[TPE].median
    assert worker_median is not None
    assert executor_median is not None
    to_executor = worker_median / executor_median
    goals.append(
        Goal(
            f"{WP} <= {EXECUTOR_GOAL:g}x ThreadPoolExecutor(1)",
            f"{to_executor:.2f}x",
            to_executor <= EXECUTOR_GOAL,
        )
    )
    return Table(
        key="worker-round-trip",
        title="One task at a time: submit(noop).result() round trip",
        unit="ns/op",
        baseline=SQ,
        rows=rows,
        goals=goals,
        notes=[
            "The bare round trip is two thread wake-ups; a pool adds a Future (built,"
            " marked running, settled, waited on).",
        ],
    )


def map_throughput(ctx: Context) -> Table:
    """``map`` over N items with two workers: ns per item, next to ``Executor.map``."""
    items, rounds = ctx.budget.n(20_000, 20), ctx.budget.rounds(7)
    executor = ThreadPoolExecutor(2)
    local_executor = ThreadPoolExecutor(2)
    local = _PerThread()
    pool = WorkerPool(object, 2, name="bench-map")
    bounded = WorkerPool(object, 2, max_pending=WINDOW, name="bench-map-bounded")
    expected = items * (items - 1) // 2

    def identity(_: object, x: int) -> int:
        return x

    def plain(x: int) -> int:
        return x

    def with_local(x: int) -> int:
        _local_task(local)
        return x

    def checked(total: int) -> None:
        if total != expected:
            raise RuntimeError(f"map returned a sum of {total}, not {expected}")

    cases: list[tuple[str, Callable[[], object]]] = [
        (EXECUTOR_MAP, lambda: checked(sum(executor.map(plain, range(items))))),
        (EXECUTOR_LOCAL_MAP, lambda: checked(sum(local_executor.map(with_local, range(items))))),
        (WP_MAP, lambda: checked(sum(pool.map(identity, range(items))))),
        (WP_MAP_BOUNDED, lambda: checked(sum(bounded.map(identity, range(items))))),
    ]
    try:
        spreads = repeated(cases, 1, rounds, on_step=ctx.on_step("worker map"))
    finally:
        executor.shutdown()
        local_executor.shutdown()
        pool.shutdown()
        bounded.shutdown()
    return Table(
        key="worker-map",
        title=f"map throughput: {items:,} noop items, 2 workers",
        unit="ns/item",
        baseline=EXECUTOR_MAP,
        rows=rows_from(spreads, EXECUTOR_MAP, scale=items),
        notes=[
            "WorkerPool.map is lazy (it holds at most max_pending items in flight);"
            " Executor.map submits its whole input first.",
        ],
    )


# -- memory of a long map, each case in a fresh interpreter -----------------------------------


@dataclass(frozen=True)
class Footprint:
    """How much one map run grew its process: bytes, and what was measured."""

    name: str
    items: int
    grew: int
    seconds: float
    measure: str


_CHILD: Final = """
import json, sys, time
from respool.bench.worker import _child_map
print(json.dumps(_child_map(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
"""


def _child_map(kind: str, items: int, window: int) -> dict[str, object]:
    """Run in a fresh interpreter: one map over *items* integers; report the growth."""
    import time

    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        resource = None  # type: ignore[assignment]

    def identity(_: object, x: int) -> int:
        return x

    def plain(x: int) -> int:
        return x

    tracing = resource is None
    if tracing:  # pragma: no cover - Windows
        import tracemalloc

        tracemalloc.start()
    else:
        scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes there, KiB here
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    started = time.perf_counter()
    total = 0
    if kind == "worker":
        with WorkerPool(object, 2, max_pending=window, name="bench-map") as pool:
            for value in pool.map(identity, range(items)):
                total += value
    else:
        with ThreadPoolExecutor(2) as executor:
            for value in executor.map(plain, range(items)):
                total += value
    seconds = time.perf_counter() - started
    assert total == items * (items - 1) // 2
    if tracing:  # pragma: no cover - Windows
        grew = tracemalloc.get_traced_memory()[1]
        measure = "tracemalloc peak"
    else:
        grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale - before
        measure = "peak RSS growth"
    return {"grew": grew, "seconds": seconds, "measure": measure}


def map_memory(kind: str, items: int, window: int = WINDOW) -> Footprint:
    """Run one map case in a child interpreter and return its footprint."""
    name = f"WorkerPool.map(max_pending={window})" if kind == "worker" else "Executor.map"
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, kind, str(items), str(window)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    report = json.loads(out.strip().splitlines()[-1])
    return Footprint(name, items, int(report["grew"]), float(report["seconds"]), report["measure"])


def _mib(n: int) -> float:
    return n / 2**20


def memory(ctx: Context) -> Table:
    """The memory table: WorkerPool.map over a small and a large input, Executor.map over
    the small one (its growth at the large one is extrapolated, not run: it would take
    gigabytes)."""
    big, small = ctx.budget.n(1_000_000, 1_000), ctx.budget.n(100_000, 100)
    ctx.progress.note(f"[worker memory] three maps in fresh interpreters ({big:,} items max)")
    eager = map_memory("executor", small)
    lazy_small = map_memory("worker", small)
    lazy_big = map_memory("worker", big)

    def row(footprint: Footprint) -> Row:
        grew = _mib(footprint.grew)
        ratio = footprint.grew / eager.grew if eager.grew > 0 else None
        return Row(
            f"{footprint.name}, {footprint.items:,} items",
            grew,
            grew,
            ratio,
            ratio,
            baseline=footprint is eager,
            extra={
                "bytes_per_item": footprint.grew / footprint.items,
                "seconds": footprint.seconds,
            },
        )

    flat = lazy_big.grew <= lazy_small.grew + 2 * 2**20
    per_item = eager.grew / small
    return Table(
        key="worker-map-memory",
        title="Memory of a long map: 2 workers, noop tasks, each in a fresh interpreter",
        unit=f"MiB, {eager.measure}",
        baseline=f"{eager.name}, {small:,} items",
        rows=[row(eager), row(lazy_small), row(lazy_big)],
        columns=[Column("bytes_per_item", "bytes/item", "{:,.0f}"), Column("seconds", "s")],
        goals=[
            Goal(
                f"WorkerPool.map flat from {small:,} to {big:,} items (within 2 MiB)",
                f"{_mib(lazy_small.grew):.1f} -> {_mib(lazy_big.grew):.1f} MiB",
                flat,
            )
        ],
        notes=[
            f"Executor.map grows with its input: {per_item:,.0f} bytes per item, about"
            f" {per_item * big / 2**20:,.0f} MiB at {big:,} items (extrapolated, not run).",
            "One run per case (a process's peak memory is not a noisy figure): best = median.",
        ],
    )


def run(ctx: Context) -> list[Table]:
    """Round trip, map throughput and map memory."""
    return [round_trip(ctx), map_throughput(ctx), memory(ctx)]
