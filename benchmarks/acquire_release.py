"""Uncontended acquire+release through the context manager, against its floors.

Run: ``python benchmarks/acquire_release.py`` (or ``respool bench acquire_release``;
``--quick`` for a fast, less precise run). Prints ns/op for a bare deque, a Lock around each
deque operation, one Lock around both, queue.Queue, and FixedPool/ElasticPool, each as a ratio
to the Lock-per-operation floor measured in the same run; then the same pools shared by four
threads, and the cost of debug mode.
"""

from __future__ import annotations

import sys

from respool import bench

if __name__ == "__main__":
    sys.exit(bench.main(quick="--quick" in sys.argv[1:], only=["acquire_release"]))
