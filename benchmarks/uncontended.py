"""Scenario ``uncontended``: one thread takes a resource and gives it back: respool's free lists
against the two-lock floor, the standard library's queues and the peers (SQLAlchemy,
psycopg_pool, redis-py).

Run: ``python benchmarks/uncontended.py [--quick] [--json FILE] [--plot FILE.png]``, the same as
``respool bench uncontended``; see README.md here for what it measures and the goals.
"""

from __future__ import annotations

import sys

from respool import cli

if __name__ == "__main__":
    sys.exit(cli.main(["bench", *sys.argv[1:], "uncontended"]))
