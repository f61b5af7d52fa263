"""respool.contrib.psycopg against a real PostgreSQL: connections that come back in a
transaction, failed, busy, closed or with session state are never lent as they are; a check
that is one cheap round trip and opens no transaction; every pool kind each lifecycle fits.

The server is shared: every test acts only on the backends its own connections report
(``conn.info.backend_pid``), and names what it creates uniquely (temporary tables).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
from psycopg.pq import TransactionStatus

import respool
from respool.contrib import psycopg as pg
from tests import services
from tests.conftest import wait_until
from tests.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]

#: Seconds any acquire may wait before the test is declared stuck.
PATIENCE = 10.0


@pytest.fixture(scope="module")
def conninfo() -> str:
    return services.require_postgres()


@pytest.fixture
def admin(conninfo: str) -> Iterator[psycopg.Connection[Any]]:
    """A separate autocommit connection, outside any pool, to look at and act on backends."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        yield conn


def pid_of(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> int:
    return conn.info.backend_pid  # kept by libpq: no round trip


def activity(admin: psycopg.Connection[Any], pid: int) -> tuple[str, str]:
    """The last query a backend received, and its state, as the server reports them."""
    row = admin.execute(
        "SELECT query, state FROM pg_stat_activity WHERE pid = %s", (pid,)
    ).fetchone()
    assert row is not None, f"backend {pid} is gone"
    return str(row[0]), str(row[1])


def terminate(admin: psycopg.Connection[Any], pid: int) -> None:
    """End backend *pid* (one of ours) and wait until it has exited."""
    row = admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone()
    assert row == (True,), f"backend {pid} was not terminated: {row}"


def temp_table(conn: psycopg.Connection[Any]) -> str:
    """A committed, empty temporary table on *conn*'s session; its name."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    conn.execute(f"CREATE TEMP TABLE {name} (x int)")
    if not conn.autocommit:
        conn.commit()
    return name


def count(conn: psycopg.Connection[Any], table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def free_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def quiet(stats: respool.PoolStats) -> None:
    assert stats.created - stats.destroyed == stats.size == stats.idle + stats.in_use, stats


# -- every pool kind ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fixed", "elastic"])
def test_threaded_free_lists_lend_working_connections(conninfo: str, kind: str) -> None:
    """FixedPool and ElasticPool lend connections that answer, and reuse them clean."""
    life = pg.connections(conninfo)
    pool: respool.FixedPool[Any] | respool.ElasticPool[Any]
    if kind == "fixed":
        pool = respool.FixedPool(life, size=1, timeout=PATIENCE)
    else:
        pool = respool.ElasticPool(life, max_idle=1, max_size=1, timeout=PATIENCE)
    with pool:
        for _ in range(3):
            with pool.acquire() as conn:
                assert conn.execute("SELECT 6 * 7").fetchone() == (42,)
    stats = pool.stats()
    assert stats.created == 1 and stats.reset_errors == 0
    assert stats.destroyed == 1 and conn.closed  # closed with the pool


def test_worker_pool_runs_tasks_on_its_connections(conninfo: str) -> None:
    """WorkerPool takes the sync lifecycle; a task's open transaction is rolled back after it."""
    with respool.WorkerPool(pg.connections(conninfo), workers=1, timeout=PATIENCE) as wp:
        table = wp.submit(temp_table).result()
        wp.submit(lambda conn: conn.execute(f"INSERT INTO {table} VALUES (1)")).result()
        assert wp.submit(count, table).result() == 0
        stats = wp.stats()
    assert stats.replaced == 0


def test_threaded_pools_refuse_the_async_lifecycle(conninfo: str) -> None:
    """async_connections() has async callbacks: a threaded pool says to use its twin."""
    with pytest.raises(TypeError, match="async"):
        respool.FixedPool(pg.async_connections(conninfo), size=1)


# -- reset ----------------------------------------------------------------------------------


def test_open_transaction_is_rolled_back_and_the_next_user_sees_none_of_it(
    conninfo: str,
) -> None:
    """Uncommitted writes left by one user are rolled back, on the same connection."""
    with respool.FixedPool(pg.connections(conninfo), size=1, timeout=PATIENCE) as pool:
        with pool.acquire() as conn:
            table = temp_table(conn)
            conn.execute(f"INSERT INTO {table} VALUES (1), (2)")
            first = pid_of(conn)
            assert conn.info.transaction_status == TransactionStatus.INTRANS
        with pool.acquire() as conn:
            assert pid_of(conn) == first  # reused, not replaced
            assert conn.info.transaction_status == TransactionStatus.IDLE
            assert count(conn, table) == 0
        assert pool.stats().reset_errors == 0


def test_failed_transaction_is_rolled_back(conninfo: str) -> None:
    """A connection returned INERROR (a failed statement) is rolled back and reusable."""
    with respool.FixedPool(pg.connections(conninfo), size=1, timeout=PATIENCE) as pool:
        with pool.acquire() as conn:
            with pytest.raises(psycopg.errors.DivisionByZero):
                conn.execute("SELECT 1 / 0")
            assert conn.info.transaction_status == TransactionStatus.INERROR
            first = pid_of(conn)
        with pool.acquire() as conn:
            assert pid_of(conn) == first
            assert conn.execute("SELECT 1").fetchone() == (1,)


def test_autocommit_idle_return_sends_nothing(
    conninfo: str, admin: psycopg.Connection[Any]
) -> None:
    """The hot path: an idle connection comes back with no round trip (the server's last
    query for the backend is still the user's)."""
    marker = f"SELECT 'respool-{uuid.uuid4().hex}'"
    with respool.FixedPool(
        pg.connections(conninfo, autocommit=True), size=1, timeout=PATIENCE
    ) as pool:
        with pool.acquire() as conn:
            conn.execute(marker)
            pid = pid_of(conn)
        assert activity(admin, pid) == (marker, "idle")


def test_committed_non_autocommit_return_sends_nothing(
    conninfo: str, admin: psycopg.Connection[Any]
) -> None:
    """A non-autocommit connection returned after a commit is idle: no ROLLBACK is sent."""
    with respool.FixedPool(pg.connections(conninfo), size=1, timeout=PATIENCE) as pool:
        with pool.acquire() as conn:
            conn.execute("SELECT 1")
            conn.commit()
            pid = pid_of(conn)
        assert activity(admin, pid) == ("COMMIT", "idle")


def test_reset_statement_restores_session_settings(conninfo: str) -> None:
    """With reset_statement="RESET ALL" a user's SETs are undone; without it they survive."""
    app = f"respool-{uuid.uuid4().hex[:8]}"

    def settings(conn: psycopg.Connection[Any]) -> tuple[Any, ...]:
        row = conn.execute(
            "SELECT current_setting('application_name'),"
            " current_setting('respool_test.marker', true)"
        ).fetchone()
        assert row is not None
        return tuple(row)

    for statement, expected in [("RESET ALL", (app, "")), (None, ("dirty", "dirty"))]:
        life = pg.connections(conninfo, reset_statement=statement, application_name=app)
        with respool.FixedPool(life, size=1, timeout=PATIENCE) as pool:
            with pool.acquire() as conn:
                conn.execute("SET application_name = 'dirty'")
                conn.execute("SET respool_test.marker = 'dirty'")
                conn.commit()
            with pool.acquire() as conn:
                assert settings(conn) == expected, statement
                assert conn.info.transaction_status == TransactionStatus.INTRANS
            assert pool.stats().reset_errors == 0


def test_reset_statement_runs_outside_a_transaction(conninfo: str) -> None:
    """DISCARD ALL cannot run in a transaction block: on a non-autocommit connection
    returned mid-transaction it still runs (after the rollback, in autocommit)."""
    life = pg.connections(conninfo, reset_statement="DISCARD ALL")
    with respool.FixedPool(life, size=1, timeout=PATIENCE) as pool:
        with pool.acquire() as conn:
            table = temp_table(conn)
            conn.execute(f"INSERT INTO {table} VALUES (1)")
            first = pid_of(conn)
        with pool.acquire() as conn:
            assert pid_of(conn) == first
            assert not conn.autocommit
            row = conn.execute("SELECT to_regclass(%s)", (f"pg_temp.{table}",)).fetchone()
            assert row == (None,)  # DISCARD ALL dropped the temporary table
        assert pool.stats().reset_errors == 0


def test_client_side_settings_are_put_back(conninfo: str) -> None:
    """A user who switched autocommit or read-only does not pass that on to the next one."""
    with respool.FixedPool(pg.connections(conninfo), size=1, timeout=PATIENCE) as pool:
        with pool.acquire() as conn:
            conn.autocommit = True
            conn.read_only = True
            conn.isolation_level = psycopg.IsolationLevel.SERIALIZABLE
            first = pid_of(conn)
        with pool.acquire() as conn:
            assert pid_of(conn) == first
            assert conn.autocommit is False
            assert conn.read_only is None and conn.isolation_level is None


def test_a_connection_closed_by_its_user_is_destroyed(conninfo: str) -> None:
    """reset refuses a closed connection; the pool makes another."""
    with respool.FixedPool(pg.connections(conninfo), size=1, timeout=PATIENCE) as pool:
        with pool.acquire() as conn:
            first = pid_of(conn)
            conn.close()
        with pool.acquire() as conn:
            assert not conn.closed and pid_of(conn) != first
            assert conn.execute("SELECT 1").fetchone() == (1,)
        stats = pool.stats()
    assert stats.reset_errors == 1 and stats.created == 2 and stats.destroy_errors == 0
    quiet(stats)


def test_reset_refuses_a_connection_with_a_query_still_running(conninfo: str) -> None:
    """Given back while another thread's query runs on it (ACTIVE): ConnectionUnusable."""
    life = pg.connections(conninfo)
    assert life.reset is not None
    with psycopg.connect(conninfo) as conn:
        worker = threading.Thread(target=conn.execute, args=("SELECT pg_sleep(0.3)",))
        worker.start()
        try:
            wait_until(lambda: conn.info.transaction_status == TransactionStatus.ACTIVE)
            with pytest.raises(pg.ConnectionUnusable, match="ACTIVE"):
                life.reset(conn)
        finally:
            worker.join(PATIENCE)
        assert not conn.closed  # reset only refused it; destroying is the pool's move


def test_a_pool_destroys_a_connection_returned_mid_query(conninfo: str) -> None:
    """A lease ended with a query still in flight (sent, its reply unread): the pool's
    reset refuses it, the connection is closed, and the next user gets a new one."""
    with respool.FixedPool(pg.connections(conninfo), size=1, timeout=PATIENCE) as pool:
        with pool.acquire() as conn:
            first = pid_of(conn)
            conn.pgconn.send_query(b"SELECT pg_sleep(0.2)")  # no one will read the reply
            assert conn.info.transaction_status == TransactionStatus.ACTIVE
        assert conn.closed
        with pool.acquire() as again:
            assert pid_of(again) != first
        stats = pool.stats()
    assert stats.reset_errors == 1 and stats.created == 2 and stats.destroy_errors == 0


def test_a_lease_interrupted_mid_query_destroys_its_connection(conninfo: str) -> None:
    """KeyboardInterrupt while in pg_sleep ends the lease as an abort: the connection is
    destroyed and the next user gets a new one."""
    with respool.FixedPool(pg.connections(conninfo), size=1, timeout=PATIENCE) as pool:
        main = threading.main_thread().ident
        assert main == threading.get_ident()
        conns: list[psycopg.Connection[Any]] = []

        def interrupt() -> None:
            wait_until(
                lambda: bool(conns) and conns[0].info.transaction_status == TransactionStatus.ACTIVE
            )
            signal.pthread_kill(main, signal.SIGINT)

        interrupter = threading.Thread(target=interrupt)
        with pytest.raises(KeyboardInterrupt), pool.acquire() as conn:
            conns.append(conn)
            interrupter.start()
            conn.execute("SELECT pg_sleep(5)")
        interrupter.join(PATIENCE)
        assert conns[0].closed
        with pool.acquire() as conn:
            assert conn is not conns[0]
        stats = pool.stats()
    assert stats.retired["abort"] == 1 and stats.destroy_errors == 0


# -- check ----------------------------------------------------------------------------------


def test_alive_is_false_for_a_terminated_backend_and_the_pool_replaces_it(
    conninfo: str, admin: psycopg.Connection[Any]
) -> None:
    """A backend ended by the server: alive() says False, the pool's check replaces it."""
    with respool.FixedPool(
        pg.connections(conninfo), size=1, check_after=0, timeout=PATIENCE
    ) as pool:
        with pool.acquire() as conn:
            first = pid_of(conn)
            assert pg.alive(conn)
        terminate(admin, first)
        with pool.acquire() as conn:
            assert pid_of(conn) != first
            assert conn.execute("SELECT 1").fetchone() == (1,)
        stats = pool.stats()
    assert stats.check_failures == 1 and stats.created == 2 and stats.destroy_errors == 0
    quiet(stats)


def test_alive_opens_no_transaction(conninfo: str, admin: psycopg.Connection[Any]) -> None:
    """On an idle non-autocommit connection, alive() makes a round trip and leaves it idle,
    autocommit off, and the server sees it idle (not idle in transaction)."""
    with psycopg.connect(conninfo) as conn:
        assert pg.alive(conn)
        assert conn.info.transaction_status == TransactionStatus.IDLE
        assert conn.autocommit is False
        assert activity(admin, pid_of(conn)) == ("", "idle")  # the empty query went out


def test_alive_inside_a_transaction_keeps_it(conninfo: str) -> None:
    """In a transaction, alive() runs in it: the transaction and its writes stay."""
    with psycopg.connect(conninfo) as conn:
        table = temp_table(conn)
        conn.execute(f"INSERT INTO {table} VALUES (1)")
        assert pg.alive(conn)
        assert conn.info.transaction_status == TransactionStatus.INTRANS
        assert count(conn, table) == 1


class WatchedPGconn:
    """Stands in for a connection's ``pgconn``, recording the queries sent through it."""

    def __init__(self, pgconn: Any) -> None:
        self._pgconn = pgconn
        self.sent: list[bytes] = []

    def send_query(self, query: bytes) -> None:
        self.sent.append(query)
        self._pgconn.send_query(query)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pgconn, name)


@pytest.mark.parametrize("closed", [False, True], ids=["open", "closed"])
def test_alive_makes_no_round_trip_for_a_closed_connection(conninfo: str, closed: bool) -> None:
    """An open connection's check sends one empty query; a closed one's sends nothing."""
    conn = psycopg.connect(conninfo)
    try:
        if closed:
            conn.close()
        watched = WatchedPGconn(conn.pgconn)
        conn.pgconn = watched  # type: ignore[assignment]
        assert pg.alive(conn) is not closed
        assert watched.sent == ([] if closed else [b""])
    finally:
        conn.pgconn = watched._pgconn
        conn.close()


def test_alive_is_false_for_a_busy_connection(conninfo: str) -> None:
    """A connection with a query running in another thread is not alive to lend: False,
    at once (not after the query)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        worker = threading.Thread(target=conn.execute, args=("SELECT pg_sleep(0.5)",))
        worker.start()
        try:
            wait_until(lambda: conn.info.transaction_status == TransactionStatus.ACTIVE)
            assert pg.alive(conn) is False
            assert conn.info.transaction_status == TransactionStatus.ACTIVE  # still running
        finally:
            worker.join(PATIENCE)


# -- bad input and failing creates --------------------------------------------------------


@pytest.mark.parametrize("factory", [pg.connections, pg.async_connections])
@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"conninfo": 5432}, TypeError, "conninfo"),
        ({"conninfo": "host"}, ValueError, "conninfo"),
        ({"conninfo": "", "no_such_option": "1"}, ValueError, "conninfo"),
        ({"autocommit": 1}, TypeError, "autocommit"),
        ({"reset_statement": 1}, TypeError, "reset_statement"),
        ({"reset_statement": "  "}, ValueError, "reset_statement"),
    ],
)
def test_bad_arguments_are_refused_naming_the_parameter(
    factory: Any, kwargs: dict[str, Any], error: type[Exception], name: str
) -> None:
    """Wrong types and values fail at once, with the parameter's name."""
    with pytest.raises(error, match=name):
        factory(**kwargs)


@pytest.mark.parametrize(
    ("value", "error"), [(0, ValueError), (-1.0, ValueError), ("5", TypeError)]
)
@pytest.mark.parametrize("factory", [pg.connections, pg.async_connections])
def test_bad_check_timeout_is_refused(factory: Any, value: object, error: type[Exception]) -> None:
    """check_timeout must be a positive number of seconds or None."""
    with pytest.raises(error, match="check_timeout"):
        factory(check_timeout=value)


def test_a_failing_create_surfaces_as_the_drivers_error(conninfo: str) -> None:
    """Nothing listening, or no such database: psycopg's OperationalError reaches the
    caller (FixedPool's constructor, ElasticPool's acquire) and no connection is counted."""
    bad_port = pg.connections(services.pg_conninfo(port=free_port(), connect_timeout=2))
    with pytest.raises(psycopg.OperationalError):
        respool.FixedPool(bad_port, size=2)
    bad_db = pg.connections(conninfo + f" dbname=respool_missing_{uuid.uuid4().hex[:8]}")
    with respool.ElasticPool(bad_db, max_size=2, timeout=PATIENCE) as pool:
        with pytest.raises(psycopg.OperationalError, match="does not exist"):
            pool.acquire()
        stats = pool.stats()
    assert stats.created == 0 and stats.size == 0 and stats.in_use == 0
    assert stats.create_errors == 1


# -- asyncio --------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def async_admin(conninfo: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        yield conn


async def async_wait_until(predicate: Any, timeout: float = 5.0) -> None:
    """Poll *predicate* on the loop until it holds (a state no event announces)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.001)


@pytest.mark.parametrize("kind", ["fixed", "elastic", "worker"])
def test_every_async_pool_kind_takes_async_connections(conninfo: str, kind: str) -> None:
    """AsyncFixedPool, AsyncElasticPool and AsyncWorkerPool lend AsyncConnections, whose
    open transaction is rolled back on return."""

    async def insert_and_count(conn: psycopg.AsyncConnection[Any], table: str) -> int:
        await conn.execute(f"INSERT INTO {table} VALUES (1)")  # left uncommitted
        cur = await conn.execute(f"SELECT count(*) FROM {table}")
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])

    async def make_table(conn: psycopg.AsyncConnection[Any]) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        await conn.execute(f"CREATE TEMP TABLE {name} (x int)")
        await conn.commit()
        return name

    async def main() -> list[int]:
        life = pg.async_connections(conninfo)
        if kind == "worker":
            async with respool.AsyncWorkerPool(life, workers=1, timeout=PATIENCE) as wp:
                table = await wp.submit(make_table)
                return [await wp.submit(insert_and_count, table) for _ in range(2)]
        pool: respool.AsyncFixedPool[Any] | respool.AsyncElasticPool[Any]
        if kind == "fixed":
            pool = respool.AsyncFixedPool(life, size=1, timeout=PATIENCE)
        else:
            pool = respool.AsyncElasticPool(life, max_idle=1, max_size=1, timeout=PATIENCE)
        async with pool:
            async with pool.acquire() as conn:
                assert isinstance(conn, psycopg.AsyncConnection)
                table = await make_table(conn)
            counts = []
            for _ in range(2):
                async with pool.acquire() as conn:
                    counts.append(await insert_and_count(conn, table))
            assert pool.stats().reset_errors == 0
            return counts

    assert asyncio.run(main()) == [1, 1]  # each user sees only its own row


def test_async_reset_rolls_back_and_runs_the_reset_statement(conninfo: str) -> None:
    """INERROR rolled back, then RESET ALL: the next user gets a clean, idle session."""

    async def main() -> None:
        life = pg.async_connections(conninfo, reset_statement="RESET ALL")
        async with respool.AsyncFixedPool(life, size=1, timeout=PATIENCE) as pool:
            async with pool.acquire() as conn:
                await conn.execute("SET respool_test.marker = 'dirty'")
                with pytest.raises(psycopg.errors.DivisionByZero):
                    await conn.execute("SELECT 1 / 0")
                first = pid_of(conn)
            async with pool.acquire() as conn:
                assert pid_of(conn) == first
                assert conn.info.transaction_status == TransactionStatus.IDLE
                cur = await conn.execute("SELECT current_setting('respool_test.marker', true)")
                assert await cur.fetchone() in [("",), (None,)]
            assert pool.stats().reset_errors == 0

    asyncio.run(main())


def test_async_reset_refuses_a_connection_with_a_query_running(conninfo: str) -> None:
    """Another task's query still running on it: ConnectionUnusable naming ACTIVE."""

    async def main() -> None:
        life = pg.async_connections(conninfo)
        assert life.reset is not None
        async with await psycopg.AsyncConnection.connect(conninfo) as conn:
            task = asyncio.create_task(conn.execute("SELECT pg_sleep(0.3)"))
            await async_wait_until(lambda: conn.info.transaction_status == TransactionStatus.ACTIVE)
            with pytest.raises(pg.ConnectionUnusable, match="ACTIVE"):
                await life.reset(conn)  # type: ignore[misc]
            assert await pg.async_alive(conn) is False
            await task

    asyncio.run(main())


def test_async_lease_cancelled_mid_query_destroys_its_connection(conninfo: str) -> None:
    """A task cancelled in pg_sleep aborts its lease: that connection is closed, never lent."""

    async def main() -> None:
        async with respool.AsyncFixedPool(
            pg.async_connections(conninfo), size=1, timeout=PATIENCE
        ) as pool:
            seen: list[psycopg.AsyncConnection[Any]] = []

            async def user() -> None:
                async with pool.acquire() as conn:
                    seen.append(conn)
                    await conn.execute("SELECT pg_sleep(5)")

            task = asyncio.create_task(user())
            await async_wait_until(
                lambda: bool(seen) and seen[0].info.transaction_status == TransactionStatus.ACTIVE
            )
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            async with pool.acquire() as conn:
                assert conn is not seen[0]
                assert (await (await conn.execute("SELECT 1")).fetchone()) == (1,)
            assert pool.stats().retired["abort"] == 1 and pool.stats().destroy_errors == 0
        assert seen[0].closed

    asyncio.run(main())


def test_async_check_replaces_a_terminated_backend(conninfo: str) -> None:
    """async_alive() is False for a backend the server ended; the pool's check replaces it,
    and on a live non-autocommit connection it leaves no transaction open."""

    async def main() -> None:
        async with (
            async_admin(conninfo) as admin,
            respool.AsyncFixedPool(
                pg.async_connections(conninfo), size=1, check_after=0, timeout=PATIENCE
            ) as pool,
        ):
            async with pool.acquire() as conn:
                first = pid_of(conn)
                assert await pg.async_alive(conn)
                assert conn.info.transaction_status == TransactionStatus.IDLE
                assert conn.autocommit is False
            await admin.execute("SELECT pg_terminate_backend(%s, 5000)", (first,))
            async with pool.acquire() as conn:
                assert pid_of(conn) != first
            stats = pool.stats()
            assert stats.check_failures == 1 and stats.created == 2 and stats.destroy_errors == 0

    asyncio.run(main())


def test_alive_gives_up_at_its_timeout_on_a_silent_network() -> None:
    """Behind a blackholed network, alive() and async_alive() answer False at their timeout
    (they wait on the socket themselves: psycopg's own cancel-on-interrupt, up to 10 s
    more, never runs), and the connection, left mid-query, is refused by reset."""
    services.require_postgres()
    with TcpProxy(services.PG_HOST, services.PG_PORT) as proxy:
        conninfo = services.pg_conninfo(proxy.host, proxy.port)
        life = pg.connections(conninfo)
        assert life.reset is not None
        with psycopg.connect(conninfo) as conn:
            assert pg.alive(conn, timeout=PATIENCE)
            proxy.blackhole()
            started = time.monotonic()
            assert pg.alive(conn, timeout=0.3) is False
            assert 0.3 <= time.monotonic() - started < 2.0
            with pytest.raises(pg.ConnectionUnusable, match="ACTIVE"):
                life.reset(conn)
            conn.close()  # never waits for the server
        proxy.restore()

        async def main() -> None:
            async with await psycopg.AsyncConnection.connect(conninfo) as conn:
                assert await pg.async_alive(conn, timeout=PATIENCE)
                proxy.blackhole()
                loop = asyncio.get_running_loop()
                started = loop.time()
                assert await pg.async_alive(conn, timeout=0.3) is False
                assert loop.time() - started < 2.0
                assert conn.info.transaction_status == TransactionStatus.ACTIVE
                await conn.close()

        asyncio.run(main())


# -- documentation and imports ------------------------------------------------------------


def test_the_module_example_runs(conninfo: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The example in the module's docstring runs as written and prints (42,)."""
    doc = inspect.getdoc(pg)
    assert doc is not None
    example = textwrap.dedent(doc.split("Example (a real server is needed)::\n")[1])
    exec(compile(example, "respool.contrib.psycopg example", "exec"), {})
    assert capsys.readouterr().out == "(42,)\n"


def test_import_respool_imports_no_driver() -> None:
    """The core never imports psycopg or asyncpg; each contrib module only its own driver."""
    code = (
        "import sys, respool, respool.contrib;"
        "print(sorted(m for m in ('psycopg', 'asyncpg') if m in sys.modules));"
        "import respool.contrib.psycopg;"
        "print('asyncpg' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.split("\n")[:2] == ["[]", "False"]
