"""Redirects are never followed: their events are retried, spooled or counted, never sent on."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from slaos_logging import SlaOSHandler

from .conftest import KEY
from .integration_support import Collect
from .server import RecordingServer, Reply

REDIRECTS = [301, 302, 303, 307, 308]


@pytest.fixture
def target() -> Iterator[RecordingServer]:
    """A second server, where the redirects point: it must never see a request."""
    srv = RecordingServer().start()
    yield srv
    srv.stop()


def _redirect(status: int, location: str) -> Callable[[bytes], Reply]:
    def respond(body: bytes) -> Reply:
        return Reply(status=status, headers={"Location": location}, body=b"<html>login</html>")

    return respond


def _log(logger: logging.Logger, n: int) -> None:
    for i in range(n):
        logger.info("request_finished", extra={"organization_id": "acme", "n": i})


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _all_text(records: list[logging.LogRecord]) -> str:
    return "\n".join(r.getMessage() for r in records)


@pytest.mark.parametrize("status", REDIRECTS)
def test_redirect_is_never_followed_without_spool(
    status: int,
    server: RecordingServer,
    target: RecordingServer,
    make_handler: Callable[..., SlaOSHandler],
    app_logger: logging.Logger,
    diagnostics: Collect,
) -> None:
    """A 3xx (to a URL keeping path and key) is retried, then counted failed; nothing reaches it."""
    location = f"{target.url}/v1/ingest/ingest-id/{KEY}"
    server.responder = _redirect(status, location)
    handler = make_handler(max_retries=2)
    app_logger.addHandler(handler)
    _log(app_logger, 3)
    assert handler.flush(10), "flush timed out"
    stats = handler.stats()
    assert (stats["enqueued"], stats["sent"], stats["failed"]) == (3, 0, 3)
    assert (stats["requests"], stats["retries"]) == (3, 2)
    assert stats["enqueued"] == (
        stats["sent"] + stats["invalid"] + stats["failed"] + stats["dropped_shutdown"]
    )
    assert [r.method for r in server.requests] == ["POST"] * 3
    assert target.arrivals == 0
    assert target.requests == []
    redirect_errors = [
        r for r in diagnostics.records if "redirect" in r.getMessage() and "never" in r.getMessage()
    ]
    assert len(redirect_errors) == 1  # rate-limited: one error, not one per attempt
    message = redirect_errors[0].getMessage()
    assert redirect_errors[0].levelno == logging.ERROR
    assert f"127.0.0.1:{target.url.rsplit(':', 1)[1]}" in message
    assert str(status) in message
    text = _all_text(diagnostics.records)
    assert KEY not in text
    assert "/v1/ingest" not in text


@pytest.mark.parametrize("status", REDIRECTS)
def test_redirected_events_are_spooled_and_delivered_later(
    status: int,
    server: RecordingServer,
    target: RecordingServer,
    make_handler: Callable[..., SlaOSHandler],
    app_logger: logging.Logger,
    tmp_path: Path,
) -> None:
    """With a spool, redirected events go to disk, and arrive once the endpoint answers 2xx."""
    server.responder = _redirect(status, f"{target.url}/v1/ingest/ingest-id/{KEY}")
    handler = make_handler(spool_dir=tmp_path / "spool")
    app_logger.addHandler(handler)
    _log(app_logger, 4)
    _wait_for(lambda: handler.stats()["spooled"] == 4, 10, "4 events spooled")
    assert handler.stats()["sent"] == 0
    server.responder = None  # the endpoint is fixed: 200 from now on
    _wait_for(lambda: handler.stats()["sent"] == 4, 10, "4 spooled events delivered")
    _wait_for(lambda: handler.stats()["spool_depth"] == 0, 10, "the spool to empty")
    assert sorted(e["values"]["n"] for e in server.events()) == [0, 1, 2, 3]
    assert len({e["idempotency_key"] for e in server.events()}) == 4
    stats = handler.stats()
    assert (stats["enqueued"], stats["spooled"], stats["failed"]) == (4, 4, 0)
    assert target.arrivals == 0
    assert target.requests == []


def test_relative_redirect_names_the_endpoint_host(
    server: RecordingServer,
    make_handler: Callable[..., SlaOSHandler],
    app_logger: logging.Logger,
    diagnostics: Collect,
) -> None:
    """A relative Location (a trailing-slash redirect) is named by host, without its path."""
    server.responder = _redirect(308, f"/v1/ingest/ingest-id/{KEY}/")
    handler = make_handler(max_retries=0)
    app_logger.addHandler(handler)
    _log(app_logger, 2)
    assert handler.flush(10), "flush timed out"
    stats = handler.stats()
    assert (stats["enqueued"], stats["sent"], stats["failed"], stats["requests"]) == (2, 0, 2, 1)
    assert len(server.requests) == 1
    text = _all_text(diagnostics.records)
    assert server.url in text
    assert KEY not in text
    assert "/v1/ingest" not in text
