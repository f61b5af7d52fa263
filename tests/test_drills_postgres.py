"""Fault drills against the real PostgreSQL: killed backends and network cuts, with respool's
contrib lifecycles for psycopg (threads and asyncio) and asyncpg.

What a drill proves is what an operator needs at 3 a.m.: after the server kills every pooled
backend, callers see no error when the pool checks before lending, and at most one error per
dead connection when it does not; after a network cut, no caller hangs past its timeout, the
pool's counts stay exact through the outage, and it heals on its own once the network is back.

Each drill acts only on connections its own pool made (backends terminated by the pids those
connections report; network faults through a private :class:`~tests.tcp_proxy.TcpProxy`), since
the server is shared with other tests. Without PostgreSQL the drills skip; under ``CI=true``
they fail instead (see :mod:`tests.services`).

Defects the drills found in respool are kept at the end as strict xfails: each states the
behaviour the pools should have, and turns into a failure (XPASS) once the defect is fixed,
so that its mark is removed with the fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import respool
from respool._threads import filler
from tests import services
from tests.tcp_proxy import TcpProxy

try:
    import asyncpg
    import psycopg

    from respool.contrib import asyncpg as pg_asyncpg
    from respool.contrib import psycopg as pg_psycopg
except ImportError as exc:  # pragma: no cover - the drivers are in the test extra
    _IMPORT_ERROR: ImportError | None = exc
else:
    _IMPORT_ERROR = None

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]

Conn = Any  # a psycopg.Connection, psycopg.AsyncConnection or asyncpg.Connection

#: Connections in the pools of the backend drills, and of the network drills.
SIZE = 4
NET_SIZE = 3
#: The backend drills: this many requests, from this many threads (or tasks).
REQUESTS = 100
WORKERS = 8
#: "Well under a second" for REQUESTS requests after every backend died, generously.
FAST = 2.0
#: How long an acquire may wait during an outage, and how far past it a caller may return.
OUTAGE_TIMEOUT = 0.3
MARGIN = 1.0
#: The time a pool gets to heal once the network is back (its create backoff may have grown).
HEAL_WITHIN = 5.0
#: Seconds any join, barrier or setup acquire may take before the drill is declared stuck.
PATIENCE = 10.0
#: libpq's and asyncpg's connect timeout through a proxy (libpq's smallest is 2 s).
CONNECT_TIMEOUT = 2
#: How long asyncpg's destroy waits for a graceful close (5 s by default) before dropping the
#: socket: a blackholed connection never answers, and ``discard()`` waits for its destroy.
CLOSE_TIMEOUT = 0.5
#: psycopg's sync check, waiting on a silent server, gives up after this (the default is 5 s).
SYNC_CHECK_TIMEOUT = 0.5


# -- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres() -> str:
    """The server's conninfo, probed once; skip (or fail under CI) without it."""
    if _IMPORT_ERROR is not None:
        services.unavailable(f"a PostgreSQL driver is not installed: {_IMPORT_ERROR}")
    return services.require_postgres()


@pytest.fixture
def admin(postgres: str) -> Iterator[Conn]:
    """A connection outside every pool, to terminate the pool's backends from."""
    conn = psycopg.connect(postgres, autocommit=True)
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def proxy(postgres: str) -> Iterator[TcpProxy]:
    """A private proxy to the server, for this drill's network faults."""
    with TcpProxy(services.PG_HOST, services.PG_PORT) as tcp:
        yield tcp


@pytest.fixture(autouse=True)
def quiet_filler() -> Iterator[None]:
    """Let the shared filler thread finish what a drill left it (a hung connect through a
    proxy), so that the next drill's timings are its own."""
    yield
    assert filler.flush(timeout=PATIENCE), "the filler thread is stuck"


def terminate(admin: Conn, pids: set[int]) -> None:
    """Kill these backends (ours), waiting until each has exited."""
    for pid in pids:
        row = admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone()
        assert row == (True,), f"backend {pid} was not terminated: {row}"


def assert_exact(stats: respool.PoolStats, size: int) -> None:
    """At a quiet moment the counts add up: what lives is what was made minus what was
    destroyed, every destroy has a reason, nothing is lent or waited for, and what was lost
    is owed (being made) rather than forgotten."""
    assert stats.created - stats.destroyed == stats.size == stats.idle + stats.in_use, stats
    assert sum(stats.retired.values()) == stats.destroyed, stats
    assert stats.size + stats.creating == size, stats
    assert stats.in_use == 0 and stats.waiting == 0, stats


def wait_until(predicate: Callable[[], bool], within: float, what: str) -> float:
    """Poll *predicate* until it holds; the seconds that took, or fail after *within*."""
    start = time.perf_counter()
    while not predicate():
        if time.perf_counter() - start > within:
            pytest.fail(f"{what}: not within {within} s")
        time.sleep(0.01)
    return time.perf_counter() - start


def holds(predicate: Callable[[], bool], period: float) -> bool:
    """Does *predicate* hold throughout the next *period* seconds (polled)?"""
    until = time.perf_counter() + period
    while time.perf_counter() < until:
        if not predicate():
            return False
        time.sleep(0.01)
    return True


async def eventually(predicate: Callable[[], bool], within: float, what: str) -> float:
    """:func:`wait_until` for a drill on an event loop (the pool's tasks run meanwhile)."""
    start = time.perf_counter()
    while not predicate():
        if time.perf_counter() - start > within:
            pytest.fail(f"{what}: not within {within} s")
        await asyncio.sleep(0.01)
    return time.perf_counter() - start


@dataclass
class Tally:
    """What a batch of requests met."""

    successes: int = 0
    failures: list[BaseException] = field(default_factory=list)
    #: The longest a single acquire-and-query took, and the whole batch.
    slowest: float = 0.0
    elapsed: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, took: float, error: BaseException | None) -> None:
        with self.lock:
            self.slowest = max(self.slowest, took)
            if error is None:
                self.successes += 1
            else:
                self.failures.append(error)

    def kinds(self) -> set[str]:
        return {type(error).__name__ for error in self.failures}


def report(record_property: Callable[[str, object], None], name: str, value: float) -> None:
    """Print a figure (seen with ``-s``) and record it in the JUnit report."""
    print(f"{name}: {value:.3f} s")
    record_property(name, round(value, 4))


# -- psycopg, threads -------------------------------------------------------------------------


def conninfo(host: str = services.PG_HOST, port: int = services.PG_PORT) -> str:
    return services.pg_conninfo(host, port, connect_timeout=CONNECT_TIMEOUT)


def one(conn: Conn, sql: str) -> Any:
    row = conn.execute(sql).fetchone()
    assert row is not None
    return row[0]


def sync_pids(pool: respool.FixedPool[Conn], size: int) -> set[int]:
    """Hold all *size* connections at once and ask each for its backend: proves each works."""
    with contextlib.ExitStack() as stack:
        conns = [stack.enter_context(pool.acquire(timeout=PATIENCE)) for _ in range(size)]
        pids = {int(one(conn, "SELECT pg_backend_pid()")) for conn in conns}
    assert len(pids) == size
    return pids


def sync_requests(
    pool: respool.FixedPool[Conn],
    *,
    workers: int,
    requests: int | None = None,
    attempts: int | None = None,
    timeout: float = PATIENCE,
) -> Tally:
    """*requests* in all (or *attempts* each), from *workers* threads started together:
    each an acquire with *timeout* and a ``SELECT 1``."""
    tally = Tally()
    tickets = iter(range(requests)) if requests is not None else None
    start = threading.Barrier(workers + 1)

    def request() -> None:
        began = time.perf_counter()
        error: BaseException | None = None
        try:
            with pool.acquire(timeout=timeout) as conn:
                assert one(conn, "SELECT 1") == 1
        except Exception as exc:
            error = exc
        tally.record(time.perf_counter() - began, error)

    def work() -> None:
        start.wait(timeout=PATIENCE)
        if tickets is None:
            for _ in range(attempts or 0):
                request()
            return
        while next(tickets, None) is not None:  # (next() on an iterator is atomic)
            request()

    threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
    for thread in threads:
        thread.start()
    start.wait(timeout=PATIENCE)
    began = time.perf_counter()
    for thread in threads:
        thread.join(timeout=PATIENCE * 3)
    tally.elapsed = time.perf_counter() - began
    assert not any(thread.is_alive() for thread in threads), "a request is stuck"
    return tally


def sync_pool(lifecycle: respool.Lifecycle[Conn], size: int, **options: Any) -> Any:
    options.setdefault("timeout", PATIENCE)
    return respool.FixedPool(lifecycle, size=size, **options)


# -- asyncio: psycopg's AsyncConnection and asyncpg ------------------------------------------


async def fetch_psycopg(conn: Conn, sql: str) -> Any:
    cursor = await conn.execute(sql)
    row = await cursor.fetchone()
    assert row is not None
    return row[0]


async def fetch_asyncpg(conn: Conn, sql: str) -> Any:
    return await conn.fetchval(sql)


@dataclass(frozen=True)
class Flavour:
    """One asyncio driver: its contrib lifecycle (to the server at host:port) and a query."""

    name: str
    lifecycle: Callable[[str, int], respool.Lifecycle[Conn]]
    fetch: Callable[[Conn, str], Awaitable[Any]]


def _psycopg_async(host: str, port: int) -> respool.Lifecycle[Conn]:
    return pg_psycopg.async_connections(conninfo(host, port))


def _asyncpg(host: str, port: int) -> respool.Lifecycle[Conn]:
    return pg_asyncpg.connections(
        services.pg_dsn(host, port), timeout=CONNECT_TIMEOUT, close_timeout=CLOSE_TIMEOUT
    )


PSYCOPG_ASYNC = Flavour("psycopg-async", _psycopg_async, fetch_psycopg)
ASYNCPG = Flavour("asyncpg", _asyncpg, fetch_asyncpg)
FLAVOURS = [
    pytest.param(PSYCOPG_ASYNC, id=PSYCOPG_ASYNC.name),
    pytest.param(ASYNCPG, id=ASYNCPG.name),
]


def async_pool(lifecycle: respool.Lifecycle[Conn], size: int, **options: Any) -> Any:
    options.setdefault("timeout", PATIENCE)
    return respool.AsyncFixedPool(lifecycle, size=size, **options)


async def async_pids(pool: Any, flavour: Flavour, size: int) -> set[int]:
    """:func:`sync_pids` for an asyncio pool."""
    leases = [await pool.acquire(timeout=PATIENCE) for _ in range(size)]
    try:
        pids = {
            int(await flavour.fetch(lease.resource, "SELECT pg_backend_pid()")) for lease in leases
        }
    finally:
        for lease in leases:
            await lease.release()
    assert len(pids) == size
    return pids


async def async_requests(
    pool: Any,
    flavour: Flavour,
    *,
    workers: int,
    requests: int | None = None,
    attempts: int | None = None,
    timeout: float = PATIENCE,
) -> Tally:
    """:func:`sync_requests` with tasks."""
    tally = Tally()
    tickets = iter(range(requests)) if requests is not None else None

    async def request() -> None:
        began = time.perf_counter()
        error: BaseException | None = None
        try:
            async with pool.acquire(timeout=timeout) as conn:
                assert await flavour.fetch(conn, "SELECT 1") == 1
        except Exception as exc:
            error = exc
        tally.record(time.perf_counter() - began, error)

    async def work() -> None:
        if tickets is None:
            for _ in range(attempts or 0):
                await request()
            return
        while next(tickets, None) is not None:
            await request()

    began = time.perf_counter()
    async with asyncio.timeout(PATIENCE * 3):
        await asyncio.gather(*(work() for _ in range(workers)))
    tally.elapsed = time.perf_counter() - began
    return tally


def driver_errors() -> tuple[type[BaseException], ...]:
    """What a caller may meet when the server or the network fails under it."""
    return (
        respool.PoolTimeout,
        psycopg.Error,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        OSError,
    )


def assert_timed_out_for_the_network(outage: Tally) -> None:
    """Callers during an outage got ``PoolTimeout`` (every connection they were offered
    failed its check; the replacements could not connect), saying why: the driver's error
    from the last failed connect is its cause."""
    assert all(isinstance(error, respool.PoolTimeout) for error in outage.failures), outage.kinds()
    causes = [error.__cause__ for error in outage.failures]
    assert any(isinstance(cause, driver_errors()) for cause in causes), causes
    assert not any(isinstance(cause, respool.PoolError) for cause in causes), causes


# -- drill 1: the server kills every pooled backend while the pool is idle -------------------


def test_sync_killed_backends_with_check_cost_no_request(
    postgres: str, admin: Conn, record_property: Callable[[str, object], None]
) -> None:
    """Threads: every idle backend killed, the next 100 requests all succeed, fast."""
    with sync_pool(pg_psycopg.connections(conninfo()), SIZE) as pool:
        old = sync_pids(pool, SIZE)
        terminate(admin, old)

        tally = sync_requests(pool, workers=WORKERS, requests=REQUESTS)
        report(record_property, "requests_after_kill_s", tally.elapsed)

        assert tally.failures == [], tally.kinds()
        assert tally.successes == REQUESTS
        assert tally.elapsed < FAST
        # (The last replacement may still be on its way: the requests did not need it.)
        wait_until(lambda: pool.stats().size == SIZE, HEAL_WITHIN, "the pool refills")
        stats = pool.stats()
        assert stats.check_failures == SIZE, stats  # each dead one caught once, before lending
        assert stats.created == 2 * SIZE and stats.destroyed == SIZE, stats
        assert_exact(stats, SIZE)
        assert not sync_pids(pool, SIZE) & old


def test_sync_killed_backends_without_check_fail_once_each_then_heal(
    postgres: str, admin: Conn
) -> None:
    """Threads, no check: at most one failure per dead backend, then full capacity again."""
    lifecycle = dataclasses.replace(pg_psycopg.connections(conninfo()), check=None)
    with sync_pool(lifecycle, SIZE) as pool:
        old = sync_pids(pool, SIZE)
        terminate(admin, old)

        tally = sync_requests(pool, workers=WORKERS, requests=REQUESTS)

        # Without a check the dead are lent: the drill does kill something, and each dead
        # connection fails one request, whose ending destroys it (reset refuses it).
        print(f"failures without check: {len(tally.failures)} of {SIZE} dead")
        assert 1 <= len(tally.failures) <= SIZE, tally.kinds()
        assert all(isinstance(error, psycopg.OperationalError) for error in tally.failures)
        assert tally.successes == REQUESTS - len(tally.failures)
        wait_until(lambda: pool.stats().size == SIZE, HEAL_WITHIN, "the pool refills")
        new = sync_pids(pool, SIZE)  # full capacity: all SIZE at once, each answering
        assert len(new & old) == 0
        stats = pool.stats()
        assert stats.destroyed == len(tally.failures), stats
        assert stats.check_failures == 0, stats
        assert_exact(stats, SIZE)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_async_killed_backends_with_check_cost_no_request(
    postgres: str, admin: Conn, flavour: Flavour, record_property: Callable[[str, object], None]
) -> None:
    """Tasks: every idle backend killed, the next 100 requests all succeed, fast."""

    async def drill() -> None:
        async with async_pool(flavour.lifecycle(services.PG_HOST, services.PG_PORT), SIZE) as pool:
            old = await async_pids(pool, flavour, SIZE)
            terminate(admin, old)

            tally = await async_requests(pool, flavour, workers=WORKERS, requests=REQUESTS)
            report(record_property, "requests_after_kill_s", tally.elapsed)

            assert tally.failures == [], tally.kinds()
            assert tally.successes == REQUESTS
            assert tally.elapsed < FAST
            await eventually(lambda: pool.stats().size == SIZE, HEAL_WITHIN, "the pool refills")
            stats = pool.stats()
            assert stats.check_failures == SIZE, stats
            assert stats.created == 2 * SIZE and stats.destroyed == SIZE, stats
            assert_exact(stats, SIZE)
            assert not await async_pids(pool, flavour, SIZE) & old

    asyncio.run(drill())


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_async_killed_backends_without_check_fail_once_each_then_heal(
    postgres: str, admin: Conn, flavour: Flavour
) -> None:
    """Tasks, no check: at most one failure per dead backend, then full capacity again."""

    async def drill() -> None:
        lifecycle = flavour.lifecycle(services.PG_HOST, services.PG_PORT)
        async with async_pool(dataclasses.replace(lifecycle, check=None), SIZE) as pool:
            old = await async_pids(pool, flavour, SIZE)
            terminate(admin, old)

            tally = await async_requests(pool, flavour, workers=WORKERS, requests=REQUESTS)

            print(f"failures without check: {len(tally.failures)} of {SIZE} dead")
            assert 1 <= len(tally.failures) <= SIZE, tally.kinds()
            assert all(isinstance(error, driver_errors()) for error in tally.failures)
            assert not any(isinstance(e, respool.PoolError) for e in tally.failures)
            assert tally.successes == REQUESTS - len(tally.failures)
            await eventually(lambda: pool.stats().size == SIZE, HEAL_WITHIN, "the pool refills")
            assert not await async_pids(pool, flavour, SIZE) & old
            stats = pool.stats()
            assert stats.destroyed == len(tally.failures), stats
            assert stats.check_failures == 0, stats
            assert_exact(stats, SIZE)

    asyncio.run(drill())


# -- drill 2: the network between the pool and the server fails ------------------------------


def test_sync_cut_fails_callers_within_their_timeout_and_heals(
    proxy: TcpProxy, record_property: Callable[[str, object], None]
) -> None:
    """Threads, network cut (live reset, new refused): callers fail in time, counts stay exact,
    and the pool refills itself once the network is back."""
    with sync_pool(pg_psycopg.connections(conninfo(*proxy.address)), NET_SIZE) as pool:
        old = sync_pids(pool, NET_SIZE)
        lease = pool.acquire(timeout=PATIENCE)  # in use when the network goes
        assert one(lease.resource, "SELECT 1") == 1

        proxy.cut()
        began = time.perf_counter()
        with pytest.raises(psycopg.OperationalError), lease as conn:
            one(conn, "SELECT 1")
        assert time.perf_counter() - began < MARGIN

        outage = sync_requests(pool, workers=4, attempts=3, timeout=OUTAGE_TIMEOUT)
        assert outage.successes == 0  # the drill does cut something
        assert_timed_out_for_the_network(outage)
        assert outage.slowest <= OUTAGE_TIMEOUT + MARGIN, outage.slowest
        stats = pool.stats()
        assert stats.size == 0, stats  # every connection is known dead, none is lent again
        assert stats.create_failures >= 1 and proxy.refused >= 1, stats
        assert_exact(stats, NET_SIZE)

        proxy.restore()
        healed = wait_until(lambda: pool.stats().size == NET_SIZE, HEAL_WITHIN, "refill")
        report(record_property, "heal_after_restore_s", healed)
        before = pool.stats().check_failures
        assert not sync_pids(pool, NET_SIZE) & old
        assert pool.stats().check_failures == before  # what it refilled was alive
        assert_exact(pool.stats(), NET_SIZE)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_async_cut_fails_callers_within_their_timeout_and_heals(
    proxy: TcpProxy, flavour: Flavour, record_property: Callable[[str, object], None]
) -> None:
    """Tasks, network cut (live reset, new refused): callers fail in time, counts stay exact,
    and the pool refills itself once the network is back."""

    async def drill() -> None:
        async with async_pool(flavour.lifecycle(*proxy.address), NET_SIZE) as pool:
            old = await async_pids(pool, flavour, NET_SIZE)
            lease = await pool.acquire(timeout=PATIENCE)
            assert await flavour.fetch(lease.resource, "SELECT 1") == 1

            proxy.cut()
            began = time.perf_counter()
            with pytest.raises(driver_errors()) as excinfo:
                async with lease as conn:
                    await flavour.fetch(conn, "SELECT 1")
            assert not isinstance(excinfo.value, respool.PoolError)
            assert time.perf_counter() - began < MARGIN

            outage = await async_requests(
                pool, flavour, workers=4, attempts=3, timeout=OUTAGE_TIMEOUT
            )
            assert outage.successes == 0
            assert_timed_out_for_the_network(outage)
            assert outage.slowest <= OUTAGE_TIMEOUT + MARGIN, outage.slowest
            stats = pool.stats()
            assert stats.size == 0, stats
            assert stats.create_failures >= 1 and proxy.refused >= 1, stats
            assert_exact(stats, NET_SIZE)

            proxy.restore()
            healed = await eventually(lambda: pool.stats().size == NET_SIZE, HEAL_WITHIN, "refill")
            report(record_property, "heal_after_restore_s", healed)
            before = pool.stats().check_failures
            assert not await async_pids(pool, flavour, NET_SIZE) & old
            assert pool.stats().check_failures == before
            assert_exact(pool.stats(), NET_SIZE)

    asyncio.run(drill())


def test_sync_blackholed_connects_time_callers_out_at_their_deadline(proxy: TcpProxy) -> None:
    """Threads: while new connections hang (blackhole), acquires raise PoolTimeout at their
    deadline, not at the connect timeout; the pool heals once the network is back."""
    with sync_pool(pg_psycopg.connections(conninfo(*proxy.address)), 2) as pool:
        sync_pids(pool, 2)
        leases = [pool.acquire(timeout=PATIENCE) for _ in range(2)]
        proxy.blackhole()
        for lease in leases:  # both go: their replacements hang in connect
            lease.discard()

        tally = sync_requests(pool, workers=3, attempts=1, timeout=OUTAGE_TIMEOUT)
        assert tally.successes == 0
        assert all(isinstance(e, respool.PoolTimeout) for e in tally.failures), tally.kinds()
        assert OUTAGE_TIMEOUT <= tally.slowest <= OUTAGE_TIMEOUT + MARGIN, tally.slowest
        stats = pool.stats()
        assert stats.timeouts == 3 and stats.size == 0 and stats.creating == 2, stats
        assert_exact(stats, 2)

        proxy.restore()
        wait_until(lambda: pool.stats().size == 2, HEAL_WITHIN, "refill")
        sync_pids(pool, 2)
        assert_exact(pool.stats(), 2)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_async_blackholed_connects_time_callers_out_at_their_deadline(
    proxy: TcpProxy, flavour: Flavour
) -> None:
    """Tasks: while new connections hang (blackhole), acquires raise PoolTimeout at their
    deadline, not at the connect timeout; the pool heals once the network is back."""

    async def drill() -> None:
        async with async_pool(flavour.lifecycle(*proxy.address), 2) as pool:
            await async_pids(pool, flavour, 2)
            leases = [await pool.acquire(timeout=PATIENCE) for _ in range(2)]
            proxy.blackhole()
            for lease in leases:
                await lease.discard()

            tally = await async_requests(
                pool, flavour, workers=3, attempts=1, timeout=OUTAGE_TIMEOUT
            )
            assert tally.successes == 0
            assert all(isinstance(e, respool.PoolTimeout) for e in tally.failures), tally.kinds()
            assert OUTAGE_TIMEOUT <= tally.slowest <= OUTAGE_TIMEOUT + MARGIN, tally.slowest
            stats = pool.stats()
            assert stats.timeouts == 3 and stats.size == 0 and stats.creating == 2, stats
            assert_exact(stats, 2)

            proxy.restore()
            await eventually(lambda: pool.stats().size == 2, HEAL_WITHIN, "refill")
            await async_pids(pool, flavour, 2)
            assert_exact(pool.stats(), 2)

    asyncio.run(drill())


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_async_blackholed_live_connections_hold_an_acquire_no_longer_than_its_timeout(
    proxy: TcpProxy, flavour: Flavour
) -> None:
    """Tasks: idle connections that went silent (blackhole) hold an acquire no longer than
    its timeout (its check goes on as the pool's); the pool heals once the network is back."""

    async def drill() -> None:
        async with async_pool(flavour.lifecycle(*proxy.address), 2) as pool:
            await async_pids(pool, flavour, 2)
            proxy.blackhole()

            async def acquire() -> str:
                try:
                    async with pool.acquire(timeout=OUTAGE_TIMEOUT) as conn:
                        return f"lent, answering {await flavour.fetch(conn, 'SELECT 1')}"
                except respool.PoolTimeout:
                    return "PoolTimeout"

            began = time.perf_counter()
            caller = asyncio.create_task(acquire())
            await asyncio.wait((caller,), timeout=OUTAGE_TIMEOUT + MARGIN)
            took = time.perf_counter() - began
            proxy.restore()  # (a stuck caller gets its answer now, and the drill ends)
            outcome = await caller
            assert took < OUTAGE_TIMEOUT + MARGIN, f"the acquire outlived its timeout: {outcome}"
            assert outcome == "PoolTimeout"  # nothing could connect meanwhile
            stats = pool.stats()
            assert stats.timeouts == 1 and stats.size == 2, stats  # its check goes on

            await eventually(lambda: pool.stats().size == 2, HEAL_WITHIN, "refill")
            await async_pids(pool, flavour, 2)
            assert_exact(pool.stats(), 2)

    asyncio.run(drill())


def test_sync_blackholed_live_connection_fails_its_bounded_check(proxy: TcpProxy) -> None:
    """Threads: an idle connection that went silent (blackhole) holds an acquire no longer
    than the lifecycle's ``check_timeout`` (a sync check cannot be cut short by the pool's
    deadline); the pool heals once the network is back."""
    lifecycle = pg_psycopg.connections(conninfo(*proxy.address), check_timeout=SYNC_CHECK_TIMEOUT)
    with sync_pool(lifecycle, 1) as pool:
        sync_pids(pool, 1)
        proxy.blackhole()

        tally = sync_requests(pool, workers=1, attempts=1, timeout=OUTAGE_TIMEOUT)
        assert [type(error) for error in tally.failures] == [respool.PoolTimeout]
        assert tally.slowest <= max(OUTAGE_TIMEOUT, SYNC_CHECK_TIMEOUT) + MARGIN, tally.slowest
        assert pool.stats().check_failures == 1

        proxy.restore()
        wait_until(lambda: pool.stats().size == 1, HEAL_WITHIN, "refill")
        sync_pids(pool, 1)
        assert_exact(pool.stats(), 1)


def test_sync_keepalive_replaces_cut_connections_before_callers_meet_them(
    proxy: TcpProxy,
) -> None:
    """Threads, keepalive: connections cut while idle are found dead and replaced by the
    background, with no caller involved; callers then meet only live ones."""
    lifecycle = pg_psycopg.connections(conninfo(*proxy.address))
    with sync_pool(lifecycle, NET_SIZE, keepalive=0.1) as pool:
        old = sync_pids(pool, NET_SIZE)
        acquires = pool.stats().acquires
        proxy.cut()
        wait_until(
            lambda: pool.stats().check_failures == NET_SIZE, HEAL_WITHIN, "keepalive finds the dead"
        )
        proxy.restore()
        wait_until(lambda: pool.stats().size == NET_SIZE, HEAL_WITHIN, "refill")
        stats = pool.stats()
        assert stats.acquires == acquires, "nobody but the background touched the pool"
        assert stats.retired["check"] == NET_SIZE, stats
        assert not sync_pids(pool, NET_SIZE) & old
        assert pool.stats().check_failures == NET_SIZE  # callers met no dead connection
        assert_exact(pool.stats(), NET_SIZE)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_async_keepalive_replaces_cut_connections_before_callers_meet_them(
    proxy: TcpProxy, flavour: Flavour
) -> None:
    """Tasks, keepalive: connections cut while idle are found dead and replaced by the
    background, with no caller involved; callers then meet only live ones."""

    async def drill() -> None:
        lifecycle = flavour.lifecycle(*proxy.address)
        async with async_pool(lifecycle, NET_SIZE, keepalive=0.1) as pool:
            old = await async_pids(pool, flavour, NET_SIZE)
            acquires = pool.stats().acquires
            proxy.cut()
            await eventually(
                lambda: pool.stats().check_failures == NET_SIZE,
                HEAL_WITHIN,
                "keepalive finds the dead",
            )
            proxy.restore()
            await eventually(lambda: pool.stats().size == NET_SIZE, HEAL_WITHIN, "refill")
            stats = pool.stats()
            assert stats.acquires == acquires, "nobody but the background touched the pool"
            assert stats.retired["check"] == NET_SIZE, stats
            assert not await async_pids(pool, flavour, NET_SIZE) & old
            assert pool.stats().check_failures == NET_SIZE
            assert_exact(pool.stats(), NET_SIZE)

    asyncio.run(drill())


# -- defects the drills found ------------------------------------------------------------------
# An acquire past its deadline used to go on checking the next idle connections (fixed: a check
# that fails after the deadline ends the acquire). What is still open is marked xfail, strict:
# it passes once its defect is fixed.


def test_sync_acquire_past_its_deadline_checks_no_more_connections(proxy: TcpProxy) -> None:
    """Threads: silent idle connections hold an acquire one check past its deadline at
    most; the others are left for later callers, not checked on this caller's time."""
    lifecycle = pg_psycopg.connections(conninfo(*proxy.address), check_timeout=SYNC_CHECK_TIMEOUT)
    with sync_pool(lifecycle, NET_SIZE) as pool:
        sync_pids(pool, NET_SIZE)
        proxy.blackhole()
        tally = sync_requests(pool, workers=1, attempts=1, timeout=OUTAGE_TIMEOUT)
        checked = pool.stats().check_failures
        proxy.restore()
        assert [type(error) for error in tally.failures] == [respool.PoolTimeout]
        assert checked == 1, f"{checked} connections checked for one caller: {tally.slowest:.2f} s"


def closed(conn: Conn) -> bool:
    """Is this psycopg or asyncpg connection closed?"""
    is_closed = getattr(conn, "is_closed", None)
    return bool(is_closed()) if callable(is_closed) else bool(conn.closed)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_async_acquire_past_its_deadline_condemns_no_healthy_connection(
    postgres: str, flavour: Flavour
) -> None:
    """Tasks: an acquire whose check of one silent connection uses up its timeout condemns
    nothing: that check goes on as the pool's, and the healthy idle connections behind it are
    not touched."""

    async def drill(silent: TcpProxy, healthy: TcpProxy) -> None:
        made: list[Conn] = []
        to_silent, to_healthy = (
            flavour.lifecycle(*silent.address),
            flavour.lifecycle(*healthy.address),
        )

        async def create() -> Conn:  # the first connection through one proxy, then the other
            conn = await (to_healthy if made else to_silent).create()
            made.append(conn)
            return conn

        lifecycle = respool.Lifecycle(
            create, reset=to_healthy.reset, check=to_healthy.check, destroy=to_healthy.destroy
        )
        async with async_pool(lifecycle, NET_SIZE) as pool:
            leases = [await pool.acquire(timeout=PATIENCE) for _ in range(NET_SIZE)]
            leases.sort(key=lambda lease: lease.resource is made[0])
            for lease in leases:  # the silent one last: it is the next lent (LIFO)
                await lease.release()
            silent.blackhole()
            with contextlib.suppress(respool.PoolTimeout):
                async with pool.acquire(timeout=OUTAGE_TIMEOUT):
                    pass
            stats = pool.stats()
            silent.restore()
            casualties = [conn for conn in made[1:NET_SIZE] if closed(conn)]
        assert casualties == [], f"{len(casualties)} healthy connections were destroyed"
        assert (stats.timeouts, stats.check_failures, stats.destroyed) == (1, 0, 0), stats

    with (
        TcpProxy(services.PG_HOST, services.PG_PORT) as silent,
        TcpProxy(services.PG_HOST, services.PG_PORT) as healthy,
    ):
        asyncio.run(drill(silent, healthy))


def test_sync_silent_network_of_one_pool_stalls_no_other_pool(proxy: TcpProxy) -> None:
    """Threads: a keepalive check waiting on a silent connection in one pool does not keep
    another pool, whose server is fine, from replacing a connection it lost."""
    silent_lifecycle = pg_psycopg.connections(conninfo(*proxy.address))
    with (
        sync_pool(silent_lifecycle, 1, keepalive=0.1) as silent,
        sync_pool(pg_psycopg.connections(conninfo()), 1) as other,
    ):
        sync_pids(silent, 1)
        proxy.blackhole()
        # Nobody holds the silent pool's connection: in use means out for its keepalive
        # check, and out for longer than a round trip takes means stuck in it.
        wait_until(
            lambda: holds(lambda: silent.stats().in_use == 1, 0.3),
            HEAL_WITHIN,
            "a keepalive check hangs",
        )
        other.acquire(timeout=PATIENCE).discard()  # its replacement is owed to the filler

        began = time.perf_counter()
        try:
            with other.acquire(timeout=MARGIN) as conn:
                replaced = one(conn, "SELECT 1") == 1
        except respool.PoolTimeout:
            replaced = False
        took = time.perf_counter() - began
        proxy.restore()  # the hung check answers; the filler moves on
        assert replaced, f"no replacement within {took:.2f} s, with the server fine"
