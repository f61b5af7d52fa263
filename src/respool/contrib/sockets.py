"""Pooled client sockets (TCP or Unix) whose ``check`` refuses the *not quite there* and the
*not quite clean*: a peer that hung up, and unread bytes.

A socket lent, used and returned may still hold the tail of a reply its last user never read
(a request timed out, a task was cancelled): the next user would read it as its own answer.
Or the peer may have closed the connection while the socket sat idle. Both show up the same
way, without sending anything: a non-blocking ``recv(1, MSG_PEEK)`` returns data (unread
bytes) or ``b""`` (end of stream), where a healthy idle socket has nothing to read. That is
what :func:`alive` does.

The peek must not block: a socket with a timeout (``settimeout``) is, to Python, blocking
with a deadline, and ``recv`` on it first waits up to that long for something to read,
whatever flags it is given (``MSG_DONTWAIT`` included). So the peek switches such a socket to
non-blocking and restores its timeout after; only a socket without a timeout is peeked with
``MSG_DONTWAIT`` alone.

``tcp()`` and ``unix()`` return a :class:`~respool.Lifecycle`: ``create`` connects,
``check`` is :func:`alive`, ``reset`` refuses a socket with unread bytes (it raises, so the
pool destroys it rather than lend it), ``destroy`` closes. Use ``check_after`` to skip the
peek for sockets returned a moment ago, if its cost (one system call) matters.
"""

from __future__ import annotations

import socket
from typing import Final

from respool import _validate
from respool.lifecycle import Lifecycle

__all__ = ["UnreadData", "alive", "tcp", "unix"]

_DONTWAIT: Final = getattr(socket, "MSG_DONTWAIT", 0)


class UnreadData(Exception):
    """A socket came back with bytes nobody read: it must not be lent again."""


def _peek(sock: socket.socket) -> bytes | None:
    """One byte waiting on *sock* (``b""``: the peer closed), or None: nothing to read."""
    timeout = sock.gettimeout()
    if timeout is None and _DONTWAIT:
        # Blocking without a timeout: Python calls recv() directly, so the flag suffices.
        try:
            return sock.recv(1, socket.MSG_PEEK | _DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return None
    # With a timeout, Python first waits (up to it) for the socket to become readable,
    # whatever the flags: make it non-blocking for the peek, then put the timeout back.
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK)
    except (BlockingIOError, InterruptedError):
        return None
    finally:
        sock.settimeout(timeout)


def alive(sock: socket.socket) -> bool:
    """Is *sock* connected, with nothing unread? Never blocks, whatever its timeout."""
    if sock.fileno() < 0:
        return False  # closed on our side
    try:
        return _peek(sock) is None
    except OSError:  # reset by the peer, not connected...
        return False


def _clean(sock: socket.socket) -> None:
    """``reset``: a socket returned with bytes waiting is refused (the pool destroys it)."""
    try:
        waiting = _peek(sock)
    except OSError as exc:
        raise UnreadData(f"socket is broken: {exc}") from exc
    if waiting is not None:
        what = "the peer closed it" if waiting == b"" else "unread bytes are waiting on it"
        raise UnreadData(f"a socket came back that cannot be reused: {what}")


def _close(sock: socket.socket) -> None:
    sock.close()


def tcp(
    host: str, port: int, *, timeout: float | None = 10.0, nodelay: bool = True
) -> Lifecycle[socket.socket]:
    """Client TCP connections to *host*:*port*. *timeout*: for connecting, and then the
    sockets' own timeout (None: blocking). *nodelay*: set ``TCP_NODELAY`` (request/reply
    protocols want it)."""
    _validate.text("host", host)
    port = _validate.integer("port", port, minimum=1)
    if port > 65535:
        raise ValueError(f"port must be an int from 1 to 65535, got {port!r}")
    timeout = _validate.seconds("timeout", timeout)
    if not isinstance(nodelay, bool):
        raise TypeError(f"nodelay must be a bool, got {nodelay!r}")

    def connect() -> socket.socket:
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            if nodelay:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except BaseException:
            sock.close()
            raise
        return sock

    return Lifecycle(connect, reset=_clean, check=alive, destroy=_close)


def unix(path: str, *, timeout: float | None = 10.0) -> Lifecycle[socket.socket]:
    """Client connections to the Unix socket at *path* (*timeout* as in :func:`tcp`)."""
    _validate.text("path", path)
    timeout = _validate.seconds("timeout", timeout)
    if not hasattr(socket, "AF_UNIX"):  # pragma: no cover - Windows
        raise RuntimeError("Unix sockets are not available on this platform")

    def connect() -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(path)
        except BaseException:
            sock.close()
            raise
        return sock

    return Lifecycle(connect, reset=_clean, check=alive, destroy=_close)
