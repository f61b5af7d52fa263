"""``respool bench``: what the pools cost, as ratios to baselines measured in the same run.

The run is a list of named scenarios, each a module here and a thin script in
``benchmarks/``: :mod:`.uncontended` (one thread, against the two-lock floor and the peers),
:mod:`.contended` (eight threads on four resources, throughput and waits, against a
``queue.Queue`` used as a pool), :mod:`.worker` (``WorkerPool`` against a bare queue round
trip and ``ThreadPoolExecutor``), :mod:`.transient` (``TransientPool`` and ``BufferPool``
against a deque and allocation), :mod:`.health` (the health options' cost and a fault
drill), :mod:`.asyncio_` (the asyncio pools against ``asyncio.Queue`` and psycopg_pool's
``AsyncConnectionPool``, on one event loop) and :mod:`.postgres` (``FixedPool`` and
``AsyncFixedPool`` on a real PostgreSQL through ``respool.contrib``, against psycopg_pool, asyncpg's
pool, a hand-written pool and a connection per request) and :mod:`.shipper` (a log shipper end
to end over UDP, with each strategy where it fits and without a pool) and :mod:`.ray`
(``respool.contrib.ray.RayWorkerPool`` on a local Ray against ``ray.util.ActorPool``: per-task
overhead, a long map's memory and a kill drill; skipped when Ray is not installed).

Every scenario returns tables (:mod:`._report`); this module prints them as they come,
and writes them as JSON and a chart when asked. Each row is timed in interleaved rounds
(:mod:`._timing`, the harness the tour uses too) and shows the best and the median round and
its ratio to the table's baseline. A scenario that raises fails the run (exit status 1)
instead of leaving a table that looks fast.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Final, TextIO

from respool.bench import (
    asyncio_,
    contended,
    health,
    postgres,
    ray,
    shipper,
    transient,
    uncontended,
    worker,
)
from respool.bench._report import (
    ScenarioReport,
    machine_info,
    plot,
    render,
    to_json,
    write_json,
)
from respool.bench._run import FULL, QUICK, Budget, Context, Progress, Scenario

__all__ = ["ALIASES", "FULL", "QUICK", "SCENARIOS", "Budget", "Progress", "main", "resolve"]

#: The scenarios by name, in the order ``respool bench`` runs them.
SCENARIOS: Final[dict[str, Scenario]] = {
    s.name: s
    for s in (
        Scenario(
            "uncontended",
            "one thread takes a resource and gives it back (cost per use)",
            uncontended.run,
        ),
        Scenario(
            "contended",
            f"{contended.THREADS} threads on {contended.RESOURCES} resources"
            " (throughput and waits)",
            contended.run,
        ),
        Scenario("worker", "WorkerPool round trip, map throughput and map memory", worker.run),
        Scenario(
            "transient",
            "TransientPool and BufferPool against a deque and allocation",
            transient.run,
        ),
        Scenario("health", "what the health options cost, and a fault drill", health.run),
        Scenario(
            "asyncio",
            "the asyncio pools against asyncio.Queue and psycopg_pool, one loop",
            asyncio_.run,
        ),
        Scenario(
            "postgres",
            "a real PostgreSQL: respool with psycopg and asyncpg against their drivers' pools",
            postgres.run,
        ),
        Scenario(
            "shipper",
            "a log shipper end to end: records/s with and without pools, every record checked",
            shipper.run,
        ),
        Scenario(
            "ray",
            "RayWorkerPool on Ray actors against ActorPool: overhead, memory, a kill drill",
            ray.run,
        ),
    )
}

#: Former suite names, still accepted so that scripts written against 0.1 and 0.2 keep
#: working: each stands for the scenarios that now measure what it measured.
ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "acquire_release": ("uncontended", "contended"),
    "free_list": ("uncontended", "contended"),
}


def resolve(names: Sequence[str]) -> list[str]:
    """The scenarios to run for the names given (all for none), aliases expanded, each once,
    in the order given; ``ValueError`` names the valid ones for an unknown name."""
    chosen: list[str] = []
    for name in names:
        if name in SCENARIOS:
            chosen.append(name)
        elif name in ALIASES:
            chosen += ALIASES[name]
        else:
            raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
    return list(dict.fromkeys(chosen)) if chosen else list(SCENARIOS)


def main(
    quick: bool = False,
    only: Sequence[str] = (),
    *,
    json_path: Path | None = None,
    plot_path: Path | None = None,
    budget: Budget | None = None,
    out: TextIO | None = None,
    progress: Progress | None = None,
) -> int:
    """Run the scenarios named in *only* (default: all); return the exit status.

    ``quick`` is CI's smoke run (every case, fewer and shorter rounds); *budget* overrides
    it (the tests pass a tiny one). Tables go to *out* (stdout) as each scenario ends, the
    progress display to stderr. Exit status 1 when a scenario failed or a file could not be
    written; the other scenarios still run, and the JSON records the failure.
    """
    names = resolve(only)
    stream = out if out is not None else sys.stdout
    budget = budget if budget is not None else (QUICK if quick else FULL)
    progress = progress if progress is not None else Progress()
    machine = machine_info()
    started = time.perf_counter()
    print(
        f"respool bench{' --quick' if quick else ''}: Python {machine['python']},"
        f" {machine['platform']}, {machine['cpu_count']} CPUs, {machine['date']}",
        file=stream,
    )
    print(
        "Each row: best and median of interleaved rounds, and their ratios to the"
        " baseline (*) of its table, measured in the same run; goals read the median's.",
        file=stream,
    )
    status = 0
    reports: list[ScenarioReport] = []
    for name in names:
        scenario = SCENARIOS[name]
        report = ScenarioReport(name, scenario.summary)
        began = time.perf_counter()
        try:
            report.tables = scenario.run(Context(budget, progress))
        except Exception as exc:
            report.error = f"{type(exc).__name__}: {exc}"
            status = 1
            progress.clear()
            traceback.print_exc(file=sys.stderr)
        report.seconds = time.perf_counter() - began
        reports.append(report)
        progress.clear()
        print(file=stream)
        print(render(report), file=stream, flush=True)
    elapsed = time.perf_counter() - started
    failed = [r.name for r in reports if r.error is not None]
    print(
        f"\n{len(reports)} scenario(s) in {elapsed:.1f} s"
        + (f"; FAILED: {', '.join(failed)}" if failed else ""),
        file=stream,
        flush=True,
    )
    if json_path is not None:
        try:
            write_json(json_path, to_json(reports, quick=quick, machine=machine))
        except (OSError, ValueError) as exc:
            print(f"respool bench: could not write {json_path}: {exc}", file=sys.stderr)
            status = max(status, 1)
    if plot_path is not None:
        title = f"respool bench ({machine['date']}, {machine['platform']})"
        try:
            plot(reports, plot_path, title=title)
        except (OSError, ValueError) as exc:
            print(f"respool bench: could not write {plot_path}: {exc}", file=sys.stderr)
            status = max(status, 1)
    return status
