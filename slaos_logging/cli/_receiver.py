"""A local HTTP endpoint with slaOS's ingestion contract, for development, tests and benchmarks.

Built on the standard library only (``http.server`` and ``sqlite3``) so ``slaos-logging serve``
works wherever the library installs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import sys
import threading
from typing import Any, TextIO

from .._config import ENV_INGESTION_ID, ENV_INGESTION_KEY
from .._endpoint import check_credential, is_loopback
from . import positive_int, print_error, print_warning, tcp_port
from ._credentials import serve_credentials
from ._http import Handler
from ._server import Server
from ._store import EventStore, StoreError
from ._terminal import mask_ingest_path, printable

__all__ = ["Receiver", "add_parser", "mask_ingest_path", "run"]

DEFAULT_MAX_EVENTS = 10_000
DEFAULT_MAX_CONNECTIONS = 128
_DEFAULT_MAX_BODY = 5_000_000


class Receiver:
    """A local slaOS-compatible ingestion endpoint running in a background thread.

    Args:
        host: Interface to bind; loopback by default.
        port: TCP port; ``0`` picks a free one (read it back from :attr:`port`).
        db_path: SQLite file the events go to (created when missing).
        ingestion_id: The ingestion id clients must put in the URL.
        ingestion_key: The ingestion key clients must put in the URL. Never logged.
        max_body_bytes: Larger bodies are refused with 413.
        max_events: A request with more events is refused with 413 (clients split it).
        max_connections: Connections open at once; more get 503 at once.
        access_log: Stream for one line per request (key masked, control characters
            escaped); ``None`` for silence.

    Raises:
        ValueError: The id or key holds a character outside ``A-Z a-z 0-9 - . _ ~``, or a
            limit is not positive.

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
        max_body_bytes: int = _DEFAULT_MAX_BODY,
        access_log: TextIO | None = None,
        max_events: int = DEFAULT_MAX_EVENTS,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        for name, limit in (
            ("max_body_bytes", max_body_bytes),
            ("max_events", max_events),
            ("max_connections", max_connections),
        ):
            if limit < 1:
                raise ValueError(f"{name} must be positive")
        self.host = host
        self.ingestion_id = check_credential("ingestion_id", ingestion_id)
        self.ingestion_key = check_credential("ingestion_key", ingestion_key)
        self.max_body_bytes = max_body_bytes
        self.max_events = max_events
        self.max_connections = max_connections
        self.db_path = os.fspath(db_path)
        self.store: EventStore = None  # type: ignore[assignment]  # set by start()
        self._port = port
        self._access_log = access_log
        self._log_lock = threading.Lock()
        self._server: Server | None = None
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
            self._server = Server((self.host, self._port), self, Handler, self.max_connections)
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
        text = printable(mask_ingest_path(line.rstrip(), self.ingestion_key))
        with self._log_lock:
            try:
                stream.write(text + "\n")
                stream.flush()
            except (OSError, ValueError):
                pass


def add_parser(subparsers: argparse._SubParsersAction[Any]) -> argparse.ArgumentParser:
    """Register ``serve`` and return its parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run a local slaOS-compatible ingestion endpoint backed by SQLite",
        description="Accept events on POST /v1/ingest/{id}/{key} exactly like slaOS would, "
        "store them in SQLite, and serve GET /v1/health and .../indexed-slis. A development "
        "receiver: plain HTTP, so keep it on loopback. The accepted id and key come from "
        f"--ingestion-id and --ingestion-key-file, else {ENV_INGESTION_ID} and "
        f"{ENV_INGESTION_KEY}, else 'dev' and 'dev'.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument("--port", type=tcp_port, default=8080, help="TCP port, 0 = any free one")
    parser.add_argument(
        "--db", metavar="PATH", default="slaos-events.sqlite", help="SQLite file for events"
    )
    parser.add_argument(
        "--ingestion-id",
        metavar="ID",
        default=argparse.SUPPRESS,
        help=f"accepted ingestion id (default: {ENV_INGESTION_ID}, else dev)",
    )
    key = parser.add_mutually_exclusive_group()
    key.add_argument(
        "--ingestion-key-file",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="read the accepted ingestion key from this file (first line)",
    )
    key.add_argument(
        "--ingestion-key",
        metavar="KEY",
        default=argparse.SUPPRESS,
        help=f"accepted ingestion key (default: {ENV_INGESTION_KEY}, else dev). Warning: "
        "a key on the command line is visible to every user of this machine (ps); use "
        f"--ingestion-key-file or {ENV_INGESTION_KEY}",
    )
    parser.add_argument(
        "--max-body-bytes",
        metavar="N",
        type=positive_int,
        default=_DEFAULT_MAX_BODY,
        help="larger bodies get 413",
    )
    parser.add_argument(
        "--max-events",
        metavar="N",
        type=positive_int,
        default=DEFAULT_MAX_EVENTS,
        help="a request with more events gets 413 (the library then splits its batch)",
    )
    parser.add_argument(
        "--max-connections",
        metavar="N",
        type=positive_int,
        default=DEFAULT_MAX_CONNECTIONS,
        help="connections open at once; more get 503",
    )
    parser.add_argument("--quiet", action="store_true", help="no access log on stderr")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``serve`` until SIGINT or SIGTERM; 1 when the port or database is unusable."""
    if not is_loopback(args.host):
        print_warning(
            f"{args.host} is not a loopback address; the receiver speaks plain HTTP and "
            "ingestion URLs carry the key"
        )
    try:
        ingestion_id, ingestion_key = serve_credentials(args)
    except ValueError as exc:
        return print_error(str(exc), status=2)
    if getattr(args, "ingestion_key", "dev") != "dev":
        print_warning(
            "--ingestion-key is visible to other users of this machine (ps); prefer "
            f"--ingestion-key-file or {ENV_INGESTION_KEY}"
        )
    receiver = Receiver(
        host=args.host,
        port=args.port,
        db_path=args.db,
        ingestion_id=ingestion_id,
        ingestion_key=ingestion_key,
        max_body_bytes=args.max_body_bytes,
        access_log=None if args.quiet else sys.stderr,
        max_events=args.max_events,
        max_connections=args.max_connections,
    )
    try:
        receiver.start()
    except StoreError as exc:
        return print_error(str(exc))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return print_error(f"cannot listen on {args.host}:{args.port}: {reason}")
    where = f"{receiver.url} (db: {printable(args.db)})"
    print(f"slaos-logging receiver listening on {where}", flush=True)
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
