"""A first end-to-end check of the public names."""

from __future__ import annotations

import logging

from slaos_logging import SlaOSHandler

from .server import RecordingServer


def test_event_arrives(make_handler, server: RecordingServer, app_logger: logging.Logger) -> None:
    """One request_finished record arrives as one event with its values."""
    handler: SlaOSHandler = make_handler()
    app_logger.addHandler(handler)
    app_logger.info(
        "request_finished", extra={"organization_id": "acme", "took": 0.03, "status_code": 200}
    )
    assert handler.flush(5)
    (event,) = server.events()
    assert event["organization_id"] == "acme"
    assert event["values"] == {"took": 0.03, "status_code": 200}
