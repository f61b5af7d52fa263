"""Pooled asyncpg connections that are never lent *not quite clean*, for the asyncio pools.

``connections(dsn, **connect_kwargs)`` returns a :class:`~respool.Lifecycle` of
``asyncpg.Connection`` with ``async def`` callbacks, for ``AsyncFixedPool``,
``AsyncElasticPool`` and ``AsyncWorkerPool`` (the threaded pools refuse it). Each callback,
and why:

* ``create`` connects: ``asyncpg.connect(dsn, **connect_kwargs)``.
* ``reset`` runs on every return, so it is the hot path: an idle connection outside a
  transaction is returned with **no round trip** (unless ``full_reset`` or a
  ``reset_statement`` asks for one). One returned inside a transaction, failed or not, is
  rolled back (``ROLLBACK``), or the next user would inherit it, its locks and its
  uncommitted writes; a transaction begun with ``conn.transaction()`` and never ended is
  forgotten too, as asyncpg's own ``Connection.reset()`` does, or the next user's
  ``conn.transaction()`` would take itself for a nested one. A connection that cannot be
  made clean raises :class:`ConnectionUnusable`, so the pool destroys it instead of lending
  it: closed, an operation still in progress on it (a query cancelled mid-flight whose
  cancellation the server has not yet confirmed, or a ``fetch``/``execute`` with arguments
  still running in another task), or a rollback that fails. (A plain ``execute(sql)``
  without arguments still running in another task cannot be seen without a round trip:
  outside a transaction such a connection is lent again, and asyncpg refuses the next
  user's query with ``InterfaceError: another operation is in progress`` rather than mix
  up replies; inside one, its rollback fails that way and it is destroyed.)
* **What the default skips.** asyncpg's own pool runs ``Connection.reset()`` on every
  release: a rollback if needed, then ``pg_advisory_unlock_all()``, ``CLOSE ALL``,
  ``UNLISTEN *`` and ``RESET ALL`` (as the server supports them), one round trip each
  time, and it drops the listeners added with ``add_listener``. Most code changes none of
  that session state, so by default it is skipped and the return costs nothing.
  ``full_reset=True`` runs ``Connection.reset()`` on every return; ``reset_statement`` runs
  your own SQL instead (``"RESET ALL"``, ``"DISCARD ALL"``...), after any rollback.
* ``check`` is :func:`alive`: ``False`` at once for a closed or busy connection, otherwise
  one ``SELECT`` with no target list (a round trip returning one empty row: the cheapest
  query asyncpg runs, since an empty one trips it up). Before every lend it doubles the cost of a
  short query, so pair it with ``check_after=S``: only a connection idle ``S`` seconds or
  more is checked, exactly one a server, a firewall or a fail-over may have dropped
  meanwhile. ``keepalive=S`` checks idle ones in the background instead.
* ``destroy`` closes gracefully (``close(timeout=close_timeout)``), and if that fails or
  times out, terminates the connection (drops the socket at once): a dead server must not
  hang a destroy.

**Dead networks.** A round trip behind a partition waits for TCP to give up: many minutes.
``check_timeout`` (5 s by default) bounds the check (no answer: ``False``) and each round
trip of ``reset`` (no answer: ``ConnectionUnusable``). asyncpg's own ``timeout`` (connect)
and ``command_timeout`` keywords bound ``create`` and your queries.

Example (a real server is needed)::

    import asyncio

    import respool
    from respool.contrib import asyncpg as apg


    async def main():
        lifecycle = apg.connections("postgresql://postgres@127.0.0.1/test")
        async with respool.AsyncFixedPool(lifecycle, size=4, check_after=30.0) as pool:
            async with pool.acquire() as conn:
                await conn.execute("BEGIN")
                await conn.execute("CREATE TEMP TABLE t (x int)")
                # no COMMIT: reset rolls back, the next user sees no table t
            async with pool.acquire() as conn:
                print(await conn.fetchval("SELECT 6 * 7"))


    asyncio.run(main())

asyncpg has no type information: ``asyncpg.Connection`` is ``Any`` to a type checker.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Final

from respool.contrib import _missing

try:
    import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
except ImportError as exc:  # pragma: no cover - the extra is installed for the tests
    raise _missing("asyncpg", "asyncpg", exc) from exc

from respool import _validate
from respool.lifecycle import Lifecycle

__all__ = ["ConnectionUnusable", "alive", "connections"]

#: How long a check (and each of reset's round trips) may wait for the server.
_CHECK_TIMEOUT: Final = 5.0
#: How long a destroy waits for a graceful close before dropping the connection.
_CLOSE_TIMEOUT: Final = 5.0

#: What a round trip on a dead, closed or busy connection raises.
_FAILURES: Final = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


class ConnectionUnusable(Exception):
    """A connection came back that must not be lent again; the message says why.

    ``reset`` raises it, and the pool destroys the connection rather than lend it. (This
    module's own class: ``respool.contrib.psycopg`` has its twin, for its driver.)"""


def _refusal(conn: Any) -> str | None:
    """Why *conn* cannot be reset and lent again, seen without a round trip; None if it can.

    asyncpg raises ``InterfaceError: another operation is in progress`` from the protocol's
    own record of a pending reply, which Python cannot read; what it can read are the
    protocol's cancellation state (``_is_cancelling()``, what asyncpg's own pool consults on
    release) and the lock that ``fetch*``, ``executemany`` and ``execute`` with arguments
    hold while they run. Both are read defensively, should asyncpg rename them."""
    if conn.is_closed():
        return "it is closed"
    protocol = getattr(conn, "_protocol", None)
    is_cancelling = getattr(protocol, "_is_cancelling", None)
    if is_cancelling is not None and is_cancelling():
        return "a query cancelled on it is still being cancelled on the server"
    section = getattr(conn, "_stmt_exclusive_section", None)
    if getattr(section, "_acquired", False):
        return "another operation is in progress on it"
    return None


async def alive(conn: Any, *, timeout: float | None = _CHECK_TIMEOUT) -> bool:
    """Does *conn* answer a round trip within *timeout* seconds (None: no limit)? Never
    raises for a dead connection: False.

    Closed, or busy with another operation: False with no round trip. Inside a failed
    transaction it is False too (the server refuses every query there until a rollback,
    which ``reset`` does before the pool ever checks)."""
    if _refusal(conn) is not None:
        return False
    try:
        async with asyncio.timeout(timeout):
            await conn.execute("SELECT")
    except (*_FAILURES, TimeoutError):
        return False
    return True


def connections(
    dsn: str | None = None,
    *,
    reset_statement: str | None = None,
    full_reset: bool = False,
    check_timeout: float | None = _CHECK_TIMEOUT,
    close_timeout: float = _CLOSE_TIMEOUT,
    **connect_kwargs: Any,
) -> Lifecycle[asyncpg.Connection]:
    """Connections made by ``asyncpg.connect(dsn, **connect_kwargs)`` (see the module's
    documentation for what each callback does and what the default reset skips).

    *reset_statement*: SQL run on every return, after any rollback, or None.
    *full_reset*: run asyncpg's ``Connection.reset()`` on every return, as asyncpg's own pool
    does (one round trip each time). *check_timeout* (seconds, or None: no limit): bounds the
    check and each round trip of reset. *close_timeout* (seconds): how long destroy waits
    for a graceful close before terminating the connection."""
    if dsn is not None:
        _validate.text("dsn", dsn)
    if reset_statement is not None:
        _validate.text("reset_statement", reset_statement)
        if not reset_statement.strip():
            raise ValueError("reset_statement must be SQL or None, got an empty string")
    if not isinstance(full_reset, bool):
        raise TypeError(f"full_reset must be a bool, got {full_reset!r}")
    timeout = _validate.positive_seconds("check_timeout", check_timeout)
    if close_timeout is None:
        raise TypeError("close_timeout must be a number of seconds > 0, got None")
    closing = _validate.positive_seconds("close_timeout", close_timeout)

    async def create() -> Any:
        return await asyncpg.connect(dsn, **connect_kwargs)

    async def clean(conn: Any) -> None:
        if conn.is_in_transaction() or getattr(conn, "_top_xact", None) is not None:
            # Forget a conn.transaction() left open (asyncpg's Connection.reset() does the
            # same), so that the next user's conn.transaction() is a top-level one.
            with contextlib.suppress(AttributeError):
                conn._top_xact = None
            await conn.execute("ROLLBACK")
        if full_reset:
            await conn.reset()
        if reset_statement is not None:
            await conn.execute(reset_statement)
        if conn.is_in_transaction():
            raise ConnectionUnusable("connection not reusable: still in a transaction after reset")

    async def reset(conn: Any) -> None:
        refusal = _refusal(conn)
        if refusal is not None:
            raise ConnectionUnusable(f"connection not reusable: {refusal}")
        if not (
            full_reset
            or reset_statement is not None
            or conn.is_in_transaction()
            or getattr(conn, "_top_xact", None) is not None
        ):
            return  # the hot path: nothing to do, nothing sent
        try:
            async with asyncio.timeout(timeout):
                await clean(conn)
        except TimeoutError as exc:  # first: it is an OSError too
            raise ConnectionUnusable(
                f"connection not reusable: the server did not answer within {timeout} s"
            ) from exc
        except _FAILURES as exc:
            raise ConnectionUnusable(
                f"connection not reusable: cleaning it failed: {type(exc).__name__}: {exc}"
            ) from exc

    async def check(conn: Any) -> bool:
        return await alive(conn, timeout=timeout)

    async def destroy(conn: Any) -> None:
        if conn.is_closed():
            conn.terminate()  # finishes asyncpg's cleanup; sends nothing
            return
        try:
            await conn.close(timeout=closing)
        except Exception:
            # Timed out or failed: the server is gone or not answering. Drop the socket;
            # the connection is no more, which is all a destroy has to achieve.
            conn.terminate()
        except BaseException:
            conn.terminate()  # cancelled: still leave nothing open behind
            raise

    # Lifecycle[T] types create as returning T; ours returns an awaitable of it, which the
    # asyncio pools await (asyncpg being untyped, the resource type is Any either way).
    made: Callable[[], Awaitable[Any]] = create
    return Lifecycle(made, reset=reset, check=check, destroy=destroy)
