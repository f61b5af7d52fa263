"""Review tests for TransientPool and the ready-made resources (issue 4).

The first group pins the fixes of bugs found in review; the others cover gaps the existing
tests leave open. Several tests simulate "another thread ran a full collection / ran
``stats()`` at this point" deterministically, with ``sys.setprofile``: the profile hook runs
at call/return events, which are exactly the points where CPython may switch threads (the eval
breaker is checked on function entry and after calls), so every interleaving injected here is
one the interpreter can really produce.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import io
import itertools
import os
import random
import signal
import sys
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import pytest

import respool
from respool import _debug, resources, transient
from respool.lifecycle import Lifecycle
from respool.transient import TransientPool
from tests.test_transient import no_automatic_gc

TRANSIENT_FILE = transient.__file__


class Obj:
    """A pooled object that can be weakly referenced."""

    def __init__(self, n: int = 0) -> None:
        self.n = n


@contextlib.contextmanager
def profiled(hook: Callable[[FrameType, str, Any], None]) -> Iterator[None]:
    """Run *hook* on profile events of this thread (re-entrant calls are not profiled)."""
    sys.setprofile(hook)
    try:
        yield
    finally:
        sys.setprofile(None)


def exited_thread_context(pool: TransientPool[Any], *objs: Any) -> contextvars.Context:
    """Put *objs* from a new thread, and return a copy of that thread's context (whose
    ContextVar points at the thread's cache) after the thread has exited."""
    box: list[contextvars.Context] = []

    def work() -> None:
        for obj in objs:
            pool.put(obj)
        box.append(contextvars.copy_context())

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    return box[0]


# =============================================================================================
# Bugs found in review (fixed)
# =============================================================================================


def test_subclass_keeps_its_hooks() -> None:
    """A subclass of TransientPool runs reset (and the other hooks) like TransientPool itself."""

    class MyPool(TransientPool[list[int]]):
        pass

    pool = MyPool(list, reset=list.clear)
    dirty = [1, 2, 3]
    pool.put(dirty)
    assert pool.get() == []  # reset must have run at put


def test_put_through_a_context_of_a_retired_thread_cache_is_counted() -> None:
    """A put through the context of a retired (exited thread) cache is counted on a live cache."""
    pool: TransientPool[list[int]] = TransientPool(list, reset=list.clear)
    with no_automatic_gc():
        ctx = exited_thread_context(pool, [1])
        pool.stats()  # retires the exited thread's cache
        ctx.run(pool.put, [2])  # e.g. a callback scheduled with the thread's context
        pool.get()
        pool.get()
        stats = pool.stats()
    assert (stats.puts, stats.gets, stats.hits, stats.misses) == (2, 2, 2, 0)


def test_hooked_get_survives_its_cache_being_retired_right_after_the_pop() -> None:
    """A hooked get whose cache is retired right after its pop still hands out the object."""
    pool: TransientPool[Obj] = TransientPool(Obj, max_idle_time=3600)
    cached = Obj(1)
    get_code = type(pool).get.__code__
    fired = False

    def hook(frame: FrameType, event: str, arg: Any) -> None:
        # Another thread calls stats() (which retires dead caches) right after the pop.
        nonlocal fired
        if (
            not fired
            and event == "c_return"
            and frame.f_code is get_code
            and getattr(arg, "__name__", "") == "pop"
        ):
            fired = True
            pool.stats()

    with no_automatic_gc():
        ctx = exited_thread_context(pool, cached)
        with profiled(hook):
            got = ctx.run(pool.get)
    assert fired
    assert got is cached


def test_victim_taken_by_a_get_racing_a_collection_is_counted_once() -> None:
    """A victim a racing get may still pop is counted once: as a hit or as dropped_gc, not both."""
    pool: TransientPool[Obj] = TransientPool(Obj)
    cached = Obj(1)
    fired = False

    def hook(frame: FrameType, event: str, arg: Any) -> None:
        # Another thread runs a full collection just as this get enters _pop_usable(victim).
        nonlocal fired
        if (
            not fired
            and event == "call"
            and frame.f_code.co_name == "_pop_usable"
            and frame.f_code.co_filename == TRANSIENT_FILE
            and frame.f_locals.get("lst")
        ):
            fired = True
            gc.collect()

    with no_automatic_gc():
        pool.put(cached)
        gc.collect()  # cached is now a victim
        with profiled(hook):
            got = pool.get()
        stats = pool.stats()
    assert fired
    # The collection empties the dropped list by pops, so it takes the object before this get
    # can: dropped and counted once, and the get is a miss.
    assert got is not cached
    assert (stats.gets, stats.hits, stats.misses, stats.dropped_gc) == (1, 0, 1, 1)
    assert stats.hits + stats.dropped_gc + stats.idle == 1  # the one object put, counted once


def test_objects_lost_while_retiring_an_exited_thread_are_not_reported_as_hits() -> None:
    """A collection during retirement of an exited thread's cache loses no object uncounted."""
    pool: TransientPool[Obj] = TransientPool(Obj)
    fired = False

    def hook(frame: FrameType, event: str, arg: Any) -> None:
        # A full collection in another thread just as _move starts filling shared.victim.
        nonlocal fired
        if (
            not fired
            and event == "call"
            and frame.f_code.co_name == "_move"
            and frame.f_code.co_filename == TRANSIENT_FILE
            and frame.f_locals.get("source")
        ):
            fired = True
            gc.collect()

    with no_automatic_gc():
        exited_thread_context(pool, Obj(1), Obj(2))
        gc.collect()  # both are victims in the dead thread's cache
        with profiled(hook):
            stats = pool.stats()  # retires the dead cache
    assert fired
    assert stats.gets == stats.hits == 0
    assert stats.idle + stats.dropped_gc == 2


def test_clear_racing_a_collection_counts_each_object_once() -> None:
    """A full collection at any line of clear() (or of what it calls here) makes no object
    count twice (dropped_gc and cleared) and leaves none behind."""

    def run(at: int) -> tuple[int, respool.TransientStats]:
        pool: TransientPool[Obj] = TransientPool(Obj)
        lines = 0

        def tracer(frame: FrameType, event: str, arg: Any) -> Any:
            if frame.f_code.co_filename != TRANSIENT_FILE:
                return None

            def line(frame: FrameType, event: str, arg: Any) -> Any:
                nonlocal lines
                if event == "line":
                    if lines == at:
                        gc.collect()  # what an allocation on this line can start, on 3.11
                    lines += 1
                return line

            return line

        with no_automatic_gc():
            a, b, c, d = pool.get(), pool.get(), pool.get(), pool.get()
            pool.put(a)
            pool.put(b)
            gc.collect()  # a, b: victims
            pool.put(c)
            assert pool.get() is c  # one real hit
            pool.put(d)  # d: primary
            sys.settrace(tracer)
            try:
                pool.clear()
            finally:
                sys.settrace(None)
            return lines, pool.stats()

    at = 0
    while True:
        lines, stats = run(at)
        assert (stats.idle, stats.hits, stats.gets) == (0, 1, 5), at
        assert stats.dropped_gc + stats.cleared == 3, at
        if at >= lines:  # the collection fell after clear(): every line has been tried
            break
        at += 1
    assert at > 5


def fork_and_wait(child: Callable[[], int], timeout: float = 5) -> int:
    """Run *child* in a forked process (killed by SIGALRM after *timeout*); its exit code,
    or -signal number."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 99
        try:
            signal.signal(signal.SIGALRM, signal.SIG_DFL)  # not pytest-timeout's handler
            signal.alarm(int(timeout))
            code = child()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


@needs_fork
@pytest.mark.timeout(30)
def test_fork_child_does_not_report_forgotten_objects_as_hits() -> None:
    """A forked child forgets the parent's objects and counters: its stats start from zero."""
    pool: TransientPool[Obj] = TransientPool(Obj)
    with no_automatic_gc():
        exited_thread_context(pool, Obj(1), Obj(2), Obj(3))
        pool.stats()  # the exited thread's cache is retired: its objects are in _shared

    def child() -> int:
        stats = pool.stats()
        return 0 if (stats.gets, stats.hits) == (0, 0) else 1

    assert fork_and_wait(child) == 0


def construct(at: int, paused: threading.Event, resume: threading.Event, out: list[bool]) -> None:
    """Construct a hooked pool, pausing (*paused* set, waiting for *resume*) at the *at*-th
    call/return event in respool's code; append to *out* and set *paused* if it finishes."""
    package = os.path.dirname(respool.__file__)
    events = 0

    def hook(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal events
        if frame.f_code.co_filename.startswith(package):
            if events == at:
                paused.set()
                resume.wait()
            events += 1

    sys.setprofile(hook)
    try:
        TransientPool(Obj, reset=lambda o: None)
    finally:
        sys.setprofile(None)
    out.append(True)
    paused.set()


@needs_fork
@pytest.mark.timeout(120)
def test_fork_while_another_thread_is_constructing_a_pool() -> None:
    """A child forked while another thread is anywhere inside TransientPool() (paused at each
    call/return in respool in turn) can construct pools: no lock is inherited held."""

    def child() -> int:
        pool: TransientPool[Obj] = TransientPool(Obj, max_idle_time=60)
        pool.put(pool.get())
        return 0 if gc.callbacks.count(transient._on_gc) == 1 else 1

    at = 0
    while True:
        paused, resume = threading.Event(), threading.Event()
        finished: list[bool] = []
        thread = threading.Thread(target=construct, args=(at, paused, resume, finished))
        thread.start()
        paused.wait()
        if finished:  # construction has fewer events: every one has been tried
            thread.join()
            break
        try:
            code = fork_and_wait(child, timeout=3)
        finally:
            resume.set()
            thread.join()
        assert code == 0, f"child forked at event {at} of the construction failed: {code}"
        at += 1
    assert at > 5
    assert gc.callbacks.count(transient._on_gc) == 1


@needs_fork
@pytest.mark.timeout(30)
def test_fork_while_another_thread_holds_the_buffer_pool_lock() -> None:
    """A child forked while another thread holds a BufferPool's lock can still use the pool."""
    buffers = respool.BufferPool(min_size=16, max_size=64)
    held, release = threading.Event(), threading.Event()

    def oversize_get() -> None:  # stands for a thread inside get(n > max_size)
        with buffers._lock:
            held.set()
            release.wait()

    thread = threading.Thread(target=oversize_get)
    thread.start()
    held.wait()
    try:

        def child() -> int:
            buffers.get(1000)
            return 0

        code = fork_and_wait(child, timeout=3)
    finally:
        release.set()
        thread.join()
    assert code == 0


@needs_fork
@pytest.mark.timeout(30)
def test_buffer_pool_counters_start_afresh_in_a_forked_child() -> None:
    """A forked child's BufferPool reports none of the parent's work, like its size classes."""
    buffers = respool.BufferPool(min_size=16, max_size=64)
    buffers.get(1000)  # oversize
    buffers.put(bytearray(100))  # not a class size
    buffers.put(buffers.get(16))
    assert buffers.stats().gets == 2

    def child() -> int:
        stats = buffers.stats()
        fresh = (stats.gets, stats.puts, stats.oversize, stats.dropped_size, stats.idle)
        return 0 if fresh == (0, 0, 0, 0, 0) else 1

    assert fork_and_wait(child) == 0


def test_temp_files_rejects_a_bad_dir_at_construction() -> None:
    """temp_files(dir=...) of a wrong type raises TypeError naming dir at construction."""
    with pytest.raises(TypeError, match="dir"):
        resources.temp_files(dir=42)  # type: ignore[arg-type]


def test_buffer_pool_counts_a_refused_foreign_buffer_as_a_put() -> None:
    """A foreign-size buffer refused with StillInUse is still counted as a put."""
    buffers = respool.BufferPool(min_size=16, max_size=64)
    foreign = bytearray(100)
    with memoryview(foreign) as view, pytest.raises(respool.StillInUse):
        buffers.put(foreign)
    del view
    assert buffers.stats().puts == 1


# =============================================================================================
# Gap tests (expected to pass)
# =============================================================================================


def _plain_pool() -> TransientPool[Obj]:
    return TransientPool(Obj)


def _aged_pool() -> TransientPool[Obj]:
    return TransientPool(Obj, max_idle_time=3600, reset=lambda o: None)


def _checked_pool() -> TransientPool[Obj]:
    return TransientPool(Lifecycle(Obj, check=lambda o: True, destroy=lambda o: None))


POOL_KINDS = pytest.mark.parametrize(
    "make", [_plain_pool, _aged_pool, _checked_pool], ids=["plain", "aged", "checked"]
)


@POOL_KINDS
@pytest.mark.timeout(60)
def test_copied_contexts_share_a_cache_list_and_nothing_is_handed_out_twice(
    make: Callable[[], TransientPool[Obj]],
) -> None:
    """Contexts copied from the main thread (as asyncio.to_thread does) make several threads
    pop and append on one cache list, while another collects, clears and reads stats."""
    pool = make()
    pool.put(pool.get())  # the main context now points at the main thread's cache
    base = contextvars.copy_context()
    out: set[int] = set()
    lock = threading.Lock()
    errors: list[BaseException] = []
    stop = threading.Event()

    def work() -> None:
        try:
            for _ in range(3000):
                obj = pool.get()
                with lock:
                    assert id(obj) not in out, "handed out twice"
                    out.add(id(obj))
                with lock:
                    out.discard(id(obj))
                pool.put(obj)
        except BaseException as exc:
            errors.append(exc)

    def churn() -> None:
        while not stop.is_set():
            gc.collect()
            pool.stats()
            if random.random() < 0.1:
                pool.clear()

    workers = [threading.Thread(target=base.copy().run, args=(work,)) for _ in range(4)]
    churner = threading.Thread(target=churn)
    churner.start()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    stop.set()
    churner.join()
    assert errors == []


def test_asyncio_to_thread_uses_the_loop_threads_cache_safely() -> None:
    """Workers of asyncio.to_thread take from the loop thread's cache; each object goes out once."""
    pool: TransientPool[Obj] = TransientPool(Obj)

    async def main() -> set[int]:
        obj = pool.get()
        pool.put(obj)  # the loop thread's cache is now in the context
        got = await asyncio.to_thread(pool.get)  # the worker takes it from that cache
        assert got is obj
        await asyncio.to_thread(pool.put, got)
        results = await asyncio.gather(*(asyncio.to_thread(pool.get) for _ in range(20)))
        return {id(r) for r in results}

    assert len(asyncio.run(main())) == 20


def test_pool_collected_while_a_live_context_points_at_its_cache() -> None:
    """A dead pool's cache held by a live context keeps no object alive and breaks nothing."""
    pool: TransientPool[Obj] = TransientPool(Obj)
    obj = pool.get()
    obj_ref = weakref.ref(obj)
    pool.put(obj)
    del obj
    ctx = contextvars.copy_context()  # holds the ContextVar -> _Cache mapping
    pool_ref = weakref.ref(pool)
    del pool
    gc.collect()
    assert pool_ref() is None
    assert obj_ref() is None  # the context keeps no pooled object alive
    other: TransientPool[Obj] = TransientPool(Obj)
    assert isinstance(ctx.run(other.get), Obj)
    assert len(ctx) >= 1


@pytest.mark.parametrize(
    "make",
    [
        lambda: TransientPool(Obj, reset=lambda o: None),
        lambda: TransientPool(Obj, accept=lambda o: True),
        lambda: TransientPool(Obj, max_idle_time=3600),
        lambda: TransientPool(Lifecycle(Obj, check=lambda o: True, destroy=lambda o: None)),
    ],
    ids=["reset", "accept", "max_idle_time", "check+destroy"],
)
def test_hooked_pools_keep_the_victim_guarantee(make: Callable[[], TransientPool[Obj]]) -> None:
    """Hooked pools keep objects for one full collection and drop them at the second."""
    pool = make()
    with no_automatic_gc():
        obj = pool.get()
        ref = weakref.ref(obj)
        pool.put(obj)
        del obj
        gc.collect()
        assert ref() is not None
        again = pool.get()
        assert again is ref()  # taken back from the victim list
        pool.put(again)
        del again
        gc.collect()
        gc.collect()
        pool.get()  # a miss: runs any deferred destroy
        assert ref() is None


def test_objects_put_through_another_threads_context_survive_one_collection() -> None:
    """An object put through an exited thread's context survives exactly one collection."""
    pool: TransientPool[Obj] = TransientPool(Obj)
    with no_automatic_gc():
        ctx = exited_thread_context(pool)
        obj = Obj()
        ref = weakref.ref(obj)
        ctx.run(pool.put, obj)
        del obj
        pool.stats()  # retire the exited thread's cache between collections
        gc.collect()
        assert ref() is not None
        gc.collect()
        assert ref() is None


@POOL_KINDS
def test_gc_at_every_call_boundary_never_duplicates_or_raises(
    make: Callable[[], TransientPool[Obj]],
) -> None:
    """The collector's callback injected at random call/return points inside transient.py
    (same-thread callback, as a collection triggered mid-get/put would run it; calling the
    hook directly is what a real full collection does, without its cost): no object goes out
    twice, and every get and put is counted once."""
    rnd = random.Random(1234)
    gets = puts = 0

    def hook(frame: FrameType, event: str, arg: Any) -> None:
        if frame.f_code.co_filename == TRANSIENT_FILE and rnd.random() < 0.3:
            transient._on_gc("start", {"generation": 2})

    pool = make()
    held: list[Obj] = []
    with no_automatic_gc(), profiled(hook):
        for _ in range(400):
            op = rnd.random()
            if op < 0.45:
                obj = pool.get()
                gets += 1
                assert all(obj is not h for h in held)
                held.append(obj)
            elif op < 0.9 and held:
                pool.put(held.pop(rnd.randrange(len(held))))
                puts += 1
            elif op < 0.95:
                pool.clear()
            else:
                pool.stats()
    pool.clear()
    stats = pool.stats()
    assert (stats.gets, stats.puts, stats.idle) == (gets, puts, 0)


@pytest.mark.parametrize("hooks", ["plain", "reset+accept", "aged", "checked"])
@pytest.mark.timeout(120)
def test_counts_are_exact_after_threads_race_collections_retirements_and_clears(
    hooks: str,
) -> None:
    """Real threads get and put (also through contexts of exited threads, whose caches other
    threads retire meanwhile) while others collect, read stats and clear: afterwards gets,
    misses and puts are exactly what happened, and no object was handed out twice."""
    made = itertools.count()
    made_lock = threading.Lock()

    def new() -> Obj:
        with made_lock:
            return Obj(next(made))

    if hooks == "plain":
        pool: TransientPool[Obj] = TransientPool(new)
    elif hooks == "reset+accept":
        pool = TransientPool(new, reset=lambda o: None, accept=lambda o: o.n % 5 != 0)
    elif hooks == "aged":
        pool = TransientPool(new, max_idle_time=3600)
    else:
        pool = TransientPool(Lifecycle(new, check=lambda o: True, destroy=lambda o: None))

    out: set[int] = set()
    out_lock = threading.Lock()
    counts = {"gets": 0, "puts": 0}
    contexts: list[contextvars.Context] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def got(obj: Obj) -> None:
        with out_lock:
            assert id(obj) not in out, "handed out twice"
            out.add(id(obj))
            counts["gets"] += 1

    def putting(obj: Obj) -> None:
        with out_lock:
            out.discard(id(obj))
            counts["puts"] += 1

    def short_lived() -> None:  # leaves a context pointing at its soon-dead cache
        obj = pool.get()
        got(obj)
        putting(obj)
        pool.put(obj)
        contexts.append(contextvars.copy_context())

    def work(seed: int) -> None:
        rnd = random.Random(seed)
        try:
            for _ in range(1500):
                ctx = rnd.choice(contexts).copy() if contexts and rnd.random() < 0.3 else None
                obj = ctx.run(pool.get) if ctx is not None else pool.get()
                got(obj)
                putting(obj)
                ctx = rnd.choice(contexts).copy() if contexts and rnd.random() < 0.3 else None
                if ctx is not None:
                    ctx.run(pool.put, obj)
                else:
                    pool.put(obj)
        except BaseException as exc:
            errors.append(exc)

    def churn() -> None:
        rnd = random.Random(0)
        try:
            while not stop.is_set():
                thread = threading.Thread(target=short_lived)
                thread.start()
                thread.join()
                if rnd.random() < 0.5:
                    gc.collect()
                pool.stats()
                if rnd.random() < 0.05:
                    pool.clear()
        except BaseException as exc:
            errors.append(exc)

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        churners = [threading.Thread(target=churn) for _ in range(2)]
        workers = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
        for thread in churners + workers:
            thread.start()
        for thread in workers:
            thread.join()
        stop.set()
        for thread in churners:
            thread.join()
    finally:
        sys.setswitchinterval(old_interval)
    assert errors == []
    stats = pool.stats()
    assert stats.gets == counts["gets"]
    assert stats.puts == counts["puts"]
    assert stats.misses == next(made)
    assert stats.hits + stats.misses == stats.gets
    entered = stats.puts - stats.dropped_reset - stats.dropped_accept
    left = stats.idle + stats.dropped_age + stats.dropped_check + stats.dropped_gc + stats.cleared
    assert entered == stats.hits + left


def test_stats_are_exact_after_thread_churn_and_collections() -> None:
    """Counters stay exact across exited threads, retirements and collections."""
    pool: TransientPool[Obj] = TransientPool(Obj)
    gets = 0
    with no_automatic_gc():
        for i in range(5):
            exited_thread_context(pool, Obj(), Obj())
            if i % 2:
                gc.collect()
            pool.get()
            gets += 1
        stats = pool.stats()
    assert stats.gets == gets == stats.hits + stats.misses
    assert stats.puts == 10 == stats.hits + stats.idle + stats.dropped_gc


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 7, 8, 9])
def test_buffer_pool_edge_sizes_round_trip(n: int) -> None:
    """Sizes at and around class bounds round-trip; oversize buffers are not pooled."""
    buffers = respool.BufferPool(min_size=1, max_size=8)
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


def test_byte_buffer_probe_leaves_small_buffers_unchanged() -> None:
    """The exported-buffer probe of byte_buffers leaves the contents unchanged, even at size 1."""
    for size in (1, 2, 4096):
        reset = resources.byte_buffers(size).reset
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


def test_bytes_io_with_live_getbuffer_is_left_untouched() -> None:
    """A BytesIO refused for a live getbuffer() view keeps its position and contents."""
    pool: TransientPool[io.BytesIO] = TransientPool(resources.bytes_io())
    stream = pool.get()
    stream.write(b"secret data")
    view = stream.getbuffer()
    with pytest.raises(respool.StillInUse):
        pool.put(stream)
    assert stream.tell() == 11 and stream.getvalue() == b"secret data"
    view.release()
    pool.put(stream)
    assert pool.get().getvalue() == b""


def test_debug_mode_poisons_buffers_returned_through_a_transient_pool() -> None:
    """In debug mode a buffer returned through a TransientPool is filled with poison bytes."""
    pool: TransientPool[bytearray] = TransientPool(resources.byte_buffers(8))
    was = _debug.enabled
    _debug.set_enabled(True)
    try:
        buf = pool.get()
        buf[:] = b"12345678"
        pool.put(buf)
        assert buf == bytes([_debug.POISON]) * 8
    finally:
        _debug.set_enabled(was)
