"""Point-in-time figures about a pool.

``PoolStats`` is frozen so a snapshot can be logged, compared or exported without the pool
changing it underneath. At every quiescent point (no call in progress) the counts obey
``created - destroyed == size == idle + in_use``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["PoolStats", "Snapshot"]


class Snapshot:
    """Base of every pool's frozen stats dataclass (``PoolStats``, ``WorkerStats``,
    ``TransientStats``, ``BufferStats``): one way to export them all."""

    __slots__ = ()

    def as_dict(self: DataclassInstance) -> dict[str, object]:
        """The snapshot as a plain dict, for logs and metric exporters."""
        return asdict(self)


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

    @property
    def wait_time_mean(self) -> float:
        """Mean duration of a wait, in seconds (0.0 when nobody waited)."""
        return self.wait_time_total / self.waits if self.waits else 0.0
