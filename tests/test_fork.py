"""After os.fork() a child never reuses, nor destroys, its parent's resources."""

from __future__ import annotations

import gc
import json
import os
import warnings
from collections.abc import Callable
from typing import Any

import pytest

import respool
from respool._threads import filler
from tests.conftest import Tracker

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")


def fork_and_report(child: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run *child* in a forked process and return the dict it reported as JSON."""
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns when forking a process that has threads; this test means to fork.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            report = child()
        except BaseException as exc:
            report = {"error": repr(exc)}
        os.write(write_end, json.dumps(report).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    report: dict[str, Any] = json.loads(data)
    assert "error" not in report, report["error"]
    return report


@pytest.mark.parametrize("kind", ["fixed", "elastic"])
def test_child_starts_afresh(tracker: Tracker, kind: str) -> None:
    """In the child: new resources only, the parent's never destroyed, even when released."""
    pool: respool.FixedPool[object] | respool.ElasticPool[object]
    if kind == "fixed":
        pool = respool.FixedPool(tracker.lifecycle(), size=2)
    else:
        pool = respool.ElasticPool(tracker.lifecycle(), min_idle=2, max_idle=2)
    held = pool.acquire()
    parents = [res.n for res in tracker.made]

    def child() -> dict[str, object]:
        with pool.acquire(timeout=1) as res:
            got = res.n
        held.release()  # a lease from before the fork: forgotten, not reused
        with pool.acquire(timeout=1) as res:
            again = res.n
        assert filler.flush(5.0)
        stats = pool.stats()
        return {
            "got": [got, again],
            "destroyed": [r.n for r in tracker.destroyed],
            "size": stats.size,
            "created": stats.created,
        }

    report = fork_and_report(child)
    assert not set(report["got"]) & set(parents)
    assert report["destroyed"] == []
    # A FixedPool keeps its size in the child too (its filler makes them there).
    assert report["size"] == report["created"] == (2 if kind == "fixed" else 1)
    # The parent is untouched and carries on with its own resources.
    assert not any(res.destroyed for res in tracker.made)
    held.release()
    with pool.acquire(timeout=0) as res:
        assert res.n in parents
    pool.close()


def test_closed_pool_stays_closed_in_the_child(tracker: Tracker) -> None:
    """Closing is not undone by forking."""
    pool = respool.FixedPool(tracker.lifecycle(), size=1)
    pool.close()

    def child() -> dict[str, object]:
        try:
            pool.acquire(timeout=0)
        except respool.PoolClosed:
            return {"closed": True}
        return {"closed": False}

    assert fork_and_report(child) == {"closed": True}


@pytest.mark.parametrize("how", ["with", "release", "discard", "abort", "dropped"])
def test_child_never_resets_checks_or_destroys_the_parents_resource(
    tracker: Tracker, kind: str, how: str
) -> None:
    """A lease taken before the fork and ended in the child runs no callback on the parent's
    resource there (a reset would write a ROLLBACK down the parent's socket)."""
    pool: respool.FixedPool[Any] | respool.ElasticPool[Any]
    if kind == "fixed":
        pool = respool.FixedPool(tracker.lifecycle(), size=1)
    else:
        pool = respool.ElasticPool(tracker.lifecycle(), min_idle=1, max_idle=1)
    box = [pool.acquire()]
    parents = {res.n for res in tracker.made}

    def child() -> dict[str, object]:
        touched: list[int] = []
        tracker.reset = lambda res: touched.append(res.n)  # type: ignore[method-assign]
        tracker.check = lambda res: touched.append(res.n) or True  # type: ignore[method-assign]
        destroyed_before = len(tracker.destroyed)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if how == "with":
                with box[0]:
                    pass
            elif how == "release":
                box[0].release()
            elif how == "discard":
                box[0].discard()
            elif how == "abort":
                try:
                    with box[0]:
                        raise KeyboardInterrupt
                except KeyboardInterrupt:
                    pass
            else:
                box.clear()  # the parent's lease is dropped in the child: no leak here
                gc.collect()
        stats = pool.stats()
        return {
            "touched": [n for n in touched if n in parents],
            "destroyed": [r.n for r in tracker.destroyed[destroyed_before:]],
            "leaks": stats.leaks,
            "warnings": [str(w.message) for w in caught if w.category is ResourceWarning],
        }

    report = fork_and_report(child)
    assert report == {"touched": [], "destroyed": [], "leaks": 0, "warnings": []}
    box[0].release()  # the parent's own lease is still good in the parent
    assert pool.stats().leaks == 0
    pool.close()


@pytest.mark.parametrize("kind", ["fixed", "elastic"])
def test_asyncio_pool_child_binds_its_own_loop_and_starts_afresh(
    tracker: Tracker, kind: str
) -> None:
    """An asyncio pool forked while open: the child's first use binds a new loop and makes
    new resources; the parent's are neither reused nor destroyed (nor is its loop touched)."""
    import asyncio

    pool: Any
    if kind == "fixed":
        pool = respool.AsyncFixedPool(tracker.lifecycle(), size=2)
    else:
        pool = respool.AsyncElasticPool(tracker.lifecycle(), min_idle=2, max_idle=2)
    held: list[Any] = []

    async def parent_side() -> None:
        await pool.open()
        held.append(await pool.acquire())

    asyncio.run(parent_side())  # the parent's loop is closed now, its lease still out
    parents = [res.n for res in tracker.made]

    def child() -> dict[str, object]:
        async def use() -> dict[str, object]:
            async with pool.acquire(timeout=2) as res:
                got = res.n
            await held[0].release()  # from before the fork: forgotten, not reused
            async with pool.acquire(timeout=2) as res:
                again = res.n
            await pool.close()
            return {"got": got, "again": again, "destroyed": [r.n for r in tracker.destroyed]}

        return asyncio.run(use())

    report = fork_and_report(child)
    assert report["got"] not in parents
    assert report["again"] not in parents
    assert not set(report["destroyed"]) & set(parents)  # type: ignore[arg-type]
    assert not tracker.destroyed  # in the parent: nothing touched

    async def parent_ends() -> None:  # (its own loop is gone: closing still destroys)
        await held.pop().release()
        await pool.close()

    asyncio.run(parent_ends())
    assert sorted(res.n for res in tracker.destroyed) == parents


def test_asyncio_worker_pool_refuses_work_in_a_forked_child() -> None:
    """An AsyncWorkerPool forked while open: the child gets PoolClosed saying why, counts
    start afresh, and the parent's pool works on after the fork."""
    import asyncio

    made: list[int] = []

    async def create() -> int:
        made.append(len(made))
        return made[-1]

    pool = respool.AsyncWorkerPool(create, workers=1)

    async def parent_before() -> int:
        await pool.open()
        result: int = await pool.submit(lambda r: r + 100)
        return result

    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(parent_before()) == 100

        def child() -> dict[str, object]:
            async def use() -> dict[str, object]:
                try:
                    await pool.submit(lambda r: r)
                except respool.PoolClosed as exc:
                    stats = pool.stats()
                    return {"refused": str(exc), "workers": stats.workers, "made": len(made)}
                return {"refused": None}

            return asyncio.run(use())

        report = fork_and_report(child)
        assert "os.fork()" in str(report["refused"])
        assert report["workers"] == 0 and report["made"] == 1

        async def parent_after() -> int:
            result: int = await pool.submit(lambda r: r + 200)
            await pool.shutdown()
            return result

        assert loop.run_until_complete(parent_after()) == 200
    finally:
        loop.close()
