"""Pooled ``sqlite3`` connections: shared through a free list, or bound to a worker's thread.

Python's ``sqlite3`` guards every connection with ``check_same_thread``: by default a
connection may only be used by the thread that opened it. A pool has to take a side.

* :func:`connections` is for the free lists (``FixedPool``, ``ElasticPool``), which lend a
  resource to whichever thread asks. Its connections are opened with
  ``check_same_thread=False``. That is safe here because the pool lends a connection to one
  holder at a time: ``sqlite3.threadsafety`` says how the SQLite library was built, and both
  values a thread-capable build reports allow it. ``1`` (SQLite's *multi-thread* mode) means a
  connection may move between threads as long as two never use it at once, which is exactly
  the pool's promise; ``3`` (*serialized*, the usual build) even allows concurrent use. ``0``
  (*single-thread*) is a build without mutexes, where no connection may be touched from two
  threads at all: :func:`connections` refuses it.
* :func:`thread_bound` is for ``WorkerPool``, whose worker thread creates, uses, resets and
  destroys its own connection (DESIGN.md section 5), so sqlite3's guard stays on and costs
  nothing. Lent by a free list instead, such a connection ends up in the wrong thread sooner
  or later (a free list even makes replacements in its background thread, where nobody can use
  them): its methods then raise :class:`WrongThread`, which says what happened and what to use
  instead, rather than sqlite3's bare "SQLite objects created in a thread can only be used in
  that same thread".

Both lifecycles ``reset`` a returned connection by rolling back the transaction its holder
left open (the next holder must not inherit, and then commit, someone else's half-done work),
then running the optional *reset_statement*. Their ``check`` (:func:`alive`) asks only whether
the connection is still open: SQLite runs in this process, so nothing outside it can break an
idle connection the way a server drops a socket, and a ``SELECT 1`` reads no page of the
database either; it would test nothing more, at twenty times the cost. ``destroy`` closes.

``":memory:"`` gives *every connection its own, private database*: a table created through
one pooled connection does not exist on the others, and it lives exactly as long as that
connection. For one in-memory database shared by the whole pool, open a named shared-cache
database instead, ``connections("file:NAME?mode=memory&cache=shared", uri=True)``: it lives
while at least one connection to it is open (so as long as the pool keeps one), and SQLite
then locks it table by table (a conflict raises ``sqlite3.OperationalError: database table is
locked`` at once, without waiting for *timeout*).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, Final, NoReturn

from respool import _validate
from respool.lifecycle import Lifecycle

__all__ = ["ThreadBoundConnection", "WrongThread", "alive", "connections", "thread_bound"]

_HINT: Final = (
    "a free list (FixedPool, ElasticPool) lends a resource to whichever thread asks, so use"
    " respool.contrib.sqlite3.connections() with FixedPool or ElasticPool, or keep"
    " respool.contrib.sqlite3.thread_bound() connections in a WorkerPool, whose worker thread"
    " opens, uses and closes its own"
)


class WrongThread(sqlite3.ProgrammingError):
    """A connection bound to its thread was used from another one: it was lent across
    threads (by a free list, or by hand). A ``sqlite3.ProgrammingError``, as sqlite3's own
    complaint is, so code that catches that still does."""


def _database(database: object) -> str | bytes | os.PathLike[Any]:
    if not isinstance(database, str | bytes | os.PathLike):
        raise TypeError(f"database must be a str, bytes or os.PathLike, got {database!r}")
    return database


def _statement(reset_statement: object) -> str | None:
    if reset_statement is None:
        return None
    _validate.text("reset_statement", reset_statement)
    assert isinstance(reset_statement, str)
    if not reset_statement.strip():
        raise ValueError("reset_statement must be SQL or None, got an empty string")
    return reset_statement


def alive(conn: sqlite3.Connection) -> bool:
    """Is *conn* still open? Never touches the database, never raises, from any thread."""
    try:
        conn.in_transaction  # noqa: B018 - raises ProgrammingError once closed; no thread check
    except sqlite3.ProgrammingError:
        return False
    return True


def _resetter(statement: str | None) -> Callable[[sqlite3.Connection], None]:
    """``reset``: roll back what the holder left open, then run *statement* (if any).

    The rollback only runs when a transaction is open, so a connection returned clean costs
    one attribute read.
    """
    if statement is None:

        def reset(conn: sqlite3.Connection) -> None:
            if conn.in_transaction:
                conn.rollback()

        return reset

    def reset_and_run(conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            conn.rollback()
        conn.executescript(statement)

    return reset_and_run


def _close(conn: sqlite3.Connection) -> None:
    conn.close()


def connections(
    database: str | bytes | os.PathLike[Any],
    *,
    reset_statement: str | None = None,
    **connect_kwargs: Any,
) -> Lifecycle[sqlite3.Connection]:
    """Connections to *database* that any thread may use, one holder at a time: for
    ``FixedPool`` and ``ElasticPool``.

    *reset_statement*: SQL run (as a script: several statements are allowed) on every return,
    after the rollback, to put back what a holder may have changed for its session (``PRAGMA``
    settings, ``TEMP`` tables). *connect_kwargs* go to ``sqlite3.connect`` (``timeout``,
    ``isolation_level``, ``uri``, ``factory``...), except ``check_same_thread``, which is
    ``False`` by design. A holder must not keep a cursor after its lease ends.
    """
    _database(database)
    statement = _statement(reset_statement)
    if connect_kwargs.get("check_same_thread", False) is not False:
        raise ValueError(
            "connections() shares each connection among threads (one at a time), so it opens"
            " them with check_same_thread=False; for connections bound to their thread, use"
            " respool.contrib.sqlite3.thread_bound() with a WorkerPool"
        )
    if sqlite3.threadsafety == 0:
        raise RuntimeError(
            "this SQLite library was built single-threaded (sqlite3.threadsafety == 0): no"
            " connection may be used from two threads, so a free list cannot share them; use"
            " respool.contrib.sqlite3.thread_bound() with a WorkerPool of one worker"
        )
    kwargs = {**connect_kwargs, "check_same_thread": False}

    def connect() -> sqlite3.Connection:
        conn: sqlite3.Connection = sqlite3.connect(database, **kwargs)
        return conn

    return Lifecycle(connect, reset=_resetter(statement), check=alive, destroy=_close)


class ThreadBoundConnection(sqlite3.Connection):
    """A ``check_same_thread`` connection whose misuse from another thread raises
    :class:`WrongThread` with an explanation, instead of sqlite3's bare complaint.

    Only the error path does any work: each method that sqlite3 guards calls the original
    and translates its ``ProgrammingError`` when the caller is not the owning thread (about
    70 ns on ``execute``, a call to a Python method).
    """

    __slots__ = ("owner_ident", "owner_name")

    owner_ident: int
    owner_name: str

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        me = threading.current_thread()
        self.owner_ident = threading.get_ident()
        self.owner_name = me.name

    def _wrong_thread(self, exc: sqlite3.ProgrammingError) -> NoReturn:
        """Re-raise *exc*, as :class:`WrongThread` if it is sqlite3's complaint that the caller
        is not the owning thread."""
        if threading.get_ident() == self.owner_ident or "thread" not in str(exc):
            raise exc
        here = threading.current_thread().name
        raise WrongThread(
            f"this sqlite3 connection is bound to the thread that opened it ({self.owner_name!r})"
            f" and was used from another ({here!r}): {_HINT}"
        ) from exc

    # The hot methods spell out their signatures (a *args call costs twice as much).
    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        try:
            return _execute(self, sql, parameters)
        except sqlite3.ProgrammingError as exc:
            self._wrong_thread(exc)

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        try:
            return _executemany(self, sql, parameters)
        except sqlite3.ProgrammingError as exc:
            self._wrong_thread(exc)

    def executescript(self, sql_script: str, /) -> sqlite3.Cursor:
        try:
            return _executescript(self, sql_script)
        except sqlite3.ProgrammingError as exc:
            self._wrong_thread(exc)

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return _cursor(self, *args, **kwargs)
        except sqlite3.ProgrammingError as exc:
            self._wrong_thread(exc)

    def commit(self) -> None:
        try:
            _commit(self)
        except sqlite3.ProgrammingError as exc:
            self._wrong_thread(exc)

    def rollback(self) -> None:
        try:
            _rollback(self)
        except sqlite3.ProgrammingError as exc:
            self._wrong_thread(exc)

    def close(self) -> None:
        try:
            _close_connection(self)
        except sqlite3.ProgrammingError as exc:
            self._wrong_thread(exc)

    def __exit__(self, *exc_info: Any) -> Any:  # ``with conn:`` commits or rolls back
        try:
            return _exit(self, *exc_info)
        except sqlite3.ProgrammingError as exc:
            self._wrong_thread(exc)


_execute: Final = sqlite3.Connection.execute
_executemany: Final = sqlite3.Connection.executemany
_executescript: Final = sqlite3.Connection.executescript
_cursor: Final = sqlite3.Connection.cursor
_commit: Final = sqlite3.Connection.commit
_rollback: Final = sqlite3.Connection.rollback
_close_connection: Final = sqlite3.Connection.close
_exit: Final = sqlite3.Connection.__exit__


def _guard(name: str) -> None:
    """Give :class:`ThreadBoundConnection` a translating *name* (the less common methods)."""
    original = getattr(sqlite3.Connection, name)

    def method(self: ThreadBoundConnection, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(self, *args, **kwargs)
        except sqlite3.ProgrammingError as exc:
            self._wrong_thread(exc)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = original.__doc__
    setattr(ThreadBoundConnection, name, method)


for _name in (
    "backup",
    "blobopen",
    "create_aggregate",
    "create_collation",
    "create_function",
    "create_window_function",
    "deserialize",
    "getlimit",
    "iterdump",
    "serialize",
    "set_authorizer",
    "set_progress_handler",
    "set_trace_callback",
    "setlimit",
):
    if hasattr(sqlite3.Connection, _name):  # some arrived in 3.11, more may come
        _guard(_name)
del _name


def thread_bound(
    database: str | bytes | os.PathLike[Any],
    *,
    reset_statement: str | None = None,
    **connect_kwargs: Any,
) -> Lifecycle[sqlite3.Connection]:
    """Connections to *database* bound to the thread that opens them: for ``WorkerPool``.

    sqlite3's ``check_same_thread`` stays on; the connections are
    :class:`ThreadBoundConnection` objects, so using one from another thread raises
    :class:`WrongThread` saying why. *reset_statement* and *connect_kwargs* as in
    :func:`connections`; a ``factory`` must subclass :class:`ThreadBoundConnection`.

    The lifecycle's ``check`` never runs SQL, so a free list that checks a connection from
    another thread sees it alive rather than failing the check: a failed check would destroy
    the connection and let the caller make its own, silently churning connections instead of
    telling anyone. The misuse reaches the caller as :class:`WrongThread` on first use.
    """
    _database(database)
    statement = _statement(reset_statement)
    if connect_kwargs.get("check_same_thread", True) is not True:
        raise ValueError(
            "thread_bound() keeps each connection in the thread that opened it, so it needs"
            " check_same_thread=True; for connections that any thread may use, one at a time,"
            " use respool.contrib.sqlite3.connections() with FixedPool or ElasticPool"
        )
    factory = connect_kwargs.get("factory", ThreadBoundConnection)
    if not (isinstance(factory, type) and issubclass(factory, ThreadBoundConnection)):
        raise TypeError(
            "thread_bound()'s factory must be a subclass of"
            f" respool.contrib.sqlite3.ThreadBoundConnection, got {factory!r}"
        )
    kwargs = {**connect_kwargs, "check_same_thread": True, "factory": factory}

    def connect() -> sqlite3.Connection:
        conn: sqlite3.Connection = sqlite3.connect(database, **kwargs)
        return conn

    return Lifecycle(connect, reset=_resetter(statement), check=alive, destroy=_close)
