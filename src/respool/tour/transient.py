"""The tour's transient section: ``TransientPool`` and ``BufferPool`` against plain allocation.

Pooling buffers is folklore advice that is only sometimes right. The section times getting a
buffer and giving it back, three ways, at three sizes: ``bytearray(n)`` (allocate and
zero-fill), a ``TransientPool`` of fixed-size buffers, and a ``BufferPool`` (size classes).
The verdicts come from the figures: at 4 KiB a cache lookup costs about as much as the
allocation it saves, while at 8 MiB allocating means zero-filling megabytes and pooling wins by
far. Then it shows the two buffer pitfalls live: a buffer returned while a ``memoryview`` still
looks into it (*not quite done*) and a reused temp file (*not quite clean*).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from respool._verdict import Verdict, judge
from respool.bench._timing import interleaved
from respool.buffers import BufferPool
from respool.errors import StillInUse
from respool.resources import byte_buffers, temp_files
from respool.tour._text import compared, heading, micro, print_wrapped
from respool.transient import TransientPool

__all__ = ["run"]

SIZES: Final = (4 << 10, 256 << 10, 8 << 20)
#: Operations per round and size (full run); fixed counts so two runs do the same work.
_COUNTS: Final = {4 << 10: 50_000, 256 << 10: 5_000, 8 << 20: 300}
ALLOC: Final = "bytearray(n)"
TRANSIENT: Final = "TransientPool"
BUFFERS: Final = "BufferPool"


def _label(size: int) -> str:
    return f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB"


def _measure(size: int, number: int, rounds: int) -> dict[str, float]:
    """Best microseconds per get-and-return of a *size*-byte buffer, each way."""
    transient = TransientPool(byte_buffers(size), name=f"tour-{size}")
    buffers = BufferPool(min_size=4 << 10, max_size=16 << 20, name=f"tour-buffers-{size}")
    transient.put(transient.get())
    buffers.put(buffers.get(size))

    def allocate() -> None:
        bytearray(size)

    def from_transient() -> None:
        transient.put(transient.get())

    def from_buffers() -> None:
        buffers.put(buffers.get(size))

    cases: list[tuple[str, Callable[[], object]]] = [
        (ALLOC, allocate),
        (TRANSIENT, from_transient),
        (BUFFERS, from_buffers),
    ]
    results = interleaved(cases, number, rounds)
    transient.clear()
    buffers.clear()
    return {r.name: r.ns / 1000 for r in results}


def _not_quite_done() -> bool:
    """Return a buffer while a view of it is alive; return whether the pool refused it."""
    print("  Not quite done: a buffer goes back while a memoryview still looks into it.")
    pool = BufferPool(min_size=4 << 10, max_size=1 << 20, name="tour-not-done")
    buf = pool.get(100)
    view = memoryview(buf)[:5]
    view[:] = b"hello"
    print(f"    buf = pool.get(100)  -> a {len(buf):,}-byte buffer (its size class)")
    print("    view = memoryview(buf)[:5]; view[:] = b'hello'; pool.put(buf)")
    try:
        pool.put(buf)
    except StillInUse as exc:
        refused = True
        print_wrapped(f"-> StillInUse: {exc}", "    ", "       ")
    else:
        refused = False
        print("    -> accepted (STILL WRONG: the next user could overwrite what view reads)")
    again = pool.get(100)
    print(f"    the next get(100) returns {'another' if again is not buf else 'THE SAME'} buffer")
    view.release()
    pool.put(again)
    print("    after view.release(), put() takes the buffer back as usual.")
    return refused and again is not buf


def _temp_file_reuse() -> bool:
    """Two users of one pooled temp file; return whether the second read back only its bytes."""
    first, second = b"user 1 wrote a rather long line of text\n", b"user 2: short\n"
    pool = TransientPool(temp_files(), name="tour-temp-files")
    with pool.borrow() as file:
        file.write(first)
        used = file
    with pool.borrow() as file:
        file.write(second)
        file.seek(0)
        back = file.read()
    pool.clear()
    same = file is used
    print("  Not quite clean: TransientPool(respool.resources.temp_files()), two users.")
    print(f"    user 1 writes {len(first)} bytes; user 2 gets the same file: {same}")
    print(f"    user 2 writes {len(second)} bytes and reads back {back!r}")
    print("    (reset = truncate(0) and seek(0): without the seek, user 2 would read")
    print(f"     {len(first)} zero bytes before its own line)")
    return back == second


def run(quick: bool) -> str:
    """Print the section; return one summary sentence built from its measurements."""
    heading("5. TransientPool and BufferPool: short-lived buffers")
    us = micro()
    print("  TransientPool keeps objects in a per-thread cache until they are reused or a")
    print("  full garbage collection passes twice; BufferPool keeps one TransientPool per")
    print("  power-of-two buffer size. Nobody ever waits: they suit threads and asyncio.")
    print("  Operation: get a buffer of n bytes and give it back.")
    print("  Plain: bytearray(n) every time (allocates and zero-fills n bytes).")
    scale, rounds = (50, 3) if quick else (1, 5)
    print(f"  Timed: best of {rounds} rounds per size.")
    print()
    figures = {size: _measure(size, max(5, _COUNTS[size] // scale), rounds) for size in SIZES}
    print(f"  {'buffer':<8}{ALLOC:>13}{TRANSIENT:>19}{BUFFERS:>19}")
    print(
        f"  {'':<8}{us + '/op':>13}{us + '/op':>9}{'speed-up':>10}{us + '/op':>9}{'speed-up':>10}"
    )
    verdicts = {}
    for size, micros in figures.items():
        plain = micros[ALLOC]
        verdicts[size] = judge(plain, min(micros[TRANSIENT], micros[BUFFERS])).verdict
        print(
            f"  {_label(size):<8}{plain:>13.2f}"
            f"{micros[TRANSIENT]:>9.2f}{judge(plain, micros[TRANSIENT])!s:>10}"
            f"{micros[BUFFERS]:>9.2f}{judge(plain, micros[BUFFERS])!s:>10}  {verdicts[size]}"
        )
    small, large = figures[SIZES[0]], figures[SIZES[-1]]
    small_pool = compared(min(small[TRANSIENT], small[BUFFERS]), small[ALLOC])
    large_gain = judge(large[ALLOC], large[BUFFERS])
    print()
    if verdicts[SIZES[0]] is Verdict.LOSES:
        why = "the memory allocator already recycles small blocks quickly, so a pool only adds"
        why += " its own bookkeeping"
    else:
        why = "the memory allocator recycles small blocks quickly too, so a pool has little"
        why += " to save"
    small_text = f"the faster pool {small_pool} allocating ({verdicts[SIZES[0]]}): {why}"
    print_wrapped(
        f"At {_label(SIZES[0])} {small_text}. At"
        f" {_label(SIZES[-1])}, bytearray(n) must zero-fill megabytes and BufferPool is"
        f" {large_gain} faster. A pooled buffer comes back as the last user left it"
        " (BufferPool(zero=True) clears it, at the cost of a copy).",
        "  ",
    )
    print()
    refused = _not_quite_done()
    print()
    clean = _temp_file_reuse()
    pitfalls = "refused a buffer with a live memoryview" if refused else "MISSED a live view"
    files = "a reused temp file held only its new user's bytes" if clean else "a temp file LEAKED"
    return (
        f"TransientPool/BufferPool: for {_label(SIZES[0])} buffers the faster pool"
        f" {small_pool} plain allocation ({verdicts[SIZES[0]]}); for"
        f" {_label(SIZES[-1])} BufferPool was {large_gain} faster"
        f" ({verdicts[SIZES[-1]]}); it {pitfalls}, and {files}."
    )
