"""Debug mode: catch *not quite done* and lost leases, at a price paid only when it is on.

Switched with :func:`respool.debug` or by starting Python with ``RESPOOL_DEBUG=1``. Code
elsewhere tests the module global :data:`enabled` (one attribute load) and does its extra work
only when it is true:

* leases remember the stack that acquired them and show it in their errors, and in the report
  of a lease lost without being released;
* a resource given back while still referenced from outside the pool raises ``StillInUse``;
* a second ``TransientPool.put`` of an object already in the pool raises ``LeaseError`` with
  the stack of the first;
* buffers are filled with :data:`POISON` when given back, so a use after return shows.
"""

from __future__ import annotations

import inspect
import os
import sys
import traceback
from collections.abc import Callable
from types import FrameType
from typing import Final

__all__ = [
    "POISON",
    "capture_stack",
    "debug",
    "enabled",
    "format_stack",
    "poison",
    "references",
    "set_enabled",
    "subscribe",
    "user_frame",
]

#: The byte returned buffers are filled with in debug mode (0xDE: "dead").
POISON: Final = 0xDE

_TRUE: Final = ("1", "true", "yes", "on")
#: Frames from files under this directory are the library's own, left out of reported stacks.
_PACKAGE_DIR: Final = os.path.dirname(os.path.abspath(__file__)) + os.sep
#: How many of the caller's frames a reported stack keeps.
_STACK_DEPTH: Final = 12
# Before 3.13, reading a function frame's f_locals copies every local into a dict kept on the
# frame: each local then holds the object twice (the variable and that copy).
_LOCALS_HELD_TWICE: Final = sys.version_info < (3, 13)

#: True while debug mode is on. Read it as ``_debug.enabled`` each time (it can change).
enabled: bool = os.environ.get("RESPOOL_DEBUG", "").strip().lower() in _TRUE


_subscribers: list[Callable[[bool], None]] = []


def subscribe(callback: Callable[[bool], None]) -> None:
    """Call *callback* with the new state whenever debug mode is switched, and once now.

    Hot paths use this to swap in their debug variant when it is switched on, instead of
    testing a flag on every call: off must cost nothing.
    """
    _subscribers.append(callback)
    callback(enabled)


def set_enabled(on: bool) -> None:
    """Turn debug mode on or off for the whole process."""
    global enabled
    enabled = on
    for callback in _subscribers:
        callback(on)


def _is_ours(frame: FrameType) -> bool:
    return frame.f_code.co_filename.startswith(_PACKAGE_DIR)


def user_frame() -> FrameType | None:
    """The innermost frame of the calling stack that is not respool's own code."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and _is_ours(frame):
        frame = frame.f_back
    return frame


def capture_stack() -> traceback.StackSummary:
    """The caller's stack without respool's frames: where a lease began or ended.

    Source lines are looked up only if the stack is ever shown (:func:`format_stack`), so
    capturing costs a frame walk, not file reads.
    """
    frame = user_frame()
    if frame is None:
        return traceback.StackSummary()
    stack = traceback.StackSummary.extract(
        traceback.walk_stack(frame), limit=_STACK_DEPTH, lookup_lines=False
    )
    stack.reverse()  # innermost last, as tracebacks print
    return stack


def format_stack(stack: traceback.StackSummary) -> str:
    """A captured stack as text, innermost call last."""
    if not stack:
        return "  (no caller outside respool)\n"
    return "".join(stack.format())


def references(obj: object) -> int:
    """How many references hold *obj*, not counting the calling user frame's own locals.

    Two calls made the same way (same call depth inside respool) can be compared: a rise
    between the one made when a resource was lent and the one made when it comes back means
    something outside the pool still holds it (*not quite done*). The user's locals are left
    out on both sides: a leftover ``as`` target from the previous ``with`` block, or the
    current one about to go out of scope, is not a holder. CPython only (reference counts);
    elsewhere it returns 0, so nothing is ever reported.
    """
    if not hasattr(sys, "getrefcount"):  # pragma: no cover - PyPy and friends
        return 0
    frame = user_frame()
    locals_ = 0
    if frame is not None:
        values = frame.f_locals.values()
        locals_ = sum(1 for value in values if value is obj)
        if _LOCALS_HELD_TWICE and frame.f_code.co_flags & inspect.CO_OPTIMIZED:
            locals_ *= 2
        del values
    # Counted after f_locals was read: on 3.11/3.12 that refreshes the frame's copy of its
    # locals, so the count below and `locals_` describe the same moment.
    return sys.getrefcount(obj) - locals_


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


def poison(buffer: bytearray | memoryview) -> None:
    """Overwrite *buffer* with :data:`POISON` so that reading it after return is obvious.

    Fills by doubling (one byte, then copies of what is already filled), so poisoning an
    8 MiB buffer allocates nothing.
    """
    with memoryview(buffer) as view, view.cast("B") as octets:
        size = len(octets)
        if not size:
            return
        octets[0] = POISON
        filled = 1
        while filled < size:
            step = min(filled, size - filled)
            octets[filled : filled + step] = octets[:step]
            filled += step
