"""The tour's asyncio section: a task cut off between request and reply, on real sockets.

A cancelled task is the classic way an asyncio connection pool goes wrong: the task sends a
request, is cancelled (by ``asyncio.timeout``, ``wait_for``, a client that went away) before
it reads the reply, and a pool that simply takes the connection back lends it to the next
user, who reads the reply meant for the first one (redis-py's CVE-2023-28858). The section
starts a tiny line-protocol server in its own event loop (``GET key`` answered after
:data:`DELAY` seconds, so a client can be cut off in between) and shows, on real streams:

* the hazard, with a hand-made pool (an ``asyncio.Queue`` of streams, put back in a
  ``finally``): the next user reads the cut-off user's reply, and so does every user after;
* the same with ``AsyncFixedPool``: the cut-off stream is destroyed (``retired['abort']``);
* many tasks sharing few connections, some cancelled while waiting in line and some cut off
  mid-request: every answer is its own, nothing is lent twice, the counts stay exact;
* ``AsyncWorkerPool``: each worker task owns a stream, ``wp.map`` spreads keys over them.

No speed is measured, and the outcome does not depend on the machine: the cut-offs happen at
points the event loop makes certain (a timeout shorter than the server's delay, cancellations
issued while every task is known to be queued, a worker cut off once it is known to be
ready), so the section prints the same figures on every run but for the port and the wait
times.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from respool import AsyncFixedPool, AsyncWorkerPool, PoolStats, WorkerStats
from respool.tour._text import heading, print_wrapped

__all__ = [
    "CUT",
    "DELAY",
    "Crowd",
    "LineServer",
    "ask",
    "crowd",
    "hand_made",
    "pooled",
    "run",
    "value_of",
    "workers",
]

#: How long the server takes to answer: the window in which a client can be cut off.
DELAY: Final = 0.02
#: The impatient client's timeout, well inside :data:`DELAY`: its reply is always in flight.
CUT: Final = 0.005
#: The crowd: this many tasks on :data:`CONNECTIONS` streams; :data:`IN_LINE` of them are
#: cancelled while waiting for a stream and :data:`MID_REQUEST` cut off mid-request.
TASKS: Final = 200
CONNECTIONS: Final = 4
IN_LINE: Final = 20
MID_REQUEST: Final = 20
#: The victims are drawn at random, but from a fixed seed: every run tells the same story.
SEED: Final = 2023_28858

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def value_of(key: str) -> str:
    """What the server answers to ``GET key``: enough to tell whose answer a reply is."""
    return f"{key}'s value"


class LineServer:
    """``GET key\\n`` -> ``key's value\\n`` after :data:`DELAY` seconds, one request at a
    time per connection, on 127.0.0.1 in the running event loop (any port)."""

    def __init__(self, delay: float = DELAY) -> None:
        self.delay = delay
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        #: Connections accepted so far, over the server's life.
        self.accepted = 0

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None, "start() first"
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        """Stop listening and hang up on every client still connected."""
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._clients):
            writer.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._clients.add(writer)
        try:
            while line := await reader.readline():
                command, _, key = line.decode().strip().partition(" ")
                await asyncio.sleep(self.delay)
                answer = value_of(key) if command == "GET" else "ERR unknown command"
                writer.write(f"{answer}\n".encode())
                await writer.drain()
        except OSError:
            pass  # the client hung up with a reply on its way: nothing to send it to
        finally:
            self._clients.discard(writer)
            writer.close()


async def ask(stream: Stream, key: str) -> str:
    """One round trip: send ``GET key``, read one reply line."""
    reader, writer = stream
    writer.write(f"GET {key}\n".encode())
    return (await reader.readline()).decode().rstrip("\n")


def connector(address: tuple[str, int]) -> Callable[[], Awaitable[Stream]]:
    """The pools' ``create``: open a stream to *address*."""

    async def connect() -> Stream:
        return await asyncio.open_connection(*address)

    return connect


async def hang_up(stream: Stream) -> None:
    """The pools' ``destroy``: close the stream and wait until it is closed."""
    writer = stream[1]
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


# -- 1. one connection, two users ---------------------------------------------------------


async def _cut_off(get: Callable[[str], Awaitable[str]]) -> None:
    """User 1: ``GET a``, cut off by ``asyncio.timeout`` before the reply arrives."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(CUT):
            await get("a")


async def hand_made(address: tuple[str, int]) -> list[str]:
    """One stream in an ``asyncio.Queue``; user 1 is cut off; what users 2 and 3 read."""
    idle: asyncio.Queue[Stream] = asyncio.Queue()
    idle.put_nowait(await connector(address)())

    async def get(key: str) -> str:
        stream = await idle.get()
        try:
            return await ask(stream, key)
        finally:
            idle.put_nowait(stream)  # back in the queue, whatever happened

    await _cut_off(get)
    replies = [await get("b"), await get("c")]
    await hang_up(idle.get_nowait())
    return replies


async def pooled(address: tuple[str, int]) -> tuple[list[str], PoolStats]:
    """The same with a one-stream ``AsyncFixedPool``: what users 2 and 3 read, and its stats."""
    pool: AsyncFixedPool[Stream] = AsyncFixedPool(
        connector(address), size=1, destroy=hang_up, name="tour-one-stream"
    )
    async with pool:

        async def get(key: str) -> str:
            async with pool.acquire(timeout=2.0) as stream:
                return await ask(stream, key)

        await _cut_off(get)
        replies = [await get("b"), await get("c")]
        return replies, pool.stats()


# -- 2. many tasks, few connections --------------------------------------------------------


@dataclass
class Crowd:
    """What the tasks of :func:`crowd` saw, counted by themselves."""

    right: int = 0
    wrong: int = 0
    cancelled_in_line: int = 0
    cut_mid_request: int = 0
    lent_twice: int = 0
    most_lent: int = 0
    #: Distinct streams lent over the run (the first ones and their replacements).
    streams: int = 0


async def crowd(
    address: tuple[str, int],
    tasks: int = TASKS,
    connections: int = CONNECTIONS,
    in_line: int = IN_LINE,
    mid_request: int = MID_REQUEST,
    seed: int = SEED,
) -> tuple[Crowd, PoolStats]:
    """*tasks* tasks, one ``GET`` each, on an ``AsyncFixedPool`` of *connections* streams.

    *in_line* tasks (drawn from those that must wait) are cancelled while queued for a
    stream; *mid_request* others give up on their reply after :data:`CUT` seconds. Returns
    the tasks' own tally and the pool's stats once it is whole again.
    """
    draw = random.Random(seed)
    waiting = draw.sample(range(connections, tasks), in_line)
    rest = sorted(set(range(tasks)) - set(waiting))
    impatient = set(draw.sample(rest, mid_request))
    seen: list[asyncio.StreamWriter] = []
    lent: set[asyncio.StreamWriter] = set()
    tally = Crowd()
    pool: AsyncFixedPool[Stream] = AsyncFixedPool(
        connector(address), size=connections, destroy=hang_up, name="tour-crowd"
    )

    async def one(index: int) -> None:
        key = f"k{index}"
        async with pool.acquire(timeout=10.0) as stream:
            writer = stream[1]
            if writer in lent:
                tally.lent_twice += 1
            lent.add(writer)
            if writer not in seen:
                seen.append(writer)
            tally.most_lent = max(tally.most_lent, len(lent))
            try:
                async with asyncio.timeout(CUT if index in impatient else None):
                    reply = await ask(stream, key)
            except TimeoutError:
                tally.cut_mid_request += 1
                raise
            finally:
                lent.discard(writer)
        if reply == value_of(key):
            tally.right += 1
        else:
            tally.wrong += 1

    async with pool:
        running = [asyncio.create_task(one(i)) for i in range(tasks)]
        await asyncio.sleep(0)  # each task has run up to its first wait: most are in line
        for index in waiting:
            running[index].cancel()
        for outcome in await asyncio.gather(*running, return_exceptions=True):
            if isinstance(outcome, asyncio.CancelledError):
                tally.cancelled_in_line += 1
            elif isinstance(outcome, BaseException) and not isinstance(outcome, TimeoutError):
                raise outcome
        # Destroyed streams are replaced in the background: wait until the pool is whole.
        async with asyncio.timeout(5.0):
            while (stats := pool.stats()).size < connections or stats.creating:
                await asyncio.sleep(0.001)
        tally.streams = len(seen)
        return tally, stats


# -- 3. a stream per worker ----------------------------------------------------------------


async def workers(address: tuple[str, int], keys: list[str]) -> tuple[list[str], WorkerStats]:
    """``AsyncWorkerPool`` with a stream per worker: one submit cut off mid-request, then
    ``wp.map(ask, keys)``; the replies in order, and the pool's stats after shutdown."""
    async with AsyncWorkerPool(
        connector(address), workers=CONNECTIONS, destroy=hang_up, name="tour-stream-workers"
    ) as wp:
        # Each worker opens its stream as it starts: cut off a task that runs, not one that
        # waits for a worker to be ready.
        async with asyncio.timeout(5.0):
            while wp.stats().resources < CONNECTIONS:
                await asyncio.sleep(0.001)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CUT):
                await wp.submit(ask, "a")
        replies = [reply async for reply in wp.map(ask, keys)]
    return replies, wp.stats()


# -- the section ---------------------------------------------------------------------------


def _show(label: str, replies: list[str], width: int) -> None:
    """Users 2 and 3's replies, each flagged when it answers another user's key."""
    for key, reply in zip("bc", replies, strict=True):
        flag = "" if reply == value_of(key) else "  (wrong)"
        print(f"    {label:<{width}}  GET {key} -> {reply!r}{flag}")
        label = ""


async def _one_stream(address: tuple[str, int]) -> tuple[list[str], bool]:
    """Part 1; returns what the hand-made pool's users 2 and 3 read, and whether both
    pools behaved as expected (the hazard shown, then avoided)."""
    print_wrapped(
        f"Cut off mid-request: a server in this event loop, on {address[0]}:{address[1]},"
        f""" answers 'GET key' with "key's value" after {DELAY * 1000:.0f} ms. The pools'"""
        " create is asyncio.open_connection, their destroy closes the stream (both async"
        " def). One stream, three users: user 1 sends 'GET a' and is cut off by"
        f" asyncio.timeout({CUT}) before the reply comes; users 2 and 3 then ask for b and c.",
        "  ",
    )
    naive = await hand_made(address)
    replies, stats = await pooled(address)
    labels = ("asyncio.Queue, put back in finally:", "AsyncFixedPool(size=1):")
    width = max(map(len, labels))
    print()
    _show(labels[0], naive, width)
    _show(labels[1], replies, width)
    print()
    print_wrapped(
        "The hand-made pool's stream stays one reply behind for good: every later user reads"
        " the previous one's answer. AsyncFixedPool destroyed the cut-off stream"
        f" (stats().retired['abort'] == {stats.retired['abort']}) and made a new one in the"
        f" background, which user 2 waited for (waits == {stats.waits}).",
        "  ",
    )
    expected = [value_of("b"), value_of("c")]
    return naive, naive != expected and replies == expected and stats.retired["abort"] == 1


async def _many_tasks(address: tuple[str, int]) -> tuple[Crowd, PoolStats, bool]:
    """Part 2; returns the tasks' tally, the pool's stats, and whether every count is exact."""
    print_wrapped(
        f"Many tasks, few connections: {TASKS} tasks, one 'GET k<n>' each, on an"
        f" AsyncFixedPool of {CONNECTIONS} streams. Drawn at random: {IN_LINE} are cancelled"
        f" (Task.cancel()) while they wait in line, {MID_REQUEST} give up on their reply"
        f" after {CUT * 1000:.0f} ms (asyncio.timeout around the read, inside the"
        " 'async with pool.acquire()' block). Each task checks that it got its own key's"
        " value and that no other task holds its stream.",
        "  ",
    )
    tally, stats = await crowd(address)
    answered = TASKS - IN_LINE - MID_REQUEST
    aborted = stats.retired["abort"]
    print()
    print(f"    answers: {tally.right} right, {tally.wrong} wrong (of {answered} awaited)")
    print(
        f"    cancelled in line: {tally.cancelled_in_line}, losing nothing;"
        f" cut off mid-request: {tally.cut_mid_request}"
    )
    print(f"    retired['abort'] == {aborted}: one destroyed stream per cut-off")
    print(
        f"    created {stats.created} - destroyed {stats.destroyed} == {stats.size} == size;"
        f" idle {stats.idle}, in use {stats.in_use}"
    )
    print(
        f"    streams lent at once: at most {tally.most_lent}; to two tasks at once:"
        f" {tally.lent_twice}; streams used: {tally.streams}"
    )
    print(
        f"    waits: {stats.waits} (of {stats.acquires} acquires), mean"
        f" {stats.wait_time_mean * 1000:.0f} ms, longest {stats.wait_time_max * 1000:.0f} ms"
    )
    exact = (
        (tally.right, tally.wrong, tally.lent_twice) == (answered, 0, 0)
        and (tally.cancelled_in_line, tally.cut_mid_request) == (IN_LINE, MID_REQUEST)
        and aborted == MID_REQUEST
        and stats.created - stats.destroyed == stats.size == CONNECTIONS
        and tally.most_lent <= CONNECTIONS
    )
    return tally, stats, exact


async def _stream_workers(address: tuple[str, int]) -> bool:
    """Part 3; returns whether every reply was right and the cut-off stream replaced."""
    print("  AsyncWorkerPool: each worker task owns a stream.")
    print(f"    async with asyncio.timeout({CUT}):  # cut off mid-request, as user 1 was")
    print("        await wp.submit(ask, 'a')")
    print("    replies = [reply async for reply in wp.map(ask, keys)]")
    keys = [f"w{n}" for n in range(8)]
    got, stats = await workers(address, keys)
    right = got == [value_of(key) for key in keys]
    replaced = stats.retired["abort"]
    outcome = "each the right one, in the order of the keys" if right else "SOME WRONG"
    print_wrapped(
        f"ask(stream, key) runs on the worker's own stream, {CONNECTIONS} workers at a time:"
        f" {len(got)} replies, {outcome}. The cut-off"
        f" submit's stream was replaced (retired['abort'] == {replaced}): {stats.created}"
        f" streams created, {stats.destroyed} closed by the end of 'async with'.",
        "  ",
    )
    return right and replaced == 1


async def _tour() -> str:
    server = LineServer()
    await server.start()
    try:
        address = server.address
        print_wrapped(
            "The asyncio twins: AsyncFixedPool, AsyncElasticPool and AsyncWorkerPool, with"
            " callbacks that may be async def. Their hazard is cancellation: a task that"
            " sends a request and is cancelled (asyncio.timeout, wait_for, a client that went"
            " away) before it reads the reply leaves that reply on its way down the"
            " connection. A pool that takes the connection back as it is lends the next user"
            " someone else's answer (redis-py, CVE-2023-28858).",
            "  ",
        )
        print()
        naive, shown = await _one_stream(address)
        print()
        tally, stats, exact = await _many_tasks(address)
        print()
        replaced = await _stream_workers(address)
    finally:
        await server.stop()
    verdict = "as promised" if shown and exact and replaced else "NOT AS PROMISED"
    return (
        "asyncio: a task cut off between request and reply left the reply on its stream;"
        f" from a hand-made asyncio.Queue pool, the next users got {naive[0]!r} for b and"
        f" {naive[1]!r} for c; from AsyncFixedPool, their own (the stream was destroyed)."
        f" {TASKS} tasks on {CONNECTIONS} streams,"
        f" {tally.cancelled_in_line + tally.cut_mid_request} cancelled: {tally.right} right"
        f" answers, {tally.wrong} wrong, created - destroyed =="
        f" {stats.created - stats.destroyed} ({verdict})."
    )


def run(quick: bool) -> str:
    """Print the section; return one summary sentence built from what it saw.

    The section measures no speed, so ``quick`` changes nothing: it takes about a second.
    """
    del quick
    heading("6. asyncio: a task cancelled mid-request")
    return asyncio.run(_tour())
