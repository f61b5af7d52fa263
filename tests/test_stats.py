"""PoolStats: a frozen snapshot with derived figures and a plain-dict form."""

from __future__ import annotations

import dataclasses

import respool


def snapshot(**overrides: object) -> respool.PoolStats:
    fields = {f.name: 0 for f in dataclasses.fields(respool.PoolStats)}
    fields.update(name="p", wait_time_total=0.0, wait_time_max=0.0)
    fields.update(overrides)
    return respool.PoolStats(**fields)  # type: ignore[arg-type]


def test_wait_time_mean_is_zero_without_waits() -> None:
    """No waits: the mean is 0.0, not a division error."""
    assert snapshot().wait_time_mean == 0.0


def test_wait_time_mean_divides_total_by_waits() -> None:
    """The mean is the total waiting time over the number of waits."""
    assert snapshot(waits=4, wait_time_total=2.0).wait_time_mean == 0.5


def test_as_dict_has_every_documented_field() -> None:
    """as_dict() carries the fields DESIGN.md promises, for logs and exporters."""
    data = snapshot(size=3).as_dict()
    for name in (
        "size",
        "idle",
        "in_use",
        "waiting",
        "created",
        "destroyed",
        "acquires",
        "timeouts",
        "rejected",
        "create_errors",
        "reset_errors",
        "check_failures",
        "leaks",
    ):
        assert name in data
    assert data["size"] == 3
