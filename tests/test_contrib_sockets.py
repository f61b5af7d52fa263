"""respool.contrib.sockets: a check that never blocks and refuses a hung-up peer or unread
bytes, and pools of real TCP and Unix connections that never lend a stale reply."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import respool
from respool.contrib import sockets
from tests.conftest import Boom, wait_until


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    try:
        yield a, b
    finally:
        a.close()
        b.close()


@pytest.fixture(params=["dontwait", "fallback"])
def peek_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of peeking: MSG_DONTWAIT, and switching the socket non-blocking for it."""
    if request.param == "fallback":
        monkeypatch.setattr(sockets, "_DONTWAIT", 0)
    elif not sockets._DONTWAIT:
        pytest.skip("this platform has no MSG_DONTWAIT")
    return str(request.param)


def test_alive_says_no_to_unread_bytes_a_hung_up_peer_and_a_closed_socket(
    pair: tuple[socket.socket, socket.socket], peek_mode: str
) -> None:
    """Idle and connected: alive; bytes waiting, peer gone, or closed here: not."""
    mine, peer = pair
    assert sockets.alive(mine)
    peer.sendall(b"late reply")
    assert not sockets.alive(mine)
    assert mine.recv(100) == b"late reply"  # the peek consumed nothing
    assert sockets.alive(mine)
    peer.close()
    assert not sockets.alive(mine)
    mine.close()
    assert not sockets.alive(mine)


def test_alive_never_waits_on_a_socket_with_a_timeout(
    pair: tuple[socket.socket, socket.socket], peek_mode: str
) -> None:
    """A socket with a timeout is blocking to Python: the peek must not wait for it."""
    mine, _ = pair
    mine.settimeout(5.0)
    started = time.monotonic()
    assert sockets.alive(mine)
    assert time.monotonic() - started < 2.0
    assert mine.gettimeout() == 5.0  # restored


def test_reset_refuses_a_socket_with_unread_bytes(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """reset raises UnreadData naming why, so the pool destroys the socket."""
    mine, peer = pair
    life = sockets.unix("/unused")
    assert life.reset is not None
    life.reset(mine)  # clean: nothing waiting
    peer.sendall(b"x")
    with pytest.raises(sockets.UnreadData, match="unread bytes"):
        life.reset(mine)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"port": 0}, ValueError, "port"),
        ({"port": 70000}, ValueError, "port"),
        ({"port": "80"}, TypeError, "port"),
        ({"port": 80, "timeout": -1}, ValueError, "timeout"),
        ({"port": 80, "nodelay": 1}, TypeError, "nodelay"),
    ],
)
def test_bad_arguments_name_the_parameter(
    kwargs: dict[str, Any], error: type[Exception], name: str
) -> None:
    """tcp() refuses bad input at once, naming the parameter."""
    with pytest.raises(error, match=name):
        sockets.tcp("127.0.0.1", **kwargs)


class SlowServer:
    """A line server: 'GET k' is answered 'k=v' after *delay*; 'BYE' hangs up; hang_up_all()
    closes every connection from the server's side."""

    def __init__(self, family: int = socket.AF_INET, path: str | None = None, delay: float = 0.05):
        self.delay = delay
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        if family == socket.AF_INET:
            self.listener.bind(("127.0.0.1", 0))
        else:
            self.listener.bind(path)
        self.listener.listen()
        self.conns: list[socket.socket] = []
        self.accepted = 0
        #: Set once a reply has been sent (on loopback it is then in the client's buffer).
        self.replied = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.conns.append(conn)
            self.accepted += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn, conn.makefile("rb") as lines:
                for line in lines:
                    key = line.decode().split()[-1]
                    time.sleep(self.delay)
                    conn.sendall(f"{key}=v\n".encode())
                    self.replied.set()
        except OSError:  # the client went away (a refused socket is closed unread: a reset)
            return

    def hang_up_all(self) -> None:
        for conn in self.conns:
            conn.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()
        for conn in self.conns:
            conn.close()


def ask(sock: socket.socket, key: str) -> str:
    sock.sendall(f"GET {key}\n".encode())
    reply = b""
    while not reply.endswith(b"\n"):
        chunk = sock.recv(100)
        if not chunk:
            raise ConnectionError("hung up")
        reply += chunk
    return reply.decode().strip()


def give_up_before_the_reply(pool: respool.FixedPool[socket.socket]) -> None:
    """A caller sends a request, then its block fails before it reads the reply."""
    with pytest.raises(Boom), pool.acquire() as sock:
        sock.sendall(b"GET a\n")
        raise Boom("gave up waiting")


@pytest.mark.parametrize("family", ["tcp", "unix"])
def test_a_reply_left_unread_never_reaches_the_next_user(family: str) -> None:
    """The block fails between request and reply; the reply arrives while the socket is
    idle: the check finds it unread, the socket is destroyed, the next user reads its own
    reply. (A reply still on its way when the socket is lent cannot be seen by any check:
    that is why a block cut short by a timeout or a cancellation destroys its resource.)"""
    with tempfile.TemporaryDirectory() as tmp:
        if family == "tcp":
            server = SlowServer(delay=0.05)
            life = sockets.tcp("127.0.0.1", server.listener.getsockname()[1], timeout=5)
        else:
            path = os.path.join(tmp, "s.sock")
            server = SlowServer(socket.AF_UNIX, path, delay=0.05)
            life = sockets.unix(path, timeout=5)
        try:
            with respool.FixedPool(life, size=1) as pool:
                give_up_before_the_reply(pool)
                assert server.replied.wait(5)  # the late reply to "GET a" has arrived
                with pool.acquire(timeout=5) as sock:
                    assert ask(sock, "b") == "b=v"
                stats = pool.stats()
                assert stats.created == 2, stats  # the first socket was not lent again
        finally:
            server.close()


def test_a_peer_that_hung_up_while_idle_is_replaced_before_anyone_uses_it() -> None:
    """The server closes every idle connection: the check sees it, a new one is made."""
    server = SlowServer(delay=0)
    try:
        life = sockets.tcp("127.0.0.1", server.listener.getsockname()[1], timeout=5)
        with respool.FixedPool(life, size=2) as pool:
            wait_until(lambda: server.accepted == 2)
            server.hang_up_all()  # (on loopback the FINs are with us when this returns)
            for key in "xyz":
                with pool.acquire(timeout=5) as sock:
                    assert ask(sock, key) == f"{key}=v"
            assert pool.stats().check_failures >= 1
    finally:
        server.close()
