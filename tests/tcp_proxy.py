"""A small TCP proxy for network-cut drills: put it between a pool and a real server, then cut.

``TcpProxy(host, port)`` listens on 127.0.0.1 at a free port and forwards every connection to
*host*:*port*, byte for byte, with a thread per direction. Two kinds of fault:

- ``cut()``: every live connection is reset (RST, as when a router or the server's host dies)
  and new connections are refused: accepted and reset at once, so a client's connect fails
  quickly rather than waiting out a timeout.
- ``blackhole()``: nothing more gets through, in either direction, and nothing is closed: live
  connections and new ones hang, as behind a partition. A client learns only from its timeouts.

``restore()`` forwards again (connections made before a cut stay dead; a blackholed one that
survived its client's timeout resumes). Used as a context manager, the proxy closes every
socket and joins every thread on exit.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from types import TracebackType
from typing import Final, Self

#: How long a pump waits in ``recv`` before looking at the proxy's mode again.
_TICK: Final = 0.05


def _reset(sock: socket.socket) -> None:
    """Close *sock* with a TCP RST rather than an orderly FIN: the peer sees "reset"."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to a target address, with faults on demand."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._lock = threading.Lock()
        self._mode = "forward"  # "forward" | "cut" | "blackhole"
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._threads: list[threading.Thread] = []
        self._closed = threading.Event()
        #: Connections refused (reset at once) since the proxy started.
        self.refused = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(_TICK)
        self.host: str = "127.0.0.1"
        self.port: int = self._listener.getsockname()[1]
        self._start(self._accept_forever, "accept")

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    # -- faults ----------------------------------------------------------------------------

    def cut(self) -> None:
        """Reset every live connection and refuse new ones until :meth:`restore`."""
        with self._lock:
            self._mode = "cut"
            pairs, self._pairs = self._pairs, set()
        for client, server in pairs:
            _reset(client)
            _reset(server)

    def blackhole(self) -> None:
        """Let nothing more through, close nothing: connections hang until :meth:`restore`."""
        with self._lock:
            self._mode = "blackhole"

    def restore(self) -> None:
        """Forward again."""
        with self._lock:
            self._mode = "forward"

    # -- plumbing --------------------------------------------------------------------------

    def _start(self, target: object, name: str, *args: object) -> None:
        thread = threading.Thread(
            target=target,  # type: ignore[arg-type]
            args=args,
            name=f"tcp-proxy-{self.port}-{name}",
            daemon=True,
        )
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _accept_forever(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed
            with self._lock:
                mode = self._mode
            if mode == "cut":
                self.refused += 1
                _reset(client)
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                self.refused += 1
                _reset(client)
                continue
            for sock in (client, server):
                sock.settimeout(_TICK)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pair = (client, server)
            with self._lock:
                self._pairs.add(pair)
            self._start(self._pump, "up", pair, client, server)
            self._start(self._pump, "down", pair, server, client)

    def _pump(
        self,
        pair: tuple[socket.socket, socket.socket],
        source: socket.socket,
        sink: socket.socket,
    ) -> None:
        """Copy *source* to *sink* while forwarding; hold the bytes back while blackholed."""
        held = b""
        while not self._closed.is_set():
            with self._lock:
                mode, mine = self._mode, pair in self._pairs
            if not mine:
                return  # cut: the sockets are already reset
            if mode == "forward" and held:
                try:
                    sink.sendall(held)
                except OSError:
                    break
                held = b""
            try:
                data = source.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break  # orderly close: pass it on below
            with self._lock:
                mode = self._mode  # it may have changed while recv() waited
            if mode == "forward" and not held:
                try:
                    sink.sendall(data)
                except OSError:
                    break
            else:
                held += data  # blackholed: nothing gets through until restore()
        with self._lock:
            mine = pair in self._pairs
            self._pairs.discard(pair)
        if mine:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.close()

    def close(self) -> None:
        """Close the listener and every connection; join every thread."""
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            pairs, self._pairs = self._pairs, set()
            threads = list(self._threads)
        for client, server in pairs:
            _reset(client)
            _reset(server)
        for thread in threads:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
