"""`respool bench ray`: the scenario's quick run on a local Ray produces its three tables, each
with its baseline and ratios, and the kill drill keeps the pool's promises; without Ray it
says it was skipped. No speed is asserted (the machines are shared)."""

from __future__ import annotations

import json

import pytest

from respool.bench import SCENARIOS
from respool.bench import ray as ray_bench
from respool.bench._contenders import installed
from respool.bench._report import ScenarioReport, Table, render, to_json
from respool.bench._run import Budget, Context

pytestmark = pytest.mark.timeout(120)

#: Every count at its floor, two rounds: the quick run's code paths in a third of its time
#: (40 tasks a round, maps of 500 and 1,000 items, two kills).
TINY = Budget(scale=0.0, rounds_scale=0.0, min_rounds=2)

needs_ray = pytest.mark.skipif(
    not installed("ray"), reason="ray is not installed (pip install 'respool[ray]')"
)


@pytest.fixture(scope="module")
def tables() -> list[Table]:
    """One quick run of the scenario, which starts Ray only if it is not running, and stops
    only what it started."""
    import ray

    was_running = ray.is_initialized()
    tables = ray_bench.run(Context(TINY))
    assert ray.is_initialized() == was_running
    return tables


def test_the_scenario_is_registered() -> None:
    """`respool bench ray` runs it."""
    assert SCENARIOS["ray"].run is ray_bench.run


def test_without_ray_the_scenario_says_it_was_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Ray: one table whose note says so and what to install, and no error."""
    monkeypatch.setattr(ray_bench, "installed", lambda module: False)
    tables = ray_bench.run(Context(TINY))
    text = render(ScenarioReport("ray", "RayWorkerPool", tables))
    assert "skipped: ray is not installed (pip install 'respool[ray]')" in text
    assert "FAILED" not in text


@needs_ray
def test_quick_run_prints_every_table_with_its_baseline(tables: list[Table]) -> None:
    """Three tables, each with one baseline at 1.0 and measured rows with ratios to it."""
    assert [t.key for t in tables] == ["ray-overhead", "ray-map-memory", "ray-kill-drill"]
    for table in tables:
        baselines = [row for row in table.rows if row.baseline]
        assert len(baselines) == 1, table.key
        assert baselines[0].ratio == pytest.approx(1.0)
        for row in table.rows:
            assert row.measured, (table.key, row)
            assert row.best is not None and row.best > 0
            assert row.ratio is not None and row.ratio > 0
        assert table.goals, table.key
    text = render(ScenarioReport("ray", "RayWorkerPool", tables))
    assert "Per-task overhead" in text
    assert "A long map" in text
    assert "Kill drill" in text
    data = to_json([ScenarioReport("ray", "RayWorkerPool", tables)], quick=True, machine={})
    json.dumps(data, allow_nan=False)


@needs_ray
def test_overhead_table_has_the_ratio_row(tables: list[Table]) -> None:
    """RayWorkerPool.map against ActorPool.map on the same kind of actors, with its goal."""
    overhead = tables[0]
    assert overhead.baseline == ray_bench.ACTOR_POOL
    mine = overhead.row(ray_bench.RAY_POOL)
    assert mine.ratio is not None
    assert mine.extra["vs_ideal"] is not None
    (goal,) = overhead.goals
    assert goal.text == f"{ray_bench.RAY_POOL} <= 1.1x ActorPool"
    assert goal.verdict in ("meets", "MISSES")


@needs_ray
def test_long_map_reports_memory_growth(tables: list[Table]) -> None:
    """Every map row says how much the driver's peak RSS grew, and the flatness goal."""
    memory = tables[1]
    for row in memory.rows:
        grew = row.extra["grew"]
        assert isinstance(grew, float)
    assert "flat from" in memory.goals[0].text


@needs_ray
def test_kill_drill_keeps_every_promise(tables: list[Table]) -> None:
    """No hung future, the pool whole again after each kill, every failure counted: these
    are the pool's promises, not speed, so they are asserted."""
    drill = tables[2]
    for goal in drill.goals:
        assert goal.met, goal
    killed = drill.row(ray_bench.KILLED)
    assert killed.extra["hung"] == 0
    failed = killed.extra["failed"]
    assert isinstance(failed, int)
    assert failed >= 1  # each kill costs the task its actor was running (or was sent next)
    assert "actors_lost=" in drill.notes[0]
    assert "actors_replaced=" in drill.notes[0]


@needs_ray
def test_a_running_ray_is_used_and_left_running() -> None:
    """Ray already initialised by the caller: the scenario's session joins it and leaves it
    running."""
    import ray

    was_running = ray.is_initialized()
    if not was_running:
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        with ray_bench.ray_session() as started:
            assert not started
        assert ray.is_initialized()
    finally:
        if not was_running:
            ray.shutdown()
