"""FixedPool and ElasticPool against real servers: PostgreSQL (psycopg 3) and Redis (raw RESP).

These are the classic pooling pitfalls with real connections rather than fakes: a backend killed by
the server (*not quite there anymore*), a transaction left open (*not quite clean*) and a reply
left unread on a socket (*abort means discard*).

Skip policy: without the server these tests skip with the reason; when ``CI`` is ``"true"`` an
unreachable server fails them instead, so a broken CI service can never pass as "all skipped".
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import respool
from tests.services import unavailable

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_CONNINFO = f"host={PG_HOST} port={PG_PORT} dbname=test user=postgres connect_timeout=5"
REDIS_ADDRESS = ("127.0.0.1", 6379)
#: Socket timeout for every Redis socket: a test never hangs on a silent server.
REDIS_TIMEOUT = 5.0
#: Seconds any acquire, barrier or join may wait before the test is declared stuck.
PATIENCE = 10.0

# Every test takes well under a second; a pool that hangs (say, in close()) fails fast.
pytestmark = pytest.mark.timeout(60)


class Abort(BaseException):
    """Not an Exception: stands for cancellation, KeyboardInterrupt or SystemExit."""


class Boom(Exception):
    """An ordinary error raised from a lease body."""


# -- PostgreSQL ---------------------------------------------------------------------------

try:
    import psycopg
    from psycopg.pq import TransactionStatus
except ImportError as exc:  # pragma: no cover - psycopg is in the test extra
    psycopg = None  # type: ignore[assignment]
    _PSYCOPG_IMPORT_ERROR: ImportError | None = exc
else:
    _PSYCOPG_IMPORT_ERROR = None

PgConn = Any  # psycopg.Connection[tuple[Any, ...]], kept loose for the optional import


@pytest.fixture(scope="module")
def postgres() -> str:
    """Probe PostgreSQL once per module; return the conninfo to use."""
    if _PSYCOPG_IMPORT_ERROR is not None:
        unavailable(f"psycopg is not installed: {_PSYCOPG_IMPORT_ERROR}")
    try:
        with psycopg.connect(PG_CONNINFO) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        unavailable(f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT}: {exc}")
    return PG_CONNINFO


@pytest.fixture
def pg_admin(postgres: str) -> Iterator[PgConn]:
    """A separate autocommit connection, outside any pool, to act on the server."""
    conn = psycopg.connect(postgres, autocommit=True)
    try:
        yield conn
    finally:
        conn.close()


def pg_connect() -> PgConn:
    return psycopg.connect(PG_CONNINFO, autocommit=False)


def pg_close(conn: PgConn) -> None:
    conn.close()


def pg_rollback(conn: PgConn) -> None:
    conn.rollback()


def pg_alive(conn: PgConn) -> bool:
    """A cheap liveness test: a round trip to the server; False if it fails."""
    if conn.closed:
        return False
    try:
        conn.execute("SELECT 1")
        conn.rollback()
    except psycopg.OperationalError:
        return False
    return True


def pg_alive_or_raise(conn: PgConn) -> bool:
    """The same round trip, letting the driver's error out (the pool must treat it as False)."""
    conn.execute("SELECT 1")
    conn.rollback()
    return True


def backend_pid(conn: PgConn) -> int:
    """The server process behind *conn*, asked over the wire (so it also proves it works)."""
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    return int(row[0])


def terminate(admin: PgConn, pid: int) -> None:
    """Kill backend *pid* and wait (up to 5 s) until it has actually exited."""
    row = admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone()
    assert row == (True,), f"backend {pid} was not terminated: {row}"


def assert_quiescent(stats: respool.PoolStats) -> None:
    assert stats.created - stats.destroyed == stats.size == stats.idle + stats.in_use, stats
    assert stats.in_use == 0, stats
    assert stats.waiting == 0, stats


@pytest.mark.postgres
@pytest.mark.parametrize("check", [pg_alive, pg_alive_or_raise], ids=["returns-false", "raises"])
def test_postgres_terminated_backends_are_replaced(
    pg_admin: PgConn, check: Callable[[PgConn], bool]
) -> None:
    """Connections whose backends the server killed fail `check` and are replaced by live ones."""
    with respool.FixedPool(
        pg_connect, size=2, check=check, reset=pg_rollback, destroy=pg_close, timeout=PATIENCE
    ) as pool:
        with pool.acquire() as first, pool.acquire() as second:
            old_conns = [first, second]
            old_pids = {backend_pid(first), backend_pid(second)}
        assert len(old_pids) == 2

        for pid in old_pids:
            terminate(pg_admin, pid)

        with pool.acquire() as first, pool.acquire() as second:
            assert first not in old_conns
            assert second not in old_conns
            new_pids = {backend_pid(first), backend_pid(second)}
            assert first.execute("SELECT 40 + 2").fetchone() == (42,)
            assert second.execute("SELECT 40 + 2").fetchone() == (42,)
        assert len(new_pids) == 2
        assert not new_pids & old_pids

        assert all(conn.closed for conn in old_conns)
        stats = pool.stats()
        assert stats.check_failures == 2
        assert stats.created == 4
        assert stats.destroyed == 2
        assert stats.size == 2
        assert_quiescent(stats)


@pytest.mark.postgres
def test_postgres_failed_body_is_rolled_back_before_reuse(postgres: str) -> None:
    """An Exception mid-transaction propagates unchanged; reset rolls back; next user is clean."""

    def create() -> PgConn:
        conn = pg_connect()
        conn.execute("CREATE TEMP TABLE items (v int)")
        conn.commit()
        return conn

    resets: list[PgConn] = []

    def reset(conn: PgConn) -> None:
        resets.append(conn)
        conn.rollback()

    error = Boom("in the middle of a transaction")
    with respool.FixedPool(create, size=1, reset=reset, destroy=pg_close, timeout=PATIENCE) as pool:
        seen: dict[str, Any] = {}

        def fail_mid_transaction() -> None:
            with pool.acquire() as conn:
                seen["conn"], seen["pid"] = conn, backend_pid(conn)
                conn.execute("INSERT INTO items VALUES (1)")
                assert conn.info.transaction_status == TransactionStatus.INTRANS
                raise error

        with pytest.raises(Boom) as excinfo:
            fail_mid_transaction()
        assert excinfo.value is error
        used, pid = seen["conn"], seen["pid"]
        assert resets == [used]

        with pool.acquire() as conn:
            assert conn is used, "the connection should have been reset and reused"
            assert conn.info.transaction_status == TransactionStatus.IDLE
            assert backend_pid(conn) == pid
            assert conn.execute("SELECT count(*) FROM items").fetchone() == (0,)

        stats = pool.stats()
        assert stats.destroyed == 0
        assert stats.created == 1
        assert stats.reset_errors == 0
        assert_quiescent(stats)


@pytest.mark.postgres
def test_postgres_abort_mid_transaction_discards_the_connection(postgres: str) -> None:
    """A BaseException mid-transaction destroys the connection; the next user gets a new one."""
    resets: list[PgConn] = []

    def reset(conn: PgConn) -> None:
        resets.append(conn)
        conn.rollback()

    with respool.FixedPool(
        pg_connect, size=1, reset=reset, destroy=pg_close, timeout=PATIENCE
    ) as pool:
        seen: dict[str, Any] = {}

        def abort_mid_transaction() -> None:
            with pool.acquire() as conn:
                seen["conn"], seen["pid"] = conn, backend_pid(conn)
                conn.execute("CREATE TEMP TABLE half_done (v int)")
                conn.execute("INSERT INTO half_done VALUES (1)")
                raise Abort

        with pytest.raises(Abort):
            abort_mid_transaction()
        aborted, old_pid = seen["conn"], seen["pid"]
        assert aborted.closed, "an aborted connection must be destroyed (closed)"
        assert resets == [], "an aborted connection must not be reset for reuse"
        assert pool.stats().destroyed == 1

        with pool.acquire() as conn:
            assert conn is not aborted
            assert conn.info.transaction_status == TransactionStatus.IDLE
            assert backend_pid(conn) != old_pid

        stats = pool.stats()
        assert stats.destroyed == 1
        assert stats.created == 2
        assert stats.size == 1
        assert_quiescent(stats)


@pytest.mark.postgres
def test_postgres_elastic_pool_shared_by_threads(postgres: str) -> None:
    """8 threads x 25 cycles on ElasticPool(max_size=4): never more than 4 live, counts add up."""
    threads_count, cycles, max_size = 8, 25, 4
    lock = threading.Lock()
    start = threading.Barrier(threads_count)
    pids: set[int] = set()
    conns: set[int] = set()  # id() of every connection handed out
    dirty: list[object] = []  # transaction status of connections that arrived not idle
    errors: list[BaseException] = []
    holding = 0
    peak = 0
    done = 0

    with respool.ElasticPool(
        pg_connect,
        max_size=max_size,
        max_idle=max_size,
        check=pg_alive,
        reset=pg_rollback,
        destroy=pg_close,
        timeout=PATIENCE,
    ) as pool:

        def worker() -> None:
            nonlocal holding, peak, done
            try:
                start.wait(timeout=PATIENCE)
                for _ in range(cycles):
                    with pool.acquire() as conn:
                        with lock:
                            holding += 1
                            peak = max(peak, holding)
                        try:
                            status = conn.info.transaction_status
                            if status != TransactionStatus.IDLE:
                                dirty.append(status)
                            pid = backend_pid(conn)
                            with lock:
                                pids.add(pid)
                                conns.add(id(conn))
                        finally:
                            with lock:
                                holding -= 1
                with lock:
                    done += 1
            except BaseException as exc:
                errors.append(exc)

        workers = [threading.Thread(target=worker) for _ in range(threads_count)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join(timeout=PATIENCE * 3)
        assert not any(thread.is_alive() for thread in workers), "a worker is stuck"

        assert errors == []
        assert done == threads_count
        assert dirty == [], "reset should return every connection idle"
        assert 1 <= peak <= max_size

        stats = pool.stats()
        assert_quiescent(stats)
        assert stats.acquires == threads_count * cycles
        assert stats.size <= max_size
        assert stats.created <= max_size + stats.destroyed
        assert len(conns) <= stats.created
        assert len(pids) <= max_size + stats.destroyed


# -- Redis (raw RESP over a socket) -----------------------------------------------------------


def resp_command(*parts: str | int) -> bytes:
    """Encode a Redis command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = str(part).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def read_exactly(sock: socket.socket, count: int) -> bytes:
    buf = bytearray()
    while len(buf) < count:
        chunk = sock.recv(count - len(buf))
        if not chunk:
            raise ConnectionError("Redis closed the connection")
        buf += chunk
    return bytes(buf)


def read_line(sock: socket.socket) -> bytes:
    """One CRLF-terminated line, read byte by byte so nothing past it is consumed."""
    buf = bytearray()
    while not buf.endswith(b"\r\n"):
        buf += read_exactly(sock, 1)
    return bytes(buf[:-2])


def read_reply(sock: socket.socket) -> str | int | bytes | None:
    """One RESP2 reply: simple string -> str, integer -> int, bulk string -> bytes/None."""
    line = read_line(sock)
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(f"Redis error: {rest.decode()}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        length = int(rest)
        if length < 0:
            return None
        return read_exactly(sock, length + 2)[:-2]
    raise RuntimeError(f"unexpected RESP reply {line!r}")


def redis_call(sock: socket.socket, *parts: str | int) -> str | int | bytes | None:
    sock.sendall(resp_command(*parts))
    return read_reply(sock)


def redis_connect() -> socket.socket:
    return socket.create_connection(REDIS_ADDRESS, timeout=REDIS_TIMEOUT)


def redis_close(sock: socket.socket) -> None:
    sock.close()


def redis_alive(sock: socket.socket) -> bool:
    """PING must answer +PONG within a short timeout; any other outcome means unviable."""
    try:
        sock.settimeout(1.0)
        sock.sendall(resp_command("PING"))
        ok = read_line(sock) == b"+PONG"
        sock.settimeout(REDIS_TIMEOUT)
    except OSError:  # includes timeouts, resets and our ConnectionError on EOF
        return False
    return ok


def client_id(sock: socket.socket) -> int:
    reply = redis_call(sock, "CLIENT", "ID")
    assert isinstance(reply, int), f"CLIENT ID answered {reply!r}"
    return reply


@pytest.fixture(scope="module")
def redis() -> tuple[str, int]:
    """Probe Redis once per module; return its address."""
    try:
        with socket.create_connection(REDIS_ADDRESS, timeout=REDIS_TIMEOUT) as sock:
            reply = redis_call(sock, "PING")
        if reply != "PONG":
            raise RuntimeError(f"PING answered {reply!r}")
    except Exception as exc:
        host, port = REDIS_ADDRESS
        unavailable(f"Redis not reachable at {host}:{port}: {exc}")
    return REDIS_ADDRESS


@pytest.fixture
def redis_admin(redis: tuple[str, int]) -> Iterator[socket.socket]:
    """A separate socket, outside any pool, to act on the server."""
    sock = socket.create_connection(redis, timeout=REDIS_TIMEOUT)
    try:
        yield sock
    finally:
        sock.close()


@pytest.mark.redis
def test_redis_killed_clients_are_replaced(redis_admin: socket.socket) -> None:
    """Sockets whose clients the server killed fail the PING check and are replaced."""
    with respool.FixedPool(
        redis_connect, size=2, check=redis_alive, destroy=redis_close, timeout=PATIENCE
    ) as pool:
        with pool.acquire() as first, pool.acquire() as second:
            old_socks = [first, second]
            old_ids = {client_id(first), client_id(second)}
        assert len(old_ids) == 2

        for cid in old_ids:
            assert redis_call(redis_admin, "CLIENT", "KILL", "ID", cid) == 1

        with pool.acquire() as first, pool.acquire() as second:
            assert first not in old_socks
            assert second not in old_socks
            new_ids = {client_id(first), client_id(second)}
            assert redis_call(first, "PING") == "PONG"
            assert redis_call(second, "PING") == "PONG"
        assert len(new_ids) == 2
        assert not new_ids & old_ids

        assert all(sock.fileno() == -1 for sock in old_socks), "killed sockets must be closed"
        stats = pool.stats()
        assert stats.check_failures == 2
        assert stats.created == 4
        assert stats.destroyed == 2
        assert_quiescent(stats)


@pytest.mark.redis
def test_redis_unread_reply_never_reaches_next_user(redis: tuple[str, int]) -> None:
    """Aborting with a reply unread discards the socket: the next user's PING gets +PONG."""
    # No check on purpose: a PING check would itself trip over the stale reply and hide a
    # pool that wrongly reused the socket. Abort-means-discard alone must protect the next user.
    with respool.FixedPool(redis_connect, size=1, destroy=redis_close, timeout=PATIENCE) as pool:
        seen: dict[str, Any] = {}

        def abort_with_reply_unread() -> None:
            with pool.acquire() as sock:
                seen["sock"], seen["id"] = sock, client_id(sock)
                sock.sendall(resp_command("ECHO", "stale reply"))
                raise Abort

        with pytest.raises(Abort):
            abort_with_reply_unread()
        aborted, old_id = seen["sock"], seen["id"]
        assert aborted.fileno() == -1, "the aborted socket must be destroyed (closed)"

        with pool.acquire() as sock:
            assert sock is not aborted
            sock.sendall(resp_command("PING"))
            assert read_line(sock) == b"+PONG"
            assert client_id(sock) != old_id

        stats = pool.stats()
        assert stats.destroyed == 1
        assert stats.created == 2
        assert stats.size == 1
        assert_quiescent(stats)
