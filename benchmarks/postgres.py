"""Scenario ``postgres``: respool's pools with real PostgreSQL connections (``SELECT 1``)
against psycopg_pool's ``ConnectionPool`` and ``AsyncConnectionPool``, asyncpg's own pool, a
hand-written ``queue.LifoQueue`` pool and a connection per request.

Run: ``python benchmarks/postgres.py [--quick] [--json FILE] [--plot FILE.png]``, the
same as ``respool bench postgres``. The server is ``$RESPOOL_BENCH_POSTGRES`` (a URL), by
default ``postgresql://postgres@127.0.0.1:5432/test``; without it, the rows say so. See
README.md here for what it measures and the goals.
"""

from __future__ import annotations

import sys

from respool import cli

if __name__ == "__main__":
    sys.exit(cli.main(["bench", *sys.argv[1:], "postgres"]))
