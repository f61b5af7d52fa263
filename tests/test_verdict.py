"""The verdict rules shared by the tour and the coming advisor (``respool._verdict``)."""

from __future__ import annotations

import math

import pytest

from respool._verdict import DEFAULT_RULES, Judgement, Rules, Verdict, judge, legend, speedup


@pytest.mark.parametrize(
    ("without", "with_pool", "printed", "verdict"),
    [
        (10.0, 1.0, "10.0x", Verdict.PAYS_OFF),
        (2.0, 1.0, "2.0x", Verdict.PAYS_OFF),
        (1.96, 1.0, "2.0x", Verdict.PAYS_OFF),  # printed as 2.0x: judged as 2.0x
        (1.94, 1.0, "1.9x", Verdict.MODEST_GAIN),
        (1.3, 1.0, "1.3x", Verdict.MODEST_GAIN),
        (1.26, 1.0, "1.3x", Verdict.MODEST_GAIN),
        (1.24, 1.0, "1.2x", Verdict.NO_CLEAR_GAIN),
        (1.0, 1.0, "1.0x", Verdict.NO_CLEAR_GAIN),
        (0.86, 1.0, "0.9x", Verdict.NO_CLEAR_GAIN),
        (0.84, 1.0, "0.8x", Verdict.LOSES),
        (1.0, 4.0, "0.2x", Verdict.LOSES),
    ],
)
def test_verdict_is_decided_on_the_printed_figure(
    without: float, with_pool: float, printed: str, verdict: Verdict
) -> None:
    """A reader comparing the printed speed-up with the legend always agrees with the verdict."""
    judgement = judge(without, with_pool)
    assert str(judgement) == printed
    assert judgement.verdict is verdict
    assert judgement.speedup == float(printed.removesuffix("x"))


def test_every_printable_speedup_agrees_with_the_legend_thresholds() -> None:
    """Sweep costs finely: the verdict of each printed figure follows from that figure alone."""
    for step in range(1, 4_000):
        without = step / 1_000
        judgement = judge(without, 1.0)
        shown = float(str(judgement).removesuffix("x"))
        assert judgement.verdict is DEFAULT_RULES.classify(shown)


def test_legend_is_written_from_the_thresholds() -> None:
    """The legend names every verdict with the threshold the rules use, at printed precision."""
    text = legend()
    assert "'pays off' from 2.0x" in text
    assert "'modest gain' from 1.3x" in text
    assert "'no clear gain' from 0.9x" in text
    assert "'pooling loses' below" in text
    custom = legend(Rules(pays_off=3.0, modest_gain=1.5, no_clear_gain=1.0, digits=2))
    assert "'pays off' from 3.00x" in custom


def test_custom_rules_round_at_their_own_precision() -> None:
    """An advisor may print two decimals; the verdict then rests on two decimals."""
    rules = Rules(digits=2)
    assert speedup(1.996, 1.0, rules) == 2.0
    assert speedup(1.994, 1.0, rules) == 1.99
    assert judge(1.994, 1.0, rules).verdict is Verdict.MODEST_GAIN
    assert str(judge(1.994, 1.0, rules)) == "1.99x"
    assert str(Judgement(3.0, Verdict.PAYS_OFF, digits=0)) == "3x"


@pytest.mark.parametrize("bad", [0, 0.0, -1.0, math.inf, math.nan, True, "1"])
def test_costs_must_be_positive_and_finite(bad: object) -> None:
    """A zero or broken measurement never turns into a verdict."""
    with pytest.raises(ValueError, match="without_pool"):
        speedup(bad, 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="with_pool"):
        judge(1.0, bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"pays_off": 1.2, "modest_gain": 1.3},
        {"modest_gain": 0.8, "no_clear_gain": 0.9},
        {"no_clear_gain": 0.0},
        {"pays_off": math.inf},
        {"digits": -1},
        {"digits": 7},
    ],
)
def test_inconsistent_rules_are_refused(kwargs: dict[str, float]) -> None:
    """Overlapping thresholds would make some verdicts unreachable: refused at construction."""
    with pytest.raises(ValueError, match="must"):
        Rules(**kwargs)  # type: ignore[arg-type]


def test_verdicts_read_as_words() -> None:
    """Verdicts are strings, so they print and compare as the words the tour shows."""
    assert f"{Verdict.LOSES}" == "pooling loses"
    assert [str(v) for v in Verdict] == [
        "pays off",
        "modest gain",
        "no clear gain",
        "pooling loses",
    ]
