"""The tour's PostgreSQL and Redis sections: run on real servers, one line when missing."""

from __future__ import annotations

import contextlib
import io
import re
import socket

import pytest

from respool.tour import fixed_elastic, servers
from tests import services

pytestmark = pytest.mark.timeout(120)


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_sections() -> tuple[str, list[fixed_elastic.Section]]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        sections = servers.run(fixed_elastic.plan_for(quick=True))
    return out.getvalue(), sections


@pytest.mark.postgres
@pytest.mark.redis
def test_sections_time_both_servers_and_survive_the_kill() -> None:
    """Both sections time fresh against pooled and report the kill drill from its counts."""
    services.require_postgres()
    services.require_redis()
    text, sections = _run_sections()
    assert [r.resource for s in sections for r in s.results] == ["PostgreSQL"] * 2 + ["Redis"] * 2
    for section in sections:
        for result in section.results:
            # A pooled connection skips the connect: it must beat a fresh one here.
            assert result.best_pooled < result.micros[fixed_elastic.FRESH], result
        assert section.lesson is not None
        assert "check kept all 100 requests working (0 failed)" in section.lesson
        failed = int(re.search(r"without it (\d+) failed", section.lesson)[1])  # type: ignore[index]
        # The kill really killed: the unchecked pool met each dead connection once.
        assert failed == fixed_elastic.POOL_SIZE, section.lesson
    assert "skipped" not in text
    assert [line for line in text.splitlines() if len(line) > 80] == []


def test_sections_skip_in_one_line_without_a_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """No server: each section says so in one line, with the variable to set, and is left out."""
    port = _closed_port()
    monkeypatch.setenv(servers.POSTGRES_ENV, f"host=127.0.0.1 port={port} dbname=test")
    monkeypatch.setenv(servers.REDIS_ENV, f"redis://127.0.0.1:{port}/0")
    text, sections = _run_sections()
    assert sections == []
    skipped = [line.strip() for line in text.splitlines() if "skipped" in line]
    assert len(skipped) == 2, text
    assert skipped[0].startswith(f"skipped: no server on 127.0.0.1:{port}")
    assert servers.POSTGRES_ENV in text
    assert servers.REDIS_ENV in text
