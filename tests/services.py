"""The real servers the integration tests talk to, and the one skip policy for all of them.

PostgreSQL (127.0.0.1:5432, trust, database ``test``, user ``postgres``) and Redis
(127.0.0.1:6379) run on the developers' machines and on CI's. Without a server, a test that
needs it skips with the reason; when ``CI`` is ``"true"`` an unreachable server fails it
instead, so a broken CI service can never pass as "all skipped".

Tests that act on the server (terminating backends, killing clients) must act only on the
connections they made themselves: other tests, and other people's work, may share the server.
"""

from __future__ import annotations

import os
import socket
from typing import Final, NoReturn

import pytest

PG_HOST: Final = "127.0.0.1"
PG_PORT: Final = 5432
PG_DBNAME: Final = "test"
PG_USER: Final = "postgres"
REDIS_HOST: Final = "127.0.0.1"
REDIS_PORT: Final = 6379


def pg_conninfo(host: str = PG_HOST, port: int = PG_PORT, *, connect_timeout: int = 5) -> str:
    """A libpq conninfo for the test database (through a proxy: pass its host and port)."""
    return (
        f"host={host} port={port} dbname={PG_DBNAME} user={PG_USER} "
        f"connect_timeout={connect_timeout}"
    )


def pg_dsn(host: str = PG_HOST, port: int = PG_PORT) -> str:
    """The same as a URL, the spelling asyncpg takes."""
    return f"postgresql://{PG_USER}@{host}:{port}/{PG_DBNAME}"


def unavailable(reason: str) -> NoReturn:
    """Skip on a developer's machine; fail when CI promises the service."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the service must be available)", pytrace=False)
    pytest.skip(reason)


def require_postgres() -> str:
    """The conninfo of a PostgreSQL that answers ``SELECT 1`` with psycopg, or skip/fail."""
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - psycopg is in the test extra
        unavailable(f"psycopg is not installed: {exc}")
    conninfo = pg_conninfo()
    try:
        with psycopg.connect(conninfo) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        unavailable(f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT}: {exc}")
    return conninfo


def require_redis() -> tuple[str, int]:
    """The address of a Redis that answers ``PING``, or skip/fail."""
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=5) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            reply = sock.recv(64)
        if not reply.startswith(b"+PONG"):
            raise RuntimeError(f"PING answered {reply!r}")
    except Exception as exc:
        unavailable(f"Redis not reachable at {REDIS_HOST}:{REDIS_PORT}: {exc}")
    return (REDIS_HOST, REDIS_PORT)
