"""Delivery against a real server: retries, backoff, splitting, rejections, accounting."""

from __future__ import annotations

import email.utils
import json
import logging
import threading
import time
from collections.abc import Callable

import pytest

from slaos_logging import SlaOSHandler

from .server import RecordingServer, Reply, reject_larger_than, reject_marked

OWN = "slaos_logging"


def _log(logger: logging.Logger, count: int, start: int = 0, **extra: object) -> None:
    for n in range(start, start + count):
        logger.info("request_finished", extra={"organization_id": "acme", "n": n, **extra})


def _ns(server: RecordingServer) -> list[int]:
    return [event["values"]["n"] for event in server.events()]


def _own(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == OWN and r.levelno == level]


@pytest.fixture(autouse=True)
def _capture_own(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=OWN)


@pytest.mark.parametrize(
    ("reply", "options"),
    [
        pytest.param(Reply(drop=True), {}, id="connection-dropped"),
        pytest.param(Reply(stall=True), {"timeout": 0.2}, id="timeout"),
        *(pytest.param(Reply(status=s), {}, id=str(s)) for s in (408, 429, 500, 502, 503, 504)),
    ],
)
def test_retryable_failure_then_success(
    make_handler: Callable[..., SlaOSHandler],
    server: RecordingServer,
    app_logger: logging.Logger,
    reply: Reply,
    options: dict[str, float],
) -> None:
    """A retryable failure is retried once, and the batch is then accepted exactly once."""
    handler = make_handler(flush_interval=60, **options)
    app_logger.addHandler(handler)
    server.then(reply)
    _log(app_logger, 3)
    assert handler.flush(5)
    stats = handler.stats()
    assert (stats["retries"], stats["requests"]) == (1, 2)
    assert (stats["sent"], stats["failed"], stats["invalid"]) == (3, 0, 0)
    assert _ns(server) == [0, 1, 2]


def test_retry_after_seconds_honoured(
    make_handler: Callable[..., SlaOSHandler], server: RecordingServer, app_logger: logging.Logger
) -> None:
    """``Retry-After: 1`` makes the retry wait about a second, not the tiny backoff."""
    handler = make_handler(flush_interval=60)
    app_logger.addHandler(handler)
    server.then(Reply(status=503, headers={"Retry-After": "1"}))
    _log(app_logger, 1)
    assert handler.flush(5)
    first, second = server.requests
    assert second.arrived - first.arrived >= 0.9
    assert handler.stats()["sent"] == 1


def test_retry_after_http_date_honoured(
    make_handler: Callable[..., SlaOSHandler], server: RecordingServer, app_logger: logging.Logger
) -> None:
    """A ``Retry-After`` HTTP date about two seconds ahead delays the retry by over a second."""
    handler = make_handler(flush_interval=60)
    app_logger.addHandler(handler)
    # formatdate truncates to whole seconds: the date is at least one second ahead.
    when = email.utils.formatdate(time.time() + 2, usegmt=True)
    server.then(Reply(status=429, headers={"Retry-After": when}))
    _log(app_logger, 1)
    assert handler.flush(5)
    first, second = server.requests
    assert second.arrived - first.arrived >= 0.8
    assert handler.stats()["sent"] == 1


def test_gives_up_after_max_retries(
    make_handler: Callable[..., SlaOSHandler],
    server: RecordingServer,
    app_logger: logging.Logger,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A batch failing with 500 for good is tried max_retries + 1 times, then counted failed."""
    handler = make_handler(flush_interval=60, max_retries=2)
    app_logger.addHandler(handler)
    server.responder = lambda body: Reply(status=500)
    _log(app_logger, 3)
    assert handler.flush(5)
    stats = handler.stats()
    assert (stats["requests"], stats["retries"]) == (3, 2)
    assert (stats["failed"], stats["sent"]) == (3, 0)
    assert len(server.requests) == 3
    assert any("gave up" in message for message in _own(caplog, logging.ERROR))


def test_413_splits_batch(
    make_handler: Callable[..., SlaOSHandler], server: RecordingServer, app_logger: logging.Logger
) -> None:
    """A 413 splits the batch in halves until the parts are accepted: all arrive, once each."""
    handler = make_handler(batch_size=16, flush_interval=60)
    app_logger.addHandler(handler)
    server.responder = reject_larger_than(4)
    _log(app_logger, 16)
    assert handler.flush(5)
    assert _ns(server) == list(range(16))
    accepted = [len(r.json()) for r in server.requests if r.status == 200]
    assert accepted == [4, 4, 4, 4]
    stats = handler.stats()
    assert (stats["sent"], stats["invalid"], stats["failed"], stats["retries"]) == (16, 0, 0, 0)


@pytest.mark.parametrize(
    ("status", "message"),
    [
        pytest.param(400, None, id="400"),
        pytest.param(422, None, id="422"),
        # A server that says the same thing about every bad event: still one line each.
        pytest.param(400, "values.bad is not accepted", id="400-same-message"),
    ],
)
def test_invalid_events_isolated(
    make_handler: Callable[..., SlaOSHandler],
    server: RecordingServer,
    app_logger: logging.Logger,
    caplog: pytest.LogCaptureFixture,
    status: int,
    message: str | None,
) -> None:
    """Only the events the server rejects are counted invalid, each logged once; the rest arrive."""
    handler = make_handler(batch_size=20, flush_interval=60)
    app_logger.addHandler(handler)
    server.responder = reject_marked(status, message=message)
    bad = {3, 14}
    for n in range(20):
        extra = {"organization_id": "acme", "n": n, **({"bad": True} if n in bad else {})}
        app_logger.info("request_finished", extra=extra)
    assert handler.flush(5)
    delivered = _ns(server)
    assert sorted(delivered) == [n for n in range(20) if n not in bad]
    assert len(delivered) == len(set(delivered))
    stats = handler.stats()
    assert (stats["sent"], stats["invalid"], stats["failed"], stats["retries"]) == (18, 2, 0, 0)
    rejected = [m for m in _own(caplog, logging.WARNING) if "is not accepted" in m]
    assert len(rejected) == 2, rejected
    for n in bad:
        assert sum(f"'n': {n}," in message for message in rejected) == 1, rejected


@pytest.mark.parametrize("status", [401, 403, 404])
def test_auth_failure_not_retried(
    make_handler: Callable[..., SlaOSHandler],
    server: RecordingServer,
    app_logger: logging.Logger,
    caplog: pytest.LogCaptureFixture,
    status: int,
) -> None:
    """401/403/404: one request per batch, events failed, one error naming id or key."""
    handler = make_handler(batch_size=5, flush_interval=60)
    app_logger.addHandler(handler)
    server.responder = lambda body: Reply(status=status, body=b'{"detail":"no"}')
    _log(app_logger, 10)
    assert handler.flush(5)
    stats = handler.stats()
    assert (stats["requests"], stats["retries"]) == (2, 0)
    assert (stats["failed"], stats["sent"], stats["invalid"]) == (10, 0, 0)
    assert len(server.requests) == 2
    errors = _own(caplog, logging.ERROR)
    assert len(errors) == 1, errors
    assert "ingestion id or key" in errors[0]
    assert str(status) in errors[0]


def test_other_4xx_fails_without_retry(
    make_handler: Callable[..., SlaOSHandler],
    server: RecordingServer,
    app_logger: logging.Logger,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 405 is neither retried nor split: the batch is counted failed and reported."""
    handler = make_handler(flush_interval=60)
    app_logger.addHandler(handler)
    server.responder = lambda body: Reply(status=405, body=b'{"detail":"method not allowed"}')
    _log(app_logger, 5)
    assert handler.flush(5)
    stats = handler.stats()
    assert (stats["requests"], stats["retries"]) == (1, 0)
    assert (stats["failed"], stats["sent"], stats["invalid"]) == (5, 0, 0)
    assert any("405" in message for message in _own(caplog, logging.ERROR))


def test_close_cuts_backoff_short(
    make_handler: Callable[..., SlaOSHandler], server: RecordingServer, app_logger: logging.Logger
) -> None:
    """close() interrupts a 30 s backoff and returns within shutdown_timeout, settling all."""
    shutdown_timeout = 1.0
    handler = make_handler(
        flush_interval=60, backoff_base=30, backoff_cap=30, shutdown_timeout=shutdown_timeout
    )
    app_logger.addHandler(handler)
    server.responder = lambda body: Reply(status=503)
    _log(app_logger, 3)
    assert not handler.flush(0.05)  # the first 503 starts a long backoff
    assert server.wait_for_requests(1, timeout=5)
    started = time.monotonic()
    handler.close()
    # The backoff alone is 30 s: a few seconds of slack still tell the two apart.
    assert time.monotonic() - started < shutdown_timeout + 5.0, "close() waited out the backoff"
    stats = handler.stats()
    assert stats["sent"] == 0
    assert stats["failed"] + stats["dropped_shutdown"] == 3


def test_every_event_settles_once(
    make_handler: Callable[..., SlaOSHandler], server: RecordingServer, app_logger: logging.Logger
) -> None:
    """After a mixed run, enqueued == sent + invalid + failed + dropped_shutdown."""
    handler = make_handler(batch_size=5, flush_interval=60, max_retries=1, shutdown_timeout=0.5)
    app_logger.addHandler(handler)
    marked = reject_marked(400)
    stalled = threading.Event()

    def respond(body: bytes) -> Reply:
        groups = {event["values"]["group"] for event in json.loads(body)}
        if "gone" in groups:
            return Reply(status=405)
        if "busy" in groups:
            return Reply(status=503)
        if "stuck" in groups:
            stalled.set()
            return Reply(stall=True)
        return marked(body)

    server.responder = respond
    _log(app_logger, 5, group="ok")
    assert handler.flush(5)
    for n in range(5, 10):  # one bad event among five
        extra = {"organization_id": "acme", "n": n, "group": "mixed", "bad": n == 7}
        app_logger.info("request_finished", extra=extra)
    assert handler.flush(5)
    _log(app_logger, 5, start=10, group="gone")
    assert handler.flush(5)
    _log(app_logger, 5, start=15, group="busy")
    assert handler.flush(5)
    _log(app_logger, 5, start=20, group="stuck")  # a full batch: sent at once, then stalls
    assert stalled.wait(5)
    handler.close()
    stats = handler.stats()
    assert stats["queue_depth"] == 0
    assert stats["enqueued"] == 25
    assert (stats["sent"], stats["invalid"], stats["failed"]) == (9, 1, 10)
    assert stats["dropped_shutdown"] == 5
    settled = stats["sent"] + stats["invalid"] + stats["failed"] + stats["dropped_shutdown"]
    assert stats["enqueued"] == settled
