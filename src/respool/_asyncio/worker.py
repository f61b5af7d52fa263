"""``AsyncWorkerPool``: N worker tasks on one event loop, each owning one resource.

The asyncio twin of :class:`respool.WorkerPool`. It makes no decision of its own about
admission or health: it calls the same I/O-free cores the threaded shell calls, at the same
points, and performs what they answer with futures and tasks of one loop instead of locks and
threads:

* :mod:`respool._core.admission` decides who gets into the bounded queue (``max_pending``),
  who waits for room (in arrival order), which queued tasks no longer count (a cancelled
  caller's: a *ghost*), and who is refused once the pool is closed. Every move that frees a
  slot (a worker's take, a cancellation, a purge) answers the waiters admitted into it; the
  shell puts their tasks on the queue and wakes them, all in one step of the loop (a step is
  atomic, so the shell needs no lock at all);
* :mod:`respool._core.health` decides, per worker's resource, when to ``check`` it
  (``check_after``), when it is worn out (``max_uses``, ``max_lifetime``), stale (``drain``),
  due a keepalive ping, and (``Supply``) when to try ``create`` again after a failure and when
  a held task gives up waiting for a resource;
* :mod:`respool._core.policy` decides what a task's end means for its resource (*abort means
  discard*) and that a callback's failure in the pool's own task is logged, never raised.

Transport and dispatch
----------------------
Tasks (:class:`_Job`) wait in a ``deque``; idle workers wait each on a future of their own, in
a second ``deque``. A submit appends its job and wakes one idle worker: one hop of the loop to
the worker, one back to the caller when the worker settles the result future, as with an
``asyncio.Queue`` round trip. A worker that finishes a task takes the next one without waiting.
Resize and drain wake idle workers, which then look at the pool; a busy worker looks after its
task. No markers travel on the queue: a loop step sees the whole state at once.

Cancellation
------------
A caller cancelled while it waits for room leaves the line (``Admission.withdraw``); while its
task is queued, the task becomes a ghost and frees its slot (``Admission.cancelled``); while
its task is held by a worker that prepares a resource for it, the worker drops the task when
it next looks; while its ``async def`` task *runs*, the worker's task is cancelled, so the
running coroutine is cancelled at its ``await``: the worker recognises its own request
(``Task.uncancel``), counts the task cancelled, and (abort means discard) destroys the
resource and makes another. The worker task itself survives.

A worker task cancelled *from outside* (the loop shutting down, a cancelled ``shutdown``)
stops the whole pool: it closes, cancels what is queued and stops the other workers, each of
which destroys its resource. An ``async def`` ``destroy`` runs as a chore of the pool
(:class:`~respool._asyncio.callbacks.Chores`), so no cancellation cuts it short; ``shutdown``
waits for those chores.

*Lifetime*: worker tasks reference the pool's shared state, never the pool, and a module-level
set keeps them alive while they run (a pending task referenced only by a cycle would be
collected and logged as "Task was destroyed but it is pending"). A pool garbage-collected while
open is stopped by its finalizer: the workers finish the queue, destroy their resources and end.

A plain ``fn`` runs inline in its worker task, so it blocks the whole event loop while it
runs: blocking work belongs in the threaded :class:`respool.WorkerPool`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import weakref
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Sequence,
)
from inspect import isawaitable
from time import monotonic
from types import TracebackType
from typing import Any, Concatenate, Final, Generic, ParamSpec, Self, TypeVar, overload

from respool import _fork, _validate
from respool._asyncio.callbacks import Chores, call, running_loop
from respool._core.admission import (
    ADMITTED,
    CLOSED,
    LEFT,
    QUEUED,
    TAKEN,
    WAITING,
    Admission,
    Waiter,
)
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
from respool._worker_options import SharedOptions, WorkerOptions, log_create_failure
from respool.errors import PoolClosed, PoolFull, PoolTimeout
from respool.lifecycle import Lifecycle
from respool.stats import WorkerStats

__all__ = ["AsyncWorkerPool"]

T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")

log = logging.getLogger("respool")

#: The retirement reasons a worker pool reports (``WorkerStats.retired``), in that order.
RETIRE_REASONS: Final = (LIFETIME, USES, IDLE, CHECK, DRAIN, ERROR, ABORT)
_INF: Final = math.inf

#: Worker tasks still running, of every pool: the strong reference a pending task needs (see
#: the module doc). Each removes itself when it ends.
_running: set[asyncio.Task[None]] = set()


class _Job:
    """One task: the admission core's ticket, the caller's future and what to run.

    ``worker`` is set when a worker takes it off the queue; ``aborted`` once its caller's
    cancellation has been passed on to the worker running it; ``by_pool`` when the pool
    itself cancelled it (shutdown), so that ``submit`` can say so instead of raising a
    ``CancelledError`` into a caller nobody cancelled.
    """

    __slots__ = (
        "aborted",
        "admission",
        "args",
        "by_pool",
        "fn",
        "future",
        "kwargs",
        "shared",
        "since",
        "worker",
    )

    def __init__(
        self,
        shared: _Shared[Any],
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        since: float,
        future: asyncio.Future[Any],
    ) -> None:
        self.admission = WAITING
        self.shared = shared
        self.fn: Callable[..., Any] | None = fn
        self.args = args
        self.kwargs = kwargs
        self.since = since
        self.future = future
        self.worker: _Worker[Any] | None = None
        self.aborted = False
        self.by_pool = False

    def hook(self, future: asyncio.Future[Any]) -> None:
        """Done callback of a future handed out by ``submit_nowait`` (or ``map``): its
        cancellation is the caller's, wherever the task is."""
        if future.cancelled():
            self.shared.job_cancelled(self)

    def drop(self) -> None:
        """Forget what the task would run (nothing keeps its arguments alive any more)."""
        self.fn = None
        self.args = ()
        self.kwargs = {}


def _wake(future: asyncio.Future[Any]) -> None:
    """Resolve a wake-up future unless it is already done (a timer's and a poke's target)."""
    if not future.done():
        future.set_result(None)


def _mark_retrieved(future: asyncio.Future[Any]) -> None:
    """Its outcome will never be read: keep asyncio from logging "never retrieved"."""
    if future.done() and not future.cancelled():
        future.exception()


class _Shared(SharedOptions[T]):
    """Everything the pool's tasks share. Workers reference this, never the pool.

    Only the loop's thread touches it, one step at a time: each method below runs to its end
    without another task in between, so no lock guards the admission core or the queue. The
    queue holds admitted jobs in the order the core admitted them.
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
        self.admission: Admission[_Job] = Admission(name=name, max_pending=max_pending)
        self.queue: deque[_Job] = deque()
        #: Workers waiting for a task, most recently idle last (it is woken first: warm).
        self.idle: deque[_Worker[T]] = deque()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.chores = Chores(name)
        #: Every worker the pool started (records of those gone keep their counts).
        self.workers: list[_Worker[T]] = []
        #: Workers the pool should have once pending shrinks are done.
        self.target = workers
        #: Workers still to leave after ``resize`` down (each claims one place, then leaves).
        self.surplus = 0
        #: Set by a shutdown (or the finalizer): workers finish the queue and stop.
        self.stopping = False
        #: Set by ``shutdown(cancel_pending=True)`` or a halt: held tasks are cancelled.
        self.cancel_pending = False
        #: Set by a halt: worker tasks were cancelled, the pool is stopping at once.
        self.halted = False

    # -- admission moves the shell performs -----------------------------------------------------

    def put(self, job: _Job) -> None:
        """Put an admitted job on the queue and wake an idle worker for it."""
        self.queue.append(job)
        idle = self.idle
        if idle:
            worker = idle.pop()
            worker.waiting = False
            worker.poke()

    def kick(self) -> None:
        """A worker woken for a job will not take it now (it creates, sleeps, leaves): wake
        another idle worker while jobs wait, so that no wake-up is lost."""
        if self.queue and self.idle:
            worker = self.idle.pop()
            worker.waiting = False
            worker.poke()

    def admit(self, served: Sequence[Waiter[_Job]]) -> None:
        """Queue the jobs of submitters the core just admitted, then wake those submitters."""
        for waiter in served:
            self.put(waiter.ticket)
        for waiter in served:
            handle = waiter.handle
            assert isinstance(handle, asyncio.Future)
            _wake(handle)

    def job_cancelled(self, job: _Job) -> None:
        """*job*'s caller gave up on it (its future is cancelled): free its slot if it is
        queued, or stop the worker that holds it from spending more on it."""
        state = job.admission
        if state == QUEUED:
            self.admit(self.admission.cancelled(job))
            return
        worker = job.worker
        if state != TAKEN or worker is None or worker.job is not job:
            return  # a ghost, purged, refused, or already finished
        if worker.running is job:
            if not job.aborted:
                job.aborted = True
                task = worker.task
                assert task is not None
                task.cancel()  # cancels the running coroutine; the worker uncancels itself
        else:
            worker.poke()  # it may sleep between create attempts for this job

    def close(self, reason: str) -> None:
        """Refuse new work from now on; waiting submitters get ``PoolClosed``."""
        for waiter in self.admission.close(reason):
            handle = waiter.handle
            assert isinstance(handle, asyncio.Future)
            _wake(handle)

    # -- stopping -------------------------------------------------------------------------------

    def stop(self, *, cancel_pending: bool) -> None:
        """Workers finish the queue (or it is cancelled) and stop; wake them to see it."""
        if cancel_pending:
            self.cancel_pending = True
            self.cancel_queued()
        self.stopping = True
        for worker in self.workers:
            worker.poke()

    def cancel_queued(self) -> None:
        """Cancel every job still queued; the pool is closed, so the core admits nobody."""
        queue = self.queue
        while queue:
            job = queue.popleft()
            self.admit(self.admission.purge(job))
            job.by_pool = True
            job.drop()
            job.future.cancel()

    def halt(self, reason: str) -> None:
        """Stop at once: close, cancel what is queued and cancel every worker task (each
        cancels the task it runs, if any, and destroys its resource). Idempotent."""
        if self.halted:
            return
        self.halted = True
        self.close(reason)
        self.stop(cancel_pending=True)
        current = asyncio.current_task()
        for worker in self.workers:
            task = worker.task
            if task is not None and task is not current and not task.done():
                task.cancel()

    def abandon(self) -> None:
        """The pool was garbage-collected: nobody can submit any more; the workers finish
        the queue, destroy their resources and end."""
        self.close("was garbage-collected")
        self.stop(cancel_pending=False)

    def abandon_from_anywhere(self) -> None:
        """The pool's finalizer: it may run in any thread, with the loop running or gone."""
        loop = self.loop
        if loop is None:
            return  # never opened: no task to stop
        with contextlib.suppress(RuntimeError):  # the loop is closed: its tasks are gone
            loop.call_soon_threadsafe(self.abandon)

    async def join(self) -> None:
        """Wait until every worker task and every chore (async destroys) has ended."""
        while True:
            tasks = [w.task for w in self.workers if w.task is not None and not w.task.done()]
            if tasks:
                await asyncio.wait(tasks)
            elif self.chores:
                await self.chores.join()
            else:
                return

    def anyone_else_has(self, me: _Worker[T]) -> bool:
        """Does another worker hold a live resource (and so can run tasks)?"""
        return any(w.has for w in self.workers if w is not me and w.alive)

    def claim_place(self, me: _Worker[T]) -> bool:
        """Take one of the places ``resize`` asked to free, if one is left: True, leave."""
        if self.surplus > 0 and not me.leaving:
            self.surplus -= 1
            me.leaving = True
        return me.leaving

    def start(self, count: int) -> None:
        """Start *count* more worker tasks on the pool's loop."""
        loop = self.loop
        assert loop is not None
        for _ in range(count):
            worker: _Worker[T] = _Worker(self)
            index = len(self.workers)
            self.workers.append(worker)
            task = loop.create_task(worker.run(), name=f"{self.name}-{index}")
            worker.task = task
            _running.add(task)
            task.add_done_callback(_running.discard)
            task.add_done_callback(worker.ended)


# -- the worker task ------------------------------------------------------------------------------


class _Worker(Generic[T]):
    """One worker task, the one resource it owns, and its counters.

    The resource is created, checked, reset and destroyed only by this task; when to do which
    is the health core's answer (``rules`` for the resource, ``supply`` for creating one). A
    worker never dies of a callback's failure: each is caught, counted, logged, and answered
    by replacing the resource (or failing the one task concerned), as the callback policy says
    for a pool's own task. It stops when the pool stops, when ``resize`` asks for fewer
    workers, or when its task is cancelled from outside (then it halts the pool).
    """

    __slots__ = (
        "alive",
        "cancelled",
        "check",
        "check_failures",
        "cleanup",
        "completed",
        "create_errors",
        "created",
        "destroy_errors",
        "destroyed",
        "failed",
        "has",
        "holding",
        "idle_since",
        "job",
        "leaving",
        "replaced",
        "reset_errors",
        "resource",
        "retired",
        "rules",
        "running",
        "shared",
        "streak",
        "supply",
        "task",
        "vitals",
        "waiting",
        "wake",
    )

    def __init__(self, shared: _Shared[T]) -> None:
        self.shared = shared
        self.rules = shared.rules
        self.check = shared.lifecycle.check
        self.supply = Supply()
        self.task: asyncio.Task[None] | None = None
        self.resource: T | None = None
        #: The resource's health record; None while the worker has no resource.
        self.vitals: Vitals | None = None
        self.alive = True
        #: Claimed a place of ``resize`` down: it stops once its current task is done.
        self.leaving = False
        #: True while the worker has a live resource (others read it to leave tasks to it).
        self.has = False
        #: The job it took off the queue and has not finished (prepare, run, settle).
        self.job: _Job | None = None
        self.holding = False
        #: The job whose coroutine it awaits right now: cancelling it cancels this task.
        self.running: _Job | None = None
        #: The future it sleeps on (idle, or between create attempts), for :meth:`poke`.
        self.wake: asyncio.Future[None] | None = None
        #: In ``shared.idle``, waiting for a task.
        self.waiting = False
        #: Anything to do around a task (reset, check, wear, drain, resize)? If not, a task
        #: is run and settled and nothing else. ``drain`` and ``resize`` set it for good.
        self.cleanup = shared.cleanup
        #: Observing: since when the resource has been idle (its last task's end, or its
        #: creation ahead of need); None for one made for the job in hand.
        self.idle_since: float | None = None
        self.streak = 0
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

    # -- waiting ----------------------------------------------------------------------------------

    def poke(self) -> None:
        """Wake the worker if it sleeps (idle or between create attempts) to look again."""
        wake = self.wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def sleep(self, until: float, *, idle: bool) -> None:
        """Sleep until loop time *until* (``inf``: no timer) or a :meth:`poke`; *idle*: wait
        for a task too (listed among the idle workers that ``put`` wakes)."""
        shared = self.shared
        loop = shared.loop
        assert loop is not None
        wake: asyncio.Future[None] = loop.create_future()
        self.wake = wake
        timer = None if until == _INF else loop.call_at(until, _wake, wake)
        if idle:
            self.waiting = True
            shared.idle.append(self)
        try:
            await wake
        finally:
            self.wake = None
            if timer is not None:
                timer.cancel()
            if self.waiting:
                self.waiting = False
                shared.idle.remove(self)

    def take(self) -> _Job | None:
        """Take the next job off the queue and report it to the admission core (which may
        admit a waiting submitter into the slot): this worker holds it now."""
        shared = self.shared
        queue = shared.queue
        if not queue:
            return None
        job = queue.popleft()
        served = shared.admission.taken(job)
        if served:
            shared.admit(served)
        job.worker = self
        self.job = job
        self.holding = True
        return job

    def release(self) -> None:
        """The held job is finished (settled, or dropped)."""
        self.job = None
        self.holding = False

    def ended(self, task: asyncio.Task[None]) -> None:
        """Done callback of the worker's task: a task cancelled before it ever ran skipped
        ``run`` and its ``finally`` (it had no resource and no job), so mark it gone here."""
        self.alive = False

    # -- the loop ---------------------------------------------------------------------------------

    async def run(self) -> None:
        self.task = asyncio.current_task()  # already, should an eager task factory run us now
        shared = self.shared
        rules = self.rules
        supply = self.supply
        loop = shared.loop
        assert loop is not None
        timed = rules.timed
        try:
            while True:
                if shared.surplus and shared.claim_place(self):
                    break
                vitals = self.vitals
                if vitals is not None:
                    if shared.stopping and not shared.queue:
                        break
                    if rules.stale(vitals):
                        shared.kick()
                        await self.retire(DRAIN)  # drain(): replaced before its next task
                        continue
                    if timed and await self.idle_pass(vitals):
                        continue
                    job = self.take()
                    if job is None:
                        until = rules.next_deadline(vitals, surplus=False) if timed else _INF
                        await self.sleep(until, idle=True)
                        continue
                elif shared.stopping:
                    # No eager create now: a resource made only to be destroyed is waste. A
                    # task still queued makes one itself (wait_for_resource).
                    job = self.take()
                    if job is None:
                        break
                elif supply.due(loop.time()):
                    shared.kick()
                    if await self.create(trusted=False):
                        made = self.vitals
                        if made is not None and rules.stale(made):
                            await self.retire(DRAIN)  # its create began before a drain()
                    continue
                elif shared.anyone_else_has(self):
                    # Between create attempts, while another worker can run tasks: leave
                    # them to it rather than hold one hostage to this worker's retries.
                    shared.kick()
                    await self.sleep(supply.retry_at(), idle=False)
                    continue
                else:
                    # No worker can run anything: take a task to hold (it fails past its
                    # timeout if create keeps failing), or retry when due.
                    job = self.take()
                    if job is None:
                        await self.sleep(supply.retry_at(), idle=True)
                        continue
                if job.future.done():  # cancelled while queued (a ghost, or not yet one)
                    self.cancelled += 1
                    self.release()
                    job.drop()
                    continue
                vitals = self.vitals
                if (vitals is not None and (self.check is None or vitals.trusted)) or (
                    await self.prepare(job)
                ):
                    await self.execute(job)
        except asyncio.CancelledError:
            # Not a task's abort (``execute`` takes those back): the worker task itself was
            # cancelled from outside (the loop is closing, or a shutdown was cancelled).
            shared.halt("was stopped: its worker tasks were cancelled")
            raise
        finally:
            job = self.job
            if job is not None:  # cut off while preparing a resource for it
                self.cancelled += 1
                self.release()
                job.by_pool = True
                job.drop()
                job.future.cancel()
            self.alive = False
            shared.kick()  # a job it was woken for goes to another worker
            if self.vitals is not None:
                await self.discard(None)

    def foreign_cancel(self) -> bool:
        """Is a cancellation of this worker's task pending that is not a task's abort?"""
        task = self.task
        return task is not None and task.cancelling() > 0

    async def idle_pass(self, vitals: Vitals) -> bool:
        """An idle worker's look at its resource's deadlines (``max_lifetime``,
        ``keepalive``): retire it or ping it if due (True), else nothing to do (False)."""
        rules = self.rules
        loop = self.shared.loop
        assert loop is not None
        now = loop.time()
        verdict = rules.idle_pass(vitals, now)
        if verdict is None:
            return False
        self.shared.kick()
        if verdict == PING:
            if await self.checked():
                rules.passed_check(vitals, loop.time())
            else:
                await self.retire(CHECK)
        else:
            await self.retire(verdict)
        return True

    async def prepare(self, job: _Job) -> bool:
        """Obtain a viable resource for *job*: False if the job was settled without one
        (cancelled, or failed because none could be made in time)."""
        while True:
            if self.vitals is None and not await self.wait_for_resource(job):
                return False
            if self.check is None or await self.viable():
                return True

    async def execute(self, job: _Job) -> None:
        """Run *job* on this worker's resource and settle its future.

        A plain ``fn`` runs to its end in this step. An awaitable it returns is awaited with
        ``running`` set, so that the caller's cancellation can cancel it (and only it): the
        worker then takes its own cancellation request back with ``Task.uncancel``. Counters
        change before the future is settled, so a caller holding the result sees it counted.
        """
        future = job.future
        if future.done():  # cancelled while the worker prepared a resource for it
            self.cancelled += 1
            self.release()
            job.drop()
            return
        if self.cleanup:
            self.rules.before_use(self.vitals)  # type: ignore[arg-type]
            if self.shared.observer is not None:
                self.shared.observer.began(monotonic(), self.idle_since)
        fn = job.fn
        assert fn is not None
        args, kwargs = job.args, job.kwargs
        job.drop()
        error: BaseException | None = None
        result: Any = None
        try:
            result = fn(self.resource, *args, **kwargs)
            if isawaitable(result):
                self.running = job
                try:
                    result = await result
                finally:
                    self.running = None
        except BaseException as exc:
            error = exc
        del fn, args, kwargs
        foreign = False
        if job.aborted:
            task = self.task
            assert task is not None
            foreign = task.uncancel() > 0 and isinstance(error, asyncio.CancelledError)
        elif isinstance(error, asyncio.CancelledError):
            foreign = self.foreign_cancel()
        # The use ended: cleanly, by an error, or cut short (the caller's cancellation counts
        # as a cut even if the coroutine swallowed it). The policy decides the resource's fate.
        ended: type[BaseException] | None
        ended = asyncio.CancelledError if job.aborted else None if error is None else type(error)
        self.release()
        if self.cleanup and self.shared.observer is not None:
            self.idle_since = now = monotonic()
            self.shared.observer.ended(now)
        if job.aborted or isinstance(error, asyncio.CancelledError):
            self.cancelled += 1
            if foreign:
                job.by_pool = True
            future.cancel()
        elif error is not None:
            self.failed += 1
            self.settle_error(future, error)
        else:
            self.completed += 1
            if not future.done():
                future.set_result(result)
        del result
        if foreign:
            assert error is not None
            raise error  # the pool halts; ``run`` destroys the resource (not a retirement)
        del error
        if discards(ended, abort_on=self.shared.abort_on):
            await self.retire(ABORT)
        elif self.cleanup:
            await self.after_task()

    def settle_error(self, future: asyncio.Future[Any], error: BaseException) -> None:
        """Settle *future* with *error* (a future refuses ``StopIteration``: it is wrapped)."""
        if future.done():
            return
        if isinstance(error, StopIteration):
            wrapped = RuntimeError(f"the task raised {error!r}")
            wrapped.__cause__ = error
            error = wrapped
        future.set_exception(error)

    async def after_task(self) -> None:
        """``reset``; then retire the resource if the health rules say it is worn out or
        drained (leaving after ``resize`` is seen at the top of the loop)."""
        shared = self.shared
        reset = shared.lifecycle.reset
        if reset is not None:
            try:
                await call(reset, self.resource)
            except BaseException as exc:
                if self.foreign_cancel() or reaches_caller(exc, in_caller=False):
                    raise
                self.reset_errors += 1
                log.warning(
                    "pool %r: reset raised; destroying the resource", shared.name, exc_info=True
                )
                await self.retire(ERROR)
                return
        vitals = self.vitals
        assert vitals is not None
        loop = shared.loop
        assert loop is not None
        reason = self.rules.after_use(vitals, loop.time())
        if reason is not None:
            await self.retire(reason)

    async def checked(self) -> bool:
        """Run ``check``: is the resource still viable? (False counts a check failure.)"""
        check = self.check
        assert check is not None
        try:
            ok = bool(await call(check, self.resource))
        except BaseException as exc:
            if self.foreign_cancel() or reaches_caller(exc, in_caller=False):
                raise
            log.warning(
                "pool %r: check raised; replacing the resource", self.shared.name, exc_info=True
            )
            ok = False
        if not ok:
            self.check_failures += 1
        return ok

    async def viable(self) -> bool:
        """Run ``check`` if the health rules ask for it now; on failure retire the resource."""
        vitals = self.vitals
        assert vitals is not None
        loop = self.shared.loop
        assert loop is not None
        now = loop.time()
        if not self.rules.check_before_use(vitals, now):
            return True
        if await self.checked():
            self.rules.passed_check(vitals, now)
            return True
        await self.retire(CHECK)
        return False

    async def create(self, *, trusted: bool) -> bool:
        """One attempt at making this worker's resource (see ``WorkerPool``'s worker: a
        resource made for the task in hand is *trusted*, used without a check).

        A failure is logged with its traceback when it starts a streak, later ones in one
        line each. A cancellation from outside is not a failure: it propagates (the pool
        halts) and whatever the cut ``create`` had made is its own to clean up.
        """
        shared = self.shared
        loop = shared.loop
        assert loop is not None
        try:
            resource = await call(shared.lifecycle.create)
        except BaseException as exc:
            if self.foreign_cancel() or reaches_caller(exc, in_caller=False):
                raise
            self.create_errors += 1
            retry = self.supply.failed(loop.time(), exc)
            self.streak = retry.failures
            log_create_failure(shared.name, retry, exc)
            return False
        self.resource = resource
        self.vitals = self.rules.born(loop.time(), trusted=trusted)
        self.idle_since = None if trusted else monotonic()
        self.supply.succeeded()
        self.streak = 0
        self.created += 1
        self.has = True
        return True

    async def wait_for_resource(self, job: _Job) -> bool:
        """Retry ``create`` for *job* until it succeeds (True) or the job must give up: its
        ``timeout`` passed, or the pool is stopping (False: the future is settled)."""
        shared = self.shared
        loop = shared.loop
        assert loop is not None
        deadline = None if shared.timeout is None else job.since + shared.timeout
        while True:
            if shared.cancel_pending or job.future.done():
                if not job.future.done():
                    job.by_pool = True
                self.cancelled += 1
                self.release()
                job.drop()
                job.future.cancel()
                return False
            stopping = shared.stopping
            step, until = self.supply.next_step(loop.time(), deadline, stopping=stopping)
            if step == CREATE:
                if await self.create(trusted=True):
                    return True
                continue
            if step == GIVE_UP:
                self.fail_unserved(job, stopping)
                return False
            # Sleep, but wake for what changes the plan (shutdown, a cancelled job).
            await self.sleep(until, idle=False)

    def fail_unserved(self, job: _Job, stopping: bool) -> None:
        """Settle a job no resource could be made for, chaining the last create error."""
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
        self.failed += 1
        self.release()
        job.drop()
        self.settle_error(job.future, error)

    async def retire(self, reason: str) -> None:
        """Destroy the resource for *reason* (a retirement: it will be replaced)."""
        log.debug("pool %r: retiring a resource (%s)", self.shared.name, reason)
        self.retired[reason] += 1
        self.replaced += 1
        await self.discard(reason)

    async def discard(self, reason: str | None) -> None:
        """Destroy the resource; errors are counted and logged. *reason*: why it is retired,
        or None when the worker stops.

        The resource leaves the books first (``destroyed`` counts it at once). An
        ``async def`` destroy runs as a chore of the pool, awaited here: a cancellation of
        this task (a halt) does not cut it short, and ``shutdown`` waits for it.
        """
        shared = self.shared
        resource = self.resource
        self.resource = None
        self.vitals = None
        self.has = False
        self.destroyed += 1
        destroy = shared.lifecycle.destroy
        if destroy is None:
            return
        try:
            outcome = destroy(resource)  # type: ignore[arg-type]
        except BaseException as exc:
            if reaches_caller(exc, in_caller=False):  # pragma: no cover - never here
                raise
            self.destroy_errors += 1
            log.warning("pool %r: destroy raised", shared.name, exc_info=True)
            return
        del resource
        if not isawaitable(outcome):
            return
        loop = shared.loop
        assert loop is not None
        finished: asyncio.Future[None] = loop.create_future()
        shared.chores.start(self.finish_destroy(outcome, finished), loop)
        await finished

    async def finish_destroy(self, outcome: Awaitable[Any], finished: asyncio.Future[None]) -> None:
        """A chore: await an ``async def`` destroy to its end, counting its failure."""
        try:
            await outcome
        except BaseException as exc:
            self.destroy_errors += 1
            log.warning("pool %r: destroy raised", self.shared.name, exc_info=True)
            if isinstance(exc, asyncio.CancelledError):
                raise  # the loop is closing: the chore ends cancelled
        finally:
            _wake(finished)


# -- the pool -------------------------------------------------------------------------------------


class AsyncWorkerPool(WorkerOptions[T]):
    """N worker tasks on one event loop, each owning one resource; ``await wp.submit(fn,
    *args)`` runs ``fn(resource, *args)`` on one of them and returns its result.

    The options are :class:`respool.WorkerPool`'s, with the same meaning and checks; ``create``,
    ``reset``, ``check``, ``destroy`` and ``fn`` may be plain or ``async def``. A plain ``fn``
    runs inline in its worker task, so it blocks the event loop while it runs: put blocking
    work in the threaded ``WorkerPool``.

    The pool may be built outside a running loop: nothing touches asyncio until :meth:`open`
    (or the first submit), which starts the worker tasks on the running loop, each creating
    its resource. The pool then belongs to that loop; using it from another raises
    ``RuntimeError``.

    A task cancelled, or ending with a ``TimeoutError`` (not ``PoolTimeout``) or an error the
    lifecycle lists in ``abort_on``, was cut short: its worker's resource is replaced
    (``retired["abort"]``), as in ``WorkerPool``.

    ``observe=True`` records, as on ``WorkerPool``, each task's use of its worker (idle gaps,
    workers busy over time) for ``stats().usage``, at the cost of a lock and two clock reads
    per task.
    """

    _awaits = True

    def _build(self, rules: Rules) -> None:
        """The pool's shared state; its worker tasks start on the loop it opens on."""
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
        self._admission = shared.admission
        #: The loop the pool runs on, once opened (``submit`` compares it with the running one).
        self._loop: asyncio.AbstractEventLoop | None = None
        weakref.finalize(self, shared.abandon_from_anywhere).atexit = False
        _fork.register(self)

    # -- the loop -------------------------------------------------------------------------------

    def _bind(self, what: str) -> asyncio.AbstractEventLoop:
        """The running loop, after checking it is the pool's (opening the pool on it, if it
        is not open yet and not closed)."""
        loop = running_loop(what)
        if loop is self._loop:
            return loop
        if self._loop is not None:
            raise RuntimeError(
                f"pool {self.name!r} belongs to the event loop it was opened on;"
                f" {what} was called from another loop"
            )
        if self._admission.closed:
            raise PoolClosed(f"pool {self.name!r} {self._admission.closed_reason}")
        shared = self._shared
        shared.loop = self._loop = loop
        shared.start(shared.target)
        return loop

    async def open(self) -> None:
        """Start the worker tasks on the running loop (each creates its resource at once);
        does nothing if already open. Returns without waiting for the resources: a failing
        ``create`` is retried with backoff, as by the threaded pool. After shutdown:
        ``PoolClosed``."""
        self._bind("open()")
        if self._admission.closed:
            raise PoolClosed(f"pool {self.name!r} {self._admission.closed_reason}")

    # -- runtime changes ------------------------------------------------------------------------

    def resize(self, workers: int) -> None:
        """Change the number of workers to *workers* (at least 1), now, without waiting.

        Growing starts worker tasks at once, each creating its resource. Shrinking never
        interrupts a task: the workers that leave finish the one in hand (or leave at once if
        idle), destroy their resource and end; queued tasks stay queued. Before :meth:`open`
        it only sets how many will start. After shutdown: ``PoolClosed``.
        """
        workers = _validate.integer("workers", workers, minimum=1)
        shared = self._shared
        admission = self._admission
        if admission.closed:
            raise PoolClosed(f"pool {self.name!r} {admission.closed_reason}: it cannot be resized")
        if self._loop is not None:
            self._bind("resize()")
        change = workers - shared.target
        shared.target = workers
        self.workers = workers
        if self._loop is None:
            return
        if change < 0:
            shared.surplus -= change
            for worker in shared.workers:
                worker.cleanup = True  # a busy worker looks at ``surplus`` after its task
                worker.poke()
        elif change > 0:
            kept = min(shared.surplus, change)  # leavers not yet gone may stay instead
            shared.surplus -= kept
            shared.start(change - kept)

    def drain(self) -> None:
        """Replace every resource made before this call, without failing any task.

        An idle worker replaces its resource at once, a busy one after its task. Returns
        without waiting; ``stats().retired["drain"]`` counts them. Does nothing once the
        pool is shut down.
        """
        shared = self._shared
        if self._admission.closed:
            return
        if self._loop is not None:
            self._bind("drain()")
        for worker in shared.workers:
            worker.cleanup = True  # a busy worker compares generations after its task
        shared.rules.drain()
        for worker in shared.workers:
            worker.poke()

    # -- submitting -----------------------------------------------------------------------------

    @overload
    async def submit(
        self, fn: Callable[Concatenate[T, P], Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R: ...
    @overload
    async def submit(
        self, fn: Callable[Concatenate[T, P], R], /, *args: P.args, **kwargs: P.kwargs
    ) -> R: ...
    async def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(resource, *args, **kwargs)`` on a worker and return its result.

        When the queue is full: waits in arrival order (``on_full="block"``, up to
        ``timeout``, then ``PoolTimeout``) or raises ``PoolFull`` (``"reject"``). After
        shutdown: ``PoolClosed``; also when the pool itself cancels the task (a shutdown with
        ``cancel_pending`` before it runs, a cancelled shutdown while it runs), rather than a
        ``CancelledError`` in a caller nobody cancelled. Cancelling the caller cancels the
        task: it never runs if it has not started; if it runs, its coroutine is cancelled and
        the worker's resource is replaced (abort means discard).
        """
        loop = self._loop
        if loop is None or loop is not asyncio.get_running_loop():
            loop = self._bind("submit()")
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {fn!r}")
        shared = self._shared
        job = _Job(shared, fn, args, kwargs, loop.time(), loop.create_future())
        if self._admission.submit_nowait(job):
            shared.put(job)
        else:
            await self._wait_for_room(job, self._reject, self.timeout)
        future = job.future
        try:
            return await future
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if job.by_pool and (task is None or not task.cancelling()):
                raise PoolClosed(
                    f"pool {self.name!r} was shut down before this task could finish"
                ) from None
            if future.cancel() or future.cancelled():
                shared.job_cancelled(job)
            else:
                _mark_retrieved(future)  # done as the caller was cancelled: nobody reads it
            raise

    @overload
    def submit_nowait(
        self, fn: Callable[Concatenate[T, P], Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> asyncio.Future[R]: ...
    @overload
    def submit_nowait(
        self, fn: Callable[Concatenate[T, P], R], /, *args: P.args, **kwargs: P.kwargs
    ) -> asyncio.Future[R]: ...
    def submit_nowait(
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> asyncio.Future[Any]:
        """Queue ``fn(resource, *args, **kwargs)`` and return its future, never waiting.

        ``PoolFull`` at once when the queue is full (whatever ``on_full`` says), ``PoolClosed``
        after shutdown. Cancelling the future is cancelling the task, as for :meth:`submit`.
        """
        loop = self._bind("submit_nowait()")
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {fn!r}")
        shared = self._shared
        job = self._hooked_job(loop, fn, args)
        job.kwargs = kwargs
        if not self._admission.submit_nowait(job):
            self._admission.reject()
            raise PoolFull(f"pool {self.name!r} has {self.max_pending} tasks queued (max_pending)")
        shared.put(job)
        return job.future

    def _hooked_job(
        self, loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], args: tuple[Any, ...]
    ) -> _Job:
        """A job whose future, handed out, reports its own cancellation to the pool."""
        job = _Job(self._shared, fn, args, {}, loop.time(), loop.create_future())
        job.future.add_done_callback(job.hook)
        return job

    async def _wait_for_room(self, job: _Job, reject: bool, timeout: float | None) -> None:
        """No room (or someone waits ahead): reject, or wait in line for room.

        The submitter waits on a future of its own, resolved by whichever move admits or
        refuses it, or by its deadline's timer. Cancelled while waiting, it leaves the line;
        a job admitted at that very step is cancelled (a ghost: its slot is freed at once),
        one refused meanwhile was never queued. Nothing is lost or counted twice.
        """
        admission = self._admission
        shared = self._shared
        loop = shared.loop
        assert loop is not None
        if reject:
            admission.reject()
            raise PoolFull(f"pool {self.name!r} has {self.max_pending} tasks queued (max_pending)")
        if timeout is not None and timeout <= 0:
            admission.reject(timed_out=True)
            raise PoolTimeout(f"pool {self.name!r} has no room in its queue and may not wait")
        handle: asyncio.Future[None] = loop.create_future()
        waiter = admission.wait(job, handle, loop.time())  # raises PoolClosed
        if waiter.state == ADMITTED:
            shared.put(job)
            return
        timer = None if timeout is None else loop.call_later(timeout, _wake, handle)
        try:
            await handle
        except asyncio.CancelledError:
            if admission.withdraw(waiter, timed_out=False) == ADMITTED:
                job.future.cancel()
                shared.job_cancelled(job)  # queued: a ghost now
            raise
        finally:
            if timer is not None:
                timer.cancel()
        state = waiter.state
        if state == WAITING:  # the timer fired first
            state = admission.withdraw(waiter, timed_out=True)
            if state == LEFT:
                raise PoolTimeout(f"no room in pool {self.name!r}'s queue before the deadline")
        if state == CLOSED:
            raise PoolClosed(f"pool {self.name!r} {admission.closed_reason} while waiting")

    @overload
    def map(
        self,
        fn: Callable[..., Awaitable[R]],
        items: Iterable[Any] | AsyncIterable[Any],
        *more: Iterable[Any] | AsyncIterable[Any],
        timeout: float | None = None,
    ) -> AsyncGenerator[R, None]: ...
    @overload
    def map(
        self,
        fn: Callable[..., R],
        items: Iterable[Any] | AsyncIterable[Any],
        *more: Iterable[Any] | AsyncIterable[Any],
        timeout: float | None = None,
    ) -> AsyncGenerator[R, None]: ...
    def map(
        self,
        fn: Callable[..., Any],
        items: Iterable[Any] | AsyncIterable[Any],
        *more: Iterable[Any] | AsyncIterable[Any],
        timeout: float | None = None,
    ) -> AsyncGenerator[Any, None]:
        """Lazily ``fn(resource, *items)`` for items taken in step from the iterables (plain
        or async; it stops at the shortest), yielding results in input order.

        At most ``max_pending`` (or ``2 * workers`` when unbounded) items are in flight —
        submitted and not yet yielded — and the next input is pulled only when a result has
        been taken, so an endless iterator is fine. *timeout* bounds the whole iteration
        (``PoolTimeout``). It never raises ``PoolFull``: it waits for room, within that
        deadline, whatever ``on_full`` says. A task's error propagates and cancels the rest.
        Closing the iterator (``aclose()``, as ``contextlib.aclosing`` does after a ``break``)
        cancels what has not finished and pulls no more input.
        """
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {fn!r}")
        timeout = _validate.seconds("timeout", timeout)
        return self._map(fn, [items, *more], timeout)

    async def _map(
        self,
        fn: Callable[..., Any],
        sources: list[Iterable[Any] | AsyncIterable[Any]],
        timeout: float | None,
    ) -> AsyncGenerator[Any, None]:
        loop = self._bind("map()")
        window = self.max_pending or 2 * self.workers
        deadline = None if timeout is None else loop.time() + timeout
        inputs = _zip(sources)
        pending: deque[_Job] = deque()
        try:
            exhausted = False
            while True:
                while not exhausted and len(pending) < window:
                    try:
                        args = await anext(inputs)
                    except StopAsyncIteration:
                        exhausted = True
                        break
                    job = self._hooked_job(loop, fn, args)
                    if self._admission.submit_nowait(job):
                        self._shared.put(job)
                    else:
                        left = None if deadline is None else max(0.0, deadline - loop.time())
                        try:
                            await self._wait_for_room(job, False, left)
                        except PoolTimeout:
                            raise PoolTimeout(
                                f"map on pool {self.name!r} ran past its timeout"
                            ) from None
                    pending.append(job)
                if not pending:
                    return
                future = pending[0].future
                if deadline is None:
                    result = await future
                else:
                    limit = asyncio.timeout_at(deadline)
                    try:
                        async with limit:
                            result = await future
                    except TimeoutError:
                        if limit.expired():
                            raise PoolTimeout(
                                f"map on pool {self.name!r} ran past its timeout"
                            ) from None
                        raise
                pending.popleft()
                yield result
                del result
        finally:
            for job in pending:
                job.future.cancel()
                _mark_retrieved(job.future)
            await inputs.aclose()

    # -- stopping -------------------------------------------------------------------------------

    async def shutdown(self, wait: bool = True, cancel_pending: bool = False) -> None:
        """Stop accepting work; queued tasks run (or are cancelled with ``cancel_pending``).

        Then each worker destroys its resource and ends; ``wait=True`` returns only after
        they all have, and every ``async def`` destroy has finished (not when called from one
        of the pool's own tasks: it would wait for itself). Tasks held by a worker whose
        ``create`` keeps failing get ``PoolClosed`` after one last attempt. Calling it again
        is harmless (a later ``cancel_pending=True`` still cancels what is queued).

        Cancelling a waiting ``shutdown`` (``asyncio.wait_for(wp.shutdown(), 5)``) stops the
        pool at once: running tasks are cancelled, their resources destroyed.
        """
        shared = self._shared
        if (
            self._admission.closed
            and not shared.chores
            and not any(worker.alive for worker in shared.workers)
        ):
            return  # nothing left to stop or wait for, whichever loop asks
        if self._loop is not None:
            self._bind("shutdown()")
        shared.close("was shut down")
        if self._loop is None:
            return  # never opened: no worker, no resource
        shared.stop(cancel_pending=cancel_pending)
        if not wait:
            return
        current = asyncio.current_task()
        if any(worker.task is current for worker in shared.workers):
            return  # a task shutting down its own pool must not wait for its own worker
        try:
            await shared.join()
        except asyncio.CancelledError:
            shared.halt("was stopped: its shutdown was cancelled")
            raise

    async def close(self) -> None:
        """``shutdown(wait=True)``."""
        await self.shutdown(wait=True)

    @property
    def closed(self) -> bool:
        """True once :meth:`shutdown` has been called (or the pool halted)."""
        return self._admission.closed

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown(wait=True)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"workers={self.workers}"
        return f"<AsyncWorkerPool {self.name!r} {state}>"

    # -- figures --------------------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        """A forked child has none of the parent's worker tasks, nor its event loop: the pool
        refuses work there, saying why, and its counts start afresh (nothing is running),
        as the threaded ``WorkerPool`` does. The parent's resources are left alone."""
        old = self._shared
        old.loop = None  # its finalizer must not reach the parent's loop from the child
        fresh: _Shared[T] = _Shared(
            old.lifecycle,
            workers=self.workers,
            max_pending=self.max_pending,
            timeout=self.timeout,
            rules=old.rules,
            name=self.name,
            cleanup=old.cleanup,
        )
        fresh.observer = self._new_observer()
        fresh.admission.close(
            "was inherited through os.fork(): its worker tasks and event loop exist only in"
            " the parent; create a new AsyncWorkerPool in the child"
        )
        self._shared = fresh
        self._admission = fresh.admission
        self._loop = None

    def stats(self) -> WorkerStats:
        """A snapshot of the pool's counts (see :class:`WorkerStats` for its invariants;
        ``cancelled`` also counts tasks whose caller cancelled them while they ran)."""
        shared = self._shared
        admission = self._admission
        ws = list(shared.workers)
        alive = sum(1 for w in ws if w.alive)
        busy = sum(1 for w in ws if w.holding)
        created = sum(w.created for w in ws)
        destroyed = sum(w.destroyed for w in ws)
        retired = dict.fromkeys(RETIRE_REASONS, 0)
        for w in ws:
            for reason, count in w.retired.items():
                retired[reason] += count
        loop = shared.loop
        failing = [w for w in ws if w.alive and w.streak]
        retry_in = 0.0
        if failing and loop is not None:
            now = loop.time()
            retry_in = min(max(0.0, w.supply.retry_at() - now) for w in failing)
        return WorkerStats(
            name=self.name,
            workers=alive,
            busy=busy,
            idle=alive - busy,
            queued=admission.live,
            waiting=admission.waiting,
            submitted=admission.admitted,
            completed=sum(w.completed for w in ws),
            failed=sum(w.failed for w in ws),
            cancelled=admission.purged + admission.ghosts + sum(w.cancelled for w in ws),
            rejected=admission.rejected,
            timeouts=admission.timeouts,
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
            usage=None if shared.observer is None else shared.observer.snapshot(monotonic()),
        )


async def _zip(
    sources: list[Iterable[Any] | AsyncIterable[Any]],
) -> AsyncGenerator[tuple[Any, ...], None]:
    """Tuples of items taken in step from plain and async iterables, to the shortest."""
    iterators: list[Iterator[Any] | AsyncIterator[Any]] = []
    for source in sources:
        if isinstance(source, AsyncIterable):
            iterators.append(aiter(source))
        else:
            iterators.append(iter(source))
    while True:
        items = []
        for it in iterators:
            try:
                if isinstance(it, AsyncIterator):
                    items.append(await anext(it))
                else:
                    items.append(next(it))
            except (StopIteration, StopAsyncIteration):
                return
        yield tuple(items)
