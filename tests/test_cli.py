"""The respool command: the tour and the benchmark run end to end (in their quick modes)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from respool import cli


def test_tour_quick_shows_every_section(capsys: pytest.CaptureFixture[str]) -> None:
    """`respool tour --quick` runs on real resources and prints each section and its verdicts."""
    assert cli.main(["tour", "--quick"]) == 0
    out = capsys.readouterr().out
    for section in ("Temporary files", "SQLite", "TCP", "4. WorkerPool", "5. TransientPool"):
        assert section in out
    assert "Summary" in out
    assert "FixedPool" in out
    assert "ElasticPool" in out
    assert "check_failures" in out  # the dead-connection demo reports its replacements
    assert "StillInUse" in out  # the not-quite-done demo refused a buffer still viewed
    summary = out[out.index("Summary") :]
    assert "The other two strategies" in summary
    assert "WorkerPool (a zlib compressor" in summary
    assert "TransientPool/BufferPool" in summary


def test_bench_quick_prints_ratios(capsys: pytest.CaptureFixture[str]) -> None:
    """`respool bench --quick` prints each case with its ratio to the lock+deque floor."""
    assert cli.main(["bench", "--quick", "free_list"]) == 0
    out = capsys.readouterr().out
    assert "(b) Lock around pop, Lock around append" in out
    assert "FixedPool: with acquire()" in out
    assert "x the lock+deque floor" in out
    assert "Debug mode on" in out
    assert "ThreadPoolExecutor" not in out  # only the suite asked for


def test_bench_suites_print_their_goals(capsys: pytest.CaptureFixture[str]) -> None:
    """The worker and transient suites each print a verdict against their goals."""
    assert cli.main(["bench", "--quick", "worker", "transient"]) == 0
    out = capsys.readouterr().out
    assert "ThreadPoolExecutor" in out
    assert "SimpleQueue" in out
    assert "deque" in out
    assert "8 MiB" in out
    assert out.count(" the goal") >= 4


def test_unknown_bench_suite_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """`respool bench nope` names the suites instead of failing later."""
    with pytest.raises(SystemExit) as caught:
        cli.main(["bench", "nope"])
    assert caught.value.code == 2
    assert "free_list, worker, transient" in capsys.readouterr().err


def test_python_dash_m_respool_runs() -> None:
    """`python -m respool --help` works as the console script does."""
    done = subprocess.run(
        [sys.executable, "-m", "respool", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert "tour" in done.stdout
    assert "bench" in done.stdout


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """A wrong command exits with argparse's usage error, not a traceback."""
    with pytest.raises(SystemExit) as caught:
        cli.main(["frobnicate"])
    assert caught.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
