"""A real HTTP server on 127.0.0.1 that records requests and fails on command."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer: a status (with headers and body), a dropped connection, or a stall."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"ok":true}'
    drop: bool = False
    stall: bool = False
    #: Answer with an error body that quotes the request path (the key included), as a
    #: careless server might: the library must still never show the key.
    echo_path: bool = False


@dataclass
class Recorded:
    """A request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    #: (host, port) of the client socket: the same port means the same keep-alive connection.
    client: tuple[str, int] = ("", 0)
    #: ``time.monotonic()`` when the request arrived (before any stall).
    arrived: float = 0.0

    def json(self) -> Any:
        return json.loads(self.body)


class RecordingServer:
    """Scripted replies first, then ``default`` (or a ``responder`` deciding per request)."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.script: deque[Reply] = deque()
        self.responder: Callable[[bytes], Reply] | None = None
        self.release = threading.Event()  # ends every stall
        self._cond = threading.Condition()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: with Nagle on, the body waits for
            # the client's delayed ACK (~40 ms per request).
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                self._answer(b"", time.monotonic())

            def do_POST(self) -> None:
                arrived = time.monotonic()
                length = int(self.headers.get("Content-Length") or 0)
                self._answer(self.rfile.read(length), arrived)

            def _answer(self, body: bytes, arrived: float) -> None:
                reply = server._next_reply(body)
                if reply.stall:
                    server.release.wait(30)
                if reply.drop:
                    server._record(self, body, 0, arrived)
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                payload = reply.body
                if reply.echo_path:
                    payload = json.dumps({"error": f"cannot ingest at {self.path}"}).encode()
                # Recorded before answering: once the client has its answer, the test
                # sees the request.
                recorded = server._record(self, body, reply.status, arrived)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    # The client gave up (a stalled request): it never saw the answer, so
                    # the batch does not count as accepted. No traceback on stderr.
                    recorded.status = 0
                    self.close_connection = True

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        # A short poll interval keeps stop() (and so every test's teardown) fast.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> RecordingServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def _next_reply(self, body: bytes) -> Reply:
        with self._cond:
            if self.script:
                return self.script.popleft()
        if self.responder is not None:
            return self.responder(body)
        return Reply()

    def _record(
        self, handler: BaseHTTPRequestHandler, body: bytes, status: int, arrived: float = 0.0
    ) -> Recorded:
        client = (str(handler.client_address[0]), int(handler.client_address[1]))
        recorded = Recorded(
            handler.command, handler.path, dict(handler.headers), body, status, client, arrived
        )
        with self._cond:
            self.requests.append(recorded)
            self._cond.notify_all()
        return recorded

    def then(self, *replies: Reply) -> None:
        """Queue scripted replies for the next requests."""
        with self._cond:
            self.script.extend(replies)

    def events(self, *, accepted_only: bool = True) -> list[dict[str, Any]]:
        """Every event of every (accepted) request, in arrival order."""
        with self._cond:
            requests = list(self.requests)
        out: list[dict[str, Any]] = []
        for request in requests:
            if request.method == "POST" and (request.status == 200 or not accepted_only):
                body = request.json()
                out.extend(body if isinstance(body, list) else [body])
        return out

    def wait_for_requests(self, n: int, timeout: float = 10.0) -> bool:
        """Block until ``n`` requests were answered (or dropped)."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.requests) >= n, timeout)


def _events_of(body: bytes) -> list[dict[str, Any]]:
    try:
        parsed = json.loads(body)
    except ValueError:
        return []
    return parsed if isinstance(parsed, list) else [parsed]


def reject_marked(
    status: int = 400, field: str = "bad", message: str | None = None
) -> Callable[[bytes], Reply]:
    """A responder: ``status`` for a batch holding an event whose values have ``field: true``.

    The error body is ``message`` if given (the same for every rejection), else it names
    the first offending event's values, as validation errors do. Other batches get 200.
    """

    def respond(body: bytes) -> Reply:
        for event in _events_of(body):
            values = event.get("values") or {}
            if values.get(field) is True:
                text = message or f"values.{field} is not accepted: {json.dumps(values)}"
                return Reply(status=status, body=json.dumps({"detail": text}).encode())
        return Reply()

    return respond


def reject_larger_than(max_events: int, status: int = 413) -> Callable[[bytes], Reply]:
    """A responder: ``status`` for a batch of more than ``max_events`` events, else 200."""

    def respond(body: bytes) -> Reply:
        if len(_events_of(body)) > max_events:
            return Reply(status=status, body=b'{"detail":"payload too large"}')
        return Reply()

    return respond
