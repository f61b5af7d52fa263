"""The advice in words (``str(advice)``), as data (``--json``) and as a chart (``--plot``)."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from respool._verdict import DEFAULT_RULES, legend
from respool.advisor._decide import STRATEGIES
from respool.advisor._units import duration

if TYPE_CHECKING:
    from respool.advisor import Advice

__all__ = ["as_dict", "plot", "text"]

_WIDTH = 79


def text(advice: Advice, *, width: int = _WIDTH) -> str:
    """The report: the answer first, then the figures, then the reasons, wrapped at *width*
    columns (the table needs about 78)."""

    def _wrap(line: str, first: str = "  - ", rest: str = "    ") -> str:
        return textwrap.fill(line, width=width, initial_indent=first, subsequent_indent=rest)

    out: list[str] = []
    costs = advice.costs
    took = f", measured in {advice.seconds:.1f} s" if costs is not None else ""
    rounds = f", best of {costs.rounds} rounds" if costs is not None and costs.rounds else ""
    out.append(_wrap(f"Advice for {advice.subject}{took}{rounds}", "", ""))
    out.append("")
    if advice.strategy is None:
        out.append(_wrap("Don't pool: " + _answer(advice), "", "  "))
    else:
        answer = f", {_answer(advice)}" if costs else "."
        out.append(_wrap(f"Pool it: {advice.suggestion}{answer}", "", "  "))
    if costs is not None:
        out.append("")
        out.append("What one operation costs here:")
        rows = [
            ("done fresh", duration(costs.fresh), "create, use, destroy: the baseline"),
            ("create+destroy", duration(costs.create), "timed alone"),
            ("use", duration(costs.use), "on a kept resource"),
        ]
        if costs.reset is not None:
            rows.append(("reset", duration(costs.reset), ""))
        for name in STRATEGIES:
            if name in costs.pooled:
                judgement = advice.judgements.get(name)
                remark = f"{judgement!s:>6} {judgement.verdict:<13}" if judgement else ""
                overhead = costs.overhead(name)
                if overhead is not None:
                    remark += " own " + (duration(overhead) if overhead >= 1e-7 else "~0")
                if name == advice.strategy:
                    remark += " <- advised"
                rows.append((name, duration(costs.pooled[name]), remark))
            elif name in costs.unmeasured:
                rows.append((name, "-", f"not measured: {costs.unmeasured[name]}"))
        for label, figure, remark in rows:
            out.append(f"  {label:<15}{figure:>9}  {remark}".rstrip())
        out.append("  (own: what the strategy adds to a use and its reset)")
    if advice.usage is not None:
        out.append("")
        out.append("What the pool recorded:")
        out.extend("  " + line for line in _usage_lines(advice))
    out.append("")
    out.append("Why:")
    for reason in advice.reasons:
        out.append(_wrap(reason))
    for note in advice.notes:
        out.append(_wrap(note, first="  note: ", rest="        "))
    if costs is not None:
        out.append("")
        out.append(_wrap("Speed-ups: " + legend(DEFAULT_RULES) + ".", first="", rest=""))
    return "\n".join(out)


def _answer(advice: Advice) -> str:
    if advice.speedup is None or advice.verdict is None:
        if advice.strategy is None:
            return "no strategy could be measured."
        return ""
    if advice.strategy is None:
        return f"allocating afresh is as fast; the best pool does {advice.speedup:.1f}x."
    return f"{advice.verdict}, {advice.speedup:.1f}x faster than making one per use."


def _usage_lines(advice: Advice) -> list[str]:
    usage = advice.usage
    assert usage is not None
    lines = [f"{usage.uses} uses in {duration(usage.observed)}, {usage.reuses} of them reuses"]
    if usage.reuses:
        lines.append(
            f"idle gaps: median {duration(usage.gap_p50)}, 90th percentile"
            f" {duration(usage.gap_p90)}, longest {duration(usage.gap_max)}"
        )
    if usage.gc_interval is not None:
        lines.append(
            f"full garbage collections: {usage.full_collections}, one every"
            f" {duration(usage.gc_interval)}"
        )
    else:
        lines.append(f"full garbage collections: none in {duration(usage.observed)}")
    lines.append(
        f"in use at once: floor (10th percentile) {usage.in_use_p10}, median"
        f" {usage.in_use_p50}, 99th percentile {usage.in_use_p99}, most {usage.in_use_max};"
        f" typical burst {usage.burst_peak}"
    )
    return lines


def as_dict(advice: Advice) -> dict[str, Any]:
    """Plain data: every figure in seconds, every name as a string."""
    costs = advice.costs
    pattern = advice.pattern
    return {
        "subject": advice.subject,
        "pool": advice.pool,
        "strategy": advice.strategy,
        "fits": advice.fits,
        "suggestion": advice.suggestion,
        "sizes": dict(advice.sizes),
        "speedup": advice.speedup,
        "verdict": None if advice.verdict is None else str(advice.verdict),
        "current": advice.current,
        "costs": None
        if costs is None
        else {
            "create": costs.create,
            "use": costs.use,
            "reset": costs.reset,
            "fresh": costs.fresh,
            "share": costs.share,
            "pooled": dict(costs.pooled),
            "unmeasured": dict(costs.unmeasured),
            "rounds": costs.rounds,
        },
        "judgements": {
            name: {"speedup": j.speedup, "verdict": str(j.verdict)}
            for name, j in advice.judgements.items()
        },
        "pattern": {
            "source": pattern.source,
            "quick": pattern.quick,
            "dynamic": pattern.dynamic,
            "idle_gap": pattern.idle_gap,
            "gc_interval": pattern.gc_interval,
            "gc_watched": pattern.gc_watched,
            "fluctuation": pattern.fluctuation,
        },
        "usage": None if advice.usage is None else advice.usage.as_dict(),
        "reasons": list(advice.reasons),
        "notes": list(advice.notes),
        "seconds": advice.seconds,
    }


def plot(advice: Advice, path: Path) -> None:
    """Draw the advice into a PNG: costs per strategy; with usage, concurrency over time and
    the idle-gap histogram against the interval between full collections."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError(
            "drawing the advice needs matplotlib: pip install 'respool[plot]'"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: list[str] = []
    if advice.costs is not None:
        panels.append("costs")
    if advice.usage is not None:
        panels += ["timeline", "gaps"]
    if not panels:  # pragma: no cover - every Advice has costs or usage
        raise ValueError("nothing to draw: the advice has neither costs nor usage")
    figure, axes = plt.subplots(len(panels), 1, figsize=(8, 3.2 * len(panels)), squeeze=False)
    for ax, panel in zip((row[0] for row in axes), panels, strict=True):
        if panel == "costs":
            _plot_costs(ax, advice)
        elif panel == "timeline":
            _plot_timeline(ax, advice)
        else:
            _plot_gaps(ax, advice)
    figure.suptitle(f"respool advise: {advice.subject}\n{advice.suggestion}", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _plot_costs(ax: Any, advice: Advice) -> None:
    costs = advice.costs
    assert costs is not None
    names = ["done fresh", *(f"{n}" for n in STRATEGIES if n in costs.pooled)]
    values = [costs.fresh * 1e6, *(costs.pooled[n] * 1e6 for n in STRATEGIES if n in costs.pooled)]
    colours = ["grey"] + [
        "tab:green" if n == advice.strategy else "tab:blue" for n in STRATEGIES if n in costs.pooled
    ]
    ax.barh(names, values, color=colours)
    ax.invert_yaxis()
    ax.set_xlabel("microseconds per operation (best round)")
    ax.set_title("One operation: fresh vs through each strategy", fontsize=9)


def _plot_timeline(ax: Any, advice: Advice) -> None:
    usage = advice.usage
    assert usage is not None
    xs = [start for start, _low, _high in usage.timeline]
    lows = [low for _start, low, _high in usage.timeline]
    highs = [high for _start, _low, high in usage.timeline]
    ax.fill_between(xs, lows, highs, step="post", alpha=0.4, label="fewest..most in use")
    ax.step(xs, highs, where="post", linewidth=0.8)
    ax.axhline(usage.in_use_p99, color="tab:red", linestyle="--", label="99th percentile")
    ax.axhline(usage.in_use_p10, color="tab:grey", linestyle=":", label="floor (10th pct)")
    ax.set_xlabel("seconds since observing began")
    ax.set_ylabel("in use")
    ax.set_title("Concurrency over time", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")


def _plot_gaps(ax: Any, advice: Advice) -> None:
    usage = advice.usage
    assert usage is not None
    if usage.gap_histogram:
        tops = [top for top, _count in usage.gap_histogram]
        counts = [count for _top, count in usage.gap_histogram]
        ax.bar([t / 2 for t in tops], counts, width=[t / 2 for t in tops], align="edge")
    ax.set_xscale("log")
    if usage.gc_interval is not None:
        ax.axvline(usage.gc_interval, color="tab:red", label="interval between full GCs")
    elif usage.observed > 0 and math.isfinite(usage.observed):
        ax.axvline(usage.observed, color="tab:red", linestyle="--", label="no full GC within")
    ax.set_xlabel("idle gap between uses (seconds, log scale)")
    ax.set_ylabel("uses")
    ax.set_title("Idle gaps against the garbage collector", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
