"""``BufferPool``: ``bytearray`` buffers of any size, pooled in power-of-two size classes.

A pool in its own right, built from parts found elsewhere: each size class is a
:class:`~respool.TransientPool` of :func:`~respool.resources.byte_buffers` (per-thread caches,
emptied by the garbage collector), and what a buffer must satisfy to come back (no live
``memoryview``, its class length) is decided by that lifecycle's ``reset``. What this module
adds is the choice of a class for a request, the refusal of sizes that must not be pinned in a
cache, and the totals over all classes.

It used to live in :mod:`respool.resources`, which still resolves the name for old imports.
"""

from __future__ import annotations

import itertools
import threading
from types import TracebackType
from typing import Final

from respool import _fork, _validate
from respool.resources import byte_buffers, refuse_exported
from respool.stats import BufferStats, TransientStats
from respool.transient import TransientPool, _put_back_after

__all__ = ["DEFAULT_MAX_SIZE", "DEFAULT_MIN_SIZE", "BufferPool", "BufferStats"]

_names = itertools.count(1)  # next() on it is atomic: safe for pools made in threads

#: Defaults: below 4 KiB, allocating is about as cheap as pooling (see ``respool tour``); above
#: 16 MiB, keeping buffers pinned in a cache costs more memory than it saves time.
DEFAULT_MIN_SIZE: Final = 4 * 1024
DEFAULT_MAX_SIZE: Final = 16 * 1024 * 1024


class BufferPool:
    """Buffers of any size, pooled in power-of-two size classes.

    ``get(n)`` returns a ``bytearray`` of the smallest class that holds *n* bytes (at least
    ``min_size``), so its length is usually larger than *n*: work on ``memoryview(buf)[:n]``.
    Each class is a :class:`~respool.TransientPool`: per-thread caches, emptied by the garbage
    collector (and by ``max_idle_time`` when set). Requests above ``max_size`` are allocated
    at their exact size and dropped when they come back, so one huge request cannot pin
    megabytes in the cache for good (Go issue 23199). A buffer put back whose length is not a
    class size is dropped the same way.

    ``put`` refuses a buffer that still has a live ``memoryview`` with
    :class:`~respool.StillInUse` (and drops it), and in debug mode fills returned buffers with
    poison bytes. Contents are not cleared otherwise (``zero=True`` clears them).

    ``observe=True`` has each size class record its use (idle gaps of its buffers, buffers
    out over time), read as ``stats().by_size[size].usage``; it costs each get and put of a
    class a lock, two clock reads and a dict update. Oversize buffers are not observed.

    ::

        buffers = respool.BufferPool(max_size=8 << 20)
        buf = buffers.get(n)                  # len(buf) >= n
        with memoryview(buf)[:n] as view:
            f.readinto(view)
            consume(view)
        buffers.put(buf)
        with buffers.borrow(n) as buf:        # or: get and put around a block
            ...
    """

    __slots__ = (
        "__weakref__",
        "_aborted_oversize",
        "_classes",
        "_dropped_size",
        "_lock",
        "_min",
        "_min_shift",
        "_oversize",
        "name",
    )

    def __init__(
        self,
        *,
        min_size: int = DEFAULT_MIN_SIZE,
        max_size: int = DEFAULT_MAX_SIZE,
        max_idle_time: float | None = None,
        zero: bool = False,
        name: str | None = None,
        observe: bool = False,
    ) -> None:
        min_size = _power_of_two("min_size", min_size)
        max_size = _power_of_two("max_size", max_size)
        if max_size < min_size:
            raise ValueError(f"max_size must be >= min_size ({min_size}), got {max_size}")
        if not isinstance(observe, bool):
            raise TypeError(f"observe must be a bool, got {observe!r}")
        if name is None:
            name = f"BufferPool-{next(_names)}"
        self.name: str = _validate.text("name", name)
        self._min = min_size
        self._min_shift = min_size.bit_length() - 1
        #: One pool per class, smallest first: _classes[i] holds buffers of min_size << i.
        self._classes: tuple[TransientPool[bytearray], ...] = tuple(
            TransientPool(
                byte_buffers(size, zero=zero),
                max_idle_time=max_idle_time,
                name=f"{self.name}[{size}]",
                observe=observe,
            )
            for size in _class_sizes(min_size, max_size)
        )
        self._lock = threading.Lock()
        self._oversize = 0
        self._aborted_oversize = 0
        self._dropped_size = 0
        _fork.register(self)

    @property
    def min_size(self) -> int:
        """The smallest class, in bytes."""
        return 1 << self._min_shift

    @property
    def max_size(self) -> int:
        """The largest class, in bytes: larger buffers are never pooled."""
        return 1 << (self._min_shift + len(self._classes) - 1)

    def class_size(self, n: int) -> int:
        """The length of the buffer ``get(n)`` returns (``n`` itself above ``max_size``)."""
        return self._index_and_size(n)[1]

    def get(self, n: int) -> bytearray:
        """A buffer of at least *n* bytes: cached if possible, else new (zero-filled)."""
        if type(n) is int and 0 <= n <= self._min:  # the commonest case, kept short
            return self._classes[0].get()
        index, size = self._index_and_size(n)
        if index < 0:
            with self._lock:
                self._oversize += 1
            return bytearray(size)
        return self._classes[index].get()

    def put(self, buf: bytearray) -> None:
        """Give *buf* back. Raises :class:`~respool.StillInUse` (and drops it) if a
        ``memoryview`` of it is still alive."""
        if not isinstance(buf, bytearray):
            raise TypeError(f"buf must be a bytearray, got {type(buf).__name__}")
        size = len(buf)
        index = size.bit_length() - 1 - self._min_shift
        if size & (size - 1) or not 0 <= index < len(self._classes):
            # Not a class size: drop it, counted as a put even if it is refused. It is still
            # checked, so a live view is not hidden.
            with self._lock:
                self._dropped_size += 1
            refuse_exported(buf)
            return
        self._classes[index].put(buf)

    def borrow(self, n: int) -> _BufferBorrow:
        """``with buffers.borrow(n) as buf:`` gets a buffer and puts it back at the end
        (dropping it instead on cancellation, ``KeyboardInterrupt`` or ``SystemExit``, counted
        as ``aborted`` in its size class's figures and the pool's total)."""
        return _BufferBorrow(self, n)

    def clear(self) -> None:
        """Drop every cached buffer now."""
        for pool in self._classes:
            pool.clear()

    def stats(self) -> BufferStats:
        """Totals over every class, and the figures of each class that has been used."""
        by_size: dict[int, TransientStats] = {}
        for shift, pool in enumerate(self._classes, start=self._min_shift):
            stats = pool.stats()
            if stats.gets or stats.puts:
                by_size[1 << shift] = stats
        with self._lock:
            oversize, dropped_size = self._oversize, self._dropped_size
            aborted_oversize = self._aborted_oversize
        every = by_size.values()
        return BufferStats(
            name=self.name,
            idle=sum(s.idle for s in every),
            idle_bytes=sum(size * s.idle for size, s in by_size.items()),
            gets=sum(s.gets for s in every) + oversize,
            hits=sum(s.hits for s in every),
            misses=sum(s.misses for s in every) + oversize,
            puts=sum(s.puts for s in every) + dropped_size,
            oversize=oversize,
            dropped_size=dropped_size,
            dropped_gc=sum(s.dropped_gc for s in every),
            dropped_age=sum(s.dropped_age for s in every),
            dropped_reset=sum(s.dropped_reset for s in every),
            aborted=sum(s.aborted for s in every) + aborted_oversize,
            by_size=by_size,
        )

    def __repr__(self) -> str:
        return f"<BufferPool {self.name!r} {self.min_size}..{self.max_size} bytes>"

    def _abort(self, buf: bytearray) -> None:
        """A ``borrow()`` block was aborted: drop *buf*, never reuse it. Counted by its size
        class, like an aborted ``TransientPool.borrow()``; a buffer of no class (oversize) is
        counted in the pool's own ``aborted`` total."""
        size = len(buf)
        index = size.bit_length() - 1 - self._min_shift
        if size and not size & (size - 1) and 0 <= index < len(self._classes):
            self._classes[index]._abort(buf)
        else:
            with self._lock:
                self._aborted_oversize += 1

    def _after_fork_in_child(self) -> None:
        """In a forked child: a new lock (the parent's may have been held by a thread that does
        not exist here) and fresh counters, as the size classes' pools start afresh too."""
        self._lock = threading.Lock()
        self._oversize = 0
        self._aborted_oversize = 0
        self._dropped_size = 0

    def _index_and_size(self, n: int) -> tuple[int, int]:
        """(class index, buffer length) for a request of *n* bytes; index -1: not pooled."""
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"n must be an int >= 0, got {n!r}")
        if n < 0:
            raise ValueError(f"n must be an int >= 0, got {n!r}")
        if n <= self._min:
            return 0, self._min
        shift = (n - 1).bit_length()
        index = shift - self._min_shift
        if index >= len(self._classes):
            return -1, n
        return index, 1 << shift


class _BufferBorrow:
    """The context manager ``BufferPool.borrow()`` returns."""

    __slots__ = ("_buf", "_n", "_pool")

    def __init__(self, pool: BufferPool, n: int) -> None:
        self._pool = pool
        self._n = n

    def __enter__(self) -> bytearray:
        buf = self._buf = self._pool.get(self._n)
        return buf

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        buf = self._buf
        del self._buf
        if exc_type is None:  # tested first: the common case pays for no policy call
            self._pool.put(buf)
        else:
            _put_back_after(self._pool, buf, exc_type)


def _power_of_two(name: str, value: object) -> int:
    """A size-class bound: an int power of two >= 1."""
    number = _validate.integer(name, value, minimum=1)
    if number & (number - 1):
        raise ValueError(f"{name} must be a power of two >= 1, got {number!r}")
    return number


def _class_sizes(min_size: int, max_size: int) -> list[int]:
    sizes = []
    size = min_size
    while size <= max_size:
        sizes.append(size)
        size <<= 1
    return sizes
