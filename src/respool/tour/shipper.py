"""The tour's log-shipper section: every strategy on one real pipeline, checked end to end.

Structured log records are serialized, compressed with a preset dictionary, sliced into
datagrams and sent over UDP to a receiver on 127.0.0.1 that compares every record with what
was sent. The same input goes through four implementations (no pool; a ``FixedPool`` and a
``TransientPool`` of serialization buffers; a ``WorkerPool`` whose workers own a compressor and
a socket), timed side by side with the shared harness. The section first shows what each step
of a batch costs, so that the table that follows can be read: a pool saves only the cost of
what it keeps, and the compressor's setup is the one large cost here that can be kept.
Then the pitfall: the buffer pool with a reset that wipes but does not rewind, whose damage
every datagram checksum misses and the receiver's record-by-record comparison catches.

The pipeline itself lives in :mod:`respool.bench.shipper`, which ``respool bench shipper``
times at length; every figure printed here is measured during the run.
"""

from __future__ import annotations

from typing import Final

from respool._verdict import Judgement, judge
from respool.bench import shipper as pipeline
from respool.bench.shipper import (
    BATCH,
    COMPRESS_KEPT,
    COMPRESS_NEW,
    DATAGRAM,
    FIXED_BUFFERS,
    NEW_BUFFER,
    NEW_SOCKET,
    NO_POOL,
    SERIALIZE,
    SMALL_BATCH,
    THREADS,
    TRANSIENT_BUFFERS,
    WORKERS,
    ZDICT,
    Measurement,
)
from respool.tour._text import heading, micro, print_wrapped

__all__ = ["run"]

#: (records per round, rounds, operations per cost figure) for the full and quick runs.
_FULL: Final = (3_200, 4, 50)
_QUICK: Final = (1_024, 3, 15)

_LABELS: Final = {
    NO_POOL: "no pool",
    FIXED_BUFFERS: "FixedPool (buffers)",
    TRANSIENT_BUFFERS: "TransientPool (buffers)",
    WORKERS: "WorkerPool (compressor)",
}


def _costs(number: int, rounds: int) -> dict[str, float]:
    """Microseconds per batch of each step, on one thread (best round)."""
    return {s.name: s.min / 1000 for s in pipeline.costs(number, rounds)}


def _explain() -> None:
    print_wrapped(
        "The classic case for pooling: a log shipper. Structured records (time, level,"
        " service, message, a few fields, a serial number) are serialized as JSON lines,"
        f" compressed with zlib and a {len(ZDICT) >> 10} KiB preset dictionary of the keys"
        " and values every record repeats, sliced into datagrams of at most"
        f" {DATAGRAM:,} bytes and sent over UDP to a receiver on 127.0.0.1. The receiver"
        " reassembles each batch, decompresses it and compares every record with what was"
        f" sent. Batches of {SMALL_BATCH} and of {BATCH} records, {THREADS} threads; each"
        " strategy pools what it fits:",
        "  ",
    )
    print("    no pool        a new buffer, compressor and socket for every batch")
    print(
        f"    FixedPool      {THREADS} serialization buffers for {THREADS} threads: nobody waits,"
    )
    print("                   and a burst of logs can never make it allocate more")
    print("    TransientPool  the same buffers from per-thread caches, no fixed count")
    print("    WorkerPool     each worker owns a compressor and a connected socket for")
    print("                   its whole life; its compressor carries one stream from")
    print("                   batch to batch, so the dictionary is loaded once")


def _table(small: Measurement, large: Measurement) -> None:
    """Records per second and speed-up over no pool, at both batch sizes."""
    width = max(map(len, _LABELS.values()))
    heads = [f"{m.batch} records a batch" for m in (small, large)]
    print(f"  {'':<{width}}  {heads[0]:>19}  {heads[1]:>19}")
    print(f"  {'implementation':<{width}}" + f"  {'records/s':>10} {'speed-up':>8}" * 2)
    for name, label in _LABELS.items():
        cells = ""
        for m in (small, large):
            cells += f"  {m.rate(name):>10,.0f} {_judge(m, name)!s:>8}"
        print(f"  {label:<{width}}{cells}")


def _judge(measured: Measurement, name: str) -> Judgement:
    """Speed-up of *name* over no pool, on the best rounds, with its verdict."""
    best = {s.name: s.min for s in measured.spreads}
    return judge(best[NO_POOL], best[name])


def _buffers(measured: Measurement) -> Judgement:
    """The better of the two buffer pools."""
    return max(
        (_judge(measured, FIXED_BUFFERS), _judge(measured, TRANSIENT_BUFFERS)),
        key=lambda j: j.speedup,
    )


def run(quick: bool) -> str:
    """Print the section; return one summary sentence built from its measurements."""
    heading("9. A log shipper, end to end")
    records, rounds, number = _QUICK if quick else _FULL
    us = micro()
    _explain()
    print()
    cost = _costs(number, rounds)
    setup = cost[COMPRESS_NEW] - cost[COMPRESS_KEPT]
    print_wrapped(
        f"What a batch of {BATCH} records costs on one thread ({us}, best of {rounds} rounds):"
        f" serializing {cost[SERIALIZE]:.0f}; compressing {cost[COMPRESS_KEPT]:.0f} with a"
        f" compressor kept, {cost[COMPRESS_NEW]:.0f} with a new one ({setup:+.0f}: its state"
        f" and dictionary); a new socket {cost[NEW_SOCKET]:.0f}; a new buffer"
        f" {cost[NEW_BUFFER]:.1f}. A pool saves only the cost of what it keeps, and the"
        " fewer records a batch holds, the larger that share.",
        "  ",
    )
    print()
    print_wrapped(
        f"Timed: {records:,} records per round, best of {rounds} rounds; a round ends when"
        " the receiver has read every datagram."
        + (" (--quick: few records, so the figures are rough.)" if quick else ""),
        "  ",
    )
    small, large = (pipeline.measure(records, rounds, batch=b) for b in (SMALL_BATCH, BATCH))
    print()
    _table(small, large)
    workers = [_judge(m, WORKERS) for m in (small, large)]
    buffers = [_buffers(m) for m in (small, large)]
    print()
    same = buffers[0].verdict == buffers[1].verdict
    verdicts = f"{buffers[0].verdict}" if same else f"{buffers[0].verdict}, {buffers[1].verdict}"
    print_wrapped(
        f"WorkerPool: {workers[0]} with {SMALL_BATCH} records a batch ({workers[0].verdict}),"
        f" {workers[1]} with {BATCH} ({workers[1].verdict}). The better buffer pool:"
        f" {buffers[0]} and {buffers[1]} ({verdicts}); a buffer of this size costs about a"
        " microsecond to allocate, so keeping one saves next to nothing (section 5 finds"
        " the same for small buffers).",
        "  ",
    )
    total = small.total
    total += large.total
    print()
    print_wrapped(
        f"Integrity: {total.sent:,} records sent (every round of every implementation),"
        f" {total.intact:,} intact, {total.corrupted} corrupted, {total.missing} missing,"
        " each compared with the record sent, field by field. Flow control kept at most"
        f" {large.window} datagrams in flight, so the receiver's socket buffer never"
        " overflowed (UDP would drop the excess silently).",
        "  ",
    )
    print()
    dirty, reused = pipeline.pitfall(BATCH * (8 if quick else 16))
    caught = dirty.corrupted == reused > 0
    print("  Not quite clean: the FixedPool of buffers with a reset that wipes the bytes")
    print("  but leaves the write position where it was:")
    print("    def wipe(buf): buf.data[:buf.pos] = bytes(buf.pos)  # forgot: buf.pos = 0")
    print_wrapped(
        f"-> {reused} of {dirty.sent // BATCH} batches went into a reused buffer,"
        " behind a run of zero bytes; the receiver found"
        f" {dirty.corrupted} records corrupted (the first of each such batch),"
        f" {dirty.intact:,} intact, {dirty.missing} missing. Every datagram's checksum"
        " matched: the damage was done before compression, so only comparing the records"
        " end to end caught it.",
        "    ",
        "       ",
    )
    integrity = "intact" if total.perfect else "NOT ALL INTACT"
    pitfall = "caught every one" if caught else "DID NOT CATCH THEM ALL"
    return (
        "Log shipper: a WorkerPool owning a zlib compressor (with a preset dictionary) and a"
        f" UDP socket per worker shipped {workers[0]} as many records/s as no pool with"
        f" {SMALL_BATCH} records a batch ({workers[0].verdict}) and {workers[1]} with"
        f" {BATCH} ({workers[1].verdict}); pooled buffers {buffers[1]}"
        f" ({buffers[1].verdict}); {total.intact:,} of {total.sent:,} records {integrity};"
        f" a buffer reset that forgot to rewind corrupted {dirty.corrupted} records and the"
        f" receiver {pitfall}."
    )
