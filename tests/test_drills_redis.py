"""Fault drills on the real Redis, through respool.contrib.redis and respool.contrib.sockets.

- ``CLIENT KILL`` of every pooled connection while idle: with a check nobody fails; without
  one, at most one failure per killed connection, then the pool is whole again.
- The unread reply (redis-py's CVE-2023-28858/28859): a command sent and its reply left
  unread, by an interrupt, a timeout or a cancellation. A naive pool (a ``queue.Queue`` or an
  ``asyncio.Queue`` of the same connections) hands that reply to the next user; respool's
  pools never do.
- A network cut and a partition through ``tests/tcp_proxy.TcpProxy``: acquirers get an error or
  ``PoolTimeout`` within their deadline, never hang, the counts stay exact, and the pool
  recovers fully once the network is back.

Server-side actions touch only our own connections (``CLIENT KILL ID``); keys are unique.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import queue
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
import redis.asyncio

import respool
from respool.contrib import redis as rp_redis
from respool.contrib import sockets
from tests.conftest import Boom, wait_until
from tests.services import require_redis
from tests.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.redis, pytest.mark.timeout(60)]

#: How long a drill's acquirers may wait; the bound every measured wait is held to.
ACQUIRE = 0.5
#: Slack on top of a deadline for thread scheduling on a shared 2-core machine.
SLACK = 1.0
#: Socket timeouts of the lifecycles behind a proxy: what bounds a check or a create when
#: nothing comes back.
SOCKET = 0.3


class Interrupt(BaseException):
    """Stands for KeyboardInterrupt or SystemExit arriving in the middle of a lease."""


@dataclass
class Keys:
    a: str
    b: str
    empty: str  # never written: BLPOP on it waits out its timeout, then answers nil


@pytest.fixture(scope="module")
def server() -> tuple[str, int]:
    return require_redis()


@pytest.fixture
def keys(server: tuple[str, int]) -> Iterator[Keys]:
    """Two keys holding b"A" and b"B", and an empty list key, all unique to this test."""
    base = f"respool-test:drill:{uuid.uuid4().hex}"
    found = Keys(f"{base}:a", f"{base}:b", f"{base}:empty")
    with admin() as r:
        r.set(found.a, "A", ex=120)
        r.set(found.b, "B", ex=120)
    yield found
    with admin() as r:
        r.delete(found.a, found.b, found.empty)


def admin() -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=6379, socket_timeout=5)


def url_of(host: str, port: int) -> str:
    return f"redis://{host}:{port}/0"


def kill(ids: list[int]) -> None:
    """CLIENT KILL ID: our own connections only."""
    with admin() as r:
        for n in ids:
            r.execute_command("CLIENT", "KILL", "ID", str(n))


def blocked(client_id: int) -> bool:
    """Is our client *client_id* blocked in a command (BLPOP) on the server right now?"""
    with admin() as r:
        info = r.execute_command("CLIENT", "LIST", "ID", str(client_id))
    text = info.decode() if isinstance(info, bytes) else str(info)
    return "cmd=blpop" in text


def raw(resource: Any) -> Any:
    """The redis-py connection under a pooled client or raw connection."""
    return resource.connection if isinstance(resource, redis.Redis) else resource


def ask(resource: Any, *command: str) -> Any:
    conn = raw(resource)
    conn.send_command(*command)
    return conn.read_response()


def ids_of(pool: Any, size: int) -> list[int]:
    """CLIENT ID of every resource of *pool* (all lent at once, then returned)."""
    leases = [pool.acquire(timeout=5) for _ in range(size)]
    try:
        return [int(ask(lease.resource, "CLIENT", "ID")) for lease in leases]
    finally:
        for lease in leases:
            lease.release()


def assert_counts(pool: Any) -> None:
    """The pool's accounts balance (every create matched by a destroy or a live resource)."""
    respool_filler_settle()
    stats = pool.stats()
    assert stats.created - stats.destroyed == stats.size == stats.idle + stats.in_use, stats


def respool_filler_settle() -> None:
    from respool._threads import filler

    assert filler.flush(5.0), "the filler did not catch up in 5 s"


# -- CLIENT KILL ---------------------------------------------------------------------------


@pytest.mark.parametrize("factory", ["clients", "connections"])
def test_client_kill_while_idle_with_check_fails_nobody(
    server: tuple[str, int], keys: Keys, factory: str
) -> None:
    """Every pooled connection killed by the server while idle: the check finds each dead
    and replaces it before lending it; the next requests all succeed."""
    life = getattr(rp_redis, factory)(url_of(*server))
    with respool.FixedPool(life, size=3) as pool:
        kill(ids_of(pool, 3))
        for _ in range(3):  # rounds at full capacity: every dead one is met
            leases = [pool.acquire(timeout=5) for _ in range(3)]
            answers = [ask(lease.resource, "GET", keys.a) for lease in leases]
            for lease in leases:
                lease.release()
            assert answers == [b"A"] * 3
        respool_filler_settle()  # replacements for the dead are made in the background
        stats = pool.stats()
        assert stats.check_failures == 3 and stats.created == 6, stats
        assert_counts(pool)


@pytest.mark.parametrize("factory", ["clients", "connections"])
def test_client_kill_while_idle_without_check_fails_once_per_connection_then_heals(
    server: tuple[str, int], keys: Keys, factory: str
) -> None:
    """Without a check each killed connection fails exactly one request (redis-py from_url
    clients do not retry by default); reset refuses the closed connection, the pool replaces
    it, and then all three can be used at once again."""
    full = getattr(rp_redis, factory)(url_of(*server))
    life = respool.Lifecycle(full.create, reset=full.reset, destroy=full.destroy)
    with respool.FixedPool(life, size=3) as pool:
        kill(ids_of(pool, 3))
        failures = []
        for _ in range(3):  # rounds at full capacity: every dead one is met
            leases = [pool.acquire(timeout=5) for _ in range(3)]
            failed = 0
            for lease in leases:
                try:
                    assert ask(lease.resource, "GET", keys.a) == b"A"
                except redis.ConnectionError:
                    failed += 1
                lease.release()  # reset refuses a connection redis-py closed on the error
            failures.append(failed)
        assert failures == [3, 0, 0]  # one failure per killed connection, then healed
        respool_filler_settle()
        stats = pool.stats()
        assert stats.reset_errors == 3 and stats.created == 6, stats
        assert_counts(pool)


def test_async_client_kill_while_idle_with_check_fails_nobody(
    server: tuple[str, int], keys: Keys
) -> None:
    """The same drill through AsyncFixedPool(async_clients()): no request fails."""

    async def main() -> None:
        async with respool.AsyncFixedPool(rp_redis.async_clients(url_of(*server)), size=3) as pool:
            leases = [await pool.acquire(timeout=5) for _ in range(3)]
            ids = [await lease.resource.client_id() for lease in leases]
            for lease in leases:
                await lease.release()
            kill(ids)
            for _ in range(3):  # rounds at full capacity: every dead one is met
                leases = [await pool.acquire(timeout=5) for _ in range(3)]
                answers = [await lease.resource.get(keys.a) for lease in leases]
                for lease in leases:
                    await lease.release()
                assert answers == [b"A"] * 3
            await asyncio.sleep(0)  # (the replacements' creates are the pool's tasks)
            stats = pool.stats()
            assert stats.check_failures == 3 and stats.created == 6, stats

    asyncio.run(main())


# -- the unread reply, sync ----------------------------------------------------------------


def naive_pool(create: Callable[[], Any]) -> queue.Queue[Any]:
    """What a hand-made pool looks like: one connection, put back whatever happened."""
    q: queue.Queue[Any] = queue.Queue()
    q.put(create())
    return q


@pytest.mark.parametrize("factory", ["clients", "connections"])
def test_an_interrupt_between_send_and_read_never_hands_the_stale_reply_on(
    server: tuple[str, int], keys: Keys, factory: str
) -> None:
    """GET a is sent, then the thread is interrupted before it reads the reply. A naive pool
    gives the next user (who asks GET b) the answer "A"; respool destroys the connection
    (abort means discard) and the next user reads "B"."""
    life = getattr(rp_redis, factory)(url_of(*server))
    naive = naive_pool(life.create)
    conn = naive.get()
    try:
        raw(conn).send_command("GET", keys.a)
        with contextlib.suppress(Interrupt):
            raise Interrupt
    finally:
        naive.put(conn)
    stale = naive.get()
    assert ask(stale, "GET", keys.b) == b"A"  # the hazard is real
    life.destroy(stale)

    with respool.FixedPool(life, size=1) as pool:
        with pytest.raises(Interrupt), pool.acquire() as resource:
            raw(resource).send_command("GET", keys.a)
            raise Interrupt
        with pool.acquire(timeout=5) as resource:
            assert ask(resource, "GET", keys.b) == b"B"
        assert pool.stats().retired["abort"] == 1


@pytest.mark.parametrize("factory", ["clients", "connections"])
def test_an_error_after_the_reply_arrived_is_refused_by_reset(
    server: tuple[str, int], keys: Keys, factory: str
) -> None:
    """An ordinary exception (not an abort) ends a lease whose reply had arrived unread: the
    pool resets, reset sees the bytes and refuses them, the next user reads its own reply."""
    with respool.FixedPool(getattr(rp_redis, factory)(url_of(*server)), size=1) as pool:
        with pytest.raises(Boom), pool.acquire() as resource:
            raw(resource).send_command("GET", keys.a)
            assert raw(resource).can_read(timeout=5)  # the reply is here, unread
            raise Boom("gave up on the reply")
        with pool.acquire(timeout=5) as resource:
            assert ask(resource, "GET", keys.b) == b"B"
        stats = pool.stats()
        assert stats.reset_errors == 1 and stats.retired["abort"] == 0, stats


@pytest.mark.parametrize("abort_on", [True, False], ids=["abort_on", "without"])
def test_a_read_timeout_mid_reply_never_hands_the_late_reply_on(
    server: tuple[str, int], keys: Keys, abort_on: bool
) -> None:
    """BLPOP answers after 0.3 s, the client's socket timeout is 0.05 s: redis-py raises its
    TimeoutError mid-read and disconnects. The lifecycle lists that error in abort_on, so the
    pool destroys the connection unseen; stripped of abort_on, reset refuses the closed
    connection instead. Either way the next user, after the late reply would have arrived,
    reads its own."""
    life = rp_redis.clients(url_of(*server), socket_timeout=0.05)
    if not abort_on:
        life = dataclasses.replace(life, abort_on=())
    with respool.FixedPool(life, size=1) as pool:
        with pytest.raises(redis.TimeoutError), pool.acquire() as client:
            client.blpop([keys.empty], timeout=0.3)
        with pool.acquire(timeout=5) as client:
            time.sleep(0.3)  # (not synchronisation: lets the abandoned reply become due)
            assert client.get(keys.b) == b"B"
        stats = pool.stats()
        if abort_on:
            assert (stats.retired["abort"], stats.reset_errors) == (1, 0), stats
        else:
            assert (stats.retired["abort"], stats.reset_errors) == (0, 1), stats


def test_a_builtin_timeout_inside_the_lease_discards_the_connection(
    server: tuple[str, int], keys: Keys
) -> None:
    """A socket-level TimeoutError raised in the lease after a send is an abort: the
    connection, reply still in flight, is destroyed; the next user reads its own reply."""
    with respool.FixedPool(rp_redis.connections(url_of(*server)), size=1) as pool:
        with pytest.raises(TimeoutError), pool.acquire() as conn:
            conn.send_command("BLPOP", keys.empty, "0.2")
            raise TimeoutError("the caller's own deadline passed")
        with pool.acquire(timeout=5) as conn:
            assert ask(conn, "GET", keys.b) == b"B"
        assert pool.stats().retired["abort"] == 1


def test_redis_timeout_without_disconnect_is_not_treated_as_an_abort(
    server: tuple[str, int], keys: Keys
) -> None:
    """read_response(timeout=, disconnect_on_error=False) raises redis' TimeoutError and
    keeps the connection, its reply (nil, 0.15 s later) in flight; even without the check's
    PING (check_timeout=0: the look only) it never reaches the next user: the lifecycle's
    abort_on makes that error an abort, and the connection is destroyed."""
    life = rp_redis.connections(url_of(*server), check_timeout=0)
    with respool.FixedPool(life, size=1) as pool:
        with pytest.raises(redis.TimeoutError), pool.acquire() as conn:
            conn.send_command("BLPOP", keys.empty, "0.2")
            conn.read_response(timeout=0.05, disconnect_on_error=False)
        with pool.acquire(timeout=5) as conn:
            assert ask(conn, "GET", keys.b) == b"B"
        stats = pool.stats()
        assert (stats.retired["abort"], stats.reset_errors) == (1, 0), stats


def test_the_check_ping_catches_a_reply_still_in_flight(
    server: tuple[str, int], keys: Keys
) -> None:
    """The same abandoned read, on a lifecycle stripped of abort_on (as a hand-made one would
    be) and with the default check: reset finds nothing yet (the reply is on its way), but the
    check's PING reads that reply instead of PONG and refuses the connection; the next user
    reads its own."""
    life = dataclasses.replace(rp_redis.connections(url_of(*server)), abort_on=())
    with respool.FixedPool(life, size=1) as pool:
        with pytest.raises(redis.TimeoutError), pool.acquire() as conn:
            conn.send_command("BLPOP", keys.empty, "0.2")
            conn.read_response(timeout=0.05, disconnect_on_error=False)
        assert pool.stats().reset_errors == 0  # reset could not see it
        with pool.acquire(timeout=5) as conn:
            assert ask(conn, "GET", keys.b) == b"B"
        assert pool.stats().check_failures == 1


def test_discard_on_error_covers_a_redis_timeout_without_disconnect(
    server: tuple[str, int], keys: Keys
) -> None:
    """On a lifecycle without abort_on, discard_on_error=True destroys it too (as an error)."""
    life = dataclasses.replace(rp_redis.connections(url_of(*server)), abort_on=())
    with respool.FixedPool(life, size=1, discard_on_error=True) as pool:
        with pytest.raises(redis.TimeoutError), pool.acquire() as conn:
            conn.send_command("BLPOP", keys.empty, "0.2")
            conn.read_response(timeout=0.05, disconnect_on_error=False)
        with pool.acquire(timeout=5) as conn:
            assert ask(conn, "GET", keys.b) == b"B"
        assert pool.stats().retired["error"] == 1


@contextlib.contextmanager
def interrupt_main_thread_when(condition: Callable[[], bool]) -> Iterator[None]:
    """Raise Interrupt in the main thread (from a SIGUSR1 handler, as Ctrl-C would) once
    *condition* holds: a real asynchronous interrupt of a blocked read."""

    def handler(signum: int, frame: object) -> None:
        raise Interrupt

    main = threading.get_ident()
    previous = signal.signal(signal.SIGUSR1, handler)
    done = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + 5
        while not done.is_set() and time.monotonic() < deadline:
            if condition():
                signal.pthread_kill(main, signal.SIGUSR1)
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join(5)
        signal.signal(signal.SIGUSR1, previous)


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="signals: main thread"
)
def test_a_thread_interrupted_while_blocked_in_a_read_never_hands_the_reply_on(
    server: tuple[str, int], keys: Keys
) -> None:
    """The client waits in BLPOP (0.5 s); a signal handler raises in it mid-read. The next
    user of the pool, after that reply would have come, reads its own answer."""
    with respool.FixedPool(rp_redis.clients(url_of(*server)), size=1) as pool:
        with pool.acquire() as client:
            me = client.client_id()
        with (
            pytest.raises(Interrupt),
            interrupt_main_thread_when(lambda: blocked(me)),
            pool.acquire() as client,
        ):
            client.blpop([keys.empty], timeout=0.5)
        with pool.acquire(timeout=5) as client:
            time.sleep(0.5)  # (not synchronisation: lets the abandoned reply become due)
            assert client.get(keys.b) == b"B"
        assert pool.stats().retired["abort"] == 1


# -- the unread reply, asyncio -------------------------------------------------------------


async def _cancel_mid_blpop(how: str, client: Any, keys: Keys) -> None:
    """Run BLPOP (0.3 s) and cut it short mid-command by *how*."""
    if how == "timeout":
        async with asyncio.timeout(0.05):
            await client.blpop([keys.empty], timeout=0.3)
    elif how == "wait_for":
        await asyncio.wait_for(client.blpop([keys.empty], timeout=0.3), 0.05)
    else:
        me = await client.client_id()
        task = asyncio.ensure_future(client.blpop([keys.empty], timeout=0.3))
        deadline = time.monotonic() + 5
        while not blocked(me):  # the command is on the server, its reply not yet sent
            assert time.monotonic() < deadline
            await asyncio.sleep(0.005)
        task.cancel()
        await task


@pytest.mark.parametrize("how", ["cancel", "timeout", "wait_for"])
def test_a_task_cancelled_mid_command_never_hands_the_reply_on(
    server: tuple[str, int], keys: Keys, how: str
) -> None:
    """Through async_clients: a BLPOP cut short by Task.cancel, asyncio.timeout or wait_for;
    the next user, after that reply would have come, gets its own."""

    async def main() -> None:
        life = rp_redis.async_clients(url_of(*server))
        async with respool.AsyncFixedPool(life, size=1) as pool:
            expected = asyncio.CancelledError if how == "cancel" else TimeoutError
            with pytest.raises(expected):
                async with pool.acquire() as client:
                    await _cancel_mid_blpop(how, client, keys)
            async with pool.acquire(timeout=5) as client:
                await asyncio.sleep(0.3)  # (lets the abandoned reply become due)
                assert await client.get(keys.b) == b"B"
            assert pool.stats().retired["abort"] == 1

    asyncio.run(main())


@pytest.mark.parametrize("how", ["cancel", "timeout"])
def test_async_connection_cancelled_between_send_and_read(
    server: tuple[str, int], keys: Keys, how: str
) -> None:
    """Through async_connections: GET a sent, the task cancelled before it reads. An
    asyncio.Queue of the same connections hands "A" to the next GET b; respool never does."""

    async def give_up(conn: Any) -> None:
        await conn.send_command("GET", keys.a)
        if how == "timeout":
            async with asyncio.timeout(0.01):
                await asyncio.Event().wait()  # stands for work before the read
        else:
            task = asyncio.current_task()
            assert task is not None
            asyncio.get_running_loop().call_soon(task.cancel)
            await asyncio.Event().wait()

    expected = asyncio.CancelledError if how == "cancel" else TimeoutError

    async def main() -> None:
        life = rp_redis.async_connections(url_of(*server))
        naive: asyncio.Queue[Any] = asyncio.Queue()
        await naive.put(await life.create())  # type: ignore[misc]
        conn = await naive.get()
        try:
            with contextlib.suppress(expected):
                await give_up(conn)
        finally:
            await naive.put(conn)
        stale = await naive.get()
        await stale.send_command("GET", keys.b)
        assert await stale.read_response() == b"A"  # the hazard is real
        await life.destroy(stale)  # type: ignore[misc]

        async with respool.AsyncFixedPool(life, size=1) as pool:
            with pytest.raises(expected):
                async with pool.acquire() as conn:
                    await give_up(conn)
            async with pool.acquire(timeout=5) as conn:
                await conn.send_command("GET", keys.b)
                assert await conn.read_response() == b"B"
            assert pool.stats().retired["abort"] == 1

    asyncio.run(main())


# -- the unread reply through respool.contrib.sockets (RESP by hand) -----------------------


def resp(*parts: str) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def read_bulk(sock: socket.socket) -> bytes:
    """One bulk-string reply ($1\\r\\nA\\r\\n) read whole."""
    data = b""
    while data.count(b"\r\n") < 2:
        chunk = sock.recv(64)
        if not chunk:
            raise ConnectionError("hung up")
        data += chunk
    return data.split(b"\r\n")[1]


@pytest.mark.parametrize("ending", ["interrupt", "error"])
def test_sockets_tcp_never_hands_the_stale_reply_on(
    server: tuple[str, int], keys: Keys, ending: str
) -> None:
    """Raw RESP over sockets.tcp(): GET a sent, the lease ends unread, by an interrupt (abort
    means discard) or by an ordinary error once the reply is here (reset: UnreadData). A naive
    queue.Queue hands "A" to the next GET b; respool's pool never does."""
    life = sockets.tcp(*server, timeout=5)
    naive = naive_pool(life.create)
    sock = naive.get()
    sock.sendall(resp("GET", keys.a))
    naive.put(sock)
    stale = naive.get()
    stale.sendall(resp("GET", keys.b))
    assert read_bulk(stale) == b"A"  # the hazard is real
    stale.close()

    with respool.FixedPool(life, size=1) as pool:
        raised = Interrupt if ending == "interrupt" else Boom
        with pytest.raises(raised), pool.acquire() as sock:
            sock.sendall(resp("GET", keys.a))
            if ending == "error":
                wait_until(lambda: not sockets.alive(sock))  # the reply has arrived
            raise raised()
        with pool.acquire(timeout=5) as sock:
            sock.sendall(resp("GET", keys.b))
            assert read_bulk(sock) == b"B"
        stats = pool.stats()
        assert stats.created == 2, stats
        assert (stats.retired["abort"], stats.reset_errors) == (
            (1, 0) if ending == "interrupt" else (0, 1)
        ), stats


def test_sockets_tcp_in_an_asyncio_pool_task_cancelled_before_the_read(
    server: tuple[str, int], keys: Keys
) -> None:
    """A sockets.tcp() socket used non-blocking from asyncio (loop.sock_*): the task is cut
    short by asyncio.timeout between request and reply; the next user reads its own."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        life = sockets.tcp(*server, timeout=5)
        async with respool.AsyncFixedPool(life, size=1) as pool:
            with pytest.raises(TimeoutError):
                async with pool.acquire() as sock:
                    sock.setblocking(False)
                    await loop.sock_sendall(sock, resp("GET", keys.a))
                    async with asyncio.timeout(0.01):
                        await asyncio.Event().wait()
            async with pool.acquire(timeout=5) as sock:
                sock.setblocking(False)
                await loop.sock_sendall(sock, resp("GET", keys.b))
                data = b""
                while data.count(b"\r\n") < 2:
                    data += await loop.sock_recv(sock, 64)
                assert data.split(b"\r\n")[1] == b"B"
            assert pool.stats().retired["abort"] == 1

    asyncio.run(main())


# -- network cut and partition through a proxy ---------------------------------------------


def proxied(proxy: TcpProxy, **kwargs: Any) -> respool.Lifecycle[redis.Redis]:
    options: dict[str, Any] = {
        "socket_timeout": SOCKET,
        "socket_connect_timeout": SOCKET,
        "check_timeout": SOCKET,
    }
    options.update(kwargs)
    return rp_redis.clients(url_of(*proxy.address), **options)


def attempt(pool: Any, key: str, causes: list[BaseException | None]) -> tuple[str, float]:
    """One acquire (ACQUIRE s) and GET: what happened ("ok", "timeout", "error") and how
    long it took. A PoolTimeout's cause (the refill's last error, if any) goes to *causes*."""
    started = time.monotonic()
    try:
        with pool.acquire(timeout=ACQUIRE) as client:
            client.get(key)
        outcome = "ok"
    except respool.PoolTimeout as exc:
        causes.append(exc.__cause__)
        outcome = "timeout"
    except (redis.RedisError, OSError):
        outcome = "error"
    return outcome, time.monotonic() - started


def recover(pool: Any, size: int, key: str, within: float = 8.0) -> float:
    """Poll until *size* leases can be held at once and each answers; the time it took."""
    started = time.monotonic()
    while True:
        leases: list[Any] = []
        try:
            for _ in range(size):
                leases.append(pool.acquire(timeout=ACQUIRE))
            if all(lease.resource.get(key) == b"A" for lease in leases):
                return time.monotonic() - started
        except (respool.PoolTimeout, redis.RedisError, OSError):
            pass
        finally:
            for lease in leases:
                with contextlib.suppress(Exception):
                    lease.release()
        assert time.monotonic() - started < within, f"no full recovery in {within} s"
        time.sleep(0.05)


@pytest.mark.parametrize("busy", [False, True], ids=["idle", "in-use"])
def test_a_network_cut_fails_fast_and_the_pool_recovers(
    server: tuple[str, int], keys: Keys, busy: bool
) -> None:
    """cut(): every connection reset, new ones refused for ~1 s. Acquirers get an error or
    PoolTimeout within their deadline (never a hang); holders mid-request get an error. After
    restore() all three connections work again within seconds; the counts balance."""
    with TcpProxy(*server) as proxy, respool.FixedPool(proxied(proxy), size=3) as pool:
        holders: list[threading.Thread] = []
        held_errors: list[BaseException] = []
        was_cut = threading.Event()
        if busy:
            lent = threading.Barrier(4)

            def hold() -> None:
                with pool.acquire(timeout=5) as client:
                    lent.wait(5)
                    assert was_cut.wait(5)  # the cut comes while the connection is held
                    try:
                        client.get(keys.a)
                    except redis.RedisError as exc:
                        held_errors.append(exc)
                        raise

            holders = [threading.Thread(target=_quietly(hold)) for _ in range(3)]
            for t in holders:
                t.start()
            lent.wait(5)
        proxy.cut()
        was_cut.set()
        cut_at = time.monotonic()
        outcomes = []
        causes: list[BaseException | None] = []
        while time.monotonic() - cut_at < 1.0:
            outcomes.append(attempt(pool, keys.a, causes))
            time.sleep(0.02)
        for t in holders:
            t.join(5)
        assert outcomes and all(o in ("error", "timeout") for o, _ in outcomes), outcomes
        slowest = max(took for _, took in outcomes)
        assert slowest < ACQUIRE + SLACK, outcomes
        # A PoolTimeout says why: the refill kept failing (refused) meanwhile.
        assert all(isinstance(c, redis.ConnectionError) for c in causes), causes
        if busy:
            assert len(held_errors) == 3, held_errors
        proxy.restore()
        took = recover(pool, 3, keys.a)
        assert took < 8.0
        assert_counts(pool)
        stats = pool.stats()
        assert stats.size == 3 and stats.destroyed >= 3, stats
        print(
            f"cut ({'in use' if busy else 'idle'}): {[o for o, _ in outcomes]},"
            f" slowest {slowest:.3f} s, recovered in {took:.3f} s"
        )


def _quietly(fn: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        with contextlib.suppress(Exception):
            fn()

    return run


def test_a_partition_is_bounded_by_the_socket_timeouts_and_the_pool_recovers(
    server: tuple[str, int], keys: Keys
) -> None:
    """blackhole(): nothing gets through, nothing is closed. The check's PING gives up after
    check_timeout, a create's handshake after socket_timeout: every acquirer is answered
    within its deadline. After restore() the pool is whole again within seconds."""
    with TcpProxy(*server) as proxy, respool.FixedPool(proxied(proxy), size=2) as pool:
        proxy.blackhole()
        outcomes = [attempt(pool, keys.a, []) for _ in range(3)]
        assert all(o in ("error", "timeout") for o, _ in outcomes), outcomes
        slowest = max(took for _, took in outcomes)
        assert slowest < ACQUIRE + SLACK, outcomes
        assert pool.stats().check_failures >= 1
        proxy.restore()
        took = recover(pool, 2, keys.a)
        assert_counts(pool)
        print(
            f"blackhole: {[o for o, _ in outcomes]}, slowest {slowest:.3f} s,"
            f" recovered in {took:.3f} s"
        )


def test_async_pool_network_cut_fails_fast_and_recovers(
    server: tuple[str, int], keys: Keys
) -> None:
    """The cut drill through AsyncFixedPool(async_clients()): errors or PoolTimeout within
    the deadline, then full recovery."""

    async def main() -> None:
        with TcpProxy(*server) as proxy:
            life = rp_redis.async_clients(
                url_of(*proxy.address),
                socket_timeout=SOCKET,
                socket_connect_timeout=SOCKET,
                check_timeout=SOCKET,
            )
            async with respool.AsyncFixedPool(life, size=2) as pool:
                proxy.cut()
                cut_at = time.monotonic()
                outcomes = []
                while time.monotonic() - cut_at < 1.0:
                    started = time.monotonic()
                    try:
                        async with pool.acquire(timeout=ACQUIRE) as client:
                            await client.get(keys.a)
                        outcome = "ok"
                    except respool.PoolTimeout:
                        outcome = "timeout"
                    except (redis.RedisError, OSError):
                        outcome = "error"
                    outcomes.append((outcome, time.monotonic() - started))
                    await asyncio.sleep(0.01)
                assert all(o in ("error", "timeout") for o, _ in outcomes), outcomes
                assert max(t for _, t in outcomes) < ACQUIRE + SLACK, outcomes
                proxy.restore()
                started = time.monotonic()
                while True:
                    try:
                        leases = [await pool.acquire(timeout=ACQUIRE) for _ in range(2)]
                    except (respool.PoolTimeout, redis.RedisError, OSError):
                        assert time.monotonic() - started < 8.0, "no recovery in 8 s"
                        await asyncio.sleep(0.05)
                        continue
                    try:
                        answers = [await lease.resource.get(keys.a) for lease in leases]
                    finally:
                        for lease in leases:
                            await lease.release()
                    if answers == [b"A", b"A"]:
                        break
                stats = pool.stats()
                assert stats.created - stats.destroyed == stats.size == 2, stats

    asyncio.run(main())
