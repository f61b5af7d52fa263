"""Scenario ``transient``: ``TransientPool`` and ``BufferPool`` against a deque and allocation.

Two questions, each answered as ratios to a baseline timed in the same interleaved rounds:

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

from respool.bench._report import Goal, Table, ratio_text, rows_from
from respool.bench._run import Context
from respool.bench._timing import Spread, repeated
from respool.buffers import BufferPool
from respool.resources import byte_buffers
from respool.transient import TransientPool

__all__ = ["buffers", "hot_path", "run"]

DEQUE: Final = "deque.pop()+append()"
GET_PUT: Final = "TransientPool: get()+put()"
ALLOC: Final = "bytearray(n)"
BUFFERS: Final = "BufferPool: get(n)+put()"
HOT_GOAL: Final = 3.0
BIG_GOAL: Final = 20.0
SIZES: Final = (4 << 10, 256 << 10, 8 << 20)


def hot_path(ctx: Context) -> Table:
    """Uncontended get+put of one cached object, in its lean and hooked forms."""
    number, rounds = ctx.budget.n(200_000, 20), ctx.budget.rounds(7)
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
    spreads = repeated(cases, number, rounds, on_step=ctx.on_step("transient"))
    rows = rows_from(spreads, DEQUE)
    row = next(row for row in rows if row.name == GET_PUT)
    ratio = row.ratio
    assert ratio is not None
    return Table(
        key="transient",
        title="TransientPool hot path: one thread, one cached object",
        unit="ns/op",
        baseline=DEQUE,
        rows=rows,
        goals=[
            Goal(
                f"TransientPool get()+put() <= {HOT_GOAL:g}x deque pop+append",
                ratio_text(row),
                ratio <= HOT_GOAL,
            )
        ],
    )


def _nothing(obj: object) -> None:
    """A reset that does nothing: what the hooked code path costs by itself."""


def _label(size: int) -> str:
    return f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB"


def buffers(ctx: Context, size: int, number: int) -> Table:
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
        (BUFFERS, buffer_get_put),
        ("BufferPool(zero=True): get(n)+put()", zeroed_get_put),
    ]
    try:
        spreads = repeated(
            cases, number, ctx.budget.rounds(5), on_step=ctx.on_step(f"transient {_label(size)}")
        )
    finally:
        for pool in (pooled, zeroed):
            pool.clear()
        transient.clear()
    return _size_table(size, spreads)


def _size_table(size: int, spreads: list[Spread]) -> Table:
    """The table of one size, with the goal at the largest and a plain word at the others."""
    rows = rows_from(spreads, ALLOC)
    cost = next(row.ratio for row in rows if row.name == BUFFERS)
    assert cost is not None
    speedup = 1 / cost
    goals = []
    notes = []
    if size == SIZES[-1]:
        goals.append(
            Goal(
                f"BufferPool get()+put() of {_label(size)} >= {BIG_GOAL:g}x cheaper than"
                " bytearray(n)",
                f"{speedup:.0f}x cheaper",
                speedup >= BIG_GOAL,
            )
        )
        notes.append(
            "bytearray(n) allocates and zero-fills; a pooled buffer comes back as the last"
            " user left it, unless zero=True (which copies n zero bytes on every return)."
        )
    elif speedup < 1:
        notes.append(f"At {_label(size)} pooling loses: {cost:.1f}x the cost of allocating.")
    else:
        notes.append(f"At {_label(size)} pooling saves: {speedup:.1f}x cheaper than allocating.")
    return Table(
        key=f"transient-{_label(size).replace(' ', '').lower()}",
        title=f"Buffers of {_label(size)}: get one and give it back",
        unit="ns/op",
        baseline=ALLOC,
        rows=rows,
        goals=goals,
        notes=notes,
    )


#: Full-run operations per round, by buffer size (an 8 MiB allocation takes a while).
COUNTS: Final = {4 << 10: 20_000, 256 << 10: 2_000, 8 << 20: 60}


def run(ctx: Context) -> list[Table]:
    """The hot path, then one table per buffer size."""
    tables = [hot_path(ctx)]
    for size in SIZES:
        tables.append(buffers(ctx, size, ctx.budget.n(COUNTS[size], 5)))
    return tables
