"""Pieces of the tour and the shared timing harness, tested without timing anything real."""

from __future__ import annotations

import socket
import threading

import pytest

from respool.bench._timing import Result, interleaved, table, wall_seconds
from respool.tour._echo import running
from respool.tour._text import compared, threads_label


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
