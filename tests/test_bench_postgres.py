"""`respool bench postgres`: every row is timed against the real server on a tiny budget and
every goal is recorded; an unreachable server or a missing driver gives note rows, not a
failed run. Nothing here asserts a speed: the budget is far too small to mean anything."""

from __future__ import annotations

import asyncio
import socket
import sys
import uuid

import pytest

from respool.bench import postgres
from respool.bench._report import MISSING_HINT, ScenarioReport, Table, render, to_json
from respool.bench._run import Budget, Context
from tests.conftest import wait_until
from tests.services import PG_HOST, PG_PORT, pg_dsn, require_postgres

pytestmark = [pytest.mark.timeout(120), pytest.mark.postgres]

#: Every count at its floor and two rounds: each case runs, the figures mean nothing.
TINY = Budget(scale=0.0, rounds_scale=0.0, min_rounds=2)

TABLES = {
    "postgres-threads": [postgres.PSYCOPG_POOL, postgres.FIXED, postgres.LIFO, postgres.CONNECT],
    "postgres-asyncio-psycopg": [postgres.ASYNC_PSYCOPG_POOL, postgres.ASYNC_FIXED],
    "postgres-asyncio-asyncpg": [
        postgres.ASYNCPG_POOL,
        postgres.ASYNC_FIXED_ASYNCPG,
        postgres.ASYNCPG_NO_RESET,
        postgres.ASYNC_FIXED_ASYNCPG_RESET,
    ],
}


def _backends(application_name: str) -> int:
    """How many server backends carry *application_name* (ours alone: it is unique)."""
    import psycopg

    with psycopg.connect(require_postgres(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            (application_name,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_every_row_is_measured_against_the_real_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three tables, each row with figures, one baseline at 1.0x, every goal judged; and
    every connection the run opened is closed by its end."""
    require_postgres()
    name = f"respool-bench-test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv(postgres.ENVIRONMENT, f"{pg_dsn()}?application_name={name}")
    tables = postgres.run(Context(TINY))
    assert {t.key: [r.name for r in t.rows] for t in tables} == TABLES
    for table in tables:
        assert table.higher_is_better
        (baseline,) = [row for row in table.rows if row.baseline]
        assert baseline.name == table.baseline
        assert baseline.ratio == pytest.approx(1.0)
        for row in table.rows:
            assert row.measured, (table.key, row)
            assert row.best is not None and row.median is not None
            assert row.best >= row.median > 0  # k ops/s: the best round is the highest
            assert row.ratio is not None and row.ratio > 0
        assert table.goals
        for goal in table.goals:
            assert goal.verdict in ("meets", "MISSES"), (table.key, goal)
            assert goal.value.endswith("x)")  # "1.23x (best rounds 1.10x)"
    goals = [g.text for t in tables for g in t.goals]
    assert f"{postgres.FIXED} throughput >= 1x {postgres.PSYCOPG_POOL}" in goals
    assert f"{postgres.FIXED} throughput >= 20x {postgres.CONNECT}" in goals
    text = render(ScenarioReport("postgres", "PostgreSQL", tables))
    assert text.count("goal: ") == 6
    data = to_json([ScenarioReport("postgres", "PostgreSQL", tables)], quick=False, machine={})
    assert data["scenarios"]
    wait_until(lambda: _backends(name) == 0)  # the server ends a backend soon after its close


def test_an_unreachable_server_gives_note_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every row says where no server answered; goals are not judged; the run does not fail."""
    port = _closed_port()
    monkeypatch.setenv(postgres.ENVIRONMENT, f"postgresql://postgres@127.0.0.1:{port}/test")
    tables = postgres.run(Context(TINY))
    assert {t.key: [r.name for r in t.rows] for t in tables} == TABLES
    for table in tables:
        for row in table.rows:
            assert not row.measured
            assert row.note.startswith(f"PostgreSQL not reachable at 127.0.0.1:{port} (")
            assert postgres.ENVIRONMENT in row.note
        assert [g.verdict for g in table.goals] == ["not measured"] * len(table.goals)
    text = render(ScenarioReport("postgres", "PostgreSQL", tables))
    assert "PostgreSQL not reachable" in text
    assert "MISSES" not in text


def test_a_missing_driver_gives_install_hints(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without asyncpg its table's rows say how to install it (no server needed for that)."""
    monkeypatch.setitem(sys.modules, "asyncpg", None)
    with asyncio.Runner() as runner:
        table = postgres.asyncpg_table(Context(TINY), runner, postgres.server_url(), None)
    assert all(row.note == MISSING_HINT for row in table.rows)
    assert [g.verdict for g in table.goals] == ["not measured"] * 3


def test_without_the_baseline_peer_respool_is_still_measured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """psycopg_pool missing: its row says so, AsyncFixedPool is timed, with no ratio to show."""
    url = pg_dsn()
    require_postgres()
    monkeypatch.setitem(sys.modules, "psycopg_pool", None)
    with asyncio.Runner() as runner:
        table: Table = postgres.psycopg_async_table(Context(TINY), runner, url, None)
    assert table.row(postgres.ASYNC_PSYCOPG_POOL).note == MISSING_HINT
    fixed = table.row(postgres.ASYNC_FIXED)
    assert fixed.measured
    assert fixed.ratio is None and not fixed.baseline
    assert [g.verdict for g in table.goals] == ["not measured"]


def test_the_server_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """$RESPOOL_BENCH_POSTGRES names the server; unset or empty, the test server is used."""
    monkeypatch.delenv(postgres.ENVIRONMENT, raising=False)
    assert postgres.server_url() == postgres.DEFAULT_URL == pg_dsn(PG_HOST, PG_PORT)
    monkeypatch.setenv(postgres.ENVIRONMENT, "")
    assert postgres.server_url() == postgres.DEFAULT_URL
    monkeypatch.setenv(postgres.ENVIRONMENT, "postgresql://someone@db.example:6543/app")
    assert postgres.server_url() == "postgresql://someone@db.example:6543/app"
