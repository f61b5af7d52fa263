"""The tour's sections on real servers: PostgreSQL (psycopg) and Redis (redis-py).

The earlier sections use resources that need nothing installed; these two use the servers
most pools in the wild hold connections to, through respool's ready-made lifecycles
(:mod:`respool.contrib.psycopg`, :mod:`respool.contrib.redis`). Each section runs only when
its driver is installed and its server answers; otherwise it prints one line saying what is
missing and how to point the tour at a server (``RESPOOL_TOUR_POSTGRES``, a libpq conninfo,
and ``RESPOOL_TOUR_REDIS``, a redis URL), and the tour goes on.

Each section times a small operation with a brand-new connection against the same operation
on a pooled one, then reproduces *not quite there anymore* for real: the server kills every
pooled connection while the pools sit idle (``pg_terminate_backend``, ``CLIENT KILL``). A pool
whose lifecycle has a ``check`` replaces the dead connections before anyone meets them; one
without hands them out, and each fails once before the pool heals. The section acts only on
connections its own pools made.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack, closing
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from respool.fixed import FixedPool
from respool.lifecycle import Lifecycle
from respool.tour._text import heading, print_wrapped
from respool.tour.fixed_elastic import (
    FRESH,
    POOL_SIZE,
    THREADS,
    Plan,
    Section,
    _Contender,
    _measure_and_show,
    _pooled_contenders,
)

if TYPE_CHECKING:
    import psycopg
    import redis

__all__ = ["POSTGRES_ENV", "REDIS_ENV", "run"]

POSTGRES_ENV: Final = "RESPOOL_TOUR_POSTGRES"
REDIS_ENV: Final = "RESPOOL_TOUR_REDIS"
_POSTGRES_DEFAULT: Final = "host=127.0.0.1 port=5432 dbname=test user=postgres connect_timeout=3"
_REDIS_DEFAULT: Final = "redis://127.0.0.1:6379/0"
#: Requests made after the server killed the pooled connections.
_AFTER_KILL: Final = 100
_respool_log: Final = logging.getLogger("respool")


def run(plan: Plan) -> list[Section]:
    """The PostgreSQL and Redis sections, each skipped with one line when it cannot run."""
    sections = []
    for title, section in (("7. PostgreSQL connections", _postgres), ("8. Redis", _redis)):
        heading(title)
        done = section(plan)
        if done is not None:
            sections.append(done)
    return sections


def _skipped(why: str) -> None:
    print_wrapped(f"skipped: {why}", "  ")


def _reachable(host: str, port: int) -> str | None:
    """None if something listens at *host*:*port*, else why not (a fast, driver-free probe)."""
    try:
        socket.create_connection((host, port), timeout=2.0).close()
    except OSError as exc:
        return f"no server on {host}:{port} ({exc.strerror or exc})"
    return None


def _kill_drill(
    lifecycle: Lifecycle[Any],
    ids: Callable[[Any], int],
    kill: Callable[[list[int]], None],
    request: Callable[[Any], None],
) -> tuple[int, int, float, int]:
    """Two idle pools, one with the lifecycle's check and one without; the server kills all
    their connections; then :data:`_AFTER_KILL` requests on each.

    Returns (failures without check, failures with check, seconds the checked pool took,
    connections the checked pool replaced)."""
    unchecked_lifecycle = dataclasses.replace(lifecycle, check=None)
    # Oldest idle first: the requests meet every dead connection before any replacement. With
    # the default (most recent first), a replacement made quickly would be taken again and
    # again while dead ones stayed below it, met only by the full-capacity check.
    with (
        FixedPool(unchecked_lifecycle, size=POOL_SIZE, timeout=10, order="fifo") as unchecked,
        FixedPool(lifecycle, size=POOL_SIZE, timeout=10, order="fifo") as checked,
    ):
        victims = []
        for pool in (unchecked, checked):
            with ExitStack() as stack:
                held = [stack.enter_context(pool.acquire()) for _ in range(POOL_SIZE)]
                victims += [ids(conn) for conn in held]
        kill(victims)
        # The pool logs every refused reset with its traceback, as a service would want;
        # here the failures are the point, and the counts say it better.
        quiet, _respool_log.disabled = _respool_log.disabled, True
        try:
            failed_unchecked = _requests(unchecked, request)
            started = time.perf_counter()
            failed_checked = _requests(checked, request)
            took = time.perf_counter() - started
        finally:
            _respool_log.disabled = quiet
        replaced = checked.stats().check_failures
        healed = _all_at_once(unchecked, request) and _all_at_once(checked, request)
        if not healed:
            raise RuntimeError("a pool did not get back to full capacity after the kill")
    return failed_unchecked, failed_checked, took, replaced


def _requests(pool: FixedPool[Any], request: Callable[[Any], None]) -> int:
    """Make :data:`_AFTER_KILL` requests one after another; return how many failed."""
    failed = 0
    for _ in range(_AFTER_KILL):
        try:
            with pool.acquire() as conn:
                request(conn)
        except Exception:
            failed += 1
    return failed


def _all_at_once(pool: FixedPool[Any], request: Callable[[Any], None]) -> bool:
    """Can :data:`POOL_SIZE` callers at once each make a request? (Full capacity.)"""
    with ExitStack() as stack:
        held = [stack.enter_context(pool.acquire()) for _ in range(POOL_SIZE)]
        for conn in held:
            request(conn)
    return True


def _print_drill(server: str, outcome: tuple[int, int, float, int]) -> str:
    failed_unchecked, failed_checked, took, replaced = outcome
    print_wrapped(
        f"pool without check: {failed_unchecked} of the next {_AFTER_KILL} requests failed,"
        " each on a dead connection, which its reset then refused, so the pool destroyed it"
        f" and made another: all {POOL_SIZE} work again, at the price of those failures.",
        "    ",
        "      ",
    )
    print_wrapped(
        f"pool with check: {failed_checked} of {_AFTER_KILL} failed; its check found"
        f" {replaced} dead connections and replaced them before lending them. The"
        f" {_AFTER_KILL} requests took {took * 1000:.0f} ms.",
        "    ",
        "      ",
    )
    return (
        f"{server}: after the server killed every pooled connection, check kept all"
        f" {_AFTER_KILL} requests working ({failed_checked} failed); without it"
        f" {failed_unchecked} failed before the pool healed."
    )


# -- PostgreSQL --------------------------------------------------------------------------------


def _postgres_server() -> tuple[str, str, int, str | None]:
    """The conninfo, host and port of the PostgreSQL to use, and why it cannot be (None: it
    can)."""
    if importlib.util.find_spec("psycopg") is None:
        return "", "", 0, "psycopg is not installed (pip install 'respool[psycopg]')"
    import psycopg

    conninfo = os.environ.get(POSTGRES_ENV, _POSTGRES_DEFAULT)
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    host, port = str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432)
    why = _reachable(host, port)
    if why is None:
        try:
            psycopg.connect(conninfo).close()
        except psycopg.Error as exc:
            why = f"PostgreSQL at {host}:{port} refused us ({str(exc).strip()})"
    if why is not None:
        why += f"; set {POSTGRES_ENV} to a conninfo to run this section"
    return conninfo, host, port, why


def postgres_target() -> str | None:
    """The conninfo of a PostgreSQL server that answers, or None (section 7 says why)."""
    conninfo, _host, _port, why = _postgres_server()
    return None if why is not None else conninfo


def _postgres(plan: Plan) -> Section | None:
    conninfo, host, port, why = _postgres_server()
    if why is not None:
        _skipped(why + ".")
        return None
    import psycopg

    from respool.contrib.psycopg import connections

    lifecycle = connections(conninfo, autocommit=True)
    print(f"  A PostgreSQL server at {host}:{port}; the driver is psycopg 3.")
    print("  lifecycle = respool.contrib.psycopg.connections(conninfo, autocommit=True):")
    print("  create = connect; reset = roll back what a user left open (no round trip when")
    print("  nothing is); check = a one-round-trip query; destroy = close.")
    print("  Operation: get a connection, run SELECT 1.")
    print("  Fresh: connect (the server starts a process per connection), query, close.")

    def select_one(conn: psycopg.Connection[Any]) -> None:
        if conn.execute("SELECT 1").fetchone() != (1,):
            raise RuntimeError("SELECT 1 did not answer 1")

    def fresh() -> None:
        with closing(psycopg.connect(conninfo, autocommit=True)) as conn:
            select_one(conn)

    contender = _Contender(FRESH, "new connection per op", fresh)
    with _pooled_contenders(lifecycle, "tour-postgres", select_one) as pooled:
        results = _measure_and_show(
            "PostgreSQL", [contender, *pooled], plan.postgres_ops, [1, THREADS], plan
        )

    print()
    print("  Not quite there anymore: the server terminates every pooled connection")
    print("  (pg_terminate_backend) while two FixedPools sit idle, one without a check.")

    def backend(conn: psycopg.Connection[Any]) -> int:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        return int(row[0]) if row else -1

    def terminate(pids: list[int]) -> None:
        with psycopg.connect(conninfo, autocommit=True) as admin:
            for pid in pids:
                admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))

    outcome = _kill_drill(lifecycle, backend, terminate, select_one)
    return Section(results, _print_drill("PostgreSQL", outcome))


# -- Redis -------------------------------------------------------------------------------------


def _redis(plan: Plan) -> Section | None:
    if importlib.util.find_spec("redis") is None:
        _skipped("redis-py is not installed (pip install 'respool[redis]').")
        return None
    import redis

    from respool.contrib.redis import clients

    url = os.environ.get(REDIS_ENV, _REDIS_DEFAULT)
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    why = _reachable(host, port)
    if why is None:
        try:
            with closing(redis.Redis.from_url(url, socket_timeout=3)) as probe:
                probe.ping()
        except redis.RedisError as exc:
            why = f"Redis at {host}:{port} did not answer PING ({exc})"
    if why is not None:
        _skipped(f"{why}; set {REDIS_ENV} to a redis:// URL to run this section.")
        return None

    key = f"respool-tour:{uuid.uuid4().hex}"
    lifecycle: Lifecycle[redis.Redis] = clients(url)
    print(f"  A Redis server at {host}:{port}; the driver is redis-py.")
    print("  lifecycle = respool.contrib.redis.clients(url): each resource a client")
    print("  bound to one connection; reset refuses a connection with a reply nobody")
    print("  read; check = PING; destroy = close.")
    print("  Operation: get a client, GET a key.")
    print("  Fresh: a new client and connection per operation.")

    def get(client: redis.Redis) -> None:
        if client.get(key) != b"tour":
            raise RuntimeError(f"GET {key} did not answer what was SET")

    def fresh() -> None:
        with closing(redis.Redis.from_url(url, single_connection_client=True)) as client:
            get(client)

    with closing(redis.Redis.from_url(url)) as admin:
        admin.set(key, b"tour", ex=600)
        try:
            contender = _Contender(FRESH, "new connection per op", fresh)
            with _pooled_contenders(lifecycle, "tour-redis", get) as pooled:
                results = _measure_and_show(
                    "Redis", [contender, *pooled], plan.redis_ops, [1, THREADS], plan
                )

            print()
            print("  Not quite there anymore: the server kills every pooled connection")
            print("  (CLIENT KILL) while two FixedPools sit idle, one without a check.")

            def client_id(client: redis.Redis) -> int:
                return int(client.client_id())

            def kill(ids: list[int]) -> None:
                for victim in ids:
                    admin.client_kill_filter(_id=str(victim))

            outcome = _kill_drill(lifecycle, client_id, kill, get)
        finally:
            admin.delete(key)
    return Section(results, _print_drill("Redis", outcome))
