"""The tour's free-list sections: ``FixedPool`` and ``ElasticPool`` on files, SQLite and TCP.

Each section times one small operation done with a brand-new resource every time against the
same operation done with a pooled one, in the same run, on a resource that needs no server of
its own: temporary files, SQLite connections, and TCP connections to the tour's own echo server
(:mod:`respool.tour._echo`). Along the way it reproduces two classic pitfalls for real (a temp
file that is *not quite clean* after a careless reset, connections that are *not quite there
anymore* after the server hangs up) and shows the lifecycle callbacks that avoid them.

Timing goes through the harness the benchmarks use (:mod:`respool.bench._timing`); the
introduction, the summary and its verdicts belong to the tour's driver (:mod:`respool.tour`).
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Final, TypeVar

from respool._verdict import judge
from respool.bench._timing import interleaved
from respool.elastic import ElasticPool
from respool.fixed import FixedPool
from respool.lease import Lease
from respool.lifecycle import Lifecycle
from respool.stats import PoolStats
from respool.tour._echo import Address, EchoServer
from respool.tour._echo import running as echo_server
from respool.tour._text import heading, micro, threads_label

__all__ = ["ELASTIC", "FIXED", "FRESH", "Measured", "Plan", "Section", "plan_for", "run"]

T = TypeVar("T")
Op = Callable[[], None]

#: Threads in the "realistic workload" columns; the pools hold as many resources, so the
#: tables compare creation cost, not waiting.
THREADS: Final = 4
POOL_SIZE: Final = THREADS

FRESH: Final = "fresh"
FIXED: Final = "FixedPool"
ELASTIC: Final = "ElasticPool"


@dataclass(frozen=True)
class Plan:
    """How much to measure. Fixed operation counts, not a time budget, so that two runs
    on one machine do the same work and can be compared."""

    quick: bool
    rounds: int
    temp_ops: int
    sqlite_ops: int
    tcp_ops: int
    postgres_ops: int
    redis_ops: int


# Tuned so the whole tour takes about a minute on a busy two-core machine. TCP stays modest
# because every fresh connection leaves a socket in TIME_WAIT for a minute.
_FULL: Final = Plan(
    quick=False,
    rounds=5,
    temp_ops=20_000,
    sqlite_ops=10_000,
    tcp_ops=800,
    postgres_ops=100,
    redis_ops=400,
)
_QUICK: Final = Plan(
    quick=True,
    rounds=3,
    temp_ops=2_000,
    sqlite_ops=800,
    tcp_ops=120,
    postgres_ops=24,
    redis_ops=120,
)


def plan_for(quick: bool) -> Plan:
    """The measuring plan: fixed operation counts, fewer with ``quick``."""
    return _QUICK if quick else _FULL


# -- measuring ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Contender:
    """One way to perform the operation: fresh resources, or one of the pools."""

    strategy: str
    label: str
    op: Op


@dataclass(frozen=True)
class Measured:
    """Best microseconds per operation of every contender, for one resource and workload,
    and how much slower each contender's slowest round was than its best."""

    resource: str
    threads: int
    micros: dict[str, float]
    #: The largest worst-round / best-round ratio among the contenders: the same code timed
    #: again under the same plan, so whatever spread it shows came from the machine.
    spread: float

    @property
    def best_pooled(self) -> float:
        """The faster pool's cost: the figure a verdict on pooling should rest on."""
        return min(self.micros[FIXED], self.micros[ELASTIC])

    @property
    def saved(self) -> float:
        """Microseconds per operation the faster pool saved (negative: it cost more)."""
        return self.micros[FRESH] - self.best_pooled


@dataclass(frozen=True)
class Section:
    """What a section hands to the summary: its measurements and the pitfall it showed."""

    results: list[Measured]
    lesson: str | None = None


def _measure(
    resource: str, contenders: Sequence[_Contender], ops: int, threads: int, rounds: int
) -> Measured:
    """Best-of-*rounds* cost of each contender, rounds interleaved (see the harness)."""
    per_thread = max(1, ops // threads)
    results = interleaved(
        [(contender.strategy, contender.op) for contender in contenders],
        per_thread * threads,
        rounds,
        threads=threads,
        warmup=max(1, per_thread // 20),
        keep_worst=True,
    )
    spread = max((r.worst or r.ns) / r.ns for r in results)
    return Measured(resource, threads, {r.name: r.ns / 1000 for r in results}, spread)


def _borrowing(acquire: Callable[[], Lease[T]], use: Callable[[T], None]) -> Op:
    """The pooled form of an operation: borrow a resource, use it, give it back."""

    def op() -> None:
        with acquire() as resource:
            use(resource)

    return op


@contextlib.contextmanager
def _pooled_contenders(
    lifecycle: Lifecycle[T], name: str, use: Callable[[T], None]
) -> Iterator[list[_Contender]]:
    """A FixedPool and an ElasticPool of the same resource, each wrapped as a contender,
    closed (their resources destroyed) when the block ends."""
    with (
        FixedPool(lifecycle, size=POOL_SIZE, name=f"{name}-fixed") as fixed,
        ElasticPool(lifecycle, max_idle=POOL_SIZE, name=f"{name}-elastic") as elastic,
    ):
        yield [
            _Contender(FIXED, f"FixedPool(size={POOL_SIZE})", _borrowing(fixed.acquire, use)),
            _Contender(
                ELASTIC, f"ElasticPool(max_idle={POOL_SIZE})", _borrowing(elastic.acquire, use)
            ),
        ]


def _print_table(contenders: Sequence[_Contender], results: Sequence[Measured]) -> None:
    """One row per contender, one column group (cost, speed-up over fresh) per workload."""
    us = micro()
    width = max(len("strategy"), *(len(contender.label) for contender in contenders))
    group = 20  # the width of one "  {cost:>8}  {speed-up:>8}" cell pair
    print("  " + " " * width + "".join(f"{threads_label(r.threads):>{group}}" for r in results))
    cells = "".join(f"  {us + '/op':>8}  {'speed-up':>8}" for _ in results)
    print(f"  {'strategy':<{width}}{cells}")
    for contender in contenders:
        row = ""
        for result in results:
            cost = result.micros[contender.strategy]
            factor = judge(result.micros[FRESH], cost)
            row += f"  {cost:>8.1f}  {factor!s:>8}"
        print(f"  {contender.label:<{width}}{row}")


def _measure_and_show(
    resource: str,
    contenders: Sequence[_Contender],
    ops: int,
    thread_counts: Sequence[int],
    plan: Plan,
) -> list[Measured]:
    """Measure every workload (one per thread count) and print them as one table."""
    print(f"  Timed: best of {plan.rounds} rounds of {ops:,} operations per strategy.")
    results = [
        _measure(resource, contenders, ops, threads, plan.rounds) for threads in thread_counts
    ]
    print()
    _print_table(contenders, results)
    return results


# -- 1. temporary files ------------------------------------------------------------------------

_PAYLOAD: Final = bytes(range(256)) * 16  # 4 KiB
_LONG_RECORD: Final = b"order 1017: 12 blue mugs, 3 teapots, deliver after 5 pm\n"
_SHORT_RECORD: Final = b"order 1018: 1 kettle\n"


def _new_temp_file() -> IO[bytes]:
    """create: an anonymous temporary file (on POSIX it has no name to unlink later)."""
    return tempfile.TemporaryFile()


def _truncate_only(file: IO[bytes]) -> None:
    """A reset that looks right and is not: it empties the file but keeps the position."""
    file.truncate(0)


def _truncate_and_rewind(file: IO[bytes]) -> None:
    """reset: empty the file and go back to its start, so it behaves like a new one."""
    file.truncate(0)
    file.seek(0)


def _close_file(file: IO[bytes]) -> None:
    """destroy: closing frees the disk space and the file descriptor."""
    file.close()


def _write_and_read_back(file: IO[bytes]) -> None:
    """The timed operation. It verifies the bytes, so a pool that handed out a dirty file
    would fail the tour rather than look fast."""
    file.write(_PAYLOAD)
    file.flush()
    file.seek(0)
    if file.read() != _PAYLOAD:
        raise RuntimeError("a temporary file gave back something other than what was written")


def _fresh_temp_file_op() -> None:
    """The baseline: a new file for every operation, closed (and so deleted) after it."""
    with tempfile.TemporaryFile() as file:
        _write_and_read_back(file)


def _second_user_reads(reset: Callable[[IO[bytes]], None]) -> bytes:
    """Two users borrow the one file of a pool in turn; return what the second reads back
    after writing its own, shorter record."""
    with FixedPool(_new_temp_file, size=1, reset=reset, destroy=_close_file) as pool:
        with pool.acquire() as file:
            file.write(_LONG_RECORD)
            file.flush()
        with pool.acquire() as file:
            file.write(_SHORT_RECORD)
            file.flush()
            file.seek(0)
            return file.read()


def _show_bytes(data: bytes) -> str:
    """A short, faithful repr: the start, and the end when the middle had to be cut."""
    if len(data) <= 24:
        return repr(data)
    return f"{data[:4]!r} ... {data[-len(_SHORT_RECORD) :]!r}"


def _temp_file_pitfall() -> str:
    """Show a reset that forgets seek(0), then the fix; return the lesson for the summary."""
    print("  Not quite clean: a pool whose reset only calls truncate(0).")
    dirty = _second_user_reads(_truncate_only)
    print(f"    user 1 writes {len(_LONG_RECORD):3d} bytes  {_LONG_RECORD[:32]!r}...")
    print(f"    user 2 writes {len(_SHORT_RECORD):3d} bytes  {_SHORT_RECORD!r}")
    print(f"    user 2 reads  {len(dirty):3d} bytes  {_show_bytes(dirty)}")
    gap = len(dirty) - len(_SHORT_RECORD)
    if dirty == _SHORT_RECORD:
        print("    (no damage seen on this platform: truncate moved the position here)")
    else:
        padding = "zero bytes" if dirty[:gap] == bytes(gap) else "stale bytes"
        print(f"  truncate(0) emptied the file but left the position at byte {gap}, so user 2")
        print(f"  wrote from there and the {gap}-byte gap before it reads back as {padding}.")
    print()
    print("  The fix: reset = truncate(0) then seek(0); destroy = close().")
    clean = _second_user_reads(_truncate_and_rewind)
    verdict = "exactly as written" if clean == _SHORT_RECORD else "STILL WRONG"
    print(f"    user 2 reads  {len(clean):3d} bytes  {_show_bytes(clean)}  ({verdict})")
    return (
        f"temp files: a reset without seek(0) handed user 2 {len(dirty)} bytes for a"
        f" {len(_SHORT_RECORD)}-byte record; with seek(0), {len(clean)} bytes."
    )


def _temp_files(plan: Plan) -> Section:
    """Section 1: the pitfall first (it explains the reset the timed pools use), then timing."""
    heading("1. Temporary files")
    lesson = _temp_file_pitfall()
    print()
    print("  Operation: get a temp file, write 4 KiB, flush, seek(0), read it back.")
    print("  Fresh: tempfile.TemporaryFile() every time, closed after use.")
    lifecycle = Lifecycle(_new_temp_file, reset=_truncate_and_rewind, destroy=_close_file)
    fresh = _Contender(FRESH, "new TemporaryFile() per op", _fresh_temp_file_op)
    with _pooled_contenders(lifecycle, "tour-temp", _write_and_read_back) as pooled:
        results = _measure_and_show("temp files", [fresh, *pooled], plan.temp_ops, [1], plan)
    return Section(results, lesson)


# -- 2. SQLite ---------------------------------------------------------------------------------

_ROWS: Final = 1_000
_QUERY: Final = "SELECT name, price FROM items WHERE id = ?"
_KEY: Final = 421


def _connect_sqlite(path: Path) -> sqlite3.Connection:
    """create: check_same_thread=False because a pooled connection serves many threads
    (one at a time, which the pool guarantees)."""
    return sqlite3.connect(path, check_same_thread=False)


def _rollback(conn: sqlite3.Connection) -> None:
    """reset: drop whatever transaction the last borrower left open."""
    conn.rollback()


def _close_sqlite(conn: sqlite3.Connection) -> None:
    """destroy: close the file handle and free SQLite's caches."""
    conn.close()


def _make_database(path: Path) -> None:
    """A table with enough rows that a lookup goes through a real index."""
    conn = sqlite3.connect(path)
    try:
        conn.execute(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL NOT NULL)"
        )
        conn.executemany(
            "INSERT INTO items VALUES (?, ?, ?)",
            ((i, f"item {i}", i * 0.25) for i in range(1, _ROWS + 1)),
        )
        conn.commit()
    finally:
        conn.close()


def _look_up(conn: sqlite3.Connection) -> None:
    """The timed operation: one indexed SELECT, checked so a broken connection cannot pass."""
    if conn.execute(_QUERY, (_KEY,)).fetchone() is None:
        raise RuntimeError(f"row {_KEY} is missing from the tour's database")


def _fresh_sqlite_op(path: Path) -> Op:
    """The baseline: open, query, close. Opening also re-reads the schema every time."""

    def op() -> None:
        with contextlib.closing(_connect_sqlite(path)) as conn:
            _look_up(conn)

    return op


def _sqlite(plan: Plan) -> Section:
    """Section 2: a connection is cheap to use and dear to open, the classic case for a pool."""
    heading("2. SQLite connections")
    with tempfile.TemporaryDirectory(prefix="respool-tour-") as directory:
        path = Path(directory) / "shop.db"
        _make_database(path)
        print(f"  A database file holding a {_ROWS:,}-row table, in a temporary directory.")
        print("  create = sqlite3.connect(path, check_same_thread=False)")
        print("  reset = rollback(); destroy = close()")
        print("  Operation: get a connection, look up one row by its primary key.")
        print("  Fresh: connect, query, close, every time.")
        lifecycle = Lifecycle(
            partial(_connect_sqlite, path), reset=_rollback, destroy=_close_sqlite
        )
        fresh = _Contender(FRESH, "new connect() per op", _fresh_sqlite_op(path))
        with _pooled_contenders(lifecycle, "tour-sqlite", _look_up) as pooled:
            results = _measure_and_show(
                "SQLite", [fresh, *pooled], plan.sqlite_ops, [1, THREADS], plan
            )
    return Section(results)


# -- 3. TCP ------------------------------------------------------------------------------------

_MESSAGE: Final = b"ping: are you still there?\n"
_CLIENT_TIMEOUT: Final = 5.0


def _connect_tcp(address: Address) -> socket.socket:
    """create: a connection with a timeout, so a lost reply fails instead of hanging."""
    return socket.create_connection(address, timeout=_CLIENT_TIMEOUT)


def _still_connected(sock: socket.socket) -> bool:
    """check: peek at the socket without waiting.

    Nothing to read means the connection is open and quiet: usable. An empty read means the
    server hung up; stray bytes mean a reply nobody read. Either way it must not be lent.
    The timeout is set to 0 around the peek because on a socket with a timeout Python waits
    for data before reading, which would turn this check into a five-second sleep.
    """
    timeout = sock.gettimeout()
    sock.settimeout(0.0)
    try:
        sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.settimeout(timeout)
    return False


def _close_socket(sock: socket.socket) -> None:
    """destroy: close the connection (the server sees the client leave)."""
    sock.close()


def _echo(sock: socket.socket) -> None:
    """The timed operation: send the message and read all of it back."""
    sock.sendall(_MESSAGE)
    received = b""
    while len(received) < len(_MESSAGE):  # each pass reads at least one byte or raises
        chunk = sock.recv(len(_MESSAGE) - len(received))
        if not chunk:
            raise ConnectionError("the server closed the connection")
        received += chunk
    if received != _MESSAGE:
        raise RuntimeError(f"the echo server sent back {received!r}")


def _fresh_tcp_op(address: Address) -> Op:
    """The baseline: a connection per operation, with its handshake and server thread."""

    def op() -> None:
        with _connect_tcp(address) as sock:
            _echo(sock)

    return op


def _tcp_lifecycle(address: Address) -> Lifecycle[socket.socket]:
    """No reset: a complete echo leaves nothing behind, and check catches what would."""
    return Lifecycle(partial(_connect_tcp, address), check=_still_connected, destroy=_close_socket)


def _echo_on_all(acquire: Callable[[], Lease[socket.socket]], count: int) -> None:
    """*count* callers at once, each borrowing a connection and echoing through it."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(acquire()) for _ in range(count)]
        for sock in socks:
            _echo(sock)


def _counts(stats: PoolStats) -> str:
    """The counters that prove a replacement happened: one line, easy to compare."""
    return (
        f"created={stats.created} destroyed={stats.destroyed}"
        f" check_failures={stats.check_failures} size={stats.size}"
    )


def _tcp_pitfall(server: EchoServer) -> str:
    """Hang up on two pools' connections, one pool without a check and one with; show what
    their next callers get. Return the lesson for the summary."""
    address = server.address
    print("  Not quite there anymore: the server hangs up on every open connection.")
    with (
        FixedPool(
            partial(_connect_tcp, address),
            size=POOL_SIZE,
            destroy=_close_socket,
            name="tour-tcp-unchecked",
        ) as unchecked,
        FixedPool(_tcp_lifecycle(address), size=POOL_SIZE, name="tour-tcp-checked") as checked,
    ):
        _echo_on_all(unchecked.acquire, POOL_SIZE)
        _echo_on_all(checked.acquire, POOL_SIZE)
        before = checked.stats()
        print(f"    two FixedPools of {POOL_SIZE} connections, one without a check; all used once")
        dropped = server.hang_up_on_everyone()
        gone = server.wait_until_no_connections(timeout=5.0)
        state = "all closed" if gone else "some still closing"
        print(f"    the server shuts down all {dropped} connections ({state})")
        try:
            with unchecked.acquire() as sock:
                _echo(sock)
        except OSError as exc:
            failed = True
            outcome = f"fails with\n      {type(exc).__name__}: {exc}"
        else:
            failed = False
            outcome = "succeeded\n      (the hang-up had not reached it yet)"
        print(f"    pool without check: the next caller {outcome}")
        kept = unchecked.stats()
        print(f"      and the pool took the dead connection back (destroyed: {kept.destroyed}),")
        print("      ready to hand it to another caller")
        _echo_on_all(checked.acquire, POOL_SIZE)
        after = checked.stats()
        replaced = after.check_failures - before.check_failures
        print(f"    pool with check: {POOL_SIZE} callers at once all got a working connection")
        print(f"      stats before: {_counts(before)}")
        print(f"      stats after:  {_counts(after)}")
    unchecked_fate = "the next caller got an error" if failed else "no caller noticed (yet)"
    return (
        f"TCP: after the server hung up, check replaced {replaced} dead connections and all"
        f" {POOL_SIZE} callers were served; without a check, {unchecked_fate}."
    )


def _tcp(plan: Plan) -> Section:
    """Section 3: timing first, then the hang-up, which would disturb the timing."""
    heading("3. TCP connections to a local echo server")
    with echo_server() as server:
        host, port = server.address
        print(f"  The tour runs an echo server on {host}:{port}, a thread per connection, in")
        print("  this same process (so it competes with the clients for the interpreter).")
        print("  create = socket.create_connection(); destroy = close()")
        print("  check = peek without waiting: an empty read means the server hung up")
        print(f"  Operation: send {len(_MESSAGE)} bytes, read the echo back.")
        print("  Fresh: connect, send, receive, close, every time.")
        fresh = _Contender(FRESH, "new connection per op", _fresh_tcp_op(server.address))
        with _pooled_contenders(_tcp_lifecycle(server.address), "tour-tcp", _echo) as pooled:
            results = _measure_and_show("TCP", [fresh, *pooled], plan.tcp_ops, [1, THREADS], plan)
        print()
        lesson = _tcp_pitfall(server)
    return Section(results, lesson)


# -- entry point for the tour's driver --------------------------------------------------------


def run(plan: Plan) -> list[Section]:
    """The free-list sections: temporary files, SQLite, TCP."""
    return [_temp_files(plan), _sqlite(plan), _tcp(plan)]
