"""The respool command: the tour and the benchmark run end to end (in their quick modes)."""

from __future__ import annotations

import re
import runpy
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

import respool
from respool import bench, cli
from respool._verdict import DEFAULT_RULES, Verdict

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tour_output() -> str:
    """One quick tour, shared by the tests that read it (it takes several seconds)."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["tour", "--quick"]) == 0
    return out.getvalue()


def test_tour_quick_shows_every_section(tour_output: str) -> None:
    """`respool tour --quick` runs on real resources and prints each section and its verdicts."""
    out = tour_output
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


def test_tour_fits_80_columns(tour_output: str) -> None:
    """Every line of the tour reads in an 80-column terminal without wrapping."""
    long = [line for line in tour_output.splitlines() if len(line) > 80]
    assert long == []


def test_tour_says_what_it_means(tour_output: str) -> None:
    """No phrasing a reader must invert or cannot check: no "x less time", no unnamed
    "article", no claim about the gap between two identical code paths."""
    assert "less time" not in tour_output
    assert "article" not in tour_output.lower()
    assert "same code path" not in tour_output
    assert "faster than" in tour_output


def test_tour_verdicts_follow_the_printed_speedups(tour_output: str) -> None:
    """Each summary row's verdict is the one its printed speed-ups earn under the printed
    legend: no "2.0x" row labelled "modest gain" under "pays off from 2.0x"."""
    summary = tour_output[tour_output.index("Summary") :]
    verdicts = "|".join(re.escape(str(v)) for v in Verdict)
    rows = re.findall(
        rf"^\s+\S.*?\s(\d+\.\d)x\s+(\d+\.\d)x\s+-?\d+\.\d\s+({verdicts})$", summary, re.M
    )
    assert len(rows) == 5  # temp files; SQLite and TCP with 1 and 4 threads
    for fixed, elastic, verdict in rows:
        best = max(float(fixed), float(elastic))
        assert DEFAULT_RULES.classify(best) == verdict
    assert "'pays off' from 2.0x" in summary


def test_tour_transient_verdicts_follow_the_printed_speedups(tour_output: str) -> None:
    """The buffer table prints a speed-up per pool; its verdict rests on the better one."""
    section = tour_output[tour_output.index("5. TransientPool") : tour_output.index("Summary")]
    verdicts = "|".join(re.escape(str(v)) for v in Verdict)
    rows = re.findall(
        rf"^\s+\d+ [KM]iB\s+\S+\s+\S+\s+(\d+\.\d)x\s+\S+\s+(\d+\.\d)x\s+({verdicts})$",
        section,
        re.M,
    )
    assert len(rows) == 3
    for transient, buffers, verdict in rows:
        assert DEFAULT_RULES.classify(max(float(transient), float(buffers))) == verdict


def test_bench_quick_prints_ratios(capsys: pytest.CaptureFixture[str]) -> None:
    """`respool bench --quick acquire_release` prints each case with its ratio to the floor."""
    assert cli.main(["bench", "--quick", "acquire_release"]) == 0
    out = capsys.readouterr().out
    assert "(b) Lock around pop, Lock around append" in out
    assert "FixedPool: with acquire()" in out
    assert "x the lock+deque floor" in out
    assert "Debug mode on" in out
    assert "worst ns/op" in out  # the contended table shows its spread
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


def test_bench_old_suite_name_still_works(monkeypatch: pytest.MonkeyPatch) -> None:
    """`respool bench free_list` (its 0.1 name) runs the acquire_release suite, once."""
    ran: list[bool] = []
    monkeypatch.setitem(bench.SUITES, "acquire_release", lambda quick: ran.append(quick) or 0)
    assert cli.main(["bench", "--quick", "free_list", "acquire_release"]) == 0
    assert ran == [True]


def test_cli_knows_the_suites_bench_has() -> None:
    """The CLI lists suite names without importing the benchmarks; they must not drift."""
    assert tuple(bench.SUITES) == cli._SUITES
    assert cli._ALIASES == bench.ALIASES


def test_unknown_bench_suite_names_the_suites(capsys: pytest.CaptureFixture[str]) -> None:
    """`respool bench nosuch` names the valid suites, under the bench command's own usage."""
    with pytest.raises(SystemExit) as caught:
        cli.main(["bench", "nosuch"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "usage: respool bench" in err
    assert "'nosuch'" in err
    assert "acquire_release, worker, transient" in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`respool --version` prints the package's one version and exits 0."""
    with pytest.raises(SystemExit) as caught:
        cli.main(["--version"])
    assert caught.value.code == 0
    assert capsys.readouterr().out.strip() == f"respool {respool.__version__}"


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    """A bare `respool` is a newcomer asking what it does: help, exit status 0."""
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: respool")
    assert "tour" in out
    assert "bench" in out


@pytest.mark.parametrize("args", [[], ["--help"], ["--version"]])
def test_python_dash_m_respool_runs(args: Sequence[str]) -> None:
    """`python -m respool` behaves as the console script does, with or without arguments."""
    done = subprocess.run(
        [sys.executable, "-m", "respool", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    if args == ["--version"]:
        assert respool.__version__ in done.stdout
    else:
        assert "tour" in done.stdout
        assert "bench" in done.stdout


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """A wrong command exits with argparse's usage error, not a traceback."""
    with pytest.raises(SystemExit) as caught:
        cli.main(["frobnicate"])
    assert caught.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("script", "suite"),
    [
        ("acquire_release.py", "acquire_release"),
        ("worker.py", "worker"),
        ("transient.py", "transient"),
    ],
)
def test_each_benchmark_script_runs_its_own_suite(
    script: str, suite: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python benchmarks/X.py` runs suite X only, passing --quick through."""
    calls: list[tuple[bool, list[str]]] = []

    def fake_main(quick: bool = False, only: Sequence[str] = ()) -> int:
        calls.append((quick, list(only)))
        return 0

    monkeypatch.setattr(bench, "main", fake_main)
    monkeypatch.setattr(sys, "argv", [script, "--quick"])
    with pytest.raises(SystemExit) as caught:
        runpy.run_path(str(ROOT / "benchmarks" / script), run_name="__main__")
    assert caught.value.code == 0
    assert calls == [(True, [suite])]


def test_every_benchmark_script_is_a_suite() -> None:
    """benchmarks/ holds one script per suite, and no suite without its script."""
    scripts = {path.stem for path in (ROOT / "benchmarks").glob("*.py")}
    assert scripts == set(bench.SUITES)


def test_one_version_everywhere() -> None:
    """pyproject.toml reads the version from the package, so the installed metadata, the
    package and `respool --version` agree (run `pip install -e .` after changing it)."""
    import tomllib
    from importlib.metadata import metadata

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert "version" not in project
    assert "version" in project["dynamic"]
    installed = metadata("respool")
    assert installed["Version"] == respool.__version__
    assert installed["License-Expression"] == "MIT"
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License\n\nCopyright (c)")
