"""The options of a worker pool, validated once for both shells (``WorkerPool`` and
``AsyncWorkerPool``): the same names, ranges and messages, and the same health rules."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable
from time import monotonic
from typing import Final, Generic, TypeVar

from respool import _validate
from respool._core.backoff import Retry
from respool._core.health import Rules
from respool._usage import Observer
from respool.lifecycle import Lifecycle, coerce

__all__ = ["DEFAULT_TIMEOUT", "SharedOptions", "WorkerOptions", "log_create_failure"]

log = logging.getLogger("respool")

T = TypeVar("T")

_ON_FULL: Final = ("block", "reject")
#: As on the free lists: a task never waits forever for a resource, a submit for room.
DEFAULT_TIMEOUT: Final = 30.0
_names = itertools.count(1)  # next() on it is atomic: safe for pools made in threads


class WorkerOptions(Generic[T]):
    """The constructor both worker pools share: it validates and stores the options, as
    attributes of the pool (documented on ``WorkerPool``), then has the shell build the rest
    (:meth:`_build`). *awaits*: the shell awaits callbacks (asyncio); otherwise an ``async
    def`` one is refused, naming the twin that takes it."""

    _awaits: bool = False

    lifecycle: Lifecycle[T]
    workers: int
    max_pending: int | None
    on_full: str
    timeout: float | None
    check_after: float
    max_uses: int | None
    #: The older name of ``max_uses``.
    max_tasks_per_resource: int | None
    max_lifetime: float | None
    keepalive: float | None
    name: str
    #: Records its use for ``stats().usage`` (``observe=True``).
    observe: bool
    _reject: bool

    def __init__(
        self,
        create: Lifecycle[T] | Callable[[], T | Awaitable[T]],
        workers: int = 4,
        *,
        max_pending: int | None = None,
        on_full: str = "block",
        timeout: float | None = DEFAULT_TIMEOUT,
        reset: Callable[[T], object] | None = None,
        check: Callable[[T], object] | None = None,
        destroy: Callable[[T], object] | None = None,
        check_after: float = 0.0,
        max_uses: int | None = None,
        max_lifetime: float | None = None,
        keepalive: float | None = None,
        max_tasks_per_resource: int | None = None,
        name: str | None = None,
        observe: bool = False,
    ) -> None:
        lifecycle: Lifecycle[T] = coerce(
            create,  # type: ignore[arg-type]  # (an async create is the asyncio shell's)
            reset=reset,
            check=check,
            destroy=destroy,
        )
        if not self._awaits:
            for field in ("create", "reset", "check", "destroy"):
                hint = "use AsyncWorkerPool for async callbacks"
                fn = getattr(lifecycle, field)
                _validate.synchronous(field, fn, pool="WorkerPool", hint=hint)
        self.lifecycle = lifecycle
        self.workers = _validate.integer("workers", workers, minimum=1)
        self.max_pending = _validate.optional_integer("max_pending", max_pending, minimum=1)
        self.on_full = _validate.choice("on_full", on_full, _ON_FULL)
        self.timeout = _validate.seconds("timeout", timeout)
        checked_after = _validate.seconds("check_after", check_after, allow_none=False)
        assert checked_after is not None
        self.check_after = checked_after
        if max_uses is not None and max_tasks_per_resource is not None:
            raise TypeError(
                "give max_uses or its alias max_tasks_per_resource, not both"
                f" (got max_uses={max_uses!r}, max_tasks_per_resource={max_tasks_per_resource!r})"
            )
        if max_tasks_per_resource is not None:
            uses = _validate.optional_integer(
                "max_tasks_per_resource", max_tasks_per_resource, minimum=1
            )
        else:
            uses = _validate.optional_integer("max_uses", max_uses, minimum=1)
        self.max_uses = uses
        self.max_tasks_per_resource = uses
        self.max_lifetime = _validate.positive_seconds("max_lifetime", max_lifetime)
        self.keepalive = _validate.positive_seconds("keepalive", keepalive)
        if name is None:
            name = f"{type(self).__name__}-{next(_names)}"
        self.name = _validate.text("name", name)
        self._reject = self.on_full == "reject"
        if not isinstance(observe, bool):
            raise TypeError(f"observe must be a bool, got {observe!r}")
        self.observe = observe
        rules = Rules(
            check_after=self.check_after,
            max_uses=self.max_uses,
            max_lifetime=self.max_lifetime,
            # A ping needs something to run: without a check, keepalive has no effect.
            keepalive=self.keepalive if lifecycle.check is not None else None,
        )
        self._build(rules)

    def _build(self, rules: Rules) -> None:
        """The shell's own state, once the options are stored (*rules*: the health rules
        for its resources)."""
        raise NotImplementedError

    def _cleans_up(self, rules: Rules) -> bool:
        """Is there anything to do around a task (reset, check, wear, observing)? An
        observing pool's workers take the general path, which reports each task's use."""
        lifecycle = self.lifecycle
        return bool(
            lifecycle.reset is not None
            or rules.wears
            or lifecycle.check is not None
            or self.observe
        )

    def _new_observer(self) -> Observer | None:
        """A fresh usage record when the pool observes (timed with ``time.monotonic``,
        which the workers read: an asyncio loop's ``time()`` is the same clock), else None."""
        return Observer(monotonic()) if self.observe else None


def log_create_failure(name: str, retry: Retry, exc: BaseException) -> None:
    """A worker's ``create`` failed: the first of a streak with its traceback, then one line
    per attempt (a create that fails for minutes must not flood the log)."""
    if retry.first:
        log.warning(
            "pool %r: create failed (%d in a row); next try in %.2f s",
            name,
            retry.failures,
            retry.delay,
            exc_info=exc,
        )
    else:
        log.warning(
            "pool %r: create failed (%d in a row: %r); next try in %.2f s",
            name,
            retry.failures,
            exc,
            retry.delay,
        )


class SharedOptions(Generic[T]):
    """What each worker pool's shared record (the state its workers reference, never the
    pool) holds of the options, the same in both shells; each shell's record adds its own
    queue, admission and synchronisation."""

    def __init__(
        self,
        lifecycle: Lifecycle[T],
        *,
        timeout: float | None,
        rules: Rules,
        name: str,
        cleanup: bool,
    ) -> None:
        self.lifecycle = lifecycle
        #: Which errors ending a task are aborts besides the policy's own (its ``abort_on``).
        self.abort_on = lifecycle.abort_on
        self.name = name
        self.timeout = timeout
        self.rules = rules
        #: A new worker's ``cleanup`` (see each shell's worker).
        self.cleanup = cleanup
        #: The usage record of an observing pool (set by the pool before its workers start;
        #: workers report each task to it), else None.
        self.observer: Observer | None = None
