"""The shells' side of usage observation (``observe=True``): a lock around the recorder, and
the count of full garbage collections it compares idle gaps with.

Every pool kind calls the same three methods, so what "observing" costs and means is decided
once. A pool that does not observe has no :class:`Observer` at all and pays nothing: its shell
takes its usual path, and only an observing pool takes the slower one that reports here.
"""

from __future__ import annotations

import gc
import threading
import time

from respool._core.usage import UsageRecorder
from respool.stats import Usage

__all__ = ["Observer", "full_collections", "gc_interval"]


def full_collections() -> int:
    """Full (generation 2) garbage collections in this process so far."""
    return int(gc.get_stats()[2]["collections"])


#: When respool was imported, and the full collections counted by then: the window over which
#: :func:`gc_interval` measures the process's collections.
_WATCHED_FROM: tuple[float, int] = (time.monotonic(), full_collections())


def gc_interval() -> tuple[float | None, float]:
    """The mean interval between this process's full collections since respool was imported
    (None when there was none), and how long they have been watched, in seconds."""
    since, before = _WATCHED_FROM
    watched = time.monotonic() - since
    count = full_collections() - before
    return (watched / count if count > 0 else None), watched


class Observer:
    """A :class:`~respool._core.usage.UsageRecorder` safe to call from any thread.

    ``now`` and ``idle_since`` are read from the pool's own clock, so that an entry's idle
    stamp and the moment it is taken are on the same clock (tests swap in fake ones).
    """

    __slots__ = ("_lock", "_recorder")

    def __init__(self, now: float) -> None:
        self._lock = threading.Lock()
        self._recorder = UsageRecorder(now, full_collections())

    def began(self, now: float, idle_since: float | None) -> None:
        """A use began at *now*, with a resource idle since *idle_since* (None: a new one)."""
        with self._lock:
            self._recorder.began(now, idle_since)

    def ended(self, now: float) -> None:
        """A use ended at *now*."""
        with self._lock:
            self._recorder.ended(now)

    def snapshot(self, now: float) -> Usage:
        """The figures so far (for ``stats().usage``)."""
        with self._lock:
            return self._recorder.snapshot(now, full_collections())
