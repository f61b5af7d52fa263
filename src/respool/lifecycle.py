"""One lifecycle for every strategy: prepare, use, prepare for reuse, clean up.

A :class:`Lifecycle` bundles the four callbacks a pool needs to manage a resource it knows
nothing else about. Pools accept either a ``Lifecycle`` or a bare ``create`` callable plus the
keywords ``reset=``, ``check=`` and ``destroy=``; :func:`coerce` turns both spellings into one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from respool import _validate

__all__ = ["Lifecycle"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Lifecycle(Generic[T]):
    """How to make, clean, test and dispose of one kind of resource.

    - ``create()`` makes a new resource.
    - ``reset(r)`` makes a returned resource indistinguishable from a new one (*not quite
      clean*). Raising means it cannot be cleaned: the pool destroys it.
    - ``check(r)`` says whether it is still viable (*not quite there anymore*). ``False`` or
      raising: the pool destroys it and uses or creates another.
    - ``destroy(r)`` releases what garbage collection cannot. Its errors are counted and
      logged, never raised into an unrelated caller.
    """

    create: Callable[[], T]
    reset: Callable[[T], object] | None = None
    check: Callable[[T], object] | None = None
    destroy: Callable[[T], object] | None = None

    def __post_init__(self) -> None:
        _validate.required_callable("create", self.create)
        _validate.optional_callable("reset", self.reset)
        _validate.optional_callable("check", self.check)
        _validate.optional_callable("destroy", self.destroy)


def coerce(
    create: Lifecycle[T] | Callable[[], T],
    *,
    reset: Callable[[T], object] | None = None,
    check: Callable[[T], object] | None = None,
    destroy: Callable[[T], object] | None = None,
) -> Lifecycle[T]:
    """Merge a ``Lifecycle`` or bare ``create`` with the keyword callbacks into one Lifecycle.

    A keyword may fill a callback the Lifecycle leaves out; naming one twice is ambiguous, so
    it raises ``TypeError`` rather than silently preferring either.
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
        )
    if not callable(create):
        raise TypeError(f"create must be a Lifecycle or a callable, got {create!r}")
    return Lifecycle(create, reset=reset, check=check, destroy=destroy)
