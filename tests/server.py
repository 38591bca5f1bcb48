"""A real HTTP server on 127.0.0.1 that records requests and fails on command."""

from __future__ import annotations

import errno
import json
import random
import socket
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
    #: Set once the answer was written (or failed, or the connection was dropped): from
    #: then on ``status`` no longer changes.
    final: bool = False

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
        #: Open client connections, so ``go_down()`` can cut the keep-alive ones too.
        self._connections: set[socket.socket] = set()
        self._down = False
        #: Requests whose body was read, counted before any stall (``requests`` only
        #: lists a request once it is answered).
        self.arrivals = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes: with Nagle on, the body waits for
            # the client's delayed ACK (~40 ms per request).
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def setup(self) -> None:
                super().setup()
                with server._cond:
                    server._connections.add(self.connection)

            def finish(self) -> None:
                with server._cond:
                    server._connections.discard(self.connection)
                try:
                    super().finish()
                except OSError:  # the connection was cut by go_down()
                    pass

            def do_GET(self) -> None:
                self._answer(b"", time.monotonic())

            def do_POST(self) -> None:
                arrived = time.monotonic()
                length = int(self.headers.get("Content-Length") or 0)
                self._answer(self.rfile.read(length), arrived)

            def _answer(self, body: bytes, arrived: float) -> None:
                if server._down:  # a request that raced go_down(): never accepted
                    self.close_connection = True
                    return
                with server._cond:
                    server.arrivals += 1
                    server._cond.notify_all()
                reply = server._next_reply(body)
                if reply.stall:
                    server.release.wait(30)
                if reply.drop:
                    server._record(self, body, 0, arrived).final = True
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
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
                finally:
                    recorded.final = True

        self._handler_class = Handler
        self._httpd = self._listen(0)
        self._port = int(self._httpd.server_address[1])
        self._thread = self._serve_thread()

    def _listen(self, port: int) -> ThreadingHTTPServer:
        httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class)
        httpd.daemon_threads = True
        return httpd

    def _serve_thread(self) -> threading.Thread:
        # A short poll interval keeps stop() (and so every test's teardown) fast.
        return threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> RecordingServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        if not self._down:
            self._httpd.shutdown()
            self._httpd.server_close()
        self._down = True

    @property
    def down(self) -> bool:
        """Whether the server is in an outage (``go_down()`` without ``go_up()``)."""
        return self._down

    def go_down(self) -> None:
        """Start an outage: stop listening (connections are refused) and cut open ones.

        The port stays reserved for ``go_up()`` only by convention: nothing listens on it.
        """
        if self._down:
            return
        self._down = True
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._cond:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def go_up(self, timeout: float = 10.0) -> None:
        """End an outage: listen again on the same port (same ``url``)."""
        if not self._down:
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._httpd = self._listen(self._port)
                break
            except OSError as exc:
                # An outgoing connection may briefly hold the port as its local end.
                if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self._down = False
        self._thread = self._serve_thread()
        self._thread.start()

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

    def wait_for_arrivals(self, n: int, timeout: float = 10.0) -> bool:
        """Block until ``n`` requests arrived, answered or not (a stalled one counts)."""
        with self._cond:
            return self._cond.wait_for(lambda: self.arrivals >= n, timeout)

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


def random_failures(
    seed: int,
    *,
    error: float = 0.3,
    drop: float = 0.1,
    throttle: float = 0.0,
    retry_after: tuple[str, ...] = ("0", "1"),
) -> Callable[[bytes], Reply]:
    """A responder failing at random, reproducibly (seeded, thread-safe).

    Args:
        seed: Seed of the responder's own random generator.
        error: Share of requests answered 500 or 503.
        drop: Share of requests whose connection is dropped after the body was read.
        throttle: Share of requests answered 429 with a ``Retry-After`` from ``retry_after``.
        retry_after: ``Retry-After`` values to pick from for 429 answers.
    """
    rng = random.Random(seed)
    lock = threading.Lock()

    def respond(body: bytes) -> Reply:
        with lock:
            draw = rng.random()
            status = rng.choice((500, 503))
            wait = rng.choice(retry_after)
        if draw < error:
            return Reply(status=status, body=b'{"detail":"try again"}')
        if draw < error + drop:
            return Reply(drop=True)
        if draw < error + drop + throttle:
            return Reply(status=429, headers={"Retry-After": wait}, body=b'{"detail":"slow"}')
        return Reply()

    return respond


def reject_larger_than(max_events: int, status: int = 413) -> Callable[[bytes], Reply]:
    """A responder: ``status`` for a batch of more than ``max_events`` events, else 200."""

    def respond(body: bytes) -> Reply:
        if len(_events_of(body)) > max_events:
            return Reply(status=status, body=b'{"detail":"payload too large"}')
        return Reply()

    return respond
