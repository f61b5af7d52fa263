"""The tour's free-list part: ``FixedPool`` and ``ElasticPool`` on files, SQLite and TCP.

"Do I need a pool?" has an honest answer only in numbers, so the tour times one small
operation done with a brand-new resource every time against the same operation done with a
pooled one, in the same run, on three resources that need no server of their own: temporary
files, SQLite connections, and TCP connections to an echo server the tour starts on
127.0.0.1. Along the way it reproduces two classic pitfalls for real (a temp file that is *not
quite clean* after a careless reset, connections that are *not quite there anymore* after the
server hangs up) and shows the lifecycle callbacks that avoid them.

Every figure printed is computed during the run; the verdicts are derived from those figures,
never written in advance. ``quick=True`` keeps every section and measures far fewer operations.
"""

from __future__ import annotations

import contextlib
import math
import socket
import socketserver
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Final, TypeVar, cast

from respool.elastic import ElasticPool
from respool.fixed import FixedPool
from respool.lease import Lease
from respool.lifecycle import Lifecycle
from respool.stats import PoolStats
from respool.tour._text import heading as _heading
from respool.tour._text import micro as _micro
from respool.tour._text import print_wrapped as _print_wrapped

__all__ = ["plan_for", "print_intro", "print_summary", "run"]

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
class _Plan:
    """How much to measure. Fixed operation counts, not a time budget, so that two runs
    on one machine do the same work and can be compared."""

    quick: bool
    rounds: int
    temp_ops: int
    sqlite_ops: int
    tcp_ops: int


# Tuned so the full tour takes 40-60 s on a noisy two-core machine. TCP stays modest because
# every fresh connection leaves a socket in TIME_WAIT for a minute.
_FULL: Final = _Plan(quick=False, rounds=7, temp_ops=40_000, sqlite_ops=14_000, tcp_ops=1_200)
_QUICK: Final = _Plan(quick=True, rounds=3, temp_ops=2_000, sqlite_ops=800, tcp_ops=120)


# -- measuring ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Contender:
    """One way to perform the operation: fresh resources, or one of the pools."""

    strategy: str
    label: str
    op: Op


@dataclass(frozen=True)
class _Result:
    """Best microseconds per operation of every contender, for one resource and workload."""

    resource: str
    threads: int
    micros: dict[str, float]

    def speedup(self, strategy: str) -> float:
        """How many times faster than a fresh resource per operation (above 1: faster)."""
        return self.micros[FRESH] / self.micros[strategy]

    @property
    def best_pooled(self) -> float:
        """The faster pool's cost: the figure a verdict on pooling should rest on."""
        return min(self.micros[FIXED], self.micros[ELASTIC])

    @property
    def saved(self) -> float:
        """Microseconds per operation the faster pool saved (negative: it cost more)."""
        return self.micros[FRESH] - self.best_pooled

    @property
    def pool_gap(self) -> float:
        """Relative gap between the two pools, which run the same code here: a noise gauge."""
        fixed, elastic = self.micros[FIXED], self.micros[ELASTIC]
        return abs(fixed - elastic) / min(fixed, elastic)


@dataclass(frozen=True)
class _Section:
    """What a section hands to the summary: its measurements and the pitfall it showed."""

    results: list[_Result]
    lesson: str | None = None


def _elapsed(op: Op, per_thread: int, threads: int) -> float:
    """Wall-clock seconds for *threads* threads each calling *op* *per_thread* times."""
    if threads == 1:
        start = time.perf_counter()
        for _ in range(per_thread):
            op()
        return time.perf_counter() - start
    return _elapsed_threaded(op, per_thread, threads)


def _elapsed_threaded(op: Op, per_thread: int, threads: int) -> float:
    """Like :func:`_elapsed` with several threads, all released by one barrier so that
    starting them is not timed. A failure in a thread is raised here, after every join."""
    barrier = threading.Barrier(threads + 1)
    failures: list[Exception] = []

    def work() -> None:
        try:
            barrier.wait(timeout=30.0)
            for _ in range(per_thread):
                op()
        except Exception as exc:
            failures.append(exc)

    workers = [threading.Thread(target=work, name=f"tour-{i}", daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    try:
        barrier.wait(timeout=30.0)
        start = time.perf_counter()
    finally:
        for worker in workers:
            worker.join()
    elapsed = time.perf_counter() - start
    if failures:
        raise failures[0]
    return elapsed


def _measure(
    resource: str, contenders: Sequence[_Contender], ops: int, threads: int, rounds: int
) -> _Result:
    """Best-of-*rounds* cost of each contender. Rounds are interleaved, so a burst of load
    from elsewhere on the machine slows every contender alike instead of skewing one."""
    per_thread = max(1, ops // threads)
    total = per_thread * threads
    for contender in contenders:  # warm-up, untimed: fills pools and caches
        _elapsed(contender.op, max(1, per_thread // 20), threads)
    best = {contender.strategy: math.inf for contender in contenders}
    for _ in range(rounds):
        for contender in contenders:
            seconds = _elapsed(contender.op, per_thread, threads)
            best[contender.strategy] = min(best[contender.strategy], seconds / total * 1e6)
    return _Result(resource, threads, best)


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


def _threads_label(threads: int) -> str:
    """Column and summary label for a workload."""
    return "1 thread" if threads == 1 else f"{threads} threads"


def _print_table(contenders: Sequence[_Contender], results: Sequence[_Result]) -> None:
    """One row per contender, one column group (cost, ratio to fresh) per workload."""
    us = _micro()
    width = max(len("strategy"), *(len(contender.label) for contender in contenders))
    group = 19  # the width of one "  {cost:>8}  {ratio:>7}" cell pair
    print("  " + " " * width + "".join(f"{_threads_label(r.threads):>{group}}" for r in results))
    cells = "".join(f"  {us + '/op':>8}  {'x fresh':>7}" for _ in results)
    print(f"  {'strategy':<{width}}{cells}")
    for contender in contenders:
        row = ""
        for result in results:
            cost = result.micros[contender.strategy]
            row += f"  {cost:>8.1f}  {cost / result.micros[FRESH]:>7.2f}"
        print(f"  {contender.label:<{width}}{row}")


def _measure_and_show(
    resource: str,
    contenders: Sequence[_Contender],
    ops: int,
    thread_counts: Sequence[int],
    plan: _Plan,
) -> list[_Result]:
    """Measure every workload (one per thread count) and print them as one table."""
    print(f"  Timed: best of {plan.rounds} rounds of {ops:,} operations per strategy.")
    results = [
        _measure(resource, contenders, ops, threads, plan.rounds) for threads in thread_counts
    ]
    print()
    _print_table(contenders, results)
    return results


# -- 0. introduction ---------------------------------------------------------------------------


def print_intro(plan: _Plan) -> None:
    """What is measured and why, the strategies, the lifecycle, and how to read the tables."""
    us = _micro()
    print("respool tour")
    print("============")
    print()
    print("Do you need a pool at all? Making a resource (a file, a database connection,")
    print("a network connection) costs time on every use; a pool keeps finished")
    print("resources and lends them out again, which saves that time but adds code that")
    print("can go wrong. The trade is a question of numbers, so this tour measures it:")
    print("for each resource below, it times the work done with brand-new resources,")
    print("then the same work with resources borrowed from a pool.")
    print()
    print("Four strategies, by how long resources sit idle and whether their count varies:")
    print("  FixedPool      makes `size` resources up front and keeps exactly that many;")
    print("                 when all are lent out, callers wait. The footprint is fixed.")
    print("  ElasticPool    makes a resource whenever none is idle and keeps at most")
    print("                 `max_idle` of those that come back. Nobody waits; it varies.")
    print("  WorkerPool     N threads, each owning one resource for its lifetime; you")
    print("                 submit tasks, and a bounded queue says what happens when")
    print("                 they pile up.")
    print("  TransientPool  a per-thread cache of short-lived objects (buffers); what is")
    print("                 not reused soon is dropped at garbage collection.")
    print("Sections 1-3 time the free lists (FixedPool, ElasticPool), 4 the WorkerPool,")
    print("5 the TransientPool and BufferPool.")
    print()
    print("Every pool manages its resources with the same four callbacks (the lifecycle):")
    print("  create()    make a new resource")
    print("  reset(r)    when it comes back: make it indistinguishable from a new one")
    print("  check(r)    before lending an idle one: still usable? If not, replace it")
    print("  destroy(r)  when it leaves the pool: free what garbage collection cannot")
    print()
    print("    pool = respool.FixedPool(create, size=4, reset=..., check=..., destroy=...)")
    print("    with pool.acquire() as resource:")
    print("        ...   # leaving the block resets the resource and puts it back")
    print()
    print(f"Reading the tables: {us}/op is the cost of one operation, the best of several")
    print("rounds (the round least disturbed by other load). `x fresh` divides it by the")
    print("cost with a fresh resource, measured moments apart in this run (0.25: a")
    print(f"quarter of the cost). With several threads, {us}/op is wall-clock time")
    print("divided by all their operations.")
    if plan.quick:
        print("(--quick: far fewer operations, so the figures are rougher.)")


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


def _temp_files(plan: _Plan) -> _Section:
    _heading("1. Temporary files")
    lesson = _temp_file_pitfall()
    print()
    print("  Operation: get a temp file, write 4 KiB, flush, seek(0), read it back.")
    print("  Fresh: tempfile.TemporaryFile() every time, closed after use.")
    lifecycle = Lifecycle(_new_temp_file, reset=_truncate_and_rewind, destroy=_close_file)
    fresh = _Contender(FRESH, "new TemporaryFile() per op", _fresh_temp_file_op)
    with _pooled_contenders(lifecycle, "tour-temp", _write_and_read_back) as pooled:
        results = _measure_and_show("temp files", [fresh, *pooled], plan.temp_ops, [1], plan)
    return _Section(results, lesson)


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


def _sqlite(plan: _Plan) -> _Section:
    _heading("2. SQLite connections")
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
    return _Section(results)


# -- 3. TCP ------------------------------------------------------------------------------------

_MESSAGE: Final = b"ping: are you still there?\n"
_CLIENT_TIMEOUT: Final = 5.0
#: A handler whose client went silent this long gives up, so no server thread outlives a
#: tour that failed half-way.
_SERVER_IDLE_TIMEOUT: Final = 120.0

Address = tuple[str, int]


class _EchoServer(socketserver.ThreadingTCPServer):
    """Echoes every byte back, one thread per connection, and can hang up on all of its
    clients at once (a server restart or a network blip, on demand)."""

    daemon_threads = True
    # Fresh connections arrive in bursts from several threads; with the default backlog of
    # 5 the kernel drops connection requests and each drop stalls a client for a second.
    request_queue_size = 128

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._open: set[socket.socket] = set()
        super().__init__(("127.0.0.1", 0), _EchoHandler)

    @property
    def address(self) -> Address:
        """Where clients connect: the port is the one the kernel picked for port 0."""
        host, port = self.socket.getsockname()[:2]
        return str(host), int(port)

    def track(self, sock: socket.socket) -> None:
        """Remember a served connection, so that it can be hung up on later."""
        with self._changed:
            self._open.add(sock)

    def untrack(self, sock: socket.socket) -> None:
        """Forget a connection whose handler has finished, and tell whoever waits for that."""
        with self._changed:
            self._open.discard(sock)
            self._changed.notify_all()

    def hang_up_on_everyone(self) -> int:
        """Shut down every open connection; return how many there were.

        ``shutdown`` rather than ``close``: it wakes the handler blocked in ``recv`` on that
        socket, which then ends normally and closes it.
        """
        with self._changed:
            victims = list(self._open)
        for sock in victims:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        return len(victims)

    def wait_until_no_connections(self, timeout: float) -> bool:
        """True once every handler has finished, False if *timeout* seconds pass first."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._open, timeout)


class _EchoHandler(socketserver.BaseRequestHandler):
    """Serves one connection until the client leaves or the server hangs up."""

    def handle(self) -> None:
        """Echo until the client leaves; the idle timeout bounds a forgotten connection."""
        server = cast(_EchoServer, self.server)
        sock = cast(socket.socket, self.request)
        sock.settimeout(_SERVER_IDLE_TIMEOUT)
        server.track(sock)
        try:
            while chunk := sock.recv(4096):
                sock.sendall(chunk)
        except OSError:
            pass  # reset, hung up on, or idle too long: the connection is over either way
        finally:
            server.untrack(sock)


@contextlib.contextmanager
def _echo_server() -> Iterator[_EchoServer]:
    """Run an echo server on 127.0.0.1 for the duration of the block, then stop it, its
    connections and all of its threads."""
    server = _EchoServer()
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="tour-echo-server"
    )
    thread.daemon = True
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.hang_up_on_everyone()
        server.server_close()  # also joins the handler threads
        thread.join()


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


def _tcp_pitfall(server: _EchoServer) -> str:
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
        print(f"      and the pool took the dead connection back (destroyed: {kept.destroyed})")
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


def _tcp(plan: _Plan) -> _Section:
    _heading("3. TCP connections to a local echo server")
    with _echo_server() as server:
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
    return _Section(results, lesson)


# -- summary -----------------------------------------------------------------------------------

#: Speed-ups below this are too small to pay for a pool's extra code (and close to what
#: noise and the pool's own bookkeeping can produce); above the next, pooling clearly pays.
_NO_CLEAR_GAIN: Final = 1.25
_PAYS_OFF: Final = 2.0
_SLOWER: Final = 0.8
#: A gap between the two pools' figures beyond this means the machine was busy.
_NOISY: Final = 0.5


def _verdict(speedup: float) -> str:
    """Words for a measured speed-up, by the thresholds above (printed with the table)."""
    if speedup >= _PAYS_OFF:
        return "pays off"
    if speedup >= _NO_CLEAR_GAIN:
        return "modest gain"
    if speedup > _SLOWER:
        return "no clear gain"
    return "pool is slower"


def print_summary(sections: Sequence[_Section], plan: _Plan, others: Sequence[str] = ()) -> None:
    """Every measurement side by side with a verdict, then the pitfalls, then perspective."""
    us = _micro()
    _heading("Summary: did pooling pay off?")
    results = [result for section in sections for result in section.results]
    print(f"  Speed-up: the fresh {us}/op divided by the pooled one, from the tables above.")
    print()
    print(f"  {'':<19}{'fresh':>8}{'--- speed-up with ---':>26}{'saved':>9}")
    print(
        f"  {'resource':<11}{'threads':>8}{us + '/op':>8}"
        f"{FIXED:>12}{ELASTIC:>14}{us + '/op':>9}   verdict"
    )
    for r in results:
        print(
            f"  {r.resource:<11}{r.threads:>8}{r.micros[FRESH]:>8.1f}"
            f"{r.speedup(FIXED):>11.1f}x{r.speedup(ELASTIC):>13.1f}x{r.saved:>9.1f}"
            f"   {_verdict(r.micros[FRESH] / r.best_pooled)}"
        )
    print()
    gap = max(r.pool_gap for r in results)
    advice = ""
    if plan.quick:
        advice = " (--quick measures few operations: the full tour gives firmer figures.)"
    elif gap > _NOISY:
        advice = " Rerun on a quieter machine for firmer figures."
    _print_wrapped(
        f"Verdicts rest on the faster pool: 'pays off' from {_PAYS_OFF:g}x, 'modest gain' from"
        f" {_NO_CLEAR_GAIN:g}x, 'no clear gain' above {_SLOWER:g}x (too little to be worth a"
        " pool's extra code), 'pool is slower' below. FixedPool and ElasticPool take the same"
        " code path in these tests, so the gap between their figures (up to"
        f" {gap:.0%} here) shows how noisy the measurements were.{advice}",
        "  ",
    )
    print()
    print("  Pitfalls reproduced:")
    for section in sections:
        if section.lesson is not None:
            _print_wrapped(section.lesson, "    - ", "      ")
    if others:
        print()
        print("  The other two strategies:")
        for line in others:
            _print_wrapped(line, "    - ", "      ")
    print()
    _print_advice(results)


def _print_advice(results: Sequence[_Result]) -> None:
    """Close on the first question again: a saving only matters relative to the whole."""
    largest = max(results, key=lambda r: r.saved)
    _print_wrapped(
        f"The largest saving measured here is {largest.saved:.0f} {_micro()} per operation"
        f" ({largest.resource}, {_threads_label(largest.threads)}). That is a lot next to an"
        " operation that takes microseconds, and nothing inside a request that spends"
        " milliseconds elsewhere. Before adding a pool to your own code, time your own"
        " operation this way and check that creating the resource is a real share of it.",
        "  ",
    )


# -- entry points for the tour's driver ----------------------------------------------------


def plan_for(quick: bool) -> _Plan:
    """The measuring plan: fixed operation counts, fewer with ``quick``."""
    return _QUICK if quick else _FULL


def run(plan: _Plan) -> list[_Section]:
    """The free-list sections: temporary files, SQLite, TCP."""
    return [_temp_files(plan), _sqlite(plan), _tcp(plan)]
