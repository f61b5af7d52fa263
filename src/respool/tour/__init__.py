"""``respool tour``: what the library is for, shown on real resources in about a minute.

"Do I need a pool?" has an honest answer only in numbers, so every section times the work done
with brand-new resources against the same work done with pooled ones, in the same run, on
resources that need no server of their own. Every figure printed is computed during the run and
the verdicts are derived from those figures by the rules in :mod:`respool._verdict`, never
written in advance. ``quick=True`` keeps every section and measures far fewer operations.

This module is the driver: the introduction, the order of the sections and the summary.
Sections: the free lists (:mod:`.fixed_elastic`: temp files, SQLite, TCP), the worker pool
(:mod:`.worker`), the transient pool and buffers (:mod:`.transient`), the asyncio pools and
cancellation (:mod:`.asyncio_`, which shows rather than times), PostgreSQL and Redis when they
answer (:mod:`.servers`), a log shipper end to end (:mod:`.shipper`), the advisor
(:mod:`.advise`), and the worker pool on Ray actors when Ray is installed (:mod:`.ray_`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Final

from respool._verdict import DEFAULT_RULES, judge, legend
from respool.tour import (
    advise,
    asyncio_,
    fixed_elastic,
    ray_,
    servers,
    shipper,
    transient,
    worker,
)
from respool.tour._text import heading, micro, print_wrapped, threads_label
from respool.tour.fixed_elastic import ELASTIC, FIXED, FRESH, Measured, Plan, Section

__all__ = ["main"]

#: A case whose slowest round took this many times its best was disturbed enough that the
#: summary suggests a quieter machine.
_BUSY: Final = 2.0


def main(quick: bool = False) -> int:
    """Run the tour; ``quick`` keeps every section but measures far fewer operations."""
    started = time.perf_counter()
    plan = fixed_elastic.plan_for(quick)
    print_intro(plan)
    sections = fixed_elastic.run(plan)
    others = [worker.run(quick), transient.run(quick)]
    cancelled = asyncio_.run(quick)
    sections += servers.run(plan)
    shipped = shipper.run(quick)
    advised = advise.run(quick)
    distributed = ray_.run(quick)
    print_summary(
        sections,
        plan,
        others,
        pitfalls=[cancelled, shipped],
        advised=advised,
        beyond=[] if distributed is None else [distributed],
    )
    print()
    print(f"(The tour took {time.perf_counter() - started:.0f} s.)")
    return 0


def print_intro(plan: Plan) -> None:
    """What is measured and why, the strategies, the lifecycle, and how to read the tables."""
    us = micro()
    print("respool tour")
    print("============")
    print()
    print("Do you need a pool at all? Making a resource (a file, a database connection,")
    print("a network connection) costs time on every use; a pool keeps finished")
    print("resources and lends them out again, which saves that time but adds code that")
    print("can go wrong. The trade is a question of numbers, so this tour measures it:")
    print("for each resource below, it times the work done with brand-new resources,")
    print("then the same work with resources borrowed from a pool.")
    print()
    print("Four strategies, by how long resources sit idle and whether their count varies:")
    print("  FixedPool      makes `size` resources up front and keeps exactly that many;")
    print("                 when all are lent out, callers wait. The footprint is fixed.")
    print("  ElasticPool    makes a resource whenever none is idle and keeps at most")
    print("                 `max_idle` of those that come back. Nobody waits; it varies.")
    print("  WorkerPool     N threads, each owning one resource for its lifetime; you")
    print("                 submit tasks, and a bounded queue says what happens when")
    print("                 they pile up.")
    print("  TransientPool  a per-thread cache of short-lived objects (buffers); what is")
    print("                 not reused soon is dropped at garbage collection.")
    print("Sections 1-3 time the free lists (FixedPool, ElasticPool), 4 the WorkerPool,")
    print("5 the TransientPool and BufferPool; 6 shows the asyncio twins of the pools")
    print("when a task is cancelled between a request and its reply; 7 and 8 time real")
    print("PostgreSQL and Redis servers (when they answer) and kill pooled connections;")
    print("9 runs a log shipper end to end with each strategy and checks every record;")
    print("10 asks the advisor, respool.advise, about resources whose answer is known;")
    print("11 runs a WorkerPool's twin on Ray actors and kills one (if Ray is installed).")
    print()
    print("Every pool manages its resources with the same four callbacks (the lifecycle):")
    print("  create()    make a new resource")
    print("  reset(r)    when it comes back: make it indistinguishable from a new one")
    print("  check(r)    before lending an idle one: still usable? If not, replace it")
    print("  destroy(r)  when it leaves the pool: free what garbage collection cannot")
    print()
    print("    pool = respool.FixedPool(create, size=4, reset=..., check=..., destroy=...)")
    print("    with pool.acquire() as resource:")
    print("        ...   # leaving the block resets the resource and puts it back")
    print()
    print(f"Reading the tables: {us}/op is the cost of one operation, the best of several")
    print("rounds (the round least disturbed by other load). `speed-up` is the cost with")
    print("a fresh resource divided by this one, both measured moments apart in this run:")
    print("3.0x takes a third of the time, 1.0x the same, 0.5x twice as long. With")
    print(f"several threads, {us}/op is wall-clock time divided by all their operations.")
    if plan.quick:
        print("(--quick: far fewer operations, so the figures are rougher.)")


def print_summary(
    sections: Sequence[Section],
    plan: Plan,
    others: Sequence[str] = (),
    pitfalls: Sequence[str] = (),
    advised: Sequence[str] = (),
    beyond: Sequence[str] = (),
) -> None:
    """Every measurement side by side with a verdict, then the pitfalls (the sections' lessons,
    then *pitfalls*: what sections without a table reproduced), the other strategies, the
    advisor and Ray (*beyond*: one machine), then perspective."""
    us = micro()
    heading("Summary: did pooling pay off?")
    results = [result for section in sections for result in section.results]
    print(f"  Speed-up: the fresh {us}/op divided by the pooled one, from the tables above.")
    print()
    print(f"  {'':<19}{'fresh':>8}{'--- speed-up with ---':>26}{'saved':>9}")
    print(
        f"  {'resource':<11}{'threads':>8}{us + '/op':>8}"
        f"{FIXED:>12}{ELASTIC:>14}{us + '/op':>9}   verdict"
    )
    for r in results:
        fresh = r.micros[FRESH]
        print(
            f"  {r.resource:<11}{r.threads:>8}{fresh:>8.1f}"
            f"{judge(fresh, r.micros[FIXED])!s:>12}{judge(fresh, r.micros[ELASTIC])!s:>14}"
            f"{r.saved:>9.1f}   {judge(fresh, r.best_pooled).verdict}"
        )
    print()
    modest = f"{DEFAULT_RULES.modest_gain:.{DEFAULT_RULES.digits}f}x"
    print_wrapped(
        f"Verdicts rest on the faster pool's speed-up as printed: {legend()}. Below"
        f" {modest} the gain is about what a busy machine or the pool's own bookkeeping can"
        " produce, too little to be worth a pool's extra code.",
        "  ",
    )
    print_wrapped(_steadiness(results, plan), "  ")
    print()
    print("  Pitfalls reproduced:")
    for section in sections:
        if section.lesson is not None:
            print_wrapped(section.lesson, "    - ", "      ")
    for lesson in pitfalls:
        print_wrapped(lesson, "    - ", "      ")
    if others:
        print()
        print("  The other two strategies:")
        for line in others:
            print_wrapped(line, "    - ", "      ")
    if advised:
        print()
        print("  The advisor (section 10):")
        for line in advised:
            print_wrapped(line, "    - ", "      ")
    if beyond:
        print()
        print("  Beyond one machine (section 11):")
        for line in beyond:
            print_wrapped(line, "    - ", "      ")
    print()
    _print_advice(results)


def _steadiness(results: Sequence[Measured], plan: Plan) -> str:
    """How steady the machine was, from the rounds themselves: every case ran the same code
    several times under the same plan, so its slowest round next to its best shows how much
    other load disturbed the run."""
    spread = max(r.spread for r in results)
    text = (
        f"Each figure is the best of {plan.rounds} rounds; the slowest round of a case took"
        f" up to {spread:.1f}x as long as its best."
    )
    if plan.quick:
        return text + " (--quick measures few operations: the full tour gives firmer figures.)"
    if spread >= _BUSY:
        return text + " The machine was busy: rerun on a quieter one for firmer figures."
    return text


def _print_advice(results: Sequence[Measured]) -> None:
    """Close on the first question again: a saving only matters relative to the whole."""
    largest = max(results, key=lambda r: r.saved)
    print_wrapped(
        f"The largest saving measured here is {largest.saved:.0f} {micro()} per operation"
        f" ({largest.resource}, {threads_label(largest.threads)}). That is a lot next to an"
        " operation that takes microseconds, and nothing inside a request that spends"
        " milliseconds elsewhere. Before adding a pool to your own code, time your own"
        " operation this way and check that creating the resource is a real share of it:"
        " respool advise module:create module:use does it for you (section 10).",
        "  ",
    )
