"""The local receiver's server: a thread per connection, for a bounded number of them.

Connections beyond ``max_connections`` get an immediate 503 from the accepting thread, and
at most :data:`BODY_SLOTS` request bodies are held and decoded at once, so what hostile or
broken clients can cost in threads and memory is bounded.
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from ._store import EventStore

__all__ = ["BODY_SLOTS", "Backend", "Server"]

#: Request bodies held and decoded at once. Decoding holds the GIL, so more would not be
#: faster, only bigger: each costs up to a few times its body size while it is decoded.
BODY_SLOTS = 2
_BUSY = json.dumps({"detail": "too many connections; retry later"}).encode()
_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
) % (len(_BUSY), _BUSY)


class Backend(Protocol):
    """What the handler needs from the receiver behind it."""

    ingestion_id: str
    ingestion_key: str
    max_body_bytes: int
    max_events: int
    store: EventStore

    def _log(self, line: str) -> None: ...


class Server(ThreadingHTTPServer):
    """A thread per connection, for at most ``max_connections`` connections at once."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        receiver: Backend,
        handler: type[BaseHTTPRequestHandler],
        max_connections: int,
    ) -> None:
        self.receiver = receiver
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        self.body_slots = threading.BoundedSemaphore(BODY_SLOTS)
        self._connections = threading.BoundedSemaphore(max_connections)
        if ":" in address[0]:  # an IPv6 literal needs an IPv6 socket
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Hand the connection to a thread, or refuse it with 503 when all slots are taken."""
        if not self._connections.acquire(blocking=False):
            self.receiver._log(f"{client_address[0]} - - 503 too many connections")
            with contextlib.suppress(OSError):
                # A few bytes into a fresh socket's empty buffer: this never blocks.
                request.sendall(_REFUSAL)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._connections.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Serve the connection, then free its slot."""
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connections.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback to stderr; a dropped client is routine here.
        exc = sys.exc_info()[1]
        self.receiver._log(f"{client_address[0]} connection error: {type(exc).__name__}")

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall on a machine with
        # slow reverse DNS; the name is only used in CGI variables, so skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)
