"""Printing helpers shared by the tour's sections: plain text that reads well at 80 columns."""

from __future__ import annotations

import sys
import textwrap
from typing import Final

__all__ = ["WIDTH", "heading", "micro", "print_wrapped"]

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
