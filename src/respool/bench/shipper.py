"""Scenario ``shipper``: a log shipper, end to end, with every strategy where it fits.

The classic case for pooling: structured log records are serialized (JSON lines), compressed
(zlib, with a preset dictionary of the keys and values every record repeats) and sliced into
datagrams that fit a UDP payload, then sent to 127.0.0.1, where a receiver puts every batch
back together and compares every record with what was sent. The same input goes through four
implementations, and each pools what its strategy fits:

* **no pool**: per batch, a new buffer, a new compressor and a new socket;
* **FixedPool of buffers**: the serialization buffers come from a free list shared by the
  shipping threads (compressor and socket still new per batch). A ``FixedPool``, not an
  ``ElasticPool``: each thread holds at most one buffer at a time, so ``size`` = the number of
  threads means nobody ever waits, and a burst of logs can never make the shipper allocate
  more buffers than that (its memory is known in advance);
* **TransientPool of buffers**: the same buffers from per-thread caches (no lock, no fixed
  count; what goes unused is dropped at garbage collection);
* **WorkerPool**: each worker owns a compressor and a connected UDP socket for its whole life
  (and its buffer). Owning the compressor is what pays: making one allocates about 256 KiB of
  state and loads the dictionary, which costs as much as compressing a small batch. Python's
  zlib cannot reset a compressor, so one that lives on carries one stream from batch to batch
  (each batch ends with a sync flush, so the receiver can decode it at once): its dictionary
  is loaded once, and the bytes sent come out about the same as with a new compressor per
  batch. ``Compress.copy()`` of a primed compressor would not help: it costs as much as
  making a new one (measured: both about 100 µs with a 32 KiB dictionary).

The pitfall: the same ``FixedPool`` of buffers with a reset that wipes the bytes but forgets
to rewind the write position (*not quite clean*, like a temp file truncated but not rewound):
the next batch is written after a run of zero bytes, which corrupts its first record. The
receiver catches it because it compares every record with what was sent, serial number and
every field; the datagrams' checksums all pass, since the damage happened before compression.

UDP on loopback drops datagrams when the receiver's socket buffer is full, so an honest run
must not overrun it: the receiver asks for a large ``SO_RCVBUF`` and hands out *credits*, one
per datagram its buffer can hold; a shipper takes one before each send and the receiver gives
it back as it reads each datagram. A datagram that is lost anyway (or dropped by a test hook)
shows up as the records of its batch *missing*, never as intact.

The timed part of a run ends when the receiver has read every datagram; decompressing,
parsing and comparing happen after the timing, so that the receiver's checks, the same for
every implementation, do not blur the comparison.
"""

from __future__ import annotations

import itertools
import json
import random
import socket
import struct
import threading
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Final

from respool import _validate
from respool.bench._report import Cell, Column, Table, rows_from
from respool.bench._run import Context
from respool.bench._timing import Spread, StepHook, repeated
from respool.fixed import FixedPool
from respool.transient import TransientPool
from respool.worker import WorkerPool

__all__ = [
    "BATCH",
    "COMPRESS_KEPT",
    "COMPRESS_NEW",
    "DATAGRAM",
    "FIXED_BUFFERS",
    "HEADER",
    "IMPLEMENTATIONS",
    "NEW_BUFFER",
    "NEW_SOCKET",
    "NO_POOL",
    "SERIALIZE",
    "SMALL_BATCH",
    "THREADS",
    "TRANSIENT_BUFFERS",
    "WORKERS",
    "ZDICT",
    "Batch",
    "Delivery",
    "DirtyShipper",
    "Implementation",
    "Link",
    "Measurement",
    "Outlet",
    "Receiver",
    "Scratch",
    "Tally",
    "check_batch",
    "costs",
    "make_batches",
    "measure",
    "pitfall",
    "run",
    "verify",
]

#: Shipping threads (and WorkerPool workers) in every implementation.
THREADS: Final = 4
#: Records per batch: what a shipper flushing every few hundred milliseconds sends at a
#: moderate log rate (its compressed batch takes two datagrams). Per-batch costs (a
#: compressor, a socket) weigh more the smaller the batch: SMALL_BATCH shows that.
BATCH: Final = 64
SMALL_BATCH: Final = 16
#: zlib level: measured on these records, 3 takes about half the time of the default (6) for
#: about 14% more bytes, a trade log shippers usually take.
LEVEL: Final = 3
#: A datagram must fit a UDP payload on any ordinary path (1,500-byte MTU, less the headers).
DATAGRAM: Final = 1400
#: run, flags, stream, seq, batch, slice index, slice count, payload length, CRC-32 of the
#: whole compressed batch.
HEADER: Final = struct.Struct(">HBIIIHHHI")
PAYLOAD: Final = DATAGRAM - HEADER.size
#: Flags: the batch is a whole zlib stream, or the next piece of its stream.
WHOLE: Final = 0
CHAINED: Final = 1
#: The socket buffer the receiver asks for; the kernel may grant less (net.core.rmem_max).
RCVBUF: Final = 4 << 20
#: What one queued datagram costs the receive buffer, generously (payload plus the kernel's
#: bookkeeping): the credits are the buffer divided by this.
_TRUESIZE: Final = 4096
#: A shipper waits this long for a credit before it assumes a datagram was lost and sends.
_STALL: Final = 1.0
#: The receiver waits this long without a datagram before it declares the rest lost.
_QUIET: Final = 1.0
#: Initial buffer capacity: a batch of BATCH records fits without growing.
_CAPACITY: Final = 16 << 10

NO_POOL: Final = "no pool"
FIXED_BUFFERS: Final = "FixedPool of buffers"
TRANSIENT_BUFFERS: Final = "TransientPool of buffers"
WORKERS: Final = "WorkerPool: compressor+socket"

# -- the records --------------------------------------------------------------------------

_LEVELS: Final = ("debug", "info", "info", "info", "info", "warning", "error")
_SERVICES: Final = ("checkout", "payments", "search", "auth", "inventory")
_MESSAGES: Final = (
    "request served",
    "order placed",
    "payment authorized",
    "cache miss",
    "token refreshed",
    "stock reserved",
    "slow query",
    "retrying upstream call",
)
_PATHS: Final = ("/api/v1/orders", "/api/v1/cart", "/api/v1/search", "/login", "/api/v1/stock")
_STATUSES: Final = (200, 200, 200, 200, 201, 204, 304, 404, 500)

Record = dict[str, object]


def _records(count: int, seed: int, first: int = 0) -> list[Record]:
    """*count* structured records, alike enough to compress well, different enough to be
    real: random ids, users, latencies. The same seed gives the same records."""
    draw = random.Random(seed)
    out: list[Record] = []
    for serial in range(first, first + count):
        out.append(
            {
                "time": round(1_764_000_000 + serial * 0.0137, 4),
                "level": draw.choice(_LEVELS),
                "service": draw.choice(_SERVICES),
                "message": draw.choice(_MESSAGES),
                "host": f"web-{draw.randrange(12):02d}",
                "request_id": f"{draw.getrandbits(64):016x}",
                "user": draw.randrange(100_000),
                "status": draw.choice(_STATUSES),
                "duration_ms": round(draw.lognormvariate(2.5, 0.8), 2),
                "path": draw.choice(_PATHS),
                "serial": serial,
            }
        )
    return out


_encode = json.JSONEncoder(separators=(",", ":")).encode

#: The preset dictionary: sample records made like the real ones (another seed), so that it
#: holds every key and the common values, as much as zlib can use (its window, 32 KiB).
ZDICT: Final = "\n".join(_encode(r) for r in _records(200, seed=7, first=10**9)).encode()[
    -(32 << 10) :
]


@dataclass(frozen=True)
class Batch:
    """One batch of records: what a shipper sends, and what the receiver must find."""

    index: int
    records: tuple[Record, ...]


def make_batches(records: int, batch: int = BATCH, seed: int = 1) -> list[Batch]:
    """The input every implementation ships: *records* records in batches of *batch*."""
    records = _validate.integer("records", records, minimum=1)
    batch = _validate.integer("batch", batch, minimum=1)
    made = _records(records, seed)
    return [Batch(i // batch, tuple(made[i : i + batch])) for i in range(0, records, batch)]


# -- the buffer -----------------------------------------------------------------------------


class Scratch:
    """A serialization buffer that keeps its memory between uses: a ``bytearray`` written
    at a position, like a file. (``del buf[:]`` would free a bytearray's memory, so a pooled
    buffer that is cleared that way saves nothing.)

    Its reset must do two things: wipe what the last user wrote (no data leaks from one
    batch to the next) and rewind the position. :meth:`clear` does both; :meth:`wipe` does
    only the first: the *not quite clean* reset of the pitfall.
    """

    __slots__ = ("data", "frame", "pos")

    def __init__(self, capacity: int = _CAPACITY) -> None:
        self.data = bytearray(capacity)
        #: Where datagrams are put together: header, then a slice of the payload.
        self.frame = bytearray(DATAGRAM)
        self.pos = 0

    def write(self, chunk: bytes) -> None:
        end = self.pos + len(chunk)
        if end > len(self.data):
            self.data.extend(bytes(max(end - len(self.data), len(self.data))))
        self.data[self.pos : end] = chunk
        self.pos = end

    def clear(self) -> None:
        """The reset that truly clears: wipe the bytes written, rewind."""
        self.data[: self.pos] = bytes(self.pos)
        self.pos = 0

    def wipe(self) -> None:
        """The not-quite-clean reset: wipes the bytes but leaves the position where it was,
        so the next user writes after a run of zeros."""
        self.data[: self.pos] = bytes(self.pos)


# -- the wire -----------------------------------------------------------------------------------


@dataclass
class Link:
    """What a shipper needs to reach the receiver: its address, the run's number (in every
    header, so a straggler from another run is never mistaken for this one's) and the
    flow-control credits."""

    address: tuple[str, int]
    run: int
    credits: threading.Semaphore
    stalls: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def stalled(self) -> None:
        """Count a credit that did not come back in time (a datagram lost, presumably)."""
        with self._lock:
            self.stalls += 1


def _serialize(batch: Batch, scratch: Scratch) -> None:
    write = scratch.write
    for record in batch.records:
        write((_encode(record) + "\n").encode())


def _send(
    link: Link,
    sock: socket.socket,
    scratch: Scratch,
    payload: bytes,
    batch: int,
    flags: int,
    stream: int,
    seq: int,
) -> int:
    """Slice *payload* into datagrams, each with the header; return how many were sent."""
    crc = zlib.crc32(payload)
    count = max(1, -(-len(payload) // PAYLOAD))
    frame = scratch.frame
    with memoryview(frame) as view:
        for index in range(count):
            piece = payload[index * PAYLOAD : (index + 1) * PAYLOAD]
            size = len(piece)
            HEADER.pack_into(frame, 0, link.run, flags, stream, seq, batch, index, count, size, crc)
            frame[HEADER.size : HEADER.size + size] = piece
            if not link.credits.acquire(timeout=_STALL):
                link.stalled()  # a credit lost with a lost datagram: send anyway
            sock.send(view[: HEADER.size + size])
    return count


def _new_compressor() -> zlib._Compress:
    return zlib.compressobj(LEVEL, zlib.DEFLATED, zlib.MAX_WBITS, 8, zlib.Z_DEFAULT_STRATEGY, ZDICT)


def _new_socket(link: Link) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.connect(link.address)
    except BaseException:
        sock.close()
        raise
    return sock


def ship_whole(link: Link, batch: Batch, scratch: Scratch) -> int:
    """Ship *batch* as a whole zlib stream, with a new compressor and a new socket."""
    _serialize(batch, scratch)
    compressor = _new_compressor()
    with memoryview(scratch.data) as view:
        payload = compressor.compress(view[: scratch.pos]) + compressor.flush()
    sock = _new_socket(link)
    try:
        return _send(link, sock, scratch, payload, batch.index, WHOLE, 0, 0)
    finally:
        sock.close()


# -- the implementations --------------------------------------------------------------------

#: One implementation: ship every batch over the link; return the datagrams sent.
Implementation = Callable[[Link, Sequence[Batch]], int]


def no_pool(link: Link, batches: Sequence[Batch]) -> int:
    """Per batch: a new buffer, a new compressor, a new socket."""

    def one(batch: Batch) -> int:
        return ship_whole(link, batch, Scratch())

    with ThreadPoolExecutor(THREADS, thread_name_prefix="shipper-fresh") as executor:
        return sum(executor.map(one, batches))


def fixed_buffers(
    link: Link, batches: Sequence[Batch], reset: Callable[[Scratch], object] = Scratch.clear
) -> int:
    """Buffers from a ``FixedPool`` of one per thread; compressor and socket new per batch."""
    with FixedPool(Scratch, THREADS, reset=reset, name="shipper-buffers") as pool:

        def one(batch: Batch) -> int:
            with pool.acquire() as scratch:
                return ship_whole(link, batch, scratch)

        with ThreadPoolExecutor(THREADS, thread_name_prefix="shipper-fixed") as executor:
            return sum(executor.map(one, batches))


def transient_buffers(link: Link, batches: Sequence[Batch]) -> int:
    """Buffers from a ``TransientPool`` (per-thread caches); the rest new per batch."""
    pool: TransientPool[Scratch] = TransientPool(
        Scratch, reset=Scratch.clear, name="shipper-scratch"
    )

    def one(batch: Batch) -> int:
        with pool.borrow() as scratch:
            return ship_whole(link, batch, scratch)

    try:
        with ThreadPoolExecutor(THREADS, thread_name_prefix="shipper-transient") as executor:
            return sum(executor.map(one, batches))
    finally:
        pool.clear()


_streams = itertools.count(1)  # next() on it is atomic: safe from every worker thread


class Outlet:
    """A worker's resource: a compressor carrying one stream, a connected socket, a buffer.

    The stream is numbered when it is made: a replacement (after a failure) starts a new
    stream, which the receiver decodes from its beginning.
    """

    def __init__(self, link: Link) -> None:
        self.link = link
        self.stream = next(_streams)
        self.seq = 0
        self.compressor = _new_compressor()
        self.socket = _new_socket(link)
        self.scratch = Scratch()
        #: True while a batch is half-shipped: its stream may be out of step with the
        #: receiver's, so the outlet must not be reused (``reset`` refuses it).
        self.busy = False

    def ship(self, batch: Batch) -> int:
        """The task: serialize, compress into this stream (ending with a sync flush, so the
        receiver can decode the batch now), slice, send."""
        self.busy = True
        scratch = self.scratch
        _serialize(batch, scratch)
        with memoryview(scratch.data) as view:
            payload = self.compressor.compress(view[: scratch.pos])
        payload += self.compressor.flush(zlib.Z_SYNC_FLUSH)
        sent = _send(
            self.link, self.socket, scratch, payload, batch.index, CHAINED, self.stream, self.seq
        )
        self.seq += 1
        self.busy = False
        return sent

    def reset(self) -> None:
        """After every task: clear the buffer; an outlet left mid-batch cannot be cleaned
        (its stream is out of step), so raising makes the pool destroy it."""
        if self.busy:
            raise RuntimeError(f"stream {self.stream} was left mid-batch")
        self.scratch.clear()

    def close(self) -> None:
        self.socket.close()


def worker_pool(link: Link, batches: Sequence[Batch]) -> int:
    """Each worker owns an :class:`Outlet` (compressor, socket, buffer) for its lifetime."""
    with WorkerPool(
        lambda: Outlet(link),
        THREADS,
        reset=Outlet.reset,
        destroy=Outlet.close,
        name="shipper-workers",
    ) as pool:
        return sum(pool.map(Outlet.ship, batches))


#: The implementations, baseline first.
IMPLEMENTATIONS: Final[dict[str, Implementation]] = {
    NO_POOL: no_pool,
    FIXED_BUFFERS: fixed_buffers,
    TRANSIENT_BUFFERS: transient_buffers,
    WORKERS: worker_pool,
}


class DirtyShipper:
    """The pitfall: :func:`fixed_buffers` with the reset that wipes but forgets to rewind.

    It counts the batches that were written into a buffer left dirty (its position not at
    the start): each should cost exactly one record, so the receiver can be held to that.
    """

    def __init__(self) -> None:
        self.reused = 0
        self._lock = threading.Lock()

    def __call__(self, link: Link, batches: Sequence[Batch]) -> int:
        with FixedPool(Scratch, THREADS, reset=Scratch.wipe, name="shipper-dirty") as pool:

            def one(batch: Batch) -> int:
                with pool.acquire() as scratch:
                    if scratch.pos:
                        with self._lock:
                            self.reused += 1
                    return ship_whole(link, batch, scratch)

            with ThreadPoolExecutor(THREADS, thread_name_prefix="shipper-dirty") as executor:
                return sum(executor.map(one, batches))


# -- the receiver ---------------------------------------------------------------------------


class Receiver:
    """A thread reading datagrams on 127.0.0.1, handing back a credit for each.

    It only collects while shipping is timed; :func:`verify` does the reassembly and the
    checks afterwards. *drop* is a test hook: a datagram for which it returns true is thrown
    away on arrival, as if the network had lost it.
    """

    def __init__(self, *, drop: Callable[[bytes], bool] | None = None) -> None:
        self._drop = drop
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(0.05)  # to notice close() within that long
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        #: What the kernel granted: Linux doubles the request (up to net.core.rmem_max) to
        #: leave room for its bookkeeping, and charges each datagram's full footprint to it.
        self.rcvbuf: int = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self.window = max(8, min(512, self.rcvbuf // _TRUESIZE))
        self.address: tuple[str, int] = sock.getsockname()[:2]
        self._credits = threading.Semaphore(self.window)
        self._runs = itertools.count(1)
        self._arrived = 0
        self._target = 0
        self._datagrams: list[bytes] = []
        self._lock = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._read, name="shipper-receiver", daemon=True)
        self._thread.start()

    def link(self) -> Link:
        """A link for one run, with a run number of its own."""
        return Link(self.address, next(self._runs) & 0xFFFF, self._credits)

    def _read(self) -> None:
        sock, credits, lock = self._sock, self._credits, self._lock
        while not self._stop:
            try:
                data = sock.recv(65535)
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            credits.release()
            keep = self._drop is None or not self._drop(data)
            with lock:
                self._arrived += 1
                if keep:
                    self._datagrams.append(data)
                if self._arrived >= self._target:
                    lock.notify_all()

    def wait(self, datagrams: int) -> bool:
        """Wait until *datagrams* more have arrived since the last :meth:`take`, or until
        none has come for a while (the rest were lost); return whether all came."""
        with self._lock:
            self._target = datagrams
            while self._arrived < datagrams:
                before = self._arrived
                self._lock.wait(_QUIET)
                if self._arrived == before:
                    return False
            return True

    def take(self) -> list[bytes]:
        """The datagrams kept since the last call; the arrival count starts again."""
        with self._lock:
            taken, self._datagrams = self._datagrams, []
            self._arrived = 0
            return taken

    def deliver(self, implementation: Implementation, batches: Sequence[Batch]) -> Delivery:
        """Ship *batches* with *implementation* and wait until the receiver has them all."""
        link = self.link()
        sent = implementation(link, batches)
        complete = self.wait(sent)
        return Delivery(link.run, sent, self.take(), complete, link.stalls)

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        self._sock.close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Delivery:
    """What one run sent, and the datagrams the receiver kept of it."""

    run: int
    sent: int
    datagrams: list[bytes]
    complete: bool
    stalls: int


@dataclass
class Tally:
    """The receiver's verdict on the records of one or more runs.

    Every record sent is exactly one of intact, corrupted (its batch arrived, but its line
    did not match what was sent) or missing (its batch never arrived whole); ``stray``
    counts what nobody sent: extra lines, a batch twice, another run's datagrams.
    """

    sent: int = 0
    intact: int = 0
    corrupted: int = 0
    missing: int = 0
    stray: int = 0
    #: Datagrams the shippers sent, and those the receiver got (and kept).
    datagrams: int = 0
    received: int = 0
    payload_bytes: int = 0
    stalls: int = 0

    @property
    def perfect(self) -> bool:
        """Every record arrived intact, and nothing else did."""
        return self.intact == self.sent and not (self.corrupted or self.missing or self.stray)

    def __iadd__(self, other: Tally) -> Tally:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self


def check_batch(data: bytes, batch: Batch, tally: Tally) -> None:
    """Compare the decompressed lines of one batch with the records sent, one by one: the
    serial number first, then every field."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if len(lines) == len(batch.records):
        # The common case, parsed in one call: n lines that make n records. (A damaged line
        # fails the parse or changes the count; then each line is judged on its own.)
        try:
            parsed = json.loads(b"[" + b",".join(lines) + b"]")
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and len(parsed) == len(lines):
            for record, sent in zip(parsed, batch.records, strict=True):
                if record == sent:
                    tally.intact += 1
                else:
                    tally.corrupted += 1
            return
    for position, sent in enumerate(batch.records):
        if position >= len(lines):
            tally.corrupted += 1  # the batch arrived short of this record
            continue
        try:
            record = json.loads(lines[position])
        except ValueError:  # not JSON any more (UnicodeDecodeError is a ValueError too)
            tally.corrupted += 1
            continue
        if isinstance(record, dict) and record.get("serial") == sent["serial"] and record == sent:
            tally.intact += 1
        else:
            tally.corrupted += 1
    tally.stray += max(0, len(lines) - len(batch.records))


@dataclass
class _Assembly:
    """The slices of one batch as they arrived."""

    flags: int
    seq: int
    count: int
    crc: int
    pieces: dict[int, bytes] = field(default_factory=dict)

    def payload(self) -> bytes | None:
        """The whole payload if every slice arrived and the checksum matches."""
        if len(self.pieces) != self.count:
            return None
        data = b"".join(self.pieces[i] for i in range(self.count))
        return data if zlib.crc32(data) == self.crc else None


def verify(delivery: Delivery, batches: Sequence[Batch]) -> Tally:
    """Reassemble, decompress and check every batch of one delivery against *batches*."""
    by_index = {batch.index: batch for batch in batches}
    tally = Tally(
        sent=sum(len(b.records) for b in batches),
        datagrams=delivery.sent,
        received=len(delivery.datagrams),
        stalls=delivery.stalls,
    )
    assemblies: dict[tuple[int, int], _Assembly] = {}
    for datagram in delivery.datagrams:
        tally.payload_bytes += max(0, len(datagram) - HEADER.size)
        try:
            run, flags, stream, seq, index, piece, count, size, crc = HEADER.unpack_from(datagram)
        except struct.error:
            tally.stray += 1
            continue
        if run != delivery.run or index not in by_index or size != len(datagram) - HEADER.size:
            tally.stray += 1
            continue
        key = (stream, index)
        assembly = assemblies.setdefault(key, _Assembly(flags, seq, count, crc))
        if piece in assembly.pieces or piece >= count:
            tally.stray += 1
            continue
        assembly.pieces[piece] = datagram[HEADER.size :]
    arrived: dict[int, bytes] = {}  # batch index -> decompressed lines

    def accept(index: int, data: bytes) -> None:
        if index in arrived:
            tally.stray += 1  # the same batch twice
        else:
            arrived[index] = data

    chains: dict[int, list[tuple[int, int, _Assembly]]] = defaultdict(list)
    for (stream, index), assembly in assemblies.items():
        if assembly.flags == CHAINED:
            chains[stream].append((assembly.seq, index, assembly))
            continue
        payload = assembly.payload()
        if payload is None:
            continue  # incomplete or damaged: its records are missing
        inflater = zlib.decompressobj(zdict=ZDICT)
        try:
            data = inflater.decompress(payload)
        except zlib.error:
            continue
        if inflater.eof:
            accept(index, data)
    for chain in chains.values():
        # One compressor's stream: decodable in order from its start, up to the first gap.
        inflater = zlib.decompressobj(zdict=ZDICT)
        for expected_seq, (seq, index, assembly) in enumerate(sorted(chain, key=_first)):
            payload = assembly.payload()
            if seq != expected_seq or payload is None:
                break  # a batch of this stream was lost: the rest cannot be decoded
            try:
                accept(index, inflater.decompress(payload))
            except zlib.error:
                break
    for index, batch in by_index.items():
        if index in arrived:
            check_batch(arrived[index], batch, tally)
        else:
            tally.missing += len(batch.records)
    return tally


def _first(item: tuple[int, int, _Assembly]) -> int:
    return item[0]


# -- measuring --------------------------------------------------------------------------------


@dataclass
class Measurement:
    """Every round of every implementation, and the receiver's verdict on all of them."""

    records: int
    batch: int
    batches: int
    spreads: list[Spread]
    tallies: dict[str, Tally]
    window: int

    def rate(self, name: str) -> float:
        """Records per second in *name*'s best round."""
        spread = next(s for s in self.spreads if s.name == name)
        return self.records / (spread.min / 1e9)

    @property
    def total(self) -> Tally:
        """All implementations' tallies added up."""
        total = Tally()
        for tally in self.tallies.values():
            total += tally
        return total


def measure(
    records: int,
    rounds: int,
    *,
    batch: int = BATCH,
    implementations: Iterable[str] = tuple(IMPLEMENTATIONS),
    on_step: StepHook | None = None,
) -> Measurement:
    """Time each implementation shipping the same *records* records in batches of *batch*,
    rounds interleaved; then verify every delivery of every round."""
    batches = make_batches(records, batch)
    names = list(implementations)
    deliveries: dict[str, list[Delivery]] = {name: [] for name in names}
    with Receiver() as receiver:

        def case(name: str) -> Callable[[], None]:
            implementation = IMPLEMENTATIONS[name]

            def once() -> None:
                deliveries[name].append(receiver.deliver(implementation, batches))

            return once

        spreads = repeated(
            [(name, case(name)) for name in names], 1, rounds, warmup=0, on_step=on_step
        )
        window = receiver.window
    tallies = {}
    for name in names:
        tally = Tally()
        for delivery in deliveries[name]:
            tally += verify(delivery, batches)
        tallies[name] = tally
    return Measurement(records, batch, len(batches), spreads, tallies, window)


def pitfall(records: int) -> tuple[Tally, int]:
    """Ship *records* through the free list whose reset forgets to rewind; return the
    receiver's verdict and how many batches were written into a dirty buffer."""
    batches = make_batches(records)
    shipper = DirtyShipper()
    with Receiver() as receiver:
        delivery = receiver.deliver(shipper, batches)
    return verify(delivery, batches), shipper.reused


SERIALIZE: Final = "serialize a batch (JSON lines)"
COMPRESS_KEPT: Final = "compress it, compressor kept"
COMPRESS_NEW: Final = "compress it, new compressor"
NEW_SOCKET: Final = "new UDP socket, connect, close"
NEW_BUFFER: Final = "new buffer"


def costs(number: int, rounds: int, on_step: StepHook | None = None) -> list[Spread]:
    """What each step of shipping one batch costs on one thread, in ns per batch: where the
    time goes, and so what a pool can save."""
    batches = make_batches(BATCH * 8)
    texts = []
    for batch in batches:
        scratch = Scratch()
        _serialize(batch, scratch)
        texts.append(bytes(scratch.data[: scratch.pos]))
    turn = itertools.cycle(range(len(batches)))
    scratch = Scratch()
    kept = _new_compressor()
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    link = Link(sink.getsockname()[:2], 0, threading.Semaphore(0))

    def serialize() -> None:
        _serialize(batches[next(turn)], scratch)
        scratch.clear()

    def compress_kept() -> None:  # each batch different, as in a stream: no free matches
        kept.compress(texts[next(turn)])
        kept.flush(zlib.Z_SYNC_FLUSH)

    def compress_new() -> None:
        compressor = _new_compressor()
        compressor.compress(texts[next(turn)])
        compressor.flush()

    def new_socket() -> None:
        _new_socket(link).close()

    cases: list[tuple[str, Callable[[], object]]] = [
        (COMPRESS_KEPT, compress_kept),
        (COMPRESS_NEW, compress_new),
        (SERIALIZE, serialize),
        (NEW_SOCKET, new_socket),
        (NEW_BUFFER, Scratch),
    ]
    try:
        return repeated(cases, number, rounds, warmup=min(number, 20), on_step=on_step)
    finally:
        sink.close()


# -- the scenario -----------------------------------------------------------------------------


def run(ctx: Context) -> list[Table]:
    """Records per second of each implementation against the no-pool baseline, at two batch
    sizes; the receiver's verdict on every round; the pitfall caught; the cost of each step."""
    records = ctx.budget.n(16_000, BATCH * THREADS * 2)
    rounds = ctx.budget.rounds(7)
    dirty, reused = pitfall(ctx.budget.n(2_000, BATCH * THREADS * 2))
    if dirty.corrupted == 0 or dirty.corrupted != reused:
        raise RuntimeError(
            f"{reused} batches reused a dirty buffer, the receiver saw {dirty.corrupted}"
            f" corrupted records: {dirty}"
        )
    caught = (
        "Pitfall: a FixedPool reset that wipes the buffer but does not rewind it:"
        f" {reused} batches were written into a dirty buffer, and the receiver found"
        f" {dirty.corrupted} of {dirty.sent:,} records corrupted (the first of each)."
    )
    tables = []
    for batch in (SMALL_BATCH, BATCH):
        measured = measure(
            records, rounds, batch=batch, on_step=ctx.on_step(f"shipper {batch}/batch")
        )
        tables.append(_table(measured, rounds, caught if batch == BATCH else None))
    steps = costs(ctx.budget.n(2_000, 5), ctx.budget.rounds(5), ctx.on_step("shipper costs"))
    tables.append(_costs_table(steps))
    return tables


def _table(measured: Measurement, rounds: int, pitfall: str | None) -> Table:
    """One batch size: records per second, ratios to no pool, and the receiver's verdict."""
    failed = [name for name, tally in measured.tallies.items() if not tally.perfect]
    if failed:
        raise RuntimeError(
            "records lost or damaged: "
            + "; ".join(f"{name}: {measured.tallies[name]}" for name in failed)
        )
    extra: dict[str, dict[str, Cell]] = {
        name: {
            "intact": f"{tally.intact:,}/{tally.sent:,}",
            "bytes": tally.payload_bytes / tally.sent,
            "datagrams": tally.datagrams // rounds,
        }
        for name, tally in measured.tallies.items()
    }
    rows = rows_from(measured.spreads, NO_POOL, scale=measured.records, sense="rate", extra=extra)
    return Table(
        key=f"shipper-{measured.batch}",
        title=(
            f"Log shipper, {measured.batch} records a batch: {measured.records:,} records,"
            f" JSON lines, zlib with a {len(ZDICT) >> 10} KiB dictionary, UDP to"
            f" 127.0.0.1, {THREADS} threads"
        ),
        unit="k records/s",
        baseline=NO_POOL,
        rows=rows,
        higher_is_better=True,
        columns=[
            Column("intact", "intact"),
            Column("bytes", "B/record", "{:.1f}"),
            Column("datagrams", "datagrams/run", "{:,}"),
        ],
        notes=[
            "Every record of every round compared with what was sent (serial number and"
            f" every field): {measured.total.intact:,} intact, 0 corrupted, 0 missing;"
            f" flow control: at most {measured.window} datagrams in flight.",
            *([pitfall] if pitfall else []),
        ],
    )


def _costs_table(steps: list[Spread]) -> Table:
    by_name = {s.name: s.median for s in steps}
    setup = by_name[COMPRESS_NEW] - by_name[COMPRESS_KEPT]
    return Table(
        key="shipper-costs",
        title=f"Log shipper: what each step of one batch ({BATCH} records) costs, one thread",
        unit="ns/batch",
        baseline=COMPRESS_KEPT,
        rows=rows_from(steps, COMPRESS_KEPT),
        notes=[
            f"A new compressor costs about {setup / 1000:.0f} µs more per batch than one kept"
            f" (its state and its {len(ZDICT) >> 10} KiB dictionary): that is what owning one"
            " per worker saves. Serializing is the largest cost and no pool saves it.",
        ],
    )
