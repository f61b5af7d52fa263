"""respool.advise and respool.advise_from: known cases, bad input, nothing left behind."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import respool
from respool import AdviceError, advise, advise_from
from respool.tour import advise as cases
from tests.services import require_postgres

#: Budget of one advisor run in these tests: a few rounds each, enough for the known cases'
#: margins (each is several times its threshold), far shorter than the default.
BUDGET = 1.0


class Tracked:
    """Resources that count themselves: made, destroyed, and still open."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.made = 0
        self.destroyed = 0
        self.all_destroyed = threading.Event()

    def create(self) -> list[int]:
        with self.lock:
            self.made += 1
        return [0]

    def destroy(self, resource: list[int]) -> None:
        with self.lock:
            self.destroyed += 1
            if self.destroyed == self.made:
                self.all_destroyed.set()

    @property
    def open(self) -> int:
        return self.made - self.destroyed


def _advise_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("respool-advise")]


@pytest.fixture(autouse=True)
def _no_thread_left() -> Iterator[None]:
    """Every test: the advisor's measuring thread is gone soon after it answers."""
    yield
    deadline = time.monotonic() + 5
    while _advise_threads() and time.monotonic() < deadline:
        _advise_threads()[0].join(0.1)
    assert not _advise_threads()


# -- the known cases -----------------------------------------------------------------------


@pytest.mark.parametrize("case", cases.CASES, ids=lambda c: c.label.split(",")[0])
def test_known_cases_get_the_known_answer(case: cases.Case) -> None:
    """Temp files: pool; tiny bytearrays: don't; a busy per-thread compressor: WorkerPool;
    bursty big scratch buffers: TransientPool."""
    advice = case.advise(BUDGET)
    if case.expected:
        assert advice.pool, str(advice)
        assert advice.strategy in case.expected, str(advice)
    else:
        assert not advice.pool, str(advice)
        assert advice.strategy is None


def test_postgres_connections_get_a_free_list() -> None:
    """PostgreSQL connections: pool them, in a free list, and by far."""
    case = cases.postgres_case(require_postgres())
    advice = case.advise(3.0)
    assert advice.pool, str(advice)
    assert advice.strategy in ("FixedPool", "ElasticPool"), str(advice)
    assert advice.speedup is not None and advice.speedup >= 5, str(advice)


def test_advice_carries_the_measured_costs_and_explains_them() -> None:
    """Costs are positive, the fresh operation is the slowest, and str() shows the figures."""
    advice = cases.CASES[0].advise(BUDGET)
    costs = advice.costs
    assert costs is not None
    assert costs.create > 0 and costs.use > 0 and costs.fresh > 0
    assert costs.reset is not None and costs.reset > 0
    assert set(costs.pooled) == {"FixedPool", "ElasticPool", "WorkerPool", "TransientPool"}
    assert 0 < costs.share <= 1
    assert advice.speedup == pytest.approx(costs.fresh / costs.pooled[advice.strategy], abs=0.06)
    text = str(advice)
    assert text.startswith("Advice for")
    assert "Pool it:" in text and advice.suggestion in text
    for name in costs.pooled:
        assert name in text
    assert "Why:" in text


def test_dont_pool_report_says_why() -> None:
    """A 64-byte bytearray: the report says no pool, and that a pool costs more."""
    advice = cases.CASES[1].advise(BUDGET)
    text = str(advice)
    assert text.splitlines()[2].startswith("Don't pool")
    assert "No pool" in text
    assert advice.suggestion.startswith("no pool")


def test_a_lifecycle_is_accepted_and_close_is_used_when_no_destroy_is_given() -> None:
    """A ready-made lifecycle works as create; a bare resource with close() is closed."""
    files: list[Any] = []

    def temp() -> Any:
        import tempfile

        f = tempfile.TemporaryFile()  # noqa: SIM115 - the advisor must close it
        files.append(f)
        return f

    advice = advise(temp, lambda f: f.write(b"x"), budget=0.5)
    assert files and all(f.closed for f in files)
    assert any("close()" in note for note in advice.notes)
    advice = advise(respool.resources.temp_files(), lambda f: f.write(b"x"), budget=0.5)
    assert advice.pool


def test_objects_with_a_hostile_eq_are_measured() -> None:
    """numpy arrays (== returns an array) are pooled by identity, like everywhere else."""
    np = pytest.importorskip("numpy")
    advice = advise(lambda: np.zeros(1 << 16), lambda a: a.fill(1), budget=0.5)
    assert advice.costs is not None and advice.costs.pooled


def test_json_ready_dict() -> None:
    """as_dict() is plain data that survives json."""
    advice = cases.CASES[1].advise(0.5)
    data = json.loads(json.dumps(advice.as_dict()))
    assert data["pool"] is False and data["strategy"] is None
    assert set(data["costs"]["pooled"]) >= {"FixedPool", "ElasticPool"}
    assert data["verdict"] == "pooling loses"


def test_plot_writes_a_png(tmp_path: Path) -> None:
    """advice.plot draws the costs (matplotlib is in the test extra)."""
    pytest.importorskip("matplotlib")
    path = tmp_path / "advice.png"
    cases.CASES[1].advise(0.5).plot(path)
    assert path.read_bytes().startswith(b"\x89PNG")


# -- bad input -----------------------------------------------------------------------------


def _boom() -> Any:
    raise RuntimeError("no database today")


@pytest.mark.parametrize(
    ("kwargs", "phrase"),
    [
        ({"create": _boom, "use": len}, "create raised RuntimeError: no database today"),
        ({"create": lambda: None, "use": len}, "create returned None"),
        ({"create": list, "use": lambda r: 1 / 0}, "use raised ZeroDivisionError"),
        ({"create": list, "use": len, "reset": lambda r: r.pop()}, "reset raised IndexError"),
    ],
)
def test_a_broken_callback_is_named_and_chained(kwargs: dict[str, Any], phrase: str) -> None:
    """The error says which callback failed and how, with the original chained."""
    with pytest.raises(AdviceError, match=phrase) as caught:
        advise(**kwargs, budget=BUDGET)
    if "None" not in phrase:
        assert caught.value.__cause__ is not None


def test_a_failing_destroy_is_named() -> None:
    """A destroy that raises is reported as such, not as a failed measurement."""

    def bad_destroy(r: object) -> None:
        raise OSError("close failed")

    with pytest.raises(AdviceError, match="destroy raised OSError: close failed"):
        advise(list, len, destroy=bad_destroy, budget=BUDGET)


@pytest.mark.parametrize("fails_on", ["use", "reset"])
def test_nothing_is_left_open_when_a_later_call_fails(fails_on: str) -> None:
    """use (or reset) failing on the 50th call: every resource made is destroyed."""
    tracked = Tracked()
    calls = 0

    def flaky(r: list[int]) -> None:
        nonlocal calls
        calls += 1
        if calls == 50:
            raise ValueError("the 50th call fails")

    use = flaky if fails_on == "use" else len
    reset = flaky if fails_on == "reset" else None
    with pytest.raises(AdviceError, match="the 50th call fails"):
        advise(tracked.create, use, reset=reset, destroy=tracked.destroy, budget=BUDGET)
    assert tracked.made > 1
    assert tracked.open == 0


def test_an_interrupt_reaches_the_caller_and_leaves_nothing_open() -> None:
    """A KeyboardInterrupt raised by use propagates; every resource is still destroyed."""
    tracked = Tracked()
    calls = 0

    def interrupted(r: list[int]) -> None:
        nonlocal calls
        calls += 1
        if calls == 30:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        advise(tracked.create, interrupted, destroy=tracked.destroy, budget=BUDGET)
    assert tracked.open == 0


@pytest.mark.parametrize("hangs", ["create", "use"])
def test_a_hanging_call_is_bounded_by_the_budget_and_cleaned_up_later(hangs: str) -> None:
    """A call that does not return: AdviceError at about the budget naming it; when it
    returns at last, what was made is destroyed."""
    tracked = Tracked()
    release = threading.Event()

    def create() -> list[int]:
        if hangs == "create":
            release.wait(30)
        return tracked.create()

    def use(r: list[int]) -> None:
        if hangs == "use":
            release.wait(30)

    started = time.monotonic()
    with pytest.raises(AdviceError, match=f"{hangs} did not return within the budget of 0.5 s"):
        advise(create, use, destroy=tracked.destroy, budget=0.5)
    assert time.monotonic() - started < 2.5
    release.set()
    assert tracked.all_destroyed.wait(5)
    assert tracked.open == 0


def test_a_slow_but_finite_create_still_gets_advice() -> None:
    """A create of 0.2 s in a 2 s budget: measured, advised to pool, on time."""

    def slow() -> list[int]:
        threading.Event().wait(0.2)  # the cost being measured, not synchronisation
        return [0]

    started = time.monotonic()
    advice = advise(slow, len, budget=2.0)
    assert time.monotonic() - started < 3.5
    assert advice.pool and advice.speedup is not None and advice.speedup > 10


async def _async_create() -> list[int]:
    return [0]


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"create": 42}, TypeError, "create"),
        ({"use": "len"}, TypeError, "use"),
        ({"reset": 3}, TypeError, "reset"),
        ({"budget": 0}, ValueError, "budget"),
        ({"budget": -1}, ValueError, "budget"),
        ({"budget": float("nan")}, ValueError, "budget"),
        ({"budget": "5"}, TypeError, "budget"),
        ({"budget": None}, TypeError, "budget"),
        ({"idle_gap": -1.0}, ValueError, "idle_gap"),
        ({"idle_gap": float("inf")}, ValueError, "idle_gap"),
        ({"concurrency": 0}, ValueError, "concurrency"),
        ({"concurrency": (5, 2)}, ValueError, "concurrency"),
        ({"concurrency": "4"}, TypeError, "concurrency"),
        ({"create": _async_create}, TypeError, "create"),
        ({"usage": {"uses": 3}}, TypeError, "usage"),
    ],
)
def test_bad_arguments_name_the_parameter(
    kwargs: dict[str, Any], error: type[Exception], name: str
) -> None:
    """Wrong arguments raise at once, naming the parameter, and measure nothing."""
    args: dict[str, Any] = {"create": list, "use": len, **kwargs}
    with pytest.raises(error, match=name):
        advise(**args)


def test_usage_and_a_description_are_exclusive() -> None:
    """Recorded usage or described usage, not both."""
    pool = cases.bursty_usage(bursts=1, width=2)
    usage = pool.stats().usage
    pool.close()
    assert usage is not None
    with pytest.raises(TypeError, match="either usage"):
        advise(list, len, usage=usage, idle_gap=1.0)


def test_an_async_pool_resource_is_refused_clearly() -> None:
    """An async def create: a TypeError that says to time it in an event loop."""
    with pytest.raises(TypeError, match="async function"):
        advise(_async_create, len)
    assert asyncio.iscoroutinefunction(_async_create)


# -- recorded usage ------------------------------------------------------------------------


def test_advise_from_a_bursty_pool_suggests_elastic_sizes() -> None:
    """Bursts of 6 over a floor of 1, temp files: ElasticPool sized from the record."""
    pool = cases.bursty_usage(bursts=8, width=6, floor=1)
    try:
        advice = advise_from(pool)
    finally:
        pool.close()
    assert advice.strategy == "ElasticPool"
    assert advice.current == "ElasticPool"
    assert advice.costs is None and advice.usage is not None
    assert advice.sizes["min_idle"] == 1
    assert advice.sizes["max_idle"] == 7
    assert advice.sizes["max_size"] == 7
    assert "What the pool recorded" in str(advice)


def test_a_resource_that_a_use_spoils_is_reported_as_not_reusable() -> None:
    """A use that closes its file works once, then fails on the kept file: the message says
    the resource is not reusable as it is."""

    def use_and_close(f: Any) -> None:
        f.write(b"x")
        f.close()

    with pytest.raises(AdviceError, match="not reusable as it is"):
        advise(respool.resources.temp_files(), use_and_close, budget=BUDGET)


def test_advise_from_draws_the_usage(tmp_path: Path) -> None:
    """advise_from's advice plots concurrency over time and the idle gaps."""
    pytest.importorskip("matplotlib")
    pool = cases.bursty_usage(bursts=3, width=3)
    try:
        advice = advise_from(pool)
    finally:
        pool.close()
    path = tmp_path / "usage.png"
    advice.plot(path)
    assert path.read_bytes().startswith(b"\x89PNG")


def test_advise_from_a_steady_busy_worker_pool_keeps_it() -> None:
    """A WorkerPool kept busy by a stream of tasks is told it has the right strategy."""

    def ship(c: Any, _item: int) -> None:
        c.compress(b"record " * 100)
        threading.Event().wait(0.004)  # sending the batch: the worker stays busy meanwhile

    with respool.WorkerPool(cases.compressor, workers=2, max_pending=16, observe=True) as pool:
        for _ in pool.map(ship, range(150)):
            pass
        advice = advise_from(pool)
    assert advice.strategy == "WorkerPool", str(advice)
    assert advice.sizes == {"workers": 2}
    assert "right strategy" in str(advice)


def test_recorded_usage_feeds_advise() -> None:
    """advise(..., usage=pool.stats().usage): measured costs, recorded pattern."""
    pool = cases.bursty_usage(bursts=4, width=4)
    usage = pool.stats().usage
    pool.close()
    assert usage is not None
    advice = advise(
        respool.resources.temp_files(), lambda f: f.write(b"x"), usage=usage, budget=0.5
    )
    assert advice.pattern.source == "recorded"
    assert advice.strategy == "ElasticPool"
    assert advice.sizes["max_size"] == 5


@pytest.mark.parametrize(
    "make",
    [
        lambda: respool.FixedPool(list, size=1),
        lambda: object(),
        lambda: respool.BufferPool(),
    ],
    ids=["not-observing", "not-a-pool", "buffer-pool"],
)
def test_advise_from_refuses_what_it_cannot_read(make: Callable[[], Any]) -> None:
    """A pool that does not observe (ValueError naming observe=True) or something that is
    not a pool (TypeError)."""
    pool = make()
    error = ValueError if isinstance(pool, respool.FixedPool) else TypeError
    with pytest.raises(error, match="observe=True" if error is ValueError else "respool pool"):
        advise_from(pool)
    if isinstance(pool, respool.FixedPool):
        pool.close()


def test_advise_from_a_pool_with_no_use_yet() -> None:
    """Nothing recorded yet: a ValueError that says to ask later."""
    pool = respool.FixedPool(list, size=1, observe=True)
    try:
        with pytest.raises(ValueError, match="no use yet"):
            advise_from(pool)
    finally:
        pool.close()
