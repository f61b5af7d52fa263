"""The advisor's decisions (no timing): axes, strategy, sizes, and pool or not."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from respool._core.usage import UsageRecorder
from respool._verdict import Verdict
from respool.advisor._decide import (
    STRATEGIES,
    Costs,
    Pattern,
    decide,
    fits,
    pattern_assumed,
    pattern_described,
    pattern_recorded,
    sizes,
)
from respool.stats import Usage

US = 1e-6


def _costs(fresh: float, **pooled: float) -> Costs:
    return Costs(create=fresh * 0.9, use=fresh * 0.1, reset=None, fresh=fresh, pooled=pooled)


def _usage(levels: list[tuple[int, float]], gap: float, *, collections: int = 0) -> Usage:
    """A recorded usage holding each level for the given seconds, every use reusing a
    resource idle for *gap* seconds."""
    rec = UsageRecorder(0.0, 0)
    now = 0.0
    level = 0
    for target, seconds in levels:
        while level < target:
            rec.began(now, now - gap)
            level += 1
        while level > target:
            rec.ended(now)
            level -= 1
        now += seconds
    return rec.snapshot(now, collections)


@pytest.mark.parametrize(
    ("quick", "dynamic", "external", "expected"),
    [
        (True, False, False, "WorkerPool"),
        (True, False, True, "WorkerPool"),
        (False, False, False, "FixedPool"),
        (False, False, True, "FixedPool"),
        (True, True, False, "TransientPool"),
        (True, True, True, "ElasticPool"),
        (False, True, False, "ElasticPool"),
        (False, True, True, "ElasticPool"),
    ],
)
def test_each_quadrant_has_its_strategy(
    quick: bool, dynamic: bool, external: bool, expected: str
) -> None:
    """The two axes pick the strategy of DESIGN's table; external resources never go to a
    TransientPool."""
    pattern = Pattern(source="described", quick=quick, dynamic=dynamic)
    assert fits(pattern, external=external) == expected


def test_a_pool_that_loses_is_not_advised() -> None:
    """When every strategy is slower than making the resource afresh, the answer is no pool."""
    costs = _costs(0.3 * US, FixedPool=0.9 * US, ElasticPool=0.9 * US, TransientPool=0.8 * US)
    decision = decide(costs, pattern_assumed(external=False), external=False)
    assert decision.pool is False
    assert decision.strategy is None
    assert decision.judgement is not None
    assert decision.judgement.verdict is Verdict.LOSES
    assert any("No pool" in reason for reason in decision.reasons)


def test_the_fitting_strategy_is_advised_when_it_pays() -> None:
    """The quadrant's strategy wins even when another is a little faster."""
    costs = _costs(100 * US, FixedPool=5 * US, WorkerPool=20 * US, TransientPool=4 * US)
    pattern = Pattern(source="described", quick=True, dynamic=False, high=4, floor=4, burst=4)
    decision = decide(costs, pattern, external=False)
    assert (decision.pool, decision.strategy) == (True, "WorkerPool")
    assert decision.sizes == {"workers": 4}


def test_a_paying_alternative_replaces_a_fitting_strategy_that_does_not_pay() -> None:
    """If the quadrant's strategy costs more than it saves, the fastest suitable one that
    pays is advised, and the reasons say why."""
    costs = _costs(10 * US, WorkerPool=12 * US, FixedPool=2 * US, ElasticPool=3 * US)
    pattern = Pattern(source="described", quick=True, dynamic=False)
    decision = decide(costs, pattern, external=False)
    assert decision.fits == "WorkerPool"
    assert decision.strategy == "FixedPool"
    assert any("WorkerPool fits" in reason for reason in decision.reasons)


def test_an_external_resource_is_never_advised_into_a_transient_pool() -> None:
    """Even when a TransientPool is the only one that pays, a resource that needs destroying
    is not put there."""
    costs = _costs(10 * US, TransientPool=2 * US, ElasticPool=9 * US)
    pattern = Pattern(source="described", quick=True, dynamic=True)
    decision = decide(costs, pattern, external=True)
    assert decision.strategy != "TransientPool"
    assert decision.pool is False


def test_modest_gain_is_enough_and_no_clear_gain_is_not() -> None:
    """The tour's thresholds decide: 1.5x pools, 1.1x does not."""
    pattern = pattern_assumed(external=True)
    assert decide(_costs(15 * US, FixedPool=10 * US), pattern, external=True).pool
    assert not decide(_costs(11 * US, FixedPool=10 * US), pattern, external=True).pool


def test_without_costs_the_pattern_decides_and_says_costs_were_not_measured() -> None:
    """advise_from has no costs: it recommends the quadrant's strategy and says so."""
    decision = decide(None, Pattern(source="recorded", quick=False, dynamic=False), external=True)
    assert (decision.pool, decision.strategy) == (True, "FixedPool")
    assert any("not measured" in reason for reason in decision.reasons)


def test_recorded_steady_busy_usage_is_a_worker_pool() -> None:
    """Four in use nearly all the time, reused within microseconds: quick and static."""
    usage = _usage([(4, 10.0), (3, 0.001), (4, 10.0)], gap=1e-5)
    pattern = pattern_recorded(usage)
    assert pattern.quick and not pattern.dynamic
    assert fits(pattern, external=False) == "WorkerPool"
    assert sizes("WorkerPool", pattern) == {"workers": 4}


def test_recorded_bursts_of_memory_are_a_transient_pool_and_of_files_an_elastic_one() -> None:
    """Bursts to 16 over a floor of 1 with short gaps: dynamic and quick."""
    levels = [(1, 1.0), (16, 0.1)] * 10
    usage = _usage(levels, gap=0.01)
    pattern = pattern_recorded(usage)
    assert pattern.dynamic and pattern.quick
    assert fits(pattern, external=False) == "TransientPool"
    assert fits(pattern, external=True) == "ElasticPool"
    assert sizes("ElasticPool", pattern) == {"min_idle": 1, "max_idle": 16, "max_size": 16}


def test_idle_gaps_longer_than_the_gc_interval_are_eventual_reuse() -> None:
    """Gaps of 5 s against a full collection every second: a free list keeps them."""
    usage = _usage([(2, 10.0), (3, 10.0)] * 3, gap=5.0, collections=60)
    assert usage.gc_interval == pytest.approx(1.0)
    pattern = pattern_recorded(usage)
    assert not pattern.quick and not pattern.dynamic
    assert fits(pattern, external=True) == "FixedPool"
    assert sizes("FixedPool", pattern) == {"size": 3}


def test_a_described_pattern_follows_the_same_axes() -> None:
    """idle_gap and concurrency place the pattern like a recorded one."""
    busy = pattern_described(0.0, 4, external=False, gc_interval=None, gc_watched=10.0)
    assert fits(busy, external=False) == "WorkerPool"
    bursts = pattern_described(0.001, (0, 16), external=False, gc_interval=2.0, gc_watched=60)
    assert fits(bursts, external=False) == "TransientPool"
    web = pattern_described(30.0, (2, 8), external=True, gc_interval=2.0, gc_watched=60)
    assert fits(web, external=True) == "ElasticPool"
    assert sizes("ElasticPool", web) == {"min_idle": 2, "max_idle": 8, "max_size": 8}


def test_nothing_described_is_assumed_from_the_resource_kind() -> None:
    """Told nothing: files and connections are a fixed free list, memory a transient pool."""
    assert fits(pattern_assumed(external=True), external=True) == "FixedPool"
    assert fits(pattern_assumed(external=False), external=False) == "TransientPool"


@given(
    fresh=st.floats(min_value=1e-8, max_value=1.0),
    pooled=st.dictionaries(
        st.sampled_from(STRATEGIES), st.floats(min_value=1e-8, max_value=1.0), min_size=1
    ),
    quick=st.booleans(),
    dynamic=st.booleans(),
    external=st.booleans(),
)
def test_the_decision_is_always_consistent(
    fresh: float, pooled: dict[str, float], quick: bool, dynamic: bool, external: bool
) -> None:
    """Pool exactly when a strategy is named; that strategy was measured, suits the resource
    and earns at least a modest gain; sizes only for a named strategy."""
    decision = decide(
        _costs(fresh, **pooled),
        Pattern(source="described", quick=quick, dynamic=dynamic),
        external=external,
    )
    assert decision.pool == (decision.strategy is not None)
    if decision.strategy is None:
        assert decision.sizes == {}
        assert all(
            j.verdict not in (Verdict.PAYS_OFF, Verdict.MODEST_GAIN)
            for name, j in decision.judgements.items()
            if not (external and name == "TransientPool")
        )
    else:
        assert decision.strategy in pooled
        assert not (external and decision.strategy == "TransientPool")
        assert decision.judgement is not None
        assert decision.judgement.verdict in (Verdict.PAYS_OFF, Verdict.MODEST_GAIN)
