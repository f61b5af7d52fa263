"""Argument checks shared by every pool constructor.

Bad configuration must fail at construction with a message that names the parameter and the
accepted range, so these helpers take the parameter's name first and never guess it.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def integer(name: str, value: object, *, minimum: int) -> int:
    """Return *value* if it is an ``int`` of at least *minimum*."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def optional_integer(name: str, value: object, *, minimum: int) -> int | None:
    """Like :func:`integer`, but ``None`` (no limit) is accepted too."""
    if value is None:
        return None
    return integer(name, value, minimum=minimum)


def seconds(name: str, value: object, *, allow_none: bool = True) -> float | None:
    """Return a duration in seconds: a finite number >= 0, or ``None`` meaning *forever*."""
    if value is None:
        if allow_none:
            return None
        raise TypeError(f"{name} must be a number of seconds >= 0, got None")
    if isinstance(value, bool) or not isinstance(value, int | float):
        accepted = "a number of seconds >= 0 or None" if allow_none else "a number of seconds >= 0"
        raise TypeError(f"{name} must be {accepted}, got {value!r}")
    if math.isnan(value) or value < 0:
        raise ValueError(f"{name} must be a number of seconds >= 0, got {value!r}")
    return float(value)


def positive_seconds(name: str, value: object) -> float | None:
    """Return a period in seconds: a finite number > 0, or ``None`` meaning *never* (zero
    would mean "at once, all the time": never what a caller of these options wants)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds > 0 or None, got {value!r}")
    if not (0 < value < math.inf):
        raise ValueError(f"{name} must be a finite number of seconds > 0, got {value!r}")
    return float(value)


def choice(name: str, value: object, accepted: tuple[str, ...]) -> str:
    """Return *value* if it is one of the *accepted* strings."""
    if not isinstance(value, str) or value not in accepted:
        options = ", ".join(repr(a) for a in accepted)
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


def optional_callable(name: str, value: T | None) -> T | None:
    """Return *value* if it is callable or ``None``."""
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable or None, got {value!r}")
    return value


def text(name: str, value: object) -> str:
    """Return *value* if it is a string."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {value!r}")
    return value


def required_callable(name: str, value: Callable[..., Any]) -> Callable[..., Any]:
    """Return *value* if it is callable."""
    if not callable(value):
        raise TypeError(f"{name} must be callable, got {value!r}")
    return value


def synchronous(name: str, value: T, *, pool: str, hint: str) -> T:
    """Return *value* unless it is an ``async def`` function: a pool that calls its
    callbacks inline would get a coroutine that never runs (an unreset object, a "resource"
    that is a coroutine). *hint* says what to do instead."""
    if value is not None and inspect.iscoroutinefunction(value):
        raise TypeError(
            f"{name} is an async function, but {pool} calls its callbacks without awaiting"
            f" them; {hint}"
        )
    return value
