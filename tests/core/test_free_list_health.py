"""The free-list core's health rules, with a fake clock: lifetimes, uses, idle eviction,
keepalive, leak reports, drain and resize. Every move is given its time."""

from __future__ import annotations

import pytest

from respool._core.free_list import (
    CHECK,
    CREATE,
    DRAIN,
    IDLE,
    LIFETIME,
    SURPLUS,
    USES,
    Entry,
    FreeListCore,
    Waiter,
)
from respool._core.health import Rules


def make_core(
    *,
    min_size: int = 0,
    max_size: int | None = 4,
    max_idle: int = 4,
    rules: Rules | None = None,
    leak_timeout: float | None = None,
    window: float = 0.0,
) -> FreeListCore[str]:
    return FreeListCore(
        name="t",
        min_size=min_size,
        max_size=max_size,
        max_idle=max_idle,
        max_waiting=None,
        lifo=True,
        rules=rules,
        leak_timeout=leak_timeout,
        window=window,
    )


def prime(core: FreeListCore[str], count: int, now: float = 0.0) -> list[Entry[str]]:
    """Create *count* resources through the core's own moves and leave them idle."""
    assert core.reserve(count) == count
    for n in range(count):
        core.stock(f"r{n}", now)
    return list(core.idle)


def lend(core: FreeListCore[str], now: float) -> Entry[str]:
    """A caller takes an idle entry, as the shell does."""
    entry = core.take_nowait()
    assert isinstance(entry, Entry)
    entry.uses += 1
    entry.lent_at = now
    return entry


def give_back(core: FreeListCore[str], entry: Entry[str], now: float) -> None:
    """A caller returns *entry*, as the shell's health path does."""
    reason = core.worn(entry, now)
    if reason is not None:
        core.discard(entry, now, reason)
        return
    entry.idle_since = now
    answer = core.put_nowait(entry)
    if answer:
        core.finish_put(entry, answer, now)


def test_lifetimes_are_jittered_down_by_at_most_a_tenth() -> None:
    """Resources made together expire apart, each within 90-100% of max_lifetime."""
    core = make_core(max_size=None, max_idle=200, rules=Rules(max_lifetime=100.0))
    entries = prime(core, 200, now=10.0)
    deadlines = [entry.expires_at for entry in entries]
    assert all(100.0 <= at <= 110.0 for at in deadlines)
    assert max(deadlines) - min(deadlines) > 5.0  # spread, not all at once
    core.check_invariants()


def test_worn_names_lifetime_uses_and_drain() -> None:
    """worn() gives the reason an entry is due, or None."""
    core = make_core(rules=Rules(max_lifetime=10.0, max_uses=2))
    (entry,) = prime(core, 1)
    assert core.worn(entry, 1.0) is None
    entry.uses = 2
    assert core.worn(entry, 1.0) == USES
    entry.uses = 0
    assert core.worn(entry, entry.expires_at) == LIFETIME
    core.drain(1.0)
    assert core.stats().retired[DRAIN] == 1  # it was idle: retired at once


def test_expired_entry_is_retired_on_return_and_replaced() -> None:
    """A lent entry past its lifetime is never taken from its holder: it goes at return."""
    core = make_core(min_size=1, max_size=1, max_idle=1, rules=Rules(max_lifetime=10.0))
    prime(core, 1)
    lent = lend(core, 1.0)
    todo = core.housekeep(50.0)
    assert not todo.destroy  # lent: untouched
    assert core.next_deadline(50.0) == float("inf")  # and no busy loop until it returns
    give_back(core, lent, 50.0)
    stats = core.stats()
    assert stats.retired[LIFETIME] == 1
    assert (core.owed, core.size) == (1, 0)  # the filler owes a replacement
    core.check_invariants()


def test_housekeeping_retires_expired_idle_entries() -> None:
    """An idle entry past its lifetime is retired by housekeeping, and replaced."""
    core = make_core(min_size=2, max_size=2, max_idle=2, rules=Rules(max_lifetime=10.0))
    entries = prime(core, 2)
    soonest = min(entry.expires_at for entry in entries)
    assert core.next_deadline(0.0) == soonest
    todo = core.housekeep(soonest)
    assert len(todo.destroy) == 1
    assert todo.fill and core.owed == 1
    core.check_invariants()


def test_idle_timeout_evicts_down_to_min_size_coldest_first() -> None:
    """Surplus entries idle past idle_timeout go; min_size of them stay."""
    core = make_core(min_size=1, max_size=None, rules=Rules(idle_timeout=30.0))
    entries = prime(core, 3)
    for n, entry in enumerate(entries):
        entry.idle_since = float(n)  # r0 coldest
    assert core.next_deadline(0.0) == 30.0
    todo = core.housekeep(31.5)
    assert [e.resource for e in todo.destroy] == ["r0", "r1"]
    assert [e.resource for e in core.idle] == ["r2"]
    assert core.stats().retired[IDLE] == 2
    assert not core.housekeep(1000.0).destroy  # at min_size: kept however long idle
    core.check_invariants()


def test_keepalive_checks_idle_entries_and_replaces_the_dead() -> None:
    """Idle entries untouched for keepalive seconds are taken out for a check; the live
    return idle (their idle time unchanged), the dead are retired and replaced."""
    core = make_core(min_size=2, max_size=2, max_idle=2, rules=Rules(keepalive=5.0))
    alive, dead = prime(core, 2)
    assert core.next_deadline(0.0) == 5.0
    assert not core.housekeep(4.9).check
    todo = core.housekeep(5.0)
    assert {id(e) for e in todo.check} == {id(alive), id(dead)}
    assert not core.idle and core.size == 2
    with pytest.raises(ValueError, match="keepalive"):
        core.keepalive_done(Entry("stray", 0, 0.0), 5.0, alive=True)
    core.keepalive_done(alive, 5.1, alive=True)
    todo = core.keepalive_done(dead, 5.1, alive=False)
    assert todo.destroy == [dead] and todo.fill
    assert list(core.idle) == [alive]
    assert (alive.idle_since, alive.checked_at) == (0.0, 5.1)
    assert core.stats().retired[CHECK] == 1
    assert core.next_deadline(5.1) == pytest.approx(10.1)
    core.check_invariants()


def test_keepalive_never_takes_from_a_waiter() -> None:
    """A keepalive check that ends while someone waits hands the entry to the waiter."""
    core = make_core(min_size=1, max_size=1, max_idle=1, rules=Rules(keepalive=1.0))
    (entry,) = prime(core, 1)
    todo = core.housekeep(2.0)
    assert todo.check == [entry]
    waiter = core.request(2.0, handle="w").outcome
    assert isinstance(waiter, Waiter)
    done = core.keepalive_done(entry, 2.1, alive=True)
    assert done.wake == [waiter] and waiter.grant is entry
    core.check_invariants()


def test_lease_held_too_long_is_reported_once() -> None:
    """A lease held past leak_timeout is listed once, counted once in leaks."""
    core = make_core(min_size=1, max_size=1, max_idle=1, leak_timeout=60.0)
    prime(core, 1)
    entry = lend(core, 1.0)
    assert core.next_deadline(1.0) == 61.0
    assert not core.housekeep(60.0).report
    assert core.housekeep(61.0).report == [entry]
    assert not core.housekeep(500.0).report
    assert core.stats().leaks == 1
    core.leaked(entry, 600.0)  # lost afterwards: still one leak
    assert core.stats().leaks == 1
    core.check_invariants()


def test_drain_retires_idle_now_and_lent_at_return_failing_nobody() -> None:
    """Every entry made before drain() is retired; new ones are not."""
    core = make_core(min_size=2, max_size=2, max_idle=2, rules=Rules())
    prime(core, 2)
    lent = lend(core, 0.0)
    todo = core.drain(1.0)
    assert len(todo.destroy) == 1 and todo.fill
    assert core.start_fills(1.0) == 1
    core.stock("new", 1.5, owed=True)
    fresh = lend(core, 2.0)
    assert core.worn(fresh, 2.0) is None
    give_back(core, lent, 3.0)
    assert core.stats().retired[DRAIN] == 2
    core.check_invariants()


def test_resize_down_retires_idle_now_and_lent_surplus_at_return() -> None:
    """Shrinking never takes from a holder: idle surplus goes now, lent surplus later."""
    core = make_core(min_size=4, max_size=4, max_idle=4)
    prime(core, 4)
    held = [lend(core, 0.0) for _ in range(3)]
    todo = core.resize(1.0, min_size=2, max_size=2, max_idle=2)
    assert len(todo.destroy) == 1  # the one idle
    assert core.size == 3 and core.shrinking
    core.check_invariants()
    give_back(core, held[0], 2.0)  # surplus: retired
    assert core.size == 2 and not core.shrinking
    give_back(core, held[1], 2.0)
    give_back(core, held[2], 2.0)
    assert (core.size, len(core.idle)) == (2, 2)
    assert core.stats().retired[SURPLUS] == 2
    core.check_invariants()


@pytest.mark.parametrize("how", ["filler", "caller"])
def test_shrinking_ends_when_a_create_in_flight_produces_nothing(how: str) -> None:
    """Resized down while a resource was being made, and that create failed: the pool is at
    its size again, so returns go idle (they used to be retired as surplus for good)."""
    if how == "filler":  # a FixedPool replacing a lost resource
        core = make_core(min_size=2, max_size=2, max_idle=2)
        prime(core, 2)
        lent = lend(core, 0.0)
        core.discard(lend(core, 0.0), 0.0)
        assert core.start_fills(0.0) == 1
    else:  # an ElasticPool caller creating for itself
        core = make_core(min_size=0, max_size=2, max_idle=2)
        prime(core, 1)
        lent = lend(core, 0.0)
        assert core.request(0.0, None).outcome is CREATE
    core.resize(1.0, min_size=min(core.min_size, 1), max_size=1, max_idle=1)
    assert core.shrinking and core.max_idle == 0
    if how == "filler":
        core.fill_failed(2.0, RuntimeError("down"))
    else:
        core.create_failed(2.0)
    assert not core.shrinking and core.max_idle == 1
    give_back(core, lent, 3.0)
    assert (core.size, len(core.idle), core.stats().retired[SURPLUS]) == (1, 1, 0)
    core.check_invariants()


def test_idle_entries_a_waiter_will_take_set_no_housekeeping_deadline() -> None:
    """Bounded fairness leaves an entry idle for a roused waiter: housekeeping leaves it to
    the waiter, so it must not name it as due either (that would wake housekeeping in a
    loop until the waiter takes it)."""
    core = make_core(min_size=1, max_size=1, max_idle=1, rules=Rules(keepalive=1.0), window=9.0)
    prime(core, 1)
    lent = lend(core, 0.0)
    waiter = core.request(0.0, "w").outcome
    assert isinstance(waiter, Waiter)
    give_back(core, lent, 0.5)  # idle, the waiter roused; its keepalive is due at 1.5
    assert len(core.idle) == 1 and waiter.woken
    assert not core.housekeep(5.0).check  # not taken out for a check while it is wanted
    assert core.next_deadline(5.0) > 5.0


def test_resize_up_owes_the_new_slots() -> None:
    """Growing a fixed-size core owes the filler the difference."""
    core = make_core(min_size=1, max_size=1, max_idle=1)
    prime(core, 1)
    todo = core.resize(0.0, min_size=3, max_size=3, max_idle=3)
    assert todo.fill and core.owed == 2
    with pytest.raises(ValueError, match="resize"):
        core.resize(0.0, min_size=3, max_size=2, max_idle=2)
    core.check_invariants()


def test_check_after_skips_recently_used_entries() -> None:
    """With check_after, only an entry idle (or unchecked) that long needs a check."""
    core = make_core(rules=Rules(check_after=10.0))
    (entry,) = prime(core, 1)
    entry.uses = 1
    entry.idle_since = entry.checked_at = 100.0
    assert not core.needs_check(entry, since=105.0, now=105.0)
    assert core.needs_check(entry, since=110.0, now=110.0)


def test_every_retirement_has_one_reason() -> None:
    """destroyed is the sum of the retired-by-reason figures."""
    core = make_core(min_size=0, max_size=None, max_idle=1, rules=Rules(max_uses=1))
    prime(core, 2)  # one is surplus beyond max_idle
    entry = lend(core, 0.0)
    give_back(core, entry, 1.0)
    stats = core.stats()
    assert stats.destroyed == sum(stats.retired.values()) == 2
    assert (stats.retired[SURPLUS], stats.retired[USES]) == (1, 1)
