"""Scenario ``contended``: eight threads on four resources, with no hold and with a hold across
``sleep(0)``: throughput and acquire waits, against a ``queue.Queue`` used as a pool.

Run: ``python benchmarks/contended.py [--quick] [--json FILE] [--plot FILE.png]``, the same as
``respool bench contended``; see README.md here for what it measures and the goals.
"""

from __future__ import annotations

import sys

from respool import cli

if __name__ == "__main__":
    sys.exit(cli.main(["bench", *sys.argv[1:], "contended"]))
