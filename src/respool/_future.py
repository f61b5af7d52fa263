"""``TaskFuture``: a ``concurrent.futures.Future`` that is cheap to make and to wait on.

A ``WorkerPool`` round trip (submit a task, wait for its result) is a ping-pong between two
threads, so every bytecode either thread runs lies on the critical path. The stock ``Future``
spends most of its own cost on a ``threading.Condition``: building one (a Python object
wrapping an ``RLock``), and ``Condition.wait`` (a fresh lock per wait plus Python
bookkeeping) and ``notify_all`` (a Python loop) on every round trip.

``TaskFuture`` keeps the stock future's state, fields and every public method's behaviour,
so ``concurrent.futures.wait``, ``as_completed``, ``asyncio.wrap_future`` and callbacks work
unchanged, but:

* a thread that must wait registers a lock of its own (a *sleeper*, born held), then looks
  at the state once more, and blocks acquiring the sleeper, in C; the move that settles the
  future sets the state, then releases every registered sleeper and forgets them (publish,
  then look, on both sides: see ``TaskFuture._await``);
* the ``_condition`` that ``wait``/``as_completed`` take is a bare ``RLock`` subclass: the
  only users of ``Condition.wait`` on a future are the stock ``result``/``exception``, which
  are overridden here, so nobody waits on it and ``notify_all`` has nothing to do.

Why a lock per waiter rather than one shared lock passed from waiter to waiter: a waiter
interrupted (``KeyboardInterrupt``, an asynchronous exception) between taking a shared lock
and passing it on would keep it for good and strand every other waiter, so each waiter
would have to poll as well. A sleeper belongs to one waiter: whatever happens to that waiter
after its sleeper is released harms nobody else, and a waiter that gives up while its
sleeper is still registered (timeout, interrupt) removes it under ``_condition``. Nobody
polls: a thread blocked for an hour wakes once.

Invariant: once the state is done and no waiter is between registering and looking,
``_sleepers`` is empty; a sleeper is released only by the move that takes the state from
PENDING or RUNNING to CANCELLED or FINISHED (``cancel``, ``set_result``, ``set_exception``,
each under ``_condition``), at most once, so a waiter whose sleeper was released always sees
a done state.
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
from typing import Any, Final, TypeVar

__all__ = ["TaskFuture", "WorkItem"]

T = TypeVar("T")

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


# The stock __init__ builds a threading.Condition we would throw away. Set the same fields
# directly, unless this Python's Future has fields we do not know of (then let it set them).
_KNOWN_FIELDS: Final = {
    "_condition",
    "_state",
    "_result",
    "_exception",
    "_waiters",
    "_done_callbacks",
}
_FAST_INIT: Final = set(vars(Future())) == _KNOWN_FIELDS


class TaskFuture(Future[T]):
    """A ``concurrent.futures.Future`` whose waits cost a lock acquire (see module doc)."""

    __slots__ = ("_sleepers", "on_cancel")

    _condition: Any
    _state: str
    _result: Any
    _exception: BaseException | None
    _waiters: list[Any]
    _done_callbacks: list[Any]

    def __init__(self) -> None:
        if _FAST_INIT:
            self._condition = _Condition()
            self._state = PENDING
            self._result = None
            self._exception = None
            self._waiters = []
            self._done_callbacks = []
        else:  # pragma: no cover - a Python whose Future grew new fields
            super().__init__()
            self._condition = _Condition()
        #: Locks of the threads blocked waiting for this future (see module doc).
        self._sleepers: list[Any] = []
        #: Called with the future, under its ``_condition``, when ``cancel()`` moves it from
        #: PENDING to CANCELLED (a pool uses it to free the queue slot at once).
        self.on_cancel: Callable[[TaskFuture[Any]], object] | None = None

    def _call_back(self) -> None:
        """Run the done callbacks, logging their errors, as the stock future does."""
        for callback in self._done_callbacks:
            try:
                callback(self)
            except Exception:
                _log.exception("exception calling callback for %r", self)

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

        The waiter registers its sleeper *before* it looks at the state, and a settling move
        sets the state *before* it looks at the sleepers (Dekker's handshake): whichever runs
        second sees the other, so a waiter either sees a done state and does not block, or
        its sleeper is released. ``list.append`` is atomic, so registering needs no lock;
        that is one lock round trip less on every task's critical path.
        """
        state = self._state
        if state == FINISHED or state in _CANCELLED:
            return state
        if timeout is not None and not timeout > 0:  # 0, negative or nan: do not block
            return state
        sleeper = allocate_lock()
        sleeper.acquire()
        self._sleepers.append(sleeper)  # publish, then look
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
        """Unregister a waiter's sleeper, unless the settling move already released it."""
        with self._condition:
            if sleeper in self._sleepers:
                self._sleepers.remove(sleeper)

    def _wake(self) -> None:
        """Release every sleeper (under ``_condition``, in a settling move)."""
        sleepers = self._sleepers
        if sleepers:
            for sleeper in sleepers:
                sleeper.release()
            sleepers.clear()

    # -- settling (each wakes the sleepers exactly once; see the module invariant) ---------

    def cancel(self) -> bool:
        with self._condition:
            state = self._state
            if state in (RUNNING, FINISHED):
                return False
            if state != PENDING:
                return True  # cancelled already
            self._state = CANCELLED
            self._wake()
            hook = self.on_cancel
            if hook is not None:
                try:
                    hook(self)
                except Exception:  # the future is cancelled all the same; callbacks still run
                    _log.exception("on_cancel hook failed for %r", self)
        self._call_back()
        return True

    def set_result(self, result: T) -> None:
        with self._condition:
            if self._state not in _SETTABLE:
                raise InvalidStateError(f"{self._state}: {self!r}")
            self._result = result
            self._state = FINISHED
            for waiter in self._waiters:
                waiter.add_result(self)
            sleepers = self._sleepers  # _wake(), written out: this is every task's hot path
            if sleepers:
                for sleeper in sleepers:
                    sleeper.release()
                sleepers.clear()
        if self._done_callbacks:
            self._call_back()

    def set_exception(self, exception: BaseException | None) -> None:
        with self._condition:
            if self._state not in _SETTABLE:
                raise InvalidStateError(f"{self._state}: {self!r}")
            self._exception = exception
            self._state = FINISHED
            for waiter in self._waiters:
                waiter.add_exception(self)
            self._wake()
        if self._done_callbacks:
            self._call_back()


class WorkItem(TaskFuture[T]):
    """The future of a task for a pool's worker, with what the pool keeps per task: when it
    was submitted (``since``) and the state its admission core keeps (``admission``).

    One object per submit instead of a future plus a record. Its ``__init__`` sets the
    future's fields itself rather than call ``TaskFuture.__init__``: a worker pool builds it
    on the caller's critical path, and this saves a Python call per task. What to run is not
    kept here: it travels beside the future on the pool's queue, so a caller keeping the
    future does not keep the task's arguments alive.
    """

    __slots__ = ("admission", "since")

    def __init__(self, since: float, on_cancel: Callable[[TaskFuture[Any]], object] | None) -> None:
        if _FAST_INIT:
            self._condition = _Condition()
            self._state = PENDING
            self._result = None
            self._exception = None
            self._waiters = []
            self._done_callbacks = []
            self._sleepers = []
        else:  # pragma: no cover - a Python whose Future grew new fields
            TaskFuture.__init__(self)
        self.on_cancel = on_cancel
        self.since = since
        #: Owned by the admission core (``respool._core.admission``); 0 is "waiting".
        self.admission = 0
