"""``TaskFuture``: a ``concurrent.futures.Future`` that is cheap to make, run, settle and wait on.

A ``WorkerPool`` round trip (submit a task, wait for its result) is a ping-pong between two
threads, so every bytecode either thread runs lies on the critical path. The stock ``Future``
builds a ``threading.Condition`` (a Python object around an ``RLock``) and two lists per
future, takes that lock to mark the future running and again to settle it, and waits with
``Condition.wait`` (a fresh lock plus Python bookkeeping per wait).

``TaskFuture`` keeps the stock future's state, fields and every public method's behaviour,
so ``concurrent.futures.wait``, ``as_completed``, ``asyncio.wrap_future`` and callbacks work
unchanged, but on the path a pool's task takes it makes nothing and takes no lock:

* **Nothing is built up front.** ``_state``, ``_result`` and ``_exception`` start as class
  attributes (``PENDING``, ``None``, ``None``) that a move shadows by writing the instance's
  own; ``_condition``, ``_waiters`` and ``_done_callbacks`` are made on first use by
  whoever needs them (``wait``, ``as_completed``, ``add_done_callback``, ``cancel``,
  ``repr``), atomically (``dict.setdefault``), so two threads making one at once agree on it.
* **Leaving PENDING is one atomic step**: ``__dict__.setdefault("_state", new)``. The key is
  absent exactly while the future is pending, so of a worker marking it running and a
  ``cancel()``, whoever inserts first wins and the other sees the winner's state.
* **RUNNING belongs to the runner**: only the thread that marked the future running moves it
  on (``set_result``/``set_exception``), as the ``Executor`` protocol has it, so it writes
  the outcome, then the state, with no lock. (Two threads settling one running future at the
  very same instant is outside that protocol; they are not told apart. Settling twice in
  turn still raises ``InvalidStateError``.)
* **Publish, then look, on both sides** (Dekker's handshake, sound under the interpreter
  lock): whoever waits or registers first *publishes* itself in the instance dict (a sleeper
  list; the lazily made ``_condition``, which ``wait``, ``as_completed`` and
  ``add_done_callback`` create before they look at the state), then *looks* at the state; a
  move *publishes* the new state, then *looks* for anyone published. Whichever runs second
  sees the other: a waiter that saw the future pending is always found and woken. When no
  one was published, a settle is two stores and a length test.
* A thread that must wait registers a lock of its own (a *sleeper*, born held; a pool's
  ``submit`` makes the first one with the future, see :class:`WorkItem`) and blocks
  acquiring it, in C; the move that makes the future done takes the sleeper list out of the
  dict in one step and releases each sleeper it pops. A waiter that gives up (timeout,
  interrupt) removes its own sleeper; ``list.pop`` and ``list.remove`` are atomic, so each
  sleeper is either released once or removed by its waiter, never skipped.
* The ``_condition`` that ``wait``/``as_completed`` take is a bare ``RLock`` subclass: the
  only users of ``Condition.wait`` on a future are the stock ``result``/``exception``, which
  are overridden here, so nobody waits on it and ``notify_all`` has nothing to do. A move
  that finds it made takes it once, so that a registration in progress completes before the
  move reads ``_waiters`` and ``_done_callbacks``.

Why a lock per waiter rather than one shared lock passed from waiter to waiter: a waiter
interrupted (``KeyboardInterrupt``, an asynchronous exception) between taking a shared lock
and passing it on would keep it for good and strand every other waiter. A sleeper belongs to
one waiter: whatever happens to that waiter after its sleeper is released harms nobody else.
Nobody polls: a thread blocked for an hour wakes once.

Invariant: once the state is done and no waiter is between registering and looking,
``_sleepers`` is empty; sleepers are released only by the move that takes the state from
PENDING or RUNNING to CANCELLED or FINISHED, which happens once, so a waiter whose sleeper
was released always sees a done state.
"""

from __future__ import annotations

import logging
import threading
from _thread import RLock, allocate_lock
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, InvalidStateError
from concurrent.futures._base import (
    CANCELLED,
    CANCELLED_AND_NOTIFIED,
    FINISHED,
    PENDING,
    RUNNING,
)
from typing import Any, Final, Generic, TypeVar, overload

__all__ = ["TaskFuture", "WorkItem"]

T = TypeVar("T")
V = TypeVar("V")

# The stock future's logger, so existing logging set-ups see callback errors the same way.
_log = logging.getLogger("concurrent.futures")

_CANCELLED: Final = (CANCELLED, CANCELLED_AND_NOTIFIED)
_SETTABLE: Final = (PENDING, RUNNING)
#: The longest wait a lock accepts.
_FOREVER: Final = threading.TIMEOUT_MAX


class _Condition(RLock):  # type: ignore[misc]
    """The lock ``wait()`` and ``as_completed()`` take on a future; nobody waits on it."""

    __slots__ = ()

    def notify(self, n: int = 1) -> None:
        """Nothing to wake: TaskFuture's waiters block on their own sleepers instead."""

    def notify_all(self) -> None:
        """Nothing to wake: TaskFuture's waiters block on their own sleepers instead."""


class _Lazy(Generic[V]):
    """A field made on first use, per instance: most futures never need it.

    A non-data descriptor: once made, the value sits in the instance dict, which Python
    looks in first, so later reads cost what a plain attribute does. ``dict.setdefault`` is
    one atomic step: of two threads making the field at once, both get the one that was
    stored first.
    """

    __slots__ = ("factory", "name")

    def __init__(self, factory: Callable[[], V]) -> None:
        self.factory = factory
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> _Lazy[V]: ...

    @overload
    def __get__(self, instance: object, owner: type | None = None) -> V: ...

    def __get__(self, instance: object, owner: type | None = None) -> V | _Lazy[V]:
        if instance is None:
            return self
        value: V = instance.__dict__.setdefault(self.name, self.factory())
        return value


# The fields the stock __init__ sets. TaskFuture provides each of them itself (class
# defaults, lazy fields); a Python whose Future has more gets those from the stock __init__.
_KNOWN_FIELDS: Final = frozenset(
    {"_condition", "_state", "_result", "_exception", "_waiters", "_done_callbacks"}
)
_EXTRA_FIELDS: Final = frozenset(vars(Future())) - _KNOWN_FIELDS


class TaskFuture(Future[T]):
    """A ``concurrent.futures.Future`` that builds nothing and locks nothing on the path a
    task takes (see the module doc)."""

    __slots__ = ("on_cancel",)

    # The stock future's fields (see the module doc): defaults until a move writes its own.
    _state: str = PENDING
    _result: Any = None
    _exception: BaseException | None = None
    _condition: _Lazy[_Condition] = _Lazy(_Condition)  # type: ignore[assignment]
    _waiters: _Lazy[list[Any]] = _Lazy(list)
    _done_callbacks: _Lazy[list[Callable[[Future[Any]], object]]] = _Lazy(list)
    #: Locks of the threads blocked waiting for this future, while any has registered.
    _sleepers: list[Any] | tuple[()] = ()

    def __init__(self) -> None:
        if _EXTRA_FIELDS:  # pragma: no cover - a Python whose Future grew new fields
            Future.__init__(self)
            fields = self.__dict__
            for name in _KNOWN_FIELDS:
                del fields[name]
        #: Called with the future, under its ``_condition``, when ``cancel()`` moves it from
        #: PENDING to CANCELLED (a pool uses it to free the queue slot at once).
        self.on_cancel: Callable[[TaskFuture[Any]], object] | None = None

    # -- waiting --------------------------------------------------------------------------

    def result(self, timeout: float | None = None) -> T:
        try:
            state = self._state
            if state != FINISHED:
                state = self._await(timeout)
            if state == FINISHED:
                error = self._exception
                if error is None:
                    result: T = self._result
                    return result
                raise error
            if state in _CANCELLED:
                raise CancelledError()
            raise TimeoutError()
        finally:
            # A traceback keeps this frame: do not let it keep the future (and its error).
            error = None
            self = None  # type: ignore[assignment]

    def exception(self, timeout: float | None = None) -> BaseException | None:
        try:
            state = self._state
            if state != FINISHED:
                state = self._await(timeout)
            if state == FINISHED:
                return self._exception
            if state in _CANCELLED:
                raise CancelledError()
            raise TimeoutError()
        finally:
            self = None  # type: ignore[assignment]

    def _await(self, timeout: float | None) -> str:
        """Block until the future is done or *timeout* passes; return the state then.

        The waiter publishes its sleeper, then looks at the state; a move publishes the
        state, then looks for sleepers (module doc): a waiter either sees a done state and
        does not block, or its sleeper is released.
        """
        state = self._state
        if state == FINISHED or state in _CANCELLED:
            return state
        if timeout is not None and not timeout > 0:  # 0, negative or nan: do not block
            return state
        fields = self.__dict__
        sleeper = fields.pop("_spare", None)  # one waiter gets it: pop is atomic
        if sleeper is None:
            sleeper = allocate_lock()
            sleeper.acquire()
            fields.setdefault("_sleepers", []).append(sleeper)  # publish, then look
        state = self._state
        if state == FINISHED or state in _CANCELLED:
            self._forget(sleeper)
            return state
        woken = False
        try:
            if timeout is None:
                # A timed wait whose deadline never comes (TIMEOUT_MAX: centuries) rather than
                # an untimed one: on Linux it wakes up sooner when released (measured by
                # ``respool bench worker``: about a tenth off the round trip). Not a poll.
                while not woken:
                    woken = sleeper.acquire(timeout=_FOREVER)
            else:
                woken = sleeper.acquire(timeout=min(timeout, _FOREVER))
        finally:
            if not woken:  # timed out or interrupted: leave no sleeper behind
                self._forget(sleeper)
        return self._state

    def _forget(self, sleeper: Any) -> None:
        """Unregister a waiter's sleeper, unless the move that woke waiters took it.

        Lock-free: ``list.remove`` is atomic. If the move already took the list out of the
        dict, the sleeper is not in the list found here (or none is found): nothing to do;
        the move releases it, harmlessly, as nobody waits on it any more.
        """
        sleepers = self.__dict__.get("_sleepers")
        if sleepers:
            try:
                sleepers.remove(sleeper)
            except ValueError:
                pass

    def _done(self, failed: bool | None) -> list[Callable[[Future[Any]], object]] | None:
        """After a move made the future done: tell ``wait()`` and ``as_completed()`` of a
        finish (*failed*: by ``set_exception``; None: a cancel, which they hear of from
        ``set_running_or_notify_cancel``, as with the stock future), wake the sleepers, and
        return the done callbacks to run, if any.

        The state is published before this runs (module doc). Sleepers are taken out of the
        dict in one step, so a waiter arriving later makes a new list and sees the state.
        They are woken last: every bytecode run after waking a thread delays it, as it
        needs the interpreter lock this thread holds.
        """
        fields = self.__dict__
        callbacks: list[Callable[[Future[Any]], object]] | None = None
        condition = fields.get("_condition")
        if condition is not None:  # someone may be registering a waiter or a callback
            with condition:  # a registration in progress completes first
                if failed is not None:
                    for waiter in fields.get("_waiters", ()):
                        if failed:
                            waiter.add_exception(self)
                        else:
                            waiter.add_result(self)
            callbacks = fields.get("_done_callbacks")
        sleepers = fields.pop("_sleepers", None)
        if sleepers:
            while sleepers:
                sleepers.pop().release()
        return callbacks

    def _call_back(self, callbacks: list[Callable[[Future[Any]], object]] | None) -> None:
        """Run the done callbacks, logging their errors, as the stock future does."""
        for callback in callbacks or ():
            try:
                callback(self)
            except Exception:
                _log.exception("exception calling callback for %r", self)

    # -- moves ----------------------------------------------------------------------------

    def set_running_or_notify_cancel(self) -> bool:
        fields = self.__dict__
        if "_state" not in fields and fields.setdefault("_state", RUNNING) is RUNNING:
            return True  # it was pending, and this thread inserted RUNNING: it runs it
        with self._condition:
            state = self._state
            if state == CANCELLED:
                fields["_state"] = CANCELLED_AND_NOTIFIED
                for waiter in fields.get("_waiters", ()):
                    waiter.add_cancelled(self)
                return False
            _log.critical("Future %s in unexpected state: %s", id(self), state)
            raise RuntimeError("Future in unexpected state")

    def cancel(self) -> bool:
        fields = self.__dict__
        with self._condition:  # cancellers in turn; the runner does not take it (module doc)
            state = self._state
            if state in (RUNNING, FINISHED):
                return False
            if state != PENDING:
                return True  # cancelled already
            if fields.setdefault("_state", CANCELLED) != CANCELLED:
                return False  # the runner marked it running (or settled it) meanwhile
            callbacks = self._done(None)
            hook = self.on_cancel
            if hook is not None:
                try:
                    hook(self)
                except Exception:  # the future is cancelled all the same; callbacks still run
                    _log.exception("on_cancel hook failed for %r", self)
        self._call_back(callbacks)
        return True

    def set_result(self, result: T) -> None:
        fields = self.__dict__
        if fields.get("_state") is RUNNING:  # the runner's: nobody else moves it on
            fields["_result"] = result
            fields["_state"] = FINISHED  # publish, then look
            if len(fields) != 2:  # someone registered: a sleeper, a condition
                callbacks = self._done(False)
                if callbacks:
                    self._call_back(callbacks)
            return
        self._settle_pending("_result", result)

    def set_exception(self, exception: BaseException | None) -> None:
        fields = self.__dict__
        if fields.get("_state") is RUNNING:
            fields["_exception"] = exception
            fields["_state"] = FINISHED
            if len(fields) != 2:  # someone registered: a sleeper, a condition
                callbacks = self._done(True)
                if callbacks:
                    self._call_back(callbacks)
            return
        self._settle_pending("_exception", exception)

    def _settle_pending(self, field: str, value: object) -> None:
        """``set_result``/``set_exception`` on a future not marked running (or done).

        Under the condition, so cancellers wait; a runner marking it running meanwhile is
        overtaken (its own settle then raises ``InvalidStateError``, as with the stock
        future). The outcome is stored before the state, so a reader that sees FINISHED sees
        it.
        """
        fields = self.__dict__
        with self._condition:
            state = self._state
            if state not in _SETTABLE:
                raise InvalidStateError(f"{state}: {self!r}")
            fields[field] = value
            fields["_state"] = FINISHED
            callbacks = self._done(field == "_exception")
        self._call_back(callbacks)


class WorkItem(TaskFuture[T]):
    """The future of a task for a pool's worker, with what the pool keeps per task: when it
    was submitted (``since``) and the state its admission core keeps (``admission``).

    One object per submit instead of a future plus a record. Its ``__init__`` sets only its
    own slots rather than call ``TaskFuture.__init__``: a worker pool builds it on the
    caller's critical path, and this saves a Python call per task. What to run is not kept
    here: it travels beside the future on the pool's queue, so a caller keeping the future
    does not keep the task's arguments alive.

    *waited* (``submit``'s items): make the first waiter's sleeper now, registered and held,
    so that ``result()`` only has to claim it (``dict.pop``: one waiter gets it) and block.
    The caller of ``submit(...).result()`` then does less between queueing the task (which
    wakes a worker) and blocking (which lets that worker take the interpreter lock): a
    worker that wakes while the caller still holds the lock has to sleep once more. The
    sleeper is registered before anyone can look at the state, so the handshake holds; a
    settle with nobody waiting releases it to no one. ``map`` waits on most of its items
    only once they are done, so it passes False and saves the lock.
    """

    __slots__ = ("admission", "since")

    def __init__(
        self,
        since: float,
        on_cancel: Callable[[TaskFuture[Any]], object] | None,
        waited: bool = True,
    ) -> None:
        if _EXTRA_FIELDS:  # pragma: no cover - a Python whose Future grew new fields
            TaskFuture.__init__(self)
        if waited:
            spare = allocate_lock()
            spare.acquire()
            fields = self.__dict__
            fields["_sleepers"] = [spare]
            fields["_spare"] = spare
        self.on_cancel = on_cancel
        self.since = since
        #: Owned by the admission core (``respool._core.admission``); 0 is "waiting".
        self.admission = 0
