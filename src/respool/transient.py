"""TransientPool (placeholder: being written)."""

from __future__ import annotations

__all__ = ["TransientPool", "TransientStats"]


class TransientStats:
    """Placeholder."""


class TransientPool:
    """Placeholder."""
