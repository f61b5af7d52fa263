"""Per-resource health rules and the create side of a slot, with the time passed in."""

from __future__ import annotations

import math
import random

import pytest

from respool._core.backoff import Backoff
from respool._core.health import (
    CREATE,
    DRAIN,
    GIVE_UP,
    IDLE,
    LIFETIME,
    LIFETIME_JITTER,
    PING,
    REASONS,
    SLEEP,
    USES,
    Rules,
    Supply,
)


def steady_backoff() -> Backoff:
    """A backoff without jitter: delays of exactly 0.05, 0.1, 0.2, ... seconds."""
    return Backoff(rng=lambda low, high: (low + high) / 2)


# -- Rules: checks -------------------------------------------------------------------------


def test_check_before_every_use_by_default() -> None:
    """check_after=0: a resource is checked before each use, however recent the last."""
    rules = Rules()
    vitals = rules.born(10.0)
    assert rules.check_before_use(vitals, 10.0)
    rules.before_use(vitals)
    rules.after_use(vitals, 11.0)
    assert rules.check_before_use(vitals, 11.0)


def test_trusted_resource_skips_its_first_check_only() -> None:
    """A resource made for the use at hand is not checked; after that use it is."""
    rules = Rules()
    vitals = rules.born(0.0, trusted=True)
    assert not rules.check_before_use(vitals, 100.0)
    rules.before_use(vitals)
    assert rules.after_use(vitals, 1.0) is None
    assert rules.check_before_use(vitals, 1.0)


def test_check_after_checks_only_resources_idle_long_enough() -> None:
    """With check_after, only a resource idle that long (since birth or last use) is checked."""
    rules = Rules(check_after=5.0)
    vitals = rules.born(0.0)
    assert not rules.check_before_use(vitals, 4.9)
    assert rules.check_before_use(vitals, 5.0)
    rules.before_use(vitals)
    rules.after_use(vitals, 20.0)
    assert not rules.check_before_use(vitals, 24.0)
    assert rules.check_before_use(vitals, 25.0)


# -- Rules: wear ----------------------------------------------------------------------------


def test_max_uses_retires_after_the_last_allowed_use() -> None:
    """max_uses=3: the third use ends with USES."""
    rules = Rules(max_uses=3)
    vitals = rules.born(0.0)
    verdicts = []
    for t in range(3):
        rules.before_use(vitals)
        verdicts.append(rules.after_use(vitals, float(t)))
    assert verdicts == [None, None, USES]
    assert vitals.uses == 3


def test_lifetime_is_jittered_down_by_at_most_a_tenth() -> None:
    """Each resource's lifetime is max_lifetime shortened by a draw in [0, LIFETIME_JITTER]."""
    longest = Rules(max_lifetime=100.0, rng=lambda: 0.0).born(0.0)
    shortest = Rules(max_lifetime=100.0, rng=lambda: 1.0).born(0.0)
    assert longest.expires_at == 100.0
    assert shortest.expires_at == pytest.approx(100.0 * (1 - LIFETIME_JITTER))
    assert Rules().born(0.0).expires_at == math.inf


def test_lifetime_retires_after_use_and_while_idle() -> None:
    """Past its lifetime a resource is retired when its use ends, or at an idle pass."""
    rules = Rules(max_lifetime=10.0, rng=lambda: 0.0)
    vitals = rules.born(0.0)
    rules.before_use(vitals)
    assert rules.after_use(vitals, 9.0) is None
    assert rules.idle_verdict(vitals, 9.5, surplus=False) is None
    assert rules.idle_verdict(vitals, 10.0, surplus=False) == LIFETIME
    rules.before_use(vitals)
    assert rules.after_use(vitals, 10.0) == LIFETIME


def test_wears_says_whether_a_use_can_wear_a_resource_out() -> None:
    """Only max_uses and max_lifetime make after_use able to retire."""
    assert not Rules(check_after=1.0, idle_timeout=5.0, keepalive=2.0).wears
    assert Rules(max_uses=1).wears
    assert Rules(max_lifetime=1.0).wears


# -- Rules: idle resources ---------------------------------------------------------------------


def test_idle_timeout_retires_only_surplus_resources() -> None:
    """idle_timeout applies to resources the pool does not need (beyond min_idle)."""
    rules = Rules(idle_timeout=30.0)
    vitals = rules.born(0.0)
    assert rules.idle_verdict(vitals, 29.0, surplus=True) is None
    assert rules.idle_verdict(vitals, 30.0, surplus=True) == IDLE
    assert rules.idle_verdict(vitals, 1000.0, surplus=False) is None


def test_keepalive_is_due_after_that_long_without_use_or_check() -> None:
    """A passing check or a use restarts the keepalive clock."""
    rules = Rules(keepalive=10.0)
    vitals = rules.born(0.0)
    assert not rules.keepalive_due(vitals, 9.0)
    assert rules.keepalive_due(vitals, 10.0)
    rules.passed_check(vitals, 10.0)
    assert not rules.keepalive_due(vitals, 19.0)
    rules.before_use(vitals)
    rules.after_use(vitals, 25.0)
    assert not rules.keepalive_due(vitals, 34.0)
    assert rules.keepalive_due(vitals, 35.0)
    assert not Rules().keepalive_due(vitals, 1e9)


def test_next_deadline_is_the_earliest_rule_due() -> None:
    """Housekeeping sleeps until the earliest of lifetime, idle timeout and keepalive."""
    rules = Rules(max_lifetime=100.0, idle_timeout=30.0, keepalive=20.0, rng=lambda: 0.0)
    vitals = rules.born(0.0)
    assert rules.next_deadline(vitals, surplus=True) == 20.0
    rules.passed_check(vitals, 20.0)
    assert rules.next_deadline(vitals, surplus=True) == 30.0
    assert rules.next_deadline(vitals, surplus=False) == 40.0
    assert Rules().next_deadline(Rules().born(0.0), surplus=True) == math.inf


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"check_after": -1.0}, "check_after"),
        ({"check_after": math.nan}, "check_after"),
        ({"max_uses": 0}, "max_uses"),
        ({"max_lifetime": 0.0}, "max_lifetime"),
        ({"idle_timeout": -5.0}, "idle_timeout"),
        ({"keepalive": 0}, "keepalive"),
    ],
)
def test_impossible_settings_are_refused(options: dict[str, float], name: str) -> None:
    """A setting no resource could satisfy raises ValueError naming it."""
    with pytest.raises(ValueError, match=name):
        Rules(**options)  # type: ignore[arg-type]


def test_lifetimes_spread_over_the_whole_jitter_range() -> None:
    """Resources born together get deadlines spread over [0.9, 1.0] x max_lifetime."""
    rules = Rules(max_lifetime=100.0, rng=random.Random(7).random)
    deadlines = [rules.born(50.0).expires_at - 50.0 for _ in range(2000)]
    assert all(100.0 * (1 - LIFETIME_JITTER) <= d <= 100.0 for d in deadlines)
    assert min(deadlines) < 90.5 and max(deadlines) > 99.5  # the whole range is used
    assert len({round(d, 6) for d in deadlines}) > 1900  # not a handful of values
    tenths = [sum(90.0 + i <= d < 91.0 + i for d in deadlines) for i in range(10)]
    assert min(tenths) > 100  # roughly uniform: no tenth of the range is left out


def test_a_resource_past_its_lifetime_is_used_to_the_end_of_its_task() -> None:
    """Expiring in the middle of a use changes nothing until the use ends."""
    rules = Rules(max_lifetime=10.0, rng=lambda: 0.5)
    vitals = rules.born(0.0)
    assert vitals.expires_at == pytest.approx(9.5)
    rules.before_use(vitals)  # a use that began at 9.0 and ends at 12.0
    assert rules.after_use(vitals, 12.0) == LIFETIME


def test_max_uses_counts_every_use_whatever_the_time() -> None:
    """max_uses=1 retires after the first use; uses wins over a lifetime also past."""
    rules = Rules(max_uses=1, max_lifetime=5.0, rng=lambda: 0.0)
    vitals = rules.born(0.0)
    rules.before_use(vitals)
    assert rules.after_use(vitals, 100.0) == USES


# -- Rules: the idle pass and its deadlines ------------------------------------------------------


def test_idle_pass_answers_retire_ping_or_nothing() -> None:
    """Lifetime first, then keepalive; nothing due before either deadline."""
    rules = Rules(max_lifetime=30.0, keepalive=10.0, rng=lambda: 0.0)
    vitals = rules.born(0.0)
    assert rules.idle_pass(vitals, 9.9) is None
    assert rules.idle_pass(vitals, 10.0) == PING
    rules.passed_check(vitals, 10.0)
    assert rules.idle_pass(vitals, 19.9) is None
    assert rules.idle_pass(vitals, 20.0) == PING
    assert rules.idle_pass(vitals, 30.0) == LIFETIME  # retired, not pinged
    assert Rules().idle_pass(Rules().born(0.0), 1e9) is None


def test_keepalive_deadlines_follow_uses_and_checks() -> None:
    """The next deadline of an idle resource: keepalive after its last use or check."""
    rules = Rules(keepalive=5.0)
    vitals = rules.born(100.0)
    assert rules.next_deadline(vitals, surplus=False) == 105.0
    rules.passed_check(vitals, 105.0)
    assert rules.next_deadline(vitals, surplus=False) == 110.0
    rules.before_use(vitals)
    rules.after_use(vitals, 130.0)  # a long use: the clock restarts when it ends
    assert rules.next_deadline(vitals, surplus=False) == 135.0
    assert not rules.keepalive_due(vitals, 134.9)
    assert rules.keepalive_due(vitals, 135.0)


def test_next_deadline_is_the_lifetime_when_it_comes_first() -> None:
    """A worker with max_lifetime and keepalive wakes at whichever is earlier."""
    rules = Rules(max_lifetime=12.0, keepalive=5.0, rng=lambda: 0.0)
    vitals = rules.born(0.0)
    deadlines = []
    now = 0.0
    while (deadline := rules.next_deadline(vitals, surplus=False)) < math.inf:
        now = deadline
        deadlines.append(now)
        if rules.idle_pass(vitals, now) != PING:
            break
        rules.passed_check(vitals, now)
    assert deadlines == [5.0, 10.0, 12.0]
    assert rules.idle_pass(vitals, now) == LIFETIME


def test_timed_says_whether_an_idle_resource_has_deadlines() -> None:
    """Only max_lifetime and keepalive give an idle resource a deadline of its own."""
    assert not Rules(check_after=1.0, max_uses=3).timed
    assert Rules(max_lifetime=1.0).timed
    assert Rules(keepalive=1.0).timed


def test_check_after_counts_from_the_last_passed_check() -> None:
    """A resource a keepalive check just found alive is not checked again before its use."""
    rules = Rules(check_after=5.0, keepalive=10.0)
    vitals = rules.born(0.0)
    rules.passed_check(vitals, 10.0)
    assert not rules.check_before_use(vitals, 12.0)
    assert rules.check_before_use(vitals, 15.0)


# -- Rules: drain ------------------------------------------------------------------------------


def test_drain_makes_every_older_resource_due_and_no_newer_one() -> None:
    """After drain(), resources born before are retired idle or after their use."""
    rules = Rules()
    idle = rules.born(0.0)
    busy = rules.born(0.0)
    rules.before_use(busy)
    assert rules.drain() == 1
    fresh = rules.born(1.0)
    assert rules.stale(idle) and rules.stale(busy) and not rules.stale(fresh)
    assert rules.idle_pass(idle, 1.0) == DRAIN
    assert rules.next_deadline(idle, surplus=False) == -math.inf
    assert rules.after_use(busy, 2.0) == DRAIN
    assert rules.idle_pass(fresh, 1e9) is None
    assert rules.next_deadline(fresh, surplus=False) == math.inf
    rules.before_use(fresh)
    assert rules.after_use(fresh, 3.0) is None
    rules.drain()
    assert rules.stale(fresh)


def test_reasons_are_the_documented_stats_keys() -> None:
    """Every retirement reason the stats name, once each."""
    assert set(REASONS) == {"lifetime", "uses", "idle", "check", "drain", "leak", "error", "abort"}
    assert len(REASONS) == len(set(REASONS))


# -- Supply: create now, or when? --------------------------------------------------------------


def test_create_is_due_at_once_then_backs_off_by_doubling() -> None:
    """No streak: create now. After failures: 50 ms, then 100 ms, ... (no jitter here)."""
    supply = Supply(steady_backoff())
    assert supply.due(0.0)
    first = supply.failed(0.0, OSError("down"))
    second = supply.failed(first.at, OSError("still down"))
    assert (first.delay, second.delay) == (pytest.approx(0.05), pytest.approx(0.1))
    assert (first.first, second.first) == (True, False)
    assert not supply.due(first.at)
    assert supply.due(second.at)
    assert isinstance(supply.last_error, OSError)
    assert supply.failures == 2
    supply.succeeded()
    assert supply.due(0.0) and supply.last_error is None and supply.retry_at() == 0.0
    assert supply.failures == 0


def test_waiting_use_sleeps_until_the_retry_or_its_deadline() -> None:
    """A waiting use sleeps until the retry or its deadline, and gives up past the deadline."""
    supply = Supply(steady_backoff())
    assert supply.next_step(0.0, 1.0, stopping=False) == (CREATE, 0.0)
    retry = supply.failed(0.0, OSError())
    assert supply.next_step(0.01, 1.0, stopping=False) == (SLEEP, retry.at)
    assert supply.next_step(0.01, 0.02, stopping=False) == (SLEEP, 0.02)
    assert supply.next_step(0.02, 0.02, stopping=False) == (GIVE_UP, 0.02)
    assert supply.next_step(0.01, None, stopping=False) == (SLEEP, retry.at)


def test_stopping_allows_one_last_attempt_then_gives_up() -> None:
    """Once the pool stops, a waiting use gets one more create attempt, not a long wait."""
    supply = Supply(steady_backoff())
    supply.failed(0.0, OSError())
    assert supply.next_step(0.01, None, stopping=True) == (CREATE, 0.01)
    supply.failed(0.01, OSError())
    assert supply.next_step(0.02, None, stopping=True) == (GIVE_UP, 0.02)
    assert supply.next_step(100.0, None, stopping=True) == (CREATE, 100.0)  # due anyway
