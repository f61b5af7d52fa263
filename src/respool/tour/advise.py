"""The tour's advisor section: ``respool.advise`` on resources whose right answer is known.

Each case is a resource, one operation on it and how a program uses it (idle gaps, how many at
once), together with the advice a careful engineer would give: pool temp files, do not pool
tiny buffers, a free list for database connections, a worker pool for a compressor kept busy
by each thread, a transient pool for big scratch buffers taken in bursts. The section prints
what the advisor measured and concluded, so a reader sees it reach those answers from figures;
the tests run the same cases and fail when it does not. Then it records a pool's usage
(``observe=True``) and asks :func:`respool.advise_from` for sizes.
"""

from __future__ import annotations

import os
import random
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any, Final

from respool.advisor import Advice, advise, advise_from
from respool.advisor._report import text
from respool.elastic import ElasticPool
from respool.resources import temp_files
from respool.tour._text import WIDTH, heading, print_wrapped

__all__ = ["CASES", "Case", "bursty_usage", "compressor", "run"]


@dataclass(frozen=True)
class Case:
    """A resource, an operation on it, how it is used, and the strategies a careful engineer
    would accept (empty: no pool)."""

    label: str
    create: Callable[[], Any]
    use: Callable[[Any], object]
    expected: frozenset[str]
    reset: Callable[[Any], object] | None = None
    destroy: Callable[[Any], object] | None = None
    idle_gap: float | None = None
    concurrency: int | tuple[int, int] | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def advise(self, budget: float) -> Advice:
        """What the advisor says about this case, measured within *budget* seconds."""
        return advise(
            self.create,
            self.use,
            reset=self.reset,
            destroy=self.destroy,
            idle_gap=self.idle_gap,
            concurrency=self.concurrency,
            budget=budget,
        )


# -- the resources -------------------------------------------------------------------------

_KIB: Final = b"x" * 1024


def _temp_file() -> IO[bytes]:
    import tempfile

    return tempfile.TemporaryFile()


def _write_read(f: IO[bytes]) -> None:
    f.write(_KIB)
    f.seek(0)
    f.read()


def _rewind(f: IO[bytes]) -> None:
    f.seek(0)
    f.truncate()


def _tiny() -> bytearray:
    return bytearray(64)


def _poke(buf: bytearray) -> None:
    buf[0] = 1


def _dictionary() -> tuple[bytes, bytes]:
    """A 32 KiB preset dictionary of log-like words, and a 300-byte message made of them."""
    rnd = random.Random(13)
    words = [
        bytes(rnd.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(3, 9)))
        for _ in range(400)
    ]
    zdict = b" ".join(rnd.choice(words) for _ in range(8000))[: 32 << 10]
    message = b" ".join(rnd.choice(words) for _ in range(48))[:300]
    return zdict, message


_ZDICT, _MESSAGE = _dictionary()


def compressor() -> Any:
    """A zlib stream compressor primed with a 32 KiB dictionary: costly to make (the
    dictionary is hashed into its window), cheap to feed one small message."""
    return zlib.compressobj(9, zlib.DEFLATED, 15, 9, zdict=_ZDICT)


def _compress(c: Any) -> None:
    c.compress(_MESSAGE)
    c.flush(zlib.Z_SYNC_FLUSH)


_SCRATCH: Final = 8 << 20
_CHUNK: Final = os.urandom(1 << 20)


def _scratch() -> bytearray:
    return bytearray(_SCRATCH)


def _fill(buf: bytearray) -> None:
    """Sized for the worst case, used for the usual one: a 1 MiB chunk."""
    memoryview(buf)[: len(_CHUNK)] = _CHUNK


CASES: Final = (
    Case(
        "temp file, write 1 KiB and read it",
        _temp_file,
        _write_read,
        frozenset({"FixedPool", "ElasticPool"}),
        reset=_rewind,
    ),
    Case("64-byte bytearray, set a byte", _tiny, _poke, frozenset()),
    Case(
        "zlib compressor, 4 threads, tight loop",
        compressor,
        _compress,
        frozenset({"WorkerPool"}),
        idle_gap=0.0,
        concurrency=4,
    ),
    Case(
        "8 MiB scratch, fill 1 MiB, bursts 0-16",
        _scratch,
        _fill,
        frozenset({"TransientPool"}),
        idle_gap=0.001,
        concurrency=(0, 16),
    ),
)


def postgres_case(conninfo: str) -> Case:
    """A PostgreSQL connection running ``SELECT 1``, idle for seconds between requests in a
    web application of up to 8 concurrent requests."""
    import psycopg

    from respool.contrib.psycopg import connections

    lifecycle = connections(conninfo, autocommit=True)

    def select_one(conn: psycopg.Connection[Any]) -> None:
        conn.execute("SELECT 1").fetchone()

    return Case(
        "PostgreSQL connection, SELECT 1",
        lifecycle.create,
        select_one,
        frozenset({"FixedPool", "ElasticPool"}),
        reset=lifecycle.reset,
        destroy=lifecycle.destroy,
        idle_gap=5.0,
        concurrency=(2, 8),
    )


# -- recorded usage ------------------------------------------------------------------------


def bursty_usage(bursts: int = 12, *, width: int = 12, floor: int = 1) -> ElasticPool[Any]:
    """An observing ElasticPool of temp files after *bursts* bursts of *width* threads each
    holding one at once (a barrier makes them overlap), over a *floor* of leases held
    throughout."""
    pool: ElasticPool[Any] = ElasticPool(temp_files(), max_idle=2, observe=True, name="tour-bursty")
    held = [pool.acquire() for _ in range(floor)]

    def hold(barrier: threading.Barrier) -> None:
        with pool.acquire():
            barrier.wait(timeout=10)

    for _ in range(bursts):
        barrier = threading.Barrier(width)
        threads = [threading.Thread(target=hold, args=(barrier,)) for _ in range(width)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # A lull between bursts: the pool idles (the event is never set).
        threading.Event().wait(0.005)
    for lease in held:
        lease.release()
    return pool


# -- the section ---------------------------------------------------------------------------


def _postgres_target() -> str | None:
    from respool.tour import servers

    return servers.postgres_target()


def run(quick: bool) -> list[str]:
    """Print the section; return one summary line per case."""
    heading("10. Do I need a pool? Ask the advisor")
    print_wrapped(
        "The sections above timed fresh against pooled by hand. respool.advise(create,"
        " use) does it for any resource of yours: it times one operation done fresh"
        " (create, use, destroy) and through each strategy, places your usage on the two"
        " axes (how long a resource waits between uses, next to the interval between full"
        " garbage collections; how much the number in use varies), and answers, with the"
        " tour's verdict rules. From a shell: respool advise module:create module:use.",
        "  ",
    )
    print()
    budget = 0.8 if quick else 2.0
    cases = list(CASES)
    conninfo = _postgres_target()
    if conninfo is not None:
        cases.append(postgres_case(conninfo))
    print(f"  {'resource, operation, usage':<40}{'advice':<14}{'speed-up':>8}  verdict")
    shown: Advice | None = None
    lines = []
    for case in cases:
        advice = case.advise(budget)
        answer = advice.strategy or "no pool"
        speedup = "" if advice.speedup is None else f"{advice.speedup:.1f}x"
        print(f"  {case.label:<40}{answer:<14}{speedup:>8}  {advice.verdict or ''}".rstrip())
        lines.append(f"{case.label}: {advice.suggestion} ({speedup}, {advice.verdict})")
        if case.create is compressor:
            shown = advice
    if conninfo is None:
        print("  (PostgreSQL: no server answered; set RESPOOL_TOUR_POSTGRES to include it.)")
    print()
    if shown is not None:
        print("  One report in full, the compressor's (print(advice)):")
        print()
        for line in text(shown, width=WIDTH - 4).splitlines():
            print(f"    {line}".rstrip())
        print()
    pool = bursty_usage(bursts=6 if quick else 12)
    try:
        recorded = advise_from(pool)
    finally:
        pool.close()
    usage = recorded.usage
    assert usage is not None
    print_wrapped(
        "Recorded usage instead of a description: an ElasticPool of temp files made with"
        f" observe=True served {usage.uses} leases in bursts of 12 threads over a floor of"
        " one. Its"
        f" stats().usage says: at least {usage.in_use_p10} in use 90% of the time, bursts"
        f" to {usage.burst_peak}, at most {usage.in_use_max}; idle gaps up to"
        f" {usage.gap_p90 * 1e3:.1f} ms (90th percentile). respool.advise_from(pool):"
        f" {recorded.suggestion}.",
        "  ",
    )
    lines.append(f"recorded bursts: {recorded.suggestion}")
    return lines
