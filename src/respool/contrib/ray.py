"""``RayWorkerPool``: the ``WorkerPool`` contract on Ray actors, each owning its resource.

For work that outgrows one machine: a model or an engine per worker, a database connection
per worker, a compressor and socket per shipper. Each actor makes its resource in its own
process when it starts (``create``), resets it after every task, checks it before one (subject
to ``check_after``), recycles it by ``max_uses``/``max_lifetime`` and destroys it when it
stops: the rules of :mod:`respool._core.health`, the same as the threaded pool's. The driver
side is thread-safe and keeps what ``ray.util.ActorPool`` lacks:

* a task goes to a *free* actor, one task per actor at a time (never queued behind a busy
  one), and an actor is free again the moment its task ends, whether anyone reads the result;
* the queue of pending tasks is bounded (``max_pending``; ``on_full``), with admission decided
  by :mod:`respool._core.admission`, as in ``WorkerPool``;
* an actor that dies (``ray.kill``, a killed process, a lost node) fails its task with
  :class:`ActorLost` naming it and chaining Ray's error (or runs it once more elsewhere when
  the task was submitted with ``retry=True``), and is replaced on the shared backoff
  (:mod:`respool._core.backoff`); queued work goes on to the live actors;
* an actor whose ``create`` fails is retried on that backoff; queued tasks that find no
  working actor for ``timeout`` seconds fail with ``PoolTimeout`` chained to the last create
  error. Nothing hangs: every future completes exactly once, shutdown included.

How it works. One lock guards the driver's state: the admission core, the queue, the actor
slots. Every change is decided under it and returns what to do after (send a task to an
actor, start or kill an actor, settle futures), which is done outside it. Completions arrive
as callbacks of the task's ``ObjectRef`` future (no polling), on a Ray thread; one
housekeeping thread of the pool's own waits for the next timer: an actor's restart after
backoff, the deadline of a queued task while no actor works, the end of a shutdown.

Ray is an optional extra (``pip install 'respool[ray]'``): the core never imports this module.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from respool import _validate
from respool._core import policy
from respool._core.admission import GHOST, QUEUED, WAITING, Admission
from respool._core.backoff import Backoff
from respool._core.health import ABORT, CHECK, ERROR, REASONS, Rules, Vitals
from respool._mapping import left, ordered_map
from respool.contrib import _missing
from respool.errors import PoolClosed, PoolError, PoolFull, PoolTimeout
from respool.lifecycle import Lifecycle, coerce
from respool.stats import WorkerStats

try:
    import ray
    from ray import cloudpickle
    from ray.exceptions import RayActorError
except ImportError as _error:  # pragma: no cover - ray is in the test extra
    raise _missing("ray", "ray", _error) from _error

__all__ = ["ActorLost", "RayWorkerPool", "RayWorkerStats"]

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger("respool")

_names = itertools.count(1)

#: Seconds an actor is given to run ``destroy`` when the pool stops it, before it is killed.
STOP_TIMEOUT: Final = 10.0
#: Seconds an actor is given to start and run ``create``; one that takes longer is killed and
#: counts as a failed create (a start can hang: a node that never gets the resources asked).
START_TIMEOUT: Final = 60.0


class ActorLost(PoolError):
    """The actor running a task died before the task ended (killed, its process or node
    lost). The task may or may not have run to its end; Ray's error is chained."""


@dataclass(frozen=True, slots=True)
class RayWorkerStats(WorkerStats):
    """``WorkerStats`` of a :class:`RayWorkerPool` (``workers`` counts actors alive and
    ready), plus the actors lost (died while the pool used them) and started to replace one
    (lost, or whose ``create`` failed)."""

    actors_lost: int = 0
    actors_replaced: int = 0


# -- the actor's side ------------------------------------------------------------------------

_OK: Final = "ok"
_ERROR: Final = "error"
#: The actor has no resource and could not make one: the task did not run.
_NO_RESOURCE: Final = "no resource"
_NONE: Final = object()


def _portable(exc: BaseException) -> BaseException:
    """*exc* if it survives pickling (it must cross to the driver), else a stand-in."""
    try:
        cloudpickle.dumps(exc)  # type: ignore[no-untyped-call]
    except Exception:
        return RuntimeError(f"{type(exc).__qualname__}: {exc} (not picklable, so repeated here)")
    return exc


class _Holder:
    """Runs in the actor's process and owns its one resource, by the health rules."""

    def __init__(self, lifecycle: Lifecycle[Any], options: dict[str, Any]) -> None:
        self.lifecycle = lifecycle
        self.rules = Rules(**options)
        self.events: Counter[str] = Counter()
        self.resource: Any = _NONE
        self.vitals: Vitals | None = None
        self.last_error: BaseException | None = None
        self._make(trusted=False)

    def _make(self, *, trusted: bool) -> bool:
        try:
            resource = self.lifecycle.create()
        except Exception as exc:
            self.events["create_errors"] += 1
            self.last_error = _portable(exc)
            self.resource = _NONE
            return False
        self.resource = resource
        self.vitals = self.rules.born(time.monotonic(), trusted=trusted)
        self.events["created"] += 1
        self.last_error = None
        return True

    def _retire(self, reason: str | None) -> None:
        """Destroy the resource (counted under *reason*; None: the actor stops)."""
        resource, self.resource, self.vitals = self.resource, _NONE, None
        if resource is _NONE:
            return
        if reason is not None:
            self.events[f"retired:{reason}"] += 1
        self.events["destroyed"] += 1
        destroy = self.lifecycle.destroy
        if destroy is not None:
            try:
                destroy(resource)
            except Exception:
                self.events["destroy_errors"] += 1

    def _report(self) -> dict[str, int]:
        """The counts since the last answer, and whether a resource is held now."""
        events, self.events = self.events, Counter()
        report = dict(events)
        report["holding"] = int(self.resource is not _NONE)
        return report

    def ready(self) -> tuple[bool, BaseException | None, dict[str, int], str]:
        """Did ``create`` work? (Called once, right after the actor started.) With who this
        actor is, for the pool's errors and logs."""
        actor_id = ray.get_runtime_context().get_actor_id() or "?"
        identity = f"actor {actor_id[:8]} (pid {os.getpid()})"
        return self.resource is not _NONE, self.last_error, self._report(), identity

    def run(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[str, Any, dict[str, int]]:
        """Run ``fn(resource, *args, **kwargs)`` by the lifecycle's rules."""
        rules, lifecycle = self.rules, self.lifecycle
        if self.resource is _NONE and not self._make(trusted=True):
            return _NO_RESOURCE, self.last_error, self._report()
        vitals = self.vitals
        assert vitals is not None
        check = lifecycle.check
        if check is not None and rules.check_before_use(vitals, time.monotonic()):
            try:
                alive = bool(check(self.resource))
            except Exception:
                alive = False
            if alive:
                rules.passed_check(vitals, time.monotonic())
            else:
                self.events["check_failures"] += 1
                self._retire(CHECK)
                if not self._make(trusted=True):
                    return _NO_RESOURCE, self.last_error, self._report()
                vitals = self.vitals
                assert vitals is not None
        rules.before_use(vitals)
        try:
            value = fn(self.resource, *args, **kwargs)
        except BaseException as exc:
            if policy.aborted(type(exc), lifecycle.abort_on):
                self._retire(ABORT)
                self._make(trusted=False)
            else:
                self._after()
            return _ERROR, _portable(exc), self._report()
        self._after()
        return _OK, value, self._report()

    def _after(self) -> None:
        """Reset after a use, and retire a resource that failed it or is worn out."""
        reset = self.lifecycle.reset
        if reset is not None:
            try:
                reset(self.resource)
            except Exception:
                self.events["reset_errors"] += 1
                self._retire(ERROR)
                self._make(trusted=False)
                return
        vitals = self.vitals
        assert vitals is not None
        reason = self.rules.after_use(vitals, time.monotonic())
        if reason is not None:
            self._retire(reason)
            self._make(trusted=False)

    def stop(self) -> dict[str, int]:
        """Destroy the resource: the pool is done with this actor."""
        self._retire(None)
        return self._report()


# -- the driver's side -----------------------------------------------------------------------

#: Slot states.
_STARTING: Final = "starting"
_IDLE: Final = "idle"
_BUSY: Final = "busy"
_BACKOFF: Final = "backoff"
_STOPPING: Final = "stopping"
_STOPPED: Final = "stopped"


class _Task(Future[Any]):
    """A task's future, with what the pool keeps about it (the admission core's ticket)."""

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        retry: bool,
        since: float,
    ) -> None:
        super().__init__()
        self.admission = WAITING
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        #: May it run once more if its actor dies (``submit(..., retry=True)``)?
        self.retry = retry
        self.since = since


class _Slot:
    """One actor the pool keeps (or is about to start again)."""

    __slots__ = ("actor", "backoff", "deadline", "holding", "index", "name", "state", "task")

    def __init__(self, index: int) -> None:
        self.index = index
        self.actor: Any = None
        #: "actor <id> (pid <pid>)" once it answered, for errors and logs.
        self.name = f"#{index}"
        self.state = _BACKOFF
        self.task: _Task | None = None
        self.backoff = Backoff()
        #: Does its actor hold a resource (as of its last answer)?
        self.holding = False
        #: When to start it again (``_BACKOFF``), or to give up waiting for its ``destroy``
        #: and kill it (``_STOPPING``).
        self.deadline = 0.0


class _Todo:
    """What a move decided, to do outside the lock."""

    __slots__ = ("cancel", "kill", "send", "settle", "start", "stop")

    def __init__(self) -> None:
        self.send: list[tuple[_Slot, Any, _Task]] = []
        self.start: list[_Slot] = []
        self.kill: list[Any] = []
        self.stop: list[tuple[_Slot, Any]] = []
        self.cancel: list[_Task] = []
        #: (future, result, exception): the exception when it is not None.
        self.settle: list[tuple[_Task, Any, BaseException | None]] = []

    def __bool__(self) -> bool:
        return bool(self.send or self.start or self.kill or self.stop or self.cancel or self.settle)


class RayWorkerPool(Generic[T]):
    """``workers`` Ray actors, each owning one resource made by ``create`` in its own process.

    ``submit(fn, *args, **kwargs)`` runs ``fn(resource, *args, **kwargs)`` on a free actor and
    returns a ``concurrent.futures.Future``; ``submit(..., retry=True)`` marks the task safe to
    run again: if its actor dies, it runs once more on another (``retry`` is therefore not
    passed on to ``fn``). ``fn``, its arguments and result, and the lifecycle's callbacks
    cross processes, so they must pickle (Ray's cloudpickle takes lambdas and closures).

    Options as :class:`respool.WorkerPool`: ``max_pending`` (``None``: no bound), ``on_full``
    (``"block"`` waits up to ``timeout`` for room, ``"reject"`` raises ``PoolFull``),
    ``timeout`` (also how long a queued task waits while no actor works: then
    ``PoolTimeout`` chained to the last create error), ``reset``, ``check``, ``destroy``,
    ``check_after``, ``max_uses``, ``max_lifetime``; and ``actor_options``, passed to Ray for
    every actor (``num_cpus``, ``num_gpus``, ``resources``, ``runtime_env``...; default: Ray's
    own, under which an actor needs a CPU to be placed and holds none while it runs). Ask for
    more than the cluster has and the actors it cannot place never start: each is given
    :data:`START_TIMEOUT` seconds, then killed and tried again, and a warning says so. A
    ``reset`` or ``check`` that fails replaces the resource inside its actor, not the actor.

    Call ``ray.init()`` (or ``ray.init(address=...)`` to join a cluster) first; the pool does
    not start Ray itself. ``shutdown()`` (or leaving a ``with`` block) runs what is queued,
    then has every actor destroy its resource, and kills it.

    An actor that dies while idle is found out by the next task sent to it, which then fails
    as if the actor had died under it (or runs again, with ``retry=True``).
    """

    def __init__(
        self,
        create: Lifecycle[T] | Callable[[], T],
        workers: int = 4,
        *,
        max_pending: int | None = None,
        on_full: str = "block",
        timeout: float | None = 30.0,
        reset: Callable[[T], object] | None = None,
        check: Callable[[T], object] | None = None,
        destroy: Callable[[T], object] | None = None,
        check_after: float = 0.0,
        max_uses: int | None = None,
        max_lifetime: float | None = None,
        actor_options: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> None:
        self.lifecycle: Lifecycle[T] = coerce(create, reset=reset, check=check, destroy=destroy)
        for field in ("create", "reset", "check", "destroy"):
            _validate.synchronous(
                field,
                getattr(self.lifecycle, field),
                pool="RayWorkerPool",
                hint="the actor calls them in its own process: pass plain functions",
            )
        self.workers = _validate.integer("workers", workers, minimum=1)
        self.max_pending = _validate.optional_integer("max_pending", max_pending, minimum=1)
        self.on_full = _validate.choice("on_full", on_full, ("block", "reject"))
        self.timeout = _validate.seconds("timeout", timeout)
        after = _validate.seconds("check_after", check_after, allow_none=False)
        uses = _validate.optional_integer("max_uses", max_uses, minimum=1)
        lifetime = _validate.positive_seconds("max_lifetime", max_lifetime)
        if actor_options is None:
            actor_options = {}
        if not isinstance(actor_options, dict) or not all(
            isinstance(key, str) for key in actor_options
        ):
            raise TypeError(
                f"actor_options must be a dict of Ray actor options, got {actor_options!r}"
            )
        if name is None:
            name = f"RayWorkerPool-{next(_names)}"
        self.name = _validate.text("name", name)
        if not ray.is_initialized():
            raise RuntimeError(
                "RayWorkerPool needs Ray running in this process: call ray.init() first (or"
                " ray.init(address=...) to join a cluster)"
            )
        self._rules: dict[str, Any] = {
            "check_after": after or 0.0,
            "max_uses": uses,
            "max_lifetime": lifetime,
        }
        try:
            self._actor_class: Any = ray.remote(_Holder).options(**actor_options)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"actor_options refused by Ray: {exc}") from exc

        self._lock = threading.Lock()
        #: Wakes the housekeeper (a timer changed), blocked submitters and ``shutdown``.
        self._changed = threading.Condition(self._lock)
        self._admission: Admission[_Task] = Admission(name=self.name, max_pending=self.max_pending)
        #: Admitted tasks, in order (ghosts included until dispatch skips them).
        self._queue: deque[_Task] = deque()
        #: Tasks to send again, first: their actor died under them and they may run twice.
        #: Already taken off the admission core's queue.
        self._again: deque[_Task] = deque()
        self._slots = [_Slot(i) for i in range(self.workers)]
        self._stopping = False
        self._stopped = threading.Event()
        self._counts: Counter[str] = Counter()
        self._last_create_error: BaseException | None = None
        #: Work decided in Ray's callbacks, done by the housekeeper (see :meth:`_defer`).
        self._deferred: list[_Todo] = []
        todo = _Todo()
        with self._lock:
            for slot in self._slots:
                slot.state = _STARTING
                slot.deadline = time.monotonic() + START_TIMEOUT
                todo.start.append(slot)
        self._perform(todo)
        self._housekeeper = threading.Thread(
            target=self._housekeep, name=f"respool-ray-{self.name}", daemon=True
        )
        self._housekeeper.start()

    # -- public API ---------------------------------------------------------------------------

    def submit(
        self, fn: Callable[..., R], /, *args: Any, retry: bool = False, **kwargs: Any
    ) -> Future[R]:
        """Queue ``fn(resource, *args, **kwargs)`` for a free actor; return its future.

        ``retry=True``: the task is safe to run twice, so if its actor dies under it, it runs
        once more on another actor (first in line) before failing with :class:`ActorLost`.
        When the queue is full: ``on_full="block"`` waits up to ``timeout``
        (``PoolTimeout``), ``"reject"`` raises ``PoolFull``. ``PoolClosed`` after
        ``shutdown``.
        """
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {fn!r}")
        if not isinstance(retry, bool):
            raise TypeError(f"retry must be a bool, got {retry!r}")
        task = _Task(fn, args, kwargs, retry, time.monotonic())
        self._admit(task, reject=self.on_full == "reject", timeout=self.timeout)
        return task

    def map(
        self, fn: Callable[..., R], *iterables: Iterable[Any], timeout: float | None = None
    ) -> Iterator[R]:
        """Lazily ``fn(resource, *items)`` over items taken in step from *iterables*, in
        order, with at most ``max_pending`` (or ``2 * workers``) in flight: the next input is
        pulled only when a result is taken, so memory stays flat over any length. *timeout*
        bounds the whole iteration (``PoolTimeout``); closing the iterator cancels what has
        not started."""
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {fn!r}")
        limit = _validate.seconds("timeout", timeout)
        window = self.max_pending or 2 * self.workers
        deadline = None if limit is None else time.monotonic() + limit
        return self._map(fn, zip(*iterables, strict=False), window, deadline)

    def _map(
        self,
        fn: Callable[..., R],
        inputs: Iterator[tuple[Any, ...]],
        window: int,
        deadline: float | None,
    ) -> Iterator[R]:
        def submit(args: tuple[Any, ...], timeout: float | None) -> Future[R]:
            task = _Task(fn, args, {}, False, time.monotonic())
            self._admit(task, reject=False, timeout=timeout)
            return task

        return ordered_map(submit, inputs, window, deadline, self.name)

    def shutdown(self, wait: bool = True, cancel_pending: bool = False) -> None:
        """Refuse new work; run what is queued (or cancel it: ``cancel_pending``), then have
        every actor destroy its resource, and kill it. ``wait``: return once all that is done
        (every future settled, every actor stopped)."""
        todo = _Todo()
        with self._lock:
            if not self._stopping:
                self._stopping = True
                self._admission.close("was shut down")  # waiting submitters get PoolClosed
                if cancel_pending:
                    while self._queue:
                        task = self._queue.popleft()
                        ghost = task.admission == GHOST
                        self._admission.purge(task)
                        if not ghost:
                            todo.cancel.append(task)
                    while self._again:
                        task = self._again.popleft()
                        self._counts["failed"] += 1
                        error = PoolClosed(
                            f"pool {self.name!r} was shut down before this task could run"
                            " again after its actor died"
                        )
                        todo.settle.append((task, None, error))
                self._plan(todo, time.monotonic())
            self._changed.notify_all()
        self._perform(todo)
        if wait and threading.current_thread() is not self._housekeeper:
            # (From a future's done-callback, which runs on the housekeeper, waiting for the
            # housekeeper would wait for itself: the shutdown then completes on its own.)
            self._stopped.wait()
            self._housekeeper.join()

    def stats(self) -> RayWorkerStats:
        """A snapshot of the pool's counts (see :class:`RayWorkerStats`)."""
        with self._lock:
            counts = self._counts
            busy = sum(1 for s in self._slots if s.state == _BUSY)
            ready = sum(1 for s in self._slots if s.state in (_IDLE, _BUSY))
            retired = {reason: counts[f"retired:{reason}"] for reason in REASONS}
            now = time.monotonic()
            failing = [s for s in self._slots if s.backoff.failures]
            return RayWorkerStats(
                name=self.name,
                workers=ready,
                busy=busy,
                idle=ready - busy,
                queued=self._admission.live + len(self._again),
                waiting=self._admission.waiting,
                submitted=self._admission.admitted,
                completed=counts["completed"],
                failed=counts["failed"],
                cancelled=counts["cancelled"],
                rejected=self._admission.rejected,
                timeouts=self._admission.timeouts,
                resources=counts["created"] - counts["destroyed"],
                created=counts["created"],
                destroyed=counts["destroyed"],
                replaced=sum(retired.values()),
                create_errors=counts["create_errors"],
                reset_errors=counts["reset_errors"],
                check_failures=counts["check_failures"],
                destroy_errors=counts["destroy_errors"],
                retired=retired,
                create_failures=max((s.backoff.failures for s in self._slots), default=0),
                create_retry_in=min((max(0.0, s.deadline - now) for s in failing), default=0.0),
                actors_lost=counts["actors_lost"],
                actors_replaced=counts["actors_replaced"],
            )

    def __enter__(self) -> RayWorkerPool[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown(wait=True)

    def __repr__(self) -> str:
        return f"<RayWorkerPool {self.name!r} workers={self.workers}>"

    # -- admission ----------------------------------------------------------------------------

    def _admit(self, task: _Task, *, reject: bool, timeout: float | None) -> None:
        """Admit *task* to the queue (waiting for room as *reject* and *timeout* say)."""
        todo = _Todo()
        with self._lock:
            admission = self._admission
            if not admission.submit_nowait(task):
                if reject or timeout == 0:
                    admission.reject(timed_out=not reject)
                    if reject:
                        raise PoolFull(
                            f"pool {self.name!r}: {self.max_pending} tasks already queued"
                        )
                    raise PoolTimeout(f"pool {self.name!r}: no room in the queue")
                deadline = None if timeout is None else time.monotonic() + timeout
                waiter = admission.wait(task, None, time.monotonic())
                try:
                    while waiter.state == WAITING:
                        remaining = left(deadline)
                        if remaining == 0.0:
                            admission.withdraw(waiter, timed_out=True)
                            raise PoolTimeout(
                                f"pool {self.name!r}: no room in the queue within {timeout} s"
                            )
                        self._changed.wait(remaining)
                finally:
                    if waiter.state == WAITING:  # interrupted
                        admission.withdraw(waiter, timed_out=False)
                if task.admission != QUEUED:
                    raise PoolClosed(f"pool {self.name!r} was shut down")
            # Admitted: on the queue now, under the lock, so the queue's order is admission's.
            self._queue.append(task)
            task.add_done_callback(self._maybe_cancelled)
            self._plan(todo, time.monotonic())
        self._perform(todo)

    def _maybe_cancelled(self, task: Future[Any]) -> None:
        """A queued future cancelled by its caller frees its place (a ghost)."""
        if not task.cancelled():
            return
        with self._lock:
            assert isinstance(task, _Task)
            if task.admission == QUEUED:
                self._admission.cancelled(task)
                self._counts["cancelled"] += 1
                self._changed.notify_all()

    # -- the moves (under the lock) -----------------------------------------------------------

    def _next(self) -> _Task | None:
        """The next task to send (to run again first, then in admission order), or None."""
        if self._again:
            return self._again.popleft()
        while self._queue:
            task = self._queue.popleft()
            ghost = task.admission == GHOST
            if self._admission.taken(task):  # waiting submitters admitted into the slot
                self._changed.notify_all()
            if ghost or not task.set_running_or_notify_cancel():
                continue
            return task
        return None

    def _plan(self, todo: _Todo, now: float) -> None:
        """Hand tasks to idle actors; fail tasks nobody can run; finish a shutdown."""
        for slot in self._slots:
            if slot.state != _IDLE:
                continue
            task = self._next()
            if task is None:
                break
            slot.state = _BUSY
            slot.task = task
            todo.send.append((slot, slot.actor, task))
        if (self._queue or self._again) and all(
            s.backoff.failures or s.state == _STOPPED for s in self._slots
        ):
            self._expire(todo, now)
        if self._stopping and not self._queue and not self._again:
            for slot in self._slots:
                if slot.state == _IDLE:
                    slot.state = _STOPPING
                    slot.deadline = now + STOP_TIMEOUT
                    todo.stop.append((slot, slot.actor))
                elif slot.state == _BACKOFF:
                    slot.state = _STOPPED
            if all(s.state == _STOPPED for s in self._slots):
                self._stopped.set()
            self._changed.notify_all()

    def _expire(self, todo: _Todo, now: float) -> None:
        """Every actor is failing (its ``create``, or its start): tasks waiting past
        ``timeout`` fail with ``PoolTimeout`` chained to the last error; all of them once the
        pool is stopping. (A slow start alone never expires a task: an actor may take seconds
        to start, and ``timeout`` may be shorter; a start that never ends is cut at
        :data:`START_TIMEOUT`, which counts as a failure.)"""
        give_up = self._stopping
        for line in (self._again, self._queue):
            while line:
                task = line[0]
                late = self.timeout is not None and now - task.since >= self.timeout
                if not (late or give_up):
                    break
                line.popleft()
                if line is self._queue:
                    ghost = task.admission == GHOST
                    if self._admission.taken(task):
                        self._changed.notify_all()
                    if ghost or not task.set_running_or_notify_cancel():
                        continue
                cause = self._last_create_error
                error = PoolTimeout(
                    f"pool {self.name!r}: no actor could run this task within"
                    f" {self.timeout} s"
                    + ("; the actors' create keeps failing" if cause is not None else "")
                )
                error.__cause__ = cause
                self._counts["failed"] += 1
                todo.settle.append((task, None, error))

    def _count(self, slot: _Slot, events: dict[str, int]) -> None:
        """Add an actor's answer to the pool's counts."""
        slot.holding = bool(events.pop("holding", slot.holding))
        self._counts.update(events)

    def _lose(self, slot: _Slot, todo: _Todo, now: float, error: BaseException | None) -> None:
        """*slot*'s actor is gone or useless: kill it, and start another after the backoff
        (unless the pool is stopping with nothing left to run)."""
        if slot.actor is not None:
            todo.kill.append(slot.actor)
            slot.actor = None
        if slot.holding:  # its resource went with it: gone, if not by our destroy
            self._counts["destroyed"] += 1
            slot.holding = False
        slot.task = None
        if self._stopping and not self._queue and not self._again:
            slot.state = _STOPPED
            return
        slot.deadline = slot.backoff.failed(now, error).at
        slot.state = _BACKOFF
        self._changed.notify_all()  # the housekeeper has a new timer

    # -- callbacks (on Ray's threads) ---------------------------------------------------------

    def _on_ready(self, slot: _Slot, actor: Any, done: Future[Any]) -> None:
        todo = _Todo()
        now = time.monotonic()
        with self._lock:
            if slot.actor is not actor or slot.state != _STARTING:
                return
            try:
                ok, error, events, identity = done.result()
            except Exception as exc:  # the actor died before it could answer
                ok, error, events, identity = False, exc, {}, slot.name
            self._count(slot, events)
            slot.name = identity
            if ok:
                slot.backoff.succeeded()
                slot.state = _IDLE
            else:
                self._last_create_error = error
                if slot.backoff.failures == 0:
                    log.warning("pool %r: create failed in %s: %r", self.name, identity, error)
                self._lose(slot, todo, now, error)
            self._plan(todo, now)
            self._defer(todo)

    def _on_done(self, slot: _Slot, actor: Any, task: _Task, done: Future[Any]) -> None:
        todo = _Todo()
        now = time.monotonic()
        with self._lock:
            current = slot.actor is actor and slot.task is task
            try:
                status, value, events = done.result()
            except RayActorError as exc:
                self._counts["actors_lost"] += 1
                if current:
                    self._lose(slot, todo, now, exc)
                if task.retry:
                    task.retry = False
                    self._again.appendleft(task)
                else:
                    self._counts["failed"] += 1
                    lost = ActorLost(
                        f"pool {self.name!r}: {slot.name} died while running this task"
                    )
                    lost.__cause__ = exc
                    todo.settle.append((task, None, lost))
            except Exception as exc:  # Ray could not run it or return its result
                self._counts["failed"] += 1
                todo.settle.append((task, None, exc))
                if current:
                    slot.state, slot.task = _IDLE, None
            else:
                self._count(slot, events)
                if status == _NO_RESOURCE:  # the task did not run: first in line again
                    self._last_create_error = value
                    self._again.appendleft(task)
                    if current:
                        self._lose(slot, todo, now, value)
                else:
                    self._counts["completed" if status == _OK else "failed"] += 1
                    todo.settle.append(
                        (task, value, None) if status == _OK else (task, None, value)
                    )
                    if current:
                        slot.state, slot.task = _IDLE, None
            self._plan(todo, now)
            self._defer(todo)

    def _on_stopped(self, slot: _Slot, actor: Any, done: Future[Any]) -> None:
        with self._lock:
            try:
                self._count(slot, done.result())
            except Exception:  # dead already, or destroy hung until killed
                if slot.holding:
                    self._counts["destroyed"] += 1
                    slot.holding = False
            if slot.actor is actor:
                slot.state = _STOPPED
                slot.actor = None
            todo = _Todo()
            todo.kill.append(actor)
            self._plan(todo, time.monotonic())
            self._defer(todo)

    def _defer(self, todo: _Todo) -> None:
        """A callback's work, for the housekeeper to do: Ray's callbacks run on a thread of
        Ray's own, from which calling Ray again (``ray.kill``, ``.remote()``) can deadlock,
        and where a caller's own done-callbacks must not run either. (Under the lock.)"""
        if todo:
            self._deferred.append(todo)
            self._changed.notify_all()

    # -- doing it (outside the lock) ----------------------------------------------------------

    def _perform(self, todo: _Todo) -> None:
        if not todo:
            return
        for task in todo.cancel:
            if task.cancel():
                with self._lock:
                    self._counts["cancelled"] += 1
        for task, value, error in todo.settle:
            if error is not None:
                task.set_exception(error)
            else:
                task.set_result(value)
        for actor in todo.kill:
            with contextlib.suppress(Exception):
                ray.kill(actor)
        for slot in todo.start:
            self._start(slot)
        for slot, actor, task in todo.send:
            try:
                ref = actor.run.remote(task.fn, task.args, task.kwargs)
            except Exception as exc:  # fn or its arguments do not pickle: the task's error
                self._not_sent(slot, actor, task, exc)
                continue
            ref.future().add_done_callback(functools.partial(self._on_done, slot, actor, task))
        for slot, actor in todo.stop:
            try:
                ref = actor.stop.remote()
            except Exception:  # Ray is gone (ray.shutdown() came first): nothing to stop
                with self._lock:
                    if slot.actor is actor:
                        slot.state, slot.actor, slot.holding = _STOPPED, None, False
                    self._plan(_Todo(), time.monotonic())
                continue
            ref.future().add_done_callback(functools.partial(self._on_stopped, slot, actor))

    def _not_sent(self, slot: _Slot, actor: Any, task: _Task, exc: Exception) -> None:
        """Ray refused to send *task* (its function or arguments cannot be serialized): the
        task fails with that error, and its actor is free again."""
        todo = _Todo()
        with self._lock:
            self._counts["failed"] += 1
            todo.settle.append((task, None, exc))
            if slot.actor is actor and slot.task is task:
                slot.state, slot.task = _IDLE, None
            self._plan(todo, time.monotonic())
        self._perform(todo)

    def _start(self, slot: _Slot) -> None:
        try:
            actor = self._actor_class.remote(self.lifecycle, self._rules)
        except Exception as exc:  # the lifecycle does not pickle, Ray is gone...
            todo = _Todo()
            with self._lock:
                if slot.state == _STARTING and slot.actor is None:
                    self._last_create_error = exc
                    self._lose(slot, todo, time.monotonic(), exc)
                self._plan(todo, time.monotonic())
            self._perform(todo)
            return
        with self._lock:
            wanted = slot.state == _STARTING and slot.actor is None
            if wanted:
                slot.actor = actor
        if not wanted:
            with contextlib.suppress(Exception):
                ray.kill(actor)
            return
        actor.ready.remote().future().add_done_callback(
            functools.partial(self._on_ready, slot, actor)
        )

    # -- the housekeeper ----------------------------------------------------------------------

    def _housekeep(self) -> None:
        """The pool's timers: restart actors after their backoff, kill actors whose
        ``destroy`` outlasts :data:`STOP_TIMEOUT`, expire tasks nobody can run."""
        while not self._stopped.is_set():
            todo = _Todo()
            with self._lock:
                now = time.monotonic()
                wake = now + 1.0
                for slot in self._slots:
                    if slot.state == _BACKOFF:
                        if now >= slot.deadline:
                            self._counts["actors_replaced"] += 1
                            slot.state = _STARTING
                            slot.deadline = now + START_TIMEOUT
                            todo.start.append(slot)
                        else:
                            wake = min(wake, slot.deadline)
                    elif slot.state == _STARTING and slot.actor is not None:
                        if now >= slot.deadline:
                            error = TimeoutError(
                                "the actor did not start and create its resource within"
                                f" {START_TIMEOUT} s (does the cluster have what its"
                                " actor_options ask for?)"
                            )
                            log.warning("pool %r: %s", self.name, error)
                            self._last_create_error = error
                            self._lose(slot, todo, now, error)
                        else:
                            wake = min(wake, slot.deadline)
                    elif slot.state == _STOPPING:
                        if now >= slot.deadline:  # destroy hung: kill it, resource and all
                            todo.kill.append(slot.actor)
                            slot.state, slot.actor = _STOPPED, None
                            if slot.holding:
                                self._counts["destroyed"] += 1
                                slot.holding = False
                        else:
                            wake = min(wake, slot.deadline)
                for line in (self._again, self._queue):
                    if line and self.timeout is not None:
                        wake = min(wake, line[0].since + self.timeout)
                self._plan(todo, now)
                deferred, self._deferred = self._deferred, []
                if not todo and not deferred and not self._stopped.is_set():
                    self._changed.wait(max(0.0, wake - now))
            for work in (*deferred, todo):
                try:
                    self._perform(work)
                except Exception:  # never lose the housekeeper: log, and go on
                    log.exception("pool %r: housekeeping failed", self.name)
        with self._lock:  # what the last callbacks left (the final kills)
            deferred, self._deferred = self._deferred, []
        for work in deferred:
            self._perform(work)
