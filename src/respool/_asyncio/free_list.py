"""The asyncio shell shared by ``AsyncFixedPool`` and ``AsyncElasticPool``.

It makes the same core moves as the threaded shell (:mod:`respool._threads.free_list`), from
the same :class:`~respool._free_list_shell.FreeListShell`; what differs is how a caller waits
and how callbacks run:

* a waiter parks on a future of the pool's loop (its :class:`~respool._core.free_list.Waiter`
  handle, replaced each time it parks again), with ``loop.call_later`` for its deadline and
  for the end of a doze (see *Fairness* in the core);
* callbacks may be plain or ``async def``: a result that is awaitable is awaited;
* the background work (filling owed slots with backoff, housekeeping, recovering lost leases)
  is one task of the pool's loop, holding the pool weakly, started when first needed.

Cancellation safety comes from one rule: **no core move is split by an await**. A task is
cancelled only where it awaits; there it holds either nothing (it is queued: leaving the queue
passes on anything granted meanwhile, see :meth:`FreeListShell._forgo`), a reserved slot whose
``create`` is running (the create goes on as the pool's own task, and its resource goes to
the pool), an entry under an async ``check`` (the check runs as a task of its own: it is
cancelled, and the entry destroyed once it has stopped, see :meth:`AsyncFreeListPool._viable`),
or an entry under ``reset`` (the entry is destroyed: its state is unknown). Destruction that
follows a cancellation is never awaited by the cancelled task: an async ``destroy`` runs as the
pool's own task, which ``close()`` waits for.

A pool may be built outside any loop. It binds to the loop it is opened on (``open()``, or its
first use, after which what it must hold is created in the background) and refuses any other.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import math
import sys
import threading
import types
import weakref
from asyncio import Future as _Future
from asyncio import _get_running_loop
from asyncio import tasks as _tasks
from collections.abc import Awaitable, Callable, Coroutine, Generator
from functools import partial
from types import TracebackType
from typing import Any, Final, Self, TypeVar

from respool import _debug, _fork, _validate
from respool._asyncio.callbacks import Chores, running_loop
from respool._core.free_list import (
    ABORT,
    CHECK,
    CLOSE,
    CLOSED,
    CREATE,
    Entry,
    FreeListCore,
    Todo,
    Waiter,
    _Token,
)
from respool._free_list_shell import FROM_POOL, FreeListShell
from respool.errors import PoolClosed
from respool.lease import _PENDING, AsyncDebugLease, AsyncLease
from respool.lifecycle import Lifecycle
from respool.stats import PoolStats

__all__ = ["AsyncFreeListPool"]

T = TypeVar("T")

log = logging.getLogger("respool")

# Where a pool is in its life (``AsyncFreeListPool._state``).
_NEW: Final = "new"
_OPENING: Final = "opening"
_OPEN: Final = "open"


#: The class of the leases pools hand out: debug mode swaps in :class:`AsyncDebugLease`
#: here, so the hot path has no debug branch.
_lease_class: type[AsyncLease[Any]] = AsyncLease


def _on_debug(on: bool) -> None:
    global _lease_class
    _lease_class = AsyncDebugLease if on else AsyncLease


_debug.subscribe(_on_debug)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


class _Tending:
    """What the background task and the pool's finalizer share, without the pool: the
    future the task sleeps on, set to wake it."""

    __slots__ = ("wake",)

    def __init__(self) -> None:
        self.wake: asyncio.Future[None] | None = None

    def poke(self) -> None:
        if self.wake is not None:
            _wake(self.wake)


async def _tend_forever(ref: weakref.ref[AsyncFreeListPool[Any]], tending: _Tending) -> None:
    """The pool's background task: tend it whenever woken or due, until it is closed or
    collected. It holds the pool only while tending it, so an abandoned pool is collected
    (its finalizer wakes this task to end).

    A pass ends by computing when the next is due (:meth:`AsyncFreeListPool._tend`), after
    everything it did, so a wake-up asked for during a pass (its own moves ask for fills
    while a create backs off) needs no second pass: the next is due at once only if there
    is work now (lost leases to recover, a retry or a deadline that has come), and even then
    the task yields to the loop first. Re-running on every such ask would spin without ever
    yielding whenever creates back off while housekeeping has idle resources to look at.
    """
    loop = asyncio.get_running_loop()
    while True:
        pool = ref()
        if pool is None:
            return
        try:
            delay = await pool._tend()
        except Exception:
            log.warning("pool %r: housekeeping failed", pool.name, exc_info=True)
            delay = 1.0
        if pool._core.closed and not pool._orphans:
            pool._tender = None
            return
        again = bool(pool._orphans) or delay == 0
        del pool
        if again:
            await asyncio.sleep(0)
            continue
        tending.wake = wake = loop.create_future()
        timer = None if delay is None else loop.call_later(delay, _wake, wake)
        try:
            await wake
        finally:
            tending.wake = None
            if timer is not None:
                timer.cancel()


def _abandoned(
    loop: asyncio.AbstractEventLoop,
    core: FreeListCore[Any],
    destroy: Callable[[Any], object] | None,
    tending: _Tending,
) -> None:
    """The pool was garbage-collected while open: end its background task, destroy what it
    held idle (what is lent is its holders' now: nobody can return it)."""

    def on_loop() -> None:
        tending.poke()
        todo = core.close()
        for entry in todo.destroy:
            try:
                result = None if destroy is None else destroy(entry.resource)
                if result is not None and inspect.isawaitable(result):
                    task = loop.create_task(_awaited(result))
                    _orphaned_tasks.add(task)
                    task.add_done_callback(_orphaned_tasks.discard)
            except Exception:
                log.warning("pool %r: destroy raised", core.name, exc_info=True)

    try:
        loop.call_soon_threadsafe(on_loop)
    except RuntimeError:  # the loop is closed: nothing of it can run any more
        pass


#: Destroys started for pools that no longer exist (kept until done: see ``Chores``).
_orphaned_tasks: set[asyncio.Task[Any]] = set()


# -- async checks: a task of their own, started eagerly ----------------------------------------
#
# An async ``check`` runs as a task of its own, so that the acquire waiting for it can stop
# waiting at its deadline without cutting the check short (a check that is cancelled may take
# long to stop: psycopg first tries to cancel the query on the server), and the pool takes its
# verdict later. But most checks of a local resource answer at once, and every acquire of a
# used resource is checked: a task started the usual way would cost them two turns of the
# loop. So the task is started *eagerly*: its first step runs at once, in the caller's turn,
# and a check that answers within it costs no turn at all. The first step must run *as the
# task*, not as the caller: what the check does there may capture the current task (an
# ``asyncio.timeout`` entered before its first suspension does) and act on it later.


class _Check:
    """An async ``check`` under way: the caller's future to wake when it ends (None once the
    caller has stopped waiting: the pool takes the outcome then)."""

    __slots__ = ("waiter",)

    def __init__(self) -> None:
        self.waiter: asyncio.Future[None] | None = None


async def _checking(pending: Awaitable[object], check: _Check) -> object:
    """The check's task: await its verdict, then wake the caller waiting for it (from here,
    not from a done callback: that would cost the caller one more turn of the loop)."""
    try:
        return await pending
    finally:
        waiter = check.waiter
        if waiter is not None:
            _wake(waiter)


def _verdict(task: asyncio.Future[object]) -> tuple[bool, BaseException | None]:
    """What a check task that ended (not cancelled) answered: ``(alive, None)``, or
    ``(False, error)`` when it raised, or when its answer's truth raised (a numpy array)."""
    error = task.exception()
    if error is not None:
        return False, error
    try:
        return bool(task.result()), None
    except Exception as exc:
        return False, exc


if sys.version_info >= (3, 12):

    def _start_eagerly(
        loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, object]
    ) -> asyncio.Future[object]:
        """*coro* as a task whose first step has run: asyncio's own eager start."""
        return asyncio.eager_task_factory(loop, coro)

else:

    class _FirstStep:
        """What the first step of a coroutine, run by hand, left for its task."""

        __slots__ = ("finished", "yielded")

        def __init__(self) -> None:
            self.finished = False
            self.yielded: Any = None

    @types.coroutine
    def _carry_on(coro: Coroutine[Any, Any, object], first: _FirstStep) -> Generator[Any, Any, Any]:
        """The body of a task whose coroutine *coro* has had its first step by hand: from
        there on, what ``yield from coro`` would be. It is primed (parked at its first
        ``yield``) before the task is made, so that a cancellation arriving before the task's
        first step is forwarded to *coro* too, as the task would have."""
        thrown: BaseException | None = None
        try:
            yield  # parked: the task's first step resumes here
        except GeneratorExit:  # closed unstarted (the task was dropped): so is *coro*
            if not first.finished:
                coro.close()
            raise
        except BaseException as exc:  # the task was cancelled before its first step
            thrown = exc
        if first.finished:  # it ended within the first step (its outcome is taken there)
            return None
        yielded = first.yielded
        if thrown is not None and isinstance(yielded, asyncio.Future):
            yielded.cancel()  # as a task cancels the future it waits on
        while True:
            sent = None
            if thrown is None:
                try:
                    sent = yield yielded
                except GeneratorExit:
                    coro.close()
                    raise
                except BaseException as exc:
                    thrown = exc
            try:
                if thrown is None:
                    yielded = coro.send(sent)
                else:
                    error, thrown = thrown, None
                    yielded = coro.throw(error)
            except StopIteration as stop:
                return stop.value

    def _start_eagerly(
        loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, object]
    ) -> asyncio.Future[object]:
        """*coro* as a task whose first step has run (Python 3.11 has no eager tasks: the
        step is run here, with the task made current for it, as 3.12 does). A coroutine that
        ended within it gives a future done with its outcome instead (its task, whose body
        is a mere ``return``, ends at its first step)."""
        first = _FirstStep()
        carrier = _carry_on(coro, first)
        carrier.send(None)
        context = contextvars.copy_context()
        task = loop.create_task(carrier, context=context)
        caller = _tasks.current_task(loop)
        if caller is not None:
            _tasks._leave_task(loop, caller)
        _tasks._enter_task(loop, task)
        try:
            first.yielded = context.run(coro.send, None)
        except BaseException as exc:
            first.finished = True
            done: asyncio.Future[object] = loop.create_future()
            if isinstance(exc, StopIteration):
                done.set_result(exc.value)
            elif isinstance(exc, asyncio.CancelledError):
                done.cancel()
            else:
                done.set_exception(exc)
            return done
        finally:
            _tasks._leave_task(loop, task)
            if caller is not None:
                _tasks._enter_task(loop, caller)
        return task


class AsyncFreeListPool(FreeListShell[T]):
    """Acquire/release machinery common to the asyncio free-list pools."""

    _awaits = True

    def __init__(
        self,
        create: Lifecycle[Any] | Callable[[], Any],
        **options: Any,
    ) -> None:
        super().__init__(create, **options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state = _NEW
        #: Set while ``open()`` primes: others opening wait for it.
        self._opening: asyncio.Future[None] | None = None
        #: Async destroys, and creates whose caller left, running as the pool's own tasks.
        self._chores = Chores(self.name)
        #: Async creates running now (for callers, for the filler, or left by callers).
        self._creates: set[asyncio.Future[Any]] = set()
        #: Async checks whose caller left before they ended (the pool takes the verdict).
        self._checks: set[asyncio.Future[Any]] = set()
        self._tending = _Tending()
        self._tender: asyncio.Task[None] | None = None
        #: Parked waiters' alarms (deadline or end of doze), and the one timer for the
        #: earliest (see :meth:`_alarm`).
        self._alarms: dict[Waiter[T], float] = {}
        self._alarm_at = math.inf
        self._timer: asyncio.TimerHandle | None = None
        _fork.register(self)

    def _wire(self) -> None:
        """See :meth:`FreeListShell._wire`. Without a ``reset`` or health rules, giving a
        resource back is nothing but the core's put (``_bare_put``): a lease then calls the
        core's ``put_fast`` (while quiet, the idle list's own ``append``); else it awaits
        :meth:`_put_slow`."""
        super()._wire()
        self._bare_put = self._reset is None and not self._health and self._observer is None

    # -- public API -----------------------------------------------------------------------

    def acquire(
        self,
        timeout: float | None = FROM_POOL,
        _new: Any = object.__new__,
        _pending: Any = _PENDING,
    ) -> AsyncLease[T]:
        """A lease on a resource, acquired by ``async with`` (yielding the resource) or by
        ``await`` (yielding the lease), waiting up to *timeout* seconds (default: the pool's).

        ``None`` waits forever, ``0`` never waits. Raises ``PoolTimeout`` at the deadline,
        ``PoolFull`` when ``max_waiting`` callers already wait, ``PoolClosed`` once closed,
        and whatever ``create`` raised when the pool had to create a resource for this
        caller and could not. Cancelling the waiting task loses nothing.
        """
        # (The last two parameters are globals bound once, for the hot path.)
        lease: AsyncLease[T] = _new(_lease_class)
        lease._pool = self
        lease._entry = _pending
        if timeout is not FROM_POOL:
            lease._timeout = _validate.seconds("timeout", timeout)
        return lease

    def try_acquire(self) -> AsyncLease[T] | None:
        """A lease on a resource that can be had without waiting, else None.

        It never waits, so it never awaits a callback: it lends an idle resource, or makes
        one when the pool has room and ``create`` is a plain function. An ``async`` create
        it would need is started as the pool's own task instead (its resource then goes to
        the pool), and None is returned; so is an ``async`` check, unless it answers within
        its first step (without suspending), which is heard at once.
        """
        if _get_running_loop() is not self._loop or self._loop is None:
            self._enter("try_acquire()")
        try:
            entry = self._core.take_nowait()
        except IndexError:  # none idle
            entry = None
        if entry is None or not self._plain:
            entry = self._try_slow(entry)
            if entry is None:
                return None
        entry.uses += 1
        lease: AsyncLease[T] = object.__new__(_lease_class)
        lease._pool = self
        lease._entry = entry
        return lease

    async def open(self) -> None:
        """Bind the pool to the running loop and create what it holds (``size``,
        ``min_idle``); if a ``create`` fails, destroy the others, close, and raise.

        Opening an open pool does nothing. ``async with pool:`` calls it.
        """
        loop = running_loop("open()")
        if self._loop is not None and self._loop is not loop:
            raise self._wrong_loop("open()")
        if self._core.closed:
            raise PoolClosed(f"pool {self.name!r} is closed")
        if self._state is _OPEN:
            return
        if self._opening is not None:  # another task is opening it
            await asyncio.shield(self._opening)
            if self._core.closed:
                raise PoolClosed(f"pool {self.name!r} could not be opened")
            return
        self._bind(loop)
        self._state = _OPENING
        self._opening = opening = loop.create_future()
        try:
            await self._prime(self._prime_count)
        finally:
            self._state = _OPEN
            self._opening = None
            opening.set_result(None)
        if self._health:
            self._tend_now()

    async def close(self) -> None:
        """Stop lending: waiters get ``PoolClosed``, idle resources are destroyed now and
        leased ones when they come back; returns once every destroy started so far has
        ended. Calling it again does nothing more. Cancelling it leaves the destroys running.
        """
        on_loop = self._loop is None or _get_running_loop() is self._loop
        if not on_loop and not self._loop_gone():
            raise self._wrong_loop("close()")
        if self._orphans and on_loop:
            self._adopt_orphans()
        with self._lock:
            todo = self._core.close()
        for task in list(self._creates):  # what they would make is not wanted any more
            task.cancel()
        for task in list(self._checks):  # their entries are destroyed once they stop
            task.cancel()
        if self._timer is not None:  # every waiter has been released
            self._timer.cancel()
            self._timer, self._alarm_at = None, math.inf
        try:
            self._perform(todo)
        finally:
            if on_loop:
                self._tending.poke()  # its task sees the pool closed and ends
                await self._chores.join()

    def stats(self) -> PoolStats:
        """A consistent snapshot of the pool's counts (readable from any thread)."""
        if self._orphans and _get_running_loop() is self._loop:
            self._adopt_orphans()
        with self._lock:
            stats = self._core.stats()
        return self._with_usage(stats)

    def drain(self) -> None:
        """See :meth:`respool.FixedPool.drain`; call it from the pool's loop."""
        self._on_loop("drain()")
        super().drain()

    def _resize(self, *, min_size: int, max_size: int | None, max_idle: int) -> None:
        self._on_loop("resize()")
        super()._resize(min_size=min_size, max_size=max_size, max_idle=max_idle)

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- the loop ----------------------------------------------------------------------------

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        weakref.finalize(
            self, _abandoned, loop, self._core, self._destroy_fn, self._tending
        ).atexit = False

    def _enter(self, what: str) -> None:
        """A call from a loop other than the pool's: bind an unbound pool to it (opened by
        its first use: what it must hold is owed to the background task), else refuse."""
        loop = _get_running_loop()
        if loop is None:
            raise RuntimeError(
                f"pool {self.name!r}: {what} must be called from a running asyncio event loop"
            )
        if self._loop is not None:
            raise self._wrong_loop(what)
        self._bind(loop)
        self._state = _OPEN
        with self._lock:
            todo = self._core.open_lazily()
        self._perform(todo)
        if self._health:
            self._tend_now()

    def _on_loop(self, what: str) -> None:
        if self._loop is not None and _get_running_loop() is not self._loop:
            raise self._wrong_loop(what)

    def _loop_gone(self) -> bool:
        return self._loop is not None and self._loop.is_closed()

    def _wrong_loop(self, what: str) -> RuntimeError:
        where = "a closed event loop" if self._loop_gone() else "another event loop"
        return RuntimeError(
            f"pool {self.name!r} belongs to {where}; {what} was called from"
            f" {'no running loop' if _get_running_loop() is None else 'a different one'}."
            " An asyncio pool serves the loop it was opened on (its resources, such as"
            " streams, belong to that loop): make one pool per event loop"
        )

    # -- acquire, the slow way ----------------------------------------------------------

    async def _acquire_slow(self, timeout: float | None, entry: Entry[T] | None) -> Entry[T]:
        """Acquire with waiting, creating and checking; *entry* came from the lock-free take
        (then the loop is the pool's). Returns the entry, counted as lent.

        One coroutine frame for all of it but the wait itself (:meth:`_park`): a contended
        acquire in asyncio costs mostly Python calls, so the steps of an obtain are inline.
        """
        loop = self._loop
        if entry is None and (_get_running_loop() is not loop or loop is None):
            self._enter("acquire()")
            loop = self._loop
        assert loop is not None
        if self._orphans:
            self._adopt_orphans()
        if timeout is FROM_POOL:
            timeout = self._timeout
        started = self._clock()
        deadline = None if timeout is None else started + timeout
        core = self._core
        failed: Entry[T] | None = None
        why = CHECK
        now = started
        while True:
            if entry is None:
                # What is at hand (an idle entry, a grant, a slot to create in), or a place
                # in the line at this caller's place (after a failed check: see there).
                waits = deadline is None or deadline > self._clock()
                handle: _Future[None] | None = _Future(loop=loop) if waits else None
                # Past its deadline, a caller whose check failed stops there (as in the
                # threaded shell); one that never waits (timeout 0) goes on.
                give_up = failed is not None and not waits and bool(timeout)
                outcome = self._ask(handle, failed, why, started, trying=False, give_up=give_up)
                if outcome is None:
                    raise self._timed_out(timeout)
                if type(outcome) is Waiter:
                    outcome = await self._park(outcome, timeout, deadline)
                if type(outcome) is Entry:
                    entry = outcome
                elif outcome is CREATE:
                    entry = await self._create_leased(timeout, deadline)
                else:
                    assert outcome is CLOSED, outcome
                    raise PoolClosed(f"pool {self.name!r} is closed")
                if self._health:
                    now = self._clock()  # it may have waited
            reason = core.worn(entry, now) if self._health else None
            if reason is None and (
                self._check is None
                or not core.needs_check(entry, started, now)
                or await self._viable(entry, now, timeout, deadline)
            ):
                if self._leak_timeout is not None:
                    self._lending(entry, now)
                if self._observer is not None:
                    self._began(entry)
                entry.uses += 1
                return entry
            # Due for retirement, or unviable: destroy it and go on at the head of the line.
            failed, why, entry = entry, reason or CHECK, None

    async def _park(
        self, waiter: Waiter[T], timeout: float | None, deadline: float | None
    ) -> Entry[T] | _Token:
        """Wait until *waiter* is served or *deadline* passes; return its grant.

        Woken without a grant, the waiter was roused to compete for an idle resource (see
        *Fairness* in the core): it looks, and parks again on a new future if a newcomer was
        faster, until the next wake-up or, dozing, until ``recheck_at``. Cancelled at any
        await, it leaves the queue and passes on whatever it was granted meanwhile.
        """
        loop = self._loop
        assert loop is not None
        core = self._core
        try:
            while True:
                future = waiter.handle
                assert isinstance(future, asyncio.Future)
                until = waiter.recheck_at  # set by look() in this task
                if until is None or (deadline is not None and deadline < until):
                    until = deadline
                if until is None:
                    await future
                else:
                    self._alarm(waiter, until)
                    try:
                        await future
                    finally:
                        del self._alarms[waiter]
                if waiter.grant is not None:
                    break
                now = self._clock()
                if deadline is not None and now >= deadline:
                    with self._lock:
                        todo = core.cancel(waiter, now, timed_out=True)
                    self._perform(todo)
                    break
                waiter.handle = _Future(loop=loop)  # before any move can signal it
                with self._lock:
                    todo = core.look(waiter, now)
                self._perform(todo)
                if todo.outcome is not waiter:
                    break
        except BaseException:
            # Cancelled (or interrupted): leave the queue, and pass on anything granted
            # meanwhile, so that it is not stranded.
            self._forgo(waiter)
            raise
        return self._granted(waiter, timeout)

    def _alarm(self, waiter: Waiter[T], at: float) -> None:
        """Wake *waiter* at *at* (its deadline, or the end of its doze) unless it is woken
        before. One timer of the loop serves every waiter of the pool, set for the earliest
        alarm: waiters come with the same timeout in arrival order, so a new alarm is nearly
        always later than the one set, and parking costs a dict entry instead of a timer
        (a timer per wait was a fifth of a contended acquire's cost)."""
        self._alarms[waiter] = at
        if at < self._alarm_at:
            if self._timer is not None:
                self._timer.cancel()
            loop = self._loop
            assert loop is not None
            self._alarm_at = at
            self._timer = loop.call_later(at - self._clock(), self._ring)

    def _ring(self) -> None:
        """The alarm timer fired: wake every waiter whose alarm is due, set the next."""
        self._timer = None
        self._alarm_at = math.inf
        now = self._clock()
        soonest = math.inf
        for waiter, at in self._alarms.items():
            if at <= now:
                future = waiter.handle
                assert isinstance(future, asyncio.Future)
                _wake(future)
            elif at < soonest:
                soonest = at
        if soonest < math.inf:
            assert self._loop is not None
            self._alarm_at = soonest
            self._timer = self._loop.call_later(soonest - now, self._ring)

    async def _create_leased(self, timeout: float | None, deadline: float | None) -> Entry[T]:
        """Fill the slot the core reserved for this caller; errors go to the caller.

        An async ``create`` runs as a task of its own, so that neither the caller's
        cancellation nor its deadline cuts it short: the caller stops waiting for it (its
        ``wait_for`` stays bounded) and the resource, once made, goes to the pool.
        """
        try:
            made = self._create()
        except BaseException:
            self._create_failed()
            raise
        if inspect.isawaitable(made):
            task = self._create_task(made)
            try:
                left = None if deadline is None else max(0.0, deadline - self._clock())
                await asyncio.wait((task,), timeout=left)
            except BaseException:
                self._adopt_create(task)
                raise
            if not task.done():
                self._adopt_create(task)
                with self._lock:
                    self._core.note_timeout()
                raise self._timed_out(timeout)
            if task.cancelled():  # by close()
                self._create_failed(error=False)
                raise PoolClosed(f"pool {self.name!r} was closed while creating")
            try:
                made = task.result()
            except BaseException:
                self._create_failed()
                raise
        return self._filled(made)

    def _adopt_create(self, task: asyncio.Future[Any]) -> None:
        """The caller of an async ``create`` left before it ended: the pool takes the
        outcome, a resource for the idle list (or the next waiter), or a failure."""
        task.add_done_callback(self._created_late)

    def _created_late(self, task: asyncio.Future[Any]) -> None:
        if task.cancelled():
            self._create_failed(error=False)
            return
        error = task.exception()
        if error is not None:
            log.warning("pool %r: a create whose caller left failed", self.name, exc_info=error)
            self._create_failed()
            return
        with self._lock:
            now = self._clock()
            todo = self._core.release(self._core.filled(task.result(), now), now)
        self._perform(todo, in_caller=False)

    async def _viable(
        self, entry: Entry[T], now: float, timeout: float | None, deadline: float | None
    ) -> bool:
        """Run ``check``: False (an ``Exception``, or a falsy verdict) means *entry* must be
        destroyed.

        An async check runs as a task of its own, started eagerly (see :func:`_checking`),
        which the caller waits for until its deadline, never longer: then it gets
        ``PoolTimeout`` and the check goes on as the pool's (:meth:`_adopt_check`), so a
        check that is slow to answer, or to stop, neither holds the caller past its timeout
        nor condemns a healthy resource. Cancelled while it waits, the caller does not wait
        for the check to stop either: the check is cancelled and the entry destroyed once it
        has stopped (its state is unknown). Past its deadline, the caller starts no check: it
        gives the entry back and times out (``timeout=0`` excepted: it never waits, but a
        check that answers within its first step is heard).
        """
        verdict = self._check_start(entry, now)
        if isinstance(verdict, bool):
            return verdict
        loop = self._loop
        assert loop is not None
        late = deadline is not None and timeout and self._clock() >= deadline
        if late and inspect.iscoroutine(verdict):  # too late to start: nothing of it has run
            verdict.close()
            self._forgo(entry)
            with self._lock:
                self._core.note_timeout()
            raise self._timed_out(timeout)
        check = _Check()
        try:
            task = _start_eagerly(loop, _checking(verdict, check))
        except BaseException:  # interrupted within its first step (3.12 re-raises that)
            self._check_interrupted(entry)
            raise
        if task.done():  # it answered within its first step: no turn of the loop
            return self._heard(entry, task, now)
        if deadline is None or deadline > self._clock():
            check.waiter = waiter = loop.create_future()
            try:
                if deadline is None:
                    await waiter
                else:
                    # (A timer of its own, not the pool's alarm: that one's holds the
                    # pool until it rings, and every acquire of a used resource checks.)
                    timer = loop.call_later(deadline - self._clock(), _wake, waiter)
                    try:
                        await waiter
                    finally:
                        timer.cancel()
            except BaseException:
                check.waiter = None
                self._abort_check(entry, task)
                raise
            check.waiter = None
            if task.done():  # (a verdict that raced the deadline is heard all the same)
                return self._heard(entry, task, now)
        self._adopt_check(entry, task)
        with self._lock:
            self._core.note_timeout()
        raise self._timed_out(timeout)

    def _heard(self, entry: Entry[T], task: asyncio.Future[object], now: float) -> bool:
        """The verdict of *entry*'s finished check task, for the caller that waited for it."""
        if task.cancelled():  # by the check itself, or by someone else: not by this caller
            log.warning("pool %r: check was cancelled; destroying the resource", self.name)
            return False
        alive, error = _verdict(task)
        if error is None:
            if alive:
                entry.checked_at = now
            return alive
        if isinstance(error, Exception):
            log.warning("pool %r: check failed; destroying the resource", self.name, exc_info=error)
            return False
        self._check_interrupted(entry)  # KeyboardInterrupt, SystemExit: for the caller
        raise error

    def _abort_check(self, entry: Entry[T], task: asyncio.Future[object]) -> None:
        """The caller left while *entry*'s check ran (cancelled, interrupted): cancel the
        check, and destroy the entry once the check has stopped, never before (it may still
        be using the resource), as an abort. The caller does not wait for that."""
        task.cancel()
        task.add_done_callback(partial(self._check_aborted, entry))
        self._chores.track(task)

    def _check_aborted(self, entry: Entry[T], task: asyncio.Future[object]) -> None:
        if not task.cancelled():
            task.exception()  # retrieved: it is an abort whatever the check answered
        self._check_interrupted(entry, in_caller=False)

    def _adopt_check(self, entry: Entry[T], task: asyncio.Future[object]) -> None:
        """*entry*'s check outlives its caller (its deadline passed; or a ``try_acquire``,
        which never waits): the pool takes the verdict (see :meth:`_checked_late`).
        ``close()`` cancels it; a check adopted by a closed pool is cancelled at once."""
        task.add_done_callback(partial(self._checked_late, entry))
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)
        self._chores.track(task)
        if self._core.closed:
            task.cancel()

    def _checked_late(self, entry: Entry[T], task: asyncio.Future[object]) -> None:
        """A check whose caller left has ended: passed, *entry* goes back to the pool (the
        idle list, or the next waiter; destroyed if the pool closed meanwhile); failed, it
        is destroyed and counted as a failed check; cancelled (by ``close()``, or by anyone
        else), it is destroyed unchecked."""
        core = self._core
        now = self._clock()
        if task.cancelled():
            with self._lock:
                todo = core.discard(entry, now, CLOSE if core.closed else ABORT)
            self._perform(todo, in_caller=False)
            return
        alive, error = _verdict(task)
        if error is not None:
            log.warning(
                "pool %r: a check whose caller left failed; destroying the resource",
                self.name,
                exc_info=error,
            )
        with self._lock:
            if alive:
                entry.checked_at = now
                todo = core.give_back(entry, now)
            else:
                todo = core.check_failed(entry, now, None, CHECK, give_up=True)
        self._perform(todo, in_caller=False)

    def _try_slow(self, entry: Entry[T] | None) -> Entry[T] | None:
        """``try_acquire`` beyond the bare take: create, check, retire what is worn; never
        awaiting (an async callback is left to a task of the pool's, see there)."""
        if self._orphans:
            self._adopt_orphans()
        core = self._core
        started = now = self._clock()
        failed: Entry[T] | None = None
        why = CHECK
        while True:
            if entry is None:
                outcome = self._ask(None, failed, why, started, trying=True)
                if outcome is None:
                    return None
                if outcome is CLOSED:
                    raise PoolClosed(f"pool {self.name!r} is closed")
                if outcome is CREATE:
                    entry = self._create_now()
                    if entry is None:
                        return None
                else:
                    assert isinstance(outcome, Entry)
                    entry = outcome
                if self._health:
                    now = self._clock()
            reason = core.worn(entry, now) if self._health else None
            if reason is None:
                if self._check is None or not core.needs_check(entry, started, now):
                    self._lending(entry, now)
                    if self._observer is not None:
                        self._began(entry)
                    return entry
                alive = self._viable_now(entry, now)
                if alive is None:
                    return None
                if alive:
                    self._lending(entry, now)
                    if self._observer is not None:
                        self._began(entry)
                    return entry
            failed, why, entry = entry, reason or CHECK, None

    def _create_now(self) -> Entry[T] | None:
        """``create`` for ``try_acquire``'s reserved slot; None when it is async (it goes on
        as the pool's task)."""
        assert self._loop is not None
        try:
            made = self._create()
        except BaseException:
            self._create_failed()
            raise
        if inspect.isawaitable(made):
            self._adopt_create(self._create_task(made))
            return None
        return self._filled(made)

    def _viable_now(self, entry: Entry[T], now: float) -> bool | None:
        """``check`` for ``try_acquire``; None when it is async and did not answer within its
        first step: it goes on as the pool's task, which gives the entry back (or destroys
        it) when the check ends."""
        verdict = self._check_start(entry, now)
        if isinstance(verdict, bool):
            return verdict
        assert self._loop is not None
        try:
            task = _start_eagerly(self._loop, _checking(verdict, _Check()))
        except BaseException:
            self._check_interrupted(entry)
            raise
        if task.done():
            return self._heard(entry, task, now)
        self._adopt_check(entry, task)
        return None

    # -- release ----------------------------------------------------------------------------

    async def _put_slow(self, entry: Entry[T]) -> None:
        """Return *entry* for reuse when there is more to do than the lock-free put: retire
        it if it is due (lifetime, uses, drain), reset it (awaited if async; cancelled
        mid-reset, it is destroyed), stamp its idle time."""
        now = self._returning(entry)
        if now is None:
            return
        reset = self._reset
        if reset is not None:
            try:
                done = reset(entry.resource)
                if inspect.isawaitable(done):
                    await done
            except BaseException as exc:
                if self._count_reset_failure(entry, exc):
                    raise
                return
        self._put_back(entry, now)

    async def _discard(self, entry: Entry[T]) -> None:
        """``lease.discard()``: destroy now, and wait for an async destroy to end."""
        before = self._chores.tasks
        self._throw_away(entry)
        started = self._chores.tasks - before
        if started:
            await asyncio.wait(started)

    # -- background work (a task of the pool's loop) -----------------------------------------

    def _tend_soon(self) -> None:
        """Have the background task run soon: from any thread (``Entry.__del__``)."""
        loop = self._loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._tend_now)
        except RuntimeError:  # the loop is closed
            pass

    def _tend_now(self) -> None:
        """Wake the background task, or start it (on the pool's loop, in its thread)."""
        self._tending.poke()
        task = self._tender
        if (task is None or task.done()) and self._loop is not None:
            if self._loop.is_closed():
                return
            self._tender = self._loop.create_task(
                _tend_forever(weakref.ref(self), self._tending), name=f"respool:{self.name}"
            )

    async def _tend(self) -> float | None:
        """Recover lost leases, housekeep, create what the pool owes itself; in how many
        seconds to run again (None: when asked)."""
        if self._orphans:
            self._adopt_orphans()
        if self._health:
            await self._housekeep()
        with self._lock:
            count = self._core.start_fills(self._clock())
        for started in range(count):
            if not await self._fill_one(unstarted=count - started - 1):
                break
        return self._next_tend()

    async def _housekeep(self) -> None:
        with self._lock:
            todo = self._core.housekeep(self._clock())
        self._perform(todo, in_caller=False)
        for entry in todo.check:
            alive = False
            check = self._check
            assert check is not None
            try:
                result = check(entry.resource)
                alive = bool(await result if inspect.isawaitable(result) else result)
            except BaseException:  # the pool's own task: counted and logged
                log.warning("pool %r: keepalive check raised", self.name, exc_info=True)
            self._keepalive_done(entry, alive)
        for entry in todo.report:
            self._report_held(entry)

    async def _fill_one(self, unstarted: int) -> bool:
        """Create one owed resource and hand it over; False if ``create`` failed (or was
        cancelled: ``close()`` cancels creates in flight, and so may their owner)."""
        try:
            made = self._create()
            if inspect.isawaitable(made):
                task = self._create_task(made)
                try:
                    await asyncio.wait((task,))
                except BaseException:
                    task.cancel()
                    raise
                made = task.result()  # raises what create raised, or CancelledError
        except BaseException as exc:
            self._fill_failed(exc, unstarted)
            return False
        self._stock(made, owed=True)
        return True

    def _create_task(self, made: Awaitable[Any]) -> asyncio.Future[Any]:
        """An async ``create`` as a task of the pool's, which ``close()`` cancels."""
        task = asyncio.ensure_future(made, loop=self._loop)
        self._creates.add(task)
        task.add_done_callback(self._creates.discard)
        self._chores.track(task)
        return task

    async def _prime(self, count: int) -> None:
        """Create *count* resources now; if one fails, destroy the others and raise."""
        with self._lock:
            reserved = self._core.reserve(count)
        for made in range(reserved):
            try:
                resource = self._create()
                if inspect.isawaitable(resource):
                    resource = await resource
            except BaseException:
                self._prime_failed(unmade=reserved - made)
                raise
            self._stock(resource)

    # -- performing what the core asked for --------------------------------------------------

    def _perform(self, todo: Todo[T], *, in_caller: bool = True) -> None:
        """Wake served waiters, have the background task fill what is owed, destroy retired
        resources (an async destroy as the pool's own task)."""
        for waiter in todo.wake:
            future = waiter.handle
            assert isinstance(future, asyncio.Future)
            if not future.done():  # (a cancelled waiter's is: it leaves by itself)
                future.set_result(None)
        if todo.fill:
            if _get_running_loop() is self._loop:
                self._tend_now()
            else:
                self._tend_soon()
        if todo.destroy:
            self._destroy_all(todo.destroy, in_caller)

    def _destroy_later(self, awaitable: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            super()._destroy_later(awaitable)
            return
        self._chores.start(self._destroying(awaitable), loop)

    async def _destroying(self, awaitable: Awaitable[Any]) -> None:
        try:
            await awaitable
        except BaseException as exc:
            self._destroy_failed(exc)

    def _after_fork_in_child(self) -> None:
        """Forget the parent's resources (without touching them), its loop and its tasks:
        the child's first use binds its own loop, and its resources are made anew."""
        self._lock = threading.Lock()
        self._orphans = []
        self._core = self._core.forked()
        self._observe_afresh()
        self._wire()
        self._loop = None
        self._state = _NEW
        self._opening = None
        self._chores = Chores(self.name)
        self._creates = set()
        self._checks = set()
        self._tending = _Tending()
        self._tender = None
        self._alarms = {}
        self._alarm_at = math.inf
        self._timer = None
