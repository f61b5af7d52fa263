"""``respool bench``: what the pools cost, as ratios to baselines measured in the same run.

One suite per strategy, each in its own module, each also runnable as a script in
``benchmarks/``: :mod:`.acquire_release` (``FixedPool`` and ``ElasticPool`` against a locked
deque), :mod:`.worker` (``WorkerPool`` against ``ThreadPoolExecutor`` and a bare queue round
trip), :mod:`.transient` (``TransientPool`` and ``BufferPool`` against plain allocation),
:mod:`.health` (what the health options cost, and a fault drill).
``respool bench NAME`` runs one of them. All of them time through :mod:`._timing`, the harness
the tour uses too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from respool.bench import acquire_release, health, transient, worker

__all__ = ["ALIASES", "SUITES", "main"]

#: Benchmark suites by name, in the order ``respool bench`` runs them.
SUITES: Final[dict[str, Callable[[bool], int]]] = {
    "acquire_release": acquire_release.main,
    "worker": worker.main,
    "transient": transient.main,
    "health": health.main,
}

#: Former suite names still accepted, so scripts written against 0.1 keep working.
ALIASES: Final[dict[str, str]] = {"free_list": "acquire_release"}


def main(quick: bool = False, only: Sequence[str] = ()) -> int:
    """Run the suites named in *only* (default: all); ``quick`` trades precision for speed."""
    names = [ALIASES.get(name, name) for name in only]
    unknown = [name for name in names if name not in SUITES]
    if unknown:
        raise ValueError(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(SUITES)}")
    status = 0
    for index, name in enumerate(dict.fromkeys(names) or SUITES):
        if index:
            print()
        status = max(status, SUITES[name](quick))
    return status
