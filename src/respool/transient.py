"""``TransientPool``: Go's ``sync.Pool`` for Python, a cache of short-lived objects.

What it is for: objects that are expensive enough to make that reusing them a few times pays,
and cheap enough to hold that nobody needs a count limit (buffers, parsers, encoders). It never
waits and holds no lock on its hot path, so one class serves threads and asyncio alike.

How it finds an object (``get``):

1. the calling thread's own cache (its *primary* list, then its *victim* list);
2. the shared store: objects left by threads that have exited, then what other threads hold
   (their victims first, which are closest to being dropped, then their primaries);
3. ``new()``.

How objects go away: like Go's victim cache. At the start of every full garbage collection
(``gc.callbacks``, generation 2) each cache's primary list becomes its victim list and the old
victim list is dropped. An object nobody takes back therefore survives at least one full
collection and at most two. With ``max_idle_time`` set, an object idle longer than that is also
dropped when a ``get`` comes across it. There is no count limit.

Finding the calling thread's cache
----------------------------------
The hot path reads a :class:`contextvars.ContextVar` (cached per thread by the interpreter;
on CPython 3.11 a read costs about a third of a ``threading.local`` attribute, subclass or
not). The ContextVar is only a shortcut: the slow path resolves the thread's cache through a
``threading.local`` and stores it in the current context. A context carried to another thread
(``asyncio.to_thread``, ``Context.run``) thus brings its cache along until that thread's next
miss re-resolves its own. That costs locality, never correctness, because of the rules below.

What the hot path costs
-----------------------
Without hooks, ``get`` is one Python call around a ContextVar read, a slot read and a ``pop``;
``put`` is one Python call around a ContextVar read, a slot read, its count (``+=`` on a slot,
which makes a new int) and an ``append``. That is about the floor of a per-thread cache
written in Python: on CPython 3.11, timed with ``timeit`` with the statements inlined, the two
Python calls alone cost about 2x a bare ``deque`` pop+append and get+put about 6x (about 3.5x
when each side is wrapped in a function call, as a benchmark harness does). A ``list`` that
empties frees its storage, so a thread taking and returning one object pays a free and a
malloc on every get+put (about a tenth); ``deque`` caches avoid that, but with them the
stress test of exact counts (threads racing collections, retirements and clears) lost a
``put`` count now and then, so the caches stay lists. Going lower needs dispatch in C. A
``put`` found as a property whose getter is a ContextVar's ``get``, returning the thread's
bound ``append``, would need a class per pool, lists that never change role, and the count
moved to ``get``, for about a tenth; ``get`` cannot leave Python, since a miss must call
``new()``. The ``with`` statement of
``borrow()`` costs about as much as get+put by itself; ``borrow()`` adds three Python calls
(``borrow``, ``__enter__``, ``__exit__``), with ``get`` and ``put`` inlined in them.

Why the garbage collector's callback is safe
--------------------------------------------
The callback runs in whatever thread triggered the collection, between any two bytecodes of any
thread, including in the middle of this module's own code on the same thread. Other threads, and
the collector, can only cut in at the interpreter's eval breaker (function entry, backward jumps,
the return of a call) or, on 3.11, where a tracked object (a list, a tuple, a bound method) is
allocated. The design rests on three rules:

1. **A cached object leaves a list only by an atomic ``pop()``**, into the single frame that
   then hands it out, drops it, or appends it elsewhere (``_drain`` and ``_move`` pop a whole
   list into another in one C call, ``extend`` fed by ``starmap(lst.pop, repeat(()))``). ``pop``
   and ``append`` are single C calls that the GIL does not split, so at any instant a cached
   object sits in at most one list slot, and it can leave that slot only once. Hence it is
   never handed out twice. (A caller that ``put``\\ s the same object twice breaks this; that
   is a usage error, as in Go, caught in debug mode: see below.)
2. **The collector only changes which role a whole list plays** (primary, victim, dropped), and
   empties each list it drops by pops, counting what it took (``dropped_gc``). A caller that
   read a list just before may still pop from it after it became a victim (fine: still cached)
   or was dropped (fine: what the caller took, the collector did not take or count).
3. **Nothing is appended to a list that may have been dropped**: every append reads its target
   list from its cache and appends to it with no call and no allocation in between, so the
   target is a live primary or victim, whose objects are still cached. Together with rule 2,
   every object that entered the cache is counted once: as taken back (a hit), idle, or
   dropped.

The callback also takes no lock (a get or put interrupted on the same thread might hold it:
deadlock), calls no user code (a ``destroy`` it would run is deferred to the pool's next miss or
``clear()``; only the finalizers of the objects it drops run, as when any reference goes),
never mutates a dict another frame could be iterating, and allocates only empty lists. It is
installed once, when this module is imported.

It never compares objects
-------------------------
Nothing here calls an object's ``__eq__`` or ``__hash__``: objects are found by identity only.
``==`` on a numpy array returns an array, whose truth value raises; a test double's ``__eq__``
may claim to equal anything. That rules out the idiom ``iter(lst.pop, sentinel)`` for emptying
a list (it compares every object with the sentinel, and the reflected ``__eq__`` of the object
runs first), and sets or dicts of objects: the debug check keys its records by ``id()``.

Counters
--------
Counters live on the caches and are written by the threads using them with ``+=`` (no call, so
no other thread cuts in). ``hits`` is derived: what entered the cache minus what is idle or was
dropped. A count is added either to the calling thread's own cache (never retired while the
thread runs) or to the context's cache right after reading its ``primary`` list, with no call
in between. Retiring a cache deletes that attribute first (so the read is the check, and a free
one inside the ``try`` the hot path has anyway) and folds the cache's counters into the pool's
only afterwards. So no count is lost, and once no operation is in flight, ``stats()`` is exact.

User callbacks that fail
------------------------
``reset``, ``accept``, ``check`` and ``destroy`` follow :mod:`respool._core.policy`: whatever
one raises, the object is dropped (``destroy`` runs on it) and counted first; then an
``Exception`` is logged and swallowed, while ``StillInUse`` and anything that is not an
``Exception`` (``KeyboardInterrupt``, cancellation) reach the caller. When ``destroy`` raises
such an error while several objects are dropped at once (``clear()``, the deferred drops of the
collector), the others are still destroyed, and the first error is raised after them.

Debug mode
----------
With :func:`respool.debug` on, ``put`` refuses an object that is already in the pool
(``LeaseError``, with the stack of the ``put`` that brought it in): Go's pool cannot tell, and
two later ``get`` calls would hand out the same object to two users. The check searches every
cache by identity, so it costs time proportional to what the pool holds; it is swapped in as
the class's ``put`` only while debug mode is on, so the normal ``put`` has no check at all.
It catches a second put by the same thread for sure; two threads racing to put one object may
slip past it.

Threads that exit
-----------------
Each thread's cache is registered with the pool, and a small marker in the thread's
``threading.local`` dies with the thread. A cache whose marker is dead keeps its objects where
other threads' misses can take them, and the garbage collector rotates it like any other, so
nothing is leaked. The next time a thread registers, or ``stats()``/``clear()`` run, such caches
are retired: what they hold moves to the shared store (primaries to its primary list, victims to
its victim list, while the cache is still rotated with the store, so no object gains a
collection), then the cache is detached (later callers holding it in a context are sent to the
slow path) and its counters are kept. Only objects put or rotated into it during the retirement
itself (a race with another thread or a collection) are moved after detaching; if a collection
falls in that last step too, they may live one collection longer.
"""

from __future__ import annotations

import contextvars
import gc
import itertools
import logging
import math
import reprlib
import threading
import weakref
from collections.abc import Callable
from functools import partial, wraps
from itertools import repeat, starmap
from operator import itemgetter
from time import monotonic
from traceback import StackSummary
from types import TracebackType
from typing import Any, Final, Generic, Protocol, TypeVar

from respool import _debug, _fork, _validate
from respool._core import policy
from respool._usage import Observer
from respool.errors import LeaseError
from respool.lifecycle import Lifecycle, coerce
from respool.stats import TransientStats

__all__ = ["TransientPool", "TransientStats"]

T = TypeVar("T")

log = logging.getLogger("respool")

_names = itertools.count(1)  # next() on it is atomic: safe for pools made in threads
_MISSING: Final[Any] = object()  # "nothing usable here", distinct from any cached object
#: ``starmap(lst.pop, _NO_ARGS)`` pops *lst* until it is empty (then IndexError), with no
#: comparison.
_NO_ARGS: Final = repeat(())


class _Mark:
    """Held only by one thread's ``threading.local``: when it dies, that thread has exited."""

    __slots__ = ("__weakref__",)


class _Cache:
    """One thread's cache, or the pool's shared store (which belongs to no thread).

    Invariants: an object is in at most one of ``primary``/``victim`` (of all caches) at a
    time, and moves only by ``pop``. A retired cache has no ``primary`` attribute at all: the
    ``AttributeError`` of reading it (free to check for, inside a ``try``) sends callers to the
    slow path, which finds their live cache. Counters are written by the threads using the
    cache and summed by ``stats()``.
    """

    __slots__ = (
        "aborted",
        "destroy_errors",
        "dropped_accept",
        "dropped_age",
        "dropped_check",
        "dropped_reset",
        "mark",
        "misses",
        "primary",
        "puts",
        "victim",
    )

    def __init__(self, mark: weakref.ref[_Mark] | None) -> None:
        self.primary: list[Any] = []  # deleted when the cache is retired
        self.victim: list[Any] = []
        #: The owning thread's marker; None for the shared store (which never dies).
        self.mark = mark
        self.puts = 0
        self.misses = 0
        self.dropped_reset = 0
        self.dropped_accept = 0
        self.dropped_age = 0
        self.dropped_check = 0
        self.aborted = 0
        self.destroy_errors = 0

    def dead(self) -> bool:
        """True once the owning thread has exited."""
        return self.mark is not None and self.mark() is None

    def idle(self) -> int:
        return len(self.victim) + len(getattr(self, "primary", ()))

    def add_counts(self, other: _Cache) -> None:
        """Fold *other*'s counters into this one (for retired caches)."""
        for field in _COUNTERS:
            setattr(self, field, getattr(self, field) + getattr(other, field))

    def zero_counts(self) -> None:
        for field in _COUNTERS:
            setattr(self, field, 0)

    def retire(self) -> tuple[list[Any], list[Any]]:
        """Detach and return (primary, victim); later users are sent to the slow path.

        No call and no allocation from the reads to the writes: no rotation in between."""
        empty: list[Any] = []
        try:
            primary = self.primary
        except AttributeError:  # retired already
            return empty, []
        victim = self.victim
        del self.primary
        self.victim = empty
        return primary, victim


_COUNTERS: Final = (
    "puts",
    "misses",
    "dropped_reset",
    "dropped_accept",
    "dropped_age",
    "dropped_check",
    "aborted",
    "destroy_errors",
)


def _drain(source: list[Any], into: list[Any]) -> None:
    """Move every entry of *source* to the end of *into*: atomic pops, all in one C call.

    The pops stop at the IndexError of an empty list, not at a sentinel: a sentinel would be
    compared with every object (see "It never compares objects")."""
    if not source:
        return
    items = starmap(source.pop, _NO_ARGS)
    try:
        into.extend(items)  # extend keeps what it appended when pop raises at the end
    except IndexError:
        pass


def _move(source: list[Any], target: _Cache, victim: bool) -> None:
    """Move every entry of *source* to *target*'s victim (or primary) list.

    The iterator is made first; from reading the target list to the end of the move there is
    no call and no allocation (``extend`` is one C call), so no rotation can drop the target
    list in between: the moved objects land in a live list (rule 3 of the module docstring).
    """
    if not source:
        return
    items = starmap(source.pop, _NO_ARGS)
    try:
        if victim:
            target.victim.extend(items)
        else:
            target.primary.extend(items)  # the target is the shared store, never retired
    except IndexError:
        pass


# -- the garbage collector hook ------------------------------------------------------------------

#: Live pools by a unique key, held weakly so an unreferenced pool can be collected. Mutated
#: only by single atomic dict operations; the gc callback reads it with one ``list(...)`` call.
_pools: dict[int, weakref.ref[TransientPool[Any]]] = {}
_pool_keys = itertools.count()


def _on_gc(phase: str, info: dict[str, int]) -> None:
    """At the start of each full collection, rotate every live pool's caches.

    Runs inside the collector: no locks, no user code, no logging (see the module docstring).
    """
    if phase != "start" or info.get("generation") != 2:
        return
    for ref in list(_pools.values()):
        pool = ref()
        if pool is not None:
            pool._rotate()


# Installed at import, once: installing it lazily needed a lock, which a fork could inherit held.
gc.callbacks.append(_on_gc)


def _forget(key: int, caches: dict[int, _Cache], shared: _Cache, _ref: object) -> None:
    """A pool died: unregister it and empty its caches now.

    A context can still hold a ContextVar value pointing at one of them; emptied and retired,
    it keeps no object alive and sends any caller to the slow path.
    """
    _pools.pop(key, None)
    for cache in list(caches.values()):
        cache.retire()
    shared.primary = []
    shared.victim = []


# -- the pool ------------------------------------------------------------------------------------


class TransientPool(Generic[T]):
    """A per-thread cache of reusable objects, emptied by the garbage collector.

    ::

        pool = respool.TransientPool(lambda: bytearray(1 << 20))
        buf = pool.get()      # a cached buffer, or a new one
        ...
        pool.put(buf)         # back into this thread's cache
        with pool.borrow() as buf:
            ...

    - ``new()`` makes an object when no cached one is available. A :class:`Lifecycle` works
      too: its ``create`` is ``new``, its ``reset`` runs at ``put``, its ``check`` at ``get``
      (on a cached object; false or raising: dropped) and its ``destroy`` on every object the
      pool drops (for drops by the garbage collector, at the next miss or ``clear()``: the
      collector's callback must not run user code).
    - ``reset(obj)`` runs at ``put`` and must make the object as good as new. Raising drops the
      object; if it raised :class:`~respool.StillInUse` (the object is *not quite done*), that
      error also reaches the caller of ``put``, because it reveals a bug.
    - ``accept(obj)`` runs at ``put`` after ``reset``; false drops the object (a buffer that
      grew too large to keep pinned: Go issue 23199).
    - Whatever a callback raises, the object is dropped and counted first; an ``Exception`` is
      then logged, while ``KeyboardInterrupt``, cancellation and the like reach the caller
      (see "User callbacks that fail" in the module docstring).
    - Objects are never compared or hashed (numpy arrays and test doubles are fine), and in
      debug mode (:func:`respool.debug`) ``put`` refuses an object already in the pool.
    - ``max_idle_time``: seconds after which an idle object is dropped instead of handed out.
    - ``name``: for logs and ``stats()``.
    - ``observe``: record how the pool is used (a use runs from ``get`` to ``put``: idle
      gaps of cached objects, objects out over time) for ``stats().usage`` (default False).
      It costs a lock, two clock reads and a dict update per get and put; off, nothing.

    ``get`` never waits and ``put`` never blocks, so the same pool serves threads and asyncio
    tasks. Without ``reset``, ``accept``, ``max_idle_time`` or a ``check``, get and put take a
    leaner code path (chosen once, at construction). A subclass gets the same choice: with
    hooks, its instances belong to a subclass of it made for that (so ``isinstance`` holds, and
    its overrides of ``get``/``put`` still come first).
    """

    __slots__ = (
        "__weakref__",
        "_abort_on",
        "_accept",
        "_caches",
        "_check",
        "_cleared",
        "_destroy",
        "_doomed",
        "_dropped_gc",
        "_key",
        "_local",
        "_lock",
        "_max_idle_time",
        "_new",
        "_observer",
        "_put_at",
        "_reset",
        "_retired",
        "_seen",
        "_seen_limit",
        "_shared",
        "_var",
        "name",
    )

    def __init__(
        self,
        new: Lifecycle[T] | Callable[[], T],
        *,
        reset: Callable[[T], object] | None = None,
        accept: Callable[[T], object] | None = None,
        max_idle_time: float | None = None,
        name: str | None = None,
        observe: bool = False,
    ) -> None:
        if isinstance(new, Lifecycle):
            lifecycle = coerce(new, reset=reset)
        else:
            _validate.required_callable("new", new)
            lifecycle = Lifecycle(new, reset=_validate.optional_callable("reset", reset))
        never = "TransientPool never waits, so it cannot await one: pass a plain function"
        for field, fn in (
            ("new", lifecycle.create),
            ("reset", lifecycle.reset),
            ("accept", accept),
        ):
            _validate.synchronous(field, fn, pool="TransientPool", hint=never)
        self._new: Callable[[], T] = lifecycle.create
        self._reset = lifecycle.reset
        self._check = lifecycle.check
        self._destroy = lifecycle.destroy
        #: Which errors ending a ``borrow()`` block drop the object besides the policy's own.
        self._abort_on = lifecycle.abort_on
        self._accept = _validate.optional_callable("accept", accept)
        self._max_idle_time = _idle_time(max_idle_time)
        if name is None:
            name = f"TransientPool-{next(_names)}"
        self.name: str = _validate.text("name", name)

        #: The shortcut to the calling thread's cache (see the module docstring).
        self._var: contextvars.ContextVar[_Cache] = contextvars.ContextVar(f"respool:{self.name}")
        #: Per thread: ``cache`` (its _Cache) and ``mark`` (its _Mark, dying with the thread).
        self._local = threading.local()
        #: Every registered thread cache by id. Mutated only under ``_lock`` by single dict
        #: operations, so the gc callback's ``list(...)`` of it is always consistent.
        self._caches: dict[int, _Cache] = {}
        #: Objects of exited threads (its counters stay zero).
        self._shared = _Cache(None)
        #: The counters of retired caches (written under ``_lock`` only).
        self._retired = _Cache(None)
        #: Lists the collector dropped while ``destroy`` is set, waiting for it to run.
        self._doomed: list[list[Any]] = []
        #: Written only by the gc callback (collections never overlap).
        self._dropped_gc = 0
        #: Guards registration, retirement and the pool-level counters; the gc callback
        #: never takes it.
        self._lock = threading.Lock()

        hooked = (
            self._reset is not None
            or self._accept is not None
            or self._check is not None
            or self._destroy is not None
            or self._max_idle_time is not None
        )
        if not isinstance(observe, bool):
            raise TypeError(f"observe must be a bool, got {observe!r}")
        #: Observing (``observe=True``): the usage record, and when each object now out of
        #: use was put, by ``id()`` (never by the object: see "It never compares objects"),
        #: pruned of the ids of objects that left the pool once it outgrows ``_seen_limit``.
        self._observer = Observer(monotonic()) if observe else None
        self._seen: dict[int, float] = {}
        self._seen_limit = _SEEN_MIN
        if observe and not isinstance(self, _ObservedTransientPool):
            self.__class__ = _observed_variant(type(self))
        elif hooked and not isinstance(self, _HookedTransientPool):
            self.__class__ = _hooked_variant(type(self))
        #: Objects dropped by ``clear()`` (under ``_lock``).
        self._cleared = 0
        #: Debug mode only: where each object was put, by ``id()`` (never by the object, which
        #: may not be hashable). Written and pruned under ``_lock``; emptied when debug mode is
        #: switched, so a record always belongs to the live object that has its id.
        self._put_at: dict[int, StackSummary] = {}
        key = next(_pool_keys)
        self._key = key
        # The weakref's callback must not hold the pool (it would never die), only its caches.
        _pools[key] = weakref.ref(self, partial(_forget, key, self._caches, self._shared))
        _fork.register(self)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass that replaces ``get`` or ``put`` gets the ``borrow()`` that calls them:
        the lean one inlines this class's own."""
        super().__init_subclass__(**kwargs)
        if ("get" in cls.__dict__ or "put" in cls.__dict__) and "borrow" not in cls.__dict__:
            type.__setattr__(cls, "borrow", _calling_borrow)

    # -- hot path (no hooks) ------------------------------------------------------------

    def get(self) -> T:
        """Take an object from the calling thread's cache, the shared store, or ``new()``."""
        try:
            return self._var.get().primary.pop()  # type: ignore[no-any-return]
        except (LookupError, IndexError, AttributeError):
            return self._get_slow()

    def put(self, obj: T) -> None:
        """Give *obj* back to the calling thread's cache. Do not use it afterwards."""
        try:
            cache = self._var.get()
            primary = cache.primary  # AttributeError: retired (from a thread that has exited)
        except (LookupError, AttributeError):
            cache = self._own_cache()
            primary = cache.primary
        # No call from reading primary to the append (see "Counters" and rule 3).
        cache.puts += 1
        primary.append(obj)

    # -- public API -----------------------------------------------------------------------

    def borrow(self) -> _Borrow[T]:
        """``with pool.borrow() as obj:`` gets an object and puts it back at the end.

        On an ordinary exception the object is still put back (``reset`` runs), and an error
        from that is logged rather than allowed to replace the exception. On cancellation,
        ``KeyboardInterrupt``, ``SystemExit``, a ``TimeoutError`` or an error the lifecycle
        lists in ``abort_on``, the object is dropped (destroyed if the lifecycle says how) and
        counted in ``stats().aborted``: the work on it was interrupted, so it may be in any
        state.
        """
        # No __init__ (a Python call): the slot is set here. The object is taken by __enter__,
        # where the lean get is inlined (:class:`_LeanBorrow`).
        borrow: _Borrow[T] = _LeanBorrow()
        borrow._pool = self
        return borrow

    def clear(self) -> None:
        """Drop every cached object now (``destroy`` runs on each, when set)."""
        taken: list[Any] = []
        with self._lock:
            self._retire_dead()
            for cache in (self._shared, *self._caches.values()):
                # Primary first: a rotation in between makes it the victim taken next, and
                # drops (and counts) the old victim itself.
                _drain(cache.primary, taken)
                _drain(cache.victim, taken)
            self._cleared += len(taken)
        # Destroyed outside the lock, here (not by whichever thread misses next), then what
        # the collector dropped: an interrupt from one destroy stops none of the others.
        error = self._drop_all(taken) if self._destroy is not None else None
        self._destroy_doomed(error)

    def stats(self) -> TransientStats:
        """Counters summed over every thread's cache (approximate while other threads run)."""
        total = _Cache(None)
        idle = 0
        with self._lock:
            self._retire_dead()
            for cache in (self._shared, self._retired, *self._caches.values()):
                total.add_counts(cache)
                idle += cache.idle()
            cleared = self._cleared
        dropped_gc = self._dropped_gc
        entered = total.puts - total.dropped_reset - total.dropped_accept
        left = idle + total.dropped_age + total.dropped_check + dropped_gc + cleared
        hits = max(0, entered - left)
        return TransientStats(
            name=self.name,
            idle=idle,
            gets=hits + total.misses,
            hits=hits,
            misses=total.misses,
            puts=total.puts,
            dropped_reset=total.dropped_reset,
            dropped_accept=total.dropped_accept,
            dropped_age=total.dropped_age,
            dropped_gc=dropped_gc,
            dropped_check=total.dropped_check,
            cleared=cleared,
            aborted=total.aborted,
            destroy_errors=total.destroy_errors,
            usage=None if self._observer is None else self._observer.snapshot(monotonic()),
        )

    @property
    def max_idle_time(self) -> float | None:
        """Seconds an object may sit idle before it is dropped (None: no limit)."""
        return self._max_idle_time

    def __repr__(self) -> str:
        return f"<TransientPool {self.name!r}>"

    # -- slow paths -----------------------------------------------------------------------

    def _thread_cache(self) -> _Cache:
        """The calling thread's cache, registered on first use. It is not retired while the
        thread runs, so counts added to it are never lost."""
        local = self._local
        try:
            cache: _Cache = local.cache
        except AttributeError:
            mark = _Mark()
            cache = _Cache(weakref.ref(mark))
            local.mark = mark
            local.cache = cache
            with self._lock:
                self._retire_dead()  # thread churn: caches of exited threads go now
                self._caches[id(cache)] = cache
        return cache

    def _abort(self, obj: T) -> None:
        """A ``borrow()`` block was aborted: the object may be half-way through anything, so
        it is counted and dropped, never reused (:func:`respool._core.policy.discards`)."""
        self._thread_cache().aborted += 1
        self._discard(obj)

    def _refuse_second_put(self, obj: T) -> None:
        """Debug mode, before a put: raise :class:`LeaseError` if *obj* is in the pool already;
        otherwise remember where it is being put.

        Every list is searched by identity (``id()`` of what it holds, never ``==``). Each
        cache's primary list is read before its victim list: a rotation in between turns the
        primary into the victim, read twice, where the other order could miss a whole list.
        The search takes no lock, so puts and gets of other threads may run meanwhile. So each
        list is first copied by ``list()``, one C call: the search then never iterates a list
        another thread or a rotation is changing.
        """
        aged = self._max_idle_time is not None
        present: set[int] = set()
        for cache in (self._shared, *self._caches.values()):  # one atomic snapshot
            for lst in (getattr(cache, "primary", ()), cache.victim):
                held = list(lst)
                present.update(map(id, map(itemgetter(1), held) if aged else held))
        key = id(obj)
        if key in present:
            raise LeaseError(_second_put_message(self, obj, self._put_at.get(key)))
        stack = _debug.capture_stack()
        with self._lock:
            put_at = self._put_at
            if len(put_at) > 2 * len(present) + 64:
                # Records of objects that have left the pool: pruned now and then.
                put_at = self._put_at = {k: v for k, v in put_at.items() if k in present}
            put_at[key] = stack

    def _own_cache(self) -> _Cache:
        """The calling thread's cache, made the context's."""
        cache = self._thread_cache()
        if self._var.get(None) is not cache:
            self._var.set(cache)
        return cache

    def _get_slow(self) -> T:
        """A miss in the context's cache: try everything else before calling ``new()``."""
        if self._doomed:
            self._destroy_doomed()
        cache = self._own_cache()
        obj = self._pop_usable(cache.primary)
        if obj is _MISSING:
            obj = self._pop_usable(cache.victim)
        if obj is not _MISSING:
            return obj  # type: ignore[no-any-return]
        # The shared store, then other threads' caches: victims first, the next to be dropped.
        for other in (self._shared, *self._caches.values()):  # one atomic snapshot
            if other is not cache:
                obj = self._pop_usable(other.victim)
                if obj is _MISSING:  # (retired since the snapshot: no primary)
                    obj = self._pop_usable(getattr(other, "primary", None))
                if obj is not _MISSING:
                    return obj  # type: ignore[no-any-return]
        cache.misses += 1
        return self._new()

    def _pop_usable(self, lst: list[Any] | None) -> Any:
        """Pop entries from *lst* until one is usable; ``_MISSING`` when it runs out."""
        if lst is None:
            return _MISSING
        plain = self._max_idle_time is None and self._check is None
        while True:
            try:
                item = lst.pop()
            except IndexError:  # empty, or another thread took the last one since we looked
                return _MISSING
            if plain:
                return item
            obj = self._usable(item)
            if obj is not _MISSING:
                return obj

    def _usable(self, item: Any) -> Any:
        """The object of a popped entry, or ``_MISSING`` if it had to be dropped.

        Stale (``max_idle_time``) and unviable (``check``) objects are dropped and counted on
        the calling thread's own cache. Entries are ``(stamp, obj)`` pairs when
        ``max_idle_time`` is set.
        """
        max_idle = self._max_idle_time
        if max_idle is None:
            obj = item
        else:
            stamp, obj = item
            if monotonic() - stamp > max_idle:
                self._thread_cache().dropped_age += 1
                self._discard(obj)
                return _MISSING
        check = self._check
        if check is not None:
            try:
                viable = bool(check(obj))
            except BaseException as exc:
                self._thread_cache().dropped_check += 1
                if self._callback_failed(obj, exc, "check"):
                    raise
                return _MISSING
            if not viable:
                self._thread_cache().dropped_check += 1
                self._discard(obj)
                return _MISSING
        return obj

    def _callback_failed(self, obj: T, exc: BaseException, callback: str) -> bool:
        """*callback* raised *exc* on *obj* (already counted): drop the object, and say whether
        *exc* must reach the caller (:func:`respool._core.policy.reaches_caller`); if not, it
        is logged here, since nobody else will see it."""
        loud = policy.reaches_caller(exc)
        if not loud:
            log.warning(
                "pool %r: %s raised; dropping the object", self.name, callback, exc_info=exc
            )
        self._discard(obj)
        return loud

    def _discard(self, obj: T) -> None:
        """Drop *obj*: run ``destroy`` if there is one. Its errors are counted; an
        ``Exception`` is logged, anything the policy says reaches the caller is raised."""
        destroy = self._destroy
        if destroy is None:
            return
        try:
            destroy(obj)
        except BaseException as exc:
            self._thread_cache().destroy_errors += 1
            if policy.reaches_caller(exc):
                raise
            log.warning("pool %r: destroy raised", self.name, exc_info=True)

    def _drop_all(self, lst: list[Any]) -> BaseException | None:
        """Empty *lst* by atomic pops, discarding each object. A destroy raising an error that
        reaches the caller does not stop the others: the first such error is returned."""
        aged = self._max_idle_time is not None
        first: BaseException | None = None
        while True:
            try:
                item = lst.pop()
            except IndexError:
                return first
            try:
                self._discard(item[1] if aged else item)
            except BaseException as exc:
                if first is None:
                    first = exc

    def _destroy_doomed(self, first: BaseException | None = None) -> None:
        """Run ``destroy`` on what the collector dropped (its callback must not run user code
        itself); then raise *first* (an error the caller already met while destroying) or else
        the first error that must reach the caller, if any."""
        doomed = self._doomed
        while True:
            try:
                lst = doomed.pop()
            except IndexError:
                break
            error = self._drop_all(lst)
            if first is None:
                first = error
        if first is not None:
            try:
                raise first
            finally:
                first = None  # no cycle through this frame's traceback

    def _retire_dead(self) -> None:
        """Retire caches of exited threads: keep their counters, move their objects to the
        shared store (victims stay victims, so no object gains more than it had). Call with
        ``_lock`` held."""
        shared = self._shared
        for key, cache in list(self._caches.items()):
            if cache.dead():
                # Still registered, so rotated along with the shared store: each object keeps
                # its age. Primaries first: a rotation in between turns them into victims.
                _move(cache.primary, shared, victim=False)
                _move(cache.victim, shared, victim=True)
                primary, victim = cache.retire()
                del self._caches[key]
                # What a put (through a context) or a rotation slipped in since: rare.
                _move(victim, shared, victim=True)
                _move(primary, shared, victim=False)
                # Only now: a count added before retire() is in, none can come after it.
                self._retired.add_counts(cache)

    def _rotate(self) -> None:
        """Called by the collector: every primary becomes a victim; old victims are dropped.

        Only whole lists change role; a dropped list is emptied by pops, and only what they
        took is counted (a get that read it just before may take the rest). With ``destroy``
        set, what was taken waits in ``_doomed``; otherwise it is freed right here.
        """
        doomed = self._doomed if self._destroy is not None else None
        for cache in [self._shared, *self._caches.values()]:  # one atomic snapshot
            try:
                primary = cache.primary
            except AttributeError:  # retired
                continue
            old = cache.victim
            cache.primary = []
            cache.victim = primary
            if old:
                dropped: list[Any] = []
                _drain(old, dropped)
                self._dropped_gc += len(dropped)
                if doomed is not None:
                    doomed.append(dropped)

    def _after_fork_in_child(self) -> None:
        """In a forked child: forget every cached object (the parent owns them) and every
        count, and start afresh. Contexts still pointing at old caches find them retired."""
        self._lock = threading.Lock()
        for cache in list(self._caches.values()):
            cache.retire()
        self._caches.clear()
        self._shared.primary = []
        self._shared.victim = []
        self._doomed.clear()
        self._shared.zero_counts()
        self._retired.zero_counts()
        self._dropped_gc = 0
        self._cleared = 0
        self._put_at = {}
        self._local = threading.local()
        if self._observer is not None:
            self._observer = Observer(monotonic())
        self._seen = {}
        self._seen_limit = _SEEN_MIN


#: A short repr for error messages: a numpy array's or a long buffer's full repr would bury
#: the message.
_short_repr = reprlib.Repr()
_short_repr.maxother = 60
_short_repr.maxstring = 60


def _second_put_message(pool: TransientPool[Any], obj: object, stack: StackSummary | None) -> str:
    """The ``LeaseError`` text for a second put of *obj*: what it is, and where it came in."""
    try:
        text = _short_repr.repr(obj)
    except Exception:  # a broken __repr__ must not hide the real error
        text = "<repr failed>"
    if stack is None:  # put before debug mode was switched on, or pruned by a racing put
        where = "where no stack was recorded\n"
    else:
        where = f"at (most recent call last):\n{_debug.format_stack(stack)}"
    return (
        f"{type(obj).__qualname__} object at {id(obj):#x} ({text}) was put into pool"
        f" {pool.name!r} while it is already in it; two gets would hand it out twice."
        f" It was put there {where}"
    )


def _idle_time(value: object) -> float | None:
    """``max_idle_time``: None, or a number of seconds > 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"max_idle_time must be a number of seconds > 0 or None, got {value!r}")
    if math.isnan(value) or value <= 0:
        raise ValueError(f"max_idle_time must be a number of seconds > 0 or None, got {value!r}")
    return float(value)


def _calling_borrow(self: TransientPool[T]) -> _Borrow[T]:
    """``borrow()`` through the pool's own ``get`` and ``put`` (see :class:`_Borrow`)."""
    borrow: _Borrow[T] = _Borrow()
    borrow._pool = self
    return borrow


#: ``TransientPool.borrow`` as defined, put back when debug mode is switched off.
_lean_borrow: Final = TransientPool.borrow


class _HookedTransientPool(TransientPool[T]):
    """The code path for pools with ``reset``, ``accept``, ``check``, ``destroy`` or
    ``max_idle_time``: the same structure, with the hooks run around each move."""

    __slots__ = ()

    def get(self) -> T:
        try:
            primary = self._var.get().primary
            item = primary.pop()
        except (LookupError, IndexError, AttributeError):
            return self._get_slow()
        if self._max_idle_time is None and self._check is None:
            return item  # type: ignore[no-any-return]
        obj = self._usable(item)
        if obj is _MISSING:
            # The local, not cache.primary again: the cache may have been retired since.
            obj = self._pop_usable(primary)
            if obj is _MISSING:
                return self._get_slow()
        return obj  # type: ignore[no-any-return]

    def put(self, obj: T) -> None:
        reset = self._reset
        if reset is not None:
            try:
                reset(obj)
            except BaseException as exc:
                # Counted before destroy runs: an interrupt from destroy must not lose it.
                self._count_dropped_put(by_reset=True)
                if self._callback_failed(obj, exc, "reset"):
                    raise  # StillInUse (the caller's bug) or an interrupt
                return
        accept = self._accept
        if accept is not None:
            try:
                keep = bool(accept(obj))
            except BaseException as exc:
                self._count_dropped_put(by_reset=False)
                if self._callback_failed(obj, exc, "accept"):
                    raise
                return
            if not keep:
                self._count_dropped_put(by_reset=False)
                self._discard(obj)
                return
        item: Any = obj if self._max_idle_time is None else (monotonic(), obj)
        try:
            cache = self._var.get()
            primary = cache.primary  # AttributeError: retired (from a thread that has exited)
        except (LookupError, AttributeError):
            cache = self._own_cache()
            primary = cache.primary
        # No call from reading primary to the append (see "Counters" and rule 3).
        cache.puts += 1
        primary.append(item)

    def _count_dropped_put(self, *, by_reset: bool) -> None:
        """Count a put whose object ``reset`` or ``accept`` refused, on a live cache."""
        try:
            cache = self._var.get()
            cache.primary  # noqa: B018  # AttributeError: retired
        except (LookupError, AttributeError):
            cache = self._own_cache()
        # No call from the check to the counts: a retirement cannot fall in between.
        cache.puts += 1
        if by_reset:
            cache.dropped_reset += 1
        else:
            cache.dropped_accept += 1


def _hooked_variant(cls: type[TransientPool[Any]]) -> type[TransientPool[Any]]:
    """The class a pool of class *cls* with hooks becomes: a subclass of both *cls* (whose own
    overrides come first) and ``_HookedTransientPool``, made once per class."""
    return _variant(cls, _HookedTransientPool, "_respool_hooked")


def _variant(
    cls: type[TransientPool[Any]], path: type[TransientPool[Any]], attribute: str
) -> type[TransientPool[Any]]:
    """*cls* combined with the code *path* (a subclass of ``TransientPool``), made once per
    class and kept on *cls* under *attribute*; *path* itself for the base classes."""
    if cls is TransientPool or issubclass(path, cls):
        return path
    variant: type[TransientPool[Any]] | None = cls.__dict__.get(attribute)
    if variant is None:
        namespace = {
            "__slots__": (),
            "__module__": cls.__module__,
            "__qualname__": cls.__qualname__,
        }
        variant = type(cls.__name__, (cls, path), namespace)
        # Kept on the class itself, not in a module dict: it dies with the class.
        type.__setattr__(cls, attribute, variant)
    return variant


#: The side table of an observing pool is pruned when it holds more than this, or twice what
#: it held after its last pruning.
_SEEN_MIN: Final = 1024


class _ObservedTransientPool(_HookedTransientPool[T]):
    """The code path of an observing pool (``observe=True``): the hooked one, reporting each
    ``get`` (a use begins, after an idle gap when the object was cached) and each ``put`` or
    aborted ``borrow()`` (it ends) to the pool's observer. Plain pools never come here.

    An object's idle gap runs from its ``put`` (stamped in ``_seen`` by ``id()``) to the
    ``get`` that hands it out again; an object ``new()`` made has none. The ids of objects the
    pool dropped (the collector, ``clear()``, hooks) linger until a pruning keeps only those of
    objects still cached; an id reused by a new object is forgotten when ``new()`` makes it.
    """

    __slots__ = ()

    _observer: Observer

    def get(self) -> T:
        obj = super().get()
        self._observer.began(monotonic(), self._seen.pop(id(obj), None))
        return obj

    def put(self, obj: T) -> None:
        seen = self._seen
        if len(seen) > self._seen_limit:
            self._prune_seen()
        now = monotonic()
        seen[id(obj)] = now  # before the object is cached: another thread may get it at once
        try:
            super().put(obj)
        except LeaseError:
            raise  # debug mode refused a second put: no use ended here
        except BaseException:
            self._observer.ended(now)  # the use ended all the same (the object was dropped)
            raise
        self._observer.ended(now)

    def _abort(self, obj: T) -> None:
        self._observer.ended(monotonic())
        super()._abort(obj)

    def _get_slow(self) -> T:
        cache = self._thread_cache()
        misses = cache.misses  # this thread's own count: only this thread adds to it
        obj: T = super()._get_slow()
        if cache.misses != misses:
            self._seen.pop(id(obj), None)  # new(): an id some dropped object had is not its
        return obj

    def _prune_seen(self) -> None:
        """Keep only the stamps of objects still in the pool (by ``id()``, lists copied in
        one C call each, as in :meth:`_refuse_second_put`). A get racing the pruning may find
        its object's stamp gone, and count that use as one of a new object."""
        aged = self._max_idle_time is not None
        present: set[int] = set()
        for cache in (self._shared, *self._caches.values()):  # one atomic snapshot
            for lst in (getattr(cache, "primary", ()), cache.victim):
                held = list(lst)
                present.update(map(id, map(itemgetter(1), held) if aged else held))
        seen = self._seen
        for key in list(seen):
            if key not in present:
                seen.pop(key, None)
        self._seen_limit = max(_SEEN_MIN, 2 * len(seen))


def _observed_variant(cls: type[TransientPool[Any]]) -> type[TransientPool[Any]]:
    """The class an observing pool of class *cls* becomes (as :func:`_hooked_variant`)."""
    return _variant(cls, _ObservedTransientPool, "_respool_observed")


class _Borrow(Generic[T]):
    """The context manager ``borrow()`` returns: get on entry, put (or drop) on exit.

    This form calls the pool's own ``get`` and ``put``. It serves pools with hooks, subclasses
    that override ``get`` or ``put``, and every pool while debug mode is on (whose ``put`` is
    the checked one); :class:`_LeanBorrow` serves the rest.
    """

    __slots__ = ("_obj", "_pool")

    _pool: TransientPool[T]
    #: The object while the block runs; None after (``del`` would cost a slow DELETE_ATTR).
    _obj: Any

    def __enter__(self) -> T:
        obj = self._obj = self._pool.get()
        return obj

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        obj = self._obj
        self._obj = None  # the borrow must not keep the object alive once it is back
        if exc_type is None:  # tested first: the common case pays for no policy call
            self._pool.put(obj)  # StillInUse from reset is the caller's bug: let it out
        else:
            _put_back_after(self._pool, obj, exc_type, self._pool._abort_on)


class _LeanBorrow(_Borrow[T]):
    """``borrow()`` of a pool on the lean path: its ``get`` and ``put`` inlined.

    A ``with`` block is then three Python calls (``borrow``, ``__enter__``, ``__exit__``)
    instead of six; the ``with`` statement itself costs about as much as all of them. The code
    is that of ``TransientPool.get`` and ``TransientPool.put``, so the rules of the module
    docstring hold as they do there (the count comes after the read of ``primary`` and right
    before the append, with no call in between).
    """

    __slots__ = ()

    def __enter__(self) -> T:
        pool = self._pool
        try:
            obj: T = pool._var.get().primary.pop()
        except (LookupError, IndexError, AttributeError):
            obj = pool._get_slow()
        self._obj = obj
        return obj

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        obj = self._obj
        self._obj = None
        if exc_type is None:
            pool = self._pool
            try:
                cache = pool._var.get()
                primary = cache.primary  # AttributeError: retired
            except (LookupError, AttributeError):
                cache = pool._own_cache()
                primary = cache.primary
            # No call from reading primary to the append (see "Counters" and rule 3).
            cache.puts += 1
            primary.append(obj)
        else:
            _put_back_after(self._pool, obj, exc_type, self._pool._abort_on)


class _Borrowed(Protocol):
    """What :func:`_put_back_after` needs of a pool (``TransientPool``, ``BufferPool``)."""

    name: str

    def put(self, obj: Any, /) -> None: ...

    def _abort(self, obj: Any, /) -> None: ...


def _put_back_after(
    pool: _Borrowed, obj: Any, exc_type: type[BaseException], abort_on: policy.Aborts = ()
) -> None:
    """A ``borrow()`` block raised *exc_type*: drop *obj* if the policy says the work on it
    was interrupted (*abort_on*: the lifecycle's own such errors), else put it back, never
    letting an error replace the one propagating. (``BufferPool.borrow()`` ends the same way,
    with no lifecycle of its own: the policy's rule alone.)"""
    if policy.discards(exc_type, abort_on=abort_on):  # cut short: see the policy
        pool._abort(obj)
        return
    try:
        pool.put(obj)
    except Exception:
        log.warning(
            "pool %r: could not put back after %s",
            pool.name,
            exc_type.__name__,
            exc_info=True,
        )


# -- debug mode ----------------------------------------------------------------------------------

_PutMethod = Callable[[TransientPool[Any], Any], None]


def _checking(put: _PutMethod) -> _PutMethod:
    """*put*, preceded by the debug check for a second put of the same object."""

    @wraps(put)
    def put_checked(self: TransientPool[Any], obj: Any) -> None:
        self._refuse_second_put(obj)
        put(self, obj)

    return put_checked


#: Each class's own ``put`` and its debug variant. Subclasses (user subclasses and the hooked
#: variants made for them) reach these through the MRO or ``super()``, so swapping the two
#: class attributes switches every pool at once.
_PUTS: Final[dict[type[TransientPool[Any]], tuple[_PutMethod, _PutMethod]]] = {
    cls: (cls.put, _checking(cls.put)) for cls in (TransientPool, _HookedTransientPool)
}


#: Whether the checked ``put`` is in place.
_checks_on = False


def _on_debug(on: bool) -> None:
    """Switch ``put`` between its plain and checked forms. On a real change, forget every
    record of where objects were put: a record must come from the current debug session (see
    ``_put_at``), and none is needed outside one."""
    global _checks_on
    if on == _checks_on:
        return
    _checks_on = on
    for cls, (plain, checked) in _PUTS.items():
        type.__setattr__(cls, "put", checked if on else plain)
    # The lean borrow() inlines the plain put: in debug mode, borrow() must call the checked
    # one. (Hooked pools and subclasses replacing put already use _calling_borrow.)
    type.__setattr__(TransientPool, "borrow", _calling_borrow if on else _lean_borrow)
    for ref in list(_pools.values()):
        pool = ref()
        if pool is not None:
            pool._put_at = {}


_debug.subscribe(_on_debug)
