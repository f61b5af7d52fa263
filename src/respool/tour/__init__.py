"""``respool tour``: what the library is for, shown on real resources in about a minute.

"Do I need a pool?" has an honest answer only in numbers, so every section times the work done
with brand-new resources against the same work done with pooled ones, in the same run, on
resources that need no server of their own. Every figure printed is computed during the run and
the verdicts are derived from those figures, never written in advance. ``quick=True`` keeps
every section and measures far fewer operations.

Sections: the free lists (:mod:`.free_list`: temp files, SQLite, TCP), the worker pool
(:mod:`.worker`), the transient pool and buffers (:mod:`.transient`), then one summary.
"""

from __future__ import annotations

import time

from respool.tour import free_list, transient, worker

__all__ = ["main"]


def main(quick: bool = False) -> int:
    """Run the tour; ``quick`` keeps every section but measures far fewer operations."""
    started = time.perf_counter()
    plan = free_list.plan_for(quick)
    free_list.print_intro(plan)
    sections = free_list.run(plan)
    others = [worker.run(quick), transient.run(quick)]
    free_list.print_summary(sections, plan, others)
    print()
    print(f"(The tour took {time.perf_counter() - started:.0f} s.)")
    return 0
