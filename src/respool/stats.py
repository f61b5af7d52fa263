"""Point-in-time figures about a pool.

``PoolStats`` is frozen so a snapshot can be logged, compared or exported without the pool
changing it underneath. At every quiescent point (no call in progress) the counts obey
``created - destroyed == size == idle + in_use``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["BufferStats", "PoolStats", "Snapshot", "TransientStats", "Usage", "WorkerStats"]


class Snapshot:
    """Base of every pool's frozen stats dataclass (``PoolStats``, ``WorkerStats``,
    ``TransientStats``, ``BufferStats``): one way to export them all."""

    __slots__ = ()

    def as_dict(self: DataclassInstance) -> dict[str, object]:
        """The snapshot as a plain dict, for logs and metric exporters."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Usage(Snapshot):
    """How a pool has been used since it began observing (``observe=True``).

    The two questions that pick a strategy are answered here in numbers: how long a resource
    sits idle between two uses (*idle gaps*, compared with the interval between full garbage
    collections, which is when a :class:`~respool.TransientPool` lets go of what it caches),
    and how much the number of resources in use moves (*concurrency*, weighted by time: a
    level held for a second counts a thousand times a level held for a millisecond).
    :func:`respool.advise_from` turns them into a recommendation.

    What "a use" is depends on the pool: a lease (free lists), a task run by a worker
    (worker pools: the workers are what is in use), a ``get`` up to its ``put`` (transient).
    Percentiles of idle gaps come from a histogram with buckets a factor of two wide, so they
    are exact to within that factor; concurrency percentiles are exact.
    """

    #: Seconds since the pool began observing.
    observed: float
    #: Uses begun, and in progress now.
    uses: int
    in_use: int
    #: Uses that got a resource used before (the others got a new one), and the idle gap
    #: before those uses, in seconds: percentiles and longest (0.0 when there was none).
    reuses: int
    gap_p50: float
    gap_p90: float
    gap_p99: float
    gap_max: float
    #: The idle gaps as ``(upper bound in seconds, count)``, buckets a factor of two wide,
    #: empty buckets left out.
    gap_histogram: tuple[tuple[float, int], ...]
    #: Resources in use, weighted by time: the fewest and most seen, the mean, and the level
    #: the pool was at or below for that share of the time (``in_use_p10`` is the floor it
    #: rarely goes under; ``in_use_p99`` a high percentile that ignores brief spikes).
    in_use_min: int
    in_use_max: int
    in_use_mean: float
    in_use_p10: int
    in_use_p50: int
    in_use_p90: int
    in_use_p99: int
    #: The typical height of a burst: the median peak of the bursts, a burst being a run of
    #: timeline periods with more in use than the floor (``in_use_p10``); the floor itself
    #: when the number never rose above it.
    burst_peak: int
    #: Concurrency over time, as ``(seconds since observing began, fewest, most in use)``
    #: per period of ``timeline_step`` seconds (the step doubles as the observation grows, so
    #: the timeline stays short).
    timeline: tuple[tuple[float, int, int], ...]
    timeline_step: float
    #: Full (generation 2) garbage collections during the observation, and the mean
    #: interval between them in seconds, ``observed / full_collections`` (None when there was
    #: none: the interval is then longer than ``observed``).
    full_collections: int
    gc_interval: float | None

    @property
    def fluctuation(self) -> float:
        """How much the number in use moves, from 0.0 (a steady level) to 1.0: the spread
        between the high level (``in_use_p99``, what a fixed pool would be sized for) and the
        floor (``in_use_p10``), relative to the high level. Brief bursts count: a pool sized
        for them is idle the rest of the time."""
        if self.in_use_p99 <= 0:
            return 0.0
        return (self.in_use_p99 - self.in_use_p10) / self.in_use_p99

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Usage:
        """A ``Usage`` from what :meth:`as_dict` gave (read back from JSON, say, to advise on
        a production pool's record elsewhere: ``respool advise --usage FILE.json``)."""
        names = [f.name for f in fields(cls)]
        missing = [name for name in names if name not in data]
        if missing:
            raise ValueError(f"usage record lacks {', '.join(missing)}")
        values = {name: data[name] for name in names}
        values["gap_histogram"] = tuple(
            (float(top), int(count)) for top, count in data["gap_histogram"]
        )
        values["timeline"] = tuple(
            (float(at), int(low), int(high)) for at, low, high in data["timeline"]
        )
        return cls(**values)


@dataclass(frozen=True, slots=True)
class PoolStats(Snapshot):
    """A snapshot of one pool's state and lifetime counters."""

    name: str
    #: Live resources: idle + in use.
    size: int
    idle: int
    in_use: int
    #: Callers blocked in ``acquire`` right now.
    waiting: int
    #: Resources being created right now (a reserved slot, not yet live).
    creating: int
    created: int
    destroyed: int
    #: Successful acquires.
    acquires: int
    #: Acquires that gave up at their deadline (``PoolTimeout``).
    timeouts: int
    #: Acquires refused at once because ``max_waiting`` callers already waited (``PoolFull``).
    rejected: int
    create_errors: int
    reset_errors: int
    #: Resources found unviable by ``check`` (returned False or raised).
    check_failures: int
    destroy_errors: int
    leaks: int
    #: Times a queued caller was served (one acquire may wait more than once, e.g. when
    #: the resource it was handed fails its check), and how long those waits took in total
    #: and at most, in seconds.
    waits: int
    wait_time_total: float
    wait_time_max: float
    #: Resources retired, by reason: ``lifetime``, ``uses``, ``idle``, ``check``, ``drain``,
    #: ``leak``, ``error``, ``abort``, ``surplus``, ``close`` (every key present; they add up
    #: to ``destroyed``).
    retired: dict[str, int]
    #: Failed creates in a row by the pool's background filler (0: no failure streak).
    create_failures: int
    #: Acquires that took an idle resource while someone waited (``fairness="bounded"``
    #: allows it within ``fairness_window``), and the longest the oldest waiter had waited
    #: at such a moment, in seconds (never more than the window).
    overtakes: int
    overtaken_wait_max: float
    #: What an observing pool (``observe=True``) saw of its use; None when not observing.
    usage: Usage | None = None

    @property
    def wait_time_mean(self) -> float:
        """Mean duration of a wait, in seconds (0.0 when nobody waited)."""
        return self.wait_time_total / self.waits if self.waits else 0.0


@dataclass(frozen=True, slots=True)
class WorkerStats(Snapshot):
    """A snapshot of one ``WorkerPool``'s or ``AsyncWorkerPool``'s state and lifetime counters
    (a worker is a thread of the one, a task of the other's event loop).

    At every quiescent point (no call in progress, no task running):

    * ``submitted == completed + failed + cancelled + queued + busy`` — every accepted task is
      accounted for exactly once (``rejected`` and ``timeouts`` were never accepted);
    * ``created - destroyed == resources <= workers``;
    * ``busy + idle == workers``;
    * ``replaced == sum(retired.values())``.

    While work is in flight the figures are read without stopping the workers, so they may be
    a task apart from each other.
    """

    name: str
    #: Workers alive, threads or asyncio tasks (they stop at shutdown, or when ``resize``
    #: lowers their number).
    workers: int
    #: Workers holding a task: running it, or preparing a resource for it.
    busy: int
    idle: int
    #: Tasks accepted and not yet taken by a worker.
    queued: int
    #: Submitters blocked right now, waiting for room in the queue (``on_full="block"``).
    waiting: int
    #: Tasks accepted (futures handed out).
    submitted: int
    #: Tasks whose ``fn`` returned (the future holds its result).
    completed: int
    #: Tasks whose future holds an exception: ``fn`` raised, or no resource could be made for
    #: it in time.
    failed: int
    #: Tasks cancelled before they ran (by the caller, or by ``shutdown(cancel_pending=True)``),
    #: and, in an ``AsyncWorkerPool``, ``async def`` tasks cancelled while they ran: by their
    #: caller (the worker's resource is then replaced, counted in ``retired["abort"]``), or by
    #: a cancelled ``shutdown``.
    cancelled: int
    #: Submits refused at once because the queue was full (``on_full="reject"``: ``PoolFull``).
    rejected: int
    #: Submits that waited for room and gave up at their deadline (``PoolTimeout``).
    timeouts: int
    #: Live resources (one per worker that has one).
    resources: int
    created: int
    destroyed: int
    #: Resources destroyed to be replaced (the worker stays): the sum of ``retired``.
    replaced: int
    create_errors: int
    reset_errors: int
    #: Resources found unviable by ``check`` (returned False or raised), before a task or at a
    #: ``keepalive`` pass.
    check_failures: int
    destroy_errors: int
    #: Resources retired (destroyed and replaced), by reason, every key always present:
    #: ``lifetime`` (past ``max_lifetime``), ``uses`` (``max_uses`` tasks run), ``idle``
    #: (never, for a worker pool: a worker's resource is never surplus), ``check`` (``check``
    #: said no), ``drain`` (made before ``drain()``), ``error`` (``reset`` raised), ``abort``
    #: (a task cut short: ended by a non-``Exception`` such as a cancellation, or by a
    #: ``TimeoutError`` that is not a ``PoolTimeout``). Resources destroyed because their
    #: worker stopped (shutdown, ``resize``) are not retirements.
    retired: dict[str, int]
    #: The longest current streak of failed ``create`` calls over the workers (0: every
    #: worker's last attempt worked), and the seconds until the soonest next attempt of a
    #: failing worker (0.0 when none is failing).
    create_failures: int
    create_retry_in: float
    #: What an observing pool (``observe=True``) saw of its use; None when not observing.
    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class TransientStats(Snapshot):
    """A snapshot of one ``TransientPool``'s counters.

    ``gets == hits + misses``. ``puts`` counts every call to ``put`` that was not refused as a
    usage error (debug mode's second ``put`` of the same object), including those whose
    object was dropped (``dropped_reset``, ``dropped_accept``). Every object that entered the
    cache is eventually a hit, still ``idle``, or dropped (``dropped_age``, ``dropped_check``,
    ``dropped_gc``, ``cleared``). While other threads run the figures are approximate: they are
    read without a lock, one cache after another.
    """

    name: str
    #: Objects cached right now, in every thread's cache and the shared store.
    idle: int
    gets: int
    #: Gets served from a cache (the caller's own, the shared store, another thread's).
    hits: int
    #: Gets that had to call ``new()``.
    misses: int
    puts: int
    #: Objects dropped because ``reset`` raised (``StillInUse`` included).
    dropped_reset: int
    #: Objects dropped because ``accept`` returned false or raised.
    dropped_accept: int
    #: Objects dropped because they had been idle longer than ``max_idle_time``.
    dropped_age: int
    #: Objects dropped by the garbage collector's rotation (idle through two full collections).
    dropped_gc: int
    #: Objects dropped at ``get`` because the lifecycle's ``check`` said they were not viable.
    dropped_check: int
    #: Objects dropped by ``clear()``.
    cleared: int
    #: Objects given up inside a ``borrow()`` block aborted by a non-``Exception``, a
    #: ``TimeoutError`` (not a ``PoolTimeout``) or an error the lifecycle lists in ``abort_on``.
    aborted: int
    #: Calls to the lifecycle's ``destroy`` that raised.
    destroy_errors: int
    #: What an observing pool (``observe=True``) saw of its use; None when not observing.
    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class BufferStats(Snapshot):
    """A snapshot of a :class:`BufferPool`: totals, and one ``TransientStats`` per class."""

    name: str
    #: Buffers cached now, and their total size in bytes.
    idle: int
    idle_bytes: int
    gets: int
    hits: int
    misses: int
    puts: int
    #: Gets for more than ``max_size`` bytes: allocated, never pooled.
    oversize: int
    #: Buffers put back whose length is not a size class (too large, or foreign): dropped.
    dropped_size: int
    #: Buffers dropped by the garbage collector's rotation or ``max_idle_time``.
    dropped_gc: int
    dropped_age: int
    #: Buffers refused at ``put`` (still exported, or resized): dropped.
    dropped_reset: int
    #: Buffers given up inside a ``borrow()`` block aborted by a non-``Exception`` or a
    #: ``TimeoutError`` (not a ``PoolTimeout``).
    aborted: int
    #: Per size class, for classes that have been used.
    by_size: dict[int, TransientStats]
