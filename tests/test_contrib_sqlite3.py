"""respool.contrib.sqlite3: connections shared by the free lists one holder at a time, and
thread-bound ones for WorkerPool whose misuse across threads raises a clear WrongThread."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import respool
from respool.contrib import sqlite3 as pooled

pytestmark = pytest.mark.timeout(60)


def in_thread(fn: Callable[[], Any]) -> Any:
    """Run *fn* in a new thread; return its result or raise its exception here."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = fn()
        except BaseException as exc:  # handed to the test's thread
            box["error"] = exc

    thread = threading.Thread(target=run, name="other-thread")
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    if "error" in box:
        raise box["error"]
    return box.get("result")


def make_table(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (v INTEGER)")
    conn.close()


def rows(path: Path) -> list[int]:
    """The committed rows, as a fresh connection sees them."""
    conn = sqlite3.connect(path, timeout=0.5)
    try:
        return [v for (v,) in conn.execute("SELECT v FROM t ORDER BY v")]
    finally:
        conn.close()


# --- connections(): free lists ---------------------------------------------------------


@pytest.mark.parametrize("kind", ["fixed", "elastic"])
def test_connections_move_between_threads_in_a_free_list(kind: str, tmp_path: Path) -> None:
    """One connection lent to two threads in turn works in both (check_same_thread off)."""
    db = tmp_path / "shared.db"
    make_table(db)
    life = pooled.connections(db)
    pool: respool.FixedPool[sqlite3.Connection] | respool.ElasticPool[sqlite3.Connection]
    if kind == "fixed":
        pool = respool.FixedPool(life, size=1)
    else:
        pool = respool.ElasticPool(life, max_size=1, max_idle=1)
    with pool:

        def write(value: int) -> int:
            with pool.acquire() as conn:
                conn.execute("INSERT INTO t VALUES (?)", (value,))
                conn.commit()
                return id(conn)

        first = write(1)
        second = in_thread(lambda: write(2))
        assert first == second  # the same connection, used from two threads
        assert rows(db) == [1, 2]
        assert pool.stats().created == 1


def test_reset_rolls_back_what_a_holder_left_uncommitted(tmp_path: Path) -> None:
    """The next holder sees no uncommitted write, and the write lock is released."""
    db = tmp_path / "rollback.db"
    make_table(db)
    with respool.FixedPool(pooled.connections(db), size=1) as pool:
        with pool.acquire() as conn:
            conn.execute("INSERT INTO t VALUES (42)")  # opens a transaction, never committed
            assert conn.in_transaction
        assert rows(db) == []  # a fresh connection can read: the lock is gone
        with pool.acquire() as again:
            assert again is conn
            assert not again.in_transaction
            assert again.execute("SELECT count(*) FROM t").fetchone() == (0,)
        writer = sqlite3.connect(db, timeout=0.5)  # and write: no transaction holds the file
        with writer:
            writer.execute("INSERT INTO t VALUES (7)")
        writer.close()
        assert rows(db) == [7]
        assert pool.stats().reset_errors == 0


def test_reset_statement_runs_on_every_return(tmp_path: Path) -> None:
    """A reset_statement undoes session state (here a TEMP table) for the next holder."""
    life = pooled.connections(
        tmp_path / "temp.db", reset_statement="DROP TABLE IF EXISTS temp.scratch;"
    )
    with respool.FixedPool(life, size=1) as pool:
        with pool.acquire() as conn:
            conn.execute("CREATE TEMP TABLE scratch (v)")
        with pool.acquire() as conn:
            found = conn.execute("SELECT name FROM sqlite_temp_master WHERE name = 'scratch'")
            assert found.fetchall() == []


def test_a_connection_closed_by_its_holder_is_replaced(tmp_path: Path) -> None:
    """alive() says no to a closed connection; the pool destroys it and lends a new one."""
    with respool.FixedPool(pooled.connections(tmp_path / "x.db"), size=1) as pool:
        with pool.acquire() as conn:
            assert pooled.alive(conn)
            conn.close()
            assert not pooled.alive(conn)
        with pool.acquire() as fresh:
            assert fresh is not conn
            assert fresh.execute("SELECT 1").fetchone() == (1,)
        stats = pool.stats()
        assert stats.created == 2
        assert stats.destroyed == 1


def test_elastic_pool_gives_concurrent_holders_their_own_connections(tmp_path: Path) -> None:
    """Four threads holding at once get four connections, each writing and committing."""
    db = tmp_path / "elastic.db"
    make_table(db)
    together = threading.Barrier(4, timeout=10)
    held: list[int] = []
    lock = threading.Lock()
    with respool.ElasticPool(pooled.connections(db, timeout=10.0), max_size=4) as pool:

        def work(value: int) -> None:
            with pool.acquire() as conn:
                with lock:
                    held.append(id(conn))
                together.wait()  # all four hold a connection now
                with conn:
                    conn.execute("INSERT INTO t VALUES (?)", (value,))

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert len(set(held)) == 4
        assert rows(db) == [0, 1, 2, 3]


def test_memory_database_is_private_to_each_connection() -> None:
    """ ":memory:" gives each pooled connection its own database, as documented."""
    with respool.FixedPool(pooled.connections(":memory:"), size=2) as pool:
        with pool.acquire() as a, pool.acquire() as b:
            a.execute("CREATE TABLE only_here (v)")
            a.execute("INSERT INTO only_here VALUES (1)")
            a.commit()
            with pytest.raises(sqlite3.OperationalError, match="no such table"):
                b.execute("SELECT * FROM only_here")
        with pool.acquire() as again:  # LIFO: a came back last, with its private table
            assert again is a
            assert again.execute("SELECT v FROM only_here").fetchall() == [(1,)]


def test_shared_cache_memory_database_is_one_for_the_pool() -> None:
    """The documented alternative: a named shared-cache memory database seen by all."""
    name = f"respool-test-{uuid.uuid4().hex}"
    life = pooled.connections(f"file:{name}?mode=memory&cache=shared", uri=True)
    with respool.FixedPool(life, size=2) as pool, pool.acquire() as a, pool.acquire() as b:
        with a:
            a.execute("CREATE TABLE everywhere (v)")
            a.execute("INSERT INTO everywhere VALUES (1)")
        assert b.execute("SELECT v FROM everywhere").fetchall() == [(1,)]
    # Every connection closed with the pool: the database went with them.
    probe = sqlite3.connect(f"file:{name}?mode=memory&cache=shared", uri=True)
    try:
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            probe.execute("SELECT * FROM everywhere")
    finally:
        probe.close()


# --- thread_bound(): WorkerPool ---------------------------------------------------------


def test_worker_pool_gives_each_of_four_workers_its_own_bound_connection(tmp_path: Path) -> None:
    """Four workers each open, use and close their own connection, in their own thread."""
    db = tmp_path / "workers.db"
    make_table(db)
    together = threading.Barrier(4, timeout=10)
    seen: list[sqlite3.Connection] = []
    lock = threading.Lock()

    def task(conn: sqlite3.Connection, value: int) -> tuple[int, int, int]:
        assert isinstance(conn, pooled.ThreadBoundConnection)
        with lock:
            seen.append(conn)
        together.wait()  # four tasks at once: four distinct workers
        conn.execute("INSERT INTO t VALUES (?)", (value,))  # left open: reset rolls it back
        return threading.get_ident(), conn.owner_ident, id(conn)

    with respool.WorkerPool(pooled.thread_bound(db, timeout=10.0), workers=4) as wp:
        results = list(wp.map(task, range(4)))
        for thread_ident, owner, _ in results:
            assert thread_ident == owner  # used only in the thread that opened it
        assert len({conn_id for _, _, conn_id in results}) == 4
        assert rows(db) == []  # every task's uncommitted insert was rolled back
        stats = wp.stats()
        assert stats.replaced == 0
    assert not any(pooled.alive(conn) for conn in seen)  # closed by their own workers


def test_thread_bound_in_a_fixed_pool_used_from_two_threads_raises_wrong_thread(
    tmp_path: Path,
) -> None:
    """The second thread gets WrongThread saying why and what to use; nothing churns."""
    db = tmp_path / "misuse.db"
    make_table(db)
    with respool.FixedPool(pooled.thread_bound(db), size=1) as pool:
        with pool.acquire() as conn:  # the thread that made it: fine
            conn.execute("SELECT count(*) FROM t")

        def elsewhere() -> None:
            with pool.acquire() as conn:
                conn.execute("SELECT count(*) FROM t")

        with pytest.raises(pooled.WrongThread) as caught:
            in_thread(elsewhere)
        message = str(caught.value)
        assert "bound to the thread that opened it" in message
        assert "free list" in message
        assert "connections()" in message and "WorkerPool" in message
        assert isinstance(caught.value, sqlite3.ProgrammingError)
        assert isinstance(caught.value.__cause__, sqlite3.ProgrammingError)
        stats = pool.stats()  # the check ran in the other thread and did not fail
        assert (stats.created, stats.check_failures, stats.reset_errors) == (1, 0, 0)
        with pool.acquire() as again:  # still the same, still working at home
            assert again is conn
            assert again.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize(
    "use",
    [
        lambda c: c.execute("SELECT 1"),
        lambda c: c.executemany("SELECT ?", [(1,)]),
        lambda c: c.executescript("SELECT 1;"),
        lambda c: c.cursor(),
        lambda c: c.commit(),
        lambda c: c.rollback(),
        lambda c: c.create_function("f", 0, lambda: 1),
        lambda c: c.close(),
    ],
    ids=[
        "execute",
        "executemany",
        "executescript",
        "cursor",
        "commit",
        "rollback",
        "function",
        "close",
    ],
)
def test_every_guarded_method_translates_the_wrong_thread_error(
    use: Callable[[sqlite3.Connection], object],
) -> None:
    """Each method sqlite3 guards raises WrongThread from a foreign thread."""
    life = pooled.thread_bound(":memory:")
    conn = life.create()
    try:
        with pytest.raises(pooled.WrongThread, match="bound to the thread"):
            in_thread(lambda: use(conn))
    finally:
        conn.close()


def test_with_block_commit_from_another_thread_raises_wrong_thread() -> None:
    """``with conn:`` ends by committing; from a foreign thread that is WrongThread too."""
    conn = pooled.thread_bound(":memory:").create()

    def commit_block() -> None:
        with conn:
            pass

    try:
        with pytest.raises(pooled.WrongThread):
            in_thread(commit_block)
    finally:
        conn.close()


def test_the_owner_thread_gets_sqlite3_errors_unchanged() -> None:
    """Only the wrong-thread complaint is translated: other errors pass through as they are."""
    conn = pooled.thread_bound(":memory:").create()
    try:
        with pytest.raises(sqlite3.ProgrammingError) as caught:
            conn.execute("SELECT ?", (1, 2))  # wrong number of bindings
        assert not isinstance(caught.value, pooled.WrongThread)
        with pytest.raises(sqlite3.OperationalError):
            conn.execute("SELEC 1")
    finally:
        conn.close()
    with pytest.raises(sqlite3.ProgrammingError) as closed:
        conn.execute("SELECT 1")
    assert not isinstance(closed.value, pooled.WrongThread)


def test_alive_answers_from_any_thread_without_raising() -> None:
    """The check works (and never raises) from a foreign thread, so it cannot churn."""
    conn = pooled.thread_bound(":memory:").create()
    assert in_thread(lambda: pooled.alive(conn)) is True
    conn.close()
    assert in_thread(lambda: pooled.alive(conn)) is False


# --- bad input ---------------------------------------------------------------------------


def test_connections_refuses_check_same_thread_true() -> None:
    """check_same_thread=True to connections() points to thread_bound() and WorkerPool."""
    with pytest.raises(ValueError, match=r"thread_bound\(\) with a WorkerPool"):
        pooled.connections(":memory:", check_same_thread=True)
    pooled.connections(":memory:", check_same_thread=False)  # redundant but fine


def test_thread_bound_refuses_check_same_thread_false_and_foreign_factories() -> None:
    """thread_bound() needs the guard on, and a factory that translates its error."""
    with pytest.raises(ValueError, match=r"connections\(\) with FixedPool or ElasticPool"):
        pooled.thread_bound(":memory:", check_same_thread=False)
    with pytest.raises(TypeError, match="ThreadBoundConnection"):
        pooled.thread_bound(":memory:", factory=sqlite3.Connection)

    class Mine(pooled.ThreadBoundConnection):
        pass

    conn = pooled.thread_bound(":memory:", factory=Mine).create()
    assert type(conn) is Mine
    conn.close()


@pytest.mark.parametrize("make", [pooled.connections, pooled.thread_bound])
def test_bad_arguments_are_refused_when_the_lifecycle_is_made(
    make: Callable[..., respool.Lifecycle[sqlite3.Connection]],
) -> None:
    """A database that is no path, and an empty or non-text reset_statement."""
    with pytest.raises(TypeError, match="database must be"):
        make(42)
    with pytest.raises(ValueError, match="reset_statement"):
        make(":memory:", reset_statement="  ")
    with pytest.raises(TypeError, match="reset_statement"):
        make(":memory:", reset_statement=b"SELECT 1")


def test_an_unknown_connect_keyword_fails_the_pool_at_construction() -> None:
    """sqlite3.connect's own TypeError reaches whoever builds the pool (FixedPool creates)."""
    with pytest.raises(TypeError):
        respool.FixedPool(pooled.connections(":memory:", no_such_option=1), size=1)


def test_a_single_threaded_sqlite_build_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """threadsafety 0 means no connection may cross threads: connections() says so."""
    monkeypatch.setattr(sqlite3, "threadsafety", 0)
    with pytest.raises(RuntimeError, match="single-threaded"):
        pooled.connections(":memory:")


def test_importing_respool_does_not_import_the_contrib_module() -> None:
    """The core never imports contrib modules (a fresh interpreter proves it)."""
    import subprocess
    import sys

    code = "import respool, sys; print('respool.contrib.sqlite3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
