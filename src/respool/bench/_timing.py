"""The one timing harness of ``respool bench`` and ``respool tour``.

Machines are shared and noisy, so absolute figures mean little across runs. Every case is timed
in several rounds, interleaved with the other cases of its table so that a burst of outside load
hits them all alike, and the fastest round is kept (the least disturbed one). Figures are read
as ratios to a baseline timed in the same table.

Both the benchmarks and the tour time through this module, so a fix to how rounds are taken or
how threads are started reaches every figure the project prints.
"""

from __future__ import annotations

import statistics
import threading
import time
import timeit
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["Result", "Spread", "best_ns", "interleaved", "repeated", "table", "wall_seconds"]

#: Seconds a thread of :func:`wall_seconds` waits for the others to start: far more than
#: starting a thread takes, so reaching it means the machine is stuck, not slow.
_START_TIMEOUT = 30.0


@dataclass(frozen=True)
class Result:
    """One timed case: nanoseconds per operation in its best round (and its worst, where the
    spread is part of the story)."""

    name: str
    ns: float
    worst: float | None = None


def best_ns(fn: Callable[[], object], number: int, rounds: int) -> float:
    """Nanoseconds per call of *fn* in the best of *rounds* rounds of *number* calls."""
    timer = timeit.Timer(fn)
    return min(timer.repeat(repeat=rounds, number=number)) / number * 1e9


def wall_seconds(fn: Callable[[], object], per_thread: int, threads: int = 1) -> float:
    """Wall-clock seconds for *threads* threads each calling *fn* *per_thread* times.

    With several threads they all start behind one barrier, so starting them is not timed;
    an exception raised by *fn* in any thread is raised here, once every thread has ended, so
    a broken case fails its run instead of looking fast. One thread is timed by ``timeit``,
    which pauses the cyclic garbage collector meanwhile, as the benchmarks always have.
    """
    if threads == 1:
        return timeit.Timer(fn).timeit(per_thread)
    barrier = threading.Barrier(threads + 1)
    failures: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait(timeout=_START_TIMEOUT)
            for _ in range(per_thread):
                fn()
        except BaseException as exc:  # reported to the caller below
            failures.append(exc)

    workers = [
        threading.Thread(target=work, name=f"respool-timing-{i}", daemon=True)
        for i in range(threads)
    ]
    for worker in workers:
        worker.start()
    try:
        barrier.wait(timeout=_START_TIMEOUT)
        started = time.perf_counter()
    finally:
        for worker in workers:
            worker.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise failures[0]
    return elapsed


@dataclass(frozen=True)
class Spread:
    """Every round of one case, in nanoseconds per operation, in the order they were taken.

    The minimum is the least disturbed round; the median says what a typical round cost,
    which matters where rounds differ for reasons of their own (a convoy forms in some rounds
    and not in others) rather than because the machine was busy.
    """

    name: str
    rounds: tuple[float, ...]

    @property
    def min(self) -> float:
        """The fastest round."""
        return min(self.rounds)

    @property
    def median(self) -> float:
        """The middle round (the mean of the middle two for an even count)."""
        return statistics.median(self.rounds)

    @property
    def max(self) -> float:
        """The slowest round."""
        return max(self.rounds)


#: Called before each timed round of a case with the step number (from 1), the number of
#: steps in all, the round number (from 1) and the case's name; the progress display hooks in
#: here.
StepHook = Callable[[int, int, int, str], None]


def repeated(
    cases: Sequence[tuple[str, Callable[[], object]]],
    number: int,
    rounds: int,
    *,
    threads: int = 1,
    warmup: int = 0,
    on_step: StepHook | None = None,
) -> list[Spread]:
    """Time every case once per round, round after round; keep every round of every case.

    A round of a case is *number* calls in all, shared among *threads* threads; the figure is
    wall-clock nanoseconds per call. *warmup* calls per thread run untimed first (they fill
    pools and caches). Cases take turns within each round, so a burst of outside load lands
    on all of them alike instead of on whichever case happened to run then.
    """
    per_thread = max(1, number // threads)
    total = per_thread * threads
    if warmup:
        for _, fn in cases:
            wall_seconds(fn, warmup, threads)
    taken: dict[str, list[float]] = {name: [] for name, _ in cases}
    steps = rounds * len(cases)
    step = 0
    for round_number in range(1, rounds + 1):
        for name, fn in cases:
            step += 1
            if on_step is not None:
                on_step(step, steps, round_number, name)
            taken[name].append(wall_seconds(fn, per_thread, threads) / total * 1e9)
    return [Spread(name, tuple(taken[name])) for name, _ in cases]


def interleaved(
    cases: Sequence[tuple[str, Callable[[], object]]],
    number: int,
    rounds: int,
    *,
    threads: int = 1,
    warmup: int = 0,
    keep_worst: bool = False,
) -> list[Result]:
    """Time every case once per round, round after round; keep each case's best round.

    The same measurement as :func:`repeated`, reduced to the best round (and, with
    *keep_worst*, the slowest one too, a gauge of how much the machine disturbed the run).
    """
    spreads = repeated(cases, number, rounds, threads=threads, warmup=warmup)
    return [Result(s.name, s.min, s.max if keep_worst else None) for s in spreads]


def table(results: Sequence[Result], baseline: str) -> str:
    """The results as text, with each case's ratio to the *baseline* case."""
    base = next(r.ns for r in results if r.name == baseline)
    width = max(len(r.name) for r in results)
    column = baseline.split(" ")[0] if baseline.startswith("(") else "base"
    spread = any(r.worst is not None for r in results)
    header = f"{'case':<{width}}  {'ns/op':>8}  {'x ' + column:>8}"
    lines = [header + (f"  {'worst ns/op':>11}" if spread else "")]
    for r in results:
        line = f"{r.name:<{width}}  {r.ns:8.0f}  {r.ns / base:8.2f}"
        if r.worst is not None:
            line += f"  {r.worst:11.0f}"
        lines.append(line)
    return "\n".join(lines)
