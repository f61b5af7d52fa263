"""WorkerPool (placeholder: being written)."""

from __future__ import annotations

__all__ = ["WorkerPool", "WorkerStats"]


class WorkerStats:
    """Placeholder."""


class WorkerPool:
    """Placeholder."""
