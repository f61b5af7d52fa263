"""Ready-made lifecycles for real resources, each usable by every pool.

Modules here may need optional packages (drivers), installed as extras; nothing in respool's
core imports them. ``respool.contrib.sockets`` needs only the standard library.
"""

from __future__ import annotations

__all__: list[str] = []


def _missing(module: str, extra: str, error: ImportError) -> ImportError:
    """The error for ``respool.contrib.<module>`` imported without its driver: what to
    install, and what Python said (a driver can also be present but broken)."""
    return ImportError(
        f"respool.contrib.{module} needs its driver: pip install 'respool[{extra}]' ({error})",
        name=error.name,
    )
