"""A fast local HTTP sink for the benchmarks, run as its own process.

``python benchmarks/_sink.py`` binds 127.0.0.1 on a free port, prints ``PORT <n>`` and
serves until killed. Every POST outside ``/_*`` is ingested: the body is parsed (a JSON
list or object, logtail's msgpack, or OTLP protobuf) and its events are counted, with
their bytes and arrival times. HTTP/1.1 keep-alive, Nagle off (small replies would
otherwise meet delayed ACKs). Control endpoints:

- ``GET /_stats``: ``{"events", "bytes", "requests", "first", "last", "latencies"}``;
  ``latencies`` holds ``arrival - values.sent_at`` for every event that carries ``sent_at``.
- ``POST /_reset``: zero everything (and end a stall).
- ``POST /_stall`` / ``POST /_release``: hold every ingest request unanswered / let them go.

``python benchmarks/_sink.py --receiver DB`` instead runs the project's own
``slaos_logging.cli._receiver.Receiver`` (ingestion id ``bench``, key ``benchkey``).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_STALL_CAP = 120.0  # seconds a stalled request is held at most


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.release.set()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.events = 0
            self.bytes = 0
            self.requests = 0
            self.first = 0.0
            self.last = 0.0
            self.latencies: list[float] = []
        self.release.set()

    def record(self, n: int, size: int, arrival: float, latencies: list[float]) -> None:
        with self.lock:
            self.events += n
            self.bytes += size
            self.requests += 1
            if not self.first:
                self.first = arrival
            self.last = arrival
            self.latencies.extend(latencies)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "events": self.events,
                "bytes": self.bytes,
                "requests": self.requests,
                "first": self.first,
                "last": self.last,
                "latencies": list(self.latencies),
            }


STATE = _State()


def _json_events(body: bytes, arrival: float) -> tuple[int, list[float]]:
    payload = json.loads(body)
    events = payload if isinstance(payload, list) else [payload]
    latencies = []
    for event in events:
        values = event.get("values") if isinstance(event, dict) else None
        if isinstance(values, dict) and "sent_at" in values:
            latencies.append(arrival - float(values["sent_at"]))
    return len(events), latencies


def _msgpack_events(body: bytes) -> int:
    import msgpack  # logtail's wire format; present wherever logtail-python is

    payload = msgpack.unpackb(body, raw=False)
    return len(payload) if isinstance(payload, list) else 1


def _otlp_events(body: bytes) -> int:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
        ExportLogsServiceRequest,
    )

    request = ExportLogsServiceRequest()
    request.ParseFromString(body)
    return sum(
        len(scope.log_records)
        for resource in request.resource_logs
        for scope in resource.scope_logs
    )


def count_events(content_type: str, body: bytes, arrival: float) -> tuple[int, list[float]]:
    """Number of events in one request body, and the latencies of those that carry sent_at."""
    if "msgpack" in content_type:
        return _msgpack_events(body), []
    if "protobuf" in content_type:
        return _otlp_events(body), []
    return _json_events(body, arrival)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silence: one line per request would cost more than the request."""

    def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.startswith("/_stats"):
            self._reply(200, json.dumps(STATE.snapshot()).encode())
        else:
            self._reply(200, b'{"status":"ok"}')

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.path.startswith("/_"):
            self._control(self.path)
            return
        arrival = time.time()
        content_type = self.headers.get("Content-Type") or ""
        if not STATE.release.is_set():
            STATE.release.wait(_STALL_CAP)
        try:
            n, latencies = count_events(content_type, body, arrival)
        except Exception as exc:
            self._reply(400, json.dumps({"detail": f"{type(exc).__name__}: {exc}"}).encode())
            return
        STATE.record(n, length, arrival, latencies)
        if "protobuf" in content_type:
            self._reply(200, b"", "application/x-protobuf")
        else:
            self._reply(200, b'{"ok":true}')

    def _control(self, path: str) -> None:
        if path.startswith("/_reset"):
            STATE.reset()
        elif path.startswith("/_stall"):
            STATE.release.clear()
        elif path.startswith("/_release"):
            STATE.release.set()
        else:
            self._reply(404, b'{"detail":"unknown control"}')
            return
        self._reply(200, b'{"ok":true}')


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


def _serve_receiver(db: str) -> None:
    from slaos_logging.cli._receiver import Receiver

    receiver = Receiver(port=0, db_path=db, ingestion_id="bench", ingestion_key="benchkey")
    receiver.start()
    print(f"PORT {receiver.port}", flush=True)
    threading.Event().wait()


def main() -> None:
    """Serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--receiver", metavar="DB", help="run the project's Receiver instead")
    args = parser.parse_args()
    if args.receiver:
        _serve_receiver(args.receiver)
        return
    server = _Server(("127.0.0.1", args.port), _Handler)
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
