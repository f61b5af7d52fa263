"""The tour's worker section: each worker owns a compressor and a buffered file writer.

A worker pool doing real work: log records are compressed (``zlib``) and written as
length-prefixed frames to a file. Three ways to do it with four threads:

* **fresh per task**: every record makes a new compressor and opens, writes and closes the file;
* **ThreadPoolExecutor + threading.local**: each thread lazily makes its own compressor and
  buffered writer and keeps them — the usual workaround — but nothing ever tears them down;
* **WorkerPool**: each worker creates its compressor and writer when it starts and its
  ``destroy`` finishes the file (a trailer frame giving the record count), flushes and closes
  it, in the worker's own thread, at shutdown.

It times each and then reads every file back, counting the records that really reached the
disk and the files that were properly finished. Every figure is measured in the run.
"""

from __future__ import annotations

import gc
import itertools
import math
import shutil
import struct
import tempfile
import threading
import time
import warnings
import weakref
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from respool._verdict import judge
from respool.tour._text import compared, heading, micro, print_wrapped
from respool.worker import WorkerPool

__all__ = ["run"]

THREADS: Final = 4
_HEADER: Final = struct.Struct(">I")
#: A frame length no compressed record can have: marks the trailer, followed by the count.
_TRAILER: Final = 0xFFFFFFFF
_BUFFER: Final = 64 * 1024


def _records(count: int) -> Iterator[bytes]:
    """Structured log lines, alike enough to compress well, different enough to be real."""
    for i in range(count):
        yield (
            f'{{"ts": {1_700_000_000 + i}, "level": "info", "event": "order shipped",'
            f' "order": {10_000 + i}, "items": {i % 7 + 1}, "region": "eu-{i % 3}"}}\n'
        ).encode()


class _Writer:
    """A compressor and a buffered file: the per-worker resource."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("wb", buffering=_BUFFER)
        # Raw deflate; each record ends with a full flush, so a reader can decode every frame
        # on its own, while the compressor's ~256 KiB of state is made once and reused.
        self.compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.count = 0

    def write(self, record: bytes) -> None:
        data = self.compressor.compress(record) + self.compressor.flush(zlib.Z_FULL_FLUSH)
        self.file.write(_HEADER.pack(len(data)) + data)
        self.count += 1

    def finish(self) -> None:
        """destroy: write the trailer, flush and close — what no garbage collector does."""
        self.file.write(_HEADER.pack(_TRAILER) + _HEADER.pack(self.count))
        self.file.close()


def _fresh_write(path: Path, record: bytes) -> None:
    """A fresh compressor and file handle for one record, closed at once."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    data = compressor.compress(record) + compressor.flush()
    with path.open("ab") as file:
        file.write(_HEADER.pack(len(data)) + data)


@dataclass(frozen=True)
class _Outcome:
    """One approach's figures: time per record, and what a reader found on disk."""

    label: str
    seconds: float
    records: int
    found: int
    files: int
    finished: int | None  # None: the approach has no notion of finishing a file
    #: Writers nobody tore down, closed only when collected (with a ResourceWarning).
    collected: int


def _read_back(directory: Path) -> tuple[int, int, int]:
    """(records decoded, files, files ending with a trailer that matches their count)."""
    found = files = finished = 0
    for path in sorted(directory.iterdir()):
        files += 1
        data = path.read_bytes()
        at = in_file = 0
        while at + 4 <= len(data):
            (size,) = _HEADER.unpack_from(data, at)
            at += 4
            if size == _TRAILER:
                if at + 4 <= len(data) and _HEADER.unpack_from(data, at)[0] == in_file:
                    finished += 1
                break
            if at + size > len(data):
                break  # a frame cut short
            record = zlib.decompressobj(-15).decompress(data[at : at + size])
            at += size
            if record.endswith(b"\n"):
                in_file += 1
        found += in_file
    return found, files, finished


def _fresh(directory: Path, count: int) -> int:
    with ThreadPoolExecutor(THREADS) as executor:
        paths: dict[int, Path] = {}

        def task(record: bytes) -> None:
            ident = threading.get_ident()
            path = paths.setdefault(ident, directory / f"fresh-{len(paths)}.bin")
            _fresh_write(path, record)

        for _ in executor.map(task, _records(count)):
            pass
    return 0


def _thread_local(directory: Path, count: int) -> int:
    """Return how many of the per-thread writers were closed only by being collected,
    which CPython reports with a ``ResourceWarning`` (hidden by default; recorded here)."""
    local = threading.local()
    names = itertools.count()
    made: list[weakref.ref[_Writer]] = []

    def task(record: bytes) -> None:
        writer = getattr(local, "writer", None)
        if writer is None:
            writer = local.writer = _Writer(directory / f"local-{next(names)}.bin")
            made.append(weakref.ref(writer))
        writer.write(record)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with ThreadPoolExecutor(THREADS) as executor:
            for _ in executor.map(task, _records(count)):
                pass
        # A thread's locals are dropped as it is torn down, which can finish a moment after
        # join() returns: wait for that here, so no warning escapes this block.
        deadline = time.monotonic() + 2.0
        while any(ref() is not None for ref in made) and time.monotonic() < deadline:
            gc.collect()
            time.sleep(0.001)
        gone = sum(ref() is None for ref in made)
        for ref in made:  # not dropped in time (a slow machine): close quietly, untimed
            writer = ref()
            if writer is not None:
                writer.file.close()
            del writer
    unclosed = sum(issubclass(w.category, ResourceWarning) for w in caught)
    return min(gone, unclosed)


def _worker_pool(directory: Path, count: int) -> int:
    names = itertools.count()
    with WorkerPool(
        lambda: _Writer(directory / f"worker-{next(names)}.bin"),
        THREADS,
        destroy=_Writer.finish,
        name="tour-writers",
    ) as pool:
        for _ in pool.map(_Writer.write, _records(count)):
            pass
    return 0


_APPROACHES: Final[list[tuple[str, Callable[[Path, int], int], bool]]] = [
    ("fresh, per record", _fresh, False),
    ("ThreadPoolExecutor + local", _thread_local, True),
    ("WorkerPool", _worker_pool, True),
]


def _measure(count: int, rounds: int) -> list[_Outcome]:
    """Best-of-*rounds* time of each approach, rounds interleaved; files read back after
    every round (the last round's counts are reported)."""
    best = {label: math.inf for label, _, _ in _APPROACHES}
    last: dict[str, tuple[int, int, int, int]] = {}
    root = Path(tempfile.mkdtemp(prefix="respool-tour-"))
    try:
        for round_ in range(rounds):
            for index, (label, approach, _) in enumerate(_APPROACHES):
                directory = root / f"{round_}-{index}"
                directory.mkdir()
                started = time.perf_counter()
                collected = approach(directory, count)
                best[label] = min(best[label], time.perf_counter() - started)
                last[label] = (*_read_back(directory), collected)
                shutil.rmtree(directory)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return [
        _Outcome(
            label,
            best[label],
            count,
            last[label][0],
            last[label][1],
            last[label][2] if finishes else None,
            last[label][3],
        )
        for label, _, finishes in _APPROACHES
    ]


def run(quick: bool) -> str:
    """Print the section; return one summary sentence built from its measurements."""
    heading("4. WorkerPool: a compressor and a writer per worker")
    count, rounds = (1_500, 2) if quick else (8_000, 3)
    us = micro()
    print_wrapped(
        f"A worker pool doing real work: {count:,} log records, each compressed with"
        " zlib and written as a length-prefixed frame to a file, by"
        f" {THREADS} threads. A compressor holds about 256 KiB of state and a file needs"
        " opening, so making them per record is the cost a worker-owned resource avoids."
        " ThreadPoolExecutor users get a per-thread resource with threading.local, but it has"
        " no teardown: nothing writes the file's trailer or closes it when the pool stops."
        " WorkerPool's destroy does, in the worker's own thread.",
        "  ",
    )
    print(f"  Timed: best of {rounds} rounds; then every file is read back.")
    outcomes = _measure(count, rounds)
    fresh, local, pooled = outcomes
    width = max(len(o.label) for o in outcomes)
    print()
    print(
        f"  {'approach':<{width}}  {us + '/rec':>8}  {'speed-up':>8}  {'records on disk':>15}"
        f"  {'finished':>8}"
    )
    for o in outcomes:
        per = o.seconds / o.records * 1e6
        finished = "n/a" if o.finished is None else f"{o.finished}/{o.files}"
        print(
            f"  {o.label:<{width}}  {per:>8.1f}  {judge(fresh.seconds, o.seconds)!s:>8}"
            f"  {o.found:>7,}/{o.records:<7,}  {finished:>8}"
        )
    print()
    verdict = judge(fresh.seconds, pooled.seconds).verdict
    versus_fresh = compared(pooled.seconds, fresh.seconds)
    versus_local = compared(pooled.seconds, local.seconds)
    lost = local.records - local.found
    if lost:
        fate = f"{lost:,} of its records never reached the disk (still in buffers nobody flushed)"
    else:
        fate = (
            f"every record reached the disk, yet no file got its trailer: {local.collected} of"
            f" the {local.files} writers were simply dropped when their threads ended, and"
            " closed (so flushed) only on collection, each with a ResourceWarning that Python"
            " hides by default; an error in that close would reach no one"
        )
    print_wrapped(
        f"Per record, WorkerPool {versus_fresh} a fresh compressor and file ({verdict}),"
        f" and it {versus_local} ThreadPoolExecutor with threading.local. With"
        f" threading.local, {fate}. WorkerPool finished"
        f" {pooled.finished}/{pooled.files} files, each with the trailer its destroy wrote.",
        "  ",
    )
    local_finished = 0 if local.finished is None else local.finished
    return (
        f"WorkerPool (a zlib compressor and buffered file per worker) {versus_fresh} fresh"
        f" ones per record ({verdict}) and {versus_local} ThreadPoolExecutor +"
        f" threading.local; it finished {pooled.finished} of"
        f" {pooled.files} files properly where threading.local finished {local_finished}"
        f" of {local.files} ({local.found:,} of {local.records:,} records reached disk)."
    )
