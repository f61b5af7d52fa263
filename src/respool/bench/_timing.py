"""Timing helpers shared by the benchmarks: interleaved rounds, best round kept, ratio tables.

Machines are shared and noisy, so absolute nanoseconds mean little across runs. Every case is
timed in several rounds, interleaved with the other cases of its table so that a burst of
outside load hits them all alike, and the fastest round is kept (the least disturbed one).
Figures are read as ratios to a baseline timed in the same table.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["Result", "best_ns", "interleaved", "table"]


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


def interleaved(
    cases: Sequence[tuple[str, Callable[[], object]]], number: int, rounds: int
) -> list[Result]:
    """Time every case once per round, round after round; keep each case's best round."""
    best = {name: float("inf") for name, _ in cases}
    for _ in range(rounds):
        for name, fn in cases:
            best[name] = min(best[name], best_ns(fn, number, 1))
    return [Result(name, best[name]) for name, _ in cases]


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
