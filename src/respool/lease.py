"""Leases: the caller's handle on one borrowed resource.

A :class:`Lease` is created per acquire and ends exactly once, by ``release()`` (clean it and
reuse it), ``discard()`` (destroy it) or the end of its ``with`` block. After that it refuses
every use with :class:`~respool.errors.LeaseError`, so a stale handle can never reach a
resource that another caller now holds.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from respool.errors import LeaseError

if TYPE_CHECKING:
    from respool._core.free_list import Entry

__all__ = ["Lease"]

T = TypeVar("T")


class _Owner(Protocol):
    """What a lease needs from the pool it came from."""

    name: str
    discard_on_error: bool

    def _put(self, entry: Entry[Any]) -> None: ...

    def _throw_away(self, entry: Entry[Any]) -> None: ...


class Lease(Generic[T]):
    """One borrowed resource. Use it as a context manager, or end it by hand.

    Ending rules, the same for every pool:

    * ``with`` body completes: the resource is reset and reused;
    * body raises an ``Exception``: reset and reused, or destroyed with ``discard_on_error``;
    * body raises any other ``BaseException`` (cancellation, ``KeyboardInterrupt``,
      ``SystemExit``): destroyed, because it may be mid-operation (*abort means discard*).

    The body's exception always propagates unchanged.
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
            raise LeaseError(f"this lease from pool {self._pool.name!r} has ended")
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
            raise LeaseError(f"this lease from pool {self._pool.name!r} has already ended")
        self._entry = None
        return entry

    def __enter__(self) -> T:
        entry = self._entry  # not via the property: this is on every caller's hot path
        if entry is None:
            raise LeaseError(f"this lease from pool {self._pool.name!r} has ended")
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
        if exc_type is None or (
            issubclass(exc_type, Exception) and not self._pool.discard_on_error
        ):
            self._pool._put(entry)
        else:
            self._pool._throw_away(entry)

    def __repr__(self) -> str:
        state = "active" if self._entry is not None else "ended"
        return f"<Lease {state} from pool {self._pool.name!r}>"
