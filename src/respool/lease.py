"""Leases: the caller's handle on one borrowed resource.

A :class:`Lease` is created per acquire and ends exactly once, by ``release()`` (clean it and
reuse it), ``discard()`` (destroy it) or the end of its ``with`` block. After that it refuses
every use with :class:`~respool.errors.LeaseError`, so a stale handle can never reach a
resource that another caller now holds.
"""

from __future__ import annotations

import logging
from asyncio import _get_running_loop
from collections.abc import Callable, Generator
from traceback import StackSummary
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from respool import _debug
from respool._core import policy
from respool._core.free_list import ERROR
from respool._free_list_shell import FROM_POOL
from respool.errors import LeaseError, StillInUse

if TYPE_CHECKING:
    from respool._core.free_list import Entry

__all__ = ["AsyncDebugLease", "AsyncLease", "DebugLease", "Lease"]

T = TypeVar("T")

log = logging.getLogger("respool")


class _Owner(Protocol):
    """What a lease needs from the pool it came from."""

    name: str
    discard_on_error: bool
    #: The lifecycle's ``abort_on``, stored once at construction (one read per failed body).
    _abort_on: policy.Aborts

    _put: Callable[[Entry[Any]], object]

    def _throw_away(self, entry: Entry[Any], reason: str = ...) -> None: ...


class Lease(Generic[T]):
    """One borrowed resource. Use it as a context manager, or end it by hand.

    Ending rules, the same for every pool:

    * ``with`` body completes: the resource is reset and reused;
    * body raises an ``Exception``: reset and reused, or destroyed with ``discard_on_error``;
    * body raises any other ``BaseException`` (cancellation, ``KeyboardInterrupt``,
      ``SystemExit``), a ``TimeoutError`` (not ``PoolTimeout``) or an error the lifecycle
      lists in ``abort_on``: destroyed, because it may be mid-operation (*abort means
      discard*), counted in ``retired["abort"]``.

    The body's exception always propagates unchanged. A lease dropped without being ended
    does not lose its slot: when it is garbage-collected the pool destroys the resource (its
    state is unknown), replaces it, counts it in ``leaks`` and emits a ``ResourceWarning``.
    """

    # Leases are made on the hot path: slots, and no __init__ (pools fill the slots directly).
    __slots__ = ("_entry", "_pool")

    _pool: _Owner
    _entry: Entry[T] | None

    @property
    def resource(self) -> T:
        """The borrowed resource; ``LeaseError`` once the lease has ended."""
        entry = self._entry
        if entry is None:
            raise self._ended("has ended")
        return entry.resource

    @property
    def active(self) -> bool:
        """True until the lease is released or discarded."""
        return self._entry is not None

    def release(self) -> None:
        """Give the resource back to be reset and reused. Ending a lease twice is an error."""
        self._pool._put(self._end())

    def discard(self) -> None:
        """Give the resource back to be destroyed (it is broken, or its state is unknown)."""
        self._pool._throw_away(self._end())

    def _end(self) -> Entry[T]:
        entry = self._entry
        if entry is None:
            raise self._ended("has already ended")
        self._entry = None
        return entry

    def _ended(self, what: str) -> LeaseError:
        return LeaseError(f"this lease from pool {self._pool.name!r} {what}{self._history()}")

    def _history(self) -> str:
        """Where the lease began and ended, for error messages (known in debug mode only)."""
        return ""

    def __enter__(self) -> T:
        entry = self._entry  # not via the property: this is on every caller's hot path
        if entry is None:
            raise self._ended("has ended")
        return entry.resource

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        entry = self._entry
        if entry is None:
            return  # ended by hand inside the block: nothing left to do
        self._entry = None
        if exc_type is None:
            self._pool._put(entry)  # the hot path: exactly as cheap as without abort_on
            return
        pool = self._pool
        if policy.discards(exc_type, pool.discard_on_error, pool._abort_on):
            pool._throw_away(entry, policy.retirement(exc_type, pool._abort_on))
        else:
            try:
                pool._put(entry)
            except StillInUse:
                # The pool destroyed the resource already; the body's exception matters more.
                log.warning("pool %r: resource still in use at return", self._pool.name)

    def __repr__(self) -> str:
        state = "active" if self._entry is not None else "ended"
        return f"<Lease {state} from pool {self._pool.name!r}>"


class _Recorder:
    """What a debug lease records, the same in both shells: where it was acquired and where
    it ended (for every ``LeaseError``), and how many references its resource had when lent
    (to refuse one still in use at its return: *not quite done*)."""

    __slots__ = ()

    _held: Any
    _acquired_at: StackSummary
    _ended_at: StackSummary
    _refs: int
    _pool: Any

    # Pools set ``_entry`` directly (see Lease); as a property here it takes the snapshot
    # when the pool attaches the entry, without the pools having a debug branch.
    @property
    def _entry(self) -> Any:
        return self._held

    @_entry.setter
    def _entry(self, entry: Any) -> None:
        if entry is _PENDING:  # an asyncio lease not acquired yet
            pass
        elif entry is not None:
            self._acquired_at = _debug.capture_stack()  # type: ignore[misc]  # (slots of the subclass)
            self._refs = _debug.references(entry.resource)  # type: ignore[misc]  # (slots of the subclass)
            entry.trace = self._acquired_at  # for the report, should the lease be lost
        else:
            self._ended_at = _debug.capture_stack()  # type: ignore[misc]  # (slots of the subclass)
            held = getattr(self, "_held", None)
            if held is not None and held is not _PENDING:
                held.trace = None
        self._held = entry

    def _refused(self, entry: Entry[Any]) -> StillInUse | None:
        """Given back while still referenced from outside? Then it is destroyed, and this is
        the error to raise."""
        extra = _debug.references(entry.resource) - self._refs
        if extra <= 0:
            return None
        self._pool._throw_away(entry, ERROR)
        return StillInUse(
            f"a resource given back to pool {self._pool.name!r} is still referenced from"
            f" {extra} more place(s) than when it was lent (a memoryview, a cursor, a list"
            " or attribute holding it?); it was destroyed instead of being lent again"
            f"{self._history()}"
        )

    def _history(self) -> str:
        acquired = getattr(self, "_acquired_at", None)
        if acquired is None:
            return ""
        text = "\nThe lease was acquired at (most recent call last):\n"
        text += _debug.format_stack(acquired)
        ended = getattr(self, "_ended_at", None)
        if ended is not None:
            text += f"and ended at:\n{_debug.format_stack(ended)}"
        return text


class DebugLease(_Recorder, Lease[T]):
    """The lease pools hand out while debug mode is on (:func:`respool.debug`).

    It records the stack that acquired it (and the one that ended it) for every
    ``LeaseError``; on a normal return it refuses a resource still referenced from outside
    the pool (*not quite done*): the resource is destroyed, never lent again, and
    ``StillInUse`` is raised with the acquiring stack. A lease garbage-collected while still
    active is recovered by its pool in either mode; a debug lease adds where it was acquired
    to the report.
    """

    __slots__ = ("_acquired_at", "_ended_at", "_held", "_refs")

    def release(self) -> None:
        entry = self._end()
        self._return(entry)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None or self._held is None:
            # A failed body: its traceback still holds the callee frames that saw the
            # resource, so references cannot be judged; the usual rules apply.
            super().__exit__(exc_type, exc, tb)
            return
        self._return(self._end())

    def _return(self, entry: Entry[T]) -> None:
        error = self._refused(entry)
        if error is not None:
            raise error
        self._pool._put(entry)


class _AsyncOwner(Protocol):
    """What an asyncio lease needs from the pool it came from."""

    name: str
    discard_on_error: bool
    #: The lifecycle's ``abort_on`` (see :class:`_Owner`).
    _abort_on: policy.Aborts

    #: Giving back is nothing but the core's put (no reset, no health rule); else it is
    #: awaiting ``_put_slow``.
    _bare_put: bool

    #: The loop it belongs to, its core, and whether a lend needs nothing but a take.
    _loop: Any
    _core: Any
    _plain: bool

    async def _acquire_slow(self, timeout: Any, entry: Entry[Any] | None) -> Entry[Any]: ...

    async def _put_slow(self, entry: Entry[Any]) -> None: ...

    def _throw_away(self, entry: Entry[Any], reason: str = ...) -> None: ...

    async def _discard(self, entry: Entry[Any]) -> None: ...


async def _give_back(pool: _AsyncOwner, entry: Entry[Any]) -> None:
    """End an asyncio lease by giving its entry back for reuse: the core's put when that is
    all there is to do (the idle list's own ``append`` while quiet), else ``_put_slow``."""
    if pool._bare_put:
        put = pool._core.put_fast
        if put is not None:
            put(entry)
        else:
            pool._core.put_nowait(entry)
    else:
        await pool._put_slow(entry)


class _Pending:
    """An ``AsyncLease``'s entry before it is acquired."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<not acquired yet>"


_PENDING: Any = _Pending()


class AsyncLease(Generic[T]):
    """One resource borrowed from an asyncio pool (``AsyncFixedPool``, ``AsyncElasticPool``).

    ``pool.acquire()`` returns the lease before anything is acquired, so that one object
    serves both spellings: ``async with pool.acquire() as resource:`` acquires on entry and
    ends the lease on exit, and ``lease = await pool.acquire()`` acquires and hands over the
    lease, to end by ``await lease.release()`` or ``await lease.discard()`` (or with
    ``async with lease``).

    Ending rules are those of :class:`Lease`, with cancellation as the common abort: a body
    cancelled (directly, or by ``asyncio.timeout``/``wait_for`` around it), timed out or ended
    by an error in the lifecycle's ``abort_on`` destroys the resource, without waiting for an
    async ``destroy`` (it runs as the pool's own task), so the cancellation propagates at once.
    """

    __slots__ = ("_entry", "_pool", "_timeout")

    _pool: _AsyncOwner
    #: What ``acquire(timeout=...)`` was given; unset for the pool's own timeout.
    #: ``_PENDING`` until acquired, the entry while active, None once ended.
    _entry: Any
    _timeout: Any

    @property
    def resource(self) -> T:
        """The borrowed resource; ``LeaseError`` before it is acquired or once it has ended."""
        entry = self._entry
        if entry is None:
            raise self._ended("has ended")
        if entry is _PENDING:
            raise self._ended("is not acquired yet: await it, or use it with 'async with'")
        return entry.resource  # type: ignore[no-any-return]

    @property
    def active(self) -> bool:
        """True from acquisition until the lease is released or discarded."""
        return self._entry is not None and self._entry is not _PENDING

    def __await__(self) -> Generator[Any, None, AsyncLease[T]]:
        return self._acquire().__await__()

    async def _acquire(self) -> AsyncLease[T]:
        if self._entry is not _PENDING:
            raise self._ended("was acquired already")
        await self.__aenter__()
        return self

    async def release(self) -> None:
        """Give the resource back to be reset and reused. Ending a lease twice is an error."""
        await _give_back(self._pool, self._end())

    async def discard(self) -> None:
        """Give the resource back to be destroyed (it is broken, or its state is unknown)."""
        await self._pool._discard(self._end())

    def _end(self) -> Entry[T]:
        entry = self._entry
        if entry is None or entry is _PENDING:
            raise self._ended("has already ended" if entry is None else "is not acquired yet")
        self._entry = None
        return entry  # type: ignore[no-any-return]

    def _ended(self, what: str) -> LeaseError:
        return LeaseError(f"this lease from pool {self._pool.name!r} {what}{self._history()}")

    def _history(self) -> str:
        """Where the lease began and ended (known in debug mode only)."""
        return ""

    async def __aenter__(
        self, _pending: Any = _PENDING, _running_loop: Any = _get_running_loop
    ) -> T:
        # (The defaults are globals bound once: every caller's hot path reads them.)
        entry = self._entry
        if entry is not _pending:  # acquired by ``await`` already, or ended
            return self.resource
        pool = self._pool
        entry = None
        if _running_loop() is pool._loop:  # (else the slow path binds it, or refuses)
            try:
                entry = pool._core.take_nowait()
            except IndexError:  # none idle
                pass
            if entry is not None and pool._plain:  # the hot path: nothing to check
                entry.uses += 1
                self._entry = entry
                return entry.resource  # type: ignore[no-any-return]
        # (``_timeout`` is set only when the caller gave one: a store saved per acquire.)
        entry = await pool._acquire_slow(getattr(self, "_timeout", FROM_POOL), entry)
        self._entry = entry
        return entry.resource  # type: ignore[no-any-return]

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        entry = self._entry
        if entry is None:
            return  # ended by hand inside the block: nothing left to do
        self._entry = None
        pool = self._pool
        if exc_type is None:
            # (_give_back(), inline: this is the hot path, and a call frame is a tenth of it)
            if pool._bare_put:  # nothing to do but put: no Python call while quiet
                put = pool._core.put_fast
                if put is not None:
                    put(entry)
                else:
                    pool._core.put_nowait(entry)
            else:
                await pool._put_slow(entry)
        elif policy.discards(exc_type, pool.discard_on_error, pool._abort_on):
            # Not awaited: a cancelled task must not wait for an async destroy.
            pool._throw_away(entry, policy.retirement(exc_type, pool._abort_on))
        else:
            await pool._put_slow(entry)

    def __repr__(self) -> str:
        entry = self._entry
        state = "ended" if entry is None else "pending" if entry is _PENDING else "active"
        return f"<AsyncLease {state} from pool {self._pool.name!r}>"


class AsyncDebugLease(_Recorder, AsyncLease[T]):
    """The lease asyncio pools hand out while debug mode is on: as :class:`DebugLease`."""

    __slots__ = ("_acquired_at", "_ended_at", "_held", "_refs")

    async def release(self) -> None:
        await self._return(self._end())

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None or self._held is None:
            await super().__aexit__(exc_type, exc, tb)  # (see DebugLease.__exit__)
            return
        await self._return(self._end())

    async def _return(self, entry: Entry[T]) -> None:
        error = self._refused(entry)
        if error is not None:
            raise error
        await _give_back(self._pool, entry)
