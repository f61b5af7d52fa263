"""The advisor's decisions, with no I/O: from measured costs and a usage pattern to a strategy,
its sizes, a verdict and the reasons in words.

Two questions pick a strategy (DESIGN section 2), and this module is where their answers are
read off the figures:

* **Quick or eventual reuse?** Quick when a resource is typically reused well within the
  interval between full garbage collections (the 90th percentile of idle gaps under
  :data:`QUICK_SHARE` of it): a cache the collector thins, or a worker that keeps its resource
  busy, then serves it. A resource idle for longer would be dropped by such a cache before its
  next use, so it needs a free list that keeps it.
* **Static or dynamic?** Dynamic when the floor of the number in use is under
  ``1 - DYNAMIC_FLUCTUATION`` of its high level (``Usage.fluctuation``): a fixed number sized
  for the peaks would then sit mostly idle.

Whether to pool at all is the tour's rule (:mod:`respool._verdict`) applied to the operation
done fresh against the same operation through the chosen strategy, as measured on the user's
own resource. A resource that needs ``destroy`` (a file, a connection: *external*) is never
advised into a ``TransientPool``, which lets the garbage collector decide when it goes and has
no count limit: ``ElasticPool`` is its dynamic choice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from respool._verdict import DEFAULT_RULES, Judgement, Rules, Verdict, judge
from respool.advisor._units import duration
from respool.stats import Usage

__all__ = [
    "DYNAMIC_FLUCTUATION",
    "QUICK_SHARE",
    "STRATEGIES",
    "Costs",
    "Decision",
    "Pattern",
    "decide",
    "pattern_assumed",
    "pattern_described",
    "pattern_recorded",
]

#: The four strategies, in the order the advisor reports them.
STRATEGIES: Final = ("FixedPool", "ElasticPool", "WorkerPool", "TransientPool")
#: Reuse is quick when the 90th percentile idle gap is under this share of the interval
#: between full collections: a cached object then survives to its next use with room to spare.
QUICK_SHARE: Final = 0.5
#: The demand is dynamic when ``(p99 - p10) / p99`` of the number in use exceeds this.
DYNAMIC_FLUCTUATION: Final = 0.5
#: Below this many uses a recorded pattern is reported as thin evidence.
FEW_USES: Final = 20


@dataclass(frozen=True)
class Costs:
    """What one operation costs, in seconds, measured on the resource (best of rounds).

    ``pooled`` holds the cost of the same operation through each strategy that could be
    measured (acquire, use, reset, release; a task's hand-off for ``WorkerPool``), and
    ``unmeasured`` says why any other was not.
    """

    #: Making and destroying one resource.
    create: float
    #: One use of a resource kept from the previous use.
    use: float
    #: One reset (None without a ``reset``).
    reset: float | None
    #: One operation done fresh: create, use, destroy.
    fresh: float
    pooled: dict[str, float] = field(default_factory=dict)
    unmeasured: dict[str, str] = field(default_factory=dict)
    #: Rounds each figure is the best of.
    rounds: int = 0

    @property
    def saving(self) -> float:
        """What a new resource adds to an operation: the fresh operation minus a use of a kept
        resource. More than ``create`` alone when a new resource is also slower to use at
        first (a new buffer's pages are faulted in by its first use, a new connection's
        statement cache is cold)."""
        return max(self.fresh - self.use, 0.0)

    @property
    def share(self) -> float:
        """The share of a fresh operation that comes from its resource being new."""
        return min(1.0, self.saving / self.fresh) if self.fresh > 0 else 0.0

    def overhead(self, strategy: str) -> float | None:
        """What *strategy* adds to a use and its reset: its own bookkeeping, in seconds."""
        if strategy not in self.pooled:
            return None
        return self.pooled[strategy] - self.use - (self.reset or 0.0)


@dataclass(frozen=True)
class Pattern:
    """Where a use pattern stands on the two axes, and how that was learned."""

    #: "recorded" (a pool's observed usage), "described" (told by the caller) or "assumed".
    source: str
    quick: bool
    dynamic: bool
    #: The idle gap the first axis was decided on (seconds), when known.
    idle_gap: float | None = None
    #: The interval between full collections it was compared with, when one was seen, and
    #: how long collections were watched for (a lower bound of the interval when none was).
    gc_interval: float | None = None
    gc_watched: float = 0.0
    fluctuation: float | None = None
    #: Concurrency figures for sizes: the floor, the typical burst, a high percentile, the
    #: most at once (None: unknown).
    floor: int | None = None
    burst: int | None = None
    high: int | None = None
    most: int | None = None
    uses: int | None = None


@dataclass(frozen=True)
class Decision:
    """The advisor's answer, before it is dressed as an :class:`~respool.Advice`."""

    pool: bool
    strategy: str | None
    #: The strategy the two axes point to (``strategy`` may differ when it did not pay).
    fits: str
    judgement: Judgement | None
    judgements: dict[str, Judgement]
    sizes: dict[str, int]
    reasons: tuple[str, ...]


def _quick(gap: float, gc_interval: float | None, watched: float) -> bool:
    reference = gc_interval if gc_interval is not None else watched
    return gap < QUICK_SHARE * reference


def pattern_recorded(usage: Usage) -> Pattern:
    """The pattern of a pool's recorded usage."""
    gap = usage.gap_p90
    return Pattern(
        source="recorded",
        quick=_quick(gap, usage.gc_interval, usage.observed) if usage.reuses else False,
        dynamic=usage.fluctuation > DYNAMIC_FLUCTUATION,
        idle_gap=gap if usage.reuses else None,
        gc_interval=usage.gc_interval,
        gc_watched=usage.observed,
        fluctuation=usage.fluctuation,
        floor=usage.in_use_p10,
        burst=usage.burst_peak,
        high=usage.in_use_p99,
        most=usage.in_use_max,
        uses=usage.uses,
    )


def pattern_described(
    idle_gap: float | None,
    concurrency: int | tuple[int, int] | None,
    *,
    external: bool,
    gc_interval: float | None,
    gc_watched: float,
) -> Pattern:
    """The pattern a caller described: a typical idle gap in seconds, and a steady number in
    use (an int) or a range ``(low, high)``. What is left out is assumed as in
    :func:`pattern_assumed`."""
    assumed = pattern_assumed(external=external)
    quick = assumed.quick if idle_gap is None else _quick(idle_gap, gc_interval, gc_watched)
    if concurrency is None:
        dynamic, floor, high = assumed.dynamic, None, None
    elif isinstance(concurrency, int):
        dynamic, floor, high = False, concurrency, concurrency
    else:
        floor, high = concurrency
        dynamic = (high - floor) / high > DYNAMIC_FLUCTUATION if high else False
    return Pattern(
        source="described",
        quick=quick,
        dynamic=dynamic,
        idle_gap=idle_gap,
        gc_interval=gc_interval,
        gc_watched=gc_watched,
        fluctuation=(high - floor) / high if high and floor is not None else None,
        floor=floor,
        burst=high,
        high=high,
        most=high,
    )


def pattern_assumed(*, external: bool) -> Pattern:
    """What the advisor assumes when told nothing: a resource with a ``destroy`` (a file, a
    connection) waits between requests and is held to a steady number (a server accepts so
    many connections); a plain object is reused at once by a varying number of users."""
    if external:
        return Pattern(source="assumed", quick=False, dynamic=False)
    return Pattern(source="assumed", quick=True, dynamic=True)


def fits(pattern: Pattern, *, external: bool) -> str:
    """The strategy of the quadrant *pattern* falls in (DESIGN section 2's table)."""
    if pattern.quick:
        if not pattern.dynamic:
            return "WorkerPool"
        return "ElasticPool" if external else "TransientPool"
    return "ElasticPool" if pattern.dynamic else "FixedPool"


def sizes(strategy: str | None, pattern: Pattern) -> dict[str, int]:
    """Constructor sizes for *strategy* from the pattern's concurrency (empty when unknown):
    ``size``/``workers`` from a high percentile (brief spikes above it wait a moment),
    ``max_size`` from the most seen at once, ``max_idle`` from the typical burst, ``min_idle``
    from the floor."""
    high = pattern.high
    if strategy is None or high is None:
        return {}
    high = max(1, high)
    if strategy == "FixedPool":
        return {"size": high}
    if strategy == "WorkerPool":
        return {"workers": high}
    if strategy == "ElasticPool":
        # Nobody waits below max_size, so it covers the most seen at once; max_idle keeps
        # enough for a typical burst to find them made; min_idle, the floor, stays alive.
        burst = max(1, pattern.burst or high)
        floor = min(pattern.floor or 0, burst)
        return {
            "min_idle": floor,
            "max_idle": burst,
            "max_size": max(high, burst, pattern.most or 0),
        }
    return {}  # TransientPool has no count to size


def decide(
    costs: Costs | None,
    pattern: Pattern,
    *,
    external: bool,
    rules: Rules = DEFAULT_RULES,
) -> Decision:
    """Pool or not, which strategy, its sizes, and why.

    With costs, pooling is advised when the strategy the pattern fits earns at least a modest
    gain; if it does not but another suitable one does, that one is advised instead (and the
    reasons say so); if none does, no pool. Without costs (a pool's recorded usage alone) the
    strategy the pattern fits is advised, and the reasons say that the costs were not
    measured.
    """
    fit = fits(pattern, external=external)
    reasons = list(_pattern_reasons(pattern, fit, external=external))
    if costs is None:
        reasons.append(
            "Costs were not measured here: respool.advise(create, use) times making the"
            " resource against reusing it, and says whether pooling pays at all."
        )
        return Decision(True, fit, fit, None, {}, sizes(fit, pattern), tuple(reasons))

    judgements = {
        name: judge(costs.fresh, cost, rules) for name, cost in costs.pooled.items() if cost > 0
    }
    worth = (Verdict.PAYS_OFF, Verdict.MODEST_GAIN)
    suitable = [s for s in STRATEGIES if not (external and s == "TransientPool")]
    chosen: str | None = None
    if fit in judgements and judgements[fit].verdict in worth:
        chosen = fit
    else:
        paying = [s for s in suitable if s in judgements and judgements[s].verdict in worth]
        if paying:
            chosen = min(paying, key=lambda s: costs.pooled[s])
            why = (
                f"it was not measured ({costs.unmeasured.get(fit, 'no figure')})"
                if fit not in judgements
                else f"through it the operation is only {judgements[fit]} as fast"
            )
            reasons.append(
                f"{fit} fits that pattern, but {why}; {chosen} is the fastest way that pays"
                f" ({judgements[chosen]})."
            )
    if chosen is None:
        best = max(judgements.values(), key=lambda j: j.speedup, default=None)
        if best is None:
            reasons.append("No strategy could be measured, so no pool can be advised.")
        else:
            reasons.append(
                f"No pool: the best any strategy does is {best} ({best.verdict}); allocating"
                " afresh is as fast or faster, and simpler."
            )
        reasons.insert(0, _cost_reason(costs, None))
        return Decision(False, None, fit, best, judgements, {}, tuple(reasons))
    reasons.insert(0, _cost_reason(costs, chosen))
    chosen_sizes = sizes(chosen, pattern)
    if not chosen_sizes and chosen != "TransientPool":
        reasons.append(
            "Sizes: not suggested, since the number in use at once is unknown; size the pool"
            " to the most your program uses at once (concurrency= or recorded usage gives it)."
        )
    return Decision(True, chosen, fit, judgements[chosen], judgements, chosen_sizes, tuple(reasons))


def _cost_reason(costs: Costs, strategy: str | None) -> str:
    """What a pool can save (what a new resource adds), against what it costs itself."""
    overhead = costs.overhead(strategy) if strategy is not None else None
    if overhead is None:
        own = [o for o in (costs.overhead(s) for s in costs.pooled) if o is not None]
        overhead = min(own) if own else None
    lead = (
        f"A new resource adds {duration(costs.saving)} to an operation ({costs.share:.0%} of"
        f" it done fresh; making and destroying one alone takes {duration(costs.create)}):"
        " that is what a pool can save"
    )
    if overhead is None:
        return lead + "."
    if overhead >= costs.saving:
        return f"{lead}, and a pool's own bookkeeping costs as much or more ({_own(overhead)})."
    if costs.share < 0.2:
        return f"{lead}; the pool's own part costs {_own(overhead)}, so little is left to gain."
    return f"{lead}; the pool's own part costs {_own(overhead)}."


def _own(overhead: float) -> str:
    """A pool's own cost; below a tenth of a microsecond it is lost in the noise."""
    return duration(overhead) if overhead >= 1e-7 else "too little to measure"


def _pattern_reasons(pattern: Pattern, fit: str, *, external: bool) -> list[str]:
    lines: list[str] = []
    if pattern.source == "assumed":
        kind = (
            "needs destroying (it holds something the garbage collector cannot release)"
            if external
            else "is plain memory"
        )
        lines.append(
            f"Usage was not described, so it is assumed: this resource {kind}, so"
            + (
                " it likely waits between requests, in a steady number."
                if external
                else " it is likely reused at once, by a varying number of users."
            )
            + " Pass idle_gap= and concurrency= (or record a pool with observe=True and call"
            " respool.advise_from(pool)) to decide on your real pattern."
        )
    else:
        origin = "recorded" if pattern.source == "recorded" else "described"
        if pattern.idle_gap is None:
            reuse = "no reuse was seen, so reuse counts as eventual"
        else:
            if pattern.gc_interval is not None:
                against = f"the {duration(pattern.gc_interval)} between full collections"
            else:
                against = f"no full collection in {duration(pattern.gc_watched)} watched"
            speed = "quick" if pattern.quick else "eventual"
            idle = (
                "are reused at once"
                if pattern.idle_gap == 0
                else f"sit idle {duration(pattern.idle_gap)} between uses"
                + (" (90th percentile)" if pattern.source == "recorded" else "")
            )
            reuse = f"resources {idle}, against {against}: {speed} reuse"
        if pattern.fluctuation is None:
            demand = "the number in use was not described, so it counts as " + (
                "varying" if pattern.dynamic else "steady"
            )
        else:
            demand = (
                f"the number in use moves by {pattern.fluctuation:.0%} of its high level"
                f" ({pattern.floor} to {pattern.high}): "
                + ("a dynamic pool" if pattern.dynamic else "a static pool")
            )
        lines.append(f"Usage ({origin}): {reuse}; {demand}. That is {fit}'s quadrant.")
        if pattern.uses is not None and pattern.uses < FEW_USES:
            lines.append(
                f"Only {pattern.uses} uses were recorded: observe longer before resizing a"
                " pool on these figures."
            )
    if external and pattern.quick and pattern.dynamic:
        lines.append(
            "A TransientPool is never advised for a resource that needs destroying: the"
            " garbage collector would decide when it goes, with no limit on how many stay open."
        )
    return lines
