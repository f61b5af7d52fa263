"""respool.contrib.redis against the real Redis: every pool kind each lifecycle fits, a reset
that refuses what the next user must not inherit (unread bytes, MULTI, WATCH, pub/sub,
SELECT, a pipeline or PubSub still out, closed), a check that is bounded and never consumes a
reply, and arguments refused with the parameter's name.

Every key is unique to the test run; every server-side action touches only our own clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio

import respool
from respool.contrib import redis as rp_redis
from respool.contrib.sockets import UnreadData
from tests.conftest import wait_until
from tests.services import require_redis

pytestmark = [pytest.mark.redis, pytest.mark.timeout(60)]

#: Generous bound for anything that must not block (a check, a reset) on loopback.
QUICK = 0.5


@pytest.fixture(scope="module")
def url() -> str:
    host, port = require_redis()
    return f"redis://{host}:{port}/0"


@pytest.fixture
def key() -> Iterator[str]:
    """A key no other test (or helper) uses; removed afterwards."""
    name = f"respool-test:redis:{uuid.uuid4().hex}"
    yield name
    with redis.Redis.from_url("redis://127.0.0.1:6379/0") as admin:
        found = list(admin.scan_iter(match=f"{name}*"))  # the key and its ":n" relatives
        if found:
            admin.delete(*found)


def client_id(conn: Any) -> int:
    """CLIENT ID of a raw sync connection."""
    conn.send_command("CLIENT", "ID")
    return int(conn.read_response())


def kill(*ids: int) -> None:
    """CLIENT KILL our own connections, by id."""
    with redis.Redis.from_url("redis://127.0.0.1:6379/0") as admin:
        for n in ids:
            admin.execute_command("CLIENT", "KILL", "ID", str(n))


# -- every pool kind -----------------------------------------------------------------------


def _roundtrip(client: redis.Redis, key: str, n: int) -> bytes:
    client.set(f"{key}:{n}", f"v{n}", ex=60)
    value = client.get(f"{key}:{n}")
    assert isinstance(value, bytes)
    return value


def _raw_roundtrip(conn: Any, key: str, n: int) -> bytes:
    conn.send_command("SET", f"{key}:{n}", f"v{n}", "EX", "60")
    assert conn.read_response() == b"OK"
    conn.send_command("GET", f"{key}:{n}")
    value = conn.read_response()
    assert isinstance(value, bytes)
    return value


@pytest.mark.parametrize("kind", ["fixed", "elastic", "worker"])
@pytest.mark.parametrize("factory", ["clients", "connections"])
def test_sync_lifecycles_fit_every_threaded_pool(
    url: str, key: str, kind: str, factory: str
) -> None:
    """FixedPool, ElasticPool and WorkerPool each lend working clients and connections."""
    life: Any = getattr(rp_redis, factory)(url)
    use = _roundtrip if factory == "clients" else _raw_roundtrip
    if kind == "worker":
        with respool.WorkerPool(life, workers=2) as wp:
            results = list(wp.map(lambda r, n: use(r, key, n), range(6)))
    else:
        pool: Any = (
            respool.FixedPool(life, size=2)
            if kind == "fixed"
            else respool.ElasticPool(life, max_size=2, max_idle=2)
        )
        with pool:
            results = []
            for n in range(6):
                with pool.acquire(timeout=5) as resource:
                    results.append(use(resource, key, n))
            stats = pool.stats()
            assert stats.created <= 2 and stats.reset_errors == 0, stats
    assert results == [f"v{n}".encode() for n in range(6)]


@pytest.mark.parametrize("kind", ["fixed", "elastic", "worker"])
@pytest.mark.parametrize("factory", ["async_clients", "async_connections"])
def test_async_lifecycles_fit_every_asyncio_pool(
    url: str, key: str, kind: str, factory: str
) -> None:
    """AsyncFixedPool, AsyncElasticPool and AsyncWorkerPool each lend working async clients
    and connections (the async callbacks are awaited)."""
    life: Any = getattr(rp_redis, factory)(url)

    async def use(resource: Any, n: int) -> bytes:
        if factory == "async_clients":
            await resource.set(f"{key}:{n}", f"v{n}", ex=60)
            value = await resource.get(f"{key}:{n}")
        else:
            await resource.send_command("SET", f"{key}:{n}", f"v{n}", "EX", "60")
            assert await resource.read_response() == b"OK"
            await resource.send_command("GET", f"{key}:{n}")
            value = await resource.read_response()
        assert isinstance(value, bytes)
        return value

    async def main() -> list[bytes]:
        if kind == "worker":
            async with respool.AsyncWorkerPool(life, workers=2) as wp:
                return [await wp.submit(use, n) for n in range(6)]
        pool: Any = (
            respool.AsyncFixedPool(life, size=2)
            if kind == "fixed"
            else respool.AsyncElasticPool(life, max_size=2, max_idle=2)
        )
        async with pool:
            results = []
            for n in range(6):
                async with pool.acquire(timeout=5) as resource:
                    results.append(await use(resource, n))
            stats = pool.stats()
            assert stats.created <= 2 and stats.reset_errors == 0, stats
            return results

    assert asyncio.run(main()) == [f"v{n}".encode() for n in range(6)]


def test_async_clients_type_is_inferred_by_the_pool(url: str) -> None:
    """AsyncFixedPool(async_clients()) lends a redis.asyncio.Redis bound to one connection."""

    async def main() -> None:
        async with (
            respool.AsyncFixedPool(rp_redis.async_clients(url), size=1) as pool,
            pool.acquire() as client,
        ):
            assert isinstance(client, redis.asyncio.Redis)
            assert client.single_connection_client and client.connection is not None
            assert await client.ping()

    asyncio.run(main())


# -- reset ---------------------------------------------------------------------------------


@pytest.fixture
def client_life(url: str) -> respool.Lifecycle[redis.Redis]:
    return rp_redis.clients(url)


def _fresh(life: respool.Lifecycle[Any]) -> Any:
    return life.create()


KEPT: list[Any] = []
DIRTY = {
    "MULTI": lambda c, k: c.execute_command("MULTI"),
    "WATCH": lambda c, k: c.execute_command("WATCH", k),
    "subscribed": lambda c, k: c.execute_command("SUBSCRIBE", f"{k}:channel"),
    "SELECT": lambda c, k: c.select(1),
    # WATCH holds a pipeline connection; the objects are kept alive (their __del__ would
    # give the connection back), as a caller still using them would.
    "pipeline": lambda c, k: KEPT.append(c.pipeline()) or KEPT[-1].watch(k),
    "PubSub": lambda c, k: KEPT.append(c.pubsub()) or KEPT[-1].subscribe(f"{k}:channel"),
    "closed": lambda c, k: c.connection.disconnect(),
}


@pytest.mark.parametrize("state", list(DIRTY))
def test_reset_refuses_a_client_left_in_a_session_state(url: str, key: str, state: str) -> None:
    """MULTI, WATCH, a subscription, SELECT, a pipeline or PubSub still holding a connection,
    or a closed connection: reset raises UnreadReply (an UnreadData) naming it."""
    # A plain SUBSCRIBE command is answered in RESP2 only (RESP3, redis-py 8's default,
    # answers with a push message that execute_command does not wait for).
    client_life = rp_redis.clients(url, **({"protocol": 2} if state == "subscribed" else {}))
    assert client_life.reset is not None and client_life.destroy is not None
    client = _fresh(client_life)
    try:
        client_life.reset(client)  # clean to begin with
        DIRTY[state](client, key)
        word = {"pipeline": "pipeline or PubSub", "PubSub": "pipeline or PubSub"}
        with pytest.raises(UnreadData, match=word.get(state, state)):
            client_life.reset(client)
    finally:
        client_life.destroy(client)
        KEPT.clear()


@pytest.mark.parametrize(
    "commands",
    [
        [("MULTI",), ("SET", "{k}", "1"), ("EXEC",)],
        [("MULTI",), ("DISCARD",)],
        [("WATCH", "{k}"), ("UNWATCH",)],
        [("WATCH", "{k}"), ("MULTI",), ("EXEC",)],
    ],
)
def test_reset_accepts_a_client_whose_transaction_was_ended(
    client_life: respool.Lifecycle[redis.Redis], key: str, commands: list[tuple[str, ...]]
) -> None:
    """EXEC, DISCARD and UNWATCH leave the states they end: no needless reconnect."""
    assert client_life.reset is not None and client_life.destroy is not None
    client = _fresh(client_life)
    try:
        for command in commands:
            client.execute_command(*(part.replace("{k}", key) for part in command))
        client_life.reset(client)
        pipe = client.pipeline()  # a pipeline that was executed gave its connection back
        pipe.set(key, "x", ex=60).get(key)
        assert pipe.execute() == [True, b"x"]
        client_life.reset(client)
    finally:
        client_life.destroy(client)


def test_optimistic_transactions_through_pipelines_leave_the_client_reusable(
    client_life: respool.Lifecycle[redis.Redis], key: str
) -> None:
    """WATCH/MULTI/EXEC run by a pipeline (client.transaction, or a pipeline reset after
    WATCH) happen on the pipeline's connection and end there: reset accepts the client, so
    the usual optimistic-locking pattern costs no reconnect."""
    assert client_life.reset is not None and client_life.destroy is not None
    client = _fresh(client_life)
    try:

        def bump(pipe: Any) -> None:
            current = int(pipe.get(key) or 0)
            pipe.multi()
            pipe.set(key, current + 1, ex=60)

        client.transaction(bump, key)
        client_life.reset(client)
        with client.pipeline() as pipe:
            pipe.watch(key)
            assert pipe.get(key) == b"1"
        client_life.reset(client)
        assert client.get(key) == b"1"
    finally:
        client_life.destroy(client)


def test_a_refused_client_is_replaced_and_the_next_user_is_not_in_multi(url: str, key: str) -> None:
    """Through a pool: the MULTI left by one user never reaches the next, whose SET runs."""
    with respool.FixedPool(rp_redis.clients(url), size=1) as pool:
        with pool.acquire() as client:
            client.execute_command("MULTI")
        with pool.acquire() as client:
            assert client.set(key, "ran", ex=60) is True  # not "QUEUED"
            assert client.get(key) == b"ran"
        stats = pool.stats()
        assert stats.reset_errors == 1 and stats.created == 2, stats


def test_reset_refuses_unread_bytes_without_waiting_or_losing_them(url: str) -> None:
    """A reply that arrived unread: reset refuses the connection at once (even with a long
    socket timeout), and the look moved the bytes into redis-py's buffer, losing nothing."""
    life = rp_redis.connections(url, socket_timeout=30.0)
    assert life.reset is not None and life.destroy is not None
    conn: Any = life.create()
    try:
        started = time.monotonic()
        life.reset(conn)  # nothing waiting: returns at once, not after the 30 s timeout
        assert time.monotonic() - started < QUICK
        conn.send_command("ECHO", "left behind")
        assert conn.can_read(timeout=5)  # the reply is here (read into redis-py's buffer)
        with pytest.raises(rp_redis.UnreadReply, match="unread bytes"):
            life.reset(conn)
        assert conn.read_response() == b"left behind"  # consumed nothing
        life.reset(conn)
    finally:
        life.destroy(conn)


def test_async_reset_refuses_unread_bytes_and_session_states(url: str, key: str) -> None:
    """The asyncio lifecycles refuse the same: unread bytes, MULTI, closed."""

    async def main() -> None:
        conns = rp_redis.async_connections(url)
        clients = rp_redis.async_clients(url)
        assert conns.reset and conns.destroy and clients.reset and clients.destroy
        conn: Any = await conns.create()  # type: ignore[misc]
        try:
            await conns.reset(conn)  # type: ignore[misc]
            await conn.send_command("ECHO", "left behind")
            deadline = time.monotonic() + 5
            while not await conn.can_read():  # until the reply reaches the stream
                assert time.monotonic() < deadline
                await asyncio.sleep(0.001)
            with pytest.raises(rp_redis.UnreadReply, match="unread bytes"):
                await conns.reset(conn)  # type: ignore[misc]
            assert await conn.read_response() == b"left behind"
        finally:
            await conns.destroy(conn)  # type: ignore[misc]
        client: Any = await clients.create()  # type: ignore[misc]
        try:
            await clients.reset(client)  # type: ignore[misc]
            await client.execute_command("MULTI")
            with pytest.raises(rp_redis.UnreadReply, match="MULTI"):
                await clients.reset(client)  # type: ignore[misc]
            await client.execute_command("DISCARD")
            await clients.reset(client)  # type: ignore[misc]
            await client.connection.disconnect()
            with pytest.raises(rp_redis.UnreadReply, match="closed"):
                await clients.reset(client)  # type: ignore[misc]
        finally:
            await clients.destroy(client)  # type: ignore[misc]

    asyncio.run(main())


# -- check and destroy ---------------------------------------------------------------------


@pytest.mark.parametrize("check_timeout", [1.0, 0])
def test_check_says_no_to_a_killed_closed_or_dirty_connection(
    url: str, check_timeout: float
) -> None:
    """Alive and idle: True, quickly; killed by the server, with unread bytes, or closed:
    False. With check_timeout=0 (no PING) the look alone sees the hang-up."""
    life = rp_redis.connections(url, check_timeout=check_timeout, socket_timeout=30.0)
    assert life.check and life.destroy
    conn: Any = life.create()
    try:
        started = time.monotonic()
        assert life.check(conn) is True
        assert time.monotonic() - started < QUICK
        conn.send_command("ECHO", "x")
        assert conn.can_read(timeout=5)
        assert life.check(conn) is False  # a reply nobody read
        assert conn.read_response() == b"x"
        kill(client_id(conn))
        wait_until(lambda: not life.check(conn))  # the hang-up is seen (no round trip)
    finally:
        life.destroy(conn)
        life.destroy(conn)  # destroying a dead one again never raises
    assert life.check(conn) is False  # closed


def test_async_check_says_no_to_a_killed_connection(url: str) -> None:
    """The asyncio check: True when alive, False once the server has killed the client."""

    async def main() -> None:
        life = rp_redis.async_clients(url)
        assert life.check and life.destroy
        client: Any = await life.create()  # type: ignore[misc]
        try:
            assert await life.check(client) is True  # type: ignore[misc]
            kill(await client.client_id())
            deadline = time.monotonic() + 5
            while await life.check(client):  # type: ignore[misc]
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
        finally:
            await life.destroy(client)  # type: ignore[misc]
            await life.destroy(client)  # type: ignore[misc]

    asyncio.run(main())


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A local port that refuses connections: bound, never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_create_connects_at_once_so_the_acquire_that_needed_it_fails_fast() -> None:
    """Nothing listens: the acquire that had to create gets redis' ConnectionError at once
    (not a lent client that fails at its first command)."""
    with (
        refusing_port() as port,
        respool.ElasticPool(rp_redis.clients(f"redis://127.0.0.1:{port}/0"), max_size=1) as pool,
    ):
        started = time.monotonic()
        with pytest.raises(redis.ConnectionError):
            pool.acquire(timeout=5)
        assert time.monotonic() - started < 2.0
        assert pool.stats().size == 0


# -- arguments -----------------------------------------------------------------------------

FACTORIES = ["clients", "connections", "async_clients", "async_connections"]


@pytest.mark.parametrize("factory", FACTORIES)
@pytest.mark.parametrize(
    ("args", "kwargs", "error", "name"),
    [
        ((5,), {}, TypeError, "url"),
        (("http://127.0.0.1:6379",), {}, ValueError, "url"),
        ((), {"check_timeout": -1}, ValueError, "check_timeout"),
        ((), {"check_timeout": "1"}, TypeError, "check_timeout"),
        ((), {"check_timeout": None}, TypeError, "check_timeout"),
        ((), {"check_timeout": float("inf")}, ValueError, "check_timeout"),
        ((), {"single_connection_client": False}, TypeError, "single_connection_client"),
        ((), {"sokcet_timeout": 1.0}, TypeError, "sokcet_timeout"),
    ],
)
def test_bad_arguments_name_the_parameter(
    factory: str, args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], name: str
) -> None:
    """Every factory refuses bad input at once (nothing connects), naming the parameter."""
    with pytest.raises(error, match=name):
        getattr(rp_redis, factory)(*args, **kwargs)


def test_importing_respool_does_not_import_redis() -> None:
    """The core never imports the optional driver; only respool.contrib.redis does."""
    code = (
        "import sys, respool, respool.contrib, respool.contrib.sockets\n"
        "assert 'redis' not in sys.modules, 'respool imported redis'\n"
        "import respool.contrib.redis\n"
        "assert 'redis' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
