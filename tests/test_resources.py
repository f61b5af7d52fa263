"""Ready-made lifecycles: temp files, byte buffers, BytesIO (BufferPool: test_buffers.py)."""

from __future__ import annotations

import io
import os
import pathlib
import tempfile
from collections.abc import Callable
from typing import IO, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import respool
from respool import _debug
from respool.resources import byte_buffers, bytes_io, refuse_exported, temp_files

LONG = b"order 1017: 12 blue mugs, 3 teapots, deliver after 5 pm\n"
SHORT = b"order 1018: 1 kettle\n"


# -- temp_files --------------------------------------------------------------------------------


def second_user_reads(lifecycle: respool.Lifecycle[IO[bytes]]) -> bytes:
    """Two users of a one-file pool in turn; what the second reads back after a short write."""
    with respool.FixedPool(lifecycle, size=1) as pool:
        with pool.acquire() as file:
            file.write(LONG)
        with pool.acquire() as file:
            file.write(SHORT)
            file.seek(0)
            return file.read()


def test_truncate_only_reset_pads_the_next_user() -> None:
    """A careless truncate-only reset leaves the position: the next write lands after a gap."""
    careless = respool.Lifecycle(
        temp_files().create, reset=lambda f: f.truncate(0), destroy=lambda f: f.close()
    )
    data = second_user_reads(careless)
    assert data == bytes(len(LONG)) + SHORT


def test_temp_files_reset_truncates_and_rewinds() -> None:
    """temp_files() hands the second user a file that reads back exactly what it wrote."""
    assert second_user_reads(temp_files()) == SHORT


@given(st.lists(st.binary(max_size=300), min_size=1, max_size=8))
def test_temp_file_reuse_never_returns_old_bytes(payloads: list[bytes]) -> None:
    """Whatever earlier users wrote, each user of a reused file reads back only its own bytes."""
    pool = respool.TransientPool(temp_files())
    try:
        first = None
        for payload in payloads:
            with pool.borrow() as file:
                first = first or file
                assert file is first  # really reused
                assert file.tell() == 0
                file.write(payload)
                file.seek(0)
                assert file.read() == payload
    finally:
        pool.clear()


def test_temp_files_check_and_destroy() -> None:
    """A closed file fails check and is replaced; closing the pool closes its files."""
    with respool.FixedPool(temp_files(), size=1) as pool:
        with pool.acquire() as file:
            file.close()
        with pool.acquire() as replacement:
            assert replacement is not file
            assert not replacement.closed
    assert replacement.closed


def directory_of(file: IO[bytes]) -> str:
    """The directory an open (possibly nameless) file was made in, as the kernel reports it."""
    link = os.readlink(f"/proc/self/fd/{file.fileno()}")
    # "/dir/#123 (deleted)" for O_TMPFILE, "/dir/tmpab12 (deleted)" for a file unlinked at once
    return os.path.dirname(link)


needs_proc_fd = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd (Linux)"
)


@needs_proc_fd
@pytest.mark.parametrize("as_path", [False, True], ids=["str", "pathlike"])
def test_temp_files_are_made_in_the_given_dir(tmp_path: pathlib.Path, as_path: bool) -> None:
    """temp_files(dir=...) makes each file in that directory (a str or an os.PathLike)."""
    assert os.path.realpath(tempfile.gettempdir()) != os.path.realpath(tmp_path)
    lifecycle = temp_files(dir=tmp_path if as_path else str(tmp_path))
    file = lifecycle.create()
    try:
        file.write(b"x")
        file.flush()
        assert directory_of(file) == os.path.realpath(tmp_path)
        assert os.fstat(file.fileno()).st_dev == os.stat(tmp_path).st_dev
    finally:
        file.close()


@pytest.mark.parametrize("as_path", [False, True], ids=["str", "pathlike"])
def test_temp_files_in_a_missing_dir_fail_to_create(tmp_path: pathlib.Path, as_path: bool) -> None:
    """A dir that does not exist makes create fail: the dir is really used, on any platform."""
    missing = tmp_path / "missing"
    lifecycle = temp_files(dir=missing if as_path else str(missing))
    with pytest.raises(FileNotFoundError):
        lifecycle.create().close()


@pytest.mark.parametrize("bad", [42, b"/tmp", ["/tmp"]])
def test_temp_files_bad_dir_names_the_parameter(bad: Any) -> None:
    """A dir of the wrong type is refused at construction, naming dir."""
    with pytest.raises(TypeError, match="dir must be"):
        temp_files(dir=bad)


# -- byte_buffers ------------------------------------------------------------------------------


def test_byte_buffers_make_fixed_size_buffers() -> None:
    """create makes a zero-filled bytearray of the given size."""
    buf = byte_buffers(1024).create()
    assert isinstance(buf, bytearray)
    assert buf == bytearray(1024)


def test_live_memoryview_raises_still_in_use() -> None:
    """A buffer put back while a memoryview of it lives is refused and never handed out again."""
    pool = respool.TransientPool(byte_buffers(64))
    buf = pool.get()
    view = memoryview(buf)[:10]
    with pytest.raises(respool.StillInUse, match="memoryview"):
        pool.put(buf)
    assert pool.get() is not buf
    view.release()
    pool.put(buf)
    assert pool.get() is buf


def test_still_in_use_with_a_fixed_pool() -> None:
    """With FixedPool too, the release raises StillInUse and the buffer is replaced."""
    with respool.FixedPool(byte_buffers(64), size=1) as pool:
        lease = pool.acquire()
        buf = lease.resource
        view = memoryview(buf)
        with pytest.raises(respool.StillInUse):
            lease.release()
        view.release()
        with pool.acquire() as again:
            assert again is not buf


def test_export_probe_leaves_the_buffer_unchanged() -> None:
    """The export check changes neither contents nor length, whether it passes or refuses."""
    buf = bytearray(b"0123456789")
    refuse_exported(buf)
    assert buf == b"0123456789"
    with memoryview(buf) as view:
        with pytest.raises(respool.StillInUse):
            refuse_exported(buf)
        assert view.tobytes() == b"0123456789"
    assert buf == b"0123456789"
    refuse_exported(bytearray())  # nothing to export from an empty buffer


def test_contents_are_kept_unless_zero(normal_mode: None) -> None:
    """By default a returned buffer keeps its bytes (documented); zero=True clears them."""
    kept = respool.TransientPool(byte_buffers(8))
    buf = kept.get()
    buf[:] = b"secret!!"
    kept.put(buf)
    assert kept.get() == b"secret!!"
    zeroed = respool.TransientPool(byte_buffers(8, zero=True))
    buf = zeroed.get()
    buf[:] = b"secret!!"
    zeroed.put(buf)
    assert zeroed.get() == bytes(8)


def test_resized_buffer_is_dropped() -> None:
    """A buffer whose length changed is not handed out as a fixed-size one."""
    pool = respool.TransientPool(byte_buffers(8))
    buf = pool.get()
    buf.extend(b"more")
    pool.put(buf)
    assert pool.get() is not buf
    assert pool.stats().dropped_reset == 1


def test_byte_buffers_are_poisoned_in_debug_mode(debug_mode: None) -> None:
    """In debug mode a returned buffer is filled with the poison byte, so stale reads show."""
    pool = respool.TransientPool(byte_buffers(16))
    buf = pool.get()
    buf[:] = b"A" * 16
    pool.put(buf)
    assert buf == bytes([_debug.POISON]) * 16


def test_byte_buffers_reset_leaves_contents_unchanged_at_any_size(normal_mode: None) -> None:
    """The exported-buffer probe of byte_buffers leaves the contents unchanged, even at size 1."""
    for size in (1, 2, 4096):
        reset = byte_buffers(size).reset
        assert reset is not None
        buf = bytearray(range(256)) * (size // 256) + bytearray(range(size % 256))
        before = bytes(buf)
        reset(buf)
        assert bytes(buf) == before
        with memoryview(buf)[: max(1, size // 2)] as view:
            with pytest.raises(respool.StillInUse):
                reset(buf)
            assert bytes(view) == before[: len(view)]
        assert bytes(buf) == before


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (lambda: byte_buffers(0), ValueError, "size"),
        (lambda: byte_buffers(-5), ValueError, "size"),
        (lambda: byte_buffers(2.5), TypeError, "size"),
        (lambda: byte_buffers(8, zero=1), TypeError, "zero"),
    ],
)
def test_byte_buffers_bad_arguments(
    call: Callable[[], object], error: type[Exception], name: str
) -> None:
    """Bad arguments name the parameter."""
    with pytest.raises(error, match=name):
        call()


# -- bytes_io ----------------------------------------------------------------------------------


def test_seek_only_reset_leaks_old_bytes() -> None:
    """The trap bytes_io avoids: seek(0) alone lets the next user read the last one's bytes."""
    stream = io.BytesIO()
    stream.write(LONG)
    stream.seek(0)
    stream.write(SHORT)
    assert stream.getvalue() != SHORT


def test_bytes_io_reset_really_empties() -> None:
    """After reset the BytesIO is empty and at position 0, like a new one."""
    with respool.FixedPool(bytes_io(), size=1) as pool:
        with pool.acquire() as stream:
            stream.write(LONG)
        with pool.acquire() as again:
            assert again is stream
            assert (again.getvalue(), again.tell()) == (b"", 0)
            again.write(SHORT)
            assert again.getvalue() == SHORT


def test_bytes_io_with_live_getbuffer_raises_still_in_use() -> None:
    """A getbuffer() view still alive: reset refuses and leaves the object untouched."""
    stream = io.BytesIO()
    stream.write(LONG)
    reset = bytes_io().reset
    assert reset is not None
    view = stream.getbuffer()
    with pytest.raises(respool.StillInUse, match="getbuffer"):
        reset(stream)
    assert (stream.getvalue(), stream.tell()) == (LONG, len(LONG))
    view.release()
    reset(stream)
    assert stream.getvalue() == b""


def test_bytes_io_refused_by_a_pool_for_a_live_view_is_left_untouched() -> None:
    """A BytesIO refused for a live getbuffer() view keeps its position and contents."""
    pool: respool.TransientPool[io.BytesIO] = respool.TransientPool(bytes_io())
    stream = pool.get()
    stream.write(b"secret data")
    view = stream.getbuffer()
    with pytest.raises(respool.StillInUse):
        pool.put(stream)
    assert stream.tell() == 11 and stream.getvalue() == b"secret data"
    view.release()
    pool.put(stream)
    assert pool.get().getvalue() == b""


def test_bytes_io_closed_is_replaced() -> None:
    """A closed BytesIO fails check and the pool makes a new one."""
    pool = respool.TransientPool(bytes_io())
    stream = pool.get()
    pool.put(stream)
    stream.close()
    assert pool.get() is not stream
