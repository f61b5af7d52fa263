"""Everything the free-list scenarios time, behind one interface: get a resource, put it back.

Baselines (a ``queue.Queue`` used as a pool, a ``Condition`` around a ``deque``), respool's
own pools and the peers (SQLAlchemy's ``QueuePool``, psycopg_pool's ``ConnectionPool``,
redis-py's connection pools) are each opened as a :class:`Borrower`, so the uncontended and
contended scenarios time them all with the same loop and nothing favours one of them.

Peers are imported only when their row is about to be timed, never when respool or this
module is imported. A peer that is not installed raises :class:`PeerMissing` and its row says
how to install it; a peer that is installed but breaks fails the run, since a row that
silently disappears would look like a result.

The peers' connections are fakes with no I/O at all, so the tables price each pool's own
bookkeeping and nothing else: psycopg_pool gets a connection class whose ``connect`` returns
an object reporting an idle transaction status (a coroutine ``connect`` for its
``AsyncConnectionPool``, opened as an :class:`AsyncBorrower` on the running loop),
SQLAlchemy a creator returning an object with ``rollback`` and ``close``, and redis-py its
own ``Connection`` class with the socket calls replaced by no-ops.
"""

from __future__ import annotations

import importlib.util
import queue
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from operator import methodcaller
from typing import Any, Final

from respool._threads.free_list import DEFAULT_FAIRNESS_WINDOW
from respool.bench._report import Cell
from respool.elastic import ElasticPool
from respool.fixed import FixedPool
from respool.stats import PoolStats

__all__ = [
    "ASYNC_PEERS",
    "BASELINES",
    "PEERS",
    "AsyncBorrower",
    "AsyncOpener",
    "Borrower",
    "ConditionPool",
    "Opener",
    "PeerMissing",
    "installed",
    "respool_pools",
]


class PeerMissing(Exception):
    """The package a row needs is not installed (its row says so instead of a figure)."""


@dataclass(frozen=True)
class Borrower:
    """One open pool, as the timing loops see it."""

    get: Callable[[], Any]
    put: Callable[[Any], object]
    close: Callable[[], object]
    #: respool's pools only: their statistics (the fairness figures come from there).
    stats: Callable[[], PoolStats] | None = None
    #: The fairness window in seconds, for a respool pool that has one.
    window: float | None = None


#: Opens a pool of that many resources for one case.
Opener = Callable[[int], Borrower]


@dataclass(frozen=True)
class AsyncBorrower:
    """One open pool, as the asyncio timing loops see it: ``await get()``, ``await put(x)``."""

    get: Callable[[], Awaitable[Any]]
    put: Callable[[Any], Awaitable[object]]
    close: Callable[[], Awaitable[object]]
    #: respool's pools only: their statistics (the fairness figures come from there).
    stats: Callable[[], PoolStats] | None = None
    #: The fairness window in seconds, for a respool pool that has one.
    window: float | None = None


#: Opens a pool of that many resources for one asyncio case; awaited on the loop that will
#: use it.
AsyncOpener = Callable[[int], Awaitable[AsyncBorrower]]


def installed(module: str) -> bool:
    """Whether *module* can be imported (looked up without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module set to None
        return False


def _require(*modules: str) -> None:
    for module in modules:
        if not installed(module):
            raise PeerMissing(module)


# -- baselines --------------------------------------------------------------------------------


class ConditionPool:
    """The textbook pool: a ``deque`` of resources guarded by a ``threading.Condition``.

    ``get`` waits on the condition while the deque is empty, ``put`` appends and notifies one
    waiter. Whoever takes the lock first wins, so a releaser may take the resource straight
    back: fast, and unfair.
    """

    def __init__(self, items: list[object]) -> None:
        self._items: deque[object] = deque(items)
        self._ready = threading.Condition(threading.Lock())

    def get(self) -> object:
        with self._ready:
            while not self._items:
                self._ready.wait()
            return self._items.pop()

    def put(self, item: object) -> None:
        with self._ready:
            self._items.append(item)
            self._ready.notify()


def _queue(kind: type[queue.Queue[object]]) -> Opener:
    def open_(size: int) -> Borrower:
        q = kind()
        for _ in range(size):
            q.put(object())
        return Borrower(q.get, q.put, lambda: None)

    return open_


def _condition(size: int) -> Borrower:
    pool = ConditionPool([object() for _ in range(size)])
    return Borrower(pool.get, pool.put, lambda: None)


#: The standard library's ways to build a pool, by row name.
BASELINES: Final[dict[str, Opener]] = {
    "queue.Queue": _queue(queue.Queue),
    "queue.LifoQueue": _queue(queue.LifoQueue),
    "Condition+deque": _condition,
}


# -- respool ----------------------------------------------------------------------------------


@dataclass
class Waits:
    """The acquire waits of one contended row, round after round: both contended scenarios
    (threads and asyncio) keep and show them alike."""

    #: This round's waits, appended by the timed operation (``list.append`` is atomic).
    current: list[float] = field(default_factory=list)
    rounds_ns: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    longest: float = 0.0

    def start_round(self) -> None:
        self.current.clear()

    def end_round(self, name: str, seconds: float, total: int) -> None:
        """Close a round of *total* acquires that took *seconds*. One that recorded another
        count fails the row, so a broken case can never pass for a fast one."""
        if len(self.current) != total:
            raise RuntimeError(f"{name}: {len(self.current)} acquires recorded, {total} expected")
        self.rounds_ns.append(seconds / total * 1e9)
        ordered = sorted(self.current)
        self.p50.append(_percentile(ordered, 0.50))
        self.p99.append(_percentile(ordered, 0.99))
        self.longest = max(self.longest, ordered[-1])

    def extra(self, borrower: Borrower | AsyncBorrower) -> dict[str, Cell]:
        """The row's wait figures (median over rounds of p50 and p99; the longest wait of any
        round) and, for respool's pools, the fairness statistics."""
        extra: dict[str, Cell] = {
            "p50_us": sorted(self.p50)[len(self.p50) // 2] * 1e6,
            "p99_us": sorted(self.p99)[len(self.p99) // 2] * 1e6,
            "max_us": self.longest * 1e6,
        }
        if borrower.stats is not None:
            stats = borrower.stats()
            extra["overtaken_max_us"] = stats.overtaken_wait_max * 1e6
            extra["overtakes"] = stats.overtakes
            if borrower.window is not None:
                extra["window_us"] = borrower.window * 1e6
        return extra


def _percentile(ordered: list[float], fraction: float) -> float:
    """The value below which *fraction* of the sorted *ordered* values lie (nearest rank)."""
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _leases(pool: FixedPool[object] | ElasticPool[object], window: float | None) -> Borrower:
    """``acquire()`` and ``release()``: what ``with pool.acquire():`` does around its body.
    (``methodcaller`` runs in C, so the loop adds no Python frame of its own here, as with
    the bound methods of the baselines.)"""
    return Borrower(pool.acquire, methodcaller("release"), pool.close, pool.stats, window)


def fixed(fairness: str, window: float | None = None) -> Opener:
    """A ``FixedPool`` of the asked size with the given fairness (and *window*, if given),
    in its default configuration otherwise (the figures to reach are for the defaults)."""

    def open_(size: int) -> Borrower:
        pool = FixedPool(
            object,
            size,
            fairness=fairness,
            fairness_window=window,
            name=f"bench-fixed-{fairness}",
        )
        return _leases(pool, window or _window(fairness))

    return open_


def elastic(fairness: str) -> Opener:
    """An ``ElasticPool`` capped at the asked size (so callers wait, as on a fixed pool)."""

    def open_(size: int) -> Borrower:
        pool = ElasticPool(
            object,
            min_idle=size,
            max_idle=size,
            max_size=size,
            fairness=fairness,
            name=f"bench-elastic-{fairness}",
        )
        return _leases(pool, _window(fairness))

    return open_


def _window(fairness: str) -> float | None:
    """The window in force for a pool built with *fairness* and no ``fairness_window``."""
    return DEFAULT_FAIRNESS_WINDOW if fairness == "bounded" else None


def respool_pools() -> dict[str, Opener]:
    """respool's rows of the contended tables, by row name."""
    return {
        "FixedPool(bounded)": fixed("bounded"),
        "FixedPool(fifo)": fixed("fifo"),
        # The window is the knob between the two: Go's 1 ms is far longer than its scheduler's
        # latency, while a CPython thread may wait a whole switch interval (5 ms) to run.
        "FixedPool(bounded, 5 ms)": fixed("bounded", 0.005),
        "ElasticPool(bounded)": elastic("bounded"),
    }


# -- peers --------------------------------------------------------------------------------------


class _FakeDBAPI:
    """A DB-API connection with nothing behind it, for SQLAlchemy's pool."""

    def rollback(self) -> None:
        pass

    def commit(self) -> None:
        pass

    def close(self) -> None:
        pass


def sqlalchemy_queue_pool(size: int) -> Borrower:
    """SQLAlchemy's ``QueuePool``: ``connect()``, then ``close()`` on the proxy it returns
    (which resets the connection with a ``rollback``, as every SQLAlchemy checkin does)."""
    _require("sqlalchemy")
    from sqlalchemy.pool import QueuePool

    pool = QueuePool(_FakeDBAPI, pool_size=size, max_overflow=0, timeout=30)  # type: ignore[arg-type]

    return Borrower(pool.connect, methodcaller("close"), pool.dispose)


class _FakePgConn:
    """The one attribute of ``psycopg.pq.PGconn`` that psycopg_pool reads on return."""

    def __init__(self, idle: object) -> None:
        self.transaction_status = idle


class _FakePsycopgConnection:
    """Enough of ``psycopg.Connection`` for psycopg_pool: ``connect``, ``close``, a
    ``pgconn`` whose transaction is idle, and the attributes the pool sets on it."""

    def __init__(self, idle: object) -> None:
        self.pgconn = _FakePgConn(idle)
        self._pool: object = None
        self._created_at = 0.0
        self._expire_at = 0.0
        self.closed = False

    @classmethod
    def connect(cls, conninfo: str = "", **kwargs: object) -> _FakePsycopgConnection:
        from psycopg.pq import TransactionStatus

        return cls(TransactionStatus.IDLE)

    def close(self) -> None:
        self.closed = True


def psycopg_connection_pool(size: int) -> Borrower:
    """psycopg_pool's ``ConnectionPool``: ``getconn()`` and ``putconn()``, with a fake
    connection class (no server)."""
    _require("psycopg", "psycopg_pool")
    from psycopg_pool import ConnectionPool

    pool: ConnectionPool[Any] = ConnectionPool(
        "",
        connection_class=_FakePsycopgConnection,
        min_size=size,
        max_size=size,
        open=False,
        name="bench-psycopg",
    )
    pool.open(wait=True, timeout=30.0)
    return Borrower(pool.getconn, pool.putconn, pool.close)


class _FakeAsyncPsycopgConnection(_FakePsycopgConnection):
    """The same for psycopg_pool's ``AsyncConnectionPool``: ``connect`` and ``close`` are
    coroutines, as on ``psycopg.AsyncConnection``."""

    @classmethod
    async def connect(  # type: ignore[override]
        cls, conninfo: str = "", **kwargs: object
    ) -> _FakeAsyncPsycopgConnection:
        from psycopg.pq import TransactionStatus

        return cls(TransactionStatus.IDLE)

    async def close(self) -> None:  # type: ignore[override]
        self.closed = True


async def psycopg_async_connection_pool(size: int) -> AsyncBorrower:
    """psycopg_pool's ``AsyncConnectionPool``: ``await getconn()`` and ``await putconn()``,
    with a fake connection class (no server). Opened on the running loop."""
    _require("psycopg", "psycopg_pool")
    from psycopg_pool import AsyncConnectionPool

    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        "",
        connection_class=_FakeAsyncPsycopgConnection,
        min_size=size,
        max_size=size,
        open=False,
        name="bench-psycopg-async",
    )
    await pool.open(wait=True, timeout=30.0)
    return AsyncBorrower(pool.getconn, pool.putconn, pool.close)


def _no_io_connection_class() -> type[Any]:
    """redis-py's ``Connection`` with its socket calls stubbed out: the pool still runs its
    own checks (``connect``, ``can_read``) on every checkout, which then cost nothing."""
    from redis.connection import Connection

    class NoIOConnection(Connection):
        def connect(self) -> None:
            pass

        def can_read(self, timeout: float = 0) -> bool:
            return False

        def disconnect(self, *args: object, **kwargs: object) -> None:
            pass

    return NoIOConnection


def redis_connection_pool(size: int) -> Borrower:
    """redis-py's ``ConnectionPool`` (it raises when exhausted: uncontended use only)."""
    _require("redis")
    import redis

    pool = redis.ConnectionPool(connection_class=_no_io_connection_class(), max_connections=size)
    return Borrower(pool.get_connection, pool.release, pool.disconnect)


def redis_blocking_pool(size: int) -> Borrower:
    """redis-py's ``BlockingConnectionPool``, the one that makes callers wait."""
    _require("redis")
    import redis

    pool = redis.BlockingConnectionPool(  # type: ignore[no-untyped-call]
        connection_class=_no_io_connection_class(), max_connections=size, timeout=30
    )
    return Borrower(pool.get_connection, pool.release, pool.disconnect)


#: Peers by row name, for one thread (uncontended) and for many (contended).
PEERS: Final[dict[str, Opener]] = {
    "SQLAlchemy QueuePool": sqlalchemy_queue_pool,
    "psycopg_pool ConnectionPool": psycopg_connection_pool,
    "redis-py ConnectionPool": redis_connection_pool,
}
BLOCKING_PEERS: Final[dict[str, Opener]] = {
    "SQLAlchemy QueuePool": sqlalchemy_queue_pool,
    "psycopg_pool ConnectionPool": psycopg_connection_pool,
    "redis-py BlockingConnectionPool": redis_blocking_pool,
}
#: Peers of the asyncio scenario, by row name.
ASYNC_PEERS: Final[dict[str, AsyncOpener]] = {
    "psycopg_pool AsyncConnectionPool": psycopg_async_connection_pool,
}
