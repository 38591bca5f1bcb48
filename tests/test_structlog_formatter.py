"""structlog's recommended stdlib setup (ProcessorFormatter): ``record.msg`` is the event dict."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator

import pytest
import structlog

from slaos_logging import SlaOSHandler

from .server import RecordingServer


@pytest.fixture
def recommended() -> Iterator[None]:
    """structlog's documented configuration for rendering through ProcessorFormatter."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.add_log_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.processors.UnicodeDecoder(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    try:
        yield
    finally:
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()


def test_event_dict_message_delivers_event_and_leaves_console_intact(
    recommended: None,
    make_handler: Callable[..., SlaOSHandler],
    server: RecordingServer,
    app_logger: logging.Logger,
) -> None:
    """`event` is what events= matches, other keys are values; the console still renders."""
    stream = io.StringIO()
    console = logging.StreamHandler(stream)
    console.setFormatter(
        structlog.stdlib.ProcessorFormatter(processor=structlog.dev.ConsoleRenderer(colors=False))
    )
    handler = make_handler(events=["request_finished"])
    app_logger.addHandler(console)
    app_logger.addHandler(handler)
    log = structlog.get_logger(app_logger.name)
    log.bind(organization_id="acme").info("request_finished", took=0.03, status_code=200)
    log.info("something else", organization_id="acme")
    assert handler.flush(5) is True
    (event,) = server.events()
    assert event["organization_id"] == "acme"
    assert event["values"] == {
        "took": 0.03,
        "status_code": 200,
        "logger": app_logger.name,
        "level": "info",
    }
    assert event["timestamp"].endswith("Z")
    stats = handler.stats()
    assert (stats["sent"], stats["skipped"]) == (1, 1)
    rendered = stream.getvalue()
    assert "request_finished" in rendered and "status_code=200" in rendered
    assert "something else" in rendered


def test_event_dict_without_events_filter(
    recommended: None,
    make_handler: Callable[..., SlaOSHandler],
    server: RecordingServer,
    app_logger: logging.Logger,
) -> None:
    """With events=None every event dict ships; structlog's private record fields do not."""
    handler = make_handler(value_fields=None)
    app_logger.addHandler(handler)
    with structlog.contextvars.bound_contextvars(organization_id="globex"):
        structlog.get_logger(app_logger.name).warning("job_done", rows=3)
    assert handler.flush(5) is True
    (event,) = server.events()
    assert event["organization_id"] == "globex"
    assert event["values"]["rows"] == 3
    assert not any(name.startswith("_") for name in event["values"])
