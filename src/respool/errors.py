"""The exceptions respool raises.

Every error derives from :class:`PoolError`, so ``except respool.PoolError`` catches anything
the library itself decided to raise. ``PoolTimeout`` is also a :class:`TimeoutError`, so code
written against the standard library's notion of a timeout keeps working.
"""

from __future__ import annotations

__all__ = [
    "AdviceError",
    "LeaseError",
    "PoolClosed",
    "PoolError",
    "PoolFull",
    "PoolTimeout",
    "StillInUse",
]


class PoolError(Exception):
    """Base class of every error respool raises on its own account."""


class PoolTimeout(PoolError, TimeoutError):
    """No resource became available before the acquire deadline."""


class PoolClosed(PoolError):
    """The pool was closed: it lends nothing more."""


class PoolFull(PoolError):
    """The pool refused to queue another caller (``max_waiting`` reached)."""


class LeaseError(PoolError):
    """A lease was used after it ended, ended twice, or handed to a pool it did not come from."""


class StillInUse(LeaseError):
    """A returned resource is still referenced elsewhere (the *not quite done* pitfall)."""


class AdviceError(PoolError):
    """The advisor could not measure the resource: ``create``, ``use``, ``reset`` or
    ``destroy`` raised, ``create`` returned None, or a call did not return within the budget.
    The message says which, and the original error is chained."""
