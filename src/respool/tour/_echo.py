"""A TCP echo server on 127.0.0.1 for the tour: network connections without a network.

The tour needs a real server to show what pooling connections saves (the handshake, a server
thread per connection) and what goes wrong when the server hangs up. It runs in the tour's own
process, so it needs nothing installed or listening beforehand, and it can hang up on every
client at once on demand: a server restart or a network blip, reproduced at will.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from collections.abc import Iterator
from typing import Final, cast

__all__ = ["Address", "EchoServer", "running"]

#: A handler whose client went silent this long gives up, so no server thread outlives a
#: tour that failed half-way.
IDLE_TIMEOUT: Final = 120.0

Address = tuple[str, int]


class EchoServer(socketserver.ThreadingTCPServer):
    """Echoes every byte back, one thread per connection, and can hang up on all of its
    clients at once."""

    daemon_threads = True
    # Fresh connections arrive in bursts from several threads; with the default backlog of
    # 5 the kernel drops connection requests and each drop stalls a client for a second.
    request_queue_size = 128

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._open: set[socket.socket] = set()
        super().__init__(("127.0.0.1", 0), _EchoHandler)

    @property
    def address(self) -> Address:
        """Where clients connect: the port is the one the kernel picked for port 0."""
        host, port = self.socket.getsockname()[:2]
        return str(host), int(port)

    def track(self, sock: socket.socket) -> None:
        """Remember a served connection, so that it can be hung up on later."""
        with self._changed:
            self._open.add(sock)

    def untrack(self, sock: socket.socket) -> None:
        """Forget a connection whose handler has finished, and tell whoever waits for that."""
        with self._changed:
            self._open.discard(sock)
            self._changed.notify_all()

    def hang_up_on_everyone(self) -> int:
        """Shut down every open connection; return how many there were.

        ``shutdown`` rather than ``close``: it wakes the handler blocked in ``recv`` on that
        socket, which then ends normally and closes it.
        """
        with self._changed:
            victims = list(self._open)
        for sock in victims:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        return len(victims)

    def wait_until_no_connections(self, timeout: float) -> bool:
        """True once every handler has finished, False if *timeout* seconds pass first."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._open, timeout)


class _EchoHandler(socketserver.BaseRequestHandler):
    """Serves one connection until the client leaves or the server hangs up."""

    def handle(self) -> None:
        """Echo until the client leaves; the idle timeout bounds a forgotten connection."""
        server = cast(EchoServer, self.server)
        sock = cast(socket.socket, self.request)
        sock.settimeout(IDLE_TIMEOUT)
        server.track(sock)
        try:
            while chunk := sock.recv(4096):
                sock.sendall(chunk)
        except OSError:
            pass  # reset, hung up on, or idle too long: the connection is over either way
        finally:
            server.untrack(sock)


@contextlib.contextmanager
def running() -> Iterator[EchoServer]:
    """Run an echo server for the duration of the block, then stop it, its connections and
    all of its threads."""
    server = EchoServer()
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="tour-echo-server"
    )
    thread.daemon = True
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.hang_up_on_everyone()
        server.server_close()  # also joins the handler threads
        thread.join()
