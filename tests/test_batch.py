"""Batching and the wire format: when batches close, what a request looks like."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from slaos_logging import SlaOSHandler, __version__

from .server import RecordingServer


def _log(logger: logging.Logger, count: int, **extra: object) -> None:
    for n in range(count):
        logger.info("request_finished", extra={"organization_id": "acme", "n": n, **extra})


def _ns(server: RecordingServer) -> list[int]:
    return [event["values"]["n"] for event in server.events()]


def test_batch_size_closes_batches(
    make_handler: Callable[..., SlaOSHandler], server: RecordingServer, app_logger: logging.Logger
) -> None:
    """35 events with batch_size=10 go out as requests of 10, 10, 10 and 5, in order."""
    handler = make_handler(batch_size=10, flush_interval=60)
    app_logger.addHandler(handler)
    _log(app_logger, 35)
    assert handler.flush(5)
    assert [len(request.json()) for request in server.requests] == [10, 10, 10, 5]
    assert _ns(server) == list(range(35))
    assert handler.stats()["sent"] == 35


def test_max_batch_bytes_bounds_and_fills_requests(
    make_handler: Callable[..., SlaOSHandler], server: RecordingServer, app_logger: logging.Logger
) -> None:
    """Bodies stay within max_batch_bytes, requests are nearly full, each event arrives once."""
    limit = 1500
    handler = make_handler(max_batch_bytes=limit, flush_interval=60)
    app_logger.addHandler(handler)
    _log(app_logger, 60, padding="x" * 100)
    assert handler.flush(5)
    sizes = [len(request.body) for request in server.requests]
    assert len(sizes) > 1
    assert max(sizes) <= limit, sizes
    assert _ns(server) == list(range(60))
    stats = handler.stats()
    assert (stats["sent"], stats["invalid"], stats["failed"]) == (60, 0, 0)
    # Closing a batch only once it is over the limit would split every batch into two
    # half-full requests: about twice the requests the bytes need.
    full = sizes[:-1]
    assert sum(full) / len(full) >= 0.7 * limit, sizes


def test_flush_interval_sends_without_flush(
    make_handler: Callable[..., SlaOSHandler], server: RecordingServer, app_logger: logging.Logger
) -> None:
    """A lone event is sent flush_interval after it was logged, with no flush() call."""
    handler = make_handler(flush_interval=0.05)
    app_logger.addHandler(handler)
    _log(app_logger, 1)
    assert server.wait_for_requests(1, timeout=5)
    assert _ns(server) == [0]


def test_long_flush_interval_waits_for_flush(
    make_handler: Callable[..., SlaOSHandler], server: RecordingServer, app_logger: logging.Logger
) -> None:
    """With flush_interval=60 nothing is sent until flush() is called."""
    handler = make_handler(flush_interval=60)
    app_logger.addHandler(handler)
    _log(app_logger, 3)
    assert not server.wait_for_requests(1, timeout=0.3)
    assert handler.flush(5)
    assert len(server.requests) == 1
    assert _ns(server) == [0, 1, 2]


def test_request_format(
    make_handler: Callable[..., SlaOSHandler], server: RecordingServer, app_logger: logging.Logger
) -> None:
    """The body is a compact JSON list, sent with the JSON content type and our user agent."""
    handler = make_handler(flush_interval=60)
    app_logger.addHandler(handler)
    _log(app_logger, 3, label="a b, c: d")
    assert handler.flush(5)
    (request,) = server.requests
    assert request.method == "POST"
    assert request.path == "/v1/ingest/ingest-id/sekrit-ingestion-key-0123"
    headers = {name.lower(): value for name, value in request.headers.items()}
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == f"slaos-logging/{__version__}"
    body = request.json()
    assert isinstance(body, list) and len(body) == 3
    compact = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    assert request.body == compact
    event = body[0]
    assert {"organization_id", "key", "timestamp", "values"} <= event.keys()
    assert event["key"] == "rated_api"
    assert event["values"]["label"] == "a b, c: d"


def test_keep_alive_connection_reused(
    make_handler: Callable[..., SlaOSHandler], server: RecordingServer, app_logger: logging.Logger
) -> None:
    """Several batches travel over one keep-alive connection (same client port)."""
    handler = make_handler(batch_size=2, flush_interval=60)
    app_logger.addHandler(handler)
    _log(app_logger, 8)
    assert handler.flush(5)
    assert len(server.requests) == 4
    assert len({request.client for request in server.requests}) == 1
