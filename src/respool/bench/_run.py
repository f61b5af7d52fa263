"""What every scenario is given: how much to measure, and where to say how far it got.

A scenario is a function from a :class:`Context` to its tables. The context carries the
:class:`Budget` (how many operations and rounds, so the full run, CI's ``--quick`` smoke run
and the tests' tiny run share one code path) and the :class:`Progress` display.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, TextIO

from respool.bench._report import Table

__all__ = ["FULL", "QUICK", "Budget", "Context", "Progress", "Scenario"]


@dataclass(frozen=True)
class Budget:
    """How much of the full run's work to do.

    Every scenario writes its counts as the full run's, and asks the budget for its share:
    ``scale`` multiplies operation counts, ``rounds_scale`` the number of interleaved rounds
    (never fewer than ``min_rounds``, so that a median exists). Tests pass a tiny budget, so
    they run every code path of a scenario in a fraction of a second.
    """

    scale: float = 1.0
    rounds_scale: float = 1.0
    min_rounds: int = 2

    def n(self, full: int, least: int = 1) -> int:
        """The share of *full* operations, at least *least*."""
        return max(least, round(full * self.scale))

    def rounds(self, full: int) -> int:
        """The share of *full* rounds, at least ``min_rounds``."""
        return max(self.min_rounds, round(full * self.rounds_scale))


#: The default run: the figures for benchmarks/README.md.
FULL: Final = Budget()
#: CI's smoke run: every case runs and every table prints, in about a minute on 2 cores.
QUICK: Final = Budget(scale=0.1, rounds_scale=0.4, min_rounds=3)


class Progress:
    """A one-line progress display on stderr for runs that take minutes.

    On a terminal the line is rewritten in place at every step; elsewhere (CI logs, a pipe)
    one plain line is printed per round, so a log shows how far a run got without thousands
    of lines. Nothing goes to stdout, which holds the tables.
    """

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self._width = 0
        self._last_round: tuple[str, int] | None = None

    def step(self, where: str, step: int, steps: int, round_number: int, case: str) -> None:
        """Say that *case* is being timed: step *step* of *steps* in table *where*."""
        if self.tty:
            self._overwrite(f"[{where} {step}/{steps}] {case}…")
        elif self._last_round != (where, round_number):
            self._last_round = (where, round_number)
            self.stream.write(f"[{where} {step}/{steps}] round {round_number}: {case}…\n")
            self.stream.flush()

    def note(self, text: str) -> None:
        """A free-form status line (a subprocess being started, a drill running)."""
        if self.tty:
            self._overwrite(text)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def _overwrite(self, text: str) -> None:
        """Replace the current line with *text*, cut to the terminal's width: a line that
        wrapped could no longer be overwritten with a carriage return."""
        text = text[: max(20, shutil.get_terminal_size().columns - 1)]
        pad = max(0, self._width - len(text))
        self.stream.write("\r" + text + " " * pad)
        self._width = len(text)
        self.stream.flush()

    def clear(self) -> None:
        """Remove the progress line (a terminal only) before a table is printed."""
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0
        self._last_round = None


class _Silent(Progress):
    """No progress display at all (tests that do not look at it)."""

    def step(self, where: str, step: int, steps: int, round_number: int, case: str) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def clear(self) -> None:
        pass


@dataclass
class Context:
    """What a scenario runs with."""

    budget: Budget = FULL
    progress: Progress = field(default_factory=lambda: _Silent(sys.stderr, tty=False))
    started: float = field(default_factory=time.perf_counter)

    def on_step(self, where: str) -> Callable[[int, int, int, str], None]:
        """A step hook for :func:`respool.bench._timing.repeated` that reports to the
        progress display under the label *where*."""

        def hook(step: int, steps: int, round_number: int, case: str) -> None:
            self.progress.step(where, step, steps, round_number, case)

        return hook


@dataclass(frozen=True)
class Scenario:
    """A named benchmark: a one-line summary and the function that measures it."""

    name: str
    summary: str
    run: Callable[[Context], list[Table]]
