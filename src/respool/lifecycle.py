"""One lifecycle for every strategy: prepare, use, prepare for reuse, clean up.

A :class:`Lifecycle` bundles the four callbacks a pool needs to manage a resource it knows
nothing else about, and the one fact about its errors that the pool cannot guess
(``abort_on``). Pools accept either a ``Lifecycle`` or a bare ``create`` callable plus the
keywords ``reset=``, ``check=`` and ``destroy=``; :func:`coerce` turns both spellings into one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from respool import _validate

__all__ = ["Lifecycle"]

T = TypeVar("T")

#: Exception classes, as ``except`` and ``issubclass`` take them.
Aborts = tuple[type[BaseException], ...]


def _exception_classes(name: str, value: object) -> Aborts:
    """Return *value* as a tuple of exception classes: one class, or a tuple of them (the
    forms ``except`` accepts). Anything else is a ``TypeError`` naming *name*."""
    if isinstance(value, type) and issubclass(value, BaseException):
        return (value,)
    if isinstance(value, tuple) and all(
        isinstance(c, type) and issubclass(c, BaseException) for c in value
    ):
        return value
    raise TypeError(
        f"{name} must be an exception class or a tuple of exception classes, got {value!r}"
    )


@dataclass(frozen=True, slots=True, init=False)
class Lifecycle(Generic[T]):
    """How to make, clean, test and dispose of one kind of resource.

    - ``create()`` makes a new resource.
    - ``reset(r)`` makes a returned resource indistinguishable from a new one (*not quite
      clean*). Raising means it cannot be cleaned: the pool destroys it.
    - ``check(r)`` says whether it is still viable (*not quite there anymore*). ``False`` or
      raising: the pool destroys it and uses or creates another.
    - ``destroy(r)`` releases what garbage collection cannot. Its errors are counted and
      logged, never raised into an unrelated caller.
    - ``abort_on``: the exception classes (one, or a tuple) that, ending a use of the
      resource, mean the use was cut short mid-operation, as a ``TimeoutError`` does. A use
      that ends with one is an *abort*: the resource is destroyed (``retired["abort"]``),
      never reset and reused. Why here: the pool cannot know a driver's errors (the core
      imports no driver), and only whoever knows the resource knows which of them leave it
      half-way through something, with a reply still in flight that ``reset`` cannot see yet
      (redis-py's ``redis.exceptions.TimeoutError`` is a ``RedisError``, not a
      ``TimeoutError``). A pool's own errors (``PoolTimeout``...) never count, even when a
      class listed here covers them: they say the pool had nothing to lend, not that a use
      was interrupted. Cancellation, ``KeyboardInterrupt`` and ``TimeoutError`` are aborts
      whatever this says.
    """

    create: Callable[[], T]
    reset: Callable[[T], object] | None
    check: Callable[[T], object] | None
    destroy: Callable[[T], object] | None
    abort_on: Aborts

    # Written out (not the dataclass's) so that ``abort_on`` may be one class, stored as a
    # tuple: the pools then read one form.
    def __init__(
        self,
        create: Callable[[], T],
        reset: Callable[[T], object] | None = None,
        check: Callable[[T], object] | None = None,
        destroy: Callable[[T], object] | None = None,
        *,
        abort_on: type[BaseException] | Aborts = (),
    ) -> None:
        _validate.required_callable("create", create)
        _validate.optional_callable("reset", reset)
        _validate.optional_callable("check", check)
        _validate.optional_callable("destroy", destroy)
        aborts = _exception_classes("abort_on", abort_on)
        setattr_ = object.__setattr__  # (frozen: the dataclass's own __init__ does the same)
        setattr_(self, "create", create)
        setattr_(self, "reset", reset)
        setattr_(self, "check", check)
        setattr_(self, "destroy", destroy)
        setattr_(self, "abort_on", aborts)


def coerce(
    create: Lifecycle[T] | Callable[[], T],
    *,
    reset: Callable[[T], object] | None = None,
    check: Callable[[T], object] | None = None,
    destroy: Callable[[T], object] | None = None,
) -> Lifecycle[T]:
    """Merge a ``Lifecycle`` or bare ``create`` with the keyword callbacks into one Lifecycle.

    A keyword may fill a callback the Lifecycle leaves out; naming one twice is ambiguous, so
    it raises ``TypeError`` rather than silently preferring either. The Lifecycle's
    ``abort_on`` is kept (it has no keyword: it belongs with the resource's callbacks).
    """
    if isinstance(create, Lifecycle):
        given = {"reset": reset, "check": check, "destroy": destroy}
        for name, value in given.items():
            if value is not None and getattr(create, name) is not None:
                raise TypeError(
                    f"{name} is given both in the Lifecycle and as a keyword; pass it once"
                )
        return Lifecycle(
            create.create,
            reset=create.reset if reset is None else reset,
            check=create.check if check is None else check,
            destroy=create.destroy if destroy is None else destroy,
            abort_on=create.abort_on,
        )
    if not callable(create):
        raise TypeError(f"create must be a Lifecycle or a callable, got {create!r}")
    return Lifecycle(create, reset=reset, check=check, destroy=destroy)
