"""Transient benchmarks: ``TransientPool`` and ``BufferPool`` against a deque and plain allocation.

Two questions, each answered as ratios to a baseline timed moments apart in the same process:

- What does the hot path cost? ``get()+put()`` on the calling thread's cache, next to a bare
  ``deque.pop()+append()`` (the least any cache in Python can cost). Goal: at most 3x.
- When does pooling buffers pay? ``get()+put()`` of 4 KiB, 256 KiB and 8 MiB buffers next to
  ``bytearray(n)``, which allocates and zero-fills. Goal: at least 20x cheaper at 8 MiB. Small
  buffers are where pooling loses: allocating 4 KiB is about as cheap as any cache lookup.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Final

from respool.bench._timing import Result, interleaved, table
from respool.buffers import BufferPool
from respool.resources import byte_buffers
from respool.transient import TransientPool

__all__ = ["buffers", "hot_path", "main"]

DEQUE: Final = "(a) deque.pop()+append()"
GET_PUT: Final = "TransientPool: get()+put()"
ALLOC: Final = "(a) bytearray(n)"
HOT_GOAL: Final = 3.0
BIG_GOAL: Final = 20.0
SIZES: Final = (4 << 10, 256 << 10, 8 << 20)


def hot_path(number: int = 200_000, rounds: int = 7) -> list[Result]:
    """Uncontended get+put of one cached object, in its lean and hooked forms."""
    item = object()
    bare: deque[object] = deque([item])
    lean: TransientPool[object] = TransientPool(object, name="bench-lean")
    hooked: TransientPool[object] = TransientPool(object, reset=_nothing, name="bench-hooked")
    small = BufferPool(min_size=4096, max_size=4096, name="bench-small")
    for pool in (lean, hooked):
        pool.put(pool.get())
    small.put(small.get(4096))

    def deque_pop_append() -> None:
        bare.append(bare.pop())

    def get_put() -> None:
        lean.put(lean.get())

    def borrow() -> None:
        with lean.borrow():
            pass

    def get_put_hooked() -> None:
        hooked.put(hooked.get())

    def buffer_get_put() -> None:
        small.put(small.get(4096))

    cases: list[tuple[str, Callable[[], object]]] = [
        (DEQUE, deque_pop_append),
        (GET_PUT, get_put),
        ("TransientPool: with borrow()", borrow),
        ("TransientPool(reset=...): get()+put()", get_put_hooked),
        ("BufferPool: get(4096)+put()", buffer_get_put),
    ]
    return interleaved(cases, number, rounds)


def _nothing(obj: object) -> None:
    """A reset that does nothing: what the hooked code path costs by itself."""


def _label(size: int) -> str:
    return f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB"


def buffers(size: int, number: int, rounds: int) -> list[Result]:
    """Getting and returning a *size*-byte buffer, pooled or freshly allocated."""
    transient = TransientPool(byte_buffers(size), name=f"bench-{size}")
    pooled = BufferPool(min_size=4096, max_size=16 << 20, name=f"bench-buffers-{size}")
    zeroed = BufferPool(min_size=4096, max_size=16 << 20, zero=True, name=f"bench-zero-{size}")
    transient.put(transient.get())
    pooled.put(pooled.get(size))
    zeroed.put(zeroed.get(size))

    def allocate() -> None:
        bytearray(size)

    def transient_get_put() -> None:
        transient.put(transient.get())

    def buffer_get_put() -> None:
        pooled.put(pooled.get(size))

    def zeroed_get_put() -> None:
        zeroed.put(zeroed.get(size))

    cases: list[tuple[str, Callable[[], object]]] = [
        (ALLOC, allocate),
        ("TransientPool(byte_buffers(n))", transient_get_put),
        ("BufferPool: get(n)+put()", buffer_get_put),
        ("BufferPool(zero=True): get(n)+put()", zeroed_get_put),
    ]
    results = interleaved(cases, number, rounds)
    for pool in (pooled, zeroed):
        pool.clear()
    transient.clear()
    return results


def _verdict(met: bool) -> str:
    return "meets" if met else "MISSES"


def main(quick: bool = False) -> int:
    """Print both tables with their verdicts; ``quick`` trades precision for speed."""
    number, rounds = (20_000, 3) if quick else (200_000, 7)
    print("TransientPool hot path: uncontended, one thread, one object (lower is better)")
    results = hot_path(number, rounds)
    print(table(results, DEQUE))
    ns = {r.name: r.ns for r in results}
    ratio = ns[GET_PUT] / ns[DEQUE]
    print(
        f"TransientPool get()+put(): {ratio:.2f}x deque pop+append"
        f" -> {_verdict(ratio <= HOT_GOAL)} the goal (<= {HOT_GOAL:g}x deque)"
    )

    counts = {4 << 10: 20_000, 256 << 10: 2_000, 8 << 20: 60}
    scale, rounds = (10, 3) if quick else (1, 5)
    for size in SIZES:
        print()
        print(f"Buffers of {_label(size)}: get a buffer and give it back (lower is better)")
        results = buffers(size, max(5, counts[size] // scale), rounds)
        print(table(results, ALLOC))
        ns = {r.name: r.ns for r in results}
        speedup = ns[ALLOC] / ns["BufferPool: get(n)+put()"]
        if size == SIZES[-1]:
            print(
                f"BufferPool get()+put() of {_label(size)}: {speedup:.0f}x cheaper than"
                f" bytearray(n) -> {_verdict(speedup >= BIG_GOAL)} the goal"
                f" (>= {BIG_GOAL:g}x)"
            )
        elif speedup < 1:
            print(f"At {_label(size)} pooling loses: {1 / speedup:.1f}x the cost of allocating.")
        else:
            print(f"At {_label(size)} pooling saves: {speedup:.1f}x cheaper than allocating.")
    print(
        "bytearray(n) allocates and zero-fills; a pooled buffer is handed back as the last user"
        "\nleft it, unless zero=True (which copies n bytes of zeros on every return)."
    )
    return 0
