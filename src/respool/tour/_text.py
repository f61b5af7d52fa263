"""Printing helpers shared by the tour's sections: plain text that reads well at 80 columns."""

from __future__ import annotations

import sys
import textwrap
from typing import Final

__all__ = ["WIDTH", "compared", "heading", "micro", "print_wrapped", "threads_label"]

#: Width of the wrapped prose, so the output reads well in an 80-column terminal.
WIDTH: Final = 79


def micro() -> str:
    """The unit "µs", or "us" where the terminal's encoding cannot show the micro sign."""
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "µ".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return "us"
    return "µs"


def heading(title: str) -> None:
    """An underlined title: structure that survives any terminal, no colours needed."""
    print()
    print(title)
    print("-" * len(title))


def print_wrapped(text: str, first: str, rest: str | None = None) -> None:
    """Prose built from measured figures has no fixed length, so it is wrapped at print."""
    print(textwrap.fill(text, width=WIDTH, initial_indent=first, subsequent_indent=rest or first))


def threads_label(threads: int) -> str:
    """Column and summary label for a workload."""
    return "1 thread" if threads == 1 else f"{threads} threads"


def compared(seconds: float, baseline: float) -> str:
    """How *seconds* compares with *baseline*, as a predicate nobody has to invert.

    "took 1.4x less time" makes the reader divide; "was 1.4x faster than" and "took 1.4x as
    long as" do not. The figure is rounded once, here, and the words are chosen on that
    rounded figure, so a tie reads "was as fast as" rather than "was 1.0x faster than".
    """
    if seconds <= 0 or baseline <= 0:
        raise ValueError(f"times must be positive, got {seconds} and {baseline}")
    faster = round(baseline / seconds, 1)
    slower = round(seconds / baseline, 1)
    if faster > 1.0:
        return f"was {faster:.1f}x faster than"
    if slower > 1.0:
        return f"took {slower:.1f}x as long as"
    return "was as fast as"
