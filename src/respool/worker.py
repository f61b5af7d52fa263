"""``WorkerPool``: N worker threads, each owning one resource for its whole life.

This is the article's *quick reuse in a static pool*: the expense of making a resource is paid
once per worker, before it accepts work, and the resource never changes hands. It closes the
gaps users hit when they build the same thing from ``ThreadPoolExecutor(initializer=...)`` and
``threading.local``:

* the resource is created, reset, checked and destroyed **in its worker's own thread**, so
  thread-affine resources (``sqlite3`` connections) work, and ``destroy`` really runs when the
  worker stops (a ``threading.local`` value is simply dropped: buffers are never flushed);
* a failed ``create`` is retried with backoff while tasks wait: the worker is never lost, and
  tasks that wait past ``timeout`` fail with an error chained to the last create error;
* the queue is bounded (``max_pending``) with an explicit policy when full (``on_full``);
* :meth:`WorkerPool.map` is lazy: it pulls input only as results are consumed.

Design
------
*Tasks* travel through one ``queue.SimpleQueue`` (written in C: the cheapest hand-off between
threads the standard library has). The submit side shares a lock with ``shutdown`` only:
holding it while checking ``closed`` and putting the task is what makes "a submit either
raises ``PoolClosed`` or its future completes" hold without any further protocol, and it costs
one uncontended lock round trip. Workers never take that lock on their hot path.

*The bound* is the queue's own length (``SimpleQueue.qsize()``, exact and cheap): submitters
compare it with ``max_pending`` under the lock, so two of them cannot both take the last slot,
while workers only ever shrink it. Submitters that must wait queue up in FIFO order; a worker
that dequeues a task looks at that waiter queue *after* its ``get`` (publish, then look),
while a submitter registers as a waiter *before* it looks at the length again (Dekker's
handshake): whichever runs second sees the other, so a freed slot and a waiter never miss each
other. A worker serves waiters by enqueuing their task for them, so a newcomer can never
overtake a submitter that is already waiting.

*Counters* that workers change live in each worker's own :class:`_Worker` record and are
written by that thread only (single writer: no lost updates, no lock); :meth:`WorkerPool.stats`
sums them. Counters the submit side changes are kept under the lock.

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
import itertools
import logging
import os
import random
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from queue import Empty, SimpleQueue
from time import monotonic
from types import TracebackType
from typing import Any, Concatenate, Final, Generic, ParamSpec, Self, TypeVar

from respool import _fork, _validate
from respool._future import TaskFuture
from respool.errors import PoolClosed, PoolFull, PoolTimeout
from respool.lifecycle import Lifecycle, coerce
from respool.stats import WorkerStats

__all__ = ["WorkerPool", "WorkerStats"]

T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")

log = logging.getLogger("respool")

_ON_FULL: Final = ("block", "reject")
_CANCELLED_STATES: Final = ("CANCELLED", "CANCELLED_AND_NOTIFIED")
_names = itertools.count(1)  # next() on it is atomic: safe for pools made in threads

#: Retry delays after a failed ``create``: the first is about ``_RETRY_BASE`` seconds, each next
#: one doubles, up to ``_RETRY_CAP``; each is jittered down by up to half, so workers that failed
#: together (a database restart) do not retry in lockstep.
_RETRY_BASE: Final = 0.05
_RETRY_CAP: Final = 2.0

#: What a worker finds in the queue: a task, or ``None`` meaning "stop". A task is a plain tuple
#: (future, fn, args, kwargs, enqueued at): the cheapest thing to build on the hot path.
_Task = tuple[TaskFuture[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any], float]


def retry_delay(failures: int, rng: Callable[[float, float], float] = random.uniform) -> float:
    """Seconds to wait after the *failures*-th consecutive failed ``create`` (1, 2, ...)."""
    ceiling = min(_RETRY_CAP, _RETRY_BASE * 2 ** min(failures - 1, 30))
    return rng(ceiling / 2, ceiling)


class _Worker:
    """One worker's record. Only its own thread writes it (single writer: no lock needed);
    ``stats()`` reads it from other threads."""

    __slots__ = (
        "alive",
        "cancelled",
        "check_failures",
        "completed",
        "create_errors",
        "created",
        "destroy_errors",
        "destroyed",
        "failed",
        "has",
        "holding",
        "replaced",
        "reset_errors",
        "stopped",
        "thread",
    )

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None
        self.alive = True
        #: Took its stop marker off the queue (it is destroying its resource, or gone).
        self.stopped = False
        #: True while the worker holds a task it took from the queue.
        self.holding = False
        #: True while the worker has a live resource (others read it to leave tasks to it).
        self.has = False
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


class _Waiter:
    """A submitter waiting for room in the queue; a worker enqueues its task for it."""

    __slots__ = ("handle", "state", "task")

    WAITING: Final = 0
    ADMITTED: Final = 1
    CLOSED: Final = 2

    def __init__(self, task: _Task) -> None:
        self.task = task
        self.state = _Waiter.WAITING
        #: Held until the waiter is served; the submitter sleeps acquiring it.
        self.handle = threading.Lock()
        self.handle.acquire()


class _Shared(Generic[T]):
    """Everything the pool's threads share. Workers reference this, never the pool.

    Invariants (under ``lock``, at rest):

    * ``closed`` implies ``waiters`` is empty and no task is put on ``queue`` any more;
    * ``waiters`` non-empty implies the queue is full (``qsize() >= max_pending``) — a
      submitter only waits while there is no room, and a worker that frees room serves the
      first waiter before anyone else can take it;
    * tasks are put on the queue only under ``lock`` and only while open, so all of them
      precede the stop markers ``shutdown`` puts after closing: draining workers run them all.
    """

    def __init__(
        self,
        lifecycle: Lifecycle[T],
        *,
        workers: int,
        max_pending: int | None,
        timeout: float | None,
        check_after: float,
        max_tasks_per_resource: int | None,
        name: str,
    ) -> None:
        self.lifecycle = lifecycle
        self.name = name
        self.max_pending = max_pending
        self.timeout = timeout
        self.check_after = check_after
        self.max_tasks = max_tasks_per_resource

        self.lock = threading.Lock()
        self.queue: SimpleQueue[_Task | None] = SimpleQueue()
        self.waiters: deque[_Waiter] = deque()
        self.closed = False
        #: Why submit refuses, once closed.
        self.closed_reason = "was shut down"
        #: Set at shutdown: wakes workers sleeping between create attempts.
        self.stopping = threading.Event()
        #: Set by ``shutdown(cancel_pending=True)``: held tasks are cancelled, not run.
        self.cancel_pending = False
        self.cancelling = threading.Event()
        #: Pops once: whoever pops it puts the stop markers (lock-free, so a finalizer can).
        self.stop_token = [True]
        self.stops_put = 0

        #: Tasks still in the queue whose future was cancelled (bounded pools only): they will
        #: never run, so they do not count against ``max_pending``. Under ``lock``.
        self.ghosts = 0

        # Submit-side counters, changed under ``lock``.
        self.submitted = 0
        self.rejected = 0
        self.timeouts = 0
        #: Queued tasks cancelled by ``shutdown(cancel_pending=True)``.
        self.drained = 0

        self.workers = [_Worker() for _ in range(workers)]

    # -- admission (all under ``lock``) -------------------------------------------------------

    def room(self) -> bool:
        """Is there room for one more queued task? (Cancelled ones take none.)"""
        return self.max_pending is None or self.queue.qsize() - self.ghosts < self.max_pending

    def ghost_appeared(self, future: TaskFuture[Any]) -> None:
        """``on_cancel`` of a queued task's future (bounded pools): its slot is free now.

        Runs under the future's condition; the lock order is always future, then pool.
        """
        with self.lock:
            self.ghosts += 1
            self.serve_waiters()

    def unqueued(self, future: TaskFuture[Any]) -> None:
        """A task left the queue (taken by a worker or drained): it is no longer a ghost."""
        with future._condition:
            future.on_cancel = None
            ghost = future._state in _CANCELLED_STATES
        if ghost:
            with self.lock:
                self.ghosts -= 1

    def serve_waiters(self) -> None:
        """Enqueue waiting submitters' tasks, first come first served, while there is room."""
        waiters = self.waiters
        while waiters and self.room():
            waiter = waiters.popleft()
            self.queue.put(waiter.task)
            self.submitted += 1
            waiter.state = _Waiter.ADMITTED
            waiter.handle.release()

    def close(self, reason: str) -> None:
        """Refuse new work from now on; waiting submitters get ``PoolClosed``."""
        if not self.closed:
            self.closed = True
            self.closed_reason = reason
        while self.waiters:
            waiter = self.waiters.popleft()
            waiter.state = _Waiter.CLOSED
            waiter.handle.release()

    # -- stopping (no lock needed) ------------------------------------------------------------

    def put_stops(self) -> None:
        """Put one stop marker per worker after every accepted task (once, from anywhere).

        Lock-free on purpose: the garbage collector may run the pool's finalizer in any
        thread, even one that holds ``lock``.
        """
        try:
            self.stop_token.pop()
        except IndexError:
            return
        self.closed = True
        self.stopping.set()
        for _ in self.workers:
            self.queue.put(None)
        self.stops_put = len(self.workers)

    def drain(self) -> int:
        """Cancel every queued task; return how many. Stop markers found are put back."""
        cancelled = stops = 0
        while True:
            try:
                task = self.queue.get_nowait()
            except Empty:
                break
            if task is None:
                stops += 1
                continue
            future = task[0]
            if self.max_pending is not None:
                self.unqueued(future)
            try:
                future.cancel()
                future.set_running_or_notify_cancel()  # wakes wait() and as_completed()
            except BaseException:  # a done callback's: it must not stop the shutdown
                log.exception("pool %r: a done callback raised", self.name)
            cancelled += 1
        for _ in range(stops):
            self.queue.put(None)
        return cancelled

    def join(self) -> None:
        """Wait for every worker thread to end.

        Not when called from one of the workers: it would wait for the others, and two tasks
        shutting their pool down at once would wait for each other forever.
        """
        me = threading.current_thread()
        if any(worker.thread is me for worker in self.workers):
            return
        for worker in self.workers:
            thread = worker.thread
            if thread is not None and thread.is_alive():
                thread.join()

    def anyone_else_has(self, me: _Worker) -> bool:
        """Does another worker hold a live resource (and so can run tasks)?"""
        return any(worker.has for worker in self.workers if worker is not me)

    def shutdown(self, wait: bool, cancel_pending: bool) -> None:
        with self.lock:
            self.close("was shut down")
            if cancel_pending:
                self.cancel_pending = True
        if cancel_pending:
            self.cancelling.set()
            drained = self.drain()
            with self.lock:
                self.drained += drained
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

    The resource is created, checked, reset and destroyed only here, in this thread. A
    worker never dies of a callback's failure: every one of them is caught, counted, logged,
    and answered by replacing the resource (or by failing the one task concerned).
    """

    def __init__(self, shared: _Shared[T], me: _Worker) -> None:
        self.shared = shared
        self.me = me
        self.resource: T | None = None
        self.have = False
        #: Just created, never used: ``check`` is skipped (a check that always fails must not
        #: make the worker spin creating resources).
        self.fresh = False
        self.check = shared.lifecycle.check
        #: Anything to do after a task (reset, recycling, idle clock)?
        self.cleanup = bool(
            shared.lifecycle.reset is not None or shared.max_tasks is not None or shared.check_after
        )
        self.uses = 0
        self.idle_since = 0.0
        self.failures = 0
        self.retry_at = 0.0
        #: Made its one last create attempt since the shutdown began.
        self.tried_at_stop = False
        self.last_error: BaseException | None = None

    def run(self) -> None:
        shared = self.shared
        me = self.me
        get = shared.queue.get
        waiters = shared.waiters
        check = self.check
        bounded = shared.max_pending is not None
        try:
            while True:
                if self.have:
                    task = get()
                elif shared.stopping.is_set():
                    # No eager create now: a resource made only to be destroyed is waste. A
                    # task still queued makes one itself (wait_for_resource).
                    task = get()
                elif monotonic() >= self.retry_at and self.create(for_task=False):
                    continue
                elif shared.anyone_else_has(me):
                    # Between create attempts, while another worker can run tasks: leave
                    # them to it rather than hold one hostage to this worker's retries.
                    shared.stopping.wait(max(0.0, self.retry_at - monotonic()))
                    continue
                else:
                    # No worker can run anything: take a task to hold (it fails past its
                    # timeout if create keeps failing), or retry when due.
                    try:
                        task = get(timeout=max(0.0, self.retry_at - monotonic()))
                    except Empty:
                        continue
                if task is None:
                    me.stopped = True
                    break
                me.holding = True
                if bounded:
                    shared.unqueued(task[0])
                if waiters:
                    with shared.lock:
                        shared.serve_waiters()
                if (self.have and (check is None or self.fresh)) or self.prepare(task):
                    self.execute(*task)
                del task
        finally:
            if self.have:
                self.discard(replace=False)
            me.holding = False
            me.alive = False

    def prepare(self, task: _Task) -> bool:
        """Obtain a viable resource for *task*: False if the task was settled without one
        (cancelled, or failed because none could be made in time)."""
        while True:
            if not self.have and not self.wait_for_resource(task):
                self.me.holding = False
                return False
            if self.check is None or self.fresh or self.viable():
                return True

    def execute(
        self,
        future: Future[Any],
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        _since: float,
    ) -> None:
        """Run one task on this worker's resource and settle its future.

        The counters and ``holding`` change *before* the future is settled, so that a caller
        who has its result reads stats that already count it. Nothing but the loop back to
        ``get`` follows ``set_result`` unless there is cleanup to do: the woken caller needs
        the interpreter lock, and every bytecode run here after waking it delays it.
        """
        me = self.me
        if not future.set_running_or_notify_cancel():
            me.cancelled += 1
            me.holding = False
            return
        self.fresh = False
        self.uses += 1
        try:
            result = fn(self.resource, *args, **kwargs)
        except Exception as exc:
            me.failed += 1
            me.holding = False
            self.settle(future.set_exception, exc)
            del exc
        except BaseException as exc:
            # Abort means discard: the task was cut short, so its resource may be half-way
            # through something; it never serves another task. The worker itself carries on.
            me.failed += 1
            me.holding = False
            self.settle(future.set_exception, exc)
            del exc
            self.discard(replace=True)
            return
        else:
            me.completed += 1
            me.holding = False
            try:
                future.set_result(result)
            except BaseException:  # from a done callback: the worker must survive it
                log.exception("pool %r: a done callback raised", self.shared.name)
            del result
        if self.cleanup:
            self.after_task()

    def settle(self, setter: Callable[[Any], None], value: object) -> None:
        """Settle a future; a done callback's error is logged, never lets the worker die."""
        try:
            setter(value)
        except BaseException:
            log.exception("pool %r: a done callback raised", self.shared.name)

    def after_task(self) -> None:
        """``reset``, then recycle the resource if it served its quota."""
        shared = self.shared
        reset = shared.lifecycle.reset
        if reset is not None:
            try:
                reset(self.resource)  # type: ignore[arg-type]
            except BaseException:
                self.me.reset_errors += 1
                log.warning(
                    "pool %r: reset raised; destroying the resource", shared.name, exc_info=True
                )
                self.discard(replace=True)
                return
        if shared.max_tasks is not None and self.uses >= shared.max_tasks:
            self.discard(replace=True)
            return
        if shared.check_after:
            self.idle_since = monotonic()

    def viable(self) -> bool:
        """Run ``check`` if the resource has been idle long enough; on failure destroy it."""
        shared = self.shared
        if shared.check_after and monotonic() - self.idle_since < shared.check_after:
            return True
        check = shared.lifecycle.check
        assert check is not None
        try:
            ok = bool(check(self.resource))  # type: ignore[arg-type]
        except BaseException:
            log.warning("pool %r: check raised; replacing the resource", shared.name, exc_info=True)
            ok = False
        if not ok:
            self.me.check_failures += 1
            self.discard(replace=True)
        return ok

    def create(self, *, for_task: bool) -> bool:
        """One attempt at making this worker's resource.

        A resource made *for_task* (for the task in hand) is used without a check: a check
        that always fails must not make the worker spin. One made ahead, at start-up or after
        a replacement, may sit idle for long, so it is checked like any other (subject to
        ``check_after``, counted from its creation).
        """
        shared = self.shared
        try:
            resource = shared.lifecycle.create()
        except BaseException as exc:
            self.me.create_errors += 1
            self.failures += 1
            self.last_error = exc
            delay = retry_delay(self.failures)
            self.retry_at = monotonic() + delay
            log.warning(
                "pool %r: create failed (%d in a row); retrying in %.2f s",
                shared.name,
                self.failures,
                delay,
                exc_info=True,
            )
            return False
        self.resource = resource
        self.have = True
        self.fresh = for_task
        self.uses = 0
        self.failures = 0
        self.last_error = None
        self.me.created += 1
        self.me.has = True
        self.idle_since = monotonic()
        return True

    def wait_for_resource(self, task: _Task) -> bool:
        """Retry ``create`` for *task* until it succeeds (True) or the task must give up: its
        ``timeout`` passed, or the pool is stopping (False: the future is settled)."""
        shared = self.shared
        future = task[0]
        deadline = None if shared.timeout is None else task[4] + shared.timeout
        while True:
            if shared.cancel_pending or future.cancelled():
                future.cancel()
                self.me.cancelled += 1
                self.me.holding = False
                future.set_running_or_notify_cancel()  # wakes wait() and as_completed()
                return False
            now = monotonic()
            stopping = shared.stopping.is_set()
            # Shutting down: one last attempt now, then give up, whatever the timeout (a
            # shutdown must not wait out a long timeout for a create that keeps failing).
            last_chance = stopping and not self.tried_at_stop
            if now >= self.retry_at or last_chance:
                self.tried_at_stop = stopping
                if self.create(for_task=True):
                    return True
            if stopping or (deadline is not None and now >= deadline):
                self.fail_unserved(future, stopping)
                return False
            until = self.retry_at if deadline is None else min(self.retry_at, deadline)
            # Sleep, but wake for what changes the plan: the shutdown, then a cancel_pending.
            wake = shared.cancelling if stopping else shared.stopping
            wake.wait(max(0.0, until - monotonic()))

    def fail_unserved(self, future: Future[Any], stopping: bool) -> None:
        """Settle a task no resource could be made for, chaining the last create error."""
        shared = self.shared
        error: Exception
        if stopping:
            error = PoolClosed(
                f"pool {shared.name!r} shut down before a resource could be created for this"
                f" task (last create error: {self.last_error!r})"
            )
        else:
            error = PoolTimeout(
                f"pool {shared.name!r}: no resource for this task within {shared.timeout} s;"
                f" creating one keeps failing (last error: {self.last_error!r})"
            )
        error.__cause__ = self.last_error
        if future.set_running_or_notify_cancel():
            self.me.failed += 1
            self.me.holding = False
            self.settle(future.set_exception, error)
        else:
            self.me.cancelled += 1

    def discard(self, *, replace: bool) -> None:
        """Destroy the resource (in this thread); errors are counted and logged."""
        resource = self.resource
        self.resource = None
        self.have = False
        self.me.has = False
        self.retry_at = 0.0
        self.me.destroyed += 1
        if replace:
            self.me.replaced += 1
        destroy = self.shared.lifecycle.destroy
        if destroy is None:
            return
        try:
            destroy(resource)  # type: ignore[arg-type]
        except BaseException:
            self.me.destroy_errors += 1
            log.warning("pool %r: destroy raised", self.shared.name, exc_info=True)


def _work(shared: _Shared[T], me: _Worker) -> None:
    """A worker thread's target: it references the shared state, never the pool."""
    _Runner(shared, me).run()


# -- the pool -------------------------------------------------------------------------------------


class WorkerPool(Generic[T]):
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
      ``PoolTimeout`` chained to the create error). ``None`` (default): forever; ``0``: never.
    * ``check_after`` — run ``check`` only on a resource idle at least this long (default 0:
      before every task). A resource created for the task in hand is not checked (a check
      that always fails must not spin); one made ahead of time is, idle time counting from
      its creation.
    * ``max_tasks_per_resource`` — destroy and recreate the resource after this many tasks
      (the worker thread stays).
    * ``name`` — used in thread names, logs and errors.
    """

    def __init__(
        self,
        create: Lifecycle[T] | Callable[[], T],
        workers: int = 4,
        *,
        max_pending: int | None = None,
        on_full: str = "block",
        timeout: float | None = None,
        reset: Callable[[T], object] | None = None,
        check: Callable[[T], object] | None = None,
        destroy: Callable[[T], object] | None = None,
        check_after: float = 0.0,
        max_tasks_per_resource: int | None = None,
        name: str | None = None,
    ) -> None:
        lifecycle = coerce(create, reset=reset, check=check, destroy=destroy)
        self.lifecycle: Lifecycle[T] = lifecycle
        self.workers = _validate.integer("workers", workers, minimum=1)
        self.max_pending = _validate.optional_integer("max_pending", max_pending, minimum=1)
        self.on_full = _validate.choice("on_full", on_full, _ON_FULL)
        self.timeout = _validate.seconds("timeout", timeout)
        checked_after = _validate.seconds("check_after", check_after, allow_none=False)
        assert checked_after is not None
        self.check_after: float = checked_after
        self.max_tasks_per_resource = _validate.optional_integer(
            "max_tasks_per_resource", max_tasks_per_resource, minimum=1
        )
        if name is None:
            name = f"WorkerPool-{next(_names)}"
        self.name = _validate.text("name", name)
        self._reject = self.on_full == "reject"

        shared: _Shared[T] = _Shared(
            lifecycle,
            workers=self.workers,
            max_pending=self.max_pending,
            timeout=self.timeout,
            check_after=self.check_after,
            max_tasks_per_resource=self.max_tasks_per_resource,
            name=self.name,
        )
        self._shared = shared
        self._bounded = self.max_pending is not None
        self._stamp = self.timeout is not None  # tasks need their enqueue time
        with _live_lock:
            _live.add(shared)
        weakref.finalize(self, shared.abandon).atexit = False
        _fork.register(self)
        for index, me in enumerate(shared.workers):
            thread = threading.Thread(
                target=_work, args=(shared, me), name=f"{self.name}-{index}", daemon=True
            )
            me.thread = thread
            try:
                thread.start()
            except BaseException:
                for unstarted in shared.workers[index:]:
                    unstarted.alive = False
                    unstarted.thread = None
                shared.shutdown(wait=True, cancel_pending=True)
                raise

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
        future: TaskFuture[R] = TaskFuture()
        shared = self._shared
        if self._bounded:
            future.on_cancel = shared.ghost_appeared
        task: _Task = (future, fn, args, kwargs, monotonic() if self._stamp else 0.0)
        with shared.lock:
            if not (shared.closed or shared.waiters) and (not self._bounded or shared.room()):
                shared.queue.put(task)
                shared.submitted += 1
                return future
        self._submit_slow(task, self._reject, self.timeout)
        return future

    def _submit_slow(self, task: _Task, reject: bool, timeout: float | None) -> None:
        """The queue is full (or someone waits, or the pool is closed): reject or wait."""
        shared = self._shared
        with shared.lock:
            if shared.closed:
                raise PoolClosed(f"pool {self.name!r} {shared.closed_reason}")
            if not shared.waiters and shared.room():
                shared.queue.put(task)
                shared.submitted += 1
                return
            if reject:
                shared.rejected += 1
                raise PoolFull(
                    f"pool {self.name!r} has {self.max_pending} tasks queued (max_pending)"
                )
            if timeout is not None and timeout <= 0:
                shared.timeouts += 1
                raise PoolTimeout(f"pool {self.name!r} has no room in its queue and may not wait")
            waiter = _Waiter(task)
            shared.waiters.append(waiter)
            shared.serve_waiters()  # published, now look: a slot may have freed meanwhile
            if waiter.state == _Waiter.ADMITTED:
                return
        try:
            if timeout is None:
                waiter.handle.acquire()
            else:
                waiter.handle.acquire(timeout=min(timeout, threading.TIMEOUT_MAX))
        except BaseException:
            # Interrupted: leave the line; a task admitted meanwhile is cancelled, since its
            # future never reaches the caller.
            with shared.lock:
                queued = waiter.state != _Waiter.WAITING
                if not queued:
                    shared.waiters.remove(waiter)
            future = task[0]
            if not queued:
                future.on_cancel = None  # never reached the queue: not a ghost in it
            future.cancel()
            raise
        with shared.lock:
            if waiter.state == _Waiter.WAITING:  # the deadline passed first
                shared.waiters.remove(waiter)
                shared.timeouts += 1
                raise PoolTimeout(f"no room in pool {self.name!r}'s queue before the deadline")
        if waiter.state == _Waiter.CLOSED:
            raise PoolClosed(f"pool {self.name!r} {shared.closed_reason} while waiting")

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
        pending: deque[TaskFuture[R]] = deque()
        try:
            exhausted = False
            while True:
                while not exhausted and len(pending) < window:
                    try:
                        args = next(inputs)
                    except StopIteration:
                        exhausted = True
                        break
                    future: TaskFuture[R] = TaskFuture()
                    if self._bounded:
                        future.on_cancel = self._shared.ghost_appeared
                    stamp = monotonic() if self._stamp else 0.0
                    self._submit_slow((future, fn, args, {}, stamp), False, _left(deadline))
                    pending.append(future)
                if not pending:
                    return
                future = pending.popleft()
                try:
                    result = future.result(_left(deadline))
                except TimeoutError:
                    if not future.done():
                        future.cancel()  # as Executor.map: what has not started never will
                        raise PoolTimeout(
                            f"map on pool {self.name!r} ran past its timeout"
                        ) from None
                    # Finished meanwhile, or the task itself raised TimeoutError.
                    result = future.result()
                del future
                yield result
                del result
        finally:
            for future in pending:
                future.cancel()

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
        return self._shared.closed

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
        shared = self._shared
        state = "closed" if shared.closed else f"workers={self.workers}"
        return f"<WorkerPool {self.name!r} {state}>"

    # -- figures --------------------------------------------------------------------------------

    def stats(self) -> WorkerStats:
        """A snapshot of the pool's counts (see :class:`WorkerStats` for its invariants)."""
        shared = self._shared
        with shared.lock:
            submitted = shared.submitted
            rejected = shared.rejected
            timeouts = shared.timeouts
            drained = shared.drained
            ghosts = shared.ghosts
            # Stop markers still queued are not tasks: those not yet taken by a worker.
            exited = sum(1 for w in shared.workers if w.stopped)
            stops = max(0, shared.stops_put - exited)
            queued = max(0, shared.queue.qsize() - stops - ghosts)
        ws = shared.workers
        alive = sum(1 for w in ws if w.alive)
        busy = sum(1 for w in ws if w.holding)
        created = sum(w.created for w in ws)
        destroyed = sum(w.destroyed for w in ws)
        return WorkerStats(
            name=self.name,
            workers=alive,
            busy=busy,
            idle=alive - busy,
            queued=queued,
            submitted=submitted,
            completed=sum(w.completed for w in ws),
            failed=sum(w.failed for w in ws),
            cancelled=drained + ghosts + sum(w.cancelled for w in ws),
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
        )

    def _after_fork_in_child(self) -> None:
        """The child has none of the worker threads: refuse work, clearly (see module doc)."""
        shared = self._shared
        shared.lock = threading.Lock()
        shared.queue = SimpleQueue()
        shared.waiters = deque()
        shared.stop_token = []
        shared.stops_put = 0
        shared.stopping = threading.Event()
        shared.cancelling = threading.Event()
        shared.closed = True
        shared.closed_reason = (
            "was inherited through os.fork(): its worker threads exist only in the parent;"
            " create a new WorkerPool in the child"
        )
        # The parent's tasks and resources are not the child's: start the counts afresh, so
        # the stats invariants hold here too (no workers, no resources, nothing queued).
        dead = [_Worker() for _ in shared.workers]
        for worker in dead:
            worker.alive = False
        shared.workers = dead
        shared.ghosts = shared.submitted = shared.rejected = shared.timeouts = 0
        shared.drained = 0


def _left(deadline: float | None) -> float | None:
    """Seconds until *deadline* (never negative), or None for no deadline."""
    return None if deadline is None else max(0.0, deadline - monotonic())
