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
    for section in ("Temporary files", "SQLite", "TCP", "Summary"):
        assert section in out
    assert "FixedPool" in out
    assert "ElasticPool" in out
    assert "check_failures" in out  # the dead-connection demo reports its replacements


def test_bench_quick_prints_ratios(capsys: pytest.CaptureFixture[str]) -> None:
    """`respool bench --quick` prints each case with its ratio to the lock+deque floor."""
    assert cli.main(["bench", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "(b) Lock around pop, Lock around append" in out
    assert "FixedPool: with acquire()" in out
    assert "x the lock+deque floor" in out


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
