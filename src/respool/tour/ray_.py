"""The tour's Ray section: the worker pool's contract on Ray actors, each owning a resource.

:class:`respool.contrib.ray.RayWorkerPool` runs ``fn(resource, ...)`` on Ray actors, each of
which makes its resource once, in its own process. The section starts a local Ray (unless one
is running), gives three actors a zlib compressor primed with a preset dictionary (the
advisor section's :func:`~respool.tour.advise.compressor`), runs a batch of tasks and shows
from ``stats()`` that each actor made its compressor once. Then it kills one actor
(``ray.kill``) in the middle of a batch: the task it was running fails with ``ActorLost``,
the other futures complete, and the pool replaces the actor; with ``submit(...,
retry=True)`` the interrupted task runs again elsewhere and none fails. Every figure is
measured in the run. (``ray.kill`` rather than SIGKILL: a killed process makes Ray print a
long notice on stdout, in the middle of the tour.)

Without Ray installed the section says so in one line and returns.
"""

from __future__ import annotations

import time
import zlib
from collections import Counter
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Final

from respool.bench._contenders import installed
from respool.bench.ray import (
    SKIPPED,
    Whereabouts,
    kill_actor,
    ray_session,
    wait_for_workers,
    whereabouts,
)
from respool.tour._text import heading, print_wrapped
from respool.tour.advise import _MESSAGE, compressor

__all__ = ["run"]

ACTORS: Final = 3
#: Seconds each task of the kill demonstration takes, so that a kill finds actors at work.
_TASK_SECONDS: Final = 0.02
#: Seconds within which every future must settle and a killed actor be replaced.
_BOUND: Final = 30.0


def _compress(c: Any, seconds: float) -> tuple[Whereabouts, int]:
    """The task, run in an actor: compress one log message with the actor's compressor;
    return where it ran and the compressed size."""
    if seconds:
        time.sleep(seconds)
    out = c.compress(_MESSAGE) + c.flush(zlib.Z_SYNC_FLUSH)
    return whereabouts(), len(out)


@dataclass
class _Killed:
    """One batch with an actor killed in its middle."""

    tasks: int
    ok: int
    lost: int
    other: int
    hung: int
    message: str
    recovered: float | None


def _kill_batch(pool: Any, tasks: int, *, retry: bool) -> _Killed:
    """*tasks* tasks; the actor that ran the one a third of the way in is killed
    (``ray.kill``, which works on any cluster) as soon as that one answers."""
    from respool.contrib.ray import ActorLost

    futures: list[Future[Any]] = [
        pool.submit(_compress, _TASK_SECONDS, retry=retry) for _ in range(tasks)
    ]
    lost_before = pool.stats().actors_lost
    where, _ = futures[tasks // 3].result(_BOUND)
    kill_actor(where, sigkill=False)
    killed = time.monotonic()
    counts: Counter[str] = Counter()
    message = ""
    for future in futures:
        try:
            future.result(max(0.0, killed + _BOUND - time.monotonic()))
        except FutureTimeout:
            counts["hung"] += 1
        except ActorLost as exc:
            counts["lost"] += 1
            message = message or str(exc)
        except Exception:
            counts["other"] += 1
        else:
            counts["ok"] += 1
    recovered = None
    while time.monotonic() - killed < _BOUND:
        stats = pool.stats()
        if stats.actors_lost > lost_before and stats.workers == ACTORS:
            recovered = time.monotonic() - killed
            break
        time.sleep(0.005)
    return _Killed(
        tasks, counts["ok"], counts["lost"], counts["other"], counts["hung"], message, recovered
    )


def _outcome(k: _Killed) -> str:
    """What a kill batch came to, in words."""
    others = f", {k.other} with another error" if k.other else ""
    hung = f"{k.hung} LEFT HANGING" if k.hung else "none left hanging"
    return f"{k.ok} of {k.tasks} completed, {k.lost} failed with ActorLost{others}; {hung}"


def _replaced(k: _Killed) -> str:
    if k.recovered is None:
        return f"the pool was NOT back to {ACTORS} actors within {_BOUND:g} s"
    return f"the pool was back to {ACTORS} actors {k.recovered:.1f} s after the kill"


def run(quick: bool) -> str | None:
    """Print the section; return one summary sentence (None when Ray is not installed)."""
    heading("11. When one machine is not enough: Ray")
    if not installed("ray"):
        print(SKIPPED)
        return None
    from respool.contrib.ray import RayWorkerPool

    print_wrapped(
        "A WorkerPool's threads share one machine. RayWorkerPool keeps its contract"
        " (submit, a lazy map, a bounded queue, one resource per worker, made once) on Ray"
        " actors, which Ray can place on any machine of a cluster: each actor makes its"
        " resource in its own process, and an actor that dies fails the task it was running"
        " with ActorLost (or runs it again, with retry=True) and is replaced. Here a local"
        " Ray on this machine stands in for the cluster.",
        "  ",
    )
    print()
    tasks = 30 if quick else 90
    began = time.perf_counter()
    with ray_session() as started:
        if started:
            print(f"  Ray started in {time.perf_counter() - began:.1f} s (ray.init(num_cpus=2)).")
        else:
            print("  Ray was already running in this process: the section uses it.")
        print(f"    pool = RayWorkerPool(compressor, workers={ACTORS},")
        print('                         actor_options={"num_cpus": 0})')
        made = time.perf_counter()
        pool = RayWorkerPool(
            compressor, ACTORS, actor_options={"num_cpus": 0}, timeout=_BOUND, name="tour-ray"
        )
        try:
            ready = wait_for_workers(pool, ACTORS, time.monotonic() + _BOUND)
            up = time.perf_counter() - made
            print_wrapped(
                f"Its {ACTORS} actors were "
                + (f"up in {up:.1f} s" if ready else f"NOT ALL UP after {up:.0f} s")
                + ", each with a zlib compressor primed with a 32 KiB preset dictionary."
                f" {tasks} tasks, each compressing a {len(_MESSAGE)}-byte log message:",
                "  ",
            )
            futures = [pool.submit(_compress, 0.0) for _ in range(tasks)]
            results = [f.result(_BOUND) for f in futures]
            per_actor = Counter(where.pid for where, _ in results)
            spread = ", ".join(f"{n}" for _, n in sorted(per_actor.items()))
            stats = pool.stats()
            print_wrapped(
                f"-> tasks per actor: {spread}; stats(): created={stats.created},"
                f" completed={stats.completed}: each actor made its compressor once, in its"
                " own process, and kept it for every task it ran.",
                "    ",
                "       ",
            )
            print()
            print(f"  One actor killed (ray.kill) a third of the way into {tasks} tasks of")
            print(f"  {_TASK_SECONDS * 1000:.0f} ms each, submitted without retry:")
            plain = _kill_batch(pool, tasks, retry=False)
            print_wrapped(f"-> {_outcome(plain)}; {_replaced(plain)}.", "    ", "       ")
            if plain.message:
                print_wrapped(f'"{plain.message}"', "       ")
            print("  The same with submit(..., retry=True), for tasks safe to run twice:")
            again = _kill_batch(pool, tasks, retry=True)
            print_wrapped(f"-> {_outcome(again)}; {_replaced(again)}.", "    ", "       ")
            stats = pool.stats()
            print_wrapped(
                f"stats(): failed={stats.failed}, actors_lost={stats.actors_lost},"
                f" actors_replaced={stats.actors_replaced}, workers={stats.workers},"
                f" created={stats.created} (one compressor more per replacement).",
                "  ",
            )
        finally:
            pool.shutdown()
    print_wrapped(f"(The section took {time.perf_counter() - began:.1f} s.)", "  ")
    return (
        f"Ray: {ACTORS} actors made {ACTORS} compressors for {tasks} tasks; a killed"
        f" actor cost {plain.lost} task(s) (ActorLost, {plain.ok} of {plain.tasks} completed)"
        f" and {again.lost + again.other} with retry=True; "
        + (
            "the pool was whole again within"
            f" {max(plain.recovered or _BOUND, again.recovered or _BOUND):.1f} s."
            if plain.recovered is not None and again.recovered is not None
            else "the pool was NOT whole again after every kill."
        )
    )
