"""Pieces of the tour and the shared timing harness, tested without timing anything real."""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from respool import PoolStats, WorkerStats
from respool.bench._timing import Result, interleaved, table, wall_seconds
from respool.tour import asyncio_
from respool.tour._echo import running
from respool.tour._text import compared, threads_label

T = TypeVar("T")


@pytest.mark.parametrize(
    ("seconds", "baseline", "words"),
    [
        (1.0, 2.6, "was 2.6x faster than"),
        (1.0, 1.04, "was as fast as"),  # 1.04 rounds to 1.0: no "1.0x faster"
        (1.0, 1.0, "was as fast as"),
        (1.4, 1.0, "took 1.4x as long as"),
        (1.0, 0.7, "took 1.4x as long as"),
    ],
)
def test_comparisons_never_make_the_reader_invert(
    seconds: float, baseline: float, words: str
) -> None:
    """Faster reads "Nx faster than", slower reads "took Nx as long as": never "Nx less"."""
    assert compared(seconds, baseline) == words


def test_comparison_of_a_failed_measurement_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        compared(0.0, 1.0)


def test_threads_label() -> None:
    assert threads_label(1) == "1 thread"
    assert threads_label(4) == "4 threads"


def test_wall_seconds_runs_every_thread_the_asked_number_of_times() -> None:
    """Each of the threads calls the operation per_thread times; the result is positive."""
    calls: list[int] = []
    lock = threading.Lock()

    def op() -> None:
        with lock:
            calls.append(threading.get_ident())

    assert wall_seconds(op, 50, threads=3) > 0
    assert len(calls) == 150
    assert len(set(calls)) == 3
    assert wall_seconds(op, 10) > 0
    assert len(calls) == 160


def test_wall_seconds_raises_what_a_thread_raised() -> None:
    """A case that fails in a thread fails the run instead of looking fast."""

    def broken() -> None:
        raise RuntimeError("the resource was dirty")

    with pytest.raises(RuntimeError, match="dirty"):
        wall_seconds(broken, 5, threads=2)


def test_interleaved_keeps_best_and_optionally_worst() -> None:
    """Every case is timed; worst is reported only when asked, and never below best."""
    cases = [("a", lambda: None), ("b", lambda: sum(range(50)))]
    plain = interleaved(cases, 200, 3)
    assert [r.name for r in plain] == ["a", "b"]
    assert all(r.worst is None and r.ns > 0 for r in plain)
    spread = interleaved(cases, 200, 3, threads=2, warmup=5, keep_worst=True)
    assert all(r.worst is not None and r.worst >= r.ns for r in spread)


def test_table_prints_ratios_to_the_baseline() -> None:
    text = table([Result("(a) base", 100.0), Result("pool", 150.0, 300.0)], "(a) base")
    lines = text.splitlines()
    assert lines[0].endswith("worst ns/op")
    assert "1.50" in lines[2]
    assert "300" in lines[2]


def test_echo_server_echoes_and_hangs_up() -> None:
    """The tour's server echoes, and hanging up on everyone ends every connection."""
    with running() as server, socket.create_connection(server.address, timeout=5.0) as sock:
        sock.sendall(b"ping")
        assert sock.recv(4) == b"ping"
        assert server.hang_up_on_everyone() == 1
        assert server.wait_until_no_connections(timeout=5.0)
        assert sock.recv(1) == b""


def _served(scene: Callable[[tuple[str, int]], Awaitable[T]]) -> T:
    """Run *scene* against the asyncio section's line server, in a fresh event loop."""

    async def main() -> T:
        server = asyncio_.LineServer()
        await server.start()
        try:
            return await scene(server.address)
        finally:
            await server.stop()

    return asyncio.run(main())


def test_line_server_answers_each_request_in_turn() -> None:
    """Two requests sent at once on one stream are answered in order, each with its value."""

    async def scene(address: tuple[str, int]) -> list[str]:
        stream = await asyncio_.connector(address)()
        try:
            stream[1].write(b"GET x\nPUT y\n")
            first, second = await stream[0].readline(), await stream[0].readline()
            return [first.decode(), second.decode(), await asyncio_.ask(stream, "z")]
        finally:
            await asyncio_.hang_up(stream)

    assert _served(scene) == ["x's value\n", "ERR unknown command\n", "z's value"]


def test_hand_made_pool_hands_on_the_cut_off_reply() -> None:
    """The hazard is real: after user 1 is cut off, each user reads the previous one's reply."""
    assert _served(asyncio_.hand_made) == ["a's value", "b's value"]


def test_async_fixed_pool_destroys_the_cut_off_stream() -> None:
    """AsyncFixedPool: users 2 and 3 read their own values; the stream was retired as aborted."""
    replies, stats = _served(asyncio_.pooled)
    assert replies == ["b's value", "c's value"]
    assert stats.retired["abort"] == 1
    assert stats.created - stats.destroyed == stats.size == 1


def test_crowd_counts_are_exact() -> None:
    """Tasks cancelled in line lose nothing, each cut-off destroys one stream, no task reads
    another's reply, no stream is lent twice, and the pool ends whole."""

    async def scene(address: tuple[str, int]) -> tuple[asyncio_.Crowd, PoolStats]:
        return await asyncio_.crowd(address, tasks=30, connections=3, in_line=4, mid_request=5)

    tally, stats = _served(scene)
    assert (tally.right, tally.wrong, tally.lent_twice) == (21, 0, 0)
    assert (tally.cancelled_in_line, tally.cut_mid_request) == (4, 5)
    assert stats.retired["abort"] == 5
    assert stats.acquires == 26  # all but the 4 cancelled in line
    assert stats.created - stats.destroyed == stats.size == stats.idle == 3
    assert tally.streams == stats.created == 3 + 5
    assert 1 <= tally.most_lent <= 3


def test_stream_workers_replace_a_cut_off_stream() -> None:
    """AsyncWorkerPool: the cut-off submit's stream is replaced and map's replies are right."""

    async def scene(address: tuple[str, int]) -> tuple[list[str], WorkerStats]:
        return await asyncio_.workers(address, ["p", "q", "r", "s", "t"])

    replies, stats = _served(scene)
    assert replies == [asyncio_.value_of(key) for key in "pqrst"]
    assert stats.retired["abort"] == 1
    assert stats.created == stats.destroyed == asyncio_.CONNECTIONS + 1


def test_asyncio_section_keeps_its_promises_in_80_columns() -> None:
    """The whole section: every check holds, and every line fits an 80-column terminal."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        summary = asyncio_.run(quick=True)
    text = out.getvalue()
    assert summary.endswith("(as promised).")
    assert """GET b -> "a's value"  (wrong)""" in text
    assert "160 right, 0 wrong" in text
    assert "retired['abort'] == 20" in text
    assert [line for line in text.splitlines() if len(line) > 80] == []
