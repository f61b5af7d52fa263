"""TransientPool and BufferPool against a bare deque and against plain allocation.

Run: ``python benchmarks/transient.py`` (or ``respool bench transient``; ``--quick`` for a
fast, less precise run). Prints ns/op for get+put on the calling thread's cache as a ratio to
a bare ``deque.pop()+append()``, then 4 KiB, 256 KiB and 8 MiB buffers against
``bytearray(n)``, each with the verdict against the goal.
"""

from __future__ import annotations

import sys

from respool import bench

if __name__ == "__main__":
    sys.exit(bench.main(quick="--quick" in sys.argv[1:], only=["transient"]))
