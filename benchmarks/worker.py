"""WorkerPool against ThreadPoolExecutor and a bare queue hand-off.

Run: ``python benchmarks/worker.py`` (or ``respool bench worker``; ``--quick`` for a fast,
less precise run). Prints the ``submit(noop).result()`` round trip of ``WorkerPool`` next to
``ThreadPoolExecutor(1)`` and a bare ``SimpleQueue`` relay thread, then how much memory a long
``WorkerPool.map`` takes next to ``Executor.map``, each as ratios measured in the same run.
"""

from __future__ import annotations

import sys

from respool import bench

if __name__ == "__main__":
    sys.exit(bench.main(quick="--quick" in sys.argv[1:], only=["worker"]))
