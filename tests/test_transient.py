"""TransientPool: per-thread caches, the victim cache driven by the garbage collector, hooks.

Several tests simulate "another thread ran a full collection / ran ``stats()`` at this point"
deterministically, with ``sys.setprofile`` or ``sys.settrace``: the hooks run at call, return or
line events, which are points where CPython may switch threads or start a collection, so every
interleaving injected here is one the interpreter can really produce.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import itertools
import logging
import math
import os
import random
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import numpy as np
import pytest

import respool
from respool import _debug, transient
from respool._core import policy
from respool.lifecycle import Lifecycle
from respool.transient import TransientPool
from tests.conftest import Abort, Boom, Tracker, fork_and_wait

TRANSIENT_FILE = transient.__file__


class Obj:
    """A pooled object that can be weakly referenced and tells copies apart."""

    def __init__(self, n: int = 0) -> None:
        self.n = n
        self.dirty = False


@contextlib.contextmanager
def no_automatic_gc() -> Iterator[None]:
    """Only the test's own gc.collect() calls may rotate the caches."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def run_in_thread(fn: Callable[[], object]) -> None:
    """Run *fn* in a new thread, wait for it to end, and re-raise what it raised."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the thread did not finish within 60 s"
    if errors:
        raise errors[0]


@contextlib.contextmanager
def profiled(hook: Callable[[FrameType, str, Any], None]) -> Iterator[None]:
    """Run *hook* on profile events of this thread (re-entrant calls are not profiled)."""
    sys.setprofile(hook)
    try:
        yield
    finally:
        sys.setprofile(None)


class CollectOnEntering:
    """A profile hook that runs one full collection, as if from another thread, the first
    time this module's *function* is entered with its argument *local* non-empty; ``fired``
    says whether it did."""

    def __init__(self, function: str, local: str) -> None:
        self.function = function
        self.local = local
        self.fired = False

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if (
            not self.fired
            and event == "call"
            and frame.f_code.co_name == self.function
            and frame.f_code.co_filename == TRANSIENT_FILE
            and frame.f_locals.get(self.local)
        ):
            self.fired = True
            gc.collect()


def exited_thread_context(pool: TransientPool[Any], *objs: Any) -> contextvars.Context:
    """Put *objs* from a new thread; return a copy of its context after the thread exited."""
    box: list[contextvars.Context] = []

    def work() -> None:
        for obj in objs:
            pool.put(obj)
        box.append(contextvars.copy_context())

    run_in_thread(work)
    return box[0]


def same(objs: Any, others: Any) -> bool:
    """Whether two collections hold the same objects, by identity (never ``==``)."""
    return sorted(map(id, objs)) == sorted(map(id, others))


# -- objects that must never be compared or hashed ---------------------------------------------


class EqRaises:
    """Refuses to be compared, as a numpy array does when a truth value is needed."""

    def __eq__(self, other: object) -> bool:
        raise TypeError("EqRaises refuses to be compared")

    __hash__ = object.__hash__


class EqAlwaysTrue:
    """An ANY-style test matcher: claims to equal everything."""

    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = object.__hash__


class HashRaises:
    """Refuses to be hashed (so it cannot be a dict key or a set member)."""

    def __hash__(self) -> int:
        raise TypeError("HashRaises refuses to be hashed")


def numpy_array() -> Any:
    """A numpy array: ``==`` returns an array, whose truth value raises."""
    return np.zeros(4096, np.uint8)


HOSTILE = pytest.mark.parametrize(
    "new",
    [numpy_array, EqRaises, EqAlwaysTrue, HashRaises],
    ids=["numpy", "eq_raises", "eq_always_true", "hash_raises"],
)


# -- get and put -------------------------------------------------------------------------------


def test_get_calls_new_when_empty() -> None:
    """An empty pool makes a new object with new()."""
    made: list[Obj] = []
    pool = TransientPool(lambda: made.append(Obj()) or made[-1])
    first = pool.get()
    assert made == [first]


def test_get_returns_the_objects_put_last_first() -> None:
    """A put object is what the same thread's next get returns (LIFO)."""
    pool = TransientPool(Obj)
    a, b = pool.get(), pool.get()
    pool.put(a)
    pool.put(b)
    assert pool.get() is b
    assert pool.get() is a


def test_stats_add_up_gets_hits_misses_puts_and_idle() -> None:
    """stats() adds up: gets == hits + misses, idle is what is cached."""
    pool = TransientPool(Obj, name="counted")
    objs = [pool.get() for _ in range(3)]
    for obj in objs:
        pool.put(obj)
    pool.put(pool.get())
    stats = pool.stats()
    assert (stats.name, stats.gets, stats.hits, stats.misses, stats.puts, stats.idle) == (
        "counted",
        4,
        1,
        3,
        4,
        3,
    )
    assert stats.as_dict()["hits"] == 1


def test_default_names_are_distinct() -> None:
    """Pools without a name get distinct TransientPool-N names."""
    a, b = TransientPool(Obj), TransientPool(Obj)
    assert a.name.startswith("TransientPool-")
    assert a.name != b.name
    assert a.name in repr(a)


# -- the victim cache --------------------------------------------------------------------------


def test_object_survives_one_full_collection_and_is_gone_after_two() -> None:
    """An idle object survives exactly one full collection, and is dropped at the second."""
    pool = TransientPool(Obj)
    with no_automatic_gc():
        obj = pool.get()
        ref = weakref.ref(obj)
        pool.put(obj)
        del obj
        gc.collect()
        assert ref() is not None
        assert pool.stats().idle == 1
        gc.collect()
        assert ref() is None
        stats = pool.stats()
    assert (stats.idle, stats.dropped_gc) == (0, 1)


def test_object_from_the_victim_is_reused_and_gets_a_fresh_life() -> None:
    """After one collection the object is still handed out; put back, it survives another."""
    pool = TransientPool(Obj)
    with no_automatic_gc():
        obj = pool.get()
        pool.put(obj)
        gc.collect()
        assert pool.get() is obj
        ref = weakref.ref(obj)
        pool.put(obj)
        del obj
        gc.collect()
        assert ref() is not None
        gc.collect()
        assert ref() is None
        assert pool.stats().misses == 1


def test_young_collections_do_not_rotate() -> None:
    """Only full (generation 2) collections age the caches."""
    pool = TransientPool(Obj)
    with no_automatic_gc():
        obj = pool.get()
        ref = weakref.ref(obj)
        pool.put(obj)
        del obj
        for _ in range(5):
            gc.collect(0)
            gc.collect(1)
        assert ref() is not None
        gc.collect()
        gc.collect()
        assert ref() is None


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


def test_unreferenced_pool_is_collected_with_its_objects() -> None:
    """A pool nobody references dies, and so do the objects it cached."""
    pool = TransientPool(Obj)
    obj = pool.get()
    obj_ref = weakref.ref(obj)
    pool.put(obj)
    del obj
    pool_ref = weakref.ref(pool)
    del pool
    gc.collect()
    assert pool_ref() is None
    assert obj_ref() is None
    assert all(ref() is not None for ref in transient._pools.values())


def test_pool_collected_while_a_context_points_at_its_cache_keeps_no_object() -> None:
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


def test_destroy_of_collected_objects_runs_at_next_miss() -> None:
    """With a lifecycle destroy, objects the collector drops are destroyed later, outside it."""
    destroyed: list[Obj] = []
    pool = TransientPool(respool.Lifecycle(Obj, destroy=destroyed.append))
    with no_automatic_gc():
        obj = pool.get()
        pool.put(obj)
        gc.collect()
        gc.collect()
        assert destroyed == []  # the collector's callback runs no user code
        assert pool.get() is not obj
    assert destroyed == [obj]


def test_victim_taken_by_a_get_racing_a_collection_is_counted_once() -> None:
    """A victim a racing get may still pop is counted once: as a hit or as dropped_gc, not both."""
    pool: TransientPool[Obj] = TransientPool(Obj)
    cached = Obj(1)
    # Another thread runs a full collection just as this get enters _pop_usable(victim).
    hook = CollectOnEntering("_pop_usable", "lst")
    with no_automatic_gc():
        pool.put(cached)
        gc.collect()  # cached is now a victim
        with profiled(hook):
            got = pool.get()
        stats = pool.stats()
    assert hook.fired
    # The collection empties the dropped list by pops, so it takes the object before this get
    # can: dropped and counted once, and the get is a miss.
    assert got is not cached
    assert (stats.gets, stats.hits, stats.misses, stats.dropped_gc) == (1, 0, 1, 1)
    assert stats.hits + stats.dropped_gc + stats.idle == 1  # the one object put, counted once


def test_drain_and_move_take_everything_in_one_go() -> None:
    """_drain and _move move every entry in one go: none is lost or left behind."""
    source, into = [1, 2, 3], [0]
    transient._drain(source, into)
    assert (list(source), sorted(into)) == ([], [0, 1, 2, 3])
    shared = transient._Cache(None)
    shared.victim.append(0)
    transient._move([4, 5], shared, victim=True)
    transient._move([6], shared, victim=False)
    assert (sorted(shared.victim), list(shared.primary)) == ([0, 4, 5], [6])


# -- threads -----------------------------------------------------------------------------------


def test_each_thread_has_its_own_cache() -> None:
    """8 threads each get back their own object; every new() is one miss; no errors."""
    pool = TransientPool(Obj)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            mine = pool.get()
            barrier.wait(timeout=10)  # all hold one at once: 8 distinct objects
            pool.put(mine)
            for _ in range(1000):
                obj = pool.get()
                assert obj is mine
                pool.put(obj)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    with no_automatic_gc():  # a rotation would move objects to victims (still fine, slower)
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert errors == []
    stats = pool.stats()
    assert (stats.misses, stats.hits, stats.puts, stats.idle) == (8, 8000, 8008, 8)


def test_no_object_is_handed_out_twice_under_threads_and_collections() -> None:
    """8 threads hammer get/put while another thread keeps collecting: no double hand-out."""
    pool = TransientPool(Obj)
    out: set[int] = set()
    lock = threading.Lock()
    errors: list[BaseException] = []
    stop = threading.Event()

    def hammer() -> None:
        try:
            for _ in range(2000):
                objs = [pool.get() for _ in range(3)]
                with lock:
                    for obj in objs:
                        assert id(obj) not in out, "handed out twice"
                        out.add(id(obj))
                with lock:
                    for obj in objs:
                        out.discard(id(obj))
                for obj in objs:
                    pool.put(obj)
        except BaseException as exc:
            errors.append(exc)

    def collect() -> None:
        # Real full collections, and between them many more rotations through the very
        # callback the collector calls. A full collection of the test process is slow and
        # holds the interpreter lock all along, so there are a few of them only: more would
        # starve the hammering threads on a loaded machine.
        rounds = 0
        while not stop.is_set():
            if rounds % 50 == 0 and rounds < 50 * 10:
                gc.collect()
            else:
                transient._on_gc("start", {"generation": 2})
            rounds += 1

    collector = threading.Thread(target=collect)
    collector.start()
    workers = [threading.Thread(target=hammer) for _ in range(8)]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
    finally:
        stop.set()
        collector.join(timeout=60)
    assert errors == []
    stats = pool.stats()
    assert stats.dropped_gc > 0 or stats.misses <= 24  # rotations happened, or never needed
    assert stats.gets == 8 * 2000 * 3


def test_objects_of_an_exited_thread_are_reused_by_another() -> None:
    """What a thread cached before exiting is handed to another thread's next get."""
    pool = TransientPool(Obj)
    left: list[Obj] = []

    def work() -> None:
        obj = pool.get()
        left.append(obj)
        pool.put(obj)

    run_in_thread(work)
    assert pool.get() is left[0]
    assert pool.stats().misses == 1


def test_objects_of_an_exited_thread_are_dropped_after_two_collections() -> None:
    """A thread's cached objects are not leaked when it exits: two collections free them."""
    pool = TransientPool(Obj)
    refs: list[weakref.ref[Obj]] = []

    def work() -> None:
        objs = [pool.get() for _ in range(5)]
        refs.extend(weakref.ref(obj) for obj in objs)
        for obj in objs:
            pool.put(obj)

    with no_automatic_gc():
        run_in_thread(work)
        assert pool.stats().idle == 5  # retired: moved to the shared store, counters kept
        gc.collect()
        assert all(ref() is not None for ref in refs)
        gc.collect()
        assert all(ref() is None for ref in refs)
    stats = pool.stats()
    assert (stats.puts, stats.misses, stats.dropped_gc, stats.idle) == (5, 5, 5, 0)


def test_objects_put_through_an_exited_threads_context_survive_one_collection() -> None:
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


def test_dead_thread_caches_are_retired_when_threads_churn() -> None:
    """Thread churn does not grow the pool's registry of caches without bound."""
    pool = TransientPool(Obj)
    for _ in range(20):
        run_in_thread(lambda: pool.put(pool.get()))
    pool.stats()
    assert len(pool._caches) <= 1
    assert pool.stats().puts == 20


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


def test_collection_during_retirement_loses_no_object_uncounted() -> None:
    """A collection during retirement of an exited thread's cache loses no object uncounted."""
    pool: TransientPool[Obj] = TransientPool(Obj)
    # A full collection in another thread just as _move starts filling shared.victim.
    hook = CollectOnEntering("_move", "source")
    with no_automatic_gc():
        exited_thread_context(pool, Obj(1), Obj(2))
        gc.collect()  # both are victims in the dead thread's cache
        with profiled(hook):
            stats = pool.stats()  # retires the dead cache
    assert hook.fired
    assert stats.gets == stats.hits == 0
    assert stats.idle + stats.dropped_gc == 2


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


def test_asyncio_tasks_share_their_thread_cache() -> None:
    """Tasks on one event loop reuse each other's objects: the cache is per thread."""
    pool = TransientPool(Obj)

    async def put_one() -> Obj:
        obj = pool.get()
        pool.put(obj)
        return obj

    async def main() -> tuple[Obj, Obj]:
        first = await asyncio.create_task(put_one())
        second = await asyncio.create_task(put_one())
        return first, second

    first, second = asyncio.run(main())
    assert first is second
    assert pool.stats().misses == 1


def test_asyncio_to_thread_hands_each_object_out_once() -> None:
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
def test_threads_sharing_a_copied_context_never_get_one_object_twice(
    make: Callable[[], TransientPool[Obj]],
) -> None:
    """Threads running copies of one context (as to_thread does) never get one object twice."""
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
        # Rotations at random points: mostly the collector's callback itself, and now and then
        # a real collection (each holds the GIL for as long as the heap is big: in the whole
        # suite's heap, back-to-back collections starved the workers past the timeout).
        rounds = 0
        while not stop.is_set():
            rounds += 1
            if rounds % 50 == 0 and rounds <= 50 * 10:
                gc.collect()
            else:
                transient._on_gc("start", {"generation": 2})
            pool.stats()
            if random.random() < 0.1:
                pool.clear()

    workers = [threading.Thread(target=base.copy().run, args=(work,)) for _ in range(4)]
    churner = threading.Thread(target=churn)
    churner.start()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=60)
    stop.set()
    churner.join(timeout=60)
    assert errors == []


@POOL_KINDS
def test_collection_at_random_call_boundaries_never_duplicates_or_miscounts(
    make: Callable[[], TransientPool[Obj]],
) -> None:
    """A rotation at random calls in transient.py: no object out twice, gets and puts exact."""
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
    """Threads racing collections, retirements and clears: exact counts, no double hand-out."""
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
                thread.join(timeout=60)
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
            thread.join(timeout=60)
        stop.set()
        for thread in churners:
            thread.join(timeout=60)
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


def test_clear_racing_a_collection_counts_each_object_once() -> None:
    """A rotation at any line of clear() counts no object twice and leaves none behind."""

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
                        # What a collection started on this line (by an allocation, on
                        # 3.11) does to the pool, without the cost of a real one.
                        transient._on_gc("start", {"generation": 2})
                    lines += 1
                return line

            return line

        with no_automatic_gc():
            a, b, c, d = pool.get(), pool.get(), pool.get(), pool.get()
            pool.put(a)
            pool.put(b)
            pool._rotate()  # a, b: victims (what a full collection does, without its cost)
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


# -- max_idle_time -----------------------------------------------------------------------------


def test_max_idle_time_drops_stale_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    """An object idle longer than max_idle_time is dropped, not handed out."""
    now = [1000.0]
    monkeypatch.setattr(transient, "monotonic", lambda: now[0])
    pool = TransientPool(Obj, max_idle_time=5.0)
    old, fresh = pool.get(), pool.get()
    pool.put(old)
    now[0] += 4.0
    assert pool.get() is old  # not yet stale
    pool.put(old)
    now[0] += 6.0
    pool.put(fresh)
    assert pool.get() is fresh
    replacement = pool.get()
    assert replacement is not old
    stats = pool.stats()
    assert (stats.dropped_age, stats.misses, stats.idle) == (1, 3, 0)


def test_max_idle_time_drops_with_the_real_clock() -> None:
    """With a tiny max_idle_time, an object left idle is replaced on the next get."""
    pool = TransientPool(Obj, max_idle_time=1e-9)
    obj = pool.get()
    pool.put(obj)
    stamp = transient.monotonic()
    while transient.monotonic() - stamp <= 1e-9:  # let the clock move, not a synchronisation
        pass
    assert pool.get() is not obj
    assert pool.stats().dropped_age == 1


def test_max_idle_time_is_reported() -> None:
    """The validated max_idle_time is readable back."""
    assert TransientPool(Obj, max_idle_time=2).max_idle_time == 2.0
    assert TransientPool(Obj).max_idle_time is None


# -- reset, accept, check, destroy -------------------------------------------------------------


def test_reset_runs_at_put() -> None:
    """reset cleans each object on its way back."""

    def clean(obj: Obj) -> None:
        obj.dirty = False

    pool = TransientPool(Obj, reset=clean)
    obj = pool.get()
    obj.dirty = True
    pool.put(obj)
    assert pool.get() is obj
    assert not obj.dirty


def test_reset_raising_drops_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    """A reset that raises drops the object, counts it and logs a warning; put does not raise."""

    def reset(obj: Obj) -> None:
        raise Boom("cannot clean")

    pool = TransientPool(Obj, reset=reset)
    obj = pool.get()
    with caplog.at_level(logging.WARNING, logger="respool"):
        pool.put(obj)
    assert "reset raised" in caplog.text
    assert pool.get() is not obj
    assert pool.stats().dropped_reset == 1


def test_accept_false_drops_the_object() -> None:
    """accept returning False drops the object (e.g. it grew too large)."""
    pool = TransientPool(list, accept=lambda items: len(items) < 3)
    small, large = pool.get(), pool.get()
    large.extend([1, 2, 3])
    pool.put(small)
    pool.put(large)
    assert pool.get() is small
    assert pool.get() is not large
    assert pool.stats().dropped_accept == 1


def test_accept_raising_drops_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    """An accept that raises counts as a refusal, logged."""

    def accept(obj: Obj) -> bool:
        raise Boom("broken accept")

    pool = TransientPool(Obj, accept=accept)
    obj = pool.get()
    with caplog.at_level(logging.WARNING, logger="respool"):
        pool.put(obj)
    assert "accept raised" in caplog.text
    assert pool.stats().dropped_accept == 1


def test_check_false_at_get_drops_and_destroys_the_object() -> None:
    """A Lifecycle works: check drops unviable cached objects at get, destroy runs on drops."""
    destroyed: list[Obj] = []
    lifecycle = respool.Lifecycle(Obj, check=lambda o: not o.dirty, destroy=destroyed.append)
    pool = TransientPool(lifecycle)
    obj = pool.get()
    obj.dirty = True
    pool.put(obj)
    assert pool.get() is not obj
    assert destroyed == [obj]
    assert pool.stats().dropped_check == 1


def test_reset_given_twice_is_rejected() -> None:
    """A reset both in the Lifecycle and as a keyword is ambiguous."""
    with pytest.raises(TypeError, match="reset"):
        TransientPool(respool.Lifecycle(Obj, reset=print), reset=print)


def test_reset_raising_still_in_use_destroys_the_object_then_reaches_the_caller(
    tracker: Tracker,
) -> None:
    """StillInUse from reset is the caller's bug: the object is destroyed, then put raises it."""
    pool = TransientPool(tracker.lifecycle(check=False))
    res = pool.get()
    tracker.fail_reset = respool.StillInUse("a view is alive")
    with pytest.raises(respool.StillInUse, match="a view is alive"):
        pool.put(res)
    assert tracker.destroyed == [res]
    stats = pool.stats()
    assert (stats.puts, stats.dropped_reset, stats.idle, stats.destroy_errors) == (1, 1, 0, 0)


@pytest.mark.parametrize("error", [Abort(), KeyboardInterrupt()], ids=["abort", "interrupt"])
def test_reset_interrupted_drops_destroys_counts_then_reraises(
    tracker: Tracker, error: BaseException
) -> None:
    """A non-Exception from reset: the object is destroyed and counted, then the error goes on."""
    pool = TransientPool(tracker.lifecycle(check=False))
    res = pool.get()
    tracker.fail_reset = error
    with pytest.raises(type(error)):
        pool.put(res)
    assert tracker.destroyed == [res]
    stats = pool.stats()
    assert (stats.puts, stats.dropped_reset, stats.idle, stats.destroy_errors) == (1, 1, 0, 0)
    tracker.fail_reset = None
    assert pool.get() is not res


def test_accept_interrupted_drops_destroys_counts_then_reraises(tracker: Tracker) -> None:
    """A non-Exception from accept: the object is destroyed and counted, then the error goes on."""

    def accept(res: Any) -> bool:
        raise Abort

    pool = TransientPool(tracker.lifecycle(check=False), accept=accept)
    res = pool.get()
    with pytest.raises(Abort):
        pool.put(res)
    assert tracker.destroyed == [res]
    stats = pool.stats()
    assert (stats.puts, stats.dropped_accept, stats.idle, stats.destroy_errors) == (1, 1, 0, 0)


def test_accept_false_destroys_the_refused_object(tracker: Tracker) -> None:
    """An object accept refuses is destroyed, like every object the pool drops."""
    pool = TransientPool(tracker.lifecycle(check=False), accept=lambda res: False)
    res = pool.get()
    pool.put(res)
    assert tracker.destroyed == [res]


def test_check_raising_drops_destroys_and_logs(
    tracker: Tracker, caplog: pytest.LogCaptureFixture
) -> None:
    """An Exception from check at get: the object is destroyed and counted, get makes another."""
    pool = TransientPool(tracker.lifecycle())
    res = pool.get()
    pool.put(res)
    tracker.fail_check = Boom("cannot tell")
    with caplog.at_level(logging.WARNING, logger="respool"):
        fresh = pool.get()
    assert fresh is not res
    assert "check raised" in caplog.text
    assert tracker.destroyed == [res]
    assert pool.stats().dropped_check == 1


@pytest.mark.parametrize("max_idle_time", [None, 3600.0], ids=["plain", "aged"])
def test_check_interrupted_at_get_drops_destroys_counts_then_reraises(
    tracker: Tracker, max_idle_time: float | None
) -> None:
    """A non-Exception from check: the object is destroyed and counted, then get raises it."""
    pool = TransientPool(tracker.lifecycle(), max_idle_time=max_idle_time)
    res = pool.get()
    pool.put(res)
    tracker.fail_check = Abort()
    with pytest.raises(Abort):
        pool.get()
    assert tracker.destroyed == [res]
    stats = pool.stats()
    assert (stats.dropped_check, stats.idle, stats.hits, stats.destroy_errors) == (1, 0, 0, 0)
    tracker.fail_check = None
    assert pool.get() is not res


def test_destroy_raising_is_counted_and_logged_not_raised(
    tracker: Tracker, caplog: pytest.LogCaptureFixture
) -> None:
    """An Exception from destroy is counted in destroy_errors and logged; clear() goes on."""
    pool = TransientPool(tracker.lifecycle(check=False))
    made = [pool.get() for _ in range(2)]
    for res in made:
        pool.put(res)
    tracker.fail_destroy = Boom("cannot close")
    with caplog.at_level(logging.WARNING, logger="respool"):
        pool.clear()
    assert "destroy raised" in caplog.text
    assert same(tracker.destroyed, made)
    assert pool.stats().destroy_errors == 2


def test_destroy_interrupted_in_clear_destroys_the_others_then_reraises(tracker: Tracker) -> None:
    """A non-Exception from destroy stops no other destroy: all run, then the first goes on."""
    pool = TransientPool(tracker.lifecycle(check=False))
    made = [pool.get() for _ in range(3)]
    for res in made:
        pool.put(res)
    tracker.fail_destroy = Abort()
    with pytest.raises(Abort):
        pool.clear()
    assert same(tracker.destroyed, made)
    stats = pool.stats()
    assert (stats.cleared, stats.idle, stats.destroy_errors) == (3, 0, 3)


def test_destroy_interrupted_for_collected_objects_reaches_the_next_miss(tracker: Tracker) -> None:
    """Deferred destroys of collected objects all run at the next miss, which then raises."""
    pool = TransientPool(tracker.lifecycle(check=False))
    with no_automatic_gc():
        made = [pool.get() for _ in range(2)]
        for res in made:
            pool.put(res)
        gc.collect()
        gc.collect()
    tracker.fail_destroy = Abort()
    with pytest.raises(Abort):
        pool.get()
    assert same(tracker.destroyed, made)
    stats = pool.stats()
    assert (stats.dropped_gc, stats.destroy_errors) == (2, 2)
    tracker.fail_destroy = None
    assert isinstance(pool.get(), type(made[0]))
    assert len(tracker.destroyed) == 2  # nothing destroyed twice


# -- never comparing objects -------------------------------------------------------------------


@HOSTILE
def test_clear_destroys_every_object_without_comparing_them(new: Callable[[], Any]) -> None:
    """clear() empties and destroys every cached object, never calling their __eq__."""
    destroyed: list[Any] = []
    pool = TransientPool(Lifecycle(new, destroy=destroyed.append))
    objs = [pool.get() for _ in range(3)]
    for obj in objs:
        pool.put(obj)
    pool.clear()
    assert same(destroyed, objs)
    stats = pool.stats()
    assert (stats.cleared, stats.idle) == (3, 0)


@HOSTILE
def test_collections_drop_and_destroy_objects_without_comparing_them(
    new: Callable[[], Any],
) -> None:
    """The collector's rotation drops and counts every idle object, destroyed at the next miss."""
    destroyed: list[Any] = []
    pool = TransientPool(Lifecycle(new, destroy=destroyed.append))
    with no_automatic_gc():
        objs = [pool.get() for _ in range(3)]
        for obj in objs:
            pool.put(obj)
        gc.collect()
        gc.collect()
        fresh = pool.get()
    assert all(fresh is not obj for obj in objs)
    assert same(destroyed, objs)
    stats = pool.stats()
    assert (stats.dropped_gc, stats.idle, stats.misses) == (3, 0, 4)


@HOSTILE
def test_exited_threads_objects_reach_a_new_thread_without_comparing_them(
    new: Callable[[], Any],
) -> None:
    """A new thread's first get retires an exited thread's cache and takes one of its objects."""
    pool = TransientPool(new)
    objs: list[Any] = []

    def cache_three() -> None:
        made = [pool.get() for _ in range(3)]
        objs.extend(made)
        for obj in made:
            pool.put(obj)

    got: list[Any] = []
    with no_automatic_gc():
        run_in_thread(cache_three)
        run_in_thread(lambda: got.append(pool.get()))
        stats = pool.stats()
    assert any(got[0] is obj for obj in objs)
    assert (stats.idle, stats.hits, stats.misses) == (2, 1, 3)


@HOSTILE
@pytest.mark.parametrize("hooked", [False, True], ids=["lean", "hooked"])
def test_get_and_put_never_compare_objects(new: Callable[[], Any], hooked: bool) -> None:
    """get and put, in any thread and on either code path, find objects by identity only."""
    pool: TransientPool[Any]
    if hooked:
        lifecycle = Lifecycle(
            new, reset=lambda o: None, check=lambda o: True, destroy=lambda o: None
        )
        pool = TransientPool(lifecycle, accept=lambda o: True)
    else:
        pool = TransientPool(new)

    def cache_two() -> None:
        made = [pool.get(), pool.get()]
        for obj in made:
            pool.put(obj)

    with no_automatic_gc():
        a, b = pool.get(), pool.get()
        pool.put(a)
        pool.put(b)
        assert pool.get() is b
        assert pool.get() is a
        run_in_thread(cache_two)  # leaves two objects in the cache of an exited thread
        c = pool.get()  # takes one of them
        run_in_thread(lambda: pool.put(c))  # a new thread's first call is a put
        got = [pool.get(), pool.get()]
        stats = pool.stats()
    assert any(obj is c for obj in got)
    assert (stats.gets, stats.puts, stats.idle, stats.hits, stats.misses) == (9, 5, 0, 5, 4)


# -- subclasses --------------------------------------------------------------------------------


class Subclassed(TransientPool[Obj]):
    """A subclass that adds state and wraps get/put."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[str] = []

    def get(self) -> Obj:
        self.calls.append("get")
        return super().get()

    def put(self, obj: Obj) -> None:
        self.calls.append("put")
        super().put(obj)


def _dirty(obj: Obj) -> None:
    obj.dirty = True


def _clean(obj: Obj) -> None:
    obj.dirty = False


def test_subclass_with_hooks_runs_them_and_its_own_overrides() -> None:
    """A subclass with hooks runs them, its own get/put first, and stays an instance of itself."""
    pool = Subclassed(Obj, reset=_clean, max_idle_time=3600)
    assert isinstance(pool, Subclassed)
    assert type(pool).__name__ == "Subclassed"
    obj = pool.get()
    _dirty(obj)
    pool.put(obj)
    again = pool.get()
    assert again is obj  # not mangled into a (stamp, obj) pair
    assert not again.dirty  # reset ran
    assert pool.calls == ["get", "put", "get"]
    assert type(Subclassed(Obj, reset=_clean)) is type(pool)  # made once per class


def test_subclass_without_overrides_runs_reset() -> None:
    """A subclass of TransientPool runs reset (and the other hooks) like TransientPool itself."""

    class MyPool(TransientPool[list[int]]):
        pass

    pool = MyPool(list, reset=list.clear)
    dirty = [1, 2, 3]
    pool.put(dirty)
    assert pool.get() == []  # reset must have run at put


def test_subclass_without_hooks_keeps_its_class() -> None:
    """A subclass without hooks is left alone: the lean code path, its own class."""
    pool = Subclassed(Obj)
    assert type(pool) is Subclassed
    obj = pool.get()
    pool.put(obj)
    assert pool.get() is obj


def test_subclass_of_a_subclass_gets_its_own_hooked_variant() -> None:
    """Each subclass gets its own hooked variant, with its own overrides first."""

    class Deeper(Subclassed):
        def get(self) -> Obj:
            self.calls.append("deeper")
            return super().get()

    pool = Deeper(Obj, accept=lambda o: not o.dirty)
    assert isinstance(pool, Deeper)
    obj = pool.get()
    _dirty(obj)
    pool.put(obj)  # refused by accept
    assert pool.get() is not obj
    assert pool.calls == ["deeper", "get", "put", "deeper", "get"]
    assert pool.stats().dropped_accept == 1


# -- debug mode: a second put ------------------------------------------------------------------


@HOSTILE
def test_debug_mode_refuses_a_second_put_naming_the_object_and_its_first_put(
    new: Callable[[], Any], debug_mode: None
) -> None:
    """In debug mode a second put raises LeaseError with the object and where it came in."""
    pool = TransientPool(new)
    obj = pool.get()
    pool.put(obj)  # the first put: its stack is in the error
    with pytest.raises(respool.LeaseError) as caught:
        pool.put(obj)
    message = str(caught.value)
    assert type(obj).__qualname__ in message
    assert f"{id(obj):#x}" in message
    assert "test_debug_mode_refuses_a_second_put_naming_the_object_and_its_first_put" in message
    assert "pool.put(obj)  # the first put" in message
    assert pool.get() is obj
    assert pool.get() is not obj  # it was in the pool once, not twice
    assert pool.stats().puts == 1


class LongRepr:
    """An object whose repr runs to thousands of characters."""

    def __repr__(self) -> str:
        return "LongRepr(" + "x" * 10_000 + ")"


def test_debug_mode_shortens_a_long_repr(debug_mode: None) -> None:
    """The error shows a short repr of the object, not thousands of characters."""
    pool = TransientPool(LongRepr)
    obj = pool.get()
    pool.put(obj)
    with pytest.raises(respool.LeaseError) as caught:
        pool.put(obj)
    assert len(str(caught.value).splitlines()[0]) < 400


def test_debug_mode_survives_a_repr_that_raises(debug_mode: None) -> None:
    """An object whose __repr__ raises still gets the LeaseError, without its repr."""

    class BadRepr:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    pool = TransientPool(BadRepr)
    obj = pool.get()
    pool.put(obj)
    with pytest.raises(respool.LeaseError, match="BadRepr"):
        pool.put(obj)


@pytest.mark.parametrize(
    "make",
    [
        lambda: TransientPool(Obj),
        lambda: TransientPool(Obj, reset=_clean, max_idle_time=3600),
        lambda: Subclassed(Obj, reset=_clean),
    ],
    ids=["lean", "hooked-aged", "subclass"],
)
def test_debug_mode_finds_the_object_in_any_cache(
    make: Callable[[], TransientPool[Obj]], debug_mode: None
) -> None:
    """The object is found in a victim list, in an exited thread's cache and the shared store."""
    pool = make()
    with no_automatic_gc():
        victim = pool.get()
        pool.put(victim)
        gc.collect()  # now a victim
        with pytest.raises(respool.LeaseError):
            pool.put(victim)
        elsewhere = Obj()
        ctx = exited_thread_context(pool, elsewhere)  # in an exited thread's cache
        with pytest.raises(respool.LeaseError):
            pool.put(elsewhere)
        pool.stats()  # retires that cache: its object moves to the shared store
        with pytest.raises(respool.LeaseError):
            ctx.run(pool.put, elsewhere)
        stats = pool.stats()
    assert (stats.puts, stats.idle) == (2, 2)


def test_debug_mode_refuses_before_reset_runs(debug_mode: None) -> None:
    """A refused second put does not run reset on the object still cached."""
    resets: list[Obj] = []
    pool = TransientPool(Obj, reset=resets.append)
    obj = pool.get()
    pool.put(obj)
    with pytest.raises(respool.LeaseError):
        pool.put(obj)
    assert len(resets) == 1


@pytest.mark.parametrize("aged", [False, True], ids=["plain", "aged"])
@pytest.mark.parametrize("meanwhile", ["get", "collection"])
def test_debug_mode_search_survives_lists_changing_as_it_reads_them(
    debug_mode: None, aged: bool, meanwhile: str
) -> None:
    """The debug search meets another thread's get or a rotation as it reads each list."""
    pool = TransientPool(Obj, max_idle_time=3600 if aged else None)
    objs = [Obj(n) for n in range(41)]
    reads = 0

    def hook(frame: FrameType, event: str, arg: Any) -> None:
        # Right as the search reads a list (its set.update): what another thread may run there.
        nonlocal reads
        if (
            event == "c_call"
            and frame.f_code.co_name == "_refuse_second_put"
            and getattr(arg, "__name__", None) == "update"
        ):
            reads += 1
            if meanwhile == "get":
                run_in_thread(pool.get)  # takes from this thread's victims, then its primary
            else:
                transient._on_gc("start", {"generation": 2})

    with no_automatic_gc():
        for obj in objs[:20]:
            pool.put(obj)
        gc.collect()  # victims now
        for obj in objs[20:40]:
            pool.put(obj)
        with profiled(hook):
            pool.put(objs[40])
        assert reads >= 4  # the shared store's lists and this thread's
        with pytest.raises(respool.LeaseError):
            pool.put(objs[40])
        assert pool.stats().puts == 41


def test_debug_mode_accepts_an_object_again_once_it_left_the_pool(debug_mode: None) -> None:
    """An object taken back by get, or dropped by clear(), may be put again."""
    pool = TransientPool(Obj)
    obj = pool.get()
    pool.put(obj)
    assert pool.get() is obj
    pool.put(obj)
    pool.clear()
    pool.put(obj)
    assert pool.stats().puts == 3


def test_debug_mode_catches_a_second_put_into_a_buffer_pool(debug_mode: None) -> None:
    """BufferPool's size classes are TransientPools: the same check applies to buffers."""
    buffers = respool.BufferPool(min_size=16, max_size=64)
    buf = buffers.get(10)
    buffers.put(buf)
    with pytest.raises(respool.LeaseError, match="bytearray"):
        buffers.put(buf)


def test_debug_mode_reports_a_put_from_before_it_was_switched_on() -> None:
    """An object put before debug mode was on is still caught, without a stack to show."""
    was = _debug.enabled
    _debug.set_enabled(False)
    try:
        pool = TransientPool(Obj)
        obj = pool.get()
        pool.put(obj)
        _debug.set_enabled(True)
        with pytest.raises(respool.LeaseError, match="no stack was recorded"):
            pool.put(obj)
    finally:
        _debug.set_enabled(was)


def test_debug_mode_forgets_where_objects_were_put_once_they_left(debug_mode: None) -> None:
    """Records of objects no longer cached are pruned: debug mode does not grow without bound."""
    pool = TransientPool(Obj)
    for _ in range(500):
        obj = Obj()
        pool.put(obj)
        assert pool.get() is obj
    assert len(pool._put_at) <= 100


def test_outside_debug_mode_put_does_not_search_the_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """Normal mode pays nothing for the check (as in Go): put never searches the caches."""

    def search(self: TransientPool[Any], obj: Any) -> None:
        raise AssertionError("searched outside debug mode")

    monkeypatch.setattr(TransientPool, "_refuse_second_put", search)
    was = _debug.enabled
    _debug.set_enabled(True)
    _debug.set_enabled(False)  # switched on and off again: back to the plain put
    try:
        for pool in (TransientPool(Obj), TransientPool(Obj, reset=_clean)):
            obj = pool.get()
            pool.put(obj)
            pool.put(obj)  # undetected: a usage error, like in Go
            assert pool.get() is pool.get() is obj
    finally:
        _debug.set_enabled(was)


# -- clear and borrow --------------------------------------------------------------------------


def test_clear_drops_everything_and_destroys() -> None:
    """clear() empties every cache, victims included, running destroy on each object."""
    destroyed: list[Obj] = []
    pool = TransientPool(respool.Lifecycle(Obj, destroy=destroyed.append))
    with no_automatic_gc():
        a, b = pool.get(), pool.get()
        pool.put(a)
        gc.collect()  # a is now a victim
        pool.put(b)
        pool.clear()
    assert sorted(map(id, destroyed)) == sorted([id(a), id(b)])
    assert pool.get() not in (a, b)
    stats = pool.stats()
    assert (stats.cleared, stats.idle) == (2, 0)


def test_borrow_puts_the_object_back_on_a_clean_exit() -> None:
    """borrow() gets an object and puts it back when the block ends."""
    pool = TransientPool(Obj)
    with pool.borrow() as obj:
        pass
    assert pool.get() is obj


def test_borrow_puts_back_on_an_exception_which_propagates() -> None:
    """An ordinary exception puts the object back (reset runs) and propagates unchanged."""
    resets: list[Obj] = []
    pool = TransientPool(Obj, reset=resets.append)
    error = Boom("in the body")
    with pytest.raises(Boom) as caught, pool.borrow() as obj:
        raise error
    assert caught.value is error
    assert resets == [obj]
    assert pool.get() is obj


def test_borrow_aborted_by_a_non_exception_destroys_and_counts() -> None:
    """A non-Exception (cancellation, KeyboardInterrupt) drops the object: abort means discard."""
    destroyed: list[Obj] = []
    pool = TransientPool(respool.Lifecycle(Obj, destroy=destroyed.append))
    with pytest.raises(Abort), pool.borrow() as obj:
        raise Abort
    assert destroyed == [obj]
    assert pool.get() is not obj
    assert pool.stats().aborted == 1


def test_borrow_never_replaces_the_users_exception(caplog: pytest.LogCaptureFixture) -> None:
    """If putting back fails while the body's exception propagates, that exception wins."""

    def reset(obj: Obj) -> None:
        raise respool.StillInUse("still viewed")

    pool = TransientPool(Obj, reset=reset)
    with (
        caplog.at_level(logging.WARNING, logger="respool"),
        pytest.raises(Boom),
        pool.borrow(),
    ):
        raise Boom("the user's")
    assert "could not put back" in caplog.text


def test_borrow_raises_still_in_use_on_a_clean_exit() -> None:
    """Without an exception in the body, StillInUse from reset reaches the caller."""

    def reset(obj: Obj) -> None:
        raise respool.StillInUse("still viewed")

    pool = TransientPool(Obj, reset=reset)
    with pytest.raises(respool.StillInUse), pool.borrow():
        pass


@pytest.mark.parametrize(
    "error", [None, Boom(), Abort(), SystemExit(3), asyncio.CancelledError()], ids=repr
)
def test_borrow_discards_exactly_when_the_policy_says(
    tracker: Tracker, error: BaseException | None
) -> None:
    """borrow() drops the object exactly when policy.discards says so, and counts that abort."""
    pool = TransientPool(tracker.lifecycle(check=False))
    with contextlib.suppress(BaseException), pool.borrow() as res:
        if error is not None:
            raise error
    discarded = policy.discards(None if error is None else type(error))
    assert tracker.destroyed == ([res] if discarded else [])
    stats = pool.stats()
    assert (stats.aborted, stats.idle) == ((1, 0) if discarded else (0, 1))


def test_borrow_lets_an_interrupt_from_reset_reach_the_caller(
    tracker: Tracker,
) -> None:
    """An interrupt from reset at the end of a clean borrow() block reaches the caller."""
    pool = TransientPool(tracker.lifecycle(check=False))
    tracker.fail_reset = Abort()
    with pytest.raises(Abort), pool.borrow() as res:
        pass
    assert tracker.destroyed == [res]


def test_borrow_takes_nothing_until_entered_and_can_be_entered_again() -> None:
    """A borrow() takes its object on entry, and each entry of the same borrow takes anew."""
    pool = TransientPool(Obj)
    borrow = pool.borrow()
    assert pool.stats().gets == 0
    with borrow as first:
        pass
    with borrow as second:
        assert pool.get() is not second  # out once: the pool does not hold it meanwhile
    assert second is first
    stats = pool.stats()
    assert (stats.gets, stats.hits, stats.misses, stats.puts, stats.idle) == (3, 1, 2, 2, 1)


@pytest.mark.parametrize("hooked", [False, True], ids=["lean", "hooked"])
def test_borrow_keeps_exact_counts_in_several_threads(hooked: bool) -> None:
    """8 threads borrowing 1000 times each: each its own cache, exact hits, misses and puts."""
    pool = TransientPool(Obj, reset=_clean) if hooked else TransientPool(Obj)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with pool.borrow() as mine:
                barrier.wait(timeout=10)  # all hold one at once: 8 distinct objects
            for _ in range(1000):
                with pool.borrow() as obj:
                    assert obj is mine
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    with no_automatic_gc():
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert errors == []
    stats = pool.stats()
    assert (stats.misses, stats.hits, stats.puts, stats.idle) == (8, 8000, 8008, 8)


@pytest.mark.parametrize("hooked", [False, True], ids=["lean", "hooked"])
def test_borrow_through_a_retired_threads_context_is_counted_and_reused(hooked: bool) -> None:
    """borrow() run in the context of an exited, retired thread's cache loses no object or count."""
    pool = TransientPool(Obj, reset=_clean) if hooked else TransientPool(Obj)
    left = Obj(1)
    with no_automatic_gc():
        ctx = exited_thread_context(pool, left)
        pool.stats()  # retires the exited thread's cache: left moves to the shared store

        def borrow_twice() -> list[Obj]:
            with pool.borrow() as a, pool.borrow() as b:
                return [a, b]

        got = ctx.run(borrow_twice)
        assert got[0] is left or got[1] is left
        again = [pool.get(), pool.get()]  # both came back to a live cache
        stats = pool.stats()
    assert same(again, got)
    assert (stats.puts, stats.gets, stats.hits, stats.misses, stats.idle) == (3, 4, 3, 1, 0)


@POOL_KINDS
def test_borrow_with_collections_at_random_call_boundaries_never_duplicates_or_miscounts(
    make: Callable[[], TransientPool[Obj]],
) -> None:
    """Rotations at random calls in transient.py around nested borrows: exact counts, no twin."""
    rnd = random.Random(4321)

    def hook(frame: FrameType, event: str, arg: Any) -> None:
        if frame.f_code.co_filename == TRANSIENT_FILE and rnd.random() < 0.3:
            transient._on_gc("start", {"generation": 2})

    pool = make()
    held: list[Obj] = []
    entries = 0

    def nest(depth: int) -> None:
        nonlocal entries
        with pool.borrow() as obj:
            entries += 1
            assert all(obj is not h for h in held)
            held.append(obj)
            if depth and rnd.random() < 0.7:
                nest(depth - 1)
            held.remove(obj)

    with no_automatic_gc(), profiled(hook):
        for _ in range(150):
            nest(3)
            if rnd.random() < 0.1:
                pool.clear()
    pool.clear()
    stats = pool.stats()
    assert (stats.gets, stats.puts, stats.idle) == (entries, entries, 0)


@HOSTILE
@pytest.mark.parametrize("hooked", [False, True], ids=["lean", "hooked"])
def test_borrow_never_compares_objects(new: Callable[[], Any], hooked: bool) -> None:
    """borrow() of numpy arrays and objects with hostile __eq__/__hash__ works by identity."""
    pool = TransientPool(new, reset=lambda o: None) if hooked else TransientPool(new)
    with pool.borrow() as first:
        pass
    with pool.borrow() as again, pool.borrow() as other:
        assert again is first
        assert other is not first
    assert pool.stats().idle == 2


def test_borrow_calls_a_subclass_get_and_put() -> None:
    """A subclass replacing get or put has them called by borrow(), with or without hooks."""

    class PutOnly(TransientPool[Obj]):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.calls: list[str] = []

        def put(self, obj: Obj) -> None:
            self.calls.append("put")
            super().put(obj)

    class Plain(TransientPool[Obj]):
        pass

    for pool, expected in [
        (Subclassed(Obj), ["get", "put"] * 2),
        (Subclassed(Obj, reset=_clean), ["get", "put"] * 2),
        (PutOnly(Obj), ["put"] * 2),
        (Plain(Obj, reset=_clean), []),  # no overrides: the hooked borrow runs reset
    ]:
        with pool.borrow() as obj:
            _dirty(obj)
        with pool.borrow() as again:
            assert again is obj
            assert again.dirty is (pool._reset is None)  # reset ran only where given
        assert getattr(pool, "calls", []) == expected


def test_borrow_in_debug_mode_refuses_a_second_put(debug_mode: None) -> None:
    """In debug mode the put at the end of borrow() is checked: a put inside the block shows."""
    for pool in (TransientPool(Obj), TransientPool(Obj, reset=_clean)):
        with pytest.raises(respool.LeaseError), pool.borrow() as obj:
            pool.put(obj)  # the bug: the block gives back what borrow() gives back too
        assert pool.get() is obj
        assert pool.get() is not obj


def test_borrow_searches_the_pool_only_in_debug_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """borrow() checks for a second put while debug mode is on, and is lean again after."""
    searched: list[object] = []

    def search(self: TransientPool[Any], obj: Any) -> None:
        searched.append(obj)

    monkeypatch.setattr(TransientPool, "_refuse_second_put", search)
    was = _debug.enabled
    pool = TransientPool(Obj)
    try:
        _debug.set_enabled(True)
        with pool.borrow() as obj:
            pass
        assert searched == [obj]
        _debug.set_enabled(False)
        with pool.borrow():
            pass
        assert searched == [obj]
    finally:
        _debug.set_enabled(was)
    assert pool.stats().puts == 2


# -- fork --------------------------------------------------------------------------------------


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
    """Construct a hooked pool, pausing at the *at*-th call/return in respool; then note it."""
    # Pausing: *paused* is set, then *resume* awaited. Finishing: True appended to *out*, and
    # *paused* set so that the caller stops waiting.
    package = os.path.dirname(respool.__file__)
    events = 0

    def hook(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal events
        if frame.f_code.co_filename.startswith(package):
            if events == at:
                paused.set()
                resume.wait(timeout=60)
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
def test_fork_while_another_thread_constructs_a_pool_leaves_no_lock_held() -> None:
    """A child forked at any point of another thread's TransientPool() can construct pools."""

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
        assert paused.wait(timeout=60), "the constructing thread never paused"
        if finished:  # construction has fewer events: every one has been tried
            thread.join(timeout=60)
            break
        try:
            code = fork_and_wait(child, timeout=3)
        finally:
            resume.set()
            thread.join(timeout=60)
        assert code == 0, f"child forked at event {at} of the construction failed: {code}"
        at += 1
    assert at > 5
    assert gc.callbacks.count(transient._on_gc) == 1


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"new": 42}, TypeError, "new"),
        ({"new": Obj, "reset": 1}, TypeError, "reset"),
        ({"new": Obj, "accept": "yes"}, TypeError, "accept"),
        ({"new": Obj, "max_idle_time": 0}, ValueError, "max_idle_time"),
        ({"new": Obj, "max_idle_time": -1.0}, ValueError, "max_idle_time"),
        ({"new": Obj, "max_idle_time": math.nan}, ValueError, "max_idle_time"),
        ({"new": Obj, "max_idle_time": "5"}, TypeError, "max_idle_time"),
        ({"new": Obj, "max_idle_time": True}, TypeError, "max_idle_time"),
        ({"new": Obj, "name": 3}, TypeError, "name"),
    ],
)
def test_bad_arguments_name_the_parameter(
    kwargs: dict[str, Any], error: type[Exception], name: str
) -> None:
    """Bad configuration fails at construction, naming the parameter."""
    with pytest.raises(error, match=name):
        TransientPool(**kwargs)
