"""The background filler: one daemon thread, shared by every threaded pool.

Pools owe themselves resources after losses (a ``FixedPool`` keeps its size) and must not make
them inside a caller's ``release()``: a 0.5 s ``create`` there would block a caller that only
wanted to give a resource back. They ask the filler instead, which calls each pool's ``_tend``:
the pool recovers leases lost to the garbage collector, creates what it owes (handing the new
resources to its waiters) and says when it wants to be called again (its create backoff).

One thread for all pools keeps the footprint of many small pools at one thread; it is started
on first need, holds pools only weakly (a pool nobody uses any more is collected as usual), and
survives anything a pool's ``_tend`` raises.

:func:`request` may be called from ``__del__``, at any allocation, even while the calling thread
holds a pool's lock: it only puts on a ``SimpleQueue`` (whose ``put`` is reentrant) and, unless
told not to, starts the thread once.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from queue import Empty, SimpleQueue
from time import monotonic
from typing import Protocol

__all__ = ["flush", "request"]

log = logging.getLogger("respool")


class Tended(Protocol):
    """What the filler needs from a pool."""

    name: str

    def _tend(self) -> float | None:
        """Do the pool's background work; return in how many seconds to be called again,
        or None when nothing is pending. (A delay, not an instant: a pool may keep its own
        clock.)"""


#: Seconds the thread waits with nothing to do before it ends (a request starts it again).
IDLE_EXIT = 60.0

_jobs: SimpleQueue[weakref.ref[Tended]] = SimpleQueue()
_thread: threading.Thread | None = None
_start_lock = threading.Lock()


def request(pool: Tended, *, start: bool = True) -> None:
    """Have the filler call ``pool._tend()`` soon. *start*: start the thread if needed (pass
    False from ``__del__``; the pool's next slow-path call does the work then)."""
    _jobs.put(weakref.ref(pool))
    if start and _thread is None:
        _start()


class _Marker:
    """A job that only says "reached": everything asked before it has been done."""

    name = "flush marker"

    def __init__(self) -> None:
        self.reached = threading.Event()

    def _tend(self) -> float | None:
        self.reached.set()
        return None


def flush(timeout: float | None = None) -> bool:
    """Wait until the filler has done everything asked of it so far (but retries a backoff
    has put off); False if *timeout* passed first. For tests and orderly shutdowns."""
    marker = _Marker()
    request(marker)
    return marker.reached.wait(timeout)


def _start() -> None:
    global _thread
    with _start_lock:
        if _thread is not None:
            return
        thread = threading.Thread(target=_run, args=(_jobs,), name="respool-filler", daemon=True)
        thread.start()
        _thread = thread


def _run(jobs: SimpleQueue[weakref.ref[Tended]]) -> None:
    """Serve requests as they come, and pools when their next deadline comes (no fixed
    polling); end after ``IDLE_EXIT`` seconds with nothing to do."""
    global _thread
    due: dict[weakref.ref[Tended], float] = {}
    while True:
        timeout = IDLE_EXIT
        if due:
            timeout = max(0.0, min(due.values()) - monotonic())
        batch: list[weakref.ref[Tended]] = []
        try:
            batch.append(jobs.get(timeout=timeout))
            while True:
                batch.append(jobs.get_nowait())
        except Empty:
            if not due and not batch:
                with _start_lock:
                    # A request puts its job first and looks for the thread second: if it
                    # came after this look, it sees no thread and starts a new one.
                    if jobs.empty():
                        _thread = None
                        return
                continue
        now = monotonic()
        for ref, at in list(due.items()):
            if at <= now:
                batch.append(ref)
        done: set[weakref.ref[Tended]] = set()
        for ref in batch:
            pool = ref()
            if pool is None:
                # Gone. (A dead weak reference hashes only if it did while alive: look it up
                # in ``due`` by identity, never hash it.)
                for key in [key for key in due if key is ref]:
                    del due[key]
                continue
            if ref in done:
                continue
            done.add(ref)
            due.pop(ref, None)
            try:
                again = pool._tend()
            except BaseException:  # a pool's bug must not stop the filler of every pool
                log.exception("pool %r: background work failed", getattr(pool, "name", "?"))
                again = None
            del pool
            if again is not None:
                due[ref] = monotonic() + again


def _reset_in_child() -> None:
    """A forked child has no filler thread: start a fresh one there on first need."""
    global _jobs, _thread, _start_lock
    _jobs = SimpleQueue()
    _thread = None
    _start_lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # pragma: no branch - absent only on Windows
    os.register_at_fork(after_in_child=_reset_in_child)
