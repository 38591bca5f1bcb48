"""The local receiver's request handler: routing, credentials, body limits, replies.

Every reply is JSON with a Content-Length, so HTTP/1.1 keep-alive clients (the library's
``requests.Session``) can reuse one connection for a whole run.

Credentials are checked before a body is read, and a refused body is drained in small
chunks, never held. A body waits for one of the server's few body slots before it is read
(its bytes wait in the kernel's socket buffers meanwhile); one request carries at most
``max_events`` events; a 400 names at most :data:`~._validate.MAX_LISTED_ERRORS` bad events.
``/v1/health`` needs no slot, so it answers while ingestion is busy.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import re
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ._server import Server
from ._store import Row, encode_row
from ._validate import MAX_LISTED_ERRORS, NotEvents, TooManyEvents, iter_events, validate_event

__all__ = ["Handler", "validate_event"]

_SLOT_WAIT = 30.0  # seconds a body waits for a slot before the client is told 503
_BODY_SECONDS = 60.0  # a body must arrive within this, however slowly its bytes trickle
_CHUNK = 64 * 1024
_MAX_DISCARD = 256 * 1024 * 1024  # larger unwanted bodies close the connection instead
_INGEST = re.compile(r"^/v1/ingest/([^/]+)/([^/]+)/?$")
_INDEXED = re.compile(r"^/v1/ingest/([^/]+)/([^/]+)/indexed-slis/?$")
_DEFAULT_LIMIT = 100
_MAX_LIMIT = 1000


class Handler(BaseHTTPRequestHandler):
    """One connection's requests: health, ingestion and read-back, per slaOS's contract."""

    protocol_version = "HTTP/1.1"
    server_version = "slaos-logging-receiver"
    # Two small writes (headers, body) per response would otherwise meet delayed ACKs.
    disable_nagle_algorithm = True
    # Idle keep-alive connections and stalled bodies must not pin a thread forever.
    timeout = 60
    server: Server

    def setup(self) -> None:
        super().setup()
        with self.server.sockets_lock:
            self.server.open_sockets.add(self.connection)

    def finish(self) -> None:
        with self.server.sockets_lock:
            self.server.open_sockets.discard(self.connection)
        super().finish()

    # -- logging: the base class logs the raw request line, which carries the key.
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Suppress the base class's line; :meth:`_respond` writes a masked one."""

    def log_message(self, format: str, *args: Any) -> None:
        """Write a line to the access log; the receiver masks the key and escapes it."""
        self.server.receiver._log(f"{self.client_address[0]} {format % args}")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer protocol errors (bad request line, 501...) with JSON, like every other reply."""
        self.close_connection = True
        if self.request_version == "HTTP/0.9":
            # Set when the request line could not be parsed; nobody speaks 0.9 any more, and
            # a status line tells a confused client far more than a bare body would.
            self.request_version = "HTTP/1.1"
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "error"
        self._respond(code, {"detail": phrase}, note=phrase)

    def handle_expect_100(self) -> bool:
        """Refuse wrong credentials before the client sends its body at all."""
        match = _INGEST.match(urlsplit(self.path).path)
        if self.command == "POST" and match and not self._authorized(*match.groups()):
            self.close_connection = True
            self._respond(401, {"detail": "invalid ingestion id or key"})
            return False
        return super().handle_expect_100()

    # -- routing
    def do_GET(self) -> None:
        """Route GET requests."""
        self._dispatch(self._get)

    def do_POST(self) -> None:
        """Route POST requests."""
        self._dispatch(self._post)

    def do_PUT(self) -> None:
        """Nothing lives under PUT."""
        self._dispatch(self._not_found)

    do_DELETE = do_PATCH = do_PUT

    def _dispatch(self, route: Callable[[], None]) -> None:
        try:
            route()
        except Exception as exc:
            self.close_connection = True
            self.log_message("internal error: %s", type(exc).__name__)
            with contextlib.suppress(OSError):  # the client may be gone already
                self._respond(500, {"detail": "internal receiver error"}, note="")

    def _not_found(self) -> None:
        self._refuse(404, {"detail": "Not Found"})

    def _get(self) -> None:
        parts = urlsplit(self.path)
        if parts.path in ("/v1/health", "/v1/health/"):
            self._respond(200, {"status": "ok"})
            return
        match = _INDEXED.match(parts.path)
        if match is None:
            self._not_found()
            return
        if not self._authorized(match.group(1), match.group(2)):
            self._respond(401, {"detail": "invalid ingestion id or key"})
            return
        query = parse_qs(parts.query)
        try:
            limit = int(query.get("limit", [str(_DEFAULT_LIMIT)])[-1])
        except ValueError:
            limit = 0
        if limit < 1:
            self._respond(400, {"detail": "limit must be a positive integer"})
            return
        key = query.get("key", [None])[-1]
        customer_id = query.get("customer_id", [None])[-1]
        items = self.server.receiver.store.indexed(key, min(limit, _MAX_LIMIT), customer_id)
        self._respond(200, items, note=f"items={len(items)}")

    def _post(self) -> None:
        match = _INGEST.match(urlsplit(self.path).path)
        if match is None:
            self._not_found()
            return
        if not self._authorized(match.group(1), match.group(2)):
            # Answered before a byte of the body is read: an unauthenticated body is never
            # held, only drained in small chunks so the client can read the answer.
            self._refuse(401, {"detail": "invalid ingestion id or key"})
            return
        length = self._body_length()
        if length is None:
            return
        slots = self.server.body_slots
        if not slots.acquire(timeout=_SLOT_WAIT):
            self.close_connection = True
            self._respond(503, {"detail": "receiver busy; retry later"}, retry_after=1)
            return
        try:
            self._ingest(length)
        finally:
            slots.release()

    def _ingest(self, length: int) -> None:
        raw = self._read_body(length)
        if raw is None:
            return
        try:
            text = raw.decode(json.detect_encoding(raw), "surrogatepass")  # as json.loads
        except UnicodeDecodeError as exc:
            self._respond(400, {"detail": f"body is not valid JSON: {exc.reason}"})
            return
        finally:
            del raw
        receiver = self.server.receiver
        rows: list[Row] = []
        errors: list[dict[str, Any]] = []
        rejected = 0
        try:
            for index, item in enumerate(iter_events(text, receiver.max_events)):
                event, reason = validate_event(item)
                if event is None:
                    rejected += 1
                    rows.clear()  # nothing of a batch with a bad event is stored
                    if len(errors) < MAX_LISTED_ERRORS:
                        errors.append({"index": index, "reason": reason})
                elif not rejected:
                    rows.append(encode_row(event))
        except TooManyEvents as exc:
            self._respond(413, {"detail": f"{exc}; split the batch"})
            return
        except NotEvents as exc:
            self._respond(400, {"detail": str(exc)})
            return
        except (ValueError, RecursionError) as exc:
            self._respond(400, {"detail": f"body is not valid JSON: {str(exc)[:200]}"})
            return
        if rejected:
            answer = {"detail": errors, "rejected": rejected}
            self._respond(400, answer, note=f"rejected={rejected}")
            return
        stored, duplicates = receiver.store.insert_rows(rows)
        result = {"stored": stored, "duplicates": duplicates}
        self._respond(200, result, note=f"stored={stored} duplicates={duplicates}")

    # -- helpers
    def _authorized(self, ingestion_id: str, key: str) -> bool:
        receiver = self.server.receiver
        # Both compared, always, so timing says nothing about which one was wrong.
        id_ok = hmac.compare_digest(unquote(ingestion_id).encode(), receiver.ingestion_id.encode())
        key_ok = hmac.compare_digest(unquote(key).encode(), receiver.ingestion_key.encode())
        return id_ok and key_ok

    def _body_length(self) -> int | None:
        """The declared body length if acceptable, else answer 411/413/400 and return None."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            self._respond(411, {"detail": "chunked bodies are not accepted; send Content-Length"})
            return None
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            self.close_connection = True
            self._respond(411, {"detail": "Content-Length is required"})
            return None
        try:
            length = int(raw_length)
            if length < 0:
                raise ValueError(raw_length)
        except ValueError:
            self.close_connection = True
            self._respond(400, {"detail": "invalid Content-Length"})
            return None
        limit = self.server.receiver.max_body_bytes
        if length > limit:
            self._refuse(413, {"detail": f"body of {length} bytes exceeds {limit} bytes"})
            return None
        return length

    def _read_body(self, length: int) -> bytearray | None:
        """Read exactly ``length`` bytes, or close the connection and return ``None``."""
        body = bytearray(length)
        view = memoryview(body)
        got = 0
        deadline = time.monotonic() + _BODY_SECONDS
        while got < length:
            # One receive at a time, so a client trickling its body cannot outlast the deadline.
            n = self.rfile.readinto1(view[got : got + _CHUNK])
            if not n or time.monotonic() > deadline:
                self.close_connection = True
                if n:
                    self._respond(408, {"detail": f"body not received within {_BODY_SECONDS:g} s"})
                return None
            got += n
        view.release()
        return body

    def _refuse(self, status: int, payload: dict[str, Any]) -> None:
        """Answer without using the body, then drain it so the connection stays usable.

        Closing with the body unread would make the kernel answer with a reset that can
        destroy the reply before the client reads it (it would then retry instead of
        reading the 401 or splitting on the 413), so a body of sane size is read and
        dropped, 64 KiB at a time, never held; a larger one closes the connection.
        """
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if "Transfer-Encoding" in self.headers or not 0 <= length <= _MAX_DISCARD:
            self.close_connection = True
        self._respond(status, payload)
        if self.close_connection:
            return
        with contextlib.suppress(OSError):
            while length > 0:
                chunk = self.rfile.read(min(length, _CHUNK))
                if not chunk:
                    break
                length -= len(chunk)
        if length:
            self.close_connection = True

    def _respond(
        self, status: int, payload: object, note: str | None = None, retry_after: int = 0
    ) -> None:
        if note is None:
            detail = payload.get("detail") if isinstance(payload, dict) else None
            note = detail if isinstance(detail, str) else ""
        raw_path = getattr(self, "path", "")
        path = urlsplit(raw_path).path if raw_path else "-"
        # Logged before replying, so a client that has its answer can rely on the line existing.
        self.log_message("%s %s %d %s", self.command or "-", path, status, note)
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if retry_after:
            self.send_header("Retry-After", str(retry_after))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
