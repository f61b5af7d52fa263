"""Debug mode: catch *not quite done* and lost leases, at a price paid only when it is on.

Switched with :func:`respool.debug` or by starting Python with ``RESPOOL_DEBUG=1``. Code
elsewhere tests the module global :data:`enabled` (one attribute load) and does its extra work
only when it is true:

* leases remember the stack that acquired them and show it in their errors;
* a resource given back while still referenced from outside the pool raises ``StillInUse``;
* buffers are filled with :data:`POISON` when given back, so a use after return shows.
"""

from __future__ import annotations

import os
from typing import Final

__all__ = ["POISON", "debug", "enabled", "poison", "set_enabled"]

#: The byte returned buffers are filled with in debug mode (0xDE: "dead").
POISON: Final = 0xDE

_TRUE: Final = ("1", "true", "yes", "on")

#: True while debug mode is on. Read it as ``_debug.enabled`` each time (it can change).
enabled: bool = os.environ.get("RESPOOL_DEBUG", "").strip().lower() in _TRUE


def set_enabled(on: bool) -> None:
    """Turn debug mode on or off for the whole process."""
    global enabled
    enabled = on


def poison(buffer: bytearray | memoryview) -> None:
    """Overwrite *buffer* with :data:`POISON` so that reading it after return is obvious."""
    view = memoryview(buffer).cast("B")
    with view:
        view[:] = bytes([POISON]) * len(view)


def debug(on: bool | None = None) -> bool:
    """Turn debug mode on (``True``) or off (``False``); return whether it is now on.

    ``respool.debug()`` with no argument only reports. Off by default, or on when the process
    starts with ``RESPOOL_DEBUG=1``. Meant for tests and development: it makes every acquire
    record a stack, which costs microseconds.
    """
    if on is not None:
        if not isinstance(on, bool):
            raise TypeError(f"debug() takes True, False or None, got {on!r}")
        set_enabled(on)
    return enabled
