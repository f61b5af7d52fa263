"""Fork safety: a child process must never reuse, or destroy, its parent's resources.

A socket or database connection inherited through ``os.fork()`` is shared with the parent;
using it from both sides interleaves their traffic. Every pool registers here, and right after
a fork the child asks each one to forget what it held (without destroying it: the parent still
owns it) and to start afresh.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Protocol


class _ForkAware(Protocol):
    def _after_fork_in_child(self) -> None: ...


_pools: weakref.WeakSet[_ForkAware] = weakref.WeakSet()
_registry_lock = threading.Lock()


def register(pool: _ForkAware) -> None:
    """Have *pool* reset itself in any child forked from now on."""
    with _registry_lock:
        _pools.add(pool)


def _reset_in_child() -> None:
    global _registry_lock
    # The lock may have been held by a thread that does not exist in the child.
    _registry_lock = threading.Lock()
    for pool in list(_pools):
        pool._after_fork_in_child()


if hasattr(os, "register_at_fork"):  # pragma: no branch - absent only on Windows
    os.register_at_fork(after_in_child=_reset_in_child)
