"""The tour's transient section (placeholder until it is written)."""

from __future__ import annotations

__all__ = ["run"]


def run(quick: bool) -> str:
    """Print the section; return one summary sentence built from its measurements."""
    return "(transient section not written yet)"
