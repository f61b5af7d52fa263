"""Scenario ``ray``: :class:`respool.contrib.ray.RayWorkerPool` on a local Ray, against
``ray.util.ActorPool`` on the same kind of actors.

Three tables, each with a baseline measured in the same run:

* **Per-task overhead**: 4 actors run N tasks of ``time.sleep(0.05)`` through
  ``RayWorkerPool.map`` and through ``ActorPool.map`` over 4 plain actors holding the same
  resource, with the same actor options; the cases take turns round after round. The ideal is
  N / 4 x 50 ms; the ratio of wall times says what the pool's bookkeeping (a bounded queue,
  one task per free actor, replacing the dead) costs next to Ray's own. Goal (issue 14): at
  most 1.1x ActorPool.
* **A long map**: ``RayWorkerPool.map(max_pending=64)`` over many tiny tasks (``lambda r, i:
  i``) keeps at most 64 in flight, so the driver's memory must stay flat however long the
  input: the peak RSS growth of this process, sampled from ``/proc/self/statm`` by a thread,
  over a short and a long input (100,000 items in the full run, 5,000 with ``--quick``);
  ``ActorPool.map`` over the short one is the baseline for the time per item. Goal: flat
  within 4 MiB.
* **Kill drill**: 4 actors; batches of 100 tasks of 10 ms each, and in every other batch one
  actor is killed in the middle of the batch, in turn by SIGKILL of its process (its pid comes
  from the task that returns ``os.getpid()``) and by ``ray.kill`` (a task returns its actor's
  handle): 1,000 tasks and 10 kills in the full run. The baseline is a batch with no kill.
  Every future must settle within a bound (no hung future), the pool must be back to 4 actors
  after each kill, and the failed tasks are counted from the futures and from ``stats()``.
  Each SIGKILL makes Ray print a long "worker died" notice on stdout, among the tables.

Ray is optional (``pip install 'respool[ray]'``): without it the scenario returns one table
saying it was skipped. It starts a local Ray (``ray.init(num_cpus=2)``) only when Ray is not
running in this process already, and shuts down only what it started. Actors ask for
``num_cpus=0``, so that both pools' actors fit at once on any cluster, however small; the
tables share them (one ``RayWorkerPool(max_pending=64)`` and one set of plain actors, started
once: an actor takes about a second to start), and the kill drill runs last.

Run: ``respool bench ray`` or ``python benchmarks/bench_ray.py``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from typing import Any, Final

from respool.bench._contenders import installed
from respool.bench._report import Cell, Column, Goal, Row, Table, ratio_text, rows_from
from respool.bench._run import Context
from respool.bench._timing import repeated

__all__ = [
    "ACTORS",
    "SKIPPED",
    "Drill",
    "Whereabouts",
    "kill_actor",
    "kill_drill",
    "long_map",
    "overhead",
    "ray_session",
    "run",
    "skipped",
    "wait_for_workers",
    "whereabouts",
]

#: What every table says when Ray cannot be imported.
SKIPPED: Final = "skipped: ray is not installed (pip install 'respool[ray]')"

ACTORS: Final = 4
#: Seconds one task of the overhead table sleeps.
TASK_SECONDS: Final = 0.05
#: Seconds one task of the kill drill sleeps.
DRILL_TASK_SECONDS: Final = 0.01
#: Tasks between two kills.
DRILL_BATCH: Final = 100
WINDOW: Final = 64
OVERHEAD_GOAL: Final = 1.1
#: The long map's growth allowed over the short one's, in MiB.
FLAT_MIB: Final = 4.0
#: Seconds within which every future must settle, and a killed actor be replaced.
SETTLE_SECONDS: Final = 30.0
#: Every actor asks for no CPU: two pools of four fit on a Ray of any size.
ACTOR_OPTIONS: Final[dict[str, Any]] = {"num_cpus": 0}

ACTOR_POOL: Final = f"ray.util.ActorPool.map, {ACTORS} actors"
RAY_POOL: Final = f"RayWorkerPool({ACTORS}, max_pending={WINDOW}).map"
ACTOR_POOL_MAP: Final = "ActorPool.map"
RAY_MAP: Final = f"RayWorkerPool.map(max_pending={WINDOW})"
CLEAN: Final = f"batch of {DRILL_BATCH}, no kill"
KILLED: Final = f"batch of {DRILL_BATCH}, one actor killed"


# -- Ray itself ---------------------------------------------------------------------------


@contextlib.contextmanager
def ray_session() -> Iterator[bool]:
    """Ray running in this process for the block: started (and shut down after) only when it
    was not running already. Yields whether this call started it."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    try:
        yield started
    finally:
        if started:
            ray.shutdown()


def wait_for_workers(pool: Any, workers: int, deadline: float) -> bool:
    """Poll ``pool.stats().workers`` until it is *workers* or the monotonic *deadline*
    passes; whether it got there."""
    while pool.stats().workers != workers:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


@dataclass(frozen=True)
class Whereabouts:
    """Where a task ran: its actor's node, process and handle (as the task saw it)."""

    node: str
    pid: int
    actor: Any


def whereabouts() -> Whereabouts:
    """Run in an actor: where this task runs."""
    import ray

    context = ray.get_runtime_context()
    return Whereabouts(context.get_node_id(), os.getpid(), context.current_actor)


def kill_actor(where: Whereabouts, *, sigkill: bool) -> None:
    """Kill the actor *where* names: SIGKILL its process (which must be on this machine's
    node: a pid means nothing on another machine), or ``ray.kill`` it. A SIGKILL also makes
    Ray print a long "worker died" notice on this process's stdout; ``ray.kill`` does not."""
    import ray

    if not sigkill:
        ray.kill(where.actor)
        return
    if where.node != ray.get_runtime_context().get_node_id():
        raise RuntimeError(f"actor process {where.pid} is on another node: cannot kill it here")
    os.kill(where.pid, signal.SIGKILL)


class _Plain:
    """The plainest actor holding a resource: what ``ActorPool`` users write."""

    def __init__(self, create: Callable[[], object]) -> None:
        self.resource = create()

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(self.resource, *args)


def _plain_actors(count: int) -> list[Any]:
    """*count* plain actors with :data:`ACTOR_OPTIONS`, each ready (its resource made)."""
    import ray

    cls = ray.remote(_Plain).options(**ACTOR_OPTIONS)
    actors: list[Any] = [cls.remote(object) for _ in range(count)]
    ray.get([actor.run.remote(_identity, 0) for actor in actors], timeout=SETTLE_SECONDS)
    return actors


def _kill_actors(actors: list[Any]) -> None:
    import ray

    for actor in actors:
        with contextlib.suppress(Exception):
            ray.kill(actor)


@dataclass
class _Actors:
    """What every table runs on: :data:`ACTORS` plain actors behind an ``ActorPool``, and a
    ``RayWorkerPool`` of as many actors (started once: an actor takes a second to start)."""

    plain: list[Any]
    peers: Any
    pool: Any


@contextlib.contextmanager
def _actors(ctx: Context) -> Iterator[_Actors]:
    from ray.util import ActorPool

    ctx.progress.note(f"[ray] starting {2 * ACTORS} actors")
    plain = _plain_actors(ACTORS)
    try:
        pool = _pool("bench-ray", max_pending=WINDOW)
        try:
            yield _Actors(plain, ActorPool(plain), pool)
        finally:
            pool.shutdown()
    finally:
        _kill_actors(plain)


def _pool(name: str, **options: Any) -> Any:
    """A RayWorkerPool of :data:`ACTORS` actors, every one ready."""
    from respool.contrib.ray import RayWorkerPool

    pool = RayWorkerPool(object, ACTORS, actor_options=dict(ACTOR_OPTIONS), name=name, **options)
    if not wait_for_workers(pool, ACTORS, time.monotonic() + SETTLE_SECONDS):
        pool.shutdown(wait=False, cancel_pending=True)
        raise RuntimeError(f"{name}: {ACTORS} actors did not start within {SETTLE_SECONDS} s")
    return pool


# -- the tasks ------------------------------------------------------------------------------


def _sleep(resource: object, seconds: float) -> None:
    time.sleep(seconds)


def _identity(resource: object, item: int) -> int:
    return item


def _sleep_where(resource: object, seconds: float) -> Whereabouts:
    time.sleep(seconds)
    return whereabouts()


# -- per-task overhead ----------------------------------------------------------------------


def _in_ms(rows: list[Row]) -> list[Row]:
    """Rows built in ns per task, shown in ms (every round's figure stays in ns)."""
    return [
        replace(
            row,
            best=None if row.best is None else row.best / 1e6,
            median=None if row.median is None else row.median / 1e6,
        )
        for row in rows
    ]


def overhead(ctx: Context, actors: _Actors) -> Table:
    """``RayWorkerPool.map`` against ``ActorPool.map``, tasks of 50 ms on 4 actors each."""
    tasks, rounds = ctx.budget.n(400, 40), ctx.budget.rounds(7)
    ideal = tasks / ACTORS * TASK_SECONDS
    pool, peers = actors.pool, actors.peers

    def through_actor_pool() -> None:
        done = sum(
            1 for _ in peers.map(lambda a, _: a.run.remote(_sleep, TASK_SECONDS), range(tasks))
        )
        if done != tasks:
            raise RuntimeError(f"ActorPool.map returned {done} results, not {tasks}")

    def through_pool() -> None:
        done = sum(1 for _ in pool.map(_sleep, [TASK_SECONDS] * tasks))
        if done != tasks:
            raise RuntimeError(f"RayWorkerPool.map returned {done} results, not {tasks}")

    cases: list[tuple[str, Callable[[], object]]] = [
        (ACTOR_POOL, through_actor_pool),
        (RAY_POOL, through_pool),
    ]
    spreads = repeated(cases, 1, rounds, on_step=ctx.on_step("ray overhead"))
    extra = {s.name: {"vs_ideal": s.median / 1e9 / ideal} for s in spreads}
    rows = _in_ms(rows_from(spreads, ACTOR_POOL, scale=tasks, extra=extra))
    mine = next(row for row in rows if row.name == RAY_POOL)
    assert mine.ratio is not None
    return Table(
        key="ray-overhead",
        title=f"Per-task overhead: {tasks} tasks of sleep({TASK_SECONDS:g}) on {ACTORS} actors",
        unit="ms per task, wall time / tasks",
        baseline=ACTOR_POOL,
        rows=rows,
        columns=[Column("vs_ideal", "x ideal", "{:.3f}")],
        goals=[
            Goal(
                f"{RAY_POOL} <= {OVERHEAD_GOAL:g}x ActorPool",
                ratio_text(mine),
                mine.ratio <= OVERHEAD_GOAL,
            )
        ],
        notes=[
            f"Ideal: {tasks} / {ACTORS} x {TASK_SECONDS * 1000:g} ms = {ideal:.2f} s a round;"
            " x ideal is a round's median wall time over that. Both pools' actors hold an"
            f" object() made in the actor, with the same options ({ACTOR_OPTIONS}).",
        ],
    )


# -- memory of a long map -------------------------------------------------------------------


def _rss() -> int:
    """This process's resident set, in bytes (its peak so far where /proc is missing)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        import resource
        import sys

        scale = 1 if sys.platform == "darwin" else 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


class _Peak(threading.Thread):
    """Samples the resident set every few milliseconds and keeps the highest."""

    def __init__(self) -> None:
        super().__init__(name="bench-ray-rss", daemon=True)
        self.start_rss = _rss()
        self.peak = self.start_rss
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.005):
            self.peak = max(self.peak, _rss())

    def __enter__(self) -> _Peak:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self.join()
        self.peak = max(self.peak, _rss())

    @property
    def grew(self) -> int:
        return self.peak - self.start_rss


@dataclass(frozen=True)
class _Footprint:
    name: str
    items: int
    seconds: float
    grew: int


def _footprint(name: str, items: int, run_map: Callable[[range], Iterator[int]]) -> _Footprint:
    """One map over *items* integers: its time and the peak RSS growth of this process."""
    expected = items * (items - 1) // 2
    with _Peak() as peak:
        started = time.perf_counter()
        total = sum(run_map(range(items)))
        seconds = time.perf_counter() - started
    if total != expected:
        raise RuntimeError(f"{name} returned a sum of {total}, not {expected}")
    return _Footprint(name, items, seconds, peak.grew)


def long_map(ctx: Context, actors: _Actors) -> Table:
    """The driver's memory over a long ``RayWorkerPool.map``, with ``ActorPool.map`` over
    the short input as the baseline for time per item."""
    # 100,000 items take about two and a half minutes on 2 cores: --quick takes 5,000.
    big = ctx.budget.n(100_000, 1_000) if ctx.budget.scale >= 1 else ctx.budget.n(50_000, 1_000)
    small = ctx.budget.n(10_000, 500)
    ctx.progress.note(f"[ray memory] maps over {small:,} and {big:,} tiny tasks")
    pool, peers = actors.pool, actors.peers

    def actor_pool_map(items: range) -> Iterator[int]:
        return peers.map(lambda a, i: a.run.remote(_identity, i), items)  # type: ignore[no-any-return]

    def pool_map(items: range) -> Iterator[int]:
        return pool.map(_identity, items)  # type: ignore[no-any-return]

    # Warm both up: Ray allocates its buffers on first use, which is not the map's growth.
    _footprint(ACTOR_POOL_MAP, 200, actor_pool_map)
    _footprint(RAY_MAP, 200, pool_map)
    baseline = _footprint(ACTOR_POOL_MAP, small, actor_pool_map)
    short = _footprint(RAY_MAP, small, pool_map)
    long = _footprint(RAY_MAP, big, pool_map)

    def row(footprint: _Footprint) -> Row:
        ns = footprint.seconds / footprint.items * 1e9
        base = baseline.seconds / baseline.items * 1e9
        return Row(
            f"{footprint.name}, {footprint.items:,} items",
            ns / 1000,
            ns / 1000,
            ns / base,
            ns / base,
            baseline=footprint is baseline,
            extra={"grew": footprint.grew / 2**20, "seconds": footprint.seconds},
            rounds_ns=(ns,),
        )

    flat = long.grew <= short.grew + FLAT_MIB * 2**20
    return Table(
        key="ray-map-memory",
        title=f"A long map: tiny tasks (lambda r, i: i) on {ACTORS} actors, driver memory",
        unit="µs per item; RSS: peak growth of this process while the map ran",
        baseline=f"{ACTOR_POOL_MAP}, {small:,} items",
        rows=[row(baseline), row(short), row(long)],
        columns=[Column("grew", "RSS MiB", "{:.1f}"), Column("seconds", "s", "{:.1f}")],
        goals=[
            Goal(
                f"{RAY_MAP} flat from {small:,} to {big:,} items (within {FLAT_MIB:g} MiB)",
                f"{short.grew / 2**20:.1f} -> {long.grew / 2**20:.1f} MiB",
                flat,
            )
        ],
        notes=[
            "One run per case (time per item and peak memory are not what the rounds are"
            " for here): best = median. ActorPool.map queues every input it cannot send at"
            " once; RayWorkerPool.map pulls the next input only as a result is taken."
            + (
                "" if ctx.budget.scale >= 1 else f" (Not the full run: {big:,} items, not 100,000.)"
            ),
        ],
    )


# -- kill drill -----------------------------------------------------------------------------


@dataclass
class Drill:
    """What the kill batches of the drill saw."""

    tasks: int = 0
    kills: int = 0
    sigkills: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    hung: int = 0
    #: Seconds from each kill until the pool had all its actors again (None: it did not,
    #: within :data:`SETTLE_SECONDS`).
    recoveries: list[float | None] = field(default_factory=list)


def _settle(futures: list[Future[Any]], deadline: float, drill: Drill | None) -> None:
    """Wait for every future until *deadline*; count outcomes into *drill*."""
    from respool.contrib.ray import ActorLost

    for future in futures:
        try:
            future.result(max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            if drill is None:
                raise RuntimeError("a future of a batch with no kill did not settle") from None
            drill.hung += 1
            continue
        except ActorLost:
            outcome = "ActorLost"
        except Exception as exc:
            if drill is None:
                raise
            outcome = type(exc).__name__
        else:
            outcome = "ok"
        if drill is not None:
            drill.outcomes[outcome] += 1


def _batch(pool: Any, drill: Drill | None) -> None:
    """One batch of :data:`DRILL_BATCH` tasks; with *drill*, kill the actor that ran the
    middle task as soon as it answers."""
    futures = [pool.submit(_sleep_where, DRILL_TASK_SECONDS) for _ in range(DRILL_BATCH)]
    deadline = time.monotonic() + SETTLE_SECONDS
    if drill is None:
        _settle(futures, deadline, None)
        return
    lost = pool.stats().actors_lost
    drill.tasks += len(futures)
    victim = futures[DRILL_BATCH // 2].result(SETTLE_SECONDS)
    sigkill = drill.kills % 2 == 0  # every other kill by ray.kill: both ways an actor dies
    kill_actor(victim, sigkill=sigkill)
    drill.sigkills += sigkill
    killed = time.monotonic()
    drill.kills += 1
    _settle(futures, deadline, drill)
    # Back to full strength: the loss seen, and a replacement ready.
    while True:
        stats = pool.stats()
        if stats.actors_lost > lost and stats.workers == ACTORS:
            drill.recoveries.append(time.monotonic() - killed)
            return
        if time.monotonic() - killed >= SETTLE_SECONDS:
            drill.recoveries.append(None)
            return
        time.sleep(0.005)


def kill_drill(ctx: Context, pool: Any) -> Table:
    """Batches of tasks with and without an actor of *pool* killed in the middle (the
    pool's actors all die here: run it last)."""
    tasks = ctx.budget.n(1_000, 2 * DRILL_BATCH)
    batches = max(ctx.budget.min_rounds, tasks // DRILL_BATCH)
    ctx.progress.note(f"[ray kill drill] {batches} kills, one every {DRILL_BATCH} tasks")
    before = pool.stats()
    drill = Drill()
    cases: list[tuple[str, Callable[[], object]]] = [
        (CLEAN, lambda: _batch(pool, None)),
        (KILLED, lambda: _batch(pool, drill)),
    ]
    spreads = repeated(cases, 1, batches, on_step=ctx.on_step("ray kill drill"))
    stats = pool.stats()
    counted = stats.failed - before.failed
    lost = drill.outcomes["ActorLost"]
    failed = drill.tasks - drill.outcomes["ok"] - drill.hung
    recovered = [r for r in drill.recoveries if r is not None]
    slowest = max(recovered, default=0.0)
    extra: dict[str, dict[str, Cell]] = {
        CLEAN: {"tasks": batches * DRILL_BATCH, "failed": 0, "hung": 0},
        KILLED: {
            "tasks": drill.tasks,
            "failed": failed,
            "hung": drill.hung,
            "recovery": statistics.median(recovered) if recovered else None,
        },
    }
    rows = _in_ms(rows_from(spreads, CLEAN, extra=extra))
    others = {k: v for k, v in drill.outcomes.items() if k not in ("ok", "ActorLost")}
    return Table(
        key="ray-kill-drill",
        title=(
            f"Kill drill: {ACTORS} actors, batches of {DRILL_BATCH} tasks of"
            f" sleep({DRILL_TASK_SECONDS:g}), one actor killed in every other batch"
        ),
        unit="ms per batch",
        baseline=CLEAN,
        rows=rows,
        columns=[
            Column("tasks", "tasks", "{:,d}"),
            Column("failed", "failed", "{:d}"),
            Column("hung", "hung", "{:d}"),
            Column("recovery", "back to 4 (s)", "{:.2f}"),
        ],
        goals=[
            Goal(
                f"no hung future (each settles within {SETTLE_SECONDS:g} s)",
                f"{drill.hung} hung of {drill.tasks:,}",
                drill.hung == 0,
            ),
            Goal(
                f"back to {ACTORS} actors after every kill (within {SETTLE_SECONDS:g} s)",
                f"{len(recovered)} of {drill.kills}, slowest in {slowest:.2f} s",
                len(recovered) == drill.kills,
            ),
            Goal(
                "every failed task counted: futures failed = stats().failed (its growth)",
                f"{failed} = {counted}",
                failed == counted,
            ),
        ],
        notes=[
            f"{drill.kills} kills ({drill.sigkills} by SIGKILL of the actor's process,"
            f" {drill.kills - drill.sigkills} by ray.kill): {drill.outcomes['ok']:,} tasks ok,"
            f" {lost} failed with ActorLost"
            + "".join(f", {n} with {name}" for name, n in sorted(others.items()))
            + f"; stats(): failed={stats.failed}, actors_lost={stats.actors_lost},"
            f" actors_replaced={stats.actors_replaced}, workers={stats.workers}.",
            "A kill costs a batch the lost task and the replacement's start (a new actor"
            " process); queued tasks go on to the live actors meanwhile.",
        ],
    )


# -- the scenario ---------------------------------------------------------------------------


def skipped() -> Table:
    """The one table of a run without Ray."""
    return Table(
        key="ray",
        title="RayWorkerPool",
        unit="-",
        baseline="none",
        rows=[],
        notes=[SKIPPED],
    )


def run(ctx: Context) -> list[Table]:
    """Overhead, a long map and the kill drill; a note instead without Ray."""
    if not installed("ray"):
        return [skipped()]
    ctx.progress.note("[ray] starting Ray (ray.init takes a few seconds)")
    with ray_session(), _actors(ctx) as actors:
        return [overhead(ctx, actors), long_map(ctx, actors), kill_drill(ctx, actors.pool)]
