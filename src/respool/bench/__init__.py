"""``respool bench``: what the pools cost, as ratios to baselines measured in the same run.

One table per strategy, each in its own module: :mod:`.free_list` (``FixedPool`` and
``ElasticPool`` against a locked deque), :mod:`.worker` (``WorkerPool`` against
``ThreadPoolExecutor`` and a bare queue round trip), :mod:`.transient` (``TransientPool`` and
``BufferPool`` against plain allocation). ``respool bench NAME`` runs one of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from respool.bench import free_list, transient, worker

__all__ = ["SUITES", "main"]

#: Benchmark suites by name, in the order ``respool bench`` runs them.
SUITES: Final[dict[str, Callable[[bool], int]]] = {
    "free_list": free_list.main,
    "worker": worker.main,
    "transient": transient.main,
}


def main(quick: bool = False, only: Sequence[str] = ()) -> int:
    """Run the suites named in *only* (default: all); ``quick`` trades precision for speed."""
    unknown = [name for name in only if name not in SUITES]
    if unknown:
        raise ValueError(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(SUITES)}")
    status = 0
    for index, name in enumerate(only or SUITES):
        if index:
            print()
        status = max(status, SUITES[name](quick))
    return status
