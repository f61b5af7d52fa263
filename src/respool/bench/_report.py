"""What a benchmark run produces, and the three ways it is shown: text, JSON and a chart.

Scenarios build :class:`Table` objects and never print; this module turns them into text for
the terminal, into JSON for tools (``--json``) and into bar charts of ratios (``--plot``).
Keeping the figures apart from their rendering is what lets the three agree: the text, the
file and the chart read the same numbers.

A table has one baseline row, timed in the same interleaved rounds as the others; every other
row carries two ratios to it: of best rounds (the least disturbed, what a quiet machine would
show) and of medians (the typical round). Goals are judged on the median's, because contended
rounds vary for reasons of their own (a convoy forms in one round and not the next) and a best
round alone would hide that; goal lines print both.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import statistics
import sys
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from respool.bench._timing import Spread

__all__ = [
    "MISSING_HINT",
    "Column",
    "Goal",
    "Row",
    "ScenarioReport",
    "Table",
    "machine_info",
    "plot",
    "ratio_text",
    "render",
    "to_json",
]

#: Columns that prose lines (goals, notes) are folded to.
WIDTH: Final = 100

#: What a row says when the peer it would time cannot be imported.
MISSING_HINT: Final = "not installed (pip install 'respool[bench]')"

Cell = float | int | str | None


@dataclass(frozen=True)
class Column:
    """An extra column of a table: the key of :attr:`Row.extra` it shows, its header, and
    the format of a number in it (``str.format`` syntax)."""

    key: str
    header: str
    fmt: str = "{:.1f}"


@dataclass(frozen=True)
class Row:
    """One case of a table.

    ``best`` and ``median`` are in the table's unit (for a throughput table, the best round
    is the *highest*); ``ratio`` compares the median with the baseline's median, in the table's
    sense: cost over baseline cost for a time, throughput over baseline throughput for a
    rate. A row that could not be measured (a peer not installed) has ``note`` set and no
    figures.
    """

    name: str
    best: float | None = None
    median: float | None = None
    ratio: float | None = None
    ratio_best: float | None = None
    baseline: bool = False
    note: str = ""
    extra: Mapping[str, Cell] = field(default_factory=dict)
    #: Every round's nanoseconds per operation (per item, for a table per item), in the
    #: order taken, for whoever wants more than two figures.
    rounds_ns: tuple[float, ...] = ()

    @property
    def measured(self) -> bool:
        """Whether the row holds figures (False for a peer that is not installed)."""
        return self.median is not None


@dataclass(frozen=True)
class Goal:
    """A figure to reach, as the issue wrote it, and whether this run reached it.

    ``met`` is None when the run could not tell (a peer it compares with is missing).
    """

    text: str
    value: str
    met: bool | None

    @property
    def verdict(self) -> str:
        """``meets``, ``MISSES`` (capitals: the line a reader must not overlook) or why
        there is no verdict."""
        if self.met is None:
            return "not measured"
        return "meets" if self.met else "MISSES"


@dataclass(frozen=True)
class Table:
    """The rows of one measurement, with their baseline, goals and notes."""

    key: str
    title: str
    unit: str
    baseline: str
    rows: Sequence[Row]
    higher_is_better: bool = False
    columns: Sequence[Column] = ()
    goals: Sequence[Goal] = ()
    notes: Sequence[str] = ()

    def row(self, name: str) -> Row:
        """The row called *name* (KeyError if there is none: a typo must not pass)."""
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(name)


@dataclass
class ScenarioReport:
    """One scenario's outcome: its tables, or the error that stopped it."""

    name: str
    summary: str
    tables: list[Table] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0


# -- building rows from timings ---------------------------------------------------------------

Sense = Literal["time", "rate"]


def rows_from(
    spreads: Sequence[Spread],
    baseline: str,
    *,
    scale: float = 1.0,
    sense: Sense = "time",
    extra: Mapping[str, Mapping[str, Cell]] | None = None,
) -> list[Row]:
    """Rows for timed cases: ns per operation (divided by *scale*, the operations in one
    call) for ``time``, thousands of operations per second for ``rate``; each row's ratio is
    to the *baseline* case's median."""
    by_name = {s.name: s for s in spreads}
    base = by_name[baseline]
    rows = []
    for s in spreads:
        if sense == "time":
            best, median = s.min / scale, s.median / scale
            ratio, ratio_best = s.median / base.median, s.min / base.min
        else:
            best, median = 1e6 / s.min * scale, 1e6 / s.median * scale
            ratio, ratio_best = base.median / s.median, base.min / s.min
        rows.append(
            Row(
                s.name,
                best,
                median,
                ratio,
                ratio_best,
                baseline=s.name == baseline,
                extra=dict((extra or {}).get(s.name, {})),
                rounds_ns=tuple(ns / scale for ns in s.rounds),
            )
        )
    return rows


def missing(name: str) -> Row:
    """The row of a peer that is not installed."""
    return Row(name, note=MISSING_HINT)


# -- text ---------------------------------------------------------------------------------------


def _number(value: float) -> str:
    """A figure with as many digits as it deserves: 12345, 123.4, 1.23."""
    if not math.isfinite(value):
        return str(value)
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _ratio(value: float | None) -> str:
    """A ratio with two decimals, or two significant digits below 0.1 (0.0048, not 0.00)."""
    if value is None:
        return "-"
    return f"{value:.2f}" if value >= 0.1 or value == 0 else f"{value:.2g}"


def ratio_text(row: Row) -> str:
    """A row's ratio as goal lines print it: the median's, then the best rounds'."""
    return f"{row.ratio or 0:.2f}x (best rounds {row.ratio_best or 0:.2f}x)"


def _cell(value: Cell, fmt: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return fmt.format(value)


def render_table(table: Table) -> str:
    """One table as aligned text: name, best, median, ratio, extra columns; then goals."""
    compared = any(row.baseline for row in table.rows)
    if not compared:
        meaning = "lower is better; outcomes, not costs: no baseline"
    elif table.higher_is_better:
        meaning = "higher is better; x best, x median: throughput ratios to the baseline (*)"
    else:
        meaning = "lower is better; x best, x median: ratios to the baseline (*)"
    lines = [table.title, _wrap(f"({table.unit}; {meaning})")]
    headers = ["case", "best", "median"] + (["x best", "x median"] if compared else [])
    headers += [c.header for c in table.columns]
    body: list[list[str]] = []
    for row in table.rows:
        name = ("* " if row.baseline else "  ") + row.name
        if not row.measured:
            body.append([name, row.note])
            continue
        cells = [
            name,
            _number(row.best) if row.best is not None else "-",
            _number(row.median) if row.median is not None else "-",
        ]
        if compared:
            cells += [_ratio(row.ratio_best), _ratio(row.ratio)]
        cells += [_cell(row.extra.get(c.key), c.fmt) for c in table.columns]
        body.append(cells)
    widths = [len(h) for h in headers]
    for cells in body:
        if len(cells) == len(headers):
            widths = [max(w, len(c)) for w, c in zip(widths, cells, strict=True)]
        else:
            widths[0] = max(widths[0], len(cells[0]))
    widths[0] = max(widths[0], len(headers[0]) + 2)

    def line(cells: Sequence[str]) -> str:
        if len(cells) != len(headers):  # a note spans the figures' columns
            return f"{cells[0]:<{widths[0]}}  {cells[1]}"
        first = f"{cells[0]:<{widths[0]}}"
        rest = [f"{c:>{w}}" for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    lines.append(line(["  " + headers[0], *headers[1:]]))
    lines += [line(cells) for cells in body]
    lines += [_wrap(f"goal: {g.text}: {g.value} -> {g.verdict}") for g in table.goals]
    lines += [_wrap(note) for note in table.notes]
    return "\n".join(lines)


def _wrap(text: str) -> str:
    """A line of prose folded to the width of the tables, continuation lines indented."""
    return textwrap.fill(text, width=WIDTH, subsequent_indent="    ", break_on_hyphens=False)


def render(report: ScenarioReport) -> str:
    """A scenario's tables as text, or the reason it has none."""
    head = f"== {report.name}: {report.summary}"
    if report.error is not None:
        return f"{head}\nFAILED: {report.error}"
    return "\n\n".join([head, *(render_table(t) for t in report.tables)])


# -- JSON -------------------------------------------------------------------------------------


def machine_info() -> dict[str, object]:
    """Where and when the figures were taken: ratios travel between machines, absolute
    figures do not, so every JSON file says which machine it describes."""
    uname = platform.uname()
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": uname.machine,
        "processor": uname.processor or _cpu_model(),
        "cpu_count": os.cpu_count(),
        "gil_enabled": getattr(sys, "_is_gil_enabled", lambda: True)(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo where there is one (``uname -p`` is often
    just "unknown" on Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for text in info:
                if text.startswith("model name"):
                    return text.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _row_json(row: Row) -> dict[str, object]:
    return {
        "name": row.name,
        "baseline": row.baseline,
        "measured": row.measured,
        "note": row.note or None,
        "best": row.best,
        "median": row.median,
        "ratio": row.ratio,
        "ratio_best": row.ratio_best,
        "extra": dict(row.extra),
        # The same figures as time per operation whatever the table's unit (for a
        # throughput table the best round is the *highest* rate, the lowest time).
        "ns_per_op": (
            {"min": min(row.rounds_ns), "median": statistics.median(row.rounds_ns)}
            if row.rounds_ns
            else None
        ),
        "rounds_ns": list(row.rounds_ns),
    }


def _table_json(table: Table) -> dict[str, object]:
    return {
        "key": table.key,
        "title": table.title,
        "unit": table.unit,
        "higher_is_better": table.higher_is_better,
        "ratio_means": (
            "throughput / baseline throughput"
            if table.higher_is_better
            else "median / baseline median"
        ),
        "baseline": table.baseline,
        "rows": [_row_json(r) for r in table.rows],
        "goals": [
            {"text": g.text, "value": g.value, "met": g.met, "verdict": g.verdict}
            for g in table.goals
        ],
        "notes": list(table.notes),
    }


def to_json(
    reports: Sequence[ScenarioReport], *, quick: bool, machine: Mapping[str, object]
) -> dict[str, object]:
    """Every table of the run as plain data, with the machine it ran on."""
    from respool import __version__

    return {
        "respool": __version__,
        "quick": quick,
        "machine": dict(machine),
        "scenarios": [
            {
                "name": r.name,
                "summary": r.summary,
                "status": "failed" if r.error is not None else "ok",
                "error": r.error,
                "seconds": round(r.seconds, 3),
                "tables": [_table_json(t) for t in r.tables],
            }
            for r in reports
        ],
    }


def write_json(path: Path, data: Mapping[str, object]) -> None:
    """Write *data* to *path* (NaN and infinity are not JSON: refused, not written)."""
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")


# -- chart --------------------------------------------------------------------------------------


def plot(reports: Sequence[ScenarioReport], path: Path, *, title: str) -> None:
    """One horizontal bar chart of ratios per table with a baseline (so one or more per
    scenario), stacked in one PNG.

    The bars show each row's ratio to its baseline (a line marks 1.0), so a reader sees at a
    glance which rows are cheaper than the baseline and by how much. matplotlib is imported
    here only; the caller checks that it is installed before the run starts.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt

    tables = [
        (r.name, t)
        for r in reports
        for t in r.tables
        if any(row.ratio is not None and not row.baseline for row in t.rows)
    ]
    count = max(1, len(tables))
    heights = [max(1.6, 0.32 * len(t.rows) + 0.9) for _, t in tables] or [1.6]
    figure, axes = plt.subplots(
        count,
        1,
        figsize=(9, sum(heights) + 0.4),
        height_ratios=heights,
        squeeze=False,
        layout="constrained",
    )
    for ax, (scenario, table) in zip(axes[:, 0], tables, strict=False):
        rows = [r for r in table.rows if r.ratio is not None]
        names = [r.name for r in rows]
        ratios = [r.ratio or 0.0 for r in rows]
        colours = ["0.6" if r.baseline else "tab:blue" for r in rows]
        bars = ax.barh(range(len(rows)), ratios, color=colours)
        ax.bar_label(bars, fmt="%.2f", fontsize=6, padding=2)
        ax.set_yticks(range(len(rows)), names, fontsize=7)
        ax.invert_yaxis()
        ax.axvline(1.0, color="black", linewidth=0.8)
        sense = "throughput ratio, higher is better" if table.higher_is_better else "cost ratio"
        ax.set_title(f"{scenario}: {table.title}", fontsize=8, loc="left")
        ax.set_xlabel(f"x {table.baseline} ({sense})", fontsize=7)
        ax.tick_params(axis="x", labelsize=7)
        if max(ratios, default=1.0) / max(min(ratios, default=1.0), 1e-9) > 50:
            ax.set_xscale("log")
    if not tables:
        axes[0, 0].text(0.5, 0.5, "no ratios to plot", ha="center", va="center")
        axes[0, 0].set_axis_off()
    figure.suptitle(title, fontsize=9)
    figure.savefig(path, dpi=110)
    plt.close(figure)
