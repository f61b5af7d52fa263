"""Scenario ``health``: What the health options cost per acquire, and a fault drill.

Run: ``python benchmarks/health.py [--quick] [--json FILE] [--plot FILE.png]``, the same as
``respool bench health``; see README.md here for what it measures and the goals.
"""

from __future__ import annotations

import sys

from respool import cli

if __name__ == "__main__":
    sys.exit(cli.main(["bench", *sys.argv[1:], "health"]))
