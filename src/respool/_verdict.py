"""When does pooling pay? The rules, written once.

The tour prints a verdict next to every speed-up it measures, and the advisor (``respool
advise``, coming) will recommend a pool or not from the same kind of figures. If each carried
its own thresholds they would drift apart and contradict each other, so both read them here.

Two rules keep a printed verdict believable:

* A verdict is decided on the speed-up **as printed**, rounded to the precision shown. A reader
  who sees "2.0x" next to a legend saying "pays off from 2.0x" must read "pays off", even if the
  unrounded ratio was 1.96. :func:`judge` rounds first and classifies the rounded figure, and
  :class:`Judgement` prints that same figure.
* The legend is generated from the thresholds (:func:`legend`), so it cannot disagree with
  them either.

Why these thresholds: a pool adds code that can go wrong (resources leaked, reused dirty or
dead), so a speed-up has to be clearly above noise to be worth it. Below 1.3x the gain is about
what a busy machine or the pool's own bookkeeping can produce; from 2.0x the work is at least
halved; at 0.8x and below the pool is plainly the slower way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = ["DEFAULT_RULES", "Judgement", "Rules", "Verdict", "judge", "legend", "speedup"]


class Verdict(StrEnum):
    """What a measured speed-up says about pooling, best first."""

    PAYS_OFF = "pays off"
    MODEST_GAIN = "modest gain"
    NO_CLEAR_GAIN = "no clear gain"
    LOSES = "pooling loses"


@dataclass(frozen=True, slots=True)
class Rules:
    """Thresholds on the speed-up (cost without a pool divided by cost with one).

    Each threshold is the lowest speed-up that earns its verdict; anything below
    ``no_clear_gain`` is :attr:`Verdict.LOSES`. ``digits`` is the precision speed-ups are
    printed with, and so the precision verdicts are decided on.
    """

    pays_off: float = 2.0
    modest_gain: float = 1.3
    no_clear_gain: float = 0.9
    digits: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.digits <= 6:
            raise ValueError(f"digits must be between 0 and 6, got {self.digits}")
        if not 0 < self.no_clear_gain <= self.modest_gain <= self.pays_off < math.inf:
            raise ValueError(
                "thresholds must satisfy 0 < no_clear_gain <= modest_gain <= pays_off, got"
                f" no_clear_gain={self.no_clear_gain}, modest_gain={self.modest_gain},"
                f" pays_off={self.pays_off}"
            )

    def classify(self, speedup: float) -> Verdict:
        """The verdict for a speed-up that is already rounded as it will be printed."""
        if speedup >= self.pays_off:
            return Verdict.PAYS_OFF
        if speedup >= self.modest_gain:
            return Verdict.MODEST_GAIN
        if speedup >= self.no_clear_gain:
            return Verdict.NO_CLEAR_GAIN
        return Verdict.LOSES


#: The thresholds the tour prints and the advisor will use.
DEFAULT_RULES: Final = Rules()


@dataclass(frozen=True, slots=True)
class Judgement:
    """A speed-up as printed and the verdict decided on exactly that figure."""

    speedup: float
    verdict: Verdict
    digits: int = DEFAULT_RULES.digits

    def __str__(self) -> str:
        """The speed-up as it must be shown, for example ``2.0x``."""
        return f"{self.speedup:.{self.digits}f}x"


def speedup(without_pool: float, with_pool: float, rules: Rules = DEFAULT_RULES) -> float:
    """How many times faster the pooled way is, rounded as it will be printed.

    Both arguments are costs of one operation in the same unit (seconds, microseconds...).
    Costs must be positive and finite: a zero cost means the measurement failed, and a ratio
    built on it would be a verdict on nothing.
    """
    for name, value in (("without_pool", without_pool), ("with_pool", with_pool)):
        if isinstance(value, bool) or not (isinstance(value, int | float) and 0 < value < math.inf):
            raise ValueError(f"{name} must be a positive, finite cost, got {value!r}")
    return round(without_pool / with_pool, rules.digits)


def judge(without_pool: float, with_pool: float, rules: Rules = DEFAULT_RULES) -> Judgement:
    """The printed speed-up of pooling and its verdict, decided on the same rounded number."""
    factor = speedup(without_pool, with_pool, rules)
    return Judgement(factor, rules.classify(factor), rules.digits)


def legend(rules: Rules = DEFAULT_RULES) -> str:
    """The thresholds in words, for printing under a table of verdicts."""
    d = rules.digits
    return (
        f"'{Verdict.PAYS_OFF}' from {rules.pays_off:.{d}f}x,"
        f" '{Verdict.MODEST_GAIN}' from {rules.modest_gain:.{d}f}x,"
        f" '{Verdict.NO_CLEAR_GAIN}' from {rules.no_clear_gain:.{d}f}x,"
        f" '{Verdict.LOSES}' below"
    )
