"""Worker benchmarks: ``WorkerPool`` against ``ThreadPoolExecutor`` and a bare queue.

Two questions, each answered as a ratio to a baseline measured in the same run:

* **Latency of one task**: ``submit(noop).result()`` with one worker, next to
  ``ThreadPoolExecutor(1)`` and to the floor of any thread hand-off — a bare worker thread
  moving an item from one ``queue.SimpleQueue`` to another. That floor is two thread
  wake-ups and nothing else; a pool must also build a ``Future`` and settle it.
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

from respool.bench._timing import Result, interleaved, table
from respool.worker import WorkerPool

__all__ = ["main", "map_memory", "round_trip"]

#: The goals the figures are read against (issue 3).
EXECUTOR_GOAL: Final = 0.8
QUEUE_GOAL: Final = 1.3
WINDOW: Final = 64

SQ: Final = "(a) SimpleQueue in/out, bare thread"
TPE: Final = "(b) ThreadPoolExecutor(1)"
WP: Final = "WorkerPool(workers=1)"
WP_BOUNDED: Final = f"WorkerPool(1, max_pending={WINDOW})"


def _noop_task(resource: object) -> None:
    """The task: nothing, so only the pool's own cost is timed."""


def _noop() -> None:
    """The same for ThreadPoolExecutor, which passes no resource."""


def round_trip(number: int, rounds: int) -> list[Result]:
    """``submit(noop).result()``, one at a time, next to its two baselines."""
    inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
    outbox: queue.SimpleQueue[object] = queue.SimpleQueue()

    def relay() -> None:
        while (item := inbox.get()) is not None:
            outbox.put(item)

    relay_thread = threading.Thread(target=relay, name="bench-relay", daemon=True)
    relay_thread.start()
    item = object()

    def bare() -> None:
        inbox.put(item)
        outbox.get()

    executor = ThreadPoolExecutor(1)
    pool = WorkerPool(object, 1, name="bench-worker")
    bounded = WorkerPool(object, 1, max_pending=WINDOW, name="bench-worker-bounded")
    cases: list[tuple[str, Callable[[], object]]] = [
        (SQ, bare),
        (TPE, lambda: executor.submit(_noop).result()),
        (WP, lambda: pool.submit(_noop_task).result()),
        (WP_BOUNDED, lambda: bounded.submit(_noop_task).result()),
    ]
    for _, op in cases:  # warm-up: threads started, caches filled
        for _ in range(200):
            op()
    try:
        return interleaved(cases, number, rounds)
    finally:
        inbox.put(None)
        relay_thread.join()
        executor.shutdown()
        pool.shutdown()
        bounded.shutdown()


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


def _mib(n: int) -> str:
    return f"{n / 2**20:,.1f}"


def main(quick: bool = False) -> int:
    """Print both tables with their verdicts; ``quick`` trades precision for speed."""
    number, rounds = (400, 5) if quick else (2_000, 15)
    print("One task at a time: submit(noop).result() round trip (lower is better)")
    results = round_trip(number, rounds)
    print(table(results, TPE))
    ns = {r.name: r.ns for r in results}
    for case in (WP, WP_BOUNDED):
        to_executor = ns[case] / ns[TPE]
        to_queue = ns[case] / ns[SQ]
        verdict = "meets" if to_executor <= EXECUTOR_GOAL else "MISSES"
        print(
            f"{case}: {to_executor:.2f}x ThreadPoolExecutor -> {verdict} the goal"
            f" (<= {EXECUTOR_GOAL}x ThreadPoolExecutor)"
        )
        verdict = "meets" if to_queue <= QUEUE_GOAL else "MISSES"
        print(
            f"{case}: {to_queue:.2f}x the bare SimpleQueue round trip -> {verdict} the goal"
            f" (<= {QUEUE_GOAL}x)"
        )
    print(
        "The bare round trip is two thread wake-ups; a pool adds a Future (built, marked"
        "\nrunning, settled, waited on), and every bytecode run while the other thread is"
        "\nwaking can cost it a second wake-up for the interpreter lock."
    )

    big, small = (50_000, 5_000) if quick else (1_000_000, 100_000)
    print()
    print("Memory of a long map: 2 workers, noop tasks, each case in a fresh interpreter")
    cases = [
        map_memory("worker", small),
        map_memory("worker", big),
        map_memory("executor", small),
    ]
    width = max(len(c.name) for c in cases)
    print(f"{'case':<{width}}  {'items':>9}  {'MiB grown':>9}  {'bytes/item':>10}  {'s':>6}")
    for c in cases:
        print(
            f"{c.name:<{width}}  {c.items:>9,}  {_mib(c.grew):>9}  {c.grew / c.items:>10.1f}"
            f"  {c.seconds:>6.1f}"
        )
    lazy_small, lazy_big, eager = cases
    flat = lazy_big.grew <= lazy_small.grew + 2 * 2**20
    verdict = "meets" if flat else "MISSES"
    print(
        f"WorkerPool.map over {big:,} items grew {_mib(lazy_big.grew)} MiB, over {small:,}"
        f" {_mib(lazy_small.grew)} MiB -> {verdict} the goal (flat: within 2 MiB)"
    )
    print(
        f"Executor.map submits its whole input first: {_mib(eager.grew)} MiB for {small:,}"
        f" items, {eager.grew / small:,.0f} bytes each;\nit grows with the input"
        f" (~{eager.grew / small * big / 2**20:,.0f} MiB at {big:,} items, extrapolated, not run)."
    )
    print(f"(Measured: {cases[0].measure}.)")
    return 0
