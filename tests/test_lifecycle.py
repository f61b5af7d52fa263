"""Lifecycle: the four callbacks, validated, and merged with keyword callbacks."""

from __future__ import annotations

import dataclasses

import pytest

import respool
from respool.lifecycle import coerce


def test_lifecycle_is_frozen_and_validated() -> None:
    """A Lifecycle cannot be changed, and refuses callbacks that are not callable."""
    lifecycle = respool.Lifecycle(list)
    with pytest.raises(dataclasses.FrozenInstanceError):
        lifecycle.reset = print  # type: ignore[misc]
    with pytest.raises(TypeError, match="create"):
        respool.Lifecycle("not callable")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="destroy"):
        respool.Lifecycle(list, destroy=3)  # type: ignore[arg-type]


def test_coerce_wraps_a_bare_create() -> None:
    """A bare callable becomes a Lifecycle with the keyword callbacks."""
    lifecycle = coerce(list, reset=list.clear)
    assert lifecycle.create is list
    assert lifecycle.reset is list.clear
    assert lifecycle.check is None


def test_coerce_fills_gaps_and_refuses_duplicates() -> None:
    """Keywords add missing callbacks to a Lifecycle; naming one twice is a TypeError."""
    base = respool.Lifecycle(list, reset=list.clear)
    merged = coerce(base, destroy=list.clear)
    assert (merged.reset, merged.destroy) == (list.clear, list.clear)
    with pytest.raises(TypeError, match="reset"):
        coerce(base, reset=list.clear)
