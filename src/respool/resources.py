"""Ready-made lifecycles (placeholder: being written)."""

from __future__ import annotations

__all__ = ["BufferPool"]


class BufferPool:
    """Placeholder."""
