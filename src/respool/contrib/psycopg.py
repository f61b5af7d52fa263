"""Pooled psycopg 3 connections, sync and async, that are never lent *not quite clean*.

``connections(conninfo)`` returns a :class:`~respool.Lifecycle` of ``psycopg.Connection`` for
the threaded pools (``FixedPool``, ``ElasticPool``, ``WorkerPool``); ``async_connections``
returns one of ``psycopg.AsyncConnection`` with ``async def`` callbacks for the asyncio pools.
Each callback, and why:

* ``create`` connects (``psycopg.connect(conninfo, autocommit=..., **connect_kwargs)``).
* ``reset`` runs on every return, so it is the hot path: it reads the connection's
  transaction status, which libpq keeps on our side, and makes **no round trip for an idle
  connection** (unless a ``reset_statement`` is given). A connection returned inside a
  transaction (``INTRANS``) or a failed one (``INERROR``) is rolled back, or the next user
  would inherit the transaction, its locks and its uncommitted writes. A connection that
  cannot be made clean raises :class:`ConnectionUnusable`, so the pool destroys it instead
  of lending it: closed or broken, a query still running on it (``ACTIVE``: given back
  while another thread still uses it, or mid-query), a status libpq cannot tell
  (``UNKNOWN``), a rollback that fails. It also puts back what the next user cannot see but
  would suffer from, for free (client-side attributes, no round trip): ``autocommit`` as
  configured, and ``read_only``, ``isolation_level`` and ``deferrable`` unset, as on a new
  connection.
* ``reset_statement`` (optional) runs after that on every return, outside any transaction
  (autocommit, even on a non-autocommit connection), for session state a rollback keeps:
  ``"RESET ALL"`` (settings changed with ``SET``), ``"UNLISTEN *"``, ``"CLOSE ALL"``, or
  ``"DISCARD ALL"`` for all of it. It costs a round trip per return: use it only if your
  code changes session state. One statement, or several separated by ``;`` (but
  ``DISCARD ALL`` must be alone: it cannot run inside the implicit transaction of several).
* ``check`` is :func:`alive` (or :func:`async_alive`): one empty query, the cheapest round
  trip there is, sent with libpq's own calls: no cursor, and no ``BEGIN``, which psycopg
  sends first on a non-autocommit connection and would leave open (``psycopg_pool`` turns
  autocommit on around its ``execute("")`` for that). A closed or busy connection is
  ``False`` with no round trip. Run before every lend it doubles the cost of a short query,
  so pair it with ``check_after=S``: only a connection idle ``S`` seconds or more is
  checked, which is exactly one a server, a firewall or a fail-over may have dropped
  meanwhile. ``keepalive=S`` checks idle ones in the background instead.
* ``destroy`` closes (a connection already closed is left alone).

**Dead networks.** A round trip to a server behind a partition waits for TCP to give up:
many minutes. The check waits ``check_timeout`` seconds at most (5 by default), then
answers ``False`` and the pool destroys the connection, left mid-query. It waits on the
socket itself, sync or async, so it ends on time, where psycopg's own calls, interrupted,
first try to cancel the query on the server for up to 10 s. In ``async_connections`` the
same limit bounds the reset's round trips too; those are psycopg's calls (a rollback must
also clear psycopg's own records), so that cancel attempt may overrun the limit. Bound
everything else (a sync rollback, your own queries, ``create``) in the conninfo, with
libpq's ``tcp_user_timeout`` (milliseconds that sent data may stay unacknowledged before
the connection is dropped; Linux), ``keepalives_idle``/``keepalives_interval``/
``keepalives_count`` (probing a connection that waits for a reply) and
``connect_timeout``::

    connections("host=db dbname=app tcp_user_timeout=5000 keepalives_idle=5 "
                "keepalives_interval=2 keepalives_count=2 connect_timeout=5")

Example (a real server is needed)::

    import respool
    from respool.contrib import psycopg as pg

    lifecycle = pg.connections("host=127.0.0.1 dbname=test user=postgres")
    with respool.FixedPool(lifecycle, size=4, check_after=30.0) as pool:
        with pool.acquire() as conn:
            conn.execute("CREATE TEMP TABLE t (x int)")
            conn.execute("INSERT INTO t VALUES (1)")
            # no commit: reset rolls back, the next user sees no table t
        with pool.acquire() as conn:
            print(conn.execute("SELECT 6 * 7").fetchone())
"""

from __future__ import annotations

import asyncio
import math
import select
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, cast

from respool.contrib import _missing

try:
    import psycopg
    from psycopg import pq
except ImportError as exc:  # pragma: no cover - the extra is installed for the tests
    raise _missing("psycopg", "psycopg", exc) from exc

from respool import _validate
from respool.lifecycle import Lifecycle

__all__ = [
    "ConnectionUnusable",
    "alive",
    "async_alive",
    "async_connections",
    "connections",
]

_IDLE: Final = pq.TransactionStatus.IDLE
_ACTIVE: Final = pq.TransactionStatus.ACTIVE
_UNKNOWN: Final = pq.TransactionStatus.UNKNOWN
_EMPTY_QUERY: Final = pq.ExecStatus.EMPTY_QUERY

#: How long an async check (and an async reset's round trips) may wait for the server.
_CHECK_TIMEOUT: Final = 5.0

_AnyConnection = psycopg.Connection[Any] | psycopg.AsyncConnection[Any]


class ConnectionUnusable(Exception):
    """A connection came back that must not be lent again; the message says why.

    ``reset`` raises it, and the pool destroys the connection rather than lend it."""


def _refusal(conn: _AnyConnection) -> str | None:
    """Why *conn* cannot be reset and lent again, seen without a round trip; None if it can."""
    if conn.closed:
        if conn.broken:
            return "its connection to the server was lost (broken)"
        return "it is closed"
    status = conn.pgconn.transaction_status
    if status == _ACTIVE:
        return (
            "a query is still running on it (transaction status ACTIVE): it was given back"
            " mid-query, or while something else still uses it"
        )
    if status == _UNKNOWN:
        return "libpq cannot tell its transaction status (UNKNOWN): the connection is bad"
    return None


def _not_idle(conn: _AnyConnection, after: str) -> ConnectionUnusable | None:
    """The error for a connection still not idle *after* cleaning it, or None."""
    status = conn.pgconn.transaction_status
    if status == _IDLE:
        return None
    name = pq.TransactionStatus(status).name
    return ConnectionUnusable(f"still not idle after {after} (status {name})")


# -- checks ---------------------------------------------------------------------------------


def _as_new(conn: _AnyConnection, autocommit: bool) -> bool:
    """Are *conn*'s client-side transaction settings those of a new connection? (No I/O.)"""
    return (
        conn.autocommit is autocommit
        and conn.read_only is None
        and conn.isolation_level is None
        and conn.deferrable is None
    )


def _wait(fd: int, writing: bool, deadline: float | None) -> bool:
    """Block until *fd* is ready to read (or write) or *deadline* passes: False if it did."""
    timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
    if hasattr(select, "poll"):  # no limit on fd numbers, unlike select()
        poller = select.poll()
        poller.register(fd, select.POLLOUT if writing else select.POLLIN)
        return bool(poller.poll(None if timeout is None else math.ceil(timeout * 1000)))
    ready = (
        select.select([], [fd], [], timeout) if writing else select.select([fd], [], [], timeout)
    )
    return any(ready)  # pragma: no cover - platforms without poll()


def _ping(conn: psycopg.Connection[Any], timeout: float | None) -> bool:
    """One empty query sent with libpq itself, waited for up to *timeout* seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    if not conn.lock.acquire(timeout=-1 if timeout is None else timeout):
        return False  # another thread is using it
    try:
        pgconn = conn.pgconn
        pgconn.send_query(b"")
        while pgconn.flush():
            if not _wait(pgconn.socket, True, deadline):
                return False
        answered = True
        while True:
            while pgconn.is_busy():
                if not _wait(pgconn.socket, False, deadline):
                    return False
                pgconn.consume_input()
            result = pgconn.get_result()
            if result is None:
                return answered
            answered = answered and result.status == _EMPTY_QUERY
    finally:
        conn.lock.release()


async def _ready(loop: asyncio.AbstractEventLoop, fd: int, writing: bool) -> None:
    """Wait until *fd* is ready to read (or write), on *loop*."""
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    if writing:
        loop.add_writer(fd, wake)
    else:
        loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        if writing:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


async def _async_ping(conn: psycopg.AsyncConnection[Any]) -> bool:
    """:func:`_ping` for an async connection (its caller bounds it in time)."""
    loop = asyncio.get_running_loop()
    async with conn.lock:
        pgconn = conn.pgconn
        pgconn.send_query(b"")
        while pgconn.flush():
            await _ready(loop, pgconn.socket, writing=True)
        answered = True
        while True:
            while pgconn.is_busy():
                await _ready(loop, pgconn.socket, writing=False)
                pgconn.consume_input()
            result = pgconn.get_result()
            if result is None:
                return answered
            answered = answered and result.status == _EMPTY_QUERY


def alive(conn: psycopg.Connection[Any], *, timeout: float | None = _CHECK_TIMEOUT) -> bool:
    """Does *conn* answer a round trip within *timeout* seconds (None: no limit)? Never
    raises for a dead connection: False.

    One empty query, sent with libpq's own calls (``conn.pgconn``, under ``conn.lock``), the
    cheapest round trip there is: no cursor, and no ``BEGIN``, which psycopg would send
    first on a non-autocommit connection and leave open (``psycopg_pool`` switches
    autocommit on around its check for that). Inside a transaction the empty query runs in
    it, opening and ending nothing. Closed or busy: False with no round trip. After a False
    the connection may be left mid-query: destroy it, as the pools do."""
    if _refusal(conn) is not None:
        return False  # closed or busy: no round trip
    try:
        return _ping(conn, timeout)
    except (psycopg.Error, OSError):
        return False


async def async_alive(
    conn: psycopg.AsyncConnection[Any], *, timeout: float | None = _CHECK_TIMEOUT
) -> bool:
    """:func:`alive` for an async connection. On expiry the wait simply ends (psycopg's own
    calls, cancelled mid-query, would first ask the server to cancel the query, for up to
    10 s): the answer is False at *timeout*, and a cancellation from outside is not held
    up either."""
    if _refusal(conn) is not None:
        return False  # closed or busy: no round trip
    try:
        async with asyncio.timeout(timeout):
            return await _async_ping(conn)
    except (psycopg.Error, OSError):  # TimeoutError is an OSError
        return False


# -- lifecycles -----------------------------------------------------------------------------


def _options(
    conninfo: object,
    autocommit: object,
    reset_statement: str | None,
    connect_kwargs: dict[str, Any],
) -> str | None:
    """Validate the factories' shared arguments; return the reset statement."""
    _validate.text("conninfo", conninfo)
    if not isinstance(autocommit, bool):
        raise TypeError(f"autocommit must be a bool, got {autocommit!r}")
    if reset_statement is not None:
        _validate.text("reset_statement", reset_statement)
        if not reset_statement.strip():
            raise ValueError("reset_statement must be SQL or None, got an empty string")
    # A malformed conninfo should fail here, naming the parameter, not at every create.
    try:
        psycopg.conninfo.make_conninfo(
            cast(str, conninfo),
            **{k: v for k, v in connect_kwargs.items() if k not in _NOT_CONNINFO},
        )
    except psycopg.ProgrammingError as exc:
        raise ValueError(
            f"conninfo (with the connection keywords) is not a valid libpq connection string: {exc}"
        ) from exc
    return reset_statement


#: Keywords of ``psycopg.connect`` that are not libpq connection parameters.
_NOT_CONNINFO: Final = frozenset({"prepare_threshold", "context", "row_factory", "cursor_factory"})


def connections(
    conninfo: str = "",
    *,
    autocommit: bool = False,
    reset_statement: str | None = None,
    check_timeout: float | None = _CHECK_TIMEOUT,
    **connect_kwargs: Any,
) -> Lifecycle[psycopg.Connection[Any]]:
    """Connections made by ``psycopg.connect(conninfo, autocommit=..., **connect_kwargs)``,
    for the threaded pools (see the module's documentation for what each callback does).

    *autocommit*: the mode every connection is lent in (``reset`` puts it back if a user
    changed it). With ``autocommit=True`` an idle connection is returned with no round trip;
    without it, a user who leaves a transaction open (or does not commit) has it rolled back
    on return, one round trip. *reset_statement*: SQL run on every return, outside any
    transaction (``"RESET ALL"``, ``"DISCARD ALL"``...), or None. *check_timeout* (seconds,
    or None: no limit): how long the check waits for the server's answer (none: False)."""
    statement = _options(conninfo, autocommit, reset_statement, connect_kwargs)
    timeout = _validate.positive_seconds("check_timeout", check_timeout)

    def create() -> psycopg.Connection[Any]:
        return psycopg.Connection.connect(conninfo, autocommit=autocommit, **connect_kwargs)

    def reset(conn: psycopg.Connection[Any]) -> None:
        status = conn.pgconn.transaction_status
        if status == _IDLE and statement is None and _as_new(conn, autocommit):
            return  # the hot path: nothing to do, nothing sent
        refusal = _refusal(conn)
        if refusal is not None:
            raise ConnectionUnusable(f"connection not reusable: {refusal}")
        try:
            if status != _IDLE:  # INTRANS or INERROR
                conn.rollback()
                if (error := _not_idle(conn, "a rollback")) is not None:
                    raise error
            if statement is not None:
                conn.autocommit = True
                conn.execute(statement)
                if (error := _not_idle(conn, "the reset statement")) is not None:
                    raise error
            if conn.autocommit is not autocommit:
                conn.autocommit = autocommit
            if conn.read_only is not None:
                conn.read_only = None
            if conn.isolation_level is not None:
                conn.isolation_level = None
            if conn.deferrable is not None:
                conn.deferrable = None
        except psycopg.Error as exc:
            raise ConnectionUnusable(
                f"connection not reusable: cleaning it failed: {type(exc).__name__}: {exc}"
            ) from exc

    def check(conn: psycopg.Connection[Any]) -> bool:
        return alive(conn, timeout=timeout)

    def destroy(conn: psycopg.Connection[Any]) -> None:
        conn.close()  # does nothing to a connection already closed

    return Lifecycle(create, reset=reset, check=check, destroy=destroy)


def async_connections(
    conninfo: str = "",
    *,
    autocommit: bool = False,
    reset_statement: str | None = None,
    check_timeout: float | None = _CHECK_TIMEOUT,
    **connect_kwargs: Any,
) -> Lifecycle[psycopg.AsyncConnection[Any]]:
    """Connections made by ``psycopg.AsyncConnection.connect(...)``, with ``async def``
    callbacks, for the asyncio pools; the arguments are those of :func:`connections`.

    *check_timeout* (seconds, or None for no limit) bounds the check (no answer: ``False``)
    and, here, also the round trips of ``reset`` (no answer: :class:`ConnectionUnusable`;
    psycopg, interrupted, may first spend up to 10 s trying to cancel the query), since a
    partitioned network would make them wait for minutes."""
    statement = _options(conninfo, autocommit, reset_statement, connect_kwargs)
    timeout = _validate.positive_seconds("check_timeout", check_timeout)

    async def create() -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(
            conninfo, autocommit=autocommit, **connect_kwargs
        )

    async def clean(conn: psycopg.AsyncConnection[Any], status: int) -> None:
        if status != _IDLE:  # INTRANS or INERROR
            await conn.rollback()
            if (error := _not_idle(conn, "a rollback")) is not None:
                raise error
        if statement is not None:
            await conn.set_autocommit(True)
            await conn.execute(statement)
            if (error := _not_idle(conn, "the reset statement")) is not None:
                raise error
        if conn.autocommit is not autocommit:
            await conn.set_autocommit(autocommit)
        if conn.read_only is not None:
            await conn.set_read_only(None)
        if conn.isolation_level is not None:
            await conn.set_isolation_level(None)
        if conn.deferrable is not None:
            await conn.set_deferrable(None)

    async def reset(conn: psycopg.AsyncConnection[Any]) -> None:
        status = conn.pgconn.transaction_status
        if status == _IDLE and statement is None and _as_new(conn, autocommit):
            return  # the hot path: nothing to do, nothing sent
        refusal = _refusal(conn)
        if refusal is not None:
            raise ConnectionUnusable(f"connection not reusable: {refusal}")
        try:
            async with asyncio.timeout(timeout):
                await clean(conn, status)
        except psycopg.Error as exc:
            raise ConnectionUnusable(
                f"connection not reusable: cleaning it failed: {type(exc).__name__}: {exc}"
            ) from exc
        except TimeoutError as exc:
            raise ConnectionUnusable(
                f"connection not reusable: the server did not answer within {timeout} s"
            ) from exc

    async def check(conn: psycopg.AsyncConnection[Any]) -> bool:
        return await async_alive(conn, timeout=timeout)

    async def destroy(conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.close()  # does nothing to a connection already closed

    # Lifecycle[T] types create as returning T; ours returns an awaitable of it, which the
    # asyncio pools await. The cast states the resource type the pools will hand out.
    made: Callable[[], Awaitable[psycopg.AsyncConnection[Any]]] = create
    return cast(
        "Lifecycle[psycopg.AsyncConnection[Any]]",
        Lifecycle(made, reset=reset, check=check, destroy=destroy),
    )
