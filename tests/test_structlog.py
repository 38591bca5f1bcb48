"""The structlog recipe: structlog over stdlib logging hands fields to handlers as extra."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest
import structlog

from slaos_logging import SlaOSHandler
from slaos_logging._context import organization

from .integration_support import Collect, received, shipping
from .server import RecordingServer


@pytest.fixture
def recipe() -> Iterator[None]:
    """The configuration the README's structlog recipe recommends, undone after the test."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.stdlib.render_to_log_kwargs,
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


def test_event_fields_arrive_as_extra(recipe: None, requests_log: Collect) -> None:
    """Keyword arguments become record attributes; the event name is record.msg."""
    log = structlog.get_logger("slaos.requests")
    log.info("request_finished", organization_id="acme", took=0.035, status_code=200)
    (record,) = requests_log.records
    assert record.msg == "request_finished"
    assert record.name == "slaos.requests"
    assert record.levelno == logging.INFO
    assert record.organization_id == "acme"  # type: ignore[attr-defined]
    assert record.took == 0.035  # type: ignore[attr-defined]
    assert record.status_code == 200  # type: ignore[attr-defined]


def test_bound_and_contextvar_fields_merge(recipe: None, requests_log: Collect) -> None:
    """Fields bound on the logger or in structlog's contextvars reach the record too."""
    structlog.contextvars.bind_contextvars(route="/items/{item_id}")
    log = structlog.get_logger("slaos.requests").bind(method="GET")
    log.info("request_finished", status_code=503, took=0.2)
    record = requests_log.records[0]
    assert record.route == "/items/{item_id}"  # type: ignore[attr-defined]
    assert record.method == "GET"  # type: ignore[attr-defined]
    assert record.status_code == 503  # type: ignore[attr-defined]


def test_organization_context_applies_to_structlog_lines(
    recipe: None, requests_log: Collect
) -> None:
    """Without an organization_id field, the handler sees organization_id_var instead."""
    with organization("globex"):
        structlog.get_logger("slaos.requests").info("request_finished", took=0.01)
    assert not hasattr(requests_log.records[0], "organization_id")
    assert requests_log.orgs == ["globex"]


def test_level_filtering_is_stdlib(recipe: None, requests_log: Collect) -> None:
    """filter_by_level drops debug lines for an INFO logger before they reach handlers."""
    logging.getLogger("slaos.requests").setLevel(logging.INFO)  # the fixture restores it
    log = structlog.get_logger("slaos.requests")
    log.debug("noise", took=1.0)
    log.info("request_finished", took=1.0)
    assert [r.msg for r in requests_log.records] == ["request_finished"]


def test_end_to_end_to_a_real_server(
    recipe: None, server: RecordingServer, make_handler: Callable[..., SlaOSHandler]
) -> None:
    """structlog lines reach a real SlaOSHandler and arrive as events."""
    handler = make_handler(flush_interval=0.05)
    with shipping(handler):
        log = structlog.get_logger("slaos.requests")
        log.info(
            "request_finished", organization_id="acme", took=0.035, status_code=200, route="/a"
        )
        with organization("globex"):
            log.info("request_finished", took=0.5, status_code=503, route="/b")
        assert handler.flush(5)
    first, second = received(server, 2)
    assert first["organization_id"] == "acme"
    assert first["key"] == "rated_api"
    assert first["values"]["status_code"] == 200
    assert first["values"]["took"] == 0.035
    assert first["values"]["route"] == "/a"
    assert second["organization_id"] == "globex"
    assert second["values"]["status_code"] == 503
