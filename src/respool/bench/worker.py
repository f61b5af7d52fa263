"""The worker benchmarks (placeholder until they are written)."""

from __future__ import annotations

__all__ = ["main"]


def main(quick: bool = False) -> int:
    """Print this suite's tables; quick trades precision for speed."""
    return 0
