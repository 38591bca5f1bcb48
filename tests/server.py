"""A real HTTP server on 127.0.0.1 that records requests and fails on command."""

from __future__ import annotations

import json
import threading
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


@dataclass
class Recorded:
    """A request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

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

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                self._answer(b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self._answer(self.rfile.read(length))

            def _answer(self, body: bytes) -> None:
                reply = server._next_reply(body)
                if reply.stall:
                    server.release.wait(30)
                if reply.drop:
                    server._record(self, body, 0)
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
                server._record(self, body, reply.status)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

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

    def _record(self, handler: BaseHTTPRequestHandler, body: bytes, status: int) -> None:
        with self._cond:
            self.requests.append(
                Recorded(handler.command, handler.path, dict(handler.headers), body, status)
            )
            self._cond.notify_all()

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
