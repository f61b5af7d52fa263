"""``WorkerPool``: N worker threads, each owning one resource for its whole life.

This is *quick reuse in a static pool*: the expense of making a resource is paid
once per worker, before it accepts work, and the resource never changes hands. It closes the
gaps users hit when they build the same thing from ``ThreadPoolExecutor(initializer=...)`` and
``threading.local``:

* the resource is created, reset, checked and destroyed **in its worker's own thread**, so
  thread-affine resources (``sqlite3`` connections) work, and ``destroy`` really runs when the
  worker stops (a ``threading.local`` value is simply dropped: buffers are never flushed);
* a failed ``create`` is retried with backoff while tasks wait: the worker is never lost, and
  a task that waits past ``timeout`` (30 s by default) fails with an error chained to the
  last create error, instead of hanging its caller;
* the queue is bounded (``max_pending``) with an explicit policy when full (``on_full``);
* :meth:`WorkerPool.map` is lazy: it pulls input only as results are consumed.

Design
------
This module is a thin threaded shell over two I/O-free cores, which make every decision:

* :mod:`respool._core.admission` decides who gets into the queue, who waits for room (first
  come, first served), which queued tasks no longer count (cancelled ones), and who is refused
  once the pool is closed;
* :mod:`respool._core.health` decides, for each worker's resource, when to ``check`` it, when it
  is worn out, and when to try ``create`` again after a failure (the shared backoff).

*Tasks* travel through one ``queue.SimpleQueue`` (written in C: the cheapest hand-off between
threads the standard library has), each as a tuple of its future and what to run. The future
is a :class:`~respool._future.WorkItem`, which is also the admission core's ticket, so a submit
builds two small objects (and its first waiter's sleeper). Marking a future running and
settling it take no lock (see :mod:`respool._future`). Admission moves are made under one
lock, shared by submitters, ``shutdown`` and the workers of a bounded pool; tasks are put on
the queue only under it, in the order the core admits them, so all of them precede the stop
markers ``shutdown`` puts after closing, and draining workers run them all.

*The hot path*: a worker with a live resource, no timed health rule and nothing to do around
a task (no ``reset``, ``check``, wear rule, ``drain`` or ``resize``) runs its tasks in a loop
of its own (:meth:`_Runner.serve`) that does only what a task needs, and leaves everything
else to the general loop. ``submit`` finds what it uses bound on the pool itself.

*The bound* (``max_pending``) is the core's count of queued tasks, cancelled ones excepted.
A worker of a bounded pool reports each task it dequeues to the core under the lock, so the
count and the cancelled ones change in one move (see :mod:`respool._core.admission`). A
worker of an unbounded pool reports nothing: there is no bound to keep exact, and its round
trip does without a lock; the queue's own length then gives the ``queued`` figure.

*Counters* that workers change live in each worker's own :class:`_Worker` record and are
written by that thread only (single writer: no lost updates, no lock); :meth:`WorkerPool.stats`
sums them. Counters of the submit side are the admission core's, read under the lock.

*Health*: each worker keeps its resource's record (:class:`~respool._core.health.Vitals`) and
asks the health core what to do: after a task (worn out by ``max_uses``, past its
``max_lifetime``, made before a ``drain``?) and, with ``max_lifetime`` or ``keepalive``, while
idle: the worker's ``get`` times out at the earliest deadline of its resource, never on a fixed
tick, and a pool with neither waits with no timeout at all. A retired resource is replaced
at once, in the same thread, and counted by reason.

*Resize and drain* reach idle workers through markers on the task queue (an idle worker
blocks there and nowhere else); busy workers look at the pool after their task, since
``resize`` and ``drain`` switch every worker's after-task bookkeeping on. See :class:`_Shared`
for why no worker can sleep through a drain.

*Lifetime*: worker threads hold the pool's shared state, never the pool itself, so a pool
nobody references is collected; its finalizer stops the workers after they drain the queue.
Workers are daemon threads (an idle worker must not keep the interpreter alive), and an
``atexit`` hook shuts every live pool down with ``wait=True``, so queued work still runs and
every resource is destroyed in its own thread at exit, as ``ThreadPoolExecutor`` does. As
there, a task that never returns also blocks exit.

*Fork*: a child process inherits the pool object but none of its threads. Rather than silently
start new workers (and new resources) behind the user's back, the pool in the child is closed:
``submit`` raises ``PoolClosed`` saying why. The parent's resources are left alone.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import threading
import weakref
from _thread import allocate_lock
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from queue import Empty, SimpleQueue
from time import monotonic
from types import TracebackType
from typing import Any, Concatenate, Final, Generic, Literal, ParamSpec, Self, TypeVar

from respool import _fork, _validate
from respool._core.admission import ADMITTED, CLOSED, LEFT, Admission, Waiter
from respool._core.health import (
    ABORT,
    CHECK,
    CREATE,
    DRAIN,
    ERROR,
    GIVE_UP,
    IDLE,
    LIFETIME,
    PING,
    USES,
    Rules,
    Supply,
    Vitals,
)
from respool._core.policy import discards, reaches_caller
from respool._future import TaskFuture, WorkItem
from respool._mapping import ordered_map
from respool._worker_options import SharedOptions, WorkerOptions, log_create_failure
from respool.errors import PoolClosed, PoolFull, PoolTimeout
from respool.lifecycle import Lifecycle
from respool.stats import WorkerStats

__all__ = ["WorkerPool", "WorkerStats"]

T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")

log = logging.getLogger("respool")

#: The retirement reasons a worker pool reports (``WorkerStats.retired``), in that order.
RETIRE_REASONS: Final = (LIFETIME, USES, IDLE, CHECK, DRAIN, ERROR, ABORT)


#: A task's future; it is also the admission core's ticket (see :class:`WorkItem`).
_Task = WorkItem[Any]
#: What travels on the queue: the task's future and what to run, or a marker: ``None``
#: meaning "stop", or a :class:`_Control`. A plain tuple: the cheapest thing to build on the
#: hot path, unpacked in one step, and dropped once run, so nothing keeps the arguments alive
#: after that.
_Item = tuple[_Task, Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class _Control:
    """A marker on the task queue that is not a task: it wakes an idle worker to look at its
    resource (``drain``) or to leave (``resize`` down). Falsy, like the stop marker ``None``,
    so a worker tells every marker from a task (a non-empty tuple) with one truth test."""

    __slots__ = ("kind",)

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __bool__(self) -> Literal[False]:
        return False

    def __repr__(self) -> str:
        return f"<{self.kind} marker>"


#: ``resize`` down: the worker that takes it leaves, if a worker still has to.
_SHRINK: Final = _Control("shrink")
#: ``drain``: the worker that takes it retires its resource if it was made before the drain,
#: or hands the marker on to a worker that still has to.
_DRAIN: Final = _Control("drain")
#: Never queued: what a worker's timed wait answers when a deadline of its resource came.
_AGAIN: Final = _Control("deadline")


class _Parked:
    """The shell's handle for a submitter waiting for room: the lock it sleeps on (held
    until the admission core serves or refuses it) and the item to queue once admitted."""

    __slots__ = ("item", "lock")

    def __init__(self, item: _Item) -> None:
        self.item = item
        self.lock = allocate_lock()
        self.lock.acquire()


class _Worker:
    """One worker's record. Only its own thread writes it (single writer: no lock needed);
    ``stats()`` reads it from other threads."""

    __slots__ = (
        "alive",
        "cancelled",
        "check_failures",
        "cleanup",
        "completed",
        "controls",
        "create_errors",
        "created",
        "destroy_errors",
        "destroyed",
        "failed",
        "generation",
        "has",
        "holding",
        "leaving",
        "replaced",
        "reset_errors",
        "retired",
        "retry_at",
        "stopped",
        "streak",
        "thread",
    )

    def __init__(self, *, cleanup: bool) -> None:
        self.thread: threading.Thread | None = None
        self.alive = True
        #: Took its stop marker off the queue (it is destroying its resource, or gone).
        self.stopped = False
        #: Claimed a place of ``resize`` down: it stops once its current task is done.
        self.leaving = False
        #: True while the worker holds a task it took from the queue.
        self.holding = False
        #: True while the worker has a live resource (others read it to leave tasks to it).
        self.has = False
        #: The drain generation of its resource (valid while ``has``).
        self.generation = 0
        #: Anything to decide after a task (reset, wear, drain, resize)? If not, the hot path
        #: skips the health bookkeeping altogether. ``drain`` and ``resize`` set it for good.
        self.cleanup = cleanup
        #: Markers (stop, drain, shrink) it took off the queue, for the ``queued`` figure.
        self.controls = 0
        #: The current streak of failed creates, and when the next attempt is due.
        self.streak = 0
        self.retry_at = 0.0
        self.retired = dict.fromkeys(RETIRE_REASONS, 0)
        self.completed = 0
        self.failed = 0
        self.cancelled = 0
        self.created = 0
        self.destroyed = 0
        self.replaced = 0
        self.create_errors = 0
        self.reset_errors = 0
        self.check_failures = 0
        self.destroy_errors = 0


def _wake(served: Sequence[Waiter[_Task]]) -> None:
    """Wake submitters the admission core served or refused."""
    for waiter in served:
        parked = waiter.handle
        assert isinstance(parked, _Parked)
        parked.lock.release()


class _Shared(SharedOptions[T]):
    """Everything the pool's threads share. Workers reference this, never the pool.

    Under ``lock``: every move of ``admission`` and every ``queue.put`` of a task (in the
    order the core admits them); ``surplus``, ``target``, ``watchers``, ``controls_put``, the
    drain generation of ``rules`` and additions to ``workers``. ``queue`` holds items (a
    task's future and what to run) and markers (drain, shrink), then, once ``put_stops`` ran,
    one ``None`` stop marker per worker after all of them.

    *Resize and drain* wake idle workers through markers on the queue, since an idle worker
    blocks on the queue and nothing else. A shrink marker is easy: whoever takes it leaves
    (while ``surplus`` says someone must), so no worker takes two. A drain marker may be
    taken by a worker whose resource is already new while another, idle with an old one,
    still sleeps in ``get``: the taker puts the marker back and waits on ``moved`` until that
    other worker has moved (taken something, lost its resource, left); waiting workers do not
    take from the queue, so the sleeper is the one to get it. A worker waits only on one whose
    resource is of an older drain generation than its own, both read under one hold of the
    lock (a worker with no resource is waited on by nobody), so waits never form a cycle.
    """

    def __init__(
        self,
        lifecycle: Lifecycle[T],
        *,
        workers: int,
        max_pending: int | None,
        timeout: float | None,
        rules: Rules,
        name: str,
        cleanup: bool,
    ) -> None:
        super().__init__(lifecycle, timeout=timeout, rules=rules, name=name, cleanup=cleanup)

        self.lock = threading.Lock()
        self.queue: SimpleQueue[_Item | _Control | None] = SimpleQueue()
        self.admission: Admission[_Task] = Admission(name=name, max_pending=max_pending)
        #: Workers report every take to the admission core (see ``_Runner.run``).
        self.bounded = max_pending is not None
        #: The hook a task's future calls when cancelled (bound once, not per task): only a
        #: bounded queue has a slot to free.
        self.on_cancel = self.task_cancelled if self.bounded else None
        #: Set when the stop markers are put: wakes workers sleeping between create attempts.
        self.stopping = threading.Event()
        #: Set by ``shutdown(cancel_pending=True)``: held tasks are cancelled, not run.
        self.cancel_pending = False
        self.cancelling = threading.Event()
        #: Pops once: whoever pops it puts the stop markers (lock-free, so a finalizer can).
        self.stop_token = [True]
        #: Stop markers put (to tell them from tasks in the queue's length).
        self.stops_put = 0
        #: Drain and shrink markers put, for the same reason.
        self.controls_put = 0
        #: Drain markers on the queue now: a drain adds only what is missing (any drain
        #: marker serves the latest drain), so repeated drains do not pile markers up.
        self.drains_queued = 0
        #: Workers the pool should have once pending shrinks are done.
        self.target = workers
        #: Workers still to leave after ``resize`` down (each claims one place, then leaves).
        self.surplus = 0
        #: Workers waiting on ``moved`` (see the class doc); read without the lock by workers
        #: that move, to notify them only when someone waits.
        self.watchers = 0
        self.moved = threading.Condition(self.lock)

        #: Every worker the pool ever started (records of those gone keep their counts).
        self.workers = [_Worker(cleanup=cleanup) for _ in range(workers)]

    # -- admission moves the shell performs -----------------------------------------------------

    def admit(self, served: Sequence[Waiter[_Task]]) -> None:
        """Put the tasks of submitters the core just admitted on the queue (under ``lock``)."""
        put = self.queue.put
        for waiter in served:
            parked = waiter.handle
            assert isinstance(parked, _Parked)
            put(parked.item)

    def task_cancelled(self, future: TaskFuture[Any]) -> None:
        """``on_cancel`` of every task: a cancelled queued task frees its slot at once.

        Runs under the future's condition; the lock order is always future, then pool.
        """
        assert isinstance(future, WorkItem)
        with self.lock:
            served = self.admission.cancelled(future)
            self.admit(served)
        _wake(served)

    def close(self, reason: str) -> None:
        """Refuse new work from now on; waiting submitters get ``PoolClosed``."""
        with self.lock:
            refused = self.admission.close(reason)
        _wake(refused)

    # -- stopping -------------------------------------------------------------------------------

    def put_stops(self) -> None:
        """Put one stop marker per worker after every accepted task (once, from anywhere).

        Lock-free on purpose: the garbage collector may run the pool's finalizer in any
        thread, even one that holds ``lock``. (An unreferenced pool has no submitter left to
        refuse; ``shutdown`` closes the admission core before it gets here.)
        """
        try:
            self.stop_token.pop()
        except IndexError:
            return
        self.stopping.set()
        staying = sum(1 for worker in self.workers if worker.alive and not worker.leaving)
        for _ in range(staying):
            self.queue.put(None)
        self.stops_put = staying

    def cancel_queued(self) -> None:
        """Cancel every task still queued (``shutdown(cancel_pending=True)``); stop markers
        found are put back."""
        tasks: list[_Task] = []
        markers: list[_Control | None] = []
        while True:
            try:
                item = self.queue.get_nowait()
            except Empty:
                break
            if not item:
                markers.append(item)
            else:
                tasks.append(item[0])
            del item
        for marker in markers:
            self.queue.put(marker)
        with self.lock:
            for task in tasks:
                self.admit(self.admission.purge(task))  # closed: it admits nobody
        for task in tasks:
            try:
                task.cancel()
                task.set_running_or_notify_cancel()  # wakes wait() and as_completed()
            except BaseException as exc:  # a done callback's: it must not stop the shutdown
                if reaches_caller(exc, in_caller=False):  # pragma: no cover - never here
                    raise
                log.exception("pool %r: a done callback raised", self.name)

    def join(self) -> None:
        """Wait for every worker thread to end.

        Not when called from one of the workers: it would wait for the others, and two tasks
        shutting their pool down at once would wait for each other forever.
        """
        me = threading.current_thread()
        workers = list(self.workers)  # none is added once closed
        if any(worker.thread is me for worker in workers):
            return
        for worker in workers:
            thread = worker.thread
            if thread is not None and thread.is_alive():
                thread.join()

    def anyone_else_has(self, me: _Worker) -> bool:
        """Does another worker hold a live resource (and so can run tasks)?"""
        return any(worker.has for worker in self.workers if worker is not me)

    # -- resize and drain -----------------------------------------------------------------------

    def put_controls(self, marker: _Control, count: int) -> None:
        """Put *count* markers on the queue (under ``lock``)."""
        put = self.queue.put
        for _ in range(count):
            put(marker)
        self.controls_put += count
        if marker is _DRAIN:
            self.drains_queued += count

    def notify_moved(self) -> None:
        """A worker moved (took something, lost its resource, left): wake the watchers."""
        with self.lock:
            self.moved.notify_all()

    def stale_idle(self, me: _Worker, generation: int) -> _Worker | None:
        """Another worker that holds a resource older than drain *generation* and no task:
        one that may be asleep in ``get`` and needs a drain marker (under ``lock``)."""
        for worker in self.workers:
            if worker is not me and not self.moved_on(worker, generation):
                return worker
        return None

    @staticmethod
    def moved_on(worker: _Worker, generation: int) -> bool:
        """Has *worker* no more need of a drain marker of *generation*?"""
        return (
            worker.holding
            or not worker.has
            or worker.generation >= generation
            or worker.leaving
            or worker.stopped
            or not worker.alive
        )

    def shutdown(self, wait: bool, cancel_pending: bool) -> None:
        self.close("was shut down")
        if cancel_pending:
            with self.lock:
                self.cancel_pending = True
            self.cancelling.set()
            self.cancel_queued()
        self.put_stops()
        if wait:
            self.join()

    def abandon(self) -> None:
        """The pool was garbage-collected: nobody can submit any more; let the workers
        finish the queue, destroy their resources and end."""
        self.put_stops()


#: Pools whose workers may still run, for the exit hook (the workers keep them alive).
_live: weakref.WeakSet[_Shared[Any]] = weakref.WeakSet()
_live_lock = threading.Lock()


def _reset_live_lock() -> None:
    global _live_lock
    _live_lock = threading.Lock()  # a thread that held it does not exist in the child


if hasattr(os, "register_at_fork"):  # pragma: no branch - absent only on Windows
    os.register_at_fork(after_in_child=_reset_live_lock)


@atexit.register
def _shutdown_all_at_exit() -> None:
    """At interpreter exit, drain and stop every pool still running (see the module doc)."""
    with _live_lock:
        pools = list(_live)
    for shared in pools:
        # Closed under the lock first, so a submitter still waiting for room is refused
        # rather than let in behind the stop markers.
        shared.shutdown(wait=False, cancel_pending=False)
    for shared in pools:
        shared.join()


# -- the worker thread ----------------------------------------------------------------------------


class _Runner(Generic[T]):
    """The loop of one worker thread and the one resource it owns.

    The resource is created, checked, reset and destroyed only here, in this thread; when to
    do which is the health core's answer (``rules`` for the resource, ``supply`` for
    creating one). A worker never dies of a callback's failure: every one of them is caught,
    counted, logged, and answered by replacing the resource (or by failing the one task
    concerned), as the callback policy says for a pool's own thread.

    With ``max_lifetime`` or ``keepalive`` (``rules.timed``), an idle worker waits for work
    only until the earliest deadline of its resource (no polling): then it retires the
    resource (past its lifetime) or pings it (``check``) and replaces it if dead, before a
    task meets it. Without them it waits for work with no timeout at all.
    """

    def __init__(self, shared: _Shared[T], me: _Worker) -> None:
        self.shared = shared
        self.me = me
        self.rules = shared.rules
        self.supply = Supply()
        self.resource: T | None = None
        #: The resource's health record; None while the worker has no resource.
        self.vitals: Vitals | None = None
        self.check = shared.lifecycle.check
        #: An observing pool's record (its workers take the general path: ``cleanup``), and
        #: since when the resource has been idle: its last task's end, or its creation ahead
        #: of need; None for one made for the task in hand (no idle gap before that use).
        self.observer = shared.observer
        self.idle_since: float | None = None

    def run(self) -> None:
        shared = self.shared
        me = self.me
        get = shared.queue.get
        check = self.check
        supply = self.supply
        timed = self.rules.timed
        item: _Item | _Control | None
        try:
            while True:
                if self.vitals is not None:
                    if timed:
                        item = self.wait_timed()
                    elif me.cleanup:
                        item = get()
                    else:
                        item = self.serve()
                elif me.leaving or (shared.surplus and self.claim_place()):
                    break
                elif shared.stopping.is_set():
                    # No eager create now: a resource made only to be destroyed is waste. A
                    # task still queued makes one itself (wait_for_resource).
                    item = get()
                elif supply.due(monotonic()) and self.create(trusted=False):
                    vitals = self.vitals
                    if vitals is not None and self.rules.stale(vitals):
                        self.retire(DRAIN)  # its create began before a drain() call
                    continue
                elif shared.anyone_else_has(me):
                    # Between create attempts, while another worker can run tasks: leave
                    # them to it rather than hold one hostage to this worker's retries.
                    shared.stopping.wait(max(0.0, supply.retry_at() - monotonic()))
                    continue
                else:
                    # No worker can run anything: take a task to hold (it fails past its
                    # timeout if create keeps failing), or retry when due.
                    try:
                        item = get(timeout=max(0.0, supply.retry_at() - monotonic()))
                    except Empty:
                        continue
                if not item:
                    if item is None:
                        me.controls += 1
                        me.stopped = True
                        break
                    if self.control(item):
                        break
                    continue
                self.hold(item[0])
                vitals = self.vitals
                if (vitals is not None and (check is None or vitals.trusted)) or self.prepare(
                    item[0]
                ):
                    self.execute(item)
                del item
        finally:
            if self.vitals is not None:
                self.discard(None)
            me.holding = False
            me.alive = False
            if shared.watchers:
                shared.notify_moved()

    def hold(self, task: _Task) -> None:
        """This worker has just dequeued *task*: it holds it now. A bounded pool's worker
        reports the take at once, under the lock, so that the bound stays exact (and admits
        a blocked submitter into the freed slot); an unbounded pool's goes unreported (the
        queue's length is the count) and the round trip does without a lock. Watchers are
        told after ``holding`` is set (see ``_Shared``: publish, then look)."""
        shared = self.shared
        me = self.me
        if shared.bounded:
            with shared.lock:
                served = shared.admission.taken(task)
                me.holding = True
                if served:
                    shared.admit(served)
            if served:
                _wake(served)
        else:
            me.holding = True
        if shared.watchers:
            shared.notify_moved()

    def serve(self) -> _Item | _Control | None:
        """Run tasks back to back, for as long as running them is all there is to do.

        The hot path of every task, written out rather than built from the general loop's
        steps: with a live resource, no timed health rule and nothing to do around a task
        (``cleanup`` false: no ``reset``, ``check`` or wear rule, no ``drain`` or ``resize``
        yet), a task needs only its take reported (bounded pool), its future marked running,
        its function run and its future settled. Returns what needs more to ``run``: a
        marker, or a task met once ``cleanup`` is on (untouched: ``run`` takes it from
        there); or ``_AGAIN`` after a task that ended with ``cleanup`` on, or that cost the
        resource (abort means discard).
        """
        shared = self.shared
        me = self.me
        get = shared.queue.get
        resource = self.resource
        while True:
            item = get()
            if not item or me.cleanup:
                return item
            task, fn, args, kwargs = item
            self.hold(task)
            if not task.set_running_or_notify_cancel():
                me.cancelled += 1
                me.holding = False
                del item, task, fn, args, kwargs
                if me.cleanup:
                    self.skipped()
                    return _AGAIN
                continue
            try:
                result = fn(resource, *args, **kwargs)
            except BaseException as exc:
                del item, fn, args, kwargs
                if self.failed(task, exc):
                    return _AGAIN
                del exc
            else:
                # Counted before the settle: a caller holding the result sees it counted.
                me.completed += 1
                me.holding = False
                try:
                    task.set_result(result)
                except BaseException as exc:  # from a done callback: the worker survives it
                    if reaches_caller(exc, in_caller=False):  # pragma: no cover - never here
                        raise
                    log.exception("pool %r: a done callback raised", shared.name)
                # What the task ran with is dropped after the settle, not before: the caller
                # it woke needs the interpreter lock this thread holds meanwhile.
                del item, fn, args, kwargs, result
            del task
            if me.cleanup:  # ``drain`` or ``resize`` came during the task
                self.after_task()
                return _AGAIN

    def wait_timed(self) -> _Item | _Control | None:
        """Wait for work until the earliest deadline of the resource; at a deadline, do what
        the health rules say (retire, or ping with ``check``) and answer ``_AGAIN``."""
        vitals = self.vitals
        assert vitals is not None
        rules = self.rules
        now = monotonic()
        verdict = rules.idle_pass(vitals, now)
        if verdict is None:
            get = self.shared.queue.get
            deadline = rules.next_deadline(vitals, surplus=False)
            if deadline == math.inf:
                return get()
            try:
                return get(timeout=min(max(0.0, deadline - now), threading.TIMEOUT_MAX))
            except Empty:
                return _AGAIN
        if verdict == PING:
            if self.checked(vitals, now):
                rules.passed_check(vitals, monotonic())
            else:
                self.retire(CHECK)
        else:
            self.retire(verdict)
        return _AGAIN

    def control(self, marker: _Control) -> bool:
        """Act on a marker other than stop; True: this worker leaves."""
        if marker is _AGAIN:
            return False
        self.me.controls += 1
        if marker is _SHRINK:
            return self.claim_place()
        if self.pass_on(marker):
            self.retire(DRAIN)
        return False

    def claim_place(self) -> bool:
        """Take one of the places ``resize`` asked to free, if one is left: True, leave."""
        shared = self.shared
        me = self.me
        with shared.lock:
            if shared.surplus > 0 and not me.leaving:
                shared.surplus -= 1
                me.leaving = True
                shared.moved.notify_all()
        return me.leaving

    def pass_on(self, marker: _Control) -> bool:
        """A drain marker: True if this worker's own resource is older than the last drain
        (the caller retires it); otherwise hand the marker on to a worker that needs it and
        wait until that one has moved (see :class:`_Shared`).

        Both questions are answered under one hold of the lock, against one generation: a
        worker waits only on a worker whose resource is older than its own, so waits never
        form a cycle, however many drains come in between.
        """
        shared = self.shared
        with shared.lock:
            shared.drains_queued -= 1
            generation = self.rules.generation
            vitals = self.vitals
            if vitals is not None and vitals.generation < generation:
                return True
            other = shared.stale_idle(self.me, generation)
            if other is None:
                return False  # nobody asleep with an old resource: the marker's job is done
            shared.put_controls(marker, 1)
            shared.watchers += 1
            try:
                while not shared.moved_on(other, generation):
                    shared.moved.wait()
            finally:
                shared.watchers -= 1
        return False

    def prepare(self, task: _Task) -> bool:
        """Obtain a viable resource for *task*: False if the task was settled without one
        (cancelled, or failed because none could be made in time)."""
        while True:
            if self.vitals is None and not self.wait_for_resource(task):
                self.me.holding = False
                return False
            if self.check is None or self.viable():
                return True

    def execute(self, item: _Item) -> None:
        """Run one task on this worker's resource and settle its future.

        The counters and ``holding`` change *before* the future is settled, so that a caller
        who has its result reads stats that already count it. Nothing but the loop back to
        ``get`` follows ``set_result`` unless there is cleanup to do: the woken caller needs
        the interpreter lock, and every bytecode run here after waking it delays it.
        """
        me = self.me
        task, fn, args, kwargs = item
        if not task.set_running_or_notify_cancel():
            me.cancelled += 1
            me.holding = False
            if me.cleanup:
                self.skipped()
            return
        observer = self.observer
        if me.cleanup:
            self.rules.before_use(self.vitals)  # type: ignore[arg-type]
            if observer is not None:
                observer.began(monotonic(), self.idle_since)
        try:
            result = fn(self.resource, *args, **kwargs)
        except BaseException as exc:
            del fn, args, kwargs
            if observer is not None:  # (before the settle: a caller then sees it ended)
                self.idle_since = now = monotonic()
                observer.ended(now)
            if self.failed(task, exc):
                return
            del exc
        else:
            if observer is not None:
                self.idle_since = now = monotonic()
                observer.ended(now)
            me.completed += 1
            me.holding = False
            del fn, args, kwargs
            try:
                task.set_result(result)
            except BaseException as exc:  # from a done callback: the worker must survive it
                if reaches_caller(exc, in_caller=False):  # pragma: no cover - never here
                    raise
                log.exception("pool %r: a done callback raised", self.shared.name)
            del result
        if me.cleanup:
            self.after_task()

    def skipped(self) -> None:
        """After a task found cancelled, with ``cleanup`` on: a drain marker may have passed
        this worker by while it held the task; retire the resource if it is stale."""
        vitals = self.vitals
        if vitals is not None and self.rules.stale(vitals):
            self.retire(DRAIN)

    def failed(self, task: _Task, exc: BaseException) -> bool:
        """A task raised *exc*: count it and settle its future with it. True if the resource
        was discarded: abort means discard (the task was cut short, so its resource may be
        half-way through something; it never serves another task). The worker carries on."""
        me = self.me
        me.failed += 1
        me.holding = False
        self.settle(task.set_exception, exc)
        abort = discards(type(exc), abort_on=self.shared.abort_on)
        del exc, task
        if not abort:
            return False
        self.retire(ABORT)
        if self.shared.surplus:
            self.claim_place()
        return True

    def settle(self, setter: Callable[[Any], None], value: object) -> None:
        """Settle a future; a done callback's error is logged, never lets the worker die."""
        try:
            setter(value)
        except BaseException as exc:
            if reaches_caller(exc, in_caller=False):  # pragma: no cover - never on a worker
                raise
            log.exception("pool %r: a done callback raised", self.shared.name)

    def after_task(self) -> None:
        """``reset``; then leave if ``resize`` asked for fewer workers, or retire the resource
        if the health rules say it is worn out or drained."""
        shared = self.shared
        reset = shared.lifecycle.reset
        if reset is not None:
            try:
                reset(self.resource)  # type: ignore[arg-type]
            except BaseException as exc:
                if reaches_caller(exc, in_caller=False):  # pragma: no cover - never here
                    raise
                self.me.reset_errors += 1
                log.warning(
                    "pool %r: reset raised; destroying the resource", shared.name, exc_info=True
                )
                self.retire(ERROR)
                if shared.surplus:
                    self.claim_place()
                return
        if shared.surplus and self.claim_place():
            self.discard(None)  # the worker stops: not a retirement
            return
        vitals = self.vitals
        assert vitals is not None
        reason = self.rules.after_use(vitals, monotonic())
        if reason is not None:
            self.retire(reason)

    def checked(self, vitals: Vitals, now: float) -> bool:
        """Run ``check``: is the resource still viable? (False counts a check failure.)"""
        assert self.check is not None
        try:
            ok = bool(self.check(self.resource))  # type: ignore[arg-type]
        except BaseException as exc:
            if reaches_caller(exc, in_caller=False):  # pragma: no cover - never here
                raise
            log.warning(
                "pool %r: check raised; replacing the resource", self.shared.name, exc_info=True
            )
            ok = False
        if not ok:
            self.me.check_failures += 1
        return ok

    def viable(self) -> bool:
        """Run ``check`` if the health rules ask for it now; on failure retire the resource."""
        vitals = self.vitals
        assert vitals is not None
        now = monotonic()
        if not self.rules.check_before_use(vitals, now):
            return True
        if self.checked(vitals, now):
            self.rules.passed_check(vitals, now)
            return True
        self.retire(CHECK)
        return False

    def create(self, *, trusted: bool) -> bool:
        """One attempt at making this worker's resource.

        A resource made for the task in hand is *trusted*: used without a check, since a
        check that always fails must not make the worker spin. One made ahead, at start-up or
        after a replacement, may sit idle for long, so it is checked like any other (subject
        to ``check_after``, counted from its creation).

        A failure is logged with its traceback when it starts a streak; later ones in one
        line each (one per backoff step), so a ``create`` that keeps failing cannot flood the
        log.
        """
        shared = self.shared
        me = self.me
        try:
            resource = shared.lifecycle.create()
        except BaseException as exc:
            if reaches_caller(exc, in_caller=False):  # pragma: no cover - never here
                raise
            me.create_errors += 1
            retry = self.supply.failed(monotonic(), exc)
            me.retry_at = retry.at
            me.streak = retry.failures
            log_create_failure(shared.name, retry, exc)
            return False
        self.resource = resource
        now = monotonic()
        vitals = self.vitals = self.rules.born(now, trusted=trusted)
        self.idle_since = None if trusted else now
        self.supply.succeeded()
        me.streak = 0
        me.created += 1
        me.generation = vitals.generation  # before ``has``: see _Shared.moved_on
        me.has = True
        return True

    def wait_for_resource(self, task: _Task) -> bool:
        """Retry ``create`` for *task* until it succeeds (True) or the task must give up: its
        ``timeout`` passed, or the pool is stopping (False: the future is settled)."""
        shared = self.shared
        deadline = None if shared.timeout is None else task.since + shared.timeout
        while True:
            if shared.cancel_pending or task.cancelled():
                task.cancel()
                self.me.cancelled += 1
                self.me.holding = False
                task.set_running_or_notify_cancel()  # wakes wait() and as_completed()
                return False
            stopping = shared.stopping.is_set()
            step, until = self.supply.next_step(monotonic(), deadline, stopping=stopping)
            if step == CREATE:
                if self.create(trusted=True):
                    return True
                continue
            if step == GIVE_UP:
                self.fail_unserved(task, stopping)
                return False
            # Sleep, but wake for what changes the plan: the shutdown, then a cancel_pending.
            wake = shared.cancelling if stopping else shared.stopping
            wake.wait(max(0.0, until - monotonic()))

    def fail_unserved(self, task: _Task, stopping: bool) -> None:
        """Settle a task no resource could be made for, chaining the last create error."""
        shared = self.shared
        last = self.supply.last_error
        error: Exception
        if stopping:
            error = PoolClosed(
                f"pool {shared.name!r} shut down before a resource could be created for this"
                f" task (last create error: {last!r})"
            )
        else:
            error = PoolTimeout(
                f"pool {shared.name!r}: no resource for this task within {shared.timeout} s;"
                f" creating one keeps failing (last error: {last!r})"
            )
        error.__cause__ = last
        if task.set_running_or_notify_cancel():
            self.me.failed += 1
            self.me.holding = False
            self.settle(task.set_exception, error)
        else:
            self.me.cancelled += 1

    def retire(self, reason: str) -> None:
        """Destroy the resource for *reason* (a retirement: it will be replaced)."""
        log.debug("pool %r: retiring a resource (%s)", self.shared.name, reason)
        self.me.retired[reason] += 1
        self.me.replaced += 1
        self.discard(reason)

    def discard(self, reason: str | None) -> None:
        """Destroy the resource (in this thread); errors are counted and logged. *reason*:
        why it is retired, or None when the worker stops."""
        me = self.me
        shared = self.shared
        resource = self.resource
        self.resource = None
        self.vitals = None
        me.has = False
        me.destroyed += 1
        if shared.watchers:
            shared.notify_moved()
        destroy = shared.lifecycle.destroy
        if destroy is None:
            return
        try:
            destroy(resource)  # type: ignore[arg-type]
        except BaseException as exc:
            if reaches_caller(exc, in_caller=False):  # pragma: no cover - never here
                raise
            me.destroy_errors += 1
            log.warning("pool %r: destroy raised", shared.name, exc_info=True)


def _work(shared: _Shared[T], me: _Worker) -> None:
    """A worker thread's target: it references the shared state, never the pool."""
    _Runner(shared, me).run()


# -- the pool -------------------------------------------------------------------------------------


class WorkerPool(WorkerOptions[T]):
    """N worker threads, each owning one resource; tasks run as ``fn(resource, *args)``.

    ``create`` is a :class:`~respool.Lifecycle` or a bare callable plus ``reset=``,
    ``check=``, ``destroy=``. Options:

    * ``workers`` — threads, hence resources (default 4, as ``FixedPool``'s ``size``). Each
      holds an expensive resource (a database connection, say): size it to what the resource's
      server can take, not to the number of cores.
    * ``max_pending`` — tasks allowed to queue (not yet running); ``None`` (default): no
      bound. It must be at least 1: with no queue at all a submit could succeed only at the
      instant a worker is idle, which a queue cannot promise without a hand-shake per task.
    * ``on_full`` — when the queue is full, ``"block"`` waits up to ``timeout`` for room
      (then ``PoolTimeout``), ``"reject"`` raises ``PoolFull`` at once. Waiting submitters
      are served strictly in arrival order.
    * ``timeout`` — seconds a blocked submit waits for room, and that a queued task waits for
      its worker's resource while ``create`` keeps failing (then its future gets
      ``PoolTimeout`` chained to the last create error). Default 30, as on the free lists;
      ``None``: forever; ``0``: never.
    * ``check_after`` — run ``check`` only on a resource idle at least this long (default 0:
      before every task). A resource created for the task in hand is not checked (a check
      that always fails must not spin); one made ahead of time is, idle time counting from
      its creation (or its last passed check).
    * ``max_uses`` — destroy and recreate the resource after this many tasks (the worker
      thread stays); ``max_tasks_per_resource`` is the same option under its older name
      (give one or the other). ``None`` (default): no limit.
    * ``max_lifetime`` — seconds a resource may live; each resource gets its own deadline,
      shortened at random by up to 10% so that resources made together are not all replaced
      at once. A resource past it is replaced after the task that finds it expired (never
      during a task), or by its idle worker the moment the deadline passes.
    * ``keepalive`` — with a ``check``: an idle worker checks its resource at least this
      often and replaces it if dead, before a task meets it. Without a ``check`` it has
      nothing to run and is ignored.
    * ``name`` — used in thread names, logs and errors.
    * ``observe`` — record how the pool is used (a use is a task run by a worker: idle gaps
      between a worker's tasks, workers busy over time) for ``stats().usage`` (default
      False). It costs a lock and two clock reads per task, on the general worker loop
      instead of the bare one; off, it costs nothing.

    Idle workers with ``max_lifetime`` or ``keepalive`` sleep exactly until their resource's
    next deadline; without them they wait for work with no timeout. At runtime,
    :meth:`resize` changes the number of workers and :meth:`drain` replaces every resource
    made before the call, neither failing nor losing a task.

    A task that ends with an ``Exception`` leaves its resource to ``reset`` and the next task.
    One cut short (a ``BaseException`` that is not an ``Exception``, a ``TimeoutError`` other
    than ``PoolTimeout``, or an error the lifecycle lists in ``abort_on``) may have left it
    mid-operation: it is destroyed and replaced (``retired["abort"]``), never reused.
    """

    def _build(self, rules: Rules) -> None:
        """The pool's shared state, and its worker threads, started here."""
        lifecycle = self.lifecycle
        shared: _Shared[T] = _Shared(
            lifecycle,
            workers=self.workers,
            max_pending=self.max_pending,
            timeout=self.timeout,
            rules=rules,
            name=self.name,
            cleanup=self._cleans_up(rules),
        )
        shared.observer = self._new_observer()
        self._shared = shared
        self._bind()
        with _live_lock:
            _live.add(shared)
        weakref.finalize(self, shared.abandon).atexit = False
        _fork.register(self)
        try:
            self._start(list(shared.workers), 0)
        except BaseException:
            shared.shutdown(wait=True, cancel_pending=True)
            raise

    def _bind(self) -> None:
        """Keep what ``submit`` uses on the pool itself: its hot path then does without a
        lookup through the shared state for each (again after a fork replaced them)."""
        shared = self._shared
        self._lock = shared.lock
        self._nowait = shared.admission.submit_nowait
        self._put = shared.queue.put
        self._on_cancel = shared.on_cancel

    def _start(self, workers: list[_Worker], first: int) -> None:
        """Start a thread for each of *workers*, numbered from *first*. If one cannot start,
        it and the rest are marked gone (never started) and the error propagates."""
        shared = self._shared
        for index, me in enumerate(workers):
            thread = threading.Thread(
                target=_work, args=(shared, me), name=f"{self.name}-{first + index}", daemon=True
            )
            me.thread = thread
            try:
                thread.start()
            except BaseException:
                with shared.lock:
                    for unstarted in workers[index:]:
                        unstarted.alive = False
                        unstarted.thread = None
                    shared.target -= len(workers) - index
                raise

    # -- runtime changes ------------------------------------------------------------------------

    def resize(self, workers: int) -> None:
        """Change the number of workers to *workers* (at least 1), now.

        Growing starts new workers at once, each creating its resource in its own thread.
        Shrinking never interrupts a task: the workers that leave finish the task in hand
        (or leave straight away if idle), destroy their resource in their own thread and
        end. Queued tasks stay queued for the workers that remain; none is lost. Returns
        without waiting. After :meth:`shutdown`: ``PoolClosed``.
        """
        workers = _validate.integer("workers", workers, minimum=1)
        shared = self._shared
        with shared.lock:
            if shared.admission.closed:
                raise PoolClosed(
                    f"pool {self.name!r} {shared.admission.closed_reason}: it cannot be resized"
                )
            change = workers - shared.target
            shared.target = workers
            started: list[_Worker] = []
            if change < 0:
                shared.surplus -= change
                for worker in shared.workers:
                    worker.cleanup = True  # a busy worker looks at ``surplus`` after its task
                shared.put_controls(_SHRINK, -change)
            elif change > 0:
                kept = min(shared.surplus, change)  # leavers not yet gone may stay instead
                shared.surplus -= kept
                started = [_Worker(cleanup=shared.cleanup) for _ in range(change - kept)]
                first = len(shared.workers)
                shared.workers.extend(started)
            self.workers = workers
        if started:
            self._start(started, first)

    def drain(self) -> None:
        """Replace every resource made before this call, without failing any task.

        Each is retired at its worker's next idle moment (at once, for a worker waiting for
        work) or after the task it is running, and a new one is made in its place; tasks keep
        running meanwhile. Returns without waiting; ``stats().retired["drain"]`` counts them.
        Does nothing once the pool is shut down (its resources are being destroyed anyway).
        """
        shared = self._shared
        with shared.lock:
            if shared.admission.closed:
                return
            for worker in shared.workers:
                worker.cleanup = True  # a busy worker compares generations after its task
            shared.rules.drain()
            present = sum(1 for w in shared.workers if w.alive and not w.leaving)
            shared.put_controls(_DRAIN, max(0, present - shared.drains_queued))

    # -- submitting -----------------------------------------------------------------------------

    def submit(
        self, fn: Callable[Concatenate[T, P], R], /, *args: P.args, **kwargs: P.kwargs
    ) -> Future[R]:
        """Queue ``fn(resource, *args, **kwargs)`` to run on a worker; return its future.

        When the queue is full: waits (``on_full="block"``, up to ``timeout``, then
        ``PoolTimeout``) or raises ``PoolFull`` (``"reject"``). After shutdown: ``PoolClosed``.
        An exception in ``fn`` reaches only this future.
        """
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {fn!r}")
        task: _Task = WorkItem(monotonic(), self._on_cancel)
        item = (task, fn, args, kwargs)
        with self._lock:
            if self._nowait(task):
                self._put(item)
                return task
        self._submit_slow(item, self._reject, self.timeout)
        return task

    def _submit_slow(self, item: _Item, reject: bool, timeout: float | None) -> None:
        """No room (or someone waits ahead, or the pool is closed): reject or wait.

        A waiting submitter blocks on a lock of its own, released by whichever move admits
        or refuses it. Interrupted while waiting (an asynchronous exception, Ctrl-C), it
        leaves the line; a task admitted meanwhile is cancelled, since its future never
        reaches the caller, and one refused meanwhile was never queued: neither is lost nor
        counted twice.
        """
        shared = self._shared
        admission = shared.admission
        task = item[0]
        with shared.lock:
            if admission.submit_nowait(task):  # raises PoolClosed
                shared.queue.put(item)
                return
            if reject:
                admission.reject()
                raise PoolFull(
                    f"pool {self.name!r} has {self.max_pending} tasks queued (max_pending)"
                )
            if timeout is not None and timeout <= 0:
                admission.reject(timed_out=True)
                raise PoolTimeout(f"pool {self.name!r} has no room in its queue and may not wait")
            parked = _Parked(item)
            waiter = admission.wait(task, parked, monotonic())
            if waiter.state == ADMITTED:
                shared.queue.put(item)
                return
        woken = False
        try:
            if timeout is None:
                woken = parked.lock.acquire()
            else:
                woken = parked.lock.acquire(timeout=min(timeout, threading.TIMEOUT_MAX))
            if not woken:
                with shared.lock:
                    state = admission.withdraw(waiter, timed_out=True)
                if state == LEFT:
                    raise PoolTimeout(f"no room in pool {self.name!r}'s queue before the deadline")
        except PoolTimeout:
            task.cancel()  # refused: it was never queued, so nothing is counted
            raise
        except BaseException:
            with shared.lock:
                admission.withdraw(waiter, timed_out=False)
            task.cancel()  # a queued one becomes a ghost (cancelled); a refused one is no-one's
            raise
        if waiter.state == CLOSED:
            task.cancel()
            raise PoolClosed(f"pool {self.name!r} {admission.closed_reason} while waiting")

    def map(
        self, fn: Callable[..., R], *iterables: Iterable[Any], timeout: float | None = None
    ) -> Iterator[R]:
        """Lazily ``fn(resource, *items)`` for items taken in step from *iterables*.

        Results come in input order. At most ``max_pending`` (or ``2 * workers`` when
        unbounded) items are in flight — submitted and not yet yielded — and the next input is
        pulled only when a result has been taken, so an endless iterator is fine. *timeout*
        bounds the whole iteration, as in ``Executor.map`` (``PoolTimeout``). ``map`` never
        raises ``PoolFull``: it waits for room, within that deadline, whatever ``on_full``
        says. Closing the iterator (``break``, garbage collection) cancels what has not
        started and pulls no more input.
        """
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {fn!r}")
        timeout = _validate.seconds("timeout", timeout)
        window = self.max_pending or 2 * self.workers
        deadline = None if timeout is None else monotonic() + timeout
        return self._map(fn, zip(*iterables, strict=False), window, deadline)

    def _map(
        self,
        fn: Callable[..., R],
        inputs: Iterator[tuple[Any, ...]],
        window: int,
        deadline: float | None,
    ) -> Iterator[R]:
        on_cancel = self._shared.on_cancel

        def submit(args: tuple[Any, ...], timeout: float | None) -> Future[R]:
            task: _Task = WorkItem(monotonic(), on_cancel, False)
            self._submit_slow((task, fn, args, {}), False, timeout)
            return task

        return ordered_map(submit, inputs, window, deadline, self.name)

    # -- stopping -------------------------------------------------------------------------------

    def shutdown(self, wait: bool = True, cancel_pending: bool = False) -> None:
        """Stop accepting work; queued tasks run (or are cancelled with ``cancel_pending``).

        Then each worker destroys its resource in its own thread and ends; ``wait=True``
        returns only after they all have (except when called from one of the pool's own
        tasks, which never waits: two tasks doing so would wait for each other). Tasks held
        by a worker whose ``create`` keeps failing get ``PoolClosed`` after one last attempt.
        Calling it again is harmless (a later ``cancel_pending=True`` still cancels whatever
        is queued). Cancelling a queued task's future frees its ``max_pending`` slot at once.
        """
        self._shared.shutdown(wait, cancel_pending)

    @property
    def closed(self) -> bool:
        """True once :meth:`shutdown` has been called."""
        return self._shared.admission.closed

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown(wait=True)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"workers={self.workers}"
        return f"<WorkerPool {self.name!r} {state}>"

    # -- figures --------------------------------------------------------------------------------

    def stats(self) -> WorkerStats:
        """A snapshot of the pool's counts (see :class:`WorkerStats` for its invariants)."""
        shared = self._shared
        with shared.lock:
            admission = shared.admission
            submitted = admission.admitted
            rejected = admission.rejected
            timeouts = admission.timeouts
            purged = admission.purged
            ghosts = admission.ghosts
            waiting = admission.waiting
            ws = list(shared.workers)
            if shared.bounded:
                queued = admission.live
            else:  # takes go unreported: count what the queue holds, markers aside
                markers = shared.stops_put + shared.controls_put - sum(w.controls for w in ws)
                queued = max(0, shared.queue.qsize() - max(0, markers))
        alive = sum(1 for w in ws if w.alive)
        busy = sum(1 for w in ws if w.holding)
        created = sum(w.created for w in ws)
        destroyed = sum(w.destroyed for w in ws)
        retired = dict.fromkeys(RETIRE_REASONS, 0)
        for w in ws:
            for reason, count in w.retired.items():
                retired[reason] += count
        now = monotonic()
        failing = [w for w in ws if w.alive and w.streak]
        retry_in = min((max(0.0, w.retry_at - now) for w in failing), default=0.0)
        return WorkerStats(
            name=self.name,
            workers=alive,
            busy=busy,
            idle=alive - busy,
            queued=queued,
            waiting=waiting,
            submitted=submitted,
            completed=sum(w.completed for w in ws),
            failed=sum(w.failed for w in ws),
            cancelled=purged + ghosts + sum(w.cancelled for w in ws),
            rejected=rejected,
            timeouts=timeouts,
            resources=created - destroyed,
            created=created,
            destroyed=destroyed,
            replaced=sum(w.replaced for w in ws),
            create_errors=sum(w.create_errors for w in ws),
            reset_errors=sum(w.reset_errors for w in ws),
            check_failures=sum(w.check_failures for w in ws),
            destroy_errors=sum(w.destroy_errors for w in ws),
            retired=retired,
            create_failures=max((w.streak for w in failing), default=0),
            create_retry_in=retry_in,
            usage=None if shared.observer is None else shared.observer.snapshot(now),
        )

    def _after_fork_in_child(self) -> None:
        """The child has none of the worker threads: refuse work, clearly (see module doc)."""
        shared = self._shared
        shared.lock = threading.Lock()
        shared.moved = threading.Condition(shared.lock)
        shared.queue = SimpleQueue()
        shared.stop_token = []
        shared.stops_put = 0
        shared.controls_put = 0
        shared.drains_queued = 0
        shared.surplus = 0
        shared.watchers = 0
        shared.target = 0
        shared.stopping = threading.Event()
        shared.cancelling = threading.Event()
        # The parent's tasks and resources are not the child's: start the counts afresh, so
        # the stats invariants hold here too (no workers, no resources, nothing queued).
        admission: Admission[_Task] = Admission(name=shared.name, max_pending=self.max_pending)
        admission.close(
            "was inherited through os.fork(): its worker threads exist only in the parent;"
            " create a new WorkerPool in the child"
        )
        shared.admission = admission
        dead = [_Worker(cleanup=False) for _ in shared.workers]
        for worker in dead:
            worker.alive = False
        shared.workers = dead
        shared.observer = self._new_observer()
        self._bind()
