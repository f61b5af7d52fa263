"""Ready-made lifecycles for common resources, and :class:`BufferPool`.

Each function returns a :class:`~respool.Lifecycle` that works with every pool
(``FixedPool``, ``ElasticPool``, ``TransientPool``). Their ``reset`` callbacks are the point:
each one makes a returned resource indistinguishable from a new one, which is where hand-written
pools go wrong (the article's *not quite clean*), and refuses a resource that is still in use
elsewhere (*not quite done*) by raising :class:`~respool.StillInUse`.

- :func:`temp_files`: anonymous temporary files, truncated **and** rewound between users.
- :func:`byte_buffers`: fixed-size ``bytearray`` buffers for ``readinto``/``recv_into``.
- :func:`bytes_io`: ``io.BytesIO`` objects, really emptied between users.
- :class:`BufferPool`: buffers of any size, in power-of-two size classes, each class a
  :class:`~respool.TransientPool`.
"""

from __future__ import annotations

import io
import itertools
import logging
import os
import tempfile
import threading
from functools import partial
from types import TracebackType
from typing import IO, Final

from respool import _debug, _fork, _validate
from respool.errors import StillInUse
from respool.lifecycle import Lifecycle
from respool.stats import BufferStats, TransientStats
from respool.transient import TransientPool

__all__ = ["BufferPool", "BufferStats", "byte_buffers", "bytes_io", "temp_files"]

log = logging.getLogger("respool")
_names = itertools.count(1)  # next() on it is atomic: safe for pools made in threads


# -- temporary files -----------------------------------------------------------------------------


def temp_files(*, dir: str | os.PathLike[str] | None = None) -> Lifecycle[IO[bytes]]:
    """Anonymous binary temporary files (``tempfile.TemporaryFile``), reused safely.

    ``reset`` truncates the file to zero bytes **and** seeks back to its start. Truncating
    alone leaves the position where the last user stopped, so the next user's writes land
    after a gap that reads back as zero bytes: the article's uploads padded with as many zeros
    as the previous use had bytes. ``check``: the file is still open. ``destroy``: close it
    (which also frees the disk space; on POSIX the file never had a name). ``dir``: where the
    files are made (a ``str`` or ``os.PathLike``; default: ``tempfile``'s choice), checked for
    its type at once.

    ::

        with respool.FixedPool(respool.resources.temp_files(), size=4) as pool:
            with pool.acquire() as f:
                f.write(payload)
                f.seek(0)
                upload(f)
    """
    if dir is not None and not isinstance(dir, str | os.PathLike):
        raise TypeError(f"dir must be a str, an os.PathLike or None, got {dir!r}")
    return Lifecycle(
        partial(_new_temp_file, dir),
        reset=_rewind_file,
        check=_file_open,
        destroy=_close_file,
    )


def _new_temp_file(dir: str | os.PathLike[str] | None) -> IO[bytes]:
    """create: an anonymous temporary file opened for binary reading and writing."""
    return tempfile.TemporaryFile(dir=dir)


def _rewind_file(file: IO[bytes]) -> None:
    """reset: empty the file, then go back to its start (both, or the next user is padded)."""
    file.truncate(0)
    file.seek(0)


def _file_open(file: IO[bytes]) -> bool:
    """check: a file someone closed cannot be lent again."""
    return not file.closed


def _close_file(file: IO[bytes]) -> None:
    """destroy: close the file."""
    file.close()


# -- fixed-size byte buffers ---------------------------------------------------------------------


def byte_buffers(size: int, *, zero: bool = False) -> Lifecycle[bytearray]:
    """Reusable ``bytearray`` buffers of *size* bytes, for ``readinto``, ``recv_into`` and
    ``memoryview`` work.

    ``reset`` first makes sure nothing still looks into the buffer: a live ``memoryview`` (or
    any other buffer export) means someone may still read or write it, and handing it to the
    next user would let the two overwrite each other (*not quite done*). It then raises
    :class:`~respool.StillInUse` instead. Release views promptly (``with memoryview(buf) as
    view:``); a view that is merely unreferenced inside a reference cycle counts as live until
    the garbage collector frees it.

    A buffer whose length changed (it was resized) is refused as well (``ValueError``): a
    pool of fixed-size buffers must hand out that size.

    By default the contents are **not** cleared: the next user sees whatever the last one
    wrote, which is free and fine when each user fills what it reads. ``zero=True`` clears the
    buffer on every return (for secrets; it costs a copy of *size* bytes). In debug mode
    (:func:`respool.debug`) returned buffers are filled with ``respool._debug.POISON`` bytes so
    that a use after return shows.

    ::

        pool = respool.TransientPool(respool.resources.byte_buffers(64 * 1024))
        with pool.borrow() as buf:
            n = sock.recv_into(buf)
            handle(memoryview(buf)[:n])   # released before the block ends
    """
    size = _validate.integer("size", size, minimum=1)
    if not isinstance(zero, bool):
        raise TypeError(f"zero must be a bool, got {zero!r}")
    return Lifecycle(partial(bytearray, size), reset=_BufferReset(size, zero))


class _BufferReset:
    """``reset`` for fixed-size ``bytearray`` buffers: refuse exported or resized buffers,
    then optionally zero, then poison in debug mode."""

    __slots__ = ("_size", "_zeros")

    def __init__(self, size: int, zero: bool) -> None:
        self._size = size
        # One block of zeros shared by every reset, so zeroing copies without allocating.
        self._zeros = bytes(size) if zero else None

    def __call__(self, buf: bytearray) -> None:
        try:  # refuse_exported(), inlined: this runs on every return
            buf.append(buf.pop())
        except BufferError:
            refuse_exported(buf)  # raises StillInUse with the full message
        except IndexError:  # empty: resized to nothing, refused just below
            pass
        if len(buf) != self._size:
            raise ValueError(
                f"buffer was resized to {len(buf)} bytes; this pool's buffers are {self._size}"
            )
        if self._zeros is not None:
            buf[:] = self._zeros  # same length: an in-place copy
        if _debug.enabled:
            _debug.poison(buf)


def refuse_exported(buf: bytearray) -> None:
    """Raise :class:`~respool.StillInUse` if a ``memoryview`` (or other export) of *buf* is
    alive; leave *buf* unchanged either way.

    Python offers no way to read a ``bytearray``'s export count, but it refuses to resize an
    exported one. Popping the last byte is the cheapest resize (about 60 ns with the append
    that restores it, measured): it moves no memory and, when it fails, changes nothing. An
    empty buffer cannot be popped, but nothing meaningful can be exported from it either.
    """
    if not buf:
        return
    try:
        buf.append(buf.pop())
    except BufferError:
        raise StillInUse(
            f"a bytearray of {len(buf)} bytes was returned while a memoryview (or another"
            " buffer export) of it is still alive; release the view first"
        ) from None


# -- io.BytesIO ----------------------------------------------------------------------------------


def bytes_io() -> Lifecycle[io.BytesIO]:
    """``io.BytesIO`` objects, emptied for real between users.

    ``reset`` truncates to zero bytes (which also frees the memory of a large previous
    content) and seeks to the start: ``seek(0)`` alone would let the next user read the last
    user's bytes beyond what it wrote, and ``truncate(0)`` alone would pad its writes with
    zeros. A live ``getbuffer()`` view of the data means someone may still read it: ``reset``
    raises :class:`~respool.StillInUse` and leaves the object untouched.

    ::

        pool = respool.TransientPool(respool.resources.bytes_io())
        with pool.borrow() as out:
            out.write(header)
            out.write(body)
            send(out.getvalue())
    """
    return Lifecycle(io.BytesIO, reset=_empty_bytes_io, check=_bytes_io_open, destroy=_close_io)


def _empty_bytes_io(stream: io.BytesIO) -> None:
    """reset: truncate first, so that a refused reset changes nothing (not even the position)."""
    try:
        stream.truncate(0)
    except BufferError:
        raise StillInUse(
            "an io.BytesIO was returned while a getbuffer() view of it is still alive;"
            " release the view first"
        ) from None
    stream.seek(0)


def _bytes_io_open(stream: io.BytesIO) -> bool:
    """check: a closed BytesIO cannot be written to."""
    return not stream.closed


def _close_io(stream: io.BytesIO) -> None:
    """destroy: close (frees the buffer at once)."""
    stream.close()


# -- BufferPool ----------------------------------------------------------------------------------

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
    ) -> None:
        min_size = _power_of_two("min_size", min_size)
        max_size = _power_of_two("max_size", max_size)
        if max_size < min_size:
            raise ValueError(f"max_size must be >= min_size ({min_size}), got {max_size}")
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
            )
            for size in _class_sizes(min_size, max_size)
        )
        self._lock = threading.Lock()
        self._oversize = 0
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
        (dropping it instead on cancellation, ``KeyboardInterrupt`` or ``SystemExit``)."""
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
            by_size=by_size,
        )

    def __repr__(self) -> str:
        return f"<BufferPool {self.name!r} {self.min_size}..{self.max_size} bytes>"

    def _after_fork_in_child(self) -> None:
        """In a forked child: a new lock (the parent's may have been held by a thread that does
        not exist here) and fresh counters, as the size classes' pools start afresh too."""
        self._lock = threading.Lock()
        self._oversize = 0
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
        if exc_type is None:
            self._pool.put(buf)
        elif issubclass(exc_type, Exception):
            try:
                self._pool.put(buf)
            except Exception:  # never replace the exception that is propagating
                _log_put_failure(self._pool.name, exc_type)
        # else: aborted (cancellation, KeyboardInterrupt, SystemExit): drop the buffer


def _log_put_failure(name: str, exc_type: type[BaseException]) -> None:
    log.warning("pool %r: could not put back after %s", name, exc_type.__name__, exc_info=True)


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
