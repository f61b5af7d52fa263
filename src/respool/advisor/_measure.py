"""Timing a user's resource for the advisor, within a budget, leaving nothing open.

The measurement runs on a thread of its own while the caller waits for it, at most the budget
(plus a small grace). Rounds end well before the budget, so a normal run returns on time by
itself; the wait only matters when one call of the user's hangs or takes minutes. Then the
caller gets an :class:`~respool.AdviceError` naming the call, and the measuring thread is told
it was abandoned: when the call returns at last, it stops and destroys whatever it made. A
thread cannot be killed, so a call that never returns keeps its thread (a daemon, which does
not hold up the interpreter's exit).

How figures are taken (the same way as ``respool bench`` and the tour): every case is timed in
rounds interleaved with the other cases, so that a burst of outside load hits them all alike,
and the best round is kept (the least disturbed). The first rounds calibrate how many
operations a round holds. The cyclic garbage collector is paused while a round runs, as
``timeit`` does.

Every resource the advisor makes is accounted for: those a case makes and destroys at once
(the fresh operation), and those the pools under test hold, which the pools hand to a *spares*
list instead of destroying, so one resource can serve several pools, and which are destroyed
for good at the end.
"""

from __future__ import annotations

import gc
import inspect
import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Final

from respool.advisor._decide import Costs
from respool.errors import AdviceError
from respool.lifecycle import Lifecycle

__all__ = ["ROUNDS", "Measurement"]

#: Timed rounds per case (after calibration), when the budget allows.
ROUNDS: Final = 5
#: The share of the budget the rounds may use; the rest is for building and closing the
#: pools under test and destroying what was made.
_ROUNDS_SHARE: Final = 0.7
#: The most operations in one round (a 50 ns operation fills a round with this many).
_MAX_OPS: Final = 1_000_000


#: What a failure of the same callbacks on a resource already used suggests.
_AFTER_USE: Final = (
    " (after one use: if the use leaves the resource unusable, it is not reusable as it is)"
)
_USED_AGAIN: Final = (
    " (the first use worked: a resource used again, after its reset if there is one, failed,"
    " so it is not reusable as it is)"
)


class _Abandoned(BaseException):
    """The caller gave up waiting: stop and clean up (never reaches the user)."""


@dataclass
class _Case:
    """One thing timed: ``run(k)`` does it *k* times and returns the seconds taken."""

    name: str
    run: Callable[[int], float]
    #: Whose call a failure in this case is reported as.
    blame: str
    ops: int = 1
    best: float = math.inf
    last: float = math.inf
    rounds: int = 0
    failure: str | None = None

    def time(self, ops: int) -> float:
        """Seconds per operation in one round of *ops* operations."""
        enabled = gc.isenabled()
        gc.disable()
        try:
            per_op = self.run(ops) / ops
        finally:
            if enabled:
                gc.enable()
        self.last = per_op
        self.best = min(self.best, per_op)
        return per_op


class Measurement:
    """One advisor run: made by the caller, run on its own thread (:meth:`start`), waited
    for with :meth:`wait`."""

    def __init__(
        self,
        lifecycle: Lifecycle[Any],
        use: Callable[[Any], object],
        budget: float,
        *,
        clock: Callable[[], float] = perf_counter,
    ) -> None:
        self._create = lifecycle.create
        self._reset = lifecycle.reset
        self._destroy = lifecycle.destroy
        self._use = use
        self.budget = budget
        self._clock = clock
        #: What the measuring thread is doing (named in a timeout's message).
        self.phase = "starting"
        self.abandoned = False
        self.done = threading.Event()
        self.costs: Costs | None = None
        self.error: BaseException | None = None
        #: True when no ``destroy`` was given and the resource's own ``close()`` served.
        self.closed_with_close = False
        #: Resources made by the advisor and not destroyed yet: the probe's (timed on its
        #: own), and those the pools under test let go of (reused by the next pool).
        self._kept: list[Any] = []
        self._spares: list[Any] = []
        self._pools: list[Callable[[], object]] = []
        #: Strategies left untimed on purpose, and why.
        self.unmeasured: dict[str, str] = {}
        self._started = 0.0
        self._deadline = 0.0
        #: Seconds the measurement took, cleaning up included.
        self.elapsed = 0.0

    # -- the caller's side -------------------------------------------------------------------

    def start(self) -> None:
        self._started = self._clock()
        self._deadline = self._started + _ROUNDS_SHARE * self.budget
        threading.Thread(target=self._main, name="respool-advise", daemon=True).start()

    def wait(self) -> Costs:
        """The costs measured, or the error that stopped the measurement; an
        :class:`AdviceError` when it overran the budget."""
        grace = min(1.0, max(0.25, 0.1 * self.budget))
        try:
            finished = self.done.wait(max(0.0, self._started + self.budget + grace - self._clock()))
        finally:
            if not self.done.is_set():
                self.abandoned = True
        if not finished:
            raise AdviceError(
                f"{self.phase} did not return within the budget of {self.budget:g} s. Either it"
                " hangs, or it takes longer than the budget (which alone would say: pool it);"
                " raise the budget to measure it. Whatever the advisor made is destroyed when"
                " the call returns."
            )
        if self.error is not None:
            raise self.error
        assert self.costs is not None
        return self.costs

    # -- the measuring thread ----------------------------------------------------------------

    def _main(self) -> None:
        try:
            self.costs = self._measure()
        except _Abandoned:
            pass
        except BaseException as exc:  # reported to the caller, who re-raises it
            self.error = exc
        finally:
            try:
                self._clean_up()
            except BaseException as exc:
                if self.error is None:
                    self.error = exc
            self.elapsed = self._clock() - self._started
            self.done.set()

    def _call(self, phase: str, fn: Callable[..., Any], *args: Any, hint: str = "") -> Any:
        """Call a user callback once, outside the timed rounds, naming it if it fails."""
        if self.abandoned:
            raise _Abandoned
        self.phase = phase
        try:
            return fn(*args)
        except Exception as exc:
            raise AdviceError(f"{phase} raised {type(exc).__name__}: {exc}{hint}") from exc

    def _measure(self) -> Costs:
        probe = self._probe()
        cases = self._cases(probe)
        self._time_rounds(cases)
        return self._costs(cases, probe)

    def _probe(self) -> dict[str, float]:
        """Each callback once, checked and timed: a broken one fails here, clearly."""
        clock = self._clock
        t0 = clock()
        resource = self._call("create", self._create)
        made = clock() - t0
        if resource is None:
            raise AdviceError(
                "create returned None: it must return the resource to pool (did it forget a"
                " `return`?)"
            )
        if inspect.isawaitable(resource):
            close = getattr(resource, "close", None)
            if callable(close):
                close()  # a coroutine never awaited: close it rather than leak a warning
            raise AdviceError(
                "create returned an awaitable: the advisor times synchronous callables; wrap"
                " the async one in a function that runs it, or measure it in your own loop"
            )
        self._kept.append(resource)
        if self._destroy is None and callable(getattr(resource, "close", None)):
            self._destroy = _close
            self.closed_with_close = True
        t0 = clock()
        self._call("use", self._use, resource)
        used = clock() - t0
        cleaned = 0.0
        if self._reset is not None:
            t0 = clock()
            self._call("reset", self._reset, resource, hint=_AFTER_USE)
            cleaned = clock() - t0
            self._call("use (on a reset resource)", self._use, resource)
            self._call("reset", self._reset, resource)
        if self._destroy is not None:
            # A second resource, destroyed at once: a destroy that fails is named as such.
            other = self._call("create", self._create)
            if other is not None:
                self._call("destroy", self._destroy, other)
        return {"create": made, "use": used, "reset": cleaned}

    def _make(self) -> Any:
        """A resource for a pool under test: a spare if there is one, else a new one."""
        if self._spares:
            return self._spares.pop()
        resource = self._create()
        if resource is None:
            raise AdviceError("create returned None")
        return resource

    def _keep(self, resource: Any) -> None:
        """A pool under test lets go of *resource*: keep it for the next pool or the end."""
        self._spares.append(resource)

    def _fresh(self, resource: Any) -> None:
        destroy = self._destroy
        if destroy is not None:
            destroy(resource)

    def _cases(self, probe: dict[str, float]) -> list[_Case]:
        from respool.elastic import ElasticPool
        from respool.fixed import FixedPool
        from respool.transient import TransientPool
        from respool.worker import WorkerPool

        create, use, reset, fresh = self._create, self._use, self._reset, self._fresh
        clock = self._clock

        def fresh_op(ops: int) -> float:
            t0 = clock()
            for _ in range(ops):
                resource = create()
                try:
                    use(resource)
                finally:
                    fresh(resource)
            return clock() - t0

        def create_op(ops: int) -> float:
            t0 = clock()
            for _ in range(ops):
                fresh(create())
            return clock() - t0

        kept = self._kept[0]  # the probe's resource, used by no pool under test

        def use_op(ops: int) -> float:
            t0 = clock()
            if reset is None:
                for _ in range(ops):
                    use(kept)
            else:
                for _ in range(ops):
                    use(kept)
                    reset(kept)
            return clock() - t0

        cases = [
            _Case("fresh", fresh_op, "create, use or destroy"),
            _Case("create", create_op, "create or destroy"),
            _Case("use", use_op, "use" if reset is None else "use or reset"),
        ]
        if reset is not None:
            do_reset = reset

            def reset_op(ops: int) -> float:
                t0 = clock()
                for _ in range(ops):
                    do_reset(kept)
                return clock() - t0

            cases.append(_Case("reset", reset_op, "reset"))

        self.phase = "building the pools under test"
        lifecycle = Lifecycle(self._make, reset=reset, destroy=self._keep)
        fixed = FixedPool(lifecycle, size=1, timeout=None, name="respool-advise-FixedPool")
        self._pools.append(fixed.close)
        elastic = ElasticPool(
            lifecycle, max_idle=1, timeout=None, name="respool-advise-ElasticPool"
        )
        self._pools.append(elastic.close)
        transient: TransientPool[Any] = TransientPool(
            lifecycle, name="respool-advise-TransientPool"
        )
        self._pools.append(transient.clear)

        def through(acquire: Callable[[], Any]) -> Callable[[int], float]:
            def op(ops: int) -> float:
                t0 = clock()
                for _ in range(ops):
                    with acquire() as resource:
                        use(resource)
                return clock() - t0

            return op

        cases += [
            _Case("FixedPool", through(fixed.acquire), "use or reset (through a FixedPool)"),
            _Case("ElasticPool", through(elastic.acquire), "use or reset (through an ElasticPool)"),
            _Case(
                "TransientPool",
                through(transient.borrow),
                "use or reset (through a TransientPool)",
            ),
        ]
        # A worker makes its own resource on its own thread (a resource may be bound to the
        # thread that made it), so it costs one more create: skipped when that alone would
        # take a large part of what is left of the budget.
        left = self._deadline - clock()
        if probe["create"] > 0.1 * left:
            self.unmeasured = {"WorkerPool": "making one more resource would not fit the budget"}
            return cases
        worker: WorkerPool[Any] = WorkerPool(
            Lifecycle(create, reset=reset, destroy=self._destroy),
            workers=1,
            max_pending=64,
            name="respool-advise-WorkerPool",
        )
        self._pools.append(lambda: worker.shutdown(wait=True, cancel_pending=True))

        def task(resource: Any, _item: object) -> None:
            use(resource)

        def worker_op(ops: int) -> float:
            t0 = clock()
            deque(worker.map(task, range(ops)), maxlen=0)
            return clock() - t0

        cases.append(_Case("WorkerPool", worker_op, "create, use or reset (on a WorkerPool)"))
        return cases

    def _time_rounds(self, cases: list[_Case]) -> None:
        """Calibrate every case, then time interleaved rounds until :data:`ROUNDS` each or
        the deadline."""
        clock = self._clock
        target = max(0.0, self._deadline - clock()) / (len(cases) * (ROUNDS + 2))
        for case in cases:
            self._calibrate(case, target)
        for _ in range(ROUNDS):
            for case in cases:
                if case.failure is not None:
                    continue
                if clock() + case.ops * case.last > self._deadline:
                    continue  # would overrun: the others may still fit
                self._round(case, case.ops)

    def _calibrate(self, case: _Case, target: float) -> None:
        """Find how many operations fill about *target* seconds (the first round also warms
        the case up and is its first sample)."""
        ops = 1
        while True:
            if self._clock() + ops * min(case.last, target) > self._deadline and case.rounds:
                break
            per_op = self._round(case, ops)
            if per_op is None:
                return
            if ops * per_op >= target / 8 or ops >= _MAX_OPS:
                break
            ops = min(_MAX_OPS, ops * 8)
        case.ops = max(1, min(_MAX_OPS, int(target / case.last) if case.last > 0 else _MAX_OPS))

    def _round(self, case: _Case, ops: int) -> float | None:
        if self.abandoned:
            raise _Abandoned
        self.phase = f"the {case.name} rounds"
        try:
            per_op = case.time(ops)
        except Exception as exc:
            if case.name in ("fresh", "create", "use", "reset"):
                hint = _USED_AGAIN if case.name in ("use", "reset") else ""
                raise AdviceError(
                    f"{case.blame} raised {type(exc).__name__} while timing {case.name}"
                    f" operations: {exc}{hint}"
                ) from exc
            # Through a pool: report, and go on with the other strategies.
            case.failure = f"{case.blame} raised {type(exc).__name__}: {exc}"
            return None
        case.rounds += 1
        return per_op

    def _costs(self, cases: list[_Case], probe: dict[str, float]) -> Costs:
        by_name = {case.name: case for case in cases}

        def best(name: str, fallback: float) -> float:
            case = by_name.get(name)
            return case.best if case is not None and math.isfinite(case.best) else fallback

        reset = best("reset", probe["reset"]) if self._reset is not None else None
        use_and_reset = best("use", probe["use"] + (reset or 0.0))
        create = best("create", probe["create"])
        fresh = best("fresh", probe["create"] + probe["use"])
        pooled: dict[str, float] = {}
        unmeasured = dict(self.unmeasured)
        for name in ("FixedPool", "ElasticPool", "WorkerPool", "TransientPool"):
            case = by_name.get(name)
            if case is None:
                continue
            if case.failure is not None:
                unmeasured[name] = case.failure
            elif math.isfinite(case.best):
                pooled[name] = case.best
            else:
                unmeasured[name] = "the budget ran out before it was timed"
        return Costs(
            create=create,
            use=max(use_and_reset - (reset or 0.0), 0.0),
            reset=reset,
            fresh=fresh,
            pooled=pooled,
            unmeasured=unmeasured,
            rounds=min((case.rounds for case in cases if case.failure is None), default=0),
        )

    def _clean_up(self) -> None:
        """Close the pools under test, then destroy every resource the advisor still holds;
        the first error is raised once everything was tried."""
        self.phase = "cleaning up"
        first: BaseException | None = None
        for close in reversed(self._pools):
            try:
                close()
            except BaseException as exc:
                first = first or exc
        self._pools.clear()
        destroy = self._destroy
        self._spares.extend(self._kept)
        self._kept.clear()
        while self._spares:
            resource = self._spares.pop()
            if destroy is None:
                continue
            try:
                destroy(resource)
            except Exception as exc:
                if first is None:
                    first = AdviceError(f"destroy raised {type(exc).__name__}: {exc}")
                    first.__cause__ = exc
            except BaseException as exc:
                first = first or exc
        if first is not None:
            raise first


def _close(resource: Any) -> None:
    resource.close()
