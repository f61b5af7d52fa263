"""The background filler: one dispatcher thread for every threaded pool, each pool's work run
on a thread of its own.

Pools owe themselves resources after losses (a ``FixedPool`` keeps its size) and must not make
them inside a caller's ``release()``: a 0.5 s ``create`` there would block a caller that only
wanted to give a resource back. They ask the filler instead, which calls each pool's ``_tend``:
the pool recovers leases lost to the garbage collector, housekeeps (lifetimes, idle eviction,
keepalive checks, leak reports), creates what it owes (handing the new resources to its
waiters) and says when it wants to be called again (its create backoff, its next deadline).

A ``_tend`` may block for as long as the pool's own timeouts allow: a ``create`` waiting out a
``connect_timeout`` on a silent network, a keepalive ``check`` waiting out its
``check_timeout``. Had one thread called every pool's ``_tend`` in turn, that wait would hold up
every other pool's replacements. So the work is split in two:

* the *dispatcher* (one thread, ``respool-filler``) keeps the schedule: it takes requests, knows
  which pool is due when, and never calls a pool itself;
* *runners* (``respool-tend`` threads) each run one pool's ``_tend`` at a time and report its
  result back through the dispatcher's queue. A runner that finishes goes back to an idle stack
  and is reused. Work that finds every runner busy waits for one, but only while runners keep
  finishing: after ``STALL_GRACE`` seconds without one finishing, the dispatcher starts one
  more. So quick tends, even a burst of them, are served by one runner or two in turn, and a
  pool stuck in a slow ``create`` costs a thread and delays the others by ``STALL_GRACE``,
  not by its own timeout.

One pool's tends never run two at a time (its ``_tend`` is written for one caller): a request
that arrives while it runs makes it run again right after. Pools are held only weakly (a pool
nobody uses any more is collected as usual, a pending retry or not), and nothing a pool's
``_tend`` raises stops the machinery. Runners idle for ``IDLE_EXIT`` seconds end, and so does
the dispatcher once nothing is scheduled: an idle process keeps no filler thread.

:func:`request` may be called from ``__del__``, at any allocation, even while the calling thread
holds a pool's lock: it only puts on a ``SimpleQueue`` (whose ``put`` is reentrant) and, unless
told not to, starts the dispatcher once.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections import deque
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


#: Seconds a filler thread waits with nothing to do before it ends (a request starts the
#: dispatcher again, and the dispatcher starts runners as it needs them).
IDLE_EXIT = 60.0

#: Seconds a tend waits for a busy runner before the dispatcher starts one more: most tends
#: take milliseconds, and a burst of them (many pools due at once) is served by a runner or
#: two in turn instead of a thread each; while runners are stuck, one more is started per
#: such wait, so a stuck pool delays another pool's work by about this much, not by its
#: own timeout.
STALL_GRACE = 0.05


class _State:
    """The dispatcher's record of one pool with work pending, running or scheduled.

    Requests and tends are ordered by the dispatcher's sequence number (one per item taken
    from the queue): a tend *covers* every request numbered up to its start, which is what
    :func:`flush` waits on.
    """

    __slots__ = ("asked", "covers", "done", "due", "gone", "queued", "ref", "runner", "wanted")

    def __init__(self, ref: weakref.ref[Tended]) -> None:
        self.ref = ref
        #: Number of the latest request seen.
        self.asked = 0
        #: Number covered by the running tend (or the latest one).
        self.covers = 0
        #: Number covered by the latest finished tend.
        self.done = 0
        #: A request is waiting for a tend to start.
        self.wanted = False
        #: When the pool asked to be called again (None: it did not).
        self.due: float | None = None
        #: Its tend waits for a runner.
        self.queued = False
        #: The runner running its tend now (None: not running).
        self.runner: _Runner | None = None
        #: The pool was collected before work asked of it could run.
        self.gone = False


class _Done:
    """A runner's report: *state*'s tend ended, asking to be called again in *again* s."""

    __slots__ = ("again", "state")

    def __init__(self, state: _State, again: float | None) -> None:
        self.state = state
        self.again = again


class _Marker:
    """A flush: reached once every tend asked or running before it has ended."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        #: What it still waits for: a pool's record and the number its tend must cover.
        self.waits: list[tuple[_State, int]] = []


_Job = weakref.ref[Tended] | _Marker | _Done

_jobs: SimpleQueue[_Job] = SimpleQueue()
_thread: threading.Thread | None = None
_start_lock = threading.Lock()


def request(pool: Tended, *, start: bool = True) -> None:
    """Have the filler call ``pool._tend()`` soon. *start*: start the thread if needed (pass
    False from ``__del__``; the pool's next slow-path call does the work then)."""
    _jobs.put(weakref.ref(pool))
    if start and _thread is None:
        _start()


def flush(timeout: float | None = None) -> bool:
    """Wait until the filler has done everything asked of it so far, and ended every tend
    running now, wherever it runs (but not retries a backoff has put off); False if *timeout*
    passed first. For tests and orderly shutdowns."""
    marker = _Marker()
    _jobs.put(marker)
    if _thread is None:
        _start()
    return marker.reached.wait(timeout)


def _start() -> None:
    global _thread
    with _start_lock:
        if _thread is not None:
            return
        thread = threading.Thread(target=_run, args=(_jobs,), name="respool-filler", daemon=True)
        thread.start()
        _thread = thread


class _Runner:
    """A thread that runs the tends the dispatcher hands it, one at a time, until told to
    stop (``None``). Only the dispatcher stops it, so a tend is never handed to a runner that
    has just decided to end."""

    def __init__(self, jobs: SimpleQueue[_Job]) -> None:
        self.inbox: SimpleQueue[_State | None] = SimpleQueue()
        thread = threading.Thread(
            target=_serve, args=(self.inbox, jobs), name="respool-tend", daemon=True
        )
        thread.start()


def _serve(inbox: SimpleQueue[_State | None], jobs: SimpleQueue[_Job]) -> None:
    while (state := inbox.get()) is not None:
        again: float | None = None
        try:
            again = _tend(state.ref)
        finally:
            jobs.put(_Done(state, again))


def _tend(ref: weakref.ref[Tended]) -> float | None:
    """Call the pool's ``_tend``. A frame of its own: the pool is held strongly only here."""
    pool = ref()
    if pool is None:
        return None
    try:
        return pool._tend()
    except BaseException:  # a pool's bug must not stop the filler of every pool
        log.exception("pool %r: background work failed", getattr(pool, "name", "?"))
        return None


def _run(jobs: SimpleQueue[_Job]) -> None:
    """The dispatcher: serve requests as they come and pools when their next deadline comes
    (no fixed polling); end after ``IDLE_EXIT`` seconds with nothing to do or running."""
    global _thread
    # Pools with anything pending, running or scheduled (keys hashed while alive: a dead
    # weak reference hashes only if it did then, and is found again by identity).
    states: dict[weakref.ref[Tended], _State] = {}
    markers: list[_Marker] = []
    idle: list[tuple[_Runner, float]] = []  # a stack: the runner used last is reused first
    ready: deque[tuple[_State, float]] = deque()  # tends waiting for a runner, and since when
    running = 0
    seq = 0
    last_busy = last_progress = monotonic()
    while True:
        now = monotonic()
        wakes = [s.due for s in states.values() if s.due is not None]
        if ready:
            wakes.append(max(ready[0][1], last_progress) + STALL_GRACE)
        if idle:
            wakes.append(idle[0][1] + IDLE_EXIT)
        if not states:
            wakes.append(last_busy + IDLE_EXIT)
        # Nothing to wake for (tends running, none scheduled or waiting): wait for reports.
        timeout = max(0.0, min(wakes) - now) if wakes else None
        batch: list[_Job] = []
        try:
            batch.append(jobs.get(timeout=timeout))
            while True:
                batch.append(jobs.get_nowait())
        except Empty:
            pass
        now = monotonic()
        if batch:
            last_busy = now
        for job in batch:
            seq += 1
            if isinstance(job, _Done):
                state = job.state
                runner = state.runner
                assert runner is not None
                idle.append((runner, now))
                state.runner = None
                running -= 1
                last_progress = now
                state.done = state.covers
                state.due = None if job.again is None else now + job.again
            elif isinstance(job, _Marker):
                for state in states.values():
                    need = state.asked if state.asked > state.done else 0
                    if state.runner is not None:  # running (maybe not for a request)
                        need = max(need, state.covers)
                    if need > state.done:
                        job.waits.append((state, need))
                markers.append(job)
            else:
                pool = job()
                if pool is None:
                    continue  # gone before its turn: nothing to do (and not hashable now)
                state = states.get(job) or states.setdefault(job, _State(job))
                del pool
                state.asked = seq
                state.wanted = True
        while idle and now - idle[0][1] >= IDLE_EXIT:
            idle.pop(0)[0].inbox.put(None)
        for ref, state in list(states.items()):
            if state.runner is not None or state.queued:
                continue
            if ref() is None:
                state.gone = True
                del states[ref]
            elif state.wanted or (state.due is not None and state.due <= now):
                state.due = None
                state.queued = True
                ready.append((state, now))
            elif state.due is None:
                del states[ref]  # nothing pending: a later request makes a new record
        while ready:
            if idle:
                runner = idle.pop()[0]
            elif running and now - max(ready[0][1], last_progress) < STALL_GRACE:
                break  # the busy runners may well be free in a moment
            else:
                try:
                    runner = _Runner(jobs)
                except RuntimeError:  # no thread to be had now: try again in a while
                    log.exception("cannot start a thread for pools' background work")
                    last_progress = now + 1.0
                    break
                last_progress = now
            state = ready.popleft()[0]
            # The tend covers every request seen so far, even those that came while it
            # waited for a runner.
            state.queued = state.wanted = False
            state.covers = seq
            state.runner = runner
            runner.inbox.put(state)
            running += 1
        if markers:
            for marker in markers:
                marker.waits = [(s, n) for s, n in marker.waits if s.done < n and not s.gone]
                if not marker.waits:
                    marker.reached.set()
            markers = [marker for marker in markers if marker.waits]
        if not batch and not states and now - last_busy >= IDLE_EXIT:
            assert running == 0, running
            assert not markers, markers
            with _start_lock:
                # A request puts its job first and looks for the thread second: if it came
                # after this look, it sees no thread and starts a new one.
                if jobs.empty():
                    for runner, _ in idle:
                        runner.inbox.put(None)
                    _thread = None
                    return


def _reset_in_child() -> None:
    """A forked child has no filler threads: start a fresh dispatcher there on first need
    (the parent's schedule and runners stay the parent's)."""
    global _jobs, _thread, _start_lock
    _jobs = SimpleQueue()
    _thread = None
    _start_lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # pragma: no branch - absent only on Windows
    os.register_at_fork(after_in_child=_reset_in_child)
