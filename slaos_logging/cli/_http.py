"""HTTP request handling for the local receiver: routing, body limits, validation, replies.

Every reply is JSON with a Content-Length, so HTTP/1.1 keep-alive clients (the library's
``requests.Session``) can reuse one connection for a whole run.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import re
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from ._store import StoredEvent, parse_timestamp

if TYPE_CHECKING:
    from ._receiver import _Server

__all__ = ["validate_event"]

_FIELDS = frozenset({"organization_id", "key", "timestamp", "values", "idempotency_key"})
_INGEST = re.compile(r"^/v1/ingest/([^/]+)/([^/]+)/?$")
_INDEXED = re.compile(r"^/v1/ingest/([^/]+)/([^/]+)/indexed-slis/?$")
_DEFAULT_LIMIT = 100
_MAX_LIMIT = 1000
_MAX_DISCARD = 256 * 1024 * 1024


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def validate_event(event: object) -> tuple[StoredEvent | None, str | None]:
    """Check one decoded event against the ingestion contract.

    Returns:
        ``(event, None)`` when valid, else ``(None, reason)``.
    """
    if not isinstance(event, dict):
        return None, "event must be a JSON object"
    problems: list[str] = []
    unknown = sorted(str(name) for name in event if name not in _FIELDS)
    if unknown:
        problems.append("unknown field(s): " + ", ".join(unknown))
    for name in ("organization_id", "key"):
        value = event.get(name)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{name} must be a non-empty string")
    timestamp = event.get("timestamp")
    ts_text, epoch = "", 0.0
    if not isinstance(timestamp, str):
        problems.append("timestamp must be an ISO 8601 string")
    else:
        ts_text = timestamp
        try:
            epoch = parse_timestamp(timestamp).timestamp()
        except ValueError:
            problems.append(f"timestamp is not ISO 8601: {timestamp[:40]!r}")
    if not isinstance(event.get("values"), dict):
        problems.append("values must be a JSON object")
    idem = event.get("idempotency_key")
    if idem is not None and (not isinstance(idem, str) or not idem):
        problems.append("idempotency_key must be a non-empty string when present")
    if problems:
        return None, "; ".join(problems)
    return (
        StoredEvent(
            organization_id=event["organization_id"],
            key=event["key"],
            timestamp=ts_text,
            ts_epoch=epoch,
            values=event["values"],
            idempotency_key=idem,
        ),
        None,
    )


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "slaos-logging-receiver"
    # Two small writes (headers, body) per response would otherwise meet delayed ACKs.
    disable_nagle_algorithm = True
    # Idle keep-alive connections and stalled bodies must not pin a thread forever.
    timeout = 60
    server: _Server

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
        """Write a diagnostic line to the access log with any key masked."""
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
        self._drain_small_body()
        self._respond(404, {"detail": "Not Found"})

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
        authorized = self._authorized(match.group(1), match.group(2))
        body = self._read_body()
        if body is None:
            return
        if not authorized:
            self._respond(401, {"detail": "invalid ingestion id or key"})
            return
        try:
            payload = json.loads(body, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            self._respond(400, {"detail": f"body is not valid JSON: {str(exc)[:200]}"})
            return
        if isinstance(payload, dict):
            payload = [payload]
        if not isinstance(payload, list):
            self._respond(400, {"detail": "body must be a JSON event object or a list of them"})
            return
        events: list[StoredEvent] = []
        errors: list[dict[str, Any]] = []
        for index, raw in enumerate(payload):
            event, reason = validate_event(raw)
            if event is None:
                errors.append({"index": index, "reason": reason})
            else:
                events.append(event)
        if errors:
            self._respond(400, {"detail": errors}, note=f"rejected={len(errors)}")
            return
        stored, duplicates = self.server.receiver.store.insert(events)
        result = {"stored": stored, "duplicates": duplicates}
        self._respond(200, result, note=f"stored={stored} duplicates={duplicates}")

    # -- helpers
    def _authorized(self, ingestion_id: str, key: str) -> bool:
        receiver = self.server.receiver
        # Both compared, always, so timing says nothing about which one was wrong.
        id_ok = hmac.compare_digest(unquote(ingestion_id).encode(), receiver.ingestion_id.encode())
        key_ok = hmac.compare_digest(unquote(key).encode(), receiver.ingestion_key.encode())
        return id_ok and key_ok

    def _read_body(self) -> bytes | None:
        """Read the body within the size limit, or answer 411/413/400 and return ``None``."""
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
            # Closing with the body unread would make the kernel answer with a reset that can
            # destroy the 413 before the client reads it (it would then retry instead of
            # splitting the batch), so a body of sane size is read and thrown away first.
            if length <= _MAX_DISCARD:
                self._discard(length)
            else:
                self.close_connection = True
            self._respond(413, {"detail": f"body of {length} bytes exceeds {limit} bytes"})
            return None
        return self.rfile.read(length)

    def _discard(self, length: int) -> None:
        while length > 0:
            chunk = self.rfile.read(min(length, 65536))
            if not chunk:
                self.close_connection = True
                return
            length -= len(chunk)

    def _drain_small_body(self) -> None:
        """Consume a request body so the keep-alive connection stays usable."""
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if 0 <= length <= _MAX_DISCARD:
            self._discard(length)
        else:
            self.close_connection = True

    def _respond(self, status: int, payload: object, note: str | None = None) -> None:
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
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
