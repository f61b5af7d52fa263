"""What the health options cost per acquire, and a fault drill.

Run: ``python benchmarks/health.py`` (or ``respool bench health``; ``--quick`` for a fast,
less precise run). Prints the uncontended acquire of a ``FixedPool`` with no option, with
``check_after`` and with ``max_lifetime`` next to the two-lock floor; then drops every idle
connection of a pool on a fake server and serves 100 acquires (goal: no failure, the pool
full again within 0.1 s), and lets housekeeping alone heal another pool (``keepalive``).
"""

from __future__ import annotations

import sys

from respool import bench

if __name__ == "__main__":
    sys.exit(bench.main(quick="--quick" in sys.argv[1:], only=["health"]))
