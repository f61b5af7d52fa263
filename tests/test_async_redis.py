"""AsyncFixedPool against a real Redis: a task cancelled with a reply unread on its stream.

A task sends ``GET a`` on a pooled ``asyncio`` stream and is cancelled (by ``Task.cancel()``,
``asyncio.timeout`` or ``asyncio.wait_for``) before it reads the reply. If that stream were
reused, the next user's ``GET b`` would read a's value: the reply still in flight. respool's
*abort means discard* rule destroys the stream instead, so the next user reads b's value; a
hand-made pool (an ``asyncio.Queue`` of streams, put back in a ``finally``) shows the hazard
is real. A timeout caught inside the lease (``TimeoutError``, an ordinary ``Exception``)
abandons the reply just the same, and discards the stream too. RESP is spoken by hand, so
nothing but the pool stands between the two users.

Skip policy (as in test_real_services.py): without Redis these tests skip with the reason;
when ``CI`` is ``"true"`` an unreachable server fails them instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import respool
from tests.services import unavailable

REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379
#: Seconds any connect, reply or acquire may take before the test is declared stuck.
PATIENCE = 10.0
#: How long the timeouts under test give the body: it never finishes, so the deadline always
#: passes; the figure only decides how soon.
CUT = 0.02

pytestmark = [pytest.mark.redis, pytest.mark.timeout(60)]


def resp_command(*parts: str) -> bytes:
    """A Redis command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        data = part.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


@dataclass(eq=False)
class Stream:
    """One connection to Redis: an asyncio stream pair, speaking RESP2 by hand."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    name: int = 0

    async def send(self, *parts: str) -> None:
        self.writer.write(resp_command(*parts))
        await self.writer.drain()

    async def reply(self) -> str | int | bytes | None:
        """One reply: simple string -> str, integer -> int, bulk string -> bytes or None."""
        line = await self.reader.readuntil(b"\r\n")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(f"Redis error: {rest.decode()}")
        if kind == b":":
            return int(rest)
        if kind == b"$":
            length = int(rest)
            return None if length < 0 else (await self.reader.readexactly(length + 2))[:-2]
        raise RuntimeError(f"unexpected RESP reply {line!r}")

    async def call(self, *parts: str) -> str | int | bytes | None:
        await self.send(*parts)
        async with asyncio.timeout(PATIENCE):
            return await self.reply()

    @property
    def closed(self) -> bool:
        return self.writer.is_closing()


@dataclass
class Streams:
    """Opens streams (the pools' ``create``) and closes them (their ``destroy``); closes
    whatever is still open at the end of a test."""

    opened: list[Stream] = field(default_factory=list)

    async def open(self) -> Stream:
        async with asyncio.timeout(PATIENCE):
            reader, writer = await asyncio.open_connection(REDIS_HOST, REDIS_PORT)
        stream = Stream(reader, writer, len(self.opened))
        self.opened.append(stream)
        return stream

    async def close(self, stream: Stream) -> None:
        stream.writer.close()
        with contextlib.suppress(ConnectionError):
            await stream.writer.wait_closed()

    async def close_all(self) -> None:
        for stream in self.opened:
            if not stream.closed:
                await self.close(stream)


@dataclass(frozen=True)
class Keys:
    """Two keys of this test alone, set to distinct values."""

    a: str
    b: str
    value_a: bytes
    value_b: bytes


@pytest.fixture(scope="module")
def redis() -> None:
    """Probe Redis once per module."""

    async def probe() -> None:
        streams = Streams()
        try:
            stream = await streams.open()
            reply = await stream.call("PING")
            if reply != "PONG":
                raise RuntimeError(f"PING answered {reply!r}")
        finally:
            await streams.close_all()

    try:
        asyncio.run(probe())
    except Exception as exc:
        unavailable(f"Redis not reachable at {REDIS_HOST}:{REDIS_PORT}: {exc}")


@pytest.fixture
def keys(redis: None) -> Iterator[Keys]:
    """SET a and b (keys unique to the test) to distinct values; DEL them afterwards."""
    tag = uuid.uuid4().hex
    keys = Keys(f"respool-test:{tag}:a", f"respool-test:{tag}:b", b"value of a", b"value of b")

    async def run(*commands: tuple[str, ...]) -> None:
        streams = Streams()
        try:
            stream = await streams.open()
            for command in commands:
                await stream.call(*command)
        finally:
            await streams.close_all()

    asyncio.run(run(("SET", keys.a, keys.value_a.decode()), ("SET", keys.b, keys.value_b.decode())))
    yield keys
    asyncio.run(run(("DEL", keys.a, keys.b)))


# -- the pools ---------------------------------------------------------------------------------

#: ``async with acquire() as stream``: the pool under test, as a body sees it.
Acquire = Callable[[], contextlib.AbstractAsyncContextManager[Stream]]


class NaivePool:
    """What is often written by hand: an ``asyncio.Queue`` of streams, each put back in a
    ``finally``, whatever ended the body."""

    def __init__(self) -> None:
        self._idle: asyncio.Queue[Stream] = asyncio.Queue()

    async def fill(self, streams: Streams, size: int) -> None:
        for _ in range(size):
            self._idle.put_nowait(await streams.open())

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[Stream]:
        stream = await self._idle.get()
        try:
            yield stream
        finally:
            self._idle.put_nowait(stream)


# -- the ways a task is cut short with its reply unread -----------------------------------------

#: A body that sends a command and never reads its reply.
Body = Callable[[], Coroutine[Any, Any, None]]


async def cancel_task(body: Body, sent: asyncio.Event) -> None:
    """Run *body* as a task and cancel it once its command is sent."""
    task = asyncio.create_task(body())
    async with asyncio.timeout(PATIENCE):
        await sent.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def timeout_around(body: Body, sent: asyncio.Event) -> None:
    """Run *body* under ``asyncio.timeout``, which cancels it at the deadline."""
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(CUT):
            await body()
    assert sent.is_set()


async def wait_for_around(body: Body, sent: asyncio.Event) -> None:
    """Run *body* under ``asyncio.wait_for``, which cancels it at the deadline."""
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(body(), CUT)
    assert sent.is_set()


#: How a body is cut short once its command is sent (set): each cancels the body's task.
CUTS: dict[str, Callable[[Body, asyncio.Event], Awaitable[None]]] = {
    "Task.cancel": cancel_task,
    "asyncio.timeout": timeout_around,
    "wait_for": wait_for_around,
}


async def get_a_then_next_user_gets_b(
    acquire: Acquire, keys: Keys, cut: str
) -> tuple[Stream, Stream, bytes | str | int | None]:
    """A body sends ``GET a`` and waits for an event that never fires, until *cut* ends it;
    then the next user sends ``GET b`` and reads a reply. Returns the first body's stream,
    the next user's stream and what the next user read."""
    sent, never = asyncio.Event(), asyncio.Event()
    seen: list[Stream] = []

    async def body() -> None:
        async with acquire() as stream:
            seen.append(stream)
            await stream.send("GET", keys.a)  # written and drained: the reply is on its way
            sent.set()
            await never.wait()  # cut short here, the reply unread

    await CUTS[cut](body, sent)
    async with asyncio.timeout(PATIENCE), acquire() as stream:
        reply = await stream.call("GET", keys.b)
    return seen[0], stream, reply


# -- the tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("cut", list(CUTS))
def test_cancelled_stream_is_destroyed_and_next_user_reads_b(keys: Keys, cut: str) -> None:
    """A task cut short after ``GET a`` loses its stream; the next ``GET b`` reads b's value."""
    streams = Streams()

    async def main() -> None:
        try:
            async with respool.AsyncFixedPool(
                streams.open, size=1, destroy=streams.close, timeout=PATIENCE
            ) as pool:
                first, second, reply = await get_a_then_next_user_gets_b(pool.acquire, keys, cut)
                assert reply == keys.value_b
                assert second is not first
                stats = pool.stats()
                assert stats.retired["abort"] == 1
                assert stats.created == 2
            assert first.closed, "the cancelled stream must be destroyed (closed)"
            assert pool.stats().destroyed == 2  # the aborted one, and the other at close
        finally:
            await streams.close_all()

    asyncio.run(main())
    assert all(stream.closed for stream in streams.opened)


@pytest.mark.parametrize("cut", list(CUTS))
def test_naive_queue_pool_hands_the_unread_reply_to_the_next_user(keys: Keys, cut: str) -> None:
    """Control: a queue of streams put back in ``finally`` makes the next ``GET b`` read a."""
    streams = Streams()

    async def main() -> None:
        try:
            naive = NaivePool()
            await naive.fill(streams, 1)
            first, second, reply = await get_a_then_next_user_gets_b(naive.acquire, keys, cut)
            assert second is first  # the cancelled stream was reused
            assert reply == keys.value_a  # the hazard: b's caller got a's value
        finally:
            await streams.close_all()

    asyncio.run(main())
    assert all(stream.closed for stream in streams.opened)


async def read_under_timeout(stream: Stream, never: asyncio.Event) -> None:
    """``asyncio.timeout`` inside the lease, around the wait for the reply."""
    async with asyncio.timeout(CUT):
        await never.wait()


async def read_under_wait_for(stream: Stream, never: asyncio.Event) -> None:
    """``asyncio.wait_for`` inside the lease, around the wait for the reply."""
    await asyncio.wait_for(never.wait(), CUT)


@pytest.mark.parametrize(
    "wait", [read_under_timeout, read_under_wait_for], ids=["timeout", "wait_for"]
)
def test_timeout_inside_the_lease_also_discards(
    keys: Keys, wait: Callable[[Stream, asyncio.Event], Awaitable[None]]
) -> None:
    """A TimeoutError ending the lease abandons the reply too: the stream is destroyed."""
    streams = Streams()

    async def main() -> None:
        never = asyncio.Event()
        try:
            async with respool.AsyncFixedPool(
                streams.open, size=1, destroy=streams.close, timeout=PATIENCE
            ) as pool:
                with pytest.raises(TimeoutError):
                    async with pool.acquire() as first:
                        await first.send("GET", keys.a)
                        await wait(first, never)
                async with pool.acquire() as second:
                    reply = await second.call("GET", keys.b)
                assert second is not first
                assert reply == keys.value_b
                assert pool.stats().retired["abort"] == 1
            assert first.closed
        finally:
            await streams.close_all()

    asyncio.run(main())
    assert all(stream.closed for stream in streams.opened)
