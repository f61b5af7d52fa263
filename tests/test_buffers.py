"""BufferPool: power-of-two size classes of bytearray buffers, each class a TransientPool."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import subprocess
import sys
import threading
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import respool
from respool import _debug, buffers, resources
from respool._core import policy
from respool.buffers import BufferPool
from respool.resources import refuse_exported
from tests.conftest import Abort, Boom, fork_and_wait

# -- where it lives ----------------------------------------------------------------------------


def test_buffer_pool_is_the_same_class_from_every_import_path() -> None:
    """respool.BufferPool, respool.buffers and the old respool.resources name are one class."""
    assert respool.BufferPool is buffers.BufferPool is resources.BufferPool
    assert BufferPool.__module__ == "respool.buffers"
    with pytest.raises(AttributeError, match="no attribute 'NoSuchPool'"):
        resources.NoSuchPool  # noqa: B018


@pytest.mark.parametrize(
    "first", ["respool.buffers", "respool.resources", "respool"], ids=lambda m: m
)
def test_importing_any_module_first_meets_no_import_cycle(first: str) -> None:
    """In a fresh interpreter, whichever module comes first, both import paths work."""
    code = (
        f"import {first}\n"
        "from respool.resources import BufferPool as old\n"
        "from respool.buffers import BufferPool as new\n"
        "assert old is new\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr


# -- size classes ------------------------------------------------------------------------------


def test_get_returns_the_smallest_class_that_holds_n() -> None:
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
def test_class_size_is_the_least_power_of_two_that_holds_n(n: int) -> None:
    """The class is the least power of two >= max(n, min_size), or n itself above max_size."""
    pool = BufferPool(min_size=256, max_size=1 << 16)
    size = pool.class_size(n)
    if n > 1 << 16:
        assert size == n
    else:
        assert size >= max(n, 256)
        assert size & (size - 1) == 0
        assert size == 256 or size // 2 < n


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 7, 8, 9])
def test_sizes_at_and_around_class_bounds_round_trip(n: int) -> None:
    """Sizes at and around class bounds round-trip; oversize buffers are not pooled."""
    buffers = BufferPool(min_size=1, max_size=8)
    buf = buffers.get(n)
    assert len(buf) == (max(n, 1) if n > 8 else 1 << max(0, (max(n, 1) - 1).bit_length()))
    buffers.put(buf)
    again = buffers.get(n)
    if n <= 8:
        assert again is buf
    else:
        assert again is not buf
        assert buffers.stats().dropped_size == 1
    buffers.put(bytearray(0))  # an empty foreign buffer: dropped quietly
    stats = buffers.stats()
    assert stats.gets == stats.hits + stats.misses == 2


def test_a_buffer_put_back_serves_any_request_of_its_class() -> None:
    """A buffer put back is reused for any request of the same class."""
    pool = BufferPool(min_size=1024, max_size=1 << 16)
    buf = pool.get(3000)
    pool.put(buf)
    assert pool.get(2100) is buf
    stats = pool.stats()
    assert (stats.gets, stats.hits, stats.misses, stats.puts) == (2, 1, 1, 1)
    assert list(stats.by_size) == [4096]


def test_requests_above_max_size_are_allocated_exactly_and_never_cached() -> None:
    """Requests above max_size are allocated exactly and never pinned in the cache."""
    pool = BufferPool(min_size=1024, max_size=4096)
    big = pool.get(10_000)
    assert len(big) == 10_000
    pool.put(big)
    assert pool.get(10_000) is not big
    stats = pool.stats()
    assert (stats.oversize, stats.dropped_size, stats.idle) == (2, 1, 0)


def test_buffers_of_no_class_size_are_dropped() -> None:
    """A bytearray whose length is not a class size is dropped, not cached."""
    pool = BufferPool(min_size=1024, max_size=4096)
    pool.put(bytearray(1500))
    pool.put(bytearray(512))
    assert pool.stats().dropped_size == 2
    assert pool.stats().idle == 0
    with pytest.raises(TypeError, match="bytearray"):
        pool.put(b"bytes are immutable")  # type: ignore[arg-type]


# -- put ---------------------------------------------------------------------------------------


def test_put_refuses_a_buffer_with_a_live_memoryview() -> None:
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


def test_a_refused_buffer_of_no_class_size_is_counted_as_a_put() -> None:
    """A foreign-size buffer refused with StillInUse is still counted as a put."""
    buffers = BufferPool(min_size=16, max_size=64)
    foreign = bytearray(100)
    with memoryview(foreign) as view, pytest.raises(respool.StillInUse):
        buffers.put(foreign)
    del view
    assert buffers.stats().puts == 1


def test_returned_buffers_are_poisoned_in_debug_mode(debug_mode: None) -> None:
    """Returned buffers are filled with the poison byte in debug mode."""
    pool = BufferPool(min_size=1024, max_size=4096)
    buf = pool.get(10)
    buf[:10] = b"0123456789"
    pool.put(buf)
    assert set(buf) == {_debug.POISON}


def test_clear_and_two_full_collections_drop_cached_buffers() -> None:
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


# -- borrow ------------------------------------------------------------------------------------


def test_borrow_puts_back_unless_aborted() -> None:
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


def test_borrow_never_replaces_the_users_exception() -> None:
    """A view left alive when the body raises: the body's exception propagates, not StillInUse."""
    pool = BufferPool(min_size=1024, max_size=4096)
    views = []
    with pytest.raises(Boom), pool.borrow(10) as buf:
        views.append(memoryview(buf))
        raise Boom
    views[0].release()


def test_borrow_abort_is_counted_in_its_size_class() -> None:
    """A borrow() block aborted by a non-Exception drops the buffer and counts it as aborted."""
    pool = BufferPool(min_size=16, max_size=64)
    with pytest.raises(Abort), pool.borrow(10) as buf:
        raise Abort
    assert pool.get(10) is not buf
    stats = pool.stats()
    assert stats.by_size[16].aborted == 1
    assert stats.aborted == 1
    assert stats.idle == 0


def test_borrow_abort_of_an_oversize_buffer_drops_it() -> None:
    """An aborted borrow() of a buffer above max_size drops it (it has no class to count in)."""
    pool = BufferPool(min_size=16, max_size=64)
    with pytest.raises(Abort), pool.borrow(1000):
        raise Abort
    stats = pool.stats()
    assert (stats.oversize, stats.dropped_size, stats.idle) == (1, 0, 0)


@pytest.mark.parametrize(
    "error", [None, Boom(), Abort(), SystemExit(3), asyncio.CancelledError()], ids=repr
)
def test_borrow_discards_exactly_when_the_policy_says(error: BaseException | None) -> None:
    """borrow() drops the buffer exactly when policy.discards says so."""
    pool = BufferPool(min_size=16, max_size=64)
    with contextlib.suppress(BaseException), pool.borrow(10) as buf:
        if error is not None:
            raise error
    discarded = policy.discards(None if error is None else type(error))
    assert (pool.get(10) is buf) is not discarded
    assert pool.stats().by_size[16].aborted == int(discarded)


# -- fork --------------------------------------------------------------------------------------


needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


@needs_fork
@pytest.mark.timeout(30)
def test_fork_while_another_thread_holds_the_lock_leaves_the_child_a_usable_pool() -> None:
    """A child forked while another thread holds a BufferPool's lock can still use the pool."""
    buffers = BufferPool(min_size=16, max_size=64)
    held, release = threading.Event(), threading.Event()

    def oversize_get() -> None:  # stands for a thread inside get(n > max_size)
        with buffers._lock:
            held.set()
            release.wait(timeout=60)

    thread = threading.Thread(target=oversize_get)
    thread.start()
    assert held.wait(timeout=60), "the lock was never taken"
    try:

        def child() -> int:
            buffers.get(1000)
            return 0

        code = fork_and_wait(child, timeout=3)
    finally:
        release.set()
        thread.join(timeout=60)
    assert code == 0


@needs_fork
@pytest.mark.timeout(30)
def test_counters_start_afresh_in_a_forked_child() -> None:
    """A forked child's BufferPool reports none of the parent's work, like its size classes."""
    buffers = BufferPool(min_size=16, max_size=64)
    buffers.get(1000)  # oversize
    buffers.put(bytearray(100))  # not a class size
    buffers.put(buffers.get(16))
    assert buffers.stats().gets == 2

    def child() -> int:
        stats = buffers.stats()
        fresh = (stats.gets, stats.puts, stats.oversize, stats.dropped_size, stats.idle)
        return 0 if fresh == (0, 0, 0, 0, 0) else 1

    assert fork_and_wait(child) == 0


# -- configuration -----------------------------------------------------------------------------


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
def test_bad_arguments_name_the_parameter(
    kwargs: dict[str, Any], error: type[Exception], name: str
) -> None:
    """Bad configuration names the parameter."""
    with pytest.raises(error, match=name):
        BufferPool(**kwargs)


@pytest.mark.parametrize(("n", "error"), [(-1, ValueError), (2.0, TypeError), (True, TypeError)])
def test_bad_request_names_n(n: Any, error: type[Exception]) -> None:
    """get(n) with a negative or non-int n names n."""
    with pytest.raises(error, match="n must be"):
        BufferPool().get(n)


def test_aborted_oversize_borrow_is_counted_in_the_total() -> None:
    """An oversize buffer given up by an aborted borrow() is counted in the pool's total."""
    pool = respool.BufferPool(min_size=16, max_size=64)
    with pytest.raises(Abort), pool.borrow(1000):
        raise Abort
    stats = pool.stats()
    assert (stats.aborted, stats.oversize) == (1, 1)
