"""Ready-made lifecycles for common resources.

Each function returns a :class:`~respool.Lifecycle` that works with every pool
(``FixedPool``, ``ElasticPool``, ``TransientPool``). Their ``reset`` callbacks are the point:
each one makes a returned resource indistinguishable from a new one, which is where hand-written
pools go wrong (the *not quite clean* pitfall), and refuses a resource that is still in use
elsewhere (*not quite done*) by raising :class:`~respool.StillInUse`.

- :func:`temp_files`: anonymous temporary files, truncated **and** rewound between users.
- :func:`byte_buffers`: fixed-size ``bytearray`` buffers for ``readinto``/``recv_into``.
- :func:`bytes_io`: ``io.BytesIO`` objects, really emptied between users.

:class:`~respool.BufferPool` (buffers of any size, in power-of-two size classes) is a pool, not
a lifecycle: it lives in :mod:`respool.buffers`, built on :func:`byte_buffers`. It is still
importable from here, where it used to live (the name is resolved on first use, so that this
module never imports the one that imports it).
"""

from __future__ import annotations

import io
import os
import tempfile
from functools import partial
from typing import IO, TYPE_CHECKING

from respool import _debug, _validate
from respool.errors import StillInUse
from respool.lifecycle import Lifecycle
from respool.stats import BufferStats

if TYPE_CHECKING:  # at run time, resolved lazily by __getattr__ below
    from respool.buffers import BufferPool

__all__ = ["BufferPool", "BufferStats", "byte_buffers", "bytes_io", "temp_files"]


# -- temporary files -----------------------------------------------------------------------------


def temp_files(*, dir: str | os.PathLike[str] | None = None) -> Lifecycle[IO[bytes]]:
    """Anonymous binary temporary files (``tempfile.TemporaryFile``), reused safely.

    ``reset`` truncates the file to zero bytes **and** seeks back to its start. Truncating
    alone leaves the position where the last user stopped, so the next user's writes land
    after a gap that reads back as zero bytes: uploads end up padded with as many zeros
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


def __getattr__(name: str) -> object:
    """``BufferPool``, where it used to live: imported on first use, because
    :mod:`respool.buffers` imports this module (an import at the top would be a cycle)."""
    if name == "BufferPool":
        from respool.buffers import BufferPool

        return BufferPool
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
