"""The respool command: the tour and the benchmark run end to end (in their quick modes)."""

from __future__ import annotations

import json
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
from respool.bench._report import Table
from respool.bench._run import Context, Scenario

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
    for section in (
        "Temporary files",
        "SQLite",
        "TCP",
        "4. WorkerPool",
        "5. TransientPool",
        "7. PostgreSQL",
        "8. Redis",
        "9. A log shipper",
        "10. Do I need a pool? Ask the advisor",
        "11. When one machine is not enough: Ray",
    ):
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


def test_tour_shows_the_advisor_reaching_the_known_answers(tour_output: str) -> None:
    """Section 10 runs respool.advise on at least three resources, prints a full report and
    advise_from's sizes; each answer printed is one the case accepts."""
    from respool.tour.advise import CASES

    section = tour_output[tour_output.index("10. Do I need a pool?") :]
    section = section[: section.index("Summary")]
    shown = 0
    for case in CASES:
        row = next(line for line in section.splitlines() if line.strip().startswith(case.label))
        answer = row[2 + 40 :].split()[0]
        assert answer in (case.expected or {"no"}), row
        shown += 1
    assert shown >= 3
    assert "Advice for respool.tour.advise:compressor" in section
    assert "respool.advise_from(pool): ElasticPool(create, min_idle=" in " ".join(section.split())
    summary = tour_output[tour_output.index("Summary") :]
    assert "The advisor (section 10)" in summary


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
    # Temp files; SQLite and TCP with 1 and 4 threads; PostgreSQL and Redis with 1 and 4
    # threads when their servers answered (tests/test_tour_servers.py makes sure of that).
    servers = sum(f"\n  {name} " in summary for name in ("PostgreSQL", "Redis"))
    assert len(rows) == 5 + 2 * servers
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


def test_bench_runs_end_to_end_with_json(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`respool bench --quick --json F uncontended` prints the table and writes the JSON."""
    monkeypatch.setattr(bench, "QUICK", bench.Budget(scale=0.0, rounds_scale=0.0))
    target = tmp_path / "bench.json"
    assert cli.main(["bench", "--quick", "--json", str(target), "uncontended"]) == 0
    out = capsys.readouterr().out
    assert "two-lock floor: Lock+pop, Lock+append" in out
    assert "FixedPool: with acquire()" in out
    assert "goal: FixedPool with acquire() <= 1x the two-lock floor" in out
    assert "ThreadPoolExecutor" not in out  # only the scenario asked for
    data = json.loads(target.read_text(encoding="utf-8"))
    assert data["quick"] is True
    assert [s["name"] for s in data["scenarios"]] == ["uncontended"]


def _fake_scenarios(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace every scenario with one that records that it ran and returns no table."""
    ran: list[str] = []
    for name, scenario in list(bench.SCENARIOS.items()):

        def record(ctx: Context, name: str = name) -> list[Table]:
            ran.append(name)
            return []

        monkeypatch.setitem(bench.SCENARIOS, name, Scenario(name, scenario.summary, record))
    return ran


def test_bench_old_suite_names_still_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """`respool bench free_list acquire_release` (the 0.1 and 0.2 names) runs what they
    measured, the uncontended and contended scenarios, each once."""
    ran = _fake_scenarios(monkeypatch)
    assert cli.main(["bench", "--quick", "free_list", "acquire_release"]) == 0
    assert ran == ["uncontended", "contended"]


def test_bench_without_names_runs_every_scenario(monkeypatch: pytest.MonkeyPatch) -> None:
    """`respool bench` with no scenario runs them all, in order."""
    ran = _fake_scenarios(monkeypatch)
    assert cli.main(["bench", "--quick"]) == 0
    assert ran == list(bench.SCENARIOS)


def test_cli_knows_the_scenarios_bench_has() -> None:
    """The CLI lists scenario names without importing the benchmarks; they must not drift."""
    assert tuple(bench.SCENARIOS) == cli._SCENARIOS
    assert cli._ALIASES == bench.ALIASES


def test_unknown_bench_scenario_names_the_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    """`respool bench nosuch` names the valid scenarios, under the bench command's own usage."""
    with pytest.raises(SystemExit) as caught:
        cli.main(["bench", "nosuch"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "usage: respool bench" in err
    assert "'nosuch'" in err
    assert "uncontended, contended, worker, transient, health" in err


def _no_run(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> int:
        raise AssertionError("the run started although its arguments were refused")

    monkeypatch.setattr(bench, "main", refuse)


def test_bench_json_to_an_unwritable_path_is_refused_before_the_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--json` into a missing folder or onto a folder fails at once, exit 2, saying why."""
    _no_run(monkeypatch)
    for target in (tmp_path / "no" / "such" / "bench.json", tmp_path):
        with pytest.raises(SystemExit) as caught:
            cli.main(["bench", "--quick", "--json", str(target)])
        assert caught.value.code == 2
        err = capsys.readouterr().err
        assert "usage: respool bench" in err
        assert f"--json {target}: cannot write there" in err


def test_bench_checking_the_json_path_keeps_an_existing_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The early writability check neither empties an existing file nor leaves a new one."""
    calls: list[dict[str, object]] = []
    monkeypatch.setattr(bench, "main", lambda **kwargs: calls.append(kwargs) or 0)
    old = tmp_path / "old.json"
    old.write_text("previous run", encoding="utf-8")
    new = tmp_path / "new.json"
    assert cli.main(["bench", "--json", str(old), "health"]) == 0
    assert cli.main(["bench", "--json", str(new), "health"]) == 0
    assert old.read_text(encoding="utf-8") == "previous run"
    assert not new.exists()
    assert calls[0] == {
        "quick": False,
        "only": ["health"],
        "json_path": old,
        "plot_path": None,
    }


def test_bench_plot_without_matplotlib_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--plot` without matplotlib says how to install it, exit 2, before any timing."""
    _no_run(monkeypatch)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(SystemExit) as caught:
        cli.main(["bench", "--plot", str(tmp_path / "bench.png")])
    assert caught.value.code == 2
    assert "pip install 'respool[plot]'" in capsys.readouterr().err


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


#: Scripts not named after their scenario: benchmarks/asyncio.py, run as a script, would put
#: benchmarks/ first on sys.path and shadow the standard library's asyncio (and ray.py, Ray).
SCRIPTS = {"asyncio": "bench_asyncio", "ray": "bench_ray"}


@pytest.mark.parametrize("scenario", cli._SCENARIOS)
def test_each_benchmark_script_runs_its_own_scenario(
    scenario: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python benchmarks/X.py` runs scenario X only, passing its options through."""
    calls: list[dict[str, object]] = []
    monkeypatch.setattr(bench, "main", lambda **kwargs: calls.append(kwargs) or 0)
    script = f"{SCRIPTS.get(scenario, scenario)}.py"
    monkeypatch.setattr(sys, "argv", [script, "--quick"])
    with pytest.raises(SystemExit) as caught:
        runpy.run_path(str(ROOT / "benchmarks" / script), run_name="__main__")
    assert caught.value.code == 0
    assert calls == [{"quick": True, "only": [scenario], "json_path": None, "plot_path": None}]


def test_every_benchmark_script_is_a_scenario() -> None:
    """benchmarks/ holds one script per scenario, and no scenario without its script."""
    scripts = {path.stem for path in (ROOT / "benchmarks").glob("*.py")}
    assert scripts == {SCRIPTS.get(name, name) for name in bench.SCENARIOS}


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
