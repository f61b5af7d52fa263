"""What an observing pool records about its use, and the figures it draws from them.

Sans-I/O like the other cores: the shell passes ``now`` (the pool's clock) and the count of
full garbage collections in, and serialises the calls (its own lock, or its event loop). The
record is small and bounded whatever the traffic: a histogram of idle gaps (buckets a factor of
two wide), the time spent at each concurrency level, and a timeline of at most
:data:`TIMELINE_PERIODS` periods whose length doubles whenever it would grow longer.

Invariants, asserted by :meth:`UsageRecorder.check_invariants`: ``in_use >= 0``; every use
begun either ended or is in progress (``began - ended == in_use``, uses ended that were never
seen to begin being dropped rather than counted); the histogram holds ``reuses`` gaps; the time
spread over levels never exceeds the time observed.
"""

from __future__ import annotations

import math
from typing import Final

from respool.stats import Usage

__all__ = ["FIRST_STEP", "TIMELINE_PERIODS", "UsageRecorder"]

#: The timeline's first period, in seconds, and the most periods it keeps (merging pairs and
#: doubling the period when it would hold more).
FIRST_STEP: Final = 0.01
TIMELINE_PERIODS: Final = 512
#: Idle gaps are binned by powers of two of this unit (a microsecond): bucket ``k`` holds gaps
#: up to ``GAP_UNIT * 2**k``.
GAP_UNIT: Final = 1e-6


class UsageRecorder:
    """The usage record of one pool: fed by :meth:`began` and :meth:`ended`, read by
    :meth:`snapshot`."""

    __slots__ = (
        "_at_level",
        "_began",
        "_collections0",
        "_ended",
        "_gap_max",
        "_gaps",
        "_last",
        "_level",
        "_max",
        "_period",
        "_period_end",
        "_start",
        "_step",
        "_timeline",
    )

    def __init__(self, now: float, full_collections: int) -> None:
        self._start = now
        self._collections0 = full_collections
        #: Uses begun and ended (ends without a matching start are ignored).
        self._began = 0
        self._ended = 0
        #: The number in use now, and since when (``_last``).
        self._level = 0
        self._last = now
        self._max = 0
        #: Seconds spent at each level, up to ``_last``.
        self._at_level: dict[int, float] = {}
        #: Idle gaps: bucket index -> count; and the longest.
        self._gaps: dict[int, int] = {}
        self._gap_max = 0.0
        #: Per period of ``_step`` seconds from ``_start``: [fewest, most] in use.
        self._step = FIRST_STEP
        self._timeline: list[list[int]] = [[0, 0]]
        #: The period the clock is in, and when it ends (a move inside it needs no division).
        self._period = self._timeline[0]
        self._period_end = now + FIRST_STEP

    # -- recording ---------------------------------------------------------------------------

    def began(self, now: float, idle_since: float | None) -> None:
        """A use began at *now* with a resource idle since *idle_since* (None: a new one)."""
        self._move(now, +1)
        self._began += 1
        if idle_since is not None:
            gap = now - idle_since
            # Bucket k holds gaps in (GAP_UNIT * 2**(k-1), GAP_UNIT * 2**k]: the bit length
            # of the gap in units, rounded up, minus one (cheaper than a logarithm).
            bucket = (math.ceil(gap / GAP_UNIT) - 1).bit_length() if gap > GAP_UNIT else 0
            gaps = self._gaps
            gaps[bucket] = gaps.get(bucket, 0) + 1
            if gap > self._gap_max:
                self._gap_max = gap

    def ended(self, now: float) -> None:
        """A use ended at *now*."""
        if self._level == 0:
            return  # begun before anyone looked, or reported twice: nothing to take back
        self._move(now, -1)
        self._ended += 1

    def _move(self, now: float, delta: int) -> None:
        """The number in use changes by *delta* at *now*: account the time at the old level,
        and mark both levels in the timeline's current period."""
        last = self._last
        if now < last:
            now = last  # a clock read a moment before another thread's: same instant
        old = self._level
        at_level = self._at_level
        at_level[old] = at_level.get(old, 0.0) + (now - last)
        self._last = now
        if now >= self._period_end:
            self._reach(now, old)
        period = self._period
        new = old + delta
        self._level = new
        if new > self._max:
            self._max = new
        low, high = (old, new) if delta > 0 else (new, old)
        if low < period[0]:
            period[0] = low
        if high > period[1]:
            period[1] = high

    def _reach(self, now: float, held: int) -> None:
        """Extend the timeline to the period *now* falls in (the periods skipped held the
        level *held*, the one in force until now) and make it the current one."""
        index = int((now - self._start) / self._step)
        while index >= TIMELINE_PERIODS:
            self._halve()
            index = int((now - self._start) / self._step)
        timeline = self._timeline
        if index >= len(timeline):
            timeline.extend([held, held] for _ in range(index + 1 - len(timeline)))
        self._period = timeline[index]
        self._period_end = self._start + (index + 1) * self._step

    def _halve(self) -> None:
        """Double the period: merge the timeline's periods in pairs."""
        old = self._timeline
        merged = []
        for i in range(0, len(old), 2):
            pair = old[i : i + 2]
            merged.append([min(p[0] for p in pair), max(p[1] for p in pair)])
        self._timeline = merged
        self._step *= 2

    # -- reading -----------------------------------------------------------------------------

    def snapshot(self, now: float, full_collections: int) -> Usage:
        """The figures so far, as of *now*."""
        now = max(now, self._last)
        if now >= self._period_end:
            self._reach(now, self._level)
        at_level = dict(self._at_level)
        at_level[self._level] = at_level.get(self._level, 0.0) + (now - self._last)
        observed = now - self._start
        levels = sorted(at_level)
        total = sum(at_level.values())

        def level_at(share: float) -> int:
            if total <= 0.0:
                return self._level
            reached = 0.0
            for level in levels:
                reached += at_level[level]
                if reached >= share * total:
                    return level
            return levels[-1]

        # (No time observed yet: the figures are those of the level now, as level_at says.)
        mean = (
            sum(level * t for level, t in at_level.items()) / total
            if total > 0
            else float(self._level)
        )
        seen = [level for level in levels if at_level[level] > 0.0] or [self._level]
        floor = level_at(0.10)
        peaks = sorted(_burst_peaks(self._timeline, floor))
        collections = max(0, full_collections - self._collections0)
        reuses = sum(self._gaps.values())
        return Usage(
            observed=observed,
            uses=self._began,
            in_use=self._level,
            reuses=reuses,
            gap_p50=self._gap_at(0.50, reuses),
            gap_p90=self._gap_at(0.90, reuses),
            gap_p99=self._gap_at(0.99, reuses),
            gap_max=self._gap_max,
            gap_histogram=tuple(
                (_bucket_top(bucket), count) for bucket, count in sorted(self._gaps.items())
            ),
            in_use_min=min(seen),
            in_use_max=self._max,
            in_use_mean=mean,
            in_use_p10=floor,
            in_use_p50=level_at(0.50),
            in_use_p90=level_at(0.90),
            in_use_p99=level_at(0.99),
            burst_peak=peaks[(len(peaks) - 1) // 2] if peaks else floor,
            timeline=tuple(
                (i * self._step, low, high) for i, (low, high) in enumerate(self._timeline)
            ),
            timeline_step=self._step,
            full_collections=collections,
            gc_interval=observed / collections if collections else None,
        )

    def _gap_at(self, share: float, count: int) -> float:
        """The gap *share* of all gaps are no longer than (a bucket's top, capped by the
        longest seen), 0.0 without gaps."""
        if count == 0:
            return 0.0
        reached = 0
        for bucket in sorted(self._gaps):
            reached += self._gaps[bucket]
            if reached >= share * count:
                return min(_bucket_top(bucket), self._gap_max)
        return self._gap_max

    def check_invariants(self) -> None:
        """Assert the record is consistent (tests call this after every move)."""
        assert self._level >= 0
        assert self._began - self._ended == self._level, (self._began, self._ended, self._level)
        assert self._level <= self._max
        assert len(self._timeline) <= TIMELINE_PERIODS
        spread = sum(self._at_level.values())
        assert spread <= (self._last - self._start) + 1e-9, (spread, self._last - self._start)


def _burst_peaks(timeline: list[list[int]], floor: int) -> list[int]:
    """The peak of each burst: each run of periods whose most in use exceeds *floor*."""
    peaks: list[int] = []
    peak = None
    for _low, high in timeline:
        if high > floor:
            peak = high if peak is None else max(peak, high)
        elif peak is not None:
            peaks.append(peak)
            peak = None
    if peak is not None:
        peaks.append(peak)
    return peaks


def _bucket_top(bucket: int) -> float:
    return GAP_UNIT * 2.0**bucket
