"""Scenario ``worker``: ``WorkerPool`` round trip and ``map`` against a bare ``SimpleQueue`` relay
and ``ThreadPoolExecutor``, and the memory of a long ``map``.

Run: ``python benchmarks/worker.py [--quick] [--json FILE] [--plot FILE.png]``, the same as
``respool bench worker``; see README.md here for what it measures and the goals.
"""

from __future__ import annotations

import sys

from respool import cli

if __name__ == "__main__":
    sys.exit(cli.main(["bench", *sys.argv[1:], "worker"]))
