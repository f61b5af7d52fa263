"""Pooled redis-py clients and connections (sync and asyncio) that never hand a stale reply,
an open transaction or a subscription to the next user.

The hazard. Redis answers commands in order on a connection, and nothing in a reply says which
command it answers. A caller that sends a command and stops before reading its reply (a task
cancelled, a thread interrupted, a read that timed out) leaves that reply on the connection;
whoever uses the connection next reads it as the answer to *their* command. That was redis-py's
CVE-2023-28858 and CVE-2023-28859: a cancelled ``GET`` returned one user's data to another. A
connection can be left dirty in quieter ways too: inside ``MULTI`` (the next user's commands
are queued, not run), with keys ``WATCH``-ed, subscribed (it only takes pub/sub commands now),
switched to another database by ``SELECT``, or closed.

What each callback does, and why:

- ``create`` connects at once, so a server that is down fails the acquire that needed the
  connection (or the pool's background refill) rather than the first command. :func:`clients`
  binds each ``redis.Redis`` to one connection of its own (``single_connection_client=True``):
  the pool, not redis-py's internal pool, decides who uses it. Connect and read timeouts default
  to 10 s (``socket_connect_timeout``, ``socket_timeout``; pass ``None`` for blocking), because
  a ``create`` or a ``check`` stuck on a dead network would hold its caller past any pool
  deadline.
- ``check`` (before an idle connection is lent) is bounded: first a non-blocking look for
  bytes or a hang-up waiting on the socket (redis-py's ``can_read(0)``, a few microseconds; it
  moves what it finds into the parser's buffer, never waits and never loses data), which
  catches a connection the server closed (``CLIENT KILL``, ``timeout``, a restart) without a
  round trip; then a ``PING`` whose reply must come within ``check_timeout``, which also
  catches a peer that vanished without closing anything, and a reply that was still on its
  way when the connection came back (it arrives where ``PONG`` should). The ``PING`` costs a
  round trip, as much as a ``GET`` (measured on loopback: an acquire and release of a client
  takes about 170 us with it, 11 us with the look alone, 7 us with reset alone), so on a hot
  path give the pool ``check_after=S`` (only connections idle ``S`` seconds are checked) or
  pass ``check_timeout=0`` (the look alone).
- ``reset`` (when a connection comes back) makes no round trip, since it runs on every
  release. It raises :class:`UnreadReply`, and the pool destroys the connection, when the
  connection is closed, when bytes or a hang-up wait on it, and, for clients, when the client
  was left in ``MULTI``, ``WATCH``, subscribed or after ``SELECT`` (tracked from the replies
  read on its connection: other commands pay one dictionary lookup), or while a pipeline or a
  ``PubSub`` made from it still holds a connection (its private redis-py pool has one lent
  besides the client's own).
- ``destroy`` closes, and never raises for a connection that is already dead.

What no ``reset`` can see: a reply still on its way when the connection comes back. That is
why respool destroys a resource whose lease ends in a cancellation, an interrupt or a
``TimeoutError`` (*abort means discard*), and why every lifecycle here adds redis-py's own
``redis.exceptions.TimeoutError`` to those (``abort_on``): it is a ``RedisError``, not a
``TimeoutError``, so the pool could not know it, and although redis-py's reads disconnect by
default when they time out (which ``reset`` would see), a raw-connection caller who reads with
``disconnect_on_error=False`` keeps a connection whose reply is still in flight. Such a lease
is destroyed and counted in ``retired["abort"]``, like any other abort. redis-py's
``ConnectionError`` is not listed: the connection is closed by then, and ``reset`` refuses it.
One case is left to the caller: awaiting ``read_response(timeout=...)`` on an asyncio
connection returns ``None`` when it gives up, raising nothing, so only the check's ``PING``
can still catch that connection (not with ``check_timeout=0`` or ``check_after``): end such a
lease with ``discard()``, or build the pool with ``discard_on_error=True``.

Example (a real server is needed)::

    import asyncio

    import respool
    from respool.contrib import redis as rp_redis

    with respool.FixedPool(rp_redis.clients("redis://127.0.0.1:6379/0"), size=4) as pool:
        with pool.acquire() as client:
            client.set("greeting", "hello", ex=60)


    async def main():
        async with respool.AsyncFixedPool(rp_redis.async_clients(), size=4) as pool:
            async with pool.acquire() as client:
                assert await client.get("greeting") == b"hello"


    asyncio.run(main())
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Final, cast

from respool.contrib import _missing

try:
    import redis
    import redis.asyncio
    from redis.asyncio.connection import AbstractConnection as AsyncConnection
    from redis.asyncio.connection import ConnectionPool as AsyncConnectionPool
    from redis.connection import AbstractConnection, ConnectionPool
    from redis.exceptions import RedisError
    from redis.exceptions import TimeoutError as RedisTimeout
except ImportError as exc:  # pragma: no cover - the extra is installed for the tests
    raise _missing("redis", "redis", exc) from exc

from respool import _validate
from respool.contrib.sockets import UnreadData
from respool.lifecycle import Lifecycle

__all__ = [
    "UnreadReply",
    "async_clients",
    "async_connections",
    "clients",
    "connections",
]

DEFAULT_URL: Final = "redis://127.0.0.1:6379/0"
#: Applied unless the caller (or the URL) says otherwise: see the module docstring.
_DEFAULT_TIMEOUTS: Final = {"socket_connect_timeout": 10.0, "socket_timeout": 10.0}
#: The errors that end a use of a connection mid-operation besides the builtin ``TimeoutError``
#: (every lifecycle's ``abort_on``): redis-py's own timeout, raised by a read that gave up
#: (with ``disconnect_on_error=False``, leaving the connection open, its reply in flight).
_ABORT_ON: Final = (RedisTimeout,)
#: Keywords clients() sets itself; a caller passing them would silently change the design.
_OURS: Final = ("single_connection_client", "connection_pool")

#: Commands after which a client's connection is in a state the next user must not inherit,
#: named for the error message. The state is entered once the server acknowledges the command.
_ENTERS: Final = {
    "MULTI": "MULTI",
    "WATCH": "WATCH",
    "SUBSCRIBE": "subscribed",
    "PSUBSCRIBE": "subscribed",
    "SSUBSCRIBE": "subscribed",
    "SELECT": "SELECT",
}
#: Commands that leave those states (EXEC and DISCARD also forget every WATCH-ed key).
_LEAVES: Final = {
    "EXEC": ("MULTI", "WATCH"),
    "DISCARD": ("MULTI", "WATCH"),
    "UNWATCH": ("WATCH",),
}

#: The session states of each pooled client, by client (weakly: a client garbage-collected
#: without destroy, e.g. one never given to a pool, takes its entry with it).
_sessions: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


class UnreadReply(UnreadData):
    """A Redis connection came back in a state the next user must not inherit: unread bytes
    (a reply nobody read), a hang-up, closed, or inside MULTI/WATCH/pub-sub/SELECT.

    A subclass of :class:`respool.contrib.sockets.UnreadData`, so one ``except`` catches the
    refusals of both integrations."""


# -- arguments -----------------------------------------------------------------------------


def _options(
    url: object, check_timeout: object, kwargs: dict[str, Any]
) -> tuple[str, float, dict[str, Any]]:
    """Validate what every factory takes; return the URL, the check bound and the keywords
    with the default timeouts filled in."""
    text = _validate.text("url", url)
    bound = _validate.seconds("check_timeout", check_timeout, allow_none=False) or 0.0
    if bound == float("inf"):
        raise ValueError(f"check_timeout must be a finite number of seconds, got {bound!r}")
    for name in _OURS:
        if name in kwargs:
            raise TypeError(f"{name} is set by respool.contrib.redis; do not pass it")
    options = {**_DEFAULT_TIMEOUTS, **kwargs}
    return text, bound, options


def _template(pool_class: type[Any], url: str, options: dict[str, Any]) -> Any:
    """A redis-py connection pool parsed from *url* (it connects nothing), after trying the
    connection class on its keywords once, so that a bad URL or a misspelt keyword fails here,
    naming itself, instead of at the first connect."""
    try:
        template = pool_class.from_url(url, **options)
    except ValueError as exc:
        raise ValueError(f"url is not a usable Redis URL ({url!r}): {exc}") from exc
    template.connection_class(**template.connection_kwargs)  # TypeError names a bad keyword
    return template


# -- the checks shared by clients and raw connections --------------------------------------


def _refuse_unread(waiting: bool) -> None:
    if waiting:
        raise UnreadReply("a Redis connection came back with unread bytes (a reply nobody read)")


def _refuse_session(client: Any) -> None:
    """Refuse a client left in a session state, or whose pipeline or PubSub still holds a
    connection: when the client is clean, its private redis-py pool has lent its own
    connection and nothing else. (``_in_use_connections`` is redis-py's, sync and asyncio
    alike; were it renamed, this part of the test would see nothing and pass.)"""
    states = _sessions.get(client)
    if states:
        raise UnreadReply(f"a Redis client came back in {', '.join(sorted(states))} state")
    in_use = getattr(client.connection_pool, "_in_use_connections", ())
    if len(in_use) > 1:
        raise UnreadReply(
            "a Redis client came back while a pipeline or PubSub made from it still holds a"
            " connection (reset() or close() it first)"
        )


def _pong(reply: object) -> bool:
    return reply in (b"PONG", "PONG")


def _alive(conn: Any, bound: float) -> bool:
    """The check of a sync connection: connected, nothing waiting, and (unless *bound* is 0)
    answering PING within *bound* seconds."""
    if conn is None or not conn.is_connected:
        return False
    try:
        if conn.can_read(0):
            return False  # unread bytes, or the server hung up
        if bound:
            conn.send_command("PING", check_health=False)
            return _pong(conn.read_response(timeout=bound))
    except (RedisError, OSError):  # refused, reset, timed out: redis-py disconnected it
        return False
    return True


async def _async_alive(conn: AsyncConnection | None, bound: float) -> bool:
    """:func:`_alive` for an asyncio connection (asyncio.timeout bounds the whole PING)."""
    if conn is None or not conn.is_connected:
        return False
    try:
        if await conn.can_read():
            return False
        if bound:
            async with asyncio.timeout(bound):
                await conn.send_command("PING", check_health=False)
                return _pong(await conn.read_response())
    except (RedisError, OSError, TimeoutError):
        return False
    return True


def _clean(conn: AbstractConnection | None) -> None:
    """``reset`` of a sync connection: no round trip, only what is already here."""
    if conn is None or not conn.is_connected:
        raise UnreadReply("a Redis connection came back closed")
    try:
        waiting = conn.can_read(0)
    except (RedisError, OSError) as exc:
        raise UnreadReply(f"a Redis connection came back broken: {exc}") from exc
    _refuse_unread(waiting)


async def _async_clean(conn: AsyncConnection | None) -> None:
    if conn is None or not conn.is_connected:
        raise UnreadReply("a Redis connection came back closed")
    try:
        waiting = await conn.can_read()
    except (RedisError, OSError) as exc:
        raise UnreadReply(f"a Redis connection came back broken: {exc}") from exc
    _refuse_unread(waiting)


def _note(states: set[str], command: object) -> None:
    """Update *states* after the server acknowledged *command* on the client's connection."""
    if isinstance(command, bytes):
        command = command.decode("ascii", "replace")
    if not isinstance(command, str):
        return
    name = command.upper()
    left = _LEAVES.get(name)
    if left is not None:
        states.difference_update(left)
    entered = _ENTERS.get(name)
    if entered is not None:
        states.add(entered)


def _track(client: Any, *, asynchronous: bool) -> None:
    """Record which session states *client*'s own connection is in, from the commands in
    ``_ENTERS`` and ``_LEAVES`` that the server acknowledged on it.

    The hook is the client's ``parse_response``, wrapped on this instance only: it sees every
    reply read on the client's connection, once the reply has arrived (a command the server
    refused changes nothing), and nothing of its pipelines or PubSubs, whose objects parse
    their own replies on their own connections (those are watched through the client's
    private pool instead). Other commands pay one dictionary lookup."""
    states: set[str] = set()
    _sessions[client] = states
    parse = client.parse_response

    def parse_response(connection: Any, command_name: Any, **options: Any) -> Any:
        response = parse(connection, command_name, **options)
        _note(states, command_name)
        return response

    async def parse_response_async(connection: Any, command_name: Any, **options: Any) -> Any:
        response = await parse(connection, command_name, **options)
        _note(states, command_name)
        return response

    client.parse_response = parse_response_async if asynchronous else parse_response


# -- sync ----------------------------------------------------------------------------------


def clients(
    url: str = DEFAULT_URL, *, check_timeout: float = 1.0, **client_kwargs: Any
) -> Lifecycle[redis.Redis]:
    """``redis.Redis`` clients, each bound to one connection of its own.

    *url* and *client_kwargs* go to ``redis.Redis.from_url`` (``decode_responses``,
    ``password``, ``socket_timeout``...). *check_timeout*: how long the check's PING may take
    (0: no PING, only the look for a hang-up or unread bytes).

    A pipeline or a ``PubSub`` made from a pooled client takes a connection of the client's
    own (private) redis-py pool; give the client back only after ending them.
    """
    url, bound, options = _options(url, check_timeout, client_kwargs)
    _template(ConnectionPool, url, options)

    def create() -> redis.Redis:
        client = redis.Redis.from_url(url, single_connection_client=True, **options)
        _track(client, asynchronous=False)
        return client

    def check(client: redis.Redis) -> bool:
        return _alive(client.connection, bound)

    def reset(client: redis.Redis) -> None:
        _refuse_session(client)
        _clean(client.connection)

    def destroy(client: redis.Redis) -> None:
        _sessions.pop(client, None)
        with contextlib.suppress(RedisError, OSError):
            client.close()  # it closes its private pool too: any pipeline or PubSub with it

    return Lifecycle(create, reset=reset, check=check, destroy=destroy, abort_on=_ABORT_ON)


def connections(
    url: str = DEFAULT_URL, *, check_timeout: float = 1.0, **connection_kwargs: Any
) -> Lifecycle[AbstractConnection]:
    """Raw redis-py connections (``send_command`` / ``read_response``), connected on create.

    *url* picks the class (``redis://``: ``Connection``, ``rediss://``: ``SSLConnection``,
    ``unix://``: ``UnixDomainSocketConnection``); *connection_kwargs* are its keywords;
    *check_timeout* as in :func:`clients`.
    """
    url, bound, options = _options(url, check_timeout, connection_kwargs)
    template = _template(ConnectionPool, url, options)
    connection_class: type[AbstractConnection] = template.connection_class
    kwargs: dict[str, Any] = dict(template.connection_kwargs)

    def create() -> AbstractConnection:
        conn = connection_class(**kwargs)
        cast(Any, conn).connect()
        return conn

    def check(conn: AbstractConnection) -> bool:
        return _alive(conn, bound)

    def destroy(conn: AbstractConnection) -> None:
        with contextlib.suppress(RedisError, OSError):
            cast(Any, conn).disconnect()

    return Lifecycle(create, reset=_clean, check=check, destroy=destroy, abort_on=_ABORT_ON)


# -- asyncio -------------------------------------------------------------------------------


def async_clients(
    url: str = DEFAULT_URL, *, check_timeout: float = 1.0, **client_kwargs: Any
) -> Lifecycle[redis.asyncio.Redis]:
    """``redis.asyncio.Redis`` clients, each bound to one connection of its own, for the
    asyncio pools (its callbacks are ``async def``). Arguments as in :func:`clients`."""
    url, bound, options = _options(url, check_timeout, client_kwargs)
    _template(AsyncConnectionPool, url, options)

    async def create() -> redis.asyncio.Redis:
        client = redis.asyncio.Redis.from_url(url, single_connection_client=True, **options)
        try:
            await client.initialize()  # takes (and connects) its one connection
        except BaseException:
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()
            raise
        _track(client, asynchronous=True)
        return client

    async def check(client: redis.asyncio.Redis) -> bool:
        return await _async_alive(client.connection, bound)

    async def reset(client: redis.asyncio.Redis) -> None:
        _refuse_session(client)
        await _async_clean(client.connection)

    async def destroy(client: redis.asyncio.Redis) -> None:
        _sessions.pop(client, None)
        with contextlib.suppress(RedisError, OSError):
            await client.aclose()

    return _as_lifecycle(create, reset, check, destroy)


def async_connections(
    url: str = DEFAULT_URL, *, check_timeout: float = 1.0, **connection_kwargs: Any
) -> Lifecycle[AsyncConnection]:
    """Raw ``redis.asyncio`` connections, connected on create, for the asyncio pools.
    Arguments as in :func:`connections`."""
    url, bound, options = _options(url, check_timeout, connection_kwargs)
    template = _template(AsyncConnectionPool, url, options)
    connection_class: type[AsyncConnection] = template.connection_class
    kwargs: dict[str, Any] = dict(template.connection_kwargs)

    async def create() -> AsyncConnection:
        conn = connection_class(**kwargs)
        await cast(Any, conn).connect()
        return conn

    async def check(conn: AsyncConnection) -> bool:
        return await _async_alive(conn, bound)

    async def destroy(conn: AsyncConnection) -> None:
        with contextlib.suppress(RedisError, OSError):
            await conn.disconnect(nowait=True)

    return _as_lifecycle(create, _async_clean, check, destroy)


def _as_lifecycle(
    create: Callable[[], Awaitable[Any]],
    reset: Callable[[Any], Awaitable[None]],
    check: Callable[[Any], Awaitable[bool]],
    destroy: Callable[[Any], Awaitable[None]],
) -> Lifecycle[Any]:
    """A Lifecycle of ``async def`` callbacks. ``Lifecycle[T]`` types ``create`` as returning
    ``T``; the asyncio pools await what it returns, so the resource type the caller sees is
    the awaited one, which the public functions declare (hence ``Any`` here)."""
    lifecycle: Lifecycle[Any] = Lifecycle(
        create, reset=reset, check=check, destroy=destroy, abort_on=_ABORT_ON
    )
    return lifecycle
