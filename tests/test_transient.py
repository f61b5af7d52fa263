"""TransientPool: per-thread caches, the victim cache driven by the garbage collector, hooks."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

import respool
from respool import transient
from respool.transient import TransientPool
from tests.conftest import Abort, Boom


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


def run_in_thread(fn: Any) -> None:
    """Run *fn* in a new thread, wait for it to end, and re-raise what it raised."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


# -- get and put -----------------------------------------------------------------------------


def test_get_calls_new_when_empty() -> None:
    """An empty pool makes a new object with new()."""
    made: list[Obj] = []
    pool = TransientPool(lambda: made.append(Obj()) or made[-1])
    first = pool.get()
    assert made == [first]


def test_put_then_get_returns_the_same_object() -> None:
    """A put object is what the same thread's next get returns (LIFO)."""
    pool = TransientPool(Obj)
    a, b = pool.get(), pool.get()
    pool.put(a)
    pool.put(b)
    assert pool.get() is b
    assert pool.get() is a


def test_stats_count_gets_hits_misses_puts() -> None:
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


# -- the victim cache ------------------------------------------------------------------------


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


# -- threads ---------------------------------------------------------------------------------


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
            thread.join()
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
        # callback the collector calls (a full collection of the test process is slow).
        rounds = 0
        while not stop.is_set():
            if rounds % 50 == 0:
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
            worker.join()
    finally:
        stop.set()
        collector.join()
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


def test_dead_thread_caches_are_retired_when_threads_churn() -> None:
    """Thread churn does not grow the pool's registry of caches without bound."""
    pool = TransientPool(Obj)
    for _ in range(20):
        run_in_thread(lambda: pool.put(pool.get()))
    pool.stats()
    assert len(pool._caches) <= 1
    assert pool.stats().puts == 20


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


# -- max_idle_time ---------------------------------------------------------------------------


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


def test_max_idle_time_with_the_real_clock() -> None:
    """With a tiny max_idle_time, an object left idle is replaced on the next get."""
    pool = TransientPool(Obj, max_idle_time=1e-9)
    obj = pool.get()
    pool.put(obj)
    stamp = transient.monotonic()
    while transient.monotonic() - stamp <= 1e-9:  # let the clock move, not a synchronisation
        pass
    assert pool.get() is not obj
    assert pool.stats().dropped_age == 1


# -- reset, accept, check, destroy -----------------------------------------------------------


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


def test_reset_raising_still_in_use_reaches_the_caller() -> None:
    """StillInUse from reset is a usage bug: put raises it, and the object is dropped."""

    def reset(obj: Obj) -> None:
        raise respool.StillInUse("a view is alive")

    pool = TransientPool(Obj, reset=reset)
    obj = pool.get()
    with pytest.raises(respool.StillInUse, match="a view is alive"):
        pool.put(obj)
    assert pool.get() is not obj
    assert pool.stats().dropped_reset == 1


def test_accept_false_drops() -> None:
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


def test_lifecycle_check_and_destroy() -> None:
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
    """A subclass with hooks runs them, its get/put overrides still run first, and
    isinstance holds."""
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


def test_subclass_without_hooks_keeps_its_class() -> None:
    """A subclass without hooks is left alone: the lean code path, its own class."""
    pool = Subclassed(Obj)
    assert type(pool) is Subclassed
    obj = pool.get()
    pool.put(obj)
    assert pool.get() is obj


def test_subclass_of_a_subclass_with_hooks() -> None:
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


def test_drain_and_move_take_everything_in_one_go() -> None:
    """_drain and _move rely on list.extend keeping what a pop iterator gave before its
    IndexError: every entry moves, none is lost or left behind."""
    source, into = [1, 2, 3], [0]
    transient._drain(source, into)
    assert (source, sorted(into)) == ([], [0, 1, 2, 3])
    shared = transient._Cache(None)
    shared.victim.append(0)
    transient._move([4, 5], shared, victim=True)
    transient._move([6], shared, victim=False)
    assert (sorted(shared.victim), shared.primary) == ([0, 4, 5], [6])


# -- clear and borrow ------------------------------------------------------------------------


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


def test_borrow_puts_back() -> None:
    """borrow() gets an object and puts it back when the block ends."""
    pool = TransientPool(Obj)
    with pool.borrow() as obj:
        pass
    assert pool.get() is obj


def test_borrow_puts_back_on_exception_which_propagates() -> None:
    """An ordinary exception puts the object back (reset runs) and propagates unchanged."""
    resets: list[Obj] = []
    pool = TransientPool(Obj, reset=resets.append)
    error = Boom("in the body")
    with pytest.raises(Boom) as caught, pool.borrow() as obj:
        raise error
    assert caught.value is error
    assert resets == [obj]
    assert pool.get() is obj


def test_borrow_abort_drops() -> None:
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


# -- configuration ---------------------------------------------------------------------------


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


def test_max_idle_time_is_reported() -> None:
    """The validated max_idle_time is readable back."""
    assert TransientPool(Obj, max_idle_time=2).max_idle_time == 2.0
    assert TransientPool(Obj).max_idle_time is None
