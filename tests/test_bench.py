"""`respool bench`: every scenario runs on a tiny budget; reports, JSON, chart and failures.

No test here asserts anything about speed: the machines are shared and the budget is far too
small for the figures to mean anything. What is checked is that every case runs, every table
and goal is printed and recorded, and that a broken case fails the run.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from respool import bench
from respool.bench import _contenders, asyncio_, contended
from respool.bench._report import (
    MISSING_HINT,
    Goal,
    Row,
    ScenarioReport,
    Table,
    render,
    render_table,
)
from respool.bench._run import Budget, Context, Progress, Scenario
from respool.bench._timing import Spread, repeated

#: Every count at its floor and two rounds: each case runs, the figures mean nothing.
TINY = Budget(scale=0.0, rounds_scale=0.0, min_rounds=2)
PEER_MODULES = ("sqlalchemy", "psycopg_pool", "redis")


@dataclass
class Run:
    """The outcome of one whole tiny run, shared by the tests that read it."""

    status: int
    out: str
    progress: str
    data: dict[str, Any]
    plot: Path | None


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Every scenario once, on the tiny budget, with JSON (and a chart where matplotlib is)."""
    folder = tmp_path_factory.mktemp("bench")
    out, err = io.StringIO(), io.StringIO()
    plot = folder / "bench.png" if _installed("matplotlib") else None
    status = bench.main(
        budget=TINY,
        json_path=folder / "bench.json",
        plot_path=plot,
        out=out,
        progress=Progress(err, tty=False),
    )
    data = json.loads((folder / "bench.json").read_text(encoding="utf-8"))
    return Run(status, out.getvalue(), err.getvalue(), data, plot)


def _installed(module: str) -> bool:
    return _contenders.installed(module)


def _tables(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for scenario in data["scenarios"]:
        yield from scenario["tables"]


def test_tiny_run_prints_every_scenario(tiny_run: Run) -> None:
    """A tiny run succeeds and prints every scenario's tables with their goals."""
    assert tiny_run.status == 0, tiny_run.out
    for name in bench.SCENARIOS:
        assert f"== {name}:" in tiny_run.out
    for title in (
        "Uncontended: one thread",
        "Contended: 8 threads on 4 resources, no hold",
        "Contended: 8 threads on 4 resources, holding across sleep(0)",
        "submit(noop).result() round trip",
        "map throughput",
        "Memory of a long map",
        "TransientPool hot path",
        "Buffers of 8 MiB",
        "Health options",
        "Fault drill",
        "asyncio, uncontended: one task takes a resource",
        "asyncio, contended: 64 tasks on 8 resources",
        "asyncio, one task at a time: await submit(noop)",
    ):
        assert title in tiny_run.out
    assert "FAILED" not in tiny_run.out
    for goal in (
        "FixedPool with acquire() <= 1x the two-lock floor",
        "FixedPool(bounded) throughput >= 1x queue.Queue (stretch 1.5x)",
        "FixedPool(bounded) longest overtaken wait <= its window",
        "TransientPool get()+put() <= 3x deque pop+append",
        "WorkerPool(workers=1) <= 1.3x the bare SimpleQueue round trip",
        "AsyncFixedPool async with acquire() <= 1.5x asyncio.Queue",
        "AsyncFixedPool >= 4x cheaper than psycopg_pool AsyncConnectionPool",
        "AsyncFixedPool(bounded) throughput >= 1x asyncio.Queue",
    ):
        assert f"goal: {goal}" in tiny_run.out
    assert "Strict order, FixedPool(fifo)" in tiny_run.out


def test_json_holds_every_table_with_machine_info(tiny_run: Run) -> None:
    """The JSON names the machine and holds every table: one baseline, ratios, goals."""
    data = tiny_run.data
    assert {"python", "platform", "cpu_count", "date", "processor"} <= set(data["machine"])
    assert data["quick"] is False
    assert [s["name"] for s in data["scenarios"]] == list(bench.SCENARIOS)
    assert all(s["status"] == "ok" and s["error"] is None for s in data["scenarios"])
    keys = [table["key"] for table in _tables(data)]
    assert len(keys) == len(set(keys))
    assert {"uncontended", "contended", "contended-hold", "worker-round-trip"} <= set(keys)
    for table in _tables(data):
        baselines = [row for row in table["rows"] if row["baseline"]]
        if table["key"] in ("health-drill", "ray"):  # (ray: the note that Ray is missing)
            assert baselines == []
            continue
        assert len(baselines) == 1, table["key"]
        for row in table["rows"]:
            if not row["measured"]:
                note = row["note"]
                # Off CI the PostgreSQL scenario may find no server; CI promises one.
                offline = os.environ.get("CI") != "true" and note.startswith(
                    "PostgreSQL not reachable"
                )
                assert note == MISSING_HINT or note.startswith("not in this build") or offline
                continue
            if table["key"] == "worker-map-memory":  # a tiny map may not grow the process
                assert row["best"] == row["median"] >= 0
                continue
            assert row["best"] > 0
            assert row["median"] > 0
            assert 0 < row["ns_per_op"]["min"] <= row["ns_per_op"]["median"]
            if row["baseline"]:
                assert row["ratio"] == pytest.approx(1.0)
        for goal in table["goals"]:
            assert goal["verdict"] in ("meets", "MISSES", "not measured")


def test_contended_rows_carry_waits_and_fairness(tiny_run: Run) -> None:
    """Every contended row has p50/p99/max waits; respool's rows the overtaken wait and window."""
    for table in _tables(tiny_run.data):
        if not table["key"].startswith("contended"):
            continue
        assert table["higher_is_better"] is True
        rows = {row["name"]: row for row in table["rows"]}
        for row in rows.values():
            if row["measured"]:
                assert row["extra"]["p50_us"] <= row["extra"]["p99_us"] <= row["extra"]["max_us"]
        bounded = rows[contended.BOUNDED]["extra"]
        assert bounded["window_us"] == pytest.approx(1000.0)
        assert bounded["overtaken_max_us"] >= 0
        assert isinstance(bounded["overtakes"], int)
        fifo = rows[contended.FIFO]["extra"]
        assert "window_us" not in fifo
        assert fifo["overtakes"] == 0


@pytest.mark.parametrize("module", PEER_MODULES)
def test_installed_peers_are_measured(tiny_run: Run, module: str) -> None:
    """Each installed peer has measured rows in the uncontended and contended tables."""
    if not _installed(module):
        pytest.skip(f"{module} is not installed")
    prefix = {"sqlalchemy": "SQLAlchemy", "psycopg_pool": "psycopg_pool", "redis": "redis-py"}
    keys = {"uncontended", "contended", "contended-hold"}
    if module == "psycopg_pool":
        keys |= {"asyncio-uncontended", "asyncio-contended"}
    seen = set()
    for table in _tables(tiny_run.data):
        if table["key"] in keys:
            seen.add(table["key"])
            (row,) = [r for r in table["rows"] if r["name"].startswith(prefix[module])]
            assert row["measured"], (table["key"], row)
    assert seen == keys


def test_plot_is_written(tiny_run: Run) -> None:
    """With matplotlib installed, --plot writes a PNG."""
    if tiny_run.plot is None:
        pytest.skip("matplotlib is not installed")
    assert tiny_run.plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_progress_prints_plain_lines_off_a_terminal(tiny_run: Run) -> None:
    """Off a terminal the progress display prints one plain line per round, on stderr."""
    lines = tiny_run.progress.splitlines()
    assert "\r" not in tiny_run.progress
    assert any(line.startswith("[contended hold ") and "round 2" in line for line in lines)
    assert any(line.startswith("[uncontended 1/") for line in lines)
    assert "[contended" not in tiny_run.out


def test_progress_rewrites_one_line_on_a_terminal() -> None:
    """On a terminal each step overwrites the last, and clear() leaves the line empty."""
    stream = io.StringIO()
    progress = Progress(stream, tty=True)
    progress.step("contended", 3, 12, 1, "FixedPool(bounded) a long name")
    progress.step("contended", 4, 12, 1, "short")
    progress.clear()
    text = stream.getvalue()
    assert text.startswith("\r[contended 3/12] FixedPool(bounded) a long name…")
    assert "\r[contended 4/12] short…" in text
    assert "\n" not in text
    assert text.endswith("\r")


def test_no_peer_is_imported_with_respool() -> None:
    """Importing respool, its CLI and its benchmarks imports no peer and no matplotlib."""
    code = (
        "import sys, respool, respool.cli, respool.bench\n"
        "loaded = [m for m in ('sqlalchemy', 'psycopg_pool', 'redis', 'matplotlib')"
        " if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_missing_peers_say_how_to_install_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the peers their rows say how to install them and their goals are unjudged."""
    for module in PEER_MODULES:
        monkeypatch.setitem(sys.modules, module, None)
    tables = bench.SCENARIOS["uncontended"].run(Context(TINY))
    table = tables[0]
    for name in _contenders.PEERS:
        row = table.row(name)
        assert not row.measured
        assert row.note == MISSING_HINT
    assert [g.verdict for g in table.goals][1:] == ["not measured", "not measured"]
    lines = render_table(table).splitlines()
    (line,) = [line for line in lines if line.startswith("  SQLAlchemy QueuePool")]
    assert line.endswith(MISSING_HINT)


def test_a_failing_case_fails_the_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A case that raises in one of its threads fails its scenario and the run (status 1),
    the other scenarios still run, and the JSON records the failure."""

    def broken(size: int) -> _contenders.Borrower:
        def get() -> object:
            raise RuntimeError("the resource was dirty")

        return _contenders.Borrower(get, lambda item: None, lambda: None)

    monkeypatch.setitem(_contenders.BASELINES, "Condition+deque", broken)
    out = io.StringIO()
    status = bench.main(
        only=["contended", "health"],
        budget=TINY,
        json_path=tmp_path / "bench.json",
        out=out,
        progress=Progress(io.StringIO(), tty=False),
    )
    assert status == 1
    text = out.getvalue()
    assert "FAILED: RuntimeError: the resource was dirty" in text
    assert "Health options" in text
    assert "FAILED: contended" in text
    data = json.loads((tmp_path / "bench.json").read_text(encoding="utf-8"))
    statuses = {s["name"]: (s["status"], s["error"]) for s in data["scenarios"]}
    assert statuses["contended"] == ("failed", "RuntimeError: the resource was dirty")
    assert statuses["health"] == ("ok", None)


def test_a_lost_acquire_fails_instead_of_looking_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """A contended case whose operation skips acquires (so fewer waits are recorded than
    operations timed) fails rather than reporting a throughput for work it did not do."""
    real = contended._operation

    def skipping(borrower: _contenders.Borrower, hold: bool, waits: list[float]) -> Any:
        op = real(borrower, hold, waits)
        return op if borrower.stats is None else (lambda: None)

    monkeypatch.setattr(contended, "_operation", skipping)
    with pytest.raises(RuntimeError, match="acquires recorded"):
        contended.measure(Context(TINY), hold=False)


def test_scenario_names_and_aliases_resolve() -> None:
    """No name means all; an alias stands for what it measured; each scenario runs once."""
    assert bench.resolve([]) == list(bench.SCENARIOS)
    assert bench.resolve(["acquire_release"]) == ["uncontended", "contended"]
    assert bench.resolve(["contended", "free_list", "worker"]) == [
        "contended",
        "uncontended",
        "worker",
    ]
    with pytest.raises(ValueError, match="choose from uncontended, contended, worker"):
        bench.resolve(["nosuch"])


def test_budget_shares_the_full_run() -> None:
    """Counts scale with a floor; rounds never drop below the minimum a median needs."""
    assert bench.FULL.n(200_000) == 200_000
    assert bench.QUICK.n(200_000) == 20_000
    assert TINY.n(200_000, 20) == 20
    assert bench.FULL.rounds(7) == 7
    assert bench.QUICK.rounds(7) == 3
    assert TINY.rounds(15) == 2


def test_repeated_keeps_every_round_in_order() -> None:
    """repeated() keeps each case's rounds; steps are reported in interleaved order."""
    steps: list[tuple[int, int, int, str]] = []
    spreads = repeated(
        [("a", lambda: None), ("b", lambda: None)],
        10,
        3,
        on_step=lambda *step: steps.append(step),
    )
    assert [s.name for s in spreads] == ["a", "b"]
    assert all(len(s.rounds) == 3 for s in spreads)
    assert steps[:3] == [(1, 6, 1, "a"), (2, 6, 1, "b"), (3, 6, 2, "a")]
    spread = Spread("x", (3.0, 1.0, 2.0, 10.0))
    assert (spread.min, spread.median, spread.max) == (1.0, 2.5, 10.0)


def test_text_table_shows_ratios_notes_and_verdicts() -> None:
    """A rendered table marks its baseline, shows ratios and spells each goal's verdict."""
    table = Table(
        key="t",
        title="A table",
        unit="ns/op",
        baseline="base",
        rows=[
            Row("base", 100.0, 110.0, 1.0, 1.0, baseline=True),
            Row("pool", 50.0, 55.0, 0.5, 0.5),
            Row("peer", note=MISSING_HINT),
        ],
        goals=[
            Goal("pool <= 1x base", "0.50x", True),
            Goal("pool <= 0.1x base", "0.50x", False),
            Goal("pool beats peer", MISSING_HINT, None),
        ],
        notes=["A note."],
    )
    text = render(ScenarioReport("demo", "what it shows", [table]))
    lines = text.splitlines()
    assert lines[0] == "== demo: what it shows"
    assert any(line.startswith("* base") and line.endswith("1.00") for line in lines)
    assert any(line.startswith("  pool") and line.endswith("0.50") for line in lines)
    assert "-> meets" in text
    assert "-> MISSES" in text
    assert "-> not measured" in text
    assert lines[-1] == "A note."


def test_a_scenario_that_raises_is_reported_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    """main() reports a scenario's exception as FAILED with status 1, not a traceback crash."""

    def explode(ctx: Context) -> list[Table]:
        raise ValueError("no such resource")

    monkeypatch.setitem(bench.SCENARIOS, "health", Scenario("health", "boom", explode))
    out = io.StringIO()
    assert bench.main(only=["health"], budget=TINY, out=out) == 1
    assert "FAILED: ValueError: no such resource" in out.getvalue()


def test_asyncio_scenario_measures_the_async_pools(tiny_run: Run) -> None:
    """The asyncio tables time every row (the async pools included), with waits and fairness."""
    tables = {t["key"]: t for t in _tables(tiny_run.data)}
    for key in ("asyncio-uncontended", "asyncio-contended", "asyncio-worker"):
        for row in tables[key]["rows"]:
            if row["name"].startswith("psycopg_pool") and not _installed("psycopg_pool"):
                continue
            assert row["measured"], (key, row)
    contended_rows = {row["name"]: row for row in tables["asyncio-contended"]["rows"]}
    for row in contended_rows.values():
        if row["measured"]:
            assert row["extra"]["p50_us"] <= row["extra"]["p99_us"] <= row["extra"]["max_us"]
    bounded = contended_rows[asyncio_.BOUNDED]["extra"]
    assert bounded["window_us"] > 0
    assert bounded["overtaken_max_us"] >= 0
    assert contended_rows[asyncio_.FIFO]["extra"]["overtakes"] == 0
    for goal in tables["asyncio-contended"]["goals"] + tables["asyncio-uncontended"]["goals"][:1]:
        assert goal["verdict"] in ("meets", "MISSES"), goal


def test_asyncio_rows_of_a_missing_class_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without respool's asyncio pools their rows say so; the baselines are still timed."""
    import respool

    monkeypatch.delattr(respool, "AsyncFixedPool", raising=False)
    monkeypatch.delattr(respool, "AsyncElasticPool", raising=False)
    uncontended, contended_table, _worker = asyncio_.run(Context(TINY))
    row = uncontended.row(asyncio_.FIXED_WITH)
    assert not row.measured
    assert row.note == "not in this build (respool.AsyncFixedPool)"
    assert uncontended.row(asyncio_.QUEUE).measured
    assert [g.verdict for g in uncontended.goals] == ["not measured", "not measured"]
    assert not contended_table.row(asyncio_.BOUNDED).measured
    assert contended_table.row(asyncio_.CONTENDED_BASELINE).measured
    assert [g.verdict for g in contended_table.goals] == ["not measured", "not measured"]
    assert "not in this build" in render_table(contended_table)


def test_a_failing_asyncio_case_fails_the_scenario(monkeypatch: pytest.MonkeyPatch) -> None:
    """An asyncio case that raises fails the asyncio scenario instead of looking fast."""

    async def broken(size: int) -> _contenders.AsyncBorrower:
        async def get() -> object:
            raise RuntimeError("the stream was dirty")

        async def put(item: object) -> None:
            pass

        return _contenders.AsyncBorrower(get, put, asyncio_._nothing)

    monkeypatch.setitem(_contenders.ASYNC_PEERS, "psycopg_pool AsyncConnectionPool", broken)
    out = io.StringIO()
    assert bench.main(only=["asyncio"], budget=TINY, out=out) == 1
    assert "FAILED: RuntimeError: the stream was dirty" in out.getvalue()
