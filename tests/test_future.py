"""TaskFuture against the stock concurrent.futures.Future: same behaviour wherever observable.

Most tests run over both classes (ids ``stock`` and ``task``): the stock future is the
reference, so an assertion that holds for ``stock`` and fails for ``task`` is a divergence.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import linecache
import logging
import math
import signal
import sys
import threading
import time
import types
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import (
    ALL_COMPLETED,
    FIRST_COMPLETED,
    FIRST_EXCEPTION,
    CancelledError,
    Future,
    InvalidStateError,
)
from concurrent.futures._base import CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED
from typing import Any

import pytest

from respool._future import TaskFuture, WorkItem
from tests.conftest import Abort, Boom, wait_until

pytestmark = pytest.mark.timeout(60)

WAIT = 10.0  # generous bound for anything that should happen promptly
PROMPTLY = 2.0  # the same, where a stuck thread is a plausible failure


class SubmittedItem(WorkItem[Any]):
    """A pool's WorkItem as ``submit`` makes it: a sleeper ready for its first waiter."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(0.0, None)


CLASSES = [
    pytest.param(Future, id="stock"),
    pytest.param(TaskFuture, id="task"),
    pytest.param(SubmittedItem, id="item"),
]
SETTLES = ["result", "exception", "cancel"]

FutureClass = type[Future[Any]]


@pytest.fixture(params=CLASSES)
def cls(request: pytest.FixtureRequest) -> FutureClass:
    """The future class under test: the stock reference, then TaskFuture."""
    return request.param  # type: ignore[no-any-return]


# -- helpers ---------------------------------------------------------------------------------


class Waiter:
    """A thread running *call*; keeps what it returned or raised."""

    def __init__(self, call: Callable[[], object]) -> None:
        self._call = call
        self.outcome: tuple[str, object] | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            value = self._call()
        except BaseException as exc:
            self.outcome = ("raised", exc)
        else:
            self.outcome = ("returned", value)

    def wait_blocked(self) -> Waiter:
        """Return once the thread sits in the lock acquire a future's waiter blocks in."""
        wait_until(lambda: blocked_in_acquire(self.thread), WAIT)
        return self

    def finish(self) -> tuple[str, object]:
        self.thread.join(WAIT)
        assert not self.thread.is_alive(), "waiter still blocked"
        assert self.outcome is not None
        return self.outcome


WAITING_FILES = {threading.__file__, sys.modules[TaskFuture.__module__].__file__}


def at_acquire(frame: types.FrameType) -> str | None:
    """The source line if *frame* is at a lock acquire in ``Condition.wait`` or TaskFuture."""
    if frame.f_code.co_filename not in WAITING_FILES:
        return None
    line = linecache.getline(frame.f_code.co_filename, frame.f_lineno)
    return line if ".acquire(" in line else None


def blocked_in_acquire(thread: threading.Thread) -> bool:
    """*thread* is in the lock acquire a waiter on a future blocks in."""
    frame = sys._current_frames().get(thread.ident or -1)
    return frame is not None and at_acquire(frame) is not None


def no_sleeper_left(fut: Future[Any]) -> bool:
    """A done TaskFuture keeps no waiter's lock registered (the module invariant); always
    true for the stock future, which has none."""
    return not isinstance(fut, TaskFuture) or not fut._sleepers


def settle(fut: Future[Any], how: str, value: object = 42) -> None:
    """Complete *fut*: with a result, an exception (*value* must be one), or by cancelling."""
    if how == "result":
        fut.set_result(value)
    elif how == "exception":
        assert isinstance(value, BaseException)
        fut.set_exception(value)
    else:
        assert fut.cancel() is True


def outcome_of(call: Callable[[], object]) -> tuple[str, object]:
    """What *call* returned or raised, as Waiter records it."""
    try:
        return ("returned", call())
    except BaseException as exc:
        return ("raised", exc)


def expected(how: str, value: object, method: str) -> Callable[[tuple[str, object]], bool]:
    """A check of a result()/exception() outcome after ``settle(fut, how, value)``."""

    def check(outcome: tuple[str, object]) -> bool:
        kind, got = outcome
        if how == "cancel":
            return kind == "raised" and type(got) is CancelledError
        if method == "exception":
            return kind == "returned" and got is (value if how == "exception" else None)
        if how == "exception":
            return kind == "raised" and got is value
        return kind == "returned" and got is value

    return check


# -- basics ----------------------------------------------------------------------------------


def test_task_future_is_a_concurrent_future() -> None:
    """isinstance/issubclass of Future, and subscriptable like Future."""
    assert isinstance(TaskFuture(), concurrent.futures.Future)
    assert issubclass(TaskFuture, concurrent.futures.Future)
    alias = TaskFuture[int]
    assert isinstance(alias, types.GenericAlias) and alias.__origin__ is TaskFuture


def test_new_future_is_pending(cls: FutureClass) -> None:
    """A new future is neither running, done nor cancelled."""
    fut = cls()
    assert (fut.running(), fut.done(), fut.cancelled()) == (False, False, False)


def test_result_in_the_same_thread(cls: FutureClass) -> None:
    """After set_result: result() and result(timeout=0) return it, exception() is None."""
    fut = cls()
    value = object()
    fut.set_result(value)
    assert fut.result() is value
    assert fut.result(timeout=0) is value
    assert fut.result(timeout=-1) is value
    assert fut.exception() is None
    assert fut.exception(timeout=0) is None
    assert (fut.running(), fut.done(), fut.cancelled()) == (False, True, False)


def test_none_result_and_set_exception_none(cls: FutureClass) -> None:
    """A None result, and set_exception(None): both finish the future returning None."""
    fut = cls()
    fut.set_result(None)
    assert fut.result() is None and fut.exception() is None
    other = cls()
    other.set_exception(None)
    assert other.done() and other.result() is None and other.exception() is None


def test_exception_in_the_same_thread(cls: FutureClass) -> None:
    """After set_exception: result() raises that very object, exception() returns it."""
    fut = cls()
    error = Boom("x")
    fut.set_exception(error)
    for _ in range(2):  # and again: raising it does not consume it
        with pytest.raises(Boom) as info:
            fut.result()
        assert info.value is error
    with pytest.raises(Boom) as info:
        fut.result(timeout=0)
    assert info.value is error
    assert fut.exception() is error
    assert fut.exception(timeout=0) is error
    assert fut.done() and not fut.cancelled()


def test_base_exception_is_raised_too(cls: FutureClass) -> None:
    """A BaseException set is raised by result() and returned by exception()."""
    fut = cls()
    error = Abort()
    fut.set_exception(error)
    with pytest.raises(Abort) as info:
        fut.result()
    assert info.value is error and fut.exception() is error


# -- waiting from other threads --------------------------------------------------------------


@pytest.mark.parametrize("how", SETTLES)
def test_all_blocked_waiters_are_released(cls: FutureClass, how: str) -> None:
    """Several threads blocked in result()/exception(), with and without timeouts, all see it."""
    fut = cls()
    value: object = Boom("set") if how == "exception" else object()
    calls: list[tuple[str, Callable[[], object]]] = [
        ("result", lambda: fut.result()),
        ("result", lambda: fut.result(None)),
        ("result", lambda: fut.result(timeout=WAIT)),
        ("result", lambda: fut.result(WAIT * 100)),
        ("exception", lambda: fut.exception()),
        ("exception", lambda: fut.exception(timeout=WAIT)),
    ]
    waiters = [(method, Waiter(call).wait_blocked()) for method, call in calls]
    settle(fut, how, value)
    for method, waiter in waiters:
        assert expected(how, value, method)(waiter.finish()), (method, waiter.outcome)
    assert no_sleeper_left(fut)
    # and anyone coming later gets the same without waiting
    for method, call in calls:
        assert expected(how, value, method)(outcome_of(call)), method


@pytest.mark.parametrize("how", SETTLES)
def test_waiters_released_one_settle_after_another(cls: FutureClass, how: str) -> None:
    """Many futures settled in turn by another thread each release their waiter."""
    futures = [cls() for _ in range(50)]
    values = [Boom(i) if how == "exception" else i for i in range(50)]
    ready = threading.Event()

    def settler() -> None:
        assert ready.wait(WAIT)
        for fut, value in zip(futures, values, strict=True):
            settle(fut, how, value)

    thread = threading.Thread(target=settler)
    thread.start()
    ready.set()
    check = [expected(how, value, "result") for value in values]
    for fut, ok in zip(futures, check, strict=True):
        assert ok(outcome_of(lambda fut=fut: fut.result(WAIT)))  # type: ignore[misc]
    thread.join(WAIT)
    assert not thread.is_alive()


@pytest.mark.parametrize("method", ["result", "exception"])
@pytest.mark.parametrize("timeout", [0, 0.0, -1, -0.5, 0.02])
def test_timeout_on_a_pending_future(cls: FutureClass, method: str, timeout: float) -> None:
    """A pending future times out with TimeoutError (== concurrent.futures.TimeoutError)."""
    fut = cls()
    wait = getattr(fut, method)
    started = time.monotonic()
    with pytest.raises(concurrent.futures.TimeoutError):
        wait(timeout)
    with pytest.raises(TimeoutError):
        wait(timeout=timeout)
    if timeout > 0:
        assert time.monotonic() - started >= 2 * timeout * 0.9  # it did wait, twice
    assert not fut.done()
    # the timed-out waits left nothing behind: a later settle still reaches a blocked waiter
    waiter = Waiter(lambda: fut.result()).wait_blocked()
    fut.set_result(7)
    assert waiter.finish() == ("returned", 7)
    assert wait(timeout) == (7 if method == "result" else None)


def test_timed_out_waiter_beside_a_blocked_one(cls: FutureClass) -> None:
    """One waiter times out while another stays blocked; the settle then releases the latter."""
    fut = cls()
    patient = Waiter(lambda: fut.result()).wait_blocked()
    for timeout in (0, 0.01, 0.02):
        with pytest.raises(TimeoutError):
            fut.result(timeout)
        with pytest.raises(TimeoutError):
            fut.exception(timeout)
    assert patient.thread.is_alive()
    fut.set_result("late")
    assert patient.finish() == ("returned", "late")


def test_nan_timeout_times_out(cls: FutureClass) -> None:
    """result/exception(timeout=nan) on a pending future: TimeoutError, as the stock one does."""
    fut = cls()
    with pytest.raises(TimeoutError):
        fut.result(timeout=math.nan)
    with pytest.raises(TimeoutError):
        fut.exception(timeout=math.nan)


def test_infinite_timeout_on_a_done_future(cls: FutureClass) -> None:
    """A done future returns at once whatever the timeout, even inf or huge."""
    fut = cls()
    fut.set_result(1)
    for timeout in (math.inf, 1e300, threading.TIMEOUT_MAX):
        assert fut.result(timeout) == 1 and fut.exception(timeout) is None


# -- cancel and set_running_or_notify_cancel -------------------------------------------------


def test_cancel_a_pending_future(cls: FutureClass) -> None:
    """cancel() on PENDING: True, cancelled and done, then CancelledError from both waits."""
    fut = cls()
    assert fut.cancel() is True
    assert (fut.running(), fut.done(), fut.cancelled()) == (False, True, True)
    assert fut._state == CANCELLED
    assert fut.cancel() is True  # twice
    for call in (fut.result, fut.exception):
        with pytest.raises(CancelledError):
            call()
        with pytest.raises(CancelledError):
            call(0)


def test_cancel_releases_blocked_waiters(cls: FutureClass) -> None:
    """Threads blocked in result()/exception() get CancelledError when the future is cancelled."""
    fut = cls()
    waiters = [
        Waiter(lambda: fut.result()).wait_blocked(),
        Waiter(lambda: fut.result(WAIT)).wait_blocked(),
        Waiter(lambda: fut.exception()).wait_blocked(),
        Waiter(lambda: fut.exception(WAIT)).wait_blocked(),
    ]
    assert fut.cancel() is True
    for waiter in waiters:
        kind, got = waiter.finish()
        assert kind == "raised" and type(got) is CancelledError
    assert no_sleeper_left(fut)


def test_set_running_or_notify_cancel(cls: FutureClass) -> None:
    """True on PENDING (now running); after cancel() False and CANCELLED_AND_NOTIFIED."""
    fut = cls()
    assert fut.set_running_or_notify_cancel() is True
    assert fut.running() and not fut.done()
    assert fut.cancel() is False
    assert fut.running() and not fut.cancelled()
    with pytest.raises(RuntimeError, match="unexpected state"):
        fut.set_running_or_notify_cancel()

    cancelled = cls()
    assert cancelled.cancel() is True
    assert cancelled.set_running_or_notify_cancel() is False
    assert cancelled._state == CANCELLED_AND_NOTIFIED
    assert cancelled.cancelled() and cancelled.done() and not cancelled.running()
    assert cancelled.cancel() is True
    with pytest.raises(CancelledError):
        cancelled.result(0)
    with pytest.raises(RuntimeError, match="unexpected state"):
        cancelled.set_running_or_notify_cancel()


def test_a_running_future_finishes_and_releases_its_waiter(cls: FutureClass) -> None:
    """RUNNING then set_result: the blocked waiter gets the result."""
    fut = cls()
    assert fut.set_running_or_notify_cancel()
    waiter = Waiter(lambda: fut.result()).wait_blocked()
    fut.set_result("ran")
    assert waiter.finish() == ("returned", "ran")
    assert no_sleeper_left(fut)


@pytest.mark.parametrize("how", ["result", "exception"])
def test_cancel_a_finished_future(cls: FutureClass, how: str) -> None:
    """cancel() on FINISHED: False, and the outcome stays."""
    fut = cls()
    value = Boom() if how == "exception" else "v"
    settle(fut, how, value)
    assert fut.cancel() is False
    assert not fut.cancelled() and fut.done() and fut._state == FINISHED
    assert expected(how, value, "result")(outcome_of(fut.result))
    with pytest.raises(RuntimeError, match="unexpected state"):
        fut.set_running_or_notify_cancel()


@pytest.mark.parametrize("second", ["set_result", "set_exception"])
@pytest.mark.parametrize("first", ["result", "exception", "cancel", "cancel_notified"])
def test_settling_twice_is_an_invalid_state(cls: FutureClass, first: str, second: str) -> None:
    """set_result/set_exception after a finish or cancel: InvalidStateError, nothing changes."""
    fut = cls()
    calls: list[Future[Any]] = []
    fut.add_done_callback(calls.append)
    value = Boom("first") if first == "exception" else "first"
    settle(fut, "cancel" if first == "cancel_notified" else first, value)
    if first == "cancel_notified":
        assert fut.set_running_or_notify_cancel() is False
    state = fut._state
    waiter = Waiter(lambda: fut.exception(WAIT))
    waiter.finish()
    with pytest.raises(InvalidStateError, match=state):
        getattr(fut, second)(Boom("second") if second == "set_exception" else "second")
    assert fut._state == state and calls == [fut]
    how = "cancel" if first.startswith("cancel") else first
    assert expected(how, value, "result")(outcome_of(fut.result))
    assert expected(how, value, "result")(outcome_of(lambda: fut.result(0)))
    assert expected(how, value, "exception")(Waiter(lambda: fut.exception()).finish())
    assert no_sleeper_left(fut)


# -- done callbacks --------------------------------------------------------------------------


@pytest.mark.parametrize("how", SETTLES)
def test_done_callbacks_run_once_in_order_in_the_settling_thread(
    cls: FutureClass, how: str
) -> None:
    """Each callback runs once, in order, with the future already done, in the settler."""
    fut = cls()
    calls: list[tuple[int, Future[Any], int, bool]] = []
    for i in range(4):
        fut.add_done_callback(
            lambda f, i=i: calls.append((i, f, threading.get_ident(), f.done()))  # type: ignore[misc]
        )
    settler = Waiter(lambda: settle(fut, how, Boom() if how == "exception" else 1))
    assert settler.finish() == ("returned", None)
    assert [(i, f, done) for i, f, _, done in calls] == [(i, fut, True) for i in range(4)]
    assert {thread for _, _, thread, _ in calls} == {settler.thread.ident}
    # nothing settles twice, so nothing is called twice
    fut.cancel()
    if how == "cancel":
        fut.set_running_or_notify_cancel()
    assert len(calls) == 4


@pytest.mark.parametrize("how", SETTLES)
def test_callback_sees_the_outcome(cls: FutureClass, how: str) -> None:
    """Inside a callback the future's result()/exception() answer without blocking."""
    fut = cls()
    value: object = Boom() if how == "exception" else "v"
    seen: list[tuple[str, object]] = []
    fut.add_done_callback(lambda f: seen.append(outcome_of(lambda: f.result(0))))
    fut.add_done_callback(lambda f: seen.append(outcome_of(lambda: f.exception(0))))
    settle(fut, how, value)
    assert expected(how, value, "result")(seen[0])
    assert expected(how, value, "exception")(seen[1])


@pytest.mark.parametrize("how", SETTLES)
def test_callback_added_after_completion_runs_at_once(cls: FutureClass, how: str) -> None:
    """add_done_callback on a done future calls it right away, in the caller's thread."""
    fut = cls()
    settle(fut, how, Boom() if how == "exception" else 1)
    calls: list[tuple[Future[Any], int]] = []
    fut.add_done_callback(lambda f: calls.append((f, threading.get_ident())))
    assert calls == [(fut, threading.get_ident())]


@pytest.mark.parametrize("how", SETTLES)
def test_raising_callback_is_logged_and_later_ones_still_run(
    cls: FutureClass, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An Exception from a callback goes to the "concurrent.futures" logger; the rest run."""
    fut = cls()
    calls: list[int] = []
    error = Boom("callback")

    def bad(_: Future[Any]) -> None:
        raise error

    fut.add_done_callback(lambda _: calls.append(1))
    fut.add_done_callback(bad)
    fut.add_done_callback(lambda _: calls.append(3))
    with caplog.at_level(logging.ERROR, logger="concurrent.futures"):
        settle(fut, how, Boom() if how == "exception" else 1)  # does not raise
        fut.add_done_callback(bad)  # after completion: logged too
    assert calls == [1, 3]
    assert len(caplog.records) == 2
    for record in caplog.records:
        assert record.name == "concurrent.futures" and record.levelno == logging.ERROR
        assert record.getMessage() == f"exception calling callback for {fut!r}"
        assert record.exc_info is not None and record.exc_info[1] is error


def test_base_exception_from_a_callback_propagates(cls: FutureClass) -> None:
    """A BaseException from a callback escapes set_result; the future is finished anyway."""
    fut = cls()
    calls: list[int] = []

    def abort(_: Future[Any]) -> None:
        raise Abort()

    fut.add_done_callback(abort)
    fut.add_done_callback(lambda _: calls.append(2))
    waiter = Waiter(lambda: fut.result()).wait_blocked()
    with pytest.raises(Abort):
        fut.set_result(1)
    assert calls == [] and fut.done() and fut.result() == 1
    assert waiter.finish() == ("returned", 1)


# -- wait, as_completed, asyncio -------------------------------------------------------------


def mixed(cls: FutureClass, n: int = 4) -> list[Future[Any]]:
    """*n* pending futures alternating *cls* and the other class, *cls* first."""
    other: FutureClass = Future if cls is TaskFuture else TaskFuture
    return [(cls if i % 2 == 0 else other)() for i in range(n)]


@pytest.mark.parametrize("how", ["result", "exception", "cancel_notified"])
def test_wait_first_completed_wakes_on_a_settle(cls: FutureClass, how: str) -> None:
    """wait(FIRST_COMPLETED) blocked on mixed futures returns when *cls*'s one settles."""
    futures = mixed(cls)
    target = futures[2]
    waiter = Waiter(
        lambda: concurrent.futures.wait(futures, timeout=WAIT, return_when=FIRST_COMPLETED)
    ).wait_blocked()
    if how == "cancel_notified":
        settle(target, "cancel")
        assert target.set_running_or_notify_cancel() is False
    else:
        settle(target, how, Boom() if how == "exception" else 1)
    kind, got = waiter.finish()
    assert kind == "returned"
    assert got == ({target}, set(futures) - {target})
    assert all(f._waiters == [] for f in futures)


def test_wait_does_not_count_a_cancel_until_notified(cls: FutureClass) -> None:
    """wait() counts a cancelled future as done only after set_running_or_notify_cancel."""
    futures = mixed(cls)
    assert futures[0].cancel()
    done, _ = concurrent.futures.wait(futures, timeout=0, return_when=FIRST_COMPLETED)
    assert done == set()
    assert futures[0].set_running_or_notify_cancel() is False
    done, _ = concurrent.futures.wait(futures, timeout=0, return_when=FIRST_COMPLETED)
    assert done == {futures[0]}


def test_wait_all_completed(cls: FutureClass) -> None:
    """wait(ALL_COMPLETED) returns once another thread settled every one of them."""
    futures = mixed(cls, 6)
    futures[0].set_result(0)  # one done before waiting
    waiter = Waiter(
        lambda: concurrent.futures.wait(futures, timeout=WAIT, return_when=ALL_COMPLETED)
    ).wait_blocked()
    futures[1].set_exception(Boom())
    futures[2].cancel()
    futures[2].set_running_or_notify_cancel()
    for fut in futures[3:]:
        fut.set_result(1)
    assert waiter.finish() == ("returned", (set(futures), set()))


def test_wait_first_exception(cls: FutureClass) -> None:
    """wait(FIRST_EXCEPTION) ignores results and returns on *cls*'s exception."""
    futures = mixed(cls)
    target = futures[2]
    waiter = Waiter(
        lambda: concurrent.futures.wait(futures, timeout=WAIT, return_when=FIRST_EXCEPTION)
    ).wait_blocked()
    futures[1].set_result(1)
    futures[0].set_result(0)
    assert waiter.thread.is_alive()
    target.set_exception(Boom())
    kind, got = waiter.finish()
    assert kind == "returned"
    assert got == ({futures[0], futures[1], target}, {futures[3]})


def test_wait_first_exception_with_an_exception_already_set(cls: FutureClass) -> None:
    """wait(FIRST_EXCEPTION) returns at once when one already failed."""
    futures = mixed(cls)
    futures[0].set_exception(Boom())
    done, not_done = concurrent.futures.wait(futures, timeout=WAIT, return_when=FIRST_EXCEPTION)
    assert (done, not_done) == ({futures[0]}, set(futures[1:]))


@pytest.mark.parametrize("return_when", [FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED])
def test_wait_times_out(cls: FutureClass, return_when: str) -> None:
    """wait() with a timeout on pending futures returns them all as not done."""
    futures = mixed(cls)
    futures[1].set_result(1)
    done, not_done = concurrent.futures.wait(futures, timeout=0.02, return_when=return_when)
    assert (done, not_done) == ({futures[1]}, set(futures) - {futures[1]})
    assert all(f._waiters == [] for f in futures)
    pending = mixed(cls)
    done, not_done = concurrent.futures.wait(pending, timeout=0.02, return_when=return_when)
    assert (done, not_done) == (set(), set(pending))


@pytest.mark.parametrize("how", SETTLES)
def test_as_completed_in_completion_order(cls: FutureClass, how: str) -> None:
    """as_completed yields done ones first, then each as another thread settles it."""
    futures = mixed(cls, 6)
    futures[1].set_result("early")
    futures[4].set_exception(Boom())
    it = iter(concurrent.futures.as_completed([*futures, futures[0]], timeout=WAIT))
    assert {next(it), next(it)} == {futures[1], futures[4]}
    for i in (2, 0, 5, 3):
        getter = Waiter(lambda: next(it)).wait_blocked()
        settle(futures[i], how, Boom() if how == "exception" else i)
        if how == "cancel":  # as_completed sees a cancel once it is notified
            assert futures[i].set_running_or_notify_cancel() is False
        assert getter.finish() == ("returned", futures[i])
    with pytest.raises(StopIteration):
        next(it)
    assert all(f._waiters == [] for f in futures)


@pytest.mark.parametrize("how", [*SETTLES, "cancel_notified"])
def test_as_completed_times_out(cls: FutureClass, how: str) -> None:
    """as_completed with an expiring timeout yields what finished, then TimeoutError."""
    futures = mixed(cls, 3)
    settle(futures[0], "cancel" if how == "cancel_notified" else how, Boom())
    if how == "cancel_notified":
        futures[0].set_running_or_notify_cancel()
    it = concurrent.futures.as_completed(futures, timeout=0.05)
    if how != "cancel":  # a cancel not yet notified does not count as completed
        assert next(it) is futures[0]
    with pytest.raises(TimeoutError, match=r"\(of 3\) futures unfinished"):
        next(it)


@pytest.mark.parametrize("how", ["result", "exception"])
def test_wrap_future_awaits_a_settle_from_another_thread(cls: FutureClass, how: str) -> None:
    """asyncio.wrap_future: awaiting gets what another thread sets while the loop waits."""
    fut = cls()
    value: object = Boom("async") if how == "exception" else object()

    async def main() -> object:
        awaiting = threading.Event()
        setter = Waiter(lambda: awaiting.wait(WAIT) and settle(fut, how, value))
        asyncio.get_running_loop().call_soon(awaiting.set)  # runs once main() is suspended
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), WAIT)
        finally:
            setter.finish()

    if how == "exception":
        with pytest.raises(Boom) as info:
            asyncio.run(main())
        assert info.value is value
    else:
        assert asyncio.run(main()) is value


def test_cancelling_the_asyncio_future_cancels_the_future(cls: FutureClass) -> None:
    """Cancelling the wrap_future wrapper cancels the future and releases its waiters."""
    fut = cls()
    waiter = Waiter(lambda: fut.result()).wait_blocked()

    async def main() -> None:
        wrapper = asyncio.wrap_future(fut)
        assert wrapper.cancel()
        with pytest.raises(asyncio.CancelledError):
            await wrapper
        await asyncio.sleep(0)  # let the chained cancel run, if it has not yet

    asyncio.run(main())
    assert fut.cancelled()
    kind, got = waiter.finish()
    assert kind == "raised" and type(got) is CancelledError


def test_cancelling_the_future_cancels_the_asyncio_future(cls: FutureClass) -> None:
    """Cancelling the future from another thread cancels the awaiting wrapper."""
    fut = cls()

    async def main() -> None:
        awaiting = threading.Event()
        canceller = Waiter(lambda: awaiting.wait(WAIT) and fut.cancel())
        asyncio.get_running_loop().call_soon(awaiting.set)
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(asyncio.wrap_future(fut), WAIT)
        assert canceller.finish() == ("returned", True)

    asyncio.run(main())


# -- repr --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("how", "shown"),
    [
        ("pending", "state=pending"),
        ("running", "state=running"),
        ("result", "state=finished returned int"),
        ("none", "state=finished returned NoneType"),
        ("exception", "state=finished raised Boom"),
        ("cancel", "state=cancelled"),
        ("cancel_notified", "state=cancelled"),
    ],
)
def test_repr(cls: FutureClass, how: str, shown: str) -> None:
    """repr() names the class, the address and the state (and the outcome's type)."""
    fut = cls()
    if how == "running":
        fut.set_running_or_notify_cancel()
    elif how in ("result", "exception", "cancel"):
        settle(fut, how, Boom() if how == "exception" else 3)
    elif how == "none":
        fut.set_result(None)
    elif how == "cancel_notified":
        fut.cancel()
        fut.set_running_or_notify_cancel()
    assert repr(fut) == f"<{cls.__name__} at {id(fut):#x} {shown}>"


# -- references --------------------------------------------------------------------------------


def test_raised_exception_does_not_keep_the_future_alive(cls: FutureClass) -> None:
    """The exception result() raised is the one set; holding it does not hold the future."""
    fut = cls()
    error = Boom("kept")
    fut.set_exception(error)
    try:
        fut.result()
    except Boom as exc:
        caught = exc
    assert caught is error and caught.__traceback__ is not None
    ref = weakref.ref(fut)
    del fut
    gc.collect()
    assert ref() is None
    assert caught.__traceback__ is not None  # still has its traceback, just not the future


@pytest.mark.parametrize("how", ["cancel", "timeout"])
def test_cancelled_or_timeout_error_does_not_keep_the_future_alive(
    cls: FutureClass, how: str
) -> None:
    """Holding the CancelledError/TimeoutError result() raised does not hold the future."""
    fut = cls()
    if how == "cancel":
        fut.cancel()
    try:
        fut.result(timeout=0)
    except (CancelledError, TimeoutError) as exc:
        caught = exc
    ref = weakref.ref(fut)
    del fut
    gc.collect()
    assert caught.__traceback__ is not None
    assert ref() is None


def test_result_value_is_not_copied_or_kept_by_waiters(cls: FutureClass) -> None:
    """The result is returned as is, and a dropped future frees it."""

    class Value:
        pass

    fut = cls()
    value = Value()
    fut.set_result(value)
    waiter = Waiter(fut.result)
    assert waiter.finish() == ("returned", value)
    ref = weakref.ref(value)
    del fut, value, waiter
    gc.collect()
    assert ref() is None


# -- an interrupted waiter -------------------------------------------------------------------


def _on_blocking_acquire(event: str, action: Callable[[], None]) -> Any:
    """A profile function calling *action* at *event* of a waiter's timed lock acquire."""

    def profile(frame: types.FrameType, what: str, arg: Any) -> None:
        if what != event or getattr(arg, "__name__", None) != "acquire":
            return
        line = at_acquire(frame)
        if line is not None and "timeout" in line:
            action()

    return profile


def test_waiter_interrupted_after_wake_up_does_not_hang_the_others(cls: FutureClass) -> None:
    """An exception landing in a waiter just as it wakes leaves the other waiters unharmed."""
    # Simulates a KeyboardInterrupt delivered right after the waiter's lock acquire
    # returns on the settle: waiter A raises there; waiter B, stopped just before its
    # own acquire until then, must still get the result promptly.
    fut = cls()
    a_woke = threading.Event()
    b_paused = threading.Event()

    def interrupt() -> None:
        if fut._state != FINISHED:  # not the wake-up
            return
        sys.setprofile(None)
        a_woke.set()
        raise Abort()

    def pause() -> None:
        sys.setprofile(None)
        b_paused.set()
        assert a_woke.wait(WAIT)

    def wait_profiled(profile: Any) -> object:
        sys.setprofile(profile)
        try:
            return fut.result(timeout=60)
        finally:
            sys.setprofile(None)

    a = Waiter(lambda: wait_profiled(_on_blocking_acquire("c_return", interrupt)))
    a.wait_blocked()
    b = Waiter(lambda: wait_profiled(_on_blocking_acquire("c_call", pause)))
    assert b_paused.wait(WAIT)
    fut.set_result("v")
    kind, got = a.finish()
    assert kind == "raised" and type(got) is Abort
    b.thread.join(PROMPTLY)
    assert not b.thread.is_alive(), "the other waiter hangs"
    assert b.outcome == ("returned", "v")


# -- stress ----------------------------------------------------------------------------------

THREADS = 8
FUTURES = 1500


def test_stress_many_waiters_per_future(cls: FutureClass) -> None:
    """8 threads settle their share of futures and wait, in every way, on all the others."""
    # Waits are result() with and without timeouts, exception(), and short timed-out
    # polls; every waiter must see the settled outcome.
    futures = [cls() for _ in range(FUTURES)]
    values: list[object] = [Boom(k) if k % 3 == 1 else k for k in range(FUTURES)]
    hows = ["result", "exception", "cancel"]
    errors: list[BaseException] = []
    wrong: list[tuple[int, int, str, tuple[str, object]]] = []
    start = threading.Barrier(THREADS)

    def poll(fut: Future[Any]) -> object:
        deadline = time.monotonic() + WAIT
        while True:
            try:
                return fut.result(timeout=0.0005)
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise

    def observe(me: int, k: int, fut: Future[Any]) -> tuple[str, tuple[str, object]]:
        mode = (k + me) % 5
        if mode == 0:
            return "result", outcome_of(fut.result)
        if mode == 1:
            return "result", outcome_of(lambda: fut.result(timeout=WAIT))
        if mode == 2:
            return "exception", outcome_of(lambda: fut.exception(timeout=WAIT))
        if mode == 3:
            return "exception", outcome_of(fut.exception)
        return "result", outcome_of(lambda: poll(fut))

    def run(me: int) -> None:
        try:
            start.wait(WAIT)
            for k, fut in enumerate(futures):
                how = hows[k % 3]
                if k % THREADS == me:
                    if k % 2 and how != "cancel":
                        assert fut.set_running_or_notify_cancel()
                    settle(fut, how, values[k])
                    if how == "cancel" and k % 2:
                        assert fut.set_running_or_notify_cancel() is False
                else:
                    method, outcome = observe(me, k, fut)
                    if not expected(how, values[k], method)(outcome):
                        wrong.append((me, k, method, outcome))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(me,), daemon=True) for me in range(THREADS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 4 * WAIT
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads), "a waiter hangs"
    assert errors == []
    assert wrong == []
    assert all(fut.done() and no_sleeper_left(fut) for fut in futures)


def test_stress_settle_races_with_arriving_waiters(cls: FutureClass) -> None:
    """Waiters arriving at the very moment of the settle all see the outcome."""
    rounds = 200
    for k in range(rounds):
        fut = cls()
        how = SETTLES[k % 3]
        value: object = Boom(k) if how == "exception" else k
        gate = threading.Barrier(5)

        def arrive(fut: Future[Any] = fut, gate: threading.Barrier = gate) -> object:
            gate.wait(WAIT)
            return fut.result(timeout=WAIT)

        waiters = [Waiter(arrive) for _ in range(4)]
        gate.wait(WAIT)
        settle(fut, how, value)
        check = expected(how, value, "result")
        for waiter in waiters:
            assert check(waiter.finish()), (k, waiter.outcome)


@pytest.fixture(autouse=True)
def _no_stray_threads() -> Iterator[None]:
    """Every thread a test starts has ended by its end (no waiter left hanging)."""
    before = set(threading.enumerate())
    yield
    assert not [t for t in threading.enumerate() if t not in before and t.is_alive()]


def test_a_failing_on_cancel_hook_is_logged_and_cancel_completes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An on_cancel hook that raises is logged; the future is cancelled and callbacks run."""

    def hook(_: object) -> None:
        raise RuntimeError("hook failed")

    fut: TaskFuture[int] = TaskFuture()
    fut.on_cancel = hook
    seen: list[object] = []
    fut.add_done_callback(seen.append)
    with caplog.at_level(logging.ERROR, logger="concurrent.futures"):
        assert fut.cancel() is True
    assert fut.cancelled()
    assert seen == [fut]
    assert "on_cancel hook failed" in caplog.text


# -- TaskFuture's own waiting: no polling, nothing left behind -----------------------------------


def test_blocked_waiter_wakes_once_not_periodically() -> None:
    """A thread blocked on a TaskFuture sleeps in one lock acquire until the settle."""
    fut: TaskFuture[int] = TaskFuture()
    acquires = 0

    def count(frame: types.FrameType, what: str, arg: Any) -> None:
        nonlocal acquires
        if what == "c_call" and getattr(arg, "__name__", None) == "acquire":
            acquires += 1

    def wait_counting() -> object:
        sys.setprofile(count)
        try:
            return fut.result()
        finally:
            sys.setprofile(None)

    waiter = Waiter(wait_counting).wait_blocked()
    threading.Event().wait(0.3)  # the time a polling waiter would have woken in
    fut.set_result(1)
    assert waiter.finish() == ("returned", 1)
    assert acquires <= 2, f"{acquires} lock acquires: the waiter polled"  # take, then sleep


def test_timed_out_waiter_leaves_no_sleeper_behind() -> None:
    """A waiter that times out unregisters itself; a later settle wakes only live waiters."""
    fut: TaskFuture[int] = TaskFuture()
    for _ in range(3):
        with pytest.raises(TimeoutError):
            fut.result(timeout=0.01)
    assert fut._sleepers == []
    fut.set_result(2)
    assert fut.result(0) == 2


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs signal.pthread_kill")
def test_interrupted_waiter_leaves_no_sleeper_behind() -> None:
    """A Ctrl-C-like signal interrupting a blocked result() unregisters the waiter."""
    assert threading.current_thread() is threading.main_thread()
    fut: TaskFuture[int] = TaskFuture()
    main = threading.main_thread()

    def interrupt(signum: int, frame: object) -> None:
        raise Abort("interrupted")

    def in_result() -> bool:  # blocked in TaskFuture's own acquire, not in thread.start()'s
        frame = sys._current_frames().get(main.ident or -1)
        return frame is not None and frame.f_code.co_name == "_await" and bool(at_acquire(frame))

    def interrupter() -> None:
        wait_until(in_result, WAIT)
        signal.pthread_kill(main.ident or 0, signal.SIGUSR1)

    previous = signal.signal(signal.SIGUSR1, interrupt)
    try:
        thread = threading.Thread(target=interrupter)
        thread.start()
        with pytest.raises(Abort):
            fut.result()
        thread.join(WAIT)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert fut._sleepers == []
    other = Waiter(lambda: fut.result(WAIT)).wait_blocked()
    fut.set_result(3)
    assert other.finish() == ("returned", 3)


# -- lock-free moves: lazy fields, races between a move and a registration ----------------------

RACES = 300


def test_a_new_future_builds_nothing_until_used() -> None:
    """No condition or list exists until someone needs one; each is made once."""
    fut: TaskFuture[int] = TaskFuture()
    assert fut.__dict__ == {}
    assert fut._state == "PENDING" and fut._result is None and fut._exception is None
    condition = fut._condition
    assert fut._condition is condition and fut._waiters is fut._waiters
    assert fut._done_callbacks == [] and fut._done_callbacks is fut._done_callbacks


def test_threads_making_a_lazy_field_at_once_agree_on_it() -> None:
    """Two threads reading a not-yet-made ``_condition`` at once get the same lock."""
    for _ in range(RACES):
        fut: TaskFuture[int] = TaskFuture()
        gate = threading.Barrier(2)
        seen: list[object] = []

        def read(
            fut: TaskFuture[int] = fut, gate: threading.Barrier = gate, seen: list[object] = seen
        ) -> None:
            gate.wait(WAIT)
            seen.append(fut._condition)

        threads = [threading.Thread(target=read) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
        assert len(seen) == 2 and seen[0] is seen[1] is fut._condition


def test_cancel_racing_the_runner_has_exactly_one_winner() -> None:
    """cancel() and set_running_or_notify_cancel() at once: one wins, the other sees it."""
    for _ in range(RACES):
        fut: TaskFuture[int] = TaskFuture()
        gate = threading.Barrier(2)
        got: dict[str, bool] = {}

        def cancel(
            fut: TaskFuture[int] = fut, gate: threading.Barrier = gate, got: dict[str, bool] = got
        ) -> None:
            gate.wait(WAIT)
            got["cancel"] = fut.cancel()

        thread = threading.Thread(target=cancel)
        thread.start()
        gate.wait(WAIT)
        got["run"] = fut.set_running_or_notify_cancel()
        thread.join(WAIT)
        assert got["cancel"] != got["run"], got
        if got["run"]:
            assert fut.running()
            fut.set_result(1)
            assert fut.result(0) == 1
        else:
            assert fut.cancelled() and fut._state == CANCELLED_AND_NOTIFIED


@pytest.mark.parametrize("how", ["result", "exception"])
def test_wait_registering_during_a_settle_is_never_missed(how: str) -> None:
    """wait(FIRST_COMPLETED) racing a lock-free settle returns the future, never times out."""
    for k in range(RACES):
        fut: SubmittedItem = SubmittedItem()
        assert fut.set_running_or_notify_cancel()
        gate = threading.Barrier(2)
        got: list[object] = []

        def wait(
            fut: SubmittedItem = fut, gate: threading.Barrier = gate, got: list[object] = got
        ) -> None:
            gate.wait(WAIT)
            got.append(concurrent.futures.wait([fut], WAIT, FIRST_COMPLETED).done)

        thread = threading.Thread(target=wait)
        thread.start()
        gate.wait(WAIT)
        if how == "result":
            fut.set_result(k)
        else:
            fut.set_exception(Boom(k))
        thread.join(WAIT)
        assert got == [{fut}], k
        assert fut._waiters == [] and no_sleeper_left(fut)


def test_callback_added_during_a_settle_runs_exactly_once() -> None:
    """add_done_callback racing a lock-free set_result: the callback runs once, seeing it done."""
    for k in range(RACES):
        fut: SubmittedItem = SubmittedItem()
        assert fut.set_running_or_notify_cancel()
        gate = threading.Barrier(2)
        calls: list[object] = []

        def add(
            fut: SubmittedItem = fut, gate: threading.Barrier = gate, calls: list[object] = calls
        ) -> None:
            gate.wait(WAIT)
            fut.add_done_callback(lambda f: calls.append(f.result(0)))

        thread = threading.Thread(target=add)
        thread.start()
        gate.wait(WAIT)
        fut.set_result(k)
        thread.join(WAIT)
        assert calls == [k]


def test_as_completed_racing_settles_yields_each_once() -> None:
    """as_completed() over futures settled meanwhile by another thread yields all, once."""
    futures = [SubmittedItem() for _ in range(200)]

    def settle_all() -> None:
        for k, fut in enumerate(futures):
            assert fut.set_running_or_notify_cancel()
            fut.set_result(k)

    thread = threading.Thread(target=settle_all)
    thread.start()
    got = list(concurrent.futures.as_completed(futures, timeout=WAIT))
    thread.join(WAIT)
    assert sorted(f.result(0) for f in got) == list(range(200))
    assert all(f._waiters == [] for f in futures)


@pytest.mark.parametrize("cls", [TaskFuture, SubmittedItem], ids=["task", "item"])
def test_set_exception_none_counts_as_an_exception_for_wait(cls: FutureClass) -> None:
    """As with the stock future, set_exception(None) ends wait(FIRST_EXCEPTION) at once."""
    for running in (False, True):
        futures = [cls(), Future()]
        waiter = Waiter(
            lambda futures=futures: concurrent.futures.wait(futures, WAIT, FIRST_EXCEPTION)
        ).wait_blocked()
        if running:
            assert futures[0].set_running_or_notify_cancel()
        futures[0].set_exception(None)
        kind, got = waiter.finish()
        assert kind == "returned" and got == ({futures[0]}, {futures[1]})


def test_running_twice_is_refused_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A second set_running_or_notify_cancel raises RuntimeError and logs, as the stock one."""
    fut: TaskFuture[int] = TaskFuture()
    assert fut.set_running_or_notify_cancel()
    with (
        caplog.at_level(logging.CRITICAL, logger="concurrent.futures"),
        pytest.raises(RuntimeError, match="unexpected state"),
    ):
        fut.set_running_or_notify_cancel()
    assert "unexpected state" in caplog.text and fut.running()


# -- a submitted WorkItem: its first waiter's sleeper is made with it ---------------------------


def test_submitted_item_first_waiter_uses_the_ready_sleeper() -> None:
    """The first waiter blocks on the sleeper made with the item; later ones on their own."""
    fut = SubmittedItem()
    spare = fut.__dict__["_spare"]
    assert fut._sleepers == [spare]
    first = Waiter(lambda: fut.result(WAIT)).wait_blocked()
    assert "_spare" not in fut.__dict__
    second = Waiter(lambda: fut.result(WAIT)).wait_blocked()
    assert len(fut._sleepers) == 2 and fut._sleepers[0] is spare
    assert fut.set_running_or_notify_cancel()
    fut.set_result(5)
    assert first.finish() == ("returned", 5) and second.finish() == ("returned", 5)
    assert not fut._sleepers


def test_submitted_item_waiter_timing_out_gives_its_sleeper_up() -> None:
    """A first waiter that times out unregisters the ready sleeper; a later one still wakes."""
    fut = SubmittedItem()
    with pytest.raises(TimeoutError):
        fut.result(timeout=0.01)
    assert fut._sleepers == [] and "_spare" not in fut.__dict__
    later = Waiter(lambda: fut.result(WAIT)).wait_blocked()
    fut.set_result(6)
    assert later.finish() == ("returned", 6) and not fut._sleepers


def test_submitted_item_never_waited_on_keeps_nothing_registered() -> None:
    """Settled with nobody waiting, the ready sleeper is released and dropped."""
    fut = SubmittedItem()
    spare = fut.__dict__["_spare"]
    assert fut.set_running_or_notify_cancel()
    fut.set_result(7)
    assert not fut._sleepers and not spare.locked()
    assert fut.result() == 7


def test_a_map_item_has_no_ready_sleeper() -> None:
    """An item made with waited=False (map's) registers nothing until someone waits."""
    fut: WorkItem[int] = WorkItem(0.0, None, False)
    assert fut.__dict__ == {} and not fut._sleepers
    waiter = Waiter(lambda: fut.result(WAIT)).wait_blocked()
    fut.set_result(8)
    assert waiter.finish() == ("returned", 8) and not fut._sleepers
