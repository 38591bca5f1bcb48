"""The application side: emit() never blocks or prints, the queue is bounded, no feedback loop."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pytest

from slaos_logging import SlaOSHandler

from .integration_support import Collect
from .server import RecordingServer, Reply

OWN = "slaos_logging"


def _own(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == OWN and text in r.getMessage()]


def test_full_queue_drops_without_blocking(
    make_handler: Callable[..., SlaOSHandler],
    server: RecordingServer,
    app_logger: logging.Logger,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """With the server stalled, 1,000 records log fast; the overflow is counted and warned once."""
    caplog.set_level(logging.DEBUG, logger=OWN)
    server.responder = lambda body: Reply(stall=True)
    handler = make_handler(max_queue_size=100, batch_size=10, timeout=30, shutdown_timeout=0.5)
    app_logger.addHandler(handler)
    started = time.monotonic()
    for n in range(1000):
        app_logger.info("request_finished", extra={"organization_id": "acme", "n": n})
    # A record that waited on the stalled request would hold this loop for 30 s; how fast
    # emit() is belongs to benchmarks/.
    assert time.monotonic() - started < 10, "logging waited on the stalled server"
    stats = handler.stats()
    assert stats["enqueued"] + stats["dropped_queue_full"] == 1000
    # At most one batch (10) is out of the queue, stuck in its request; the queue holds 100.
    assert stats["dropped_queue_full"] >= 1000 - 100 - 10 - 1
    assert stats["queue_depth"] <= 100
    assert len(_own(caplog, "queue full")) == 1
    # Once the server answers again, everything that was queued is delivered.
    server.responder = None
    server.release.set()
    assert handler.flush(10)
    assert handler.stats()["sent"] == stats["enqueued"]
    assert capfd.readouterr().err == ""


def test_broken_record_is_reported_not_printed(
    make_handler: Callable[..., SlaOSHandler],
    server: RecordingServer,
    app_logger: logging.Logger,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A record that breaks extraction is counted skipped and reported; stderr stays empty."""

    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no text for you")

    caplog.set_level(logging.DEBUG, logger=OWN)
    assert logging.raiseExceptions  # the stdlib would print a traceback if we let it
    handler = make_handler(flush_interval=60)
    app_logger.addHandler(handler)
    app_logger.info("request_finished", extra={"organization_id": "acme", "key": Unprintable()})
    app_logger.info("request_finished", extra={"organization_id": "acme", "n": 1})
    assert handler.flush(5)
    stats = handler.stats()
    assert (stats["skipped"], stats["sent"]) == (1, 1)
    assert _own(caplog, "could not take a record")
    captured = capfd.readouterr()
    assert captured.err == ""
    assert captured.out == ""


def test_record_after_close_is_delivered(
    make_handler: Callable[..., SlaOSHandler],
    server: RecordingServer,
    app_logger: logging.Logger,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A record logged after close() is delivered by a new sender, without error output."""
    handler = make_handler(flush_interval=60)
    app_logger.addHandler(handler)
    handler.close()
    app_logger.info("request_finished", extra={"organization_id": "acme"})
    assert handler.flush(5) is True
    stats = handler.stats()
    assert (stats["dropped_closed"], stats["enqueued"], stats["sent"]) == (0, 1, 1)
    assert capfd.readouterr().err == ""


def test_root_handler_does_not_feed_back(
    make_handler: Callable[..., SlaOSHandler],
    server: RecordingServer,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """On the root logger at DEBUG, only the app's records are shipped: not urllib3's, not ours."""
    handler = make_handler(events=None, organization_id="acme", flush_interval=0.05)
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    heard = Collect()
    root.addHandler(heard)
    server.then(Reply(status=503))  # so that slaos_logging has a warning to log, too
    app = logging.getLogger("app.feedback")
    for n in range(5):
        app.info("request_finished", extra={"n": n})
    assert handler.flush(5)
    # A loop would keep shipping the sender's own urllib3 lines, one batch after another.
    assert not server.wait_for_requests(3, timeout=0.3)
    events = server.events()
    assert [event["values"].get("n") for event in events] == [0, 1, 2, 3, 4]
    assert {event["organization_id"] for event in events} == {"acme"}
    stats = handler.stats()
    assert (stats["enqueued"], stats["sent"], stats["requests"]) == (5, 5, 2)
    root.removeHandler(heard)
    names = {record.name for record in heard.records}
    assert {"urllib3.connectionpool", OWN} <= names  # both did log while the handler listened
    assert capfd.readouterr().err == ""
