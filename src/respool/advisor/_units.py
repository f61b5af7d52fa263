"""Durations in words, for the advisor's reasons and report."""

from __future__ import annotations

__all__ = ["duration"]


def duration(seconds: float) -> str:
    """*seconds* with a unit that keeps two or three significant digits (``µs``, or ``us``
    where the terminal cannot show the micro sign)."""
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    from respool.tour._text import micro

    us = seconds * 1e6
    return f"{us:.2f} {micro()}" if us < 10 else f"{us:.1f} {micro()}"
