"""Scenario ``asyncio``: ``AsyncFixedPool`` and ``AsyncElasticPool`` uncontended against an
``asyncio.Queue`` and psycopg_pool's ``AsyncConnectionPool``, 64 tasks on 8 resources, and the
``AsyncWorkerPool`` round trip, all on one event loop.

Run: ``python benchmarks/bench_asyncio.py [--quick] [--json FILE] [--plot FILE.png]``, the same
as ``respool bench asyncio``; see README.md here for what it measures and the goals.
"""

from __future__ import annotations

import sys

from respool import cli

if __name__ == "__main__":
    sys.exit(cli.main(["bench", *sys.argv[1:], "asyncio"]))
