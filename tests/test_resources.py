"""Ready-made lifecycles (temp files, byte buffers, BytesIO) and BufferPool."""

from __future__ import annotations

import gc
import io
from collections.abc import Callable, Iterator
from typing import IO, Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import respool
from respool import _debug
from respool.resources import BufferPool, byte_buffers, bytes_io, refuse_exported, temp_files
from tests.conftest import Abort, Boom

LONG = b"order 1017: 12 blue mugs, 3 teapots, deliver after 5 pm\n"
SHORT = b"order 1018: 1 kettle\n"


@pytest.fixture
def debug_mode() -> Iterator[None]:
    """Debug mode on for one test, and off again whatever happens."""
    was = _debug.enabled
    _debug.set_enabled(True)
    try:
        yield
    finally:
        _debug.set_enabled(was)


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


def test_temp_files_dir(tmp_path: Any) -> None:
    """dir= is passed to tempfile, so the files live where the caller asks."""
    lifecycle = temp_files(dir=str(tmp_path))
    file = lifecycle.create()
    try:
        file.write(b"x")
        file.flush()
    finally:
        file.close()


def test_temp_files_dir_accepts_a_path(tmp_path: Any) -> None:
    """dir= may be an os.PathLike; the file is made there."""
    file = temp_files(dir=tmp_path).create()
    try:
        file.write(b"x")
    finally:
        file.close()


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


def test_contents_are_kept_unless_zero() -> None:
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


def test_bytes_io_closed_is_replaced() -> None:
    """A closed BytesIO fails check and the pool makes a new one."""
    pool = respool.TransientPool(bytes_io())
    stream = pool.get()
    pool.put(stream)
    stream.close()
    assert pool.get() is not stream


# -- BufferPool --------------------------------------------------------------------------------


def test_buffer_pool_size_classes() -> None:
    """get(n) returns the smallest power-of-two class >= n, at least min_size."""
    pool = BufferPool(min_size=1024, max_size=1 << 16)
    assert [len(pool.get(n)) for n in (0, 1, 1024, 1025, 5000, 1 << 16)] == [
        1024,
        1024,
        1024,
        2048,
        8192,
        1 << 16,
    ]
    assert (pool.min_size, pool.max_size) == (1024, 1 << 16)


@given(n=st.integers(min_value=0, max_value=1 << 18))
def test_buffer_pool_class_selection(n: int) -> None:
    """The class is the least power of two >= max(n, min_size), or n itself above max_size."""
    pool = BufferPool(min_size=256, max_size=1 << 16)
    size = pool.class_size(n)
    if n > 1 << 16:
        assert size == n
    else:
        assert size >= max(n, 256)
        assert size & (size - 1) == 0
        assert size == 256 or size // 2 < n


def test_buffer_pool_reuses_by_class() -> None:
    """A buffer put back is reused for any request of the same class."""
    pool = BufferPool(min_size=1024, max_size=1 << 16)
    buf = pool.get(3000)
    pool.put(buf)
    assert pool.get(2100) is buf
    stats = pool.stats()
    assert (stats.gets, stats.hits, stats.misses, stats.puts) == (2, 1, 1, 1)
    assert list(stats.by_size) == [4096]


def test_buffer_pool_drops_buffers_above_max_size() -> None:
    """Requests above max_size are allocated exactly and never pinned in the cache."""
    pool = BufferPool(min_size=1024, max_size=4096)
    big = pool.get(10_000)
    assert len(big) == 10_000
    pool.put(big)
    assert pool.get(10_000) is not big
    stats = pool.stats()
    assert (stats.oversize, stats.dropped_size, stats.idle) == (2, 1, 0)


def test_buffer_pool_drops_foreign_sizes() -> None:
    """A bytearray whose length is not a class size is dropped, not cached."""
    pool = BufferPool(min_size=1024, max_size=4096)
    pool.put(bytearray(1500))
    pool.put(bytearray(512))
    assert pool.stats().dropped_size == 2
    assert pool.stats().idle == 0
    with pytest.raises(TypeError, match="bytearray"):
        pool.put(b"bytes are immutable")  # type: ignore[arg-type]


def test_buffer_pool_refuses_exported_buffers() -> None:
    """A live memoryview raises StillInUse at put, for class sizes and dropped sizes alike."""
    pool = BufferPool(min_size=1024, max_size=4096)
    buf = pool.get(100)
    with memoryview(buf)[:100], pytest.raises(respool.StillInUse):
        pool.put(buf)
    refuse_exported(buf)  # the view is gone now
    assert pool.get(100) is not buf
    odd = bytearray(1500)
    with memoryview(odd), pytest.raises(respool.StillInUse):
        pool.put(odd)


def test_buffer_pool_poisons_in_debug_mode(debug_mode: None) -> None:
    """Returned buffers are filled with the poison byte in debug mode."""
    pool = BufferPool(min_size=1024, max_size=4096)
    buf = pool.get(10)
    buf[:10] = b"0123456789"
    pool.put(buf)
    assert set(buf) == {_debug.POISON}


def test_buffer_pool_borrow() -> None:
    """borrow(n) puts back on exit and on ordinary exceptions, drops on abort."""
    pool = BufferPool(min_size=1024, max_size=4096)
    with pool.borrow(10) as buf:
        assert len(buf) == 1024
    with pytest.raises(Boom), pool.borrow(10) as again:
        raise Boom
    assert again is buf
    with pytest.raises(Abort), pool.borrow(10) as aborted:
        raise Abort
    assert aborted is buf
    assert pool.get(10) is not buf


def test_buffer_pool_borrow_keeps_the_users_exception() -> None:
    """A view left alive when the body raises: the body's exception propagates, not StillInUse."""
    pool = BufferPool(min_size=1024, max_size=4096)
    views = []
    with pytest.raises(Boom), pool.borrow(10) as buf:
        views.append(memoryview(buf))
        raise Boom
    views[0].release()


def test_buffer_pool_clear_and_gc() -> None:
    """clear() drops cached buffers; two full collections drop idle ones too."""
    pool = BufferPool(min_size=1024, max_size=4096)
    pool.put(pool.get(10))
    pool.clear()
    assert pool.stats().idle == 0
    pool.put(pool.get(10))
    was = gc.isenabled()
    gc.disable()
    try:
        gc.collect()
        assert pool.stats().idle == 1
        gc.collect()
        assert pool.stats().idle == 0
    finally:
        if was:
            gc.enable()
    assert pool.stats().dropped_gc == 1
    assert "BufferPool" in repr(pool)
    assert pool.stats().as_dict()["idle_bytes"] == 0


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"min_size": 1000}, ValueError, "min_size"),
        ({"min_size": 0}, ValueError, "min_size"),
        ({"max_size": 3 << 20}, ValueError, "max_size"),
        ({"min_size": 4096, "max_size": 1024}, ValueError, "max_size"),
        ({"max_size": "big"}, TypeError, "max_size"),
        ({"max_idle_time": 0}, ValueError, "max_idle_time"),
        ({"zero": "no"}, TypeError, "zero"),
    ],
)
def test_buffer_pool_bad_arguments(
    kwargs: dict[str, Any], error: type[Exception], name: str
) -> None:
    """Bad configuration names the parameter."""
    with pytest.raises(error, match=name):
        BufferPool(**kwargs)


@pytest.mark.parametrize(("n", "error"), [(-1, ValueError), (2.0, TypeError), (True, TypeError)])
def test_buffer_pool_bad_request(n: Any, error: type[Exception]) -> None:
    """get(n) with a negative or non-int n names n."""
    with pytest.raises(error, match="n must be"):
        BufferPool().get(n)
