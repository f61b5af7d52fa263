"""Shared fixtures: recording lifecycles, and one pool factory over every threaded strategy.

Every pool made through ``make_pool`` is checked when its test ends: at that quiescent point
``created - destroyed == size == idle + in_use`` must hold and the core's own invariants too.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import respool
from respool import _debug
from respool._threads import filler
from respool._threads.free_list import _FreeListPool
from respool.stats import WorkerStats
from tests.async_facade import LoopThread, PoolFacade


@dataclass(eq=False)
class Res:
    """A fake resource with an identity and a record of what happened to it."""

    n: int
    dirty: bool = False
    broken: bool = False
    destroyed: bool = False
    resets: int = 0

    def __repr__(self) -> str:
        return f"Res({self.n})"


@dataclass
class Tracker:
    """A lifecycle whose callbacks record calls and can be told to fail."""

    made: list[Res] = field(default_factory=list)
    destroyed: list[Res] = field(default_factory=list)
    checked: list[Res] = field(default_factory=list)
    fail_create: BaseException | None = None
    #: With fail_create set: fail only this many more times (None: every time).
    fail_create_times: int | None = None
    fail_reset: BaseException | None = None
    fail_check: BaseException | None = None
    fail_destroy: BaseException | None = None
    _numbers: Iterator[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def create(self) -> Res:
        if self.fail_create is not None:
            error = self.fail_create
            if self.fail_create_times is not None:
                self.fail_create_times -= 1
                if self.fail_create_times <= 0:
                    self.fail_create = None
            raise error
        with self._lock:
            res = Res(next(self._numbers))
            self.made.append(res)
        return res

    def reset(self, res: Res) -> None:
        assert not res.destroyed, f"reset of destroyed {res}"
        if self.fail_reset is not None:
            raise self.fail_reset
        res.dirty = False
        res.resets += 1

    def check(self, res: Res) -> bool:
        assert not res.destroyed, f"check of destroyed {res}"
        with self._lock:
            self.checked.append(res)
        if self.fail_check is not None:
            raise self.fail_check
        return not res.broken

    def destroy(self, res: Res) -> None:
        assert not res.destroyed, f"{res} destroyed twice"
        res.destroyed = True
        with self._lock:
            self.destroyed.append(res)
        if self.fail_destroy is not None:
            raise self.fail_destroy

    def lifecycle(self, *, check: bool = True) -> respool.Lifecycle[Res]:
        return respool.Lifecycle(
            self.create,
            reset=self.reset,
            check=self.check if check else None,
            destroy=self.destroy,
        )


@pytest.fixture
def tracker() -> Tracker:
    return Tracker()


PoolFactory = Callable[..., _FreeListPool[Res]]

KINDS = ["fixed", "elastic"]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["bounded", "fifo"])
def fairness(request: pytest.FixtureRequest) -> str:
    """Both fairness modes: every behaviour the suite checks holds in each."""
    return str(request.param)


@pytest.fixture
def shell() -> str:
    """Which shell ``make_pool`` builds on: threads here; the behaviour suite runs both."""
    return "threads"


#: Facades over the asyncio pools of the running test (see ``settle``).
_facades: list[PoolFacade] = []


@pytest.fixture
def make_pool(kind: str, fairness: str, shell: str, tracker: Tracker) -> Iterator[PoolFactory]:
    """Build a pool of *capacity* resources of the parametrized kind, fairness and shell,
    checked at teardown.

    A FixedPool holds exactly *capacity*; an ElasticPool may grow to *capacity* and keeps as
    many idle. Either way a caller waits once *capacity* resources are in use. An asyncio
    pool comes behind a blocking facade (``tests/async_facade.py``), its loop in a thread.
    """
    pools: list[Any] = []
    runner = LoopThread() if shell == "asyncio" else None

    def make(capacity: int = 2, *, check: bool = True, **options: Any) -> _FreeListPool[Res]:
        lifecycle = options.pop("lifecycle", None) or tracker.lifecycle(check=check)
        options.setdefault("fairness", fairness)
        pool: Any
        if kind == "fixed":
            cls: Any = respool.AsyncFixedPool if runner else respool.FixedPool
            pool = cls(lifecycle, size=capacity, **options)
        else:
            options.setdefault("max_idle", capacity)
            cls = respool.AsyncElasticPool if runner else respool.ElasticPool
            pool = cls(lifecycle, max_size=capacity, **options)
        if runner is not None:
            pool = PoolFacade(pool, runner)
            _facades.append(pool)
        pools.append(pool)
        return pool  # type: ignore[no-any-return]

    yield make
    try:
        for pool in pools:
            assert_quiescent(pool)
    finally:
        for pool in pools:
            pool.close()  # no pool left retrying a failing create behind later tests
        _facades.clear()
        if runner is not None:
            runner.stop()


def settle() -> None:
    """Wait until the background filler (and every asyncio pool's background task) has done
    what pools asked of it so far."""
    assert filler.flush(5.0), "the filler did not catch up in 5 s"
    for facade in _facades:
        facade.settle()


def assert_quiescent(pool: _FreeListPool[Any]) -> None:
    """The counting invariant, from the public stats and from the core."""
    settle()
    stats = pool.stats()
    assert stats.created - stats.destroyed == stats.size == stats.idle + stats.in_use, stats
    assert stats.waiting == 0
    with pool._lock:
        # Only slots owed to a filler backing off from a failing create may still be open.
        assert stats.creating == pool._core.owed
        pool._core.check_invariants()


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll *predicate* until it holds: for states no event announces (a thread now blocked)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.001)


class Abort(BaseException):
    """Not an Exception: stands for cancellation, KeyboardInterrupt or SystemExit."""


class Boom(Exception):
    """An ordinary error raised from a lease body or a callback."""


@contextlib.contextmanager
def debug_set_to(on: bool) -> Iterator[None]:
    """Debug mode on or off inside the block, and back as it was whatever happens."""
    was = _debug.enabled
    _debug.set_enabled(on)
    try:
        yield
    finally:
        _debug.set_enabled(was)


@pytest.fixture
def debug_mode() -> Iterator[None]:
    """Debug mode on for one test."""
    with debug_set_to(True):
        yield


@pytest.fixture
def normal_mode() -> Iterator[None]:
    """Debug mode off for one test (it poisons returned buffers), whatever RESPOOL_DEBUG says."""
    with debug_set_to(False):
        yield


def fork_and_wait(child: Callable[[], int], timeout: float = 5) -> int:
    """Run *child* in a forked child (SIGALRM after *timeout*): its exit code, or -signal."""
    with warnings.catch_warnings():
        # Python 3.12+ warns when forking a process that has threads; these tests mean to.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 99
        try:
            signal.signal(signal.SIGALRM, signal.SIG_DFL)  # not pytest-timeout's handler
            signal.alarm(int(timeout))
            code = child()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


# -- WorkerPool ----------------------------------------------------------------------------


@dataclass(eq=False)
class Owned:
    """A resource that remembers the thread that made it, and complains if another touches it."""

    n: int
    owner: int = field(default_factory=threading.get_ident)
    broken: bool = False
    destroyed: bool = False
    uses: int = 0
    resets: int = 0

    def touch(self) -> None:
        assert threading.get_ident() == self.owner, f"{self} touched from another thread"
        assert not self.destroyed, f"{self} used after destroy"


@dataclass
class Life:
    """A lifecycle recording everything, every callback asserting thread affinity."""

    made: list[Owned] = field(default_factory=list)
    destroyed: list[Owned] = field(default_factory=list)
    checks: int = 0
    fail_create: int = 0  # this many next creates fail
    fail_create_forever: bool = False
    fail_reset: bool = False
    fail_destroy: bool = False
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    numbers: Iterator[int] = field(default_factory=itertools.count)

    def guard(self, res: Owned) -> None:
        try:
            res.touch()
        except AssertionError as exc:
            with self.lock:
                self.errors.append(str(exc))
            raise

    def create(self) -> Owned:
        with self.lock:
            if self.fail_create_forever or self.fail_create > 0:
                self.fail_create = max(0, self.fail_create - 1)
                raise Boom("cannot connect")
            res = Owned(next(self.numbers))
            self.made.append(res)
        return res

    def reset(self, res: Owned) -> None:
        self.guard(res)
        res.resets += 1
        if self.fail_reset:
            raise Boom("cannot clean")

    def check(self, res: Owned) -> bool:
        self.guard(res)
        with self.lock:
            self.checks += 1
        return not res.broken

    def destroy(self, res: Owned) -> None:
        self.guard(res)
        assert not res.destroyed, f"{res} destroyed twice"
        res.destroyed = True
        with self.lock:
            self.destroyed.append(res)
        if self.fail_destroy:
            raise Boom("cannot close")

    def lifecycle(self, *, check: bool = True, reset: bool = True) -> respool.Lifecycle[Owned]:
        return respool.Lifecycle(
            self.create,
            reset=self.reset if reset else None,
            check=self.check if check else None,
            destroy=self.destroy,
        )


def assert_accounts(stats: WorkerStats) -> None:
    """The invariants WorkerStats documents, at a quiescent point."""
    settled = stats.completed + stats.failed + stats.cancelled
    assert stats.submitted == settled + stats.queued + stats.busy, stats
    assert stats.created - stats.destroyed == stats.resources <= max(stats.workers, 0) or (
        stats.workers == 0 and stats.resources == 0
    ), stats
    assert stats.busy + stats.idle == stats.workers, stats
