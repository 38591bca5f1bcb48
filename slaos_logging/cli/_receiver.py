"""A local HTTP endpoint with slaOS's ingestion contract, for development, tests and benchmarks.

Built on the standard library only (``http.server`` and ``sqlite3``) so ``slaos-logging serve``
works wherever the library installs.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import re
import signal
import socket
import socketserver
import sys
import threading
from http.server import ThreadingHTTPServer
from typing import Any, TextIO

from . import positive_int, print_error, tcp_port
from ._http import _Handler
from ._store import EventStore, StoreError

__all__ = ["Receiver", "add_parser", "mask_ingest_path", "run"]

# Whatever follows the ingestion id in an ingest path is a key (right or wrong): never echo it.
_KEY_IN_TEXT = re.compile(r"(/v\d+/ingest/[^/\s?#\"']+/)[^/\s?#\"']+")


def mask_ingest_path(text: str, secret: str | None = None) -> str:
    """Return ``text`` with the key segment of any ingest path, and ``secret``, masked.

    The literal ``secret`` is only replaced when it is long enough to be a real key: a toy
    key such as ``dev`` would otherwise mangle ordinary words (and the ingestion id).
    """
    masked = _KEY_IN_TEXT.sub(r"\1***", text)
    if secret and len(secret) >= 6:
        masked = masked.replace(secret, "***")
    return masked


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], receiver: Receiver) -> None:
        self.receiver = receiver
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        host = address[0]
        if ":" in host:  # an IPv6 literal needs an IPv6 socket
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

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


class Receiver:
    """A local slaOS-compatible ingestion endpoint running in a background thread.

    Args:
        host: Interface to bind; loopback by default.
        port: TCP port; ``0`` picks a free one (read it back from :attr:`port`).
        db_path: SQLite file the events go to (created when missing).
        ingestion_id: The ingestion id clients must put in the URL.
        ingestion_key: The ingestion key clients must put in the URL. Never logged.
        max_body_bytes: Larger bodies are refused with 413.
        access_log: Stream for one line per request (key masked); ``None`` for silence.

    Example:
        >>> with Receiver(db_path="events.sqlite") as receiver:  # doctest: +SKIP
        ...     post_events(receiver.url + "/v1/ingest/dev/dev")
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        db_path: str | os.PathLike[str] = "slaos-events.sqlite",
        ingestion_id: str = "dev",
        ingestion_key: str = "dev",
        max_body_bytes: int = 5_000_000,
        access_log: TextIO | None = None,
    ) -> None:
        self.host = host
        self.ingestion_id = ingestion_id
        self.ingestion_key = ingestion_key
        self.max_body_bytes = max_body_bytes
        self.db_path = os.fspath(db_path)
        self.store: EventStore = None  # type: ignore[assignment]  # set by start()
        self._port = port
        self._access_log = access_log
        self._log_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"Receiver(url={self.url!r}, db_path={self.db_path!r}, ingestion_key='***')"

    @property
    def port(self) -> int:
        """The bound port (the requested one before :meth:`start`)."""
        return self._port

    @property
    def url(self) -> str:
        """Base URL such as ``http://127.0.0.1:8080`` (no trailing slash)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def ingest_url(self) -> str:
        """The full ingestion URL. It contains the key: never print or log it."""
        return f"{self.url}/v1/ingest/{self.ingestion_id}/{self.ingestion_key}"

    def start(self) -> Receiver:
        """Open the store, bind the socket and serve from a daemon thread.

        Raises:
            OSError: The address cannot be bound (e.g. the port is in use).
            StoreError: The database cannot be opened.
        """
        if self._server is not None:
            raise RuntimeError("receiver already started")
        self.store = EventStore(self.db_path)
        try:
            self._server = _Server((self.host, self._port), self)
        except BaseException:
            self.store.close()
            raise
        self._port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="slaos-logging-receiver",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open keep-alive connections and close the store."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with server.sockets_lock:
            for sock in list(server.open_sockets):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join()
        self.store.close()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _log(self, line: str) -> None:
        stream = self._access_log
        if stream is None:
            return
        text = mask_ingest_path(line.rstrip(), self.ingestion_key)
        with self._log_lock:
            try:
                stream.write(text + "\n")
                stream.flush()
            except (OSError, ValueError):
                pass


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def add_parser(subparsers: argparse._SubParsersAction[Any]) -> argparse.ArgumentParser:
    """Register ``serve`` and return its parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run a local slaOS-compatible ingestion endpoint backed by SQLite",
        description="Accept events on POST /v1/ingest/{id}/{key} exactly like slaOS would, "
        "store them in SQLite, and serve GET /v1/health and .../indexed-slis. For local "
        "development and tests; plain HTTP, so keep it on loopback.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument("--port", type=tcp_port, default=8080, help="TCP port, 0 = any free one")
    parser.add_argument(
        "--db", metavar="PATH", default="slaos-events.sqlite", help="SQLite file for events"
    )
    parser.add_argument("--ingestion-id", metavar="ID", default="dev", help="accepted ingestion id")
    parser.add_argument(
        "--ingestion-key", metavar="KEY", default="dev", help="accepted ingestion key"
    )
    parser.add_argument(
        "--max-body-bytes",
        metavar="N",
        type=positive_int,
        default=5_000_000,
        help="larger bodies get 413",
    )
    parser.add_argument("--quiet", action="store_true", help="no access log on stderr")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``serve`` until SIGINT or SIGTERM; 1 when the port or database is unusable."""
    if not _is_loopback(args.host):
        print(
            f"slaos-logging: warning: {args.host} is not a loopback address; the receiver "
            "speaks plain HTTP and ingestion URLs carry the key",
            file=sys.stderr,
            flush=True,
        )
    receiver = Receiver(
        host=args.host,
        port=args.port,
        db_path=args.db,
        ingestion_id=args.ingestion_id,
        ingestion_key=args.ingestion_key,
        max_body_bytes=args.max_body_bytes,
        access_log=None if args.quiet else sys.stderr,
    )
    try:
        receiver.start()
    except StoreError as exc:
        return print_error(str(exc))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return print_error(f"cannot listen on {args.host}:{args.port}: {reason}")
    print(f"slaos-logging receiver listening on {receiver.url} (db: {args.db})", flush=True)
    stopping = threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.Signals.SIGINT, signal.Signals.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: stopping.set())
    try:
        # A bounded wait keeps the main thread responsive to signals on every platform.
        while not stopping.wait(1.0):
            pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        receiver.stop()
    return 0
