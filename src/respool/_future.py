"""``TaskFuture``: a ``concurrent.futures.Future`` that is cheap to make and to wait on.

A ``WorkerPool`` round trip (submit a task, wait for its result) is a ping-pong between two
threads, so every bytecode either thread runs lies on the critical path. The stock ``Future``
spends most of its own cost on a ``threading.Condition``: building one (a Python object
wrapping an ``RLock``), and ``Condition.wait`` (a fresh lock per wait plus Python
bookkeeping) and ``notify_all`` (a Python loop) on every round trip.

``TaskFuture`` keeps the stock future's state, fields and every public method's behaviour,
so ``concurrent.futures.wait``, ``as_completed``, ``asyncio.wrap_future`` and callbacks work
unchanged, but:

* waiting blocks on a per-future ``done`` lock (held from creation, released once, when the
  future reaches a done state), acquired in C; every waiter acquires and releases it, so any
  number of threads pass once it is released;
* the ``_condition`` that ``wait``/``as_completed`` take is a bare ``RLock`` subclass: the
  only users of ``Condition.wait`` on a future are the stock ``result``/``exception``, which
  are overridden here, so nobody waits on it and ``notify_all`` has nothing to do.

Invariant: ``done`` is released exactly once, by the move that takes the state from PENDING
or RUNNING to CANCELLED or FINISHED (``cancel``, ``set_result``, ``set_exception``), and
those moves happen under ``_condition``; it is never released while the state is PENDING or
RUNNING, so a waiter that gets through always sees a done state.
"""

from __future__ import annotations

import logging
import threading
from _thread import RLock
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, InvalidStateError
from concurrent.futures._base import (
    CANCELLED,
    CANCELLED_AND_NOTIFIED,
    FINISHED,
    PENDING,
    RUNNING,
)
from time import monotonic
from typing import Any, Final, TypeVar

__all__ = ["TaskFuture"]

T = TypeVar("T")

# The stock future's logger, so existing logging set-ups see callback errors the same way.
_log = logging.getLogger("concurrent.futures")

_CANCELLED: Final = (CANCELLED, CANCELLED_AND_NOTIFIED)
#: Longest a waiter sleeps before looking at the state itself (see ``TaskFuture._await``).
_POLL: Final = 0.05
_SETTABLE: Final = (PENDING, RUNNING)


class _Condition(RLock):  # type: ignore[misc]
    """The lock ``wait()`` and ``as_completed()`` take on a future; nobody waits on it."""

    __slots__ = ()

    def notify(self, n: int = 1) -> None:
        """Nothing to wake: TaskFuture's waiters block on its ``done`` lock instead."""

    def notify_all(self) -> None:
        """Nothing to wake: TaskFuture's waiters block on its ``done`` lock instead."""


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

    __slots__ = ("_done", "on_cancel")

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
        done = self._done = threading.Lock()
        done.acquire()
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

        Waiters pass the ``done`` lock on (acquire, then release at once). A waiter
        interrupted between the two (an asynchronous exception) would keep it held, so no
        waiter trusts the lock alone: each also wakes every ``_POLL`` seconds to look at the
        state, which is set before ``done`` is first released.
        """
        state = self._state
        if state == FINISHED or state in _CANCELLED:
            return state
        done = self._done
        if timeout is not None and not timeout > 0:  # 0, negative or nan: do not block
            if done.acquire(False):
                done.release()
            return self._state
        deadline = None if timeout is None else monotonic() + timeout
        while True:
            wait = _POLL if deadline is None else min(_POLL, deadline - monotonic())
            if wait > 0 and done.acquire(timeout=wait):
                done.release()  # let every other waiter through as well
                return self._state
            state = self._state
            if state == FINISHED or state in _CANCELLED:
                return state
            if deadline is not None and monotonic() >= deadline:
                return state

    # -- settling (each releases ``done`` exactly once; see the module invariant) ----------

    def cancel(self) -> bool:
        with self._condition:
            state = self._state
            if state in (RUNNING, FINISHED):
                return False
            if state != PENDING:
                return True  # cancelled already
            self._state = CANCELLED
            self._done.release()
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
            self._done.release()
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
            self._done.release()
        if self._done_callbacks:
            self._call_back()
