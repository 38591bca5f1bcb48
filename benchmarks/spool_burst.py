"""An outage burst into the spool: every event arrives once, and emit() stays cheap.

``python benchmarks/spool_burst.py [--events 200000] [--queue 100] [--json]``

The handler (``max_queue_size=100`` by default, a spool in a temporary folder) logs
``--events`` records back to back while nothing listens on its port (connection
refused: an outage). Each ``logger.info`` is timed with ``perf_counter_ns``. Then a
counting server (its own process) starts on that port; the script waits until every
event arrived, and prints the emit() percentiles, the server's count of events and
distinct idempotency keys, and ``stats()``. Exit status 1 if an event is missing or
doubled, or ``stats()`` does not add up.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _serve(port: int) -> None:
    """The counting server: every idempotency key seen, and how often."""
    keys: dict[str, int] = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            with lock:
                body = json.dumps({"events": sum(keys.values()), "distinct": len(keys)}).encode()
            self._reply(body)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            events = json.loads(body)
            with lock:
                for event in events if isinstance(events, list) else [events]:
                    key = event["idempotency_key"]
                    keys[key] = keys.get(key, 0) + 1
            self._reply(b'{"ok":true}')

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print("READY", flush=True)
    server.serve_forever(poll_interval=0.2)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _counts(port: int) -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_counts", timeout=5) as answer:
        return json.loads(answer.read())  # type: ignore[no-any-return]


def run(events: int, queue_size: int, timeout: float) -> dict[str, Any]:
    """Run the burst; return the figures."""
    from slaos_logging import SlaOSHandler

    port = _free_port()
    folder = tempfile.mkdtemp(prefix="slaos-spool-burst-")
    handler = SlaOSHandler(
        host=f"http://127.0.0.1:{port}",
        ingestion_id="bench",
        ingestion_key="benchkey",
        key="rated_api",
        organization_id="org",
        max_queue_size=queue_size,
        spool_dir=folder,
        backoff_base=0.05,
        backoff_cap=0.5,
        shutdown_timeout=30.0,
    )
    logger = logging.getLogger("spool_burst")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    durations = [0] * events
    clock = time.perf_counter_ns
    started = time.monotonic()
    for seq in range(events):
        before = clock()
        logger.info("request_finished", extra={"seq": seq, "status_code": 200})
        durations[seq] = clock() - before
    burst_seconds = time.monotonic() - started
    during = handler.stats()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "READY"
        recovered = time.monotonic()
        deadline = recovered + timeout
        counts = _counts(port)
        while counts["distinct"] < events and time.monotonic() < deadline:
            threading.Event().wait(0.2)
            counts = _counts(port)
        drain_seconds = time.monotonic() - recovered
        handler.flush(10)
        handler.close()
        counts = _counts(port)
    finally:
        server.terminate()
        server.wait(10)
    durations.sort()

    def pct(p: float) -> float:
        return durations[min(events - 1, int(events * p))] / 1e6

    stats = handler.stats()
    return {
        "events": events,
        "max_queue_size": queue_size,
        "burst_s": round(burst_seconds, 2),
        "emit_ms": {
            "p50": round(pct(0.5), 4),
            "p99": round(pct(0.99), 4),
            "p99.9": round(pct(0.999), 3),
            "max": round(durations[-1] / 1e6, 1),
        },
        "stats_after_burst": during,
        "drain_s": round(drain_seconds, 2),
        "server": counts,
        "stats": stats,
    }


def main() -> int:
    """Parse arguments, run, print; 1 if an event was lost or doubled."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--queue", type=int, default=100, help="max_queue_size")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for delivery")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve)
        return 0
    result = run(args.events, args.queue, args.timeout)
    stats, counts = result["stats"], result["server"]
    ok = (
        counts["distinct"] == counts["events"] == args.events
        and stats["enqueued"] == stats["sent"] == args.events
        and stats["dropped_queue_full"] == stats["spool_dropped"] == stats["failed"] == 0
        and stats["spool_depth"] == 0
    )
    result["ok"] = ok
    if args.json:
        print(json.dumps(result))
    else:
        emit = result["emit_ms"]
        print(
            f"{args.events:,} events, max_queue_size={args.queue}, outage: burst "
            f"{result['burst_s']} s; emit() p50 {emit['p50']} ms, p99 {emit['p99']} ms, "
            f"p99.9 {emit['p99.9']} ms, max {emit['max']} ms"
        )
        print(f"after the burst: {result['stats_after_burst']}")
        print(
            f"after recovery ({result['drain_s']} s): server received {counts['events']:,} "
            f"events, {counts['distinct']:,} distinct"
        )
        print(f"stats: {stats}")
        print("OK: every event once" if ok else "FAILED: lost, doubled or miscounted events")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
