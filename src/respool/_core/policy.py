"""Policies every pool applies the same way, decided here once.

*Abort means discard.* A lease, a borrowed object or a worker's task that ends by a
``BaseException`` that is not an ``Exception`` (task cancellation, ``KeyboardInterrupt``,
``SystemExit``) was cut short mid-operation: its resource may hold an unread reply or a
half-written record, so it is destroyed, never reused. So was one that ends by a
``TimeoutError`` (``asyncio.timeout``, ``wait_for``, a socket timeout): the operation that timed
out was abandoned half-way, and its reply may still arrive (the redis-py cancellation bug,
CVE-2023-28858). So, too, was one that ends by an exception of a class the resource's
lifecycle names in ``abort_on``: a driver's own timeout that is not a ``TimeoutError``
(redis-py's is a ``RedisError``); the pool cannot know those, the lifecycle does, and each
shell hands its tuple to these functions. A pool's own error (``PoolTimeout``, a
``TimeoutError``; or one that ``abort_on`` covers) is the exception: it says another pool had
nothing to lend, not that this resource was interrupted. Any other ``Exception`` leaves the
resource in a known state, so it is reset and reused, unless the pool was told
``discard_on_error``. A clean end resets and reuses.

*A failing callback.* ``create``, ``reset``, ``check`` and ``destroy`` are user code and may
raise anything. The pool first puts its own state right (the resource is destroyed or its slot
given back, the failure counted), then:

* an ``Exception`` is logged and never raised into an unrelated caller (a ``create`` made for
  the caller's own acquire is the exception: its error is the caller's answer);
* anything else (``KeyboardInterrupt``, ``SystemExit``, cancellation) is re-raised in the
  caller's thread, because swallowing an interrupt is worse than any error. A pool's own
  thread (a worker, the background filler) has no caller: there it is logged like an
  ``Exception`` and the thread carries on, so the pool never loses a worker.
* ``StillInUse`` from ``reset`` is the caller's bug (it gave back a resource still in use), so
  it reaches whoever gave the resource back, after the resource is destroyed.
"""

from __future__ import annotations

from respool._core.health import ABORT, ERROR
from respool.errors import PoolError, StillInUse

__all__ = ["Aborts", "aborted", "discards", "reaches_caller", "retirement"]


#: Exception classes that, besides ``TimeoutError``, mean a use was cut short: a lifecycle's
#: ``abort_on`` (empty: none).
Aborts = tuple[type[BaseException], ...]


def aborted(exc_type: type[BaseException], abort_on: Aborts = ()) -> bool:
    """Was the work that ended with *exc_type* cut short mid-operation (see above)?
    *abort_on*: the resource's own such errors (its lifecycle's ``abort_on``)."""
    if not issubclass(exc_type, Exception):
        return True
    if issubclass(exc_type, PoolError):
        return False
    # (Two tests, not one issubclass on a tuple built per call.)
    return issubclass(exc_type, TimeoutError) or issubclass(exc_type, abort_on)


def discards(
    exc_type: type[BaseException] | None, discard_on_error: bool = False, abort_on: Aborts = ()
) -> bool:
    """Must a resource whose use ended with *exc_type* (None: cleanly) be destroyed?"""
    if exc_type is None:
        return False
    return discard_on_error or aborted(exc_type, abort_on)


def retirement(exc_type: type[BaseException], abort_on: Aborts = ()) -> str:
    """Why a resource discarded after *exc_type* is retired: ``abort`` or ``error``."""
    return ABORT if aborted(exc_type, abort_on) else ERROR


def reaches_caller(exc: BaseException, *, in_caller: bool = True) -> bool:
    """Once the pool is consistent again, is a callback's *exc* re-raised?

    *in_caller*: the callback ran in a caller's thread, not in one of the pool's own.
    """
    if not in_caller:
        return False
    return isinstance(exc, StillInUse) or not isinstance(exc, Exception)
