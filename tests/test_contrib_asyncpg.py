"""respool.contrib.asyncpg against a real PostgreSQL: connections that come back in a
transaction, failed, busy, closed or with session state are never lent as they are; a check
bounded in time; a destroy that a silent server cannot hang; every asyncio pool kind.

The server is shared: every test acts only on the backends its own connections report
(``get_server_pid()``), and names what it creates uniquely (temporary tables).
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest

import respool
from respool.contrib import asyncpg as apg
from tests import services
from tests.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(60)]

#: Seconds any acquire or connect may wait before the test is declared stuck.
PATIENCE = 10.0


@pytest.fixture(scope="module")
def dsn() -> str:
    services.require_postgres()
    return services.pg_dsn()


def run(main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return asyncio.run(main())


async def admin_query(sql: str, *args: object) -> Any:
    """One query on a fresh admin connection, outside any pool."""
    conn = await asyncpg.connect(services.pg_dsn(), timeout=PATIENCE)
    try:
        return await conn.fetchrow(sql, *args)
    finally:
        await conn.close()


async def activity(pid: int) -> tuple[str, str]:
    """The last query a backend received, and its state, as the server reports them."""
    row = await admin_query("SELECT query, state FROM pg_stat_activity WHERE pid = $1", pid)
    assert row is not None, f"backend {pid} is gone"
    return str(row["query"]), str(row["state"])


async def terminate(pid: int) -> None:
    """End backend *pid* (one of ours) and wait until it has exited."""
    row = await admin_query("SELECT pg_terminate_backend($1, 5000)", pid)
    assert row is not None and row[0] is True, f"backend {pid} was not terminated"


async def temp_table(conn: Any) -> str:
    """A committed, empty temporary table on *conn*'s session; its name."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    await conn.execute(f"CREATE TEMP TABLE {name} (x int)")
    return name


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll *predicate* on the loop until it holds (a state no event announces)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.001)


def free_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def quiet(stats: respool.PoolStats) -> None:
    assert stats.created - stats.destroyed == stats.size == stats.idle + stats.in_use, stats


class CountingConnection(asyncpg.Connection):  # type: ignore[misc]
    """An asyncpg connection that counts the queries run through ``execute``."""

    __slots__ = ("executed",)

    async def execute(self, query: str, *args: Any, **kwargs: Any) -> Any:
        self.executed = getattr(self, "executed", 0) + 1
        return await super().execute(query, *args, **kwargs)


# -- every pool kind ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fixed", "elastic", "worker"])
def test_every_async_pool_kind_takes_asyncpg_connections(dsn: str, kind: str) -> None:
    """AsyncFixedPool, AsyncElasticPool and AsyncWorkerPool lend asyncpg connections, whose
    open transaction is rolled back on return: each user sees only its own row."""

    async def insert_and_count(conn: Any, table: str) -> int:
        await conn.execute("BEGIN")
        await conn.execute(f"INSERT INTO {table} VALUES (1)")  # left uncommitted
        return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))

    async def main() -> list[int]:
        life = apg.connections(dsn)
        if kind == "worker":
            async with respool.AsyncWorkerPool(life, workers=1, timeout=PATIENCE) as wp:
                table = await wp.submit(temp_table)
                return [await wp.submit(insert_and_count, table) for _ in range(2)]
        pool: respool.AsyncFixedPool[Any] | respool.AsyncElasticPool[Any]
        if kind == "fixed":
            pool = respool.AsyncFixedPool(life, size=1, timeout=PATIENCE)
        else:
            pool = respool.AsyncElasticPool(life, max_idle=1, max_size=1, timeout=PATIENCE)
        async with pool:
            async with pool.acquire() as conn:
                assert isinstance(conn, asyncpg.Connection)
                table = await temp_table(conn)
            counts = []
            for _ in range(2):
                async with pool.acquire() as conn:
                    counts.append(await insert_and_count(conn, table))
            stats = pool.stats()
            assert stats.reset_errors == 0 and stats.created == 1
        assert conn.is_closed()  # destroyed with the pool
        return counts

    assert run(main) == [1, 1]


def test_threaded_pools_refuse_the_asyncpg_lifecycle(dsn: str) -> None:
    """Its callbacks are async: a threaded pool refuses them, naming the twin to use."""
    with pytest.raises(TypeError, match="async"):
        respool.FixedPool(apg.connections(dsn), size=1)


# -- reset ----------------------------------------------------------------------------------


def test_open_and_failed_transactions_are_rolled_back(dsn: str) -> None:
    """A transaction left open, or failed, is rolled back on the same connection."""

    async def main() -> None:
        async with respool.AsyncFixedPool(apg.connections(dsn), size=1, timeout=PATIENCE) as pool:
            async with pool.acquire() as conn:
                table = await temp_table(conn)
                first = conn.get_server_pid()
                await conn.execute(f"BEGIN; INSERT INTO {table} VALUES (1)")
            async with pool.acquire() as conn:
                assert conn.get_server_pid() == first
                assert not conn.is_in_transaction()
                assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0
                await conn.execute("BEGIN")
                with pytest.raises(asyncpg.DivisionByZeroError):
                    await conn.execute("SELECT 1 / 0")
            async with pool.acquire() as conn:
                assert conn.get_server_pid() == first
                assert await conn.fetchval("SELECT 1") == 1
            assert pool.stats().reset_errors == 0

    run(main)


def test_a_transaction_object_left_open_is_forgotten(dsn: str) -> None:
    """conn.transaction() started and never ended: rolled back, and the next user's
    conn.transaction() is a real top-level one (not a savepoint outside any transaction)."""

    async def main() -> None:
        async with respool.AsyncFixedPool(apg.connections(dsn), size=1, timeout=PATIENCE) as pool:
            async with pool.acquire() as conn:
                table = await temp_table(conn)
                await conn.transaction().start()
                await conn.execute(f"INSERT INTO {table} VALUES (1)")
            async with pool.acquire() as conn:
                async with conn.transaction():
                    assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0
                    await conn.execute(f"INSERT INTO {table} VALUES (2)")
                assert not conn.is_in_transaction()
            async with pool.acquire() as conn:
                assert await conn.fetch(f"SELECT x FROM {table}") == [(2,)]  # committed
            assert pool.stats().reset_errors == 0

    run(main)


def test_idle_return_sends_nothing(dsn: str) -> None:
    """The hot path: a connection outside a transaction comes back with no round trip (the
    server's last query for the backend is still the user's)."""
    marker = f"SELECT 'respool-{uuid.uuid4().hex}'"

    async def main() -> None:
        async with respool.AsyncFixedPool(apg.connections(dsn), size=1, timeout=PATIENCE) as pool:
            async with pool.acquire() as conn:
                await conn.execute(marker)
                pid = conn.get_server_pid()
            assert await activity(pid) == (marker, "idle")

    run(main)


@pytest.mark.parametrize(
    ("options", "restored"),
    [
        ({"reset_statement": "RESET ALL"}, True),
        ({"full_reset": True}, True),
        ({}, False),
    ],
    ids=["reset_statement", "full_reset", "default"],
)
def test_session_state_is_reset_when_asked(
    dsn: str, options: dict[str, Any], restored: bool
) -> None:
    """reset_statement and full_reset undo a user's SET (full_reset its LISTEN too); the
    default, which sends nothing, leaves them."""

    async def main() -> None:
        life = apg.connections(dsn, **options)
        async with respool.AsyncFixedPool(life, size=1, timeout=PATIENCE) as pool:
            async with pool.acquire() as conn:
                await conn.execute("SET respool_test.marker = 'dirty'")
                await conn.execute("LISTEN respool_test_channel")
                first = conn.get_server_pid()
            async with pool.acquire() as conn:
                assert conn.get_server_pid() == first
                marker = await conn.fetchval("SELECT current_setting('respool_test.marker', true)")
                channels = await conn.fetch("SELECT pg_listening_channels()")
                assert (marker != "dirty") is restored
                if options.get("full_reset"):
                    assert channels == []
                if not options:
                    assert len(channels) == 1
                assert not conn.is_in_transaction()
            assert pool.stats().reset_errors == 0

    run(main)


def test_a_connection_closed_by_its_user_is_destroyed(dsn: str) -> None:
    """reset refuses a closed connection; the pool makes another."""

    async def main() -> respool.PoolStats:
        async with respool.AsyncFixedPool(apg.connections(dsn), size=1, timeout=PATIENCE) as pool:
            async with pool.acquire() as conn:
                first = conn.get_server_pid()
                await conn.close()
            async with pool.acquire() as conn:
                assert conn.get_server_pid() != first
                assert await conn.fetchval("SELECT 1") == 1
            return pool.stats()

    stats = run(main)
    assert stats.reset_errors == 1 and stats.created == 2 and stats.destroy_errors == 0
    quiet(stats)


def test_reset_refuses_a_connection_still_cancelling_a_query(dsn: str) -> None:
    """A task cancelled mid-query leaves a cancellation in flight: reset refuses the
    connection; through a pool the lease aborts and the connection is destroyed."""

    async def main() -> None:
        life = apg.connections(dsn)
        assert life.reset is not None
        conn = await asyncpg.connect(dsn)
        try:
            sent = conn._protocol.queries_count
            task = asyncio.create_task(conn.execute("SELECT pg_sleep(5)"))
            await wait_for(lambda: conn._protocol.queries_count > sent)  # on its way
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            with pytest.raises(apg.ConnectionUnusable, match="cancel"):
                await life.reset(conn)  # type: ignore[misc]
            assert await apg.alive(conn) is False
        finally:
            await conn.close(timeout=PATIENCE)

        async with respool.AsyncFixedPool(life, size=1, timeout=PATIENCE) as pool:
            seen: list[Any] = []
            sent: list[int] = []

            async def user() -> None:
                async with pool.acquire() as conn:
                    seen.append(conn)
                    sent.append(conn._protocol.queries_count)
                    await conn.execute("SELECT pg_sleep(5)")

            task = asyncio.create_task(user())
            await wait_for(lambda: bool(sent) and seen[0]._protocol.queries_count > sent[0])
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            async with pool.acquire() as conn:
                assert conn is not seen[0]
                assert await conn.fetchval("SELECT 1") == 1
            assert pool.stats().retired["abort"] == 1 and pool.stats().destroy_errors == 0
        assert seen[0].is_closed()

    run(main)


def test_reset_refuses_a_connection_another_task_still_queries(dsn: str) -> None:
    """A fetch still running in another task: ConnectionUnusable ("in progress"), and the
    check is False at once."""

    async def main() -> None:
        life = apg.connections(dsn)
        assert life.reset is not None
        conn = await asyncpg.connect(dsn)
        try:
            task = asyncio.create_task(conn.fetchval("SELECT pg_sleep(0.3)"))
            await wait_for(lambda: conn._stmt_exclusive_section._acquired)
            with pytest.raises(apg.ConnectionUnusable, match="in progress"):
                await life.reset(conn)  # type: ignore[misc]
            assert await apg.alive(conn) is False
            await task
            await life.reset(conn)  # done: nothing to refuse any more
            assert await apg.alive(conn)
        finally:
            await conn.close(timeout=PATIENCE)

    run(main)


# -- check ----------------------------------------------------------------------------------


def test_a_terminated_backend_fails_the_check_and_is_replaced(dsn: str) -> None:
    """A backend ended by the server: alive() is False and the pool's check replaces it."""

    async def main() -> respool.PoolStats:
        async with respool.AsyncFixedPool(
            apg.connections(dsn), size=1, check_after=0, timeout=PATIENCE
        ) as pool:
            async with pool.acquire() as conn:
                first = conn.get_server_pid()
                assert await apg.alive(conn)
                assert not conn.is_in_transaction()
            await terminate(first)
            async with pool.acquire() as conn:
                assert conn.get_server_pid() != first
                assert await conn.fetchval("SELECT 1") == 1
            return pool.stats()

    stats = run(main)
    assert stats.check_failures == 1 and stats.created == 2 and stats.destroy_errors == 0
    quiet(stats)


def test_alive_makes_no_round_trip_for_a_closed_connection(dsn: str) -> None:
    """A live connection's check is one query; a closed one's is none."""

    async def main() -> None:
        conn = await asyncpg.connect(dsn, connection_class=CountingConnection)
        assert await apg.alive(conn)
        assert conn.executed == 1
        await conn.close()
        assert await apg.alive(conn) is False
        assert conn.executed == 1

    run(main)


def test_a_silent_server_bounds_check_reset_and_destroy() -> None:
    """Behind a blackholed network: the check answers False at check_timeout, a reset that
    must roll back raises ConnectionUnusable, and destroy gives up the graceful close at
    close_timeout and drops the connection."""
    services.require_postgres()

    async def main() -> None:
        with TcpProxy(services.PG_HOST, services.PG_PORT) as proxy:
            life = apg.connections(
                services.pg_dsn(proxy.host, proxy.port), check_timeout=0.3, close_timeout=0.3
            )
            assert life.check is not None and life.reset is not None
            assert life.destroy is not None
            conn = await life.create()  # type: ignore[misc]
            try:
                await conn.execute("BEGIN")
                proxy.blackhole()
                loop = asyncio.get_running_loop()
                started = loop.time()
                assert await life.check(conn) is False
                assert loop.time() - started < 2.0
            finally:
                started = loop.time()
                await life.destroy(conn)  # type: ignore[misc]
                assert loop.time() - started < 2.0
                assert conn.is_closed()

            proxy.restore()
            conn = await life.create()  # type: ignore[misc]
            try:
                await conn.execute("BEGIN")
                proxy.blackhole()
                with pytest.raises(apg.ConnectionUnusable, match="did not answer"):
                    await life.reset(conn)  # type: ignore[misc]
            finally:
                await life.destroy(conn)  # type: ignore[misc]
                assert conn.is_closed()

    run(main)


# -- bad input and failing creates --------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"dsn": 5432}, TypeError, "dsn"),
        ({"reset_statement": 1}, TypeError, "reset_statement"),
        ({"reset_statement": ""}, ValueError, "reset_statement"),
        ({"full_reset": "yes"}, TypeError, "full_reset"),
        ({"check_timeout": 0}, ValueError, "check_timeout"),
        ({"check_timeout": "5"}, TypeError, "check_timeout"),
        ({"close_timeout": None}, TypeError, "close_timeout"),
        ({"close_timeout": -1}, ValueError, "close_timeout"),
    ],
)
def test_bad_arguments_are_refused_naming_the_parameter(
    kwargs: dict[str, Any], error: type[Exception], name: str
) -> None:
    """Wrong types and values fail at once, with the parameter's name."""
    with pytest.raises(error, match=name):
        apg.connections(**kwargs)


def test_a_failing_create_surfaces_as_the_drivers_error(dsn: str) -> None:
    """Nothing listening: open() raises the connect error (refused); no such database:
    acquire raises asyncpg's error. Nothing is counted as made."""

    async def main() -> respool.PoolStats:
        refused = apg.connections(services.pg_dsn(port=free_port()), timeout=5)
        pool = respool.AsyncFixedPool(refused, size=2, timeout=PATIENCE)
        with pytest.raises(ConnectionRefusedError):
            await pool.open()
        await pool.close()
        missing = apg.connections(dsn.rsplit("/", 1)[0] + f"/no_db_{uuid.uuid4().hex[:8]}")
        async with respool.AsyncElasticPool(missing, max_size=2, timeout=PATIENCE) as pool2:
            with pytest.raises(asyncpg.InvalidCatalogNameError):
                await pool2.acquire()
            return pool2.stats()

    stats = run(main)
    assert stats.created == 0 and stats.size == 0 and stats.in_use == 0
    assert stats.create_errors == 1


# -- documentation and imports ------------------------------------------------------------


def test_the_module_example_runs(dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The example in the module's docstring runs as written and prints 42."""
    doc = inspect.getdoc(apg)
    assert doc is not None
    example = doc.split("Example (a real server is needed)::\n")[1]
    example = textwrap.dedent(example.split("\nasyncpg has no type information")[0])
    exec(compile(example, "respool.contrib.asyncpg example", "exec"), {"__name__": "example"})
    assert capsys.readouterr().out == "42\n"


def test_importing_the_asyncpg_module_imports_only_asyncpg() -> None:
    """respool.contrib.asyncpg brings in asyncpg, not psycopg; respool alone brings neither."""
    code = (
        "import sys, respool;"
        "print('asyncpg' in sys.modules, 'psycopg' in sys.modules);"
        "import respool.contrib.asyncpg;"
        "print('asyncpg' in sys.modules, 'psycopg' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.split("\n")[:2] == ["False False", "True False"]
