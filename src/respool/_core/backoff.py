"""When to try ``create`` again after it failed: one rule for every pool.

A ``create`` that fails (the database restarts, the disk is full) must neither be retried in a
busy loop nor leave callers waiting seconds once the fault is gone. The rule: the first retry
comes after tens of milliseconds, each next delay doubles up to a cap of a few seconds, and
every delay is jittered by at most a quarter either way, so pools and workers that failed
together do not retry in lockstep. (psycopg_pool starts its reconnect backoff at 1 s, which is
why it took seconds to heal after every backend was killed.)

:class:`Backoff` is I/O-free: it is told the time and the failure, and answers when the next
attempt is due; the shell decides how to sleep and what to log. Threaded and asyncio shells,
free lists and worker pools all use it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Final

__all__ = ["BASE", "CAP", "JITTER", "Backoff", "Retry"]

#: Seconds before the first retry, the most any delay may reach, and the jitter fraction.
BASE: Final = 0.05
CAP: Final = 2.0
JITTER: Final = 0.25


class Retry:
    """What one failure means: how many in a row, when the next attempt is due, and whether
    this is the first of its streak (the one worth a full traceback in the log)."""

    __slots__ = ("at", "delay", "failures", "first")

    def __init__(self, failures: int, delay: float, at: float) -> None:
        self.failures = failures
        self.delay = delay
        self.at = at
        self.first = failures == 1

    def __repr__(self) -> str:
        return f"<Retry #{self.failures} in {self.delay:.3f} s>"


class Backoff:
    """The failure streak of one thing that creates (a pool's filler, one worker).

    Invariant: ``failures == 0`` if and only if ``retry_at == 0.0`` and ``last_error is None``
    (no streak: an attempt is due at once).
    """

    __slots__ = ("_rng", "base", "cap", "failures", "last_error", "retry_at")

    def __init__(
        self,
        *,
        base: float = BASE,
        cap: float = CAP,
        rng: Callable[[float, float], float] = random.uniform,
    ) -> None:
        if not 0 < base <= cap:
            raise ValueError(f"backoff needs 0 < base <= cap, got base={base!r}, cap={cap!r}")
        self.base = base
        self.cap = cap
        self._rng = rng
        self.failures = 0
        self.retry_at = 0.0
        self.last_error: BaseException | None = None

    def delay(self, failures: int) -> float:
        """Seconds to wait after the *failures*-th failure in a row (1, 2, ...), jittered."""
        if failures < 1:
            raise ValueError(f"failures must be at least 1, got {failures!r}")
        nominal: float = min(self.cap, self.base * 2.0 ** min(failures - 1, 64))
        return nominal * self._rng(1 - JITTER, 1 + JITTER)

    def failed(self, now: float, error: BaseException | None = None) -> Retry:
        """Record a failure at *now*; return when the next attempt is due."""
        self.failures += 1
        self.last_error = error
        delay = self.delay(self.failures)
        self.retry_at = now + delay
        return Retry(self.failures, delay, self.retry_at)

    def succeeded(self) -> None:
        """The thing worked: the streak is over, the next failure starts a new one."""
        self.failures = 0
        self.retry_at = 0.0
        self.last_error = None

    def due(self, now: float) -> bool:
        """May an attempt be made at *now*?"""
        return now >= self.retry_at

    def remaining(self, now: float) -> float:
        """Seconds from *now* until an attempt is due (0.0 when it is due)."""
        return max(0.0, self.retry_at - now)

    def __repr__(self) -> str:
        return f"<Backoff failures={self.failures} retry_at={self.retry_at:.3f}>"
