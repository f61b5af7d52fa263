""" "Do I need a pool?": measure, then recommend a strategy (or none) and its sizes.

* :func:`advise` times the user's own ``create`` and ``use``: an operation done fresh against
  the same operation through each of the four strategies, in one run, within a time budget.
* :func:`advise_from` reads what a pool recorded of its use (``observe=True``) and places it on
  the two axes: quick or eventual reuse, static or dynamic demand, with sizes to match.

The decisions are made in :mod:`respool.advisor._decide` (no I/O), the timing in
:mod:`respool.advisor._measure`, the words and the chart in :mod:`respool.advisor._report`.
Pooling is judged by the same rules as the tour's verdicts (:mod:`respool._verdict`).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from respool import _validate
from respool._usage import gc_interval
from respool._verdict import DEFAULT_RULES, Judgement, Verdict
from respool.advisor._decide import (
    STRATEGIES,
    Costs,
    Pattern,
    decide,
    pattern_assumed,
    pattern_described,
    pattern_recorded,
)
from respool.errors import AdviceError
from respool.lifecycle import Lifecycle, coerce
from respool.stats import Usage

__all__ = ["STRATEGIES", "Advice", "AdviceError", "Costs", "advise", "advise_from"]

T = TypeVar("T")

#: The default time budget of :func:`advise`, in seconds.
DEFAULT_BUDGET = 5.0


@dataclass(frozen=True)
class Advice:
    """The advisor's recommendation: whether to pool, with which strategy and sizes, and why.

    ``str(advice)`` is the report in plain words with the figures; :meth:`as_dict` the same
    for machines; :meth:`plot` draws it.
    """

    #: Pool or not.
    pool: bool
    #: "FixedPool", "ElasticPool", "WorkerPool", "TransientPool", or None (do not pool). For
    #: asyncio code, the ``Async`` twin of the same name.
    strategy: str | None
    #: The strategy the usage pattern points to (``strategy`` differs when that one did not
    #: pay, or is None when none did).
    fits: str
    #: The speed-up of an operation through ``strategy`` over the same operation done fresh,
    #: as printed, and its verdict (None when costs were not measured).
    speedup: float | None
    verdict: Verdict | None
    #: Suggested constructor sizes for ``strategy`` (empty when the demand is unknown).
    sizes: dict[str, int]
    #: What was measured (None from :func:`advise_from`), recorded, and concluded.
    costs: Costs | None
    usage: Usage | None
    pattern: Pattern
    judgements: dict[str, Judgement]
    reasons: tuple[str, ...]
    #: What the advice is about (the create callable, or the pool), and remarks on how it was
    #: measured.
    subject: str
    notes: tuple[str, ...] = ()
    #: The strategy of the pool the usage was recorded in (:func:`advise_from`).
    current: str | None = None
    seconds: float = field(default=0.0, compare=False)

    @property
    def suggestion(self) -> str:
        """The constructor call to write, for example ``FixedPool(create, size=4)``."""
        if self.strategy is None:
            return "no pool: make the resource where it is used"
        args = ["create", *(f"{name}={value}" for name, value in self.sizes.items())]
        return f"{self.strategy}({', '.join(args)})"

    def __str__(self) -> str:
        from respool.advisor._report import text

        return text(self)

    def as_dict(self) -> dict[str, Any]:
        """The advice as plain data (for ``--json``)."""
        from respool.advisor._report import as_dict

        return as_dict(self)

    def plot(self, path: str | Path) -> None:
        """Draw the costs per strategy and, with recorded usage, the concurrency over time and
        the idle gaps against the interval between full collections, into a PNG at *path*.
        Needs matplotlib (``pip install 'respool[plot]'``)."""
        from respool.advisor._report import plot

        plot(self, Path(path))


def _subject(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None)
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return f"{module}:{name}" if module else str(name)


def _not_async(name: str, fn: object) -> None:
    if fn is not None and inspect.iscoroutinefunction(fn):
        raise TypeError(
            f"{name} is an async function; the advisor times synchronous callables: pass a"
            " function that runs it to completion, or time it in your own event loop"
        )


def _concurrency(value: object) -> int | tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, tuple | list) and len(value) == 2:
        low = _validate.integer("concurrency (low)", value[0], minimum=0)
        high = _validate.integer("concurrency (high)", value[1], minimum=1)
        if low > high:
            raise ValueError(f"concurrency must be (low, high) with low <= high, got {value!r}")
        return (low, high)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            "concurrency must be an int (a steady number in use) or a (low, high) pair,"
            f" got {value!r}"
        )
    return _validate.integer("concurrency", value, minimum=1)


def advise(
    create: Lifecycle[T] | Callable[[], T],
    use: Callable[[T], object],
    *,
    reset: Callable[[T], object] | None = None,
    destroy: Callable[[T], object] | None = None,
    idle_gap: float | None = None,
    concurrency: int | tuple[int, int] | None = None,
    usage: Usage | None = None,
    budget: float = DEFAULT_BUDGET,
) -> Advice:
    """Measure *create* and *use* and say whether to pool, how, and why.

    It times, with warm-up and repeated rounds, making and destroying a resource, using one
    (and ``reset``), an operation done fresh, and the same operation through each strategy;
    then places the use pattern on the two axes. The pattern is what ``usage`` recorded (a
    pool's ``stats().usage``), or what ``idle_gap`` (seconds a resource typically waits
    between uses) and ``concurrency`` (a steady number in use, or ``(low, high)``) describe,
    or else an assumption the report states.

    A resource without a ``destroy`` that has a ``close()`` is closed with it. The run takes
    about *budget* seconds at most; a callback that raises, a ``create`` that returns None or
    a call that overruns the budget raises :class:`AdviceError` saying which, and everything
    the advisor made is destroyed.
    """
    lifecycle = coerce(create, reset=reset, destroy=destroy)
    _validate.required_callable("use", use)
    for name in ("create", "reset", "destroy"):
        _not_async(name, getattr(lifecycle, name))
    _not_async("use", use)
    budget_s = _validate.positive_seconds("budget", budget)
    if budget_s is None:
        raise TypeError("budget must be a number of seconds > 0, got None")
    if idle_gap is not None:
        idle_gap = _validate.seconds("idle_gap", idle_gap)
        if idle_gap is not None and not math.isfinite(idle_gap):
            raise ValueError(f"idle_gap must be a finite number of seconds, got {idle_gap!r}")
    shape = _concurrency(concurrency)
    if usage is not None:
        if not isinstance(usage, Usage):
            raise TypeError(f"usage must be a respool Usage (pool.stats().usage), got {usage!r}")
        if idle_gap is not None or shape is not None:
            raise TypeError(
                "pass either usage= (recorded) or idle_gap=/concurrency= (described), not both"
            )

    from respool.advisor._measure import Measurement

    run = Measurement(lifecycle, use, budget_s)
    run.start()
    costs = run.wait()
    external = lifecycle.destroy is not None or run.closed_with_close
    pattern: Pattern
    if usage is not None:
        pattern = pattern_recorded(usage)
    elif idle_gap is None and shape is None:
        pattern = pattern_assumed(external=external)
    else:
        interval, watched = gc_interval()
        pattern = pattern_described(
            idle_gap, shape, external=external, gc_interval=interval, gc_watched=watched
        )
    decision = decide(costs, pattern, external=external, rules=DEFAULT_RULES)
    notes = []
    if run.closed_with_close:
        notes.append("No destroy was given: each resource was closed with its own close().")
    return Advice(
        pool=decision.pool,
        strategy=decision.strategy,
        fits=decision.fits,
        speedup=None if decision.judgement is None else decision.judgement.speedup,
        verdict=None if decision.judgement is None else decision.judgement.verdict,
        sizes=decision.sizes,
        costs=costs,
        usage=usage,
        pattern=pattern,
        judgements=decision.judgements,
        reasons=decision.reasons,
        subject=_subject(lifecycle.create),
        notes=tuple(notes),
        seconds=run.elapsed,
    )


_STRATEGY_OF = {
    "FixedPool": "FixedPool",
    "AsyncFixedPool": "FixedPool",
    "ElasticPool": "ElasticPool",
    "AsyncElasticPool": "ElasticPool",
    "WorkerPool": "WorkerPool",
    "AsyncWorkerPool": "WorkerPool",
    "TransientPool": "TransientPool",
}


def advise_from(pool: object) -> Advice:
    """Recommend a strategy and sizes from what *pool* recorded of its use.

    The pool must have been made with ``observe=True`` and have served some uses. Costs are
    not measured here (the pool's resource is in use by the program): pair it with
    :func:`advise`, passing ``usage=pool.stats().usage``, to learn whether pooling pays.
    """
    stats = getattr(pool, "stats", None)
    kind = type(pool).__name__
    if not callable(stats) or kind not in _STRATEGY_OF:
        raise TypeError(
            f"advise_from takes a respool pool (FixedPool, ElasticPool, WorkerPool,"
            f" TransientPool or an asyncio twin), got {pool!r}"
        )
    usage = getattr(stats(), "usage", None)
    name = getattr(pool, "name", kind)
    if usage is None:
        raise ValueError(
            f"pool {name!r} does not record its usage: make it with observe=True, let it"
            " serve its traffic, then ask again"
        )
    if usage.uses == 0:
        raise ValueError(f"pool {name!r} has recorded no use yet: ask once it has served some")
    lifecycle = getattr(pool, "lifecycle", None)
    external = getattr(lifecycle, "destroy", None) is not None
    pattern = pattern_recorded(usage)
    decision = decide(None, pattern, external=external, rules=DEFAULT_RULES)
    current = _STRATEGY_OF[kind]
    reasons = list(decision.reasons)
    if decision.strategy == current:
        reasons.insert(0, f"The pool is a {kind}: the right strategy for this usage.")
    else:
        reasons.insert(
            0,
            f"The pool is a {kind}, but this usage fits {decision.strategy} better (see below).",
        )
    return Advice(
        pool=decision.pool,
        strategy=decision.strategy,
        fits=decision.fits,
        speedup=None,
        verdict=None,
        sizes=decision.sizes,
        costs=None,
        usage=usage,
        pattern=pattern,
        judgements={},
        reasons=tuple(reasons),
        subject=f"{kind} {name!r}",
        current=current,
    )
