"""loguru through ``integrations.loguru.sink``: bind() and keyword fields become event values."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from typing import Any

import loguru
import pytest

from slaos_logging import SlaOSHandler
from slaos_logging.integrations.loguru import sink

from .deploy_support import assert_exactly, child_env, run_script, wait_for_events
from .server import RecordingServer


@pytest.fixture
def logger() -> Iterator[Any]:
    """loguru's logger with its default stderr sink removed; every sink removed after."""
    log = loguru.logger
    log.remove()
    yield log
    log.remove()


def test_bind_and_keyword_forms_deliver_the_event(
    make_handler: Callable[..., SlaOSHandler], server: RecordingServer, logger: Any
) -> None:
    """Both loguru forms give the same event; events= matches loguru's message only."""
    handler = make_handler(events=["request_finished"])
    logger.add(sink(handler))
    logger.bind(organization_id="acme").info("request_finished", took=0.03, status_code=200)
    logger.info("request_finished", organization_id="globex", took=0.5, status_code=503)
    logger.info("something else", organization_id="acme")
    assert handler.flush(5) is True
    events = sorted(server.events(), key=lambda e: e["organization_id"])
    assert [(e["organization_id"], e["key"], e["values"]) for e in events] == [
        ("acme", "rated_api", {"took": 0.03, "status_code": 200}),
        ("globex", "rated_api", {"took": 0.5, "status_code": 503}),
    ]
    stats = handler.stats()
    assert (stats["sent"], stats["skipped"]) == (2, 1)


def test_handler_level_applies_and_timestamp_is_loguru_time(
    make_handler: Callable[..., SlaOSHandler], server: RecordingServer, logger: Any
) -> None:
    """Records under the handler's level are not shipped; the timestamp is the log call's."""
    handler = make_handler(level="INFO")
    logger.add(sink(handler), level="DEBUG")
    logger.debug("request_finished", organization_id="acme")
    logger.info("request_finished", organization_id="acme", seq=1)
    assert handler.flush(5) is True
    (event,) = server.events()
    assert event["values"] == {"seq": 1}
    assert event["timestamp"].endswith("Z")


def test_loguru_remove_then_add_again_keeps_delivering(server: RecordingServer) -> None:
    """A script that adds the handler, removes it (closing it) and adds it again loses nothing."""
    code = """
        from loguru import logger
        from slaos_logging import SlaOSHandler
        from slaos_logging.integrations.loguru import sink

        logger.remove()
        handler = SlaOSHandler(flush_interval=30)
        first = logger.add(sink(handler))
        for seq in range(50):
            logger.bind(organization_id="a").info("request_finished", seq=seq)
        logger.remove(first)
        handler.close()
        logger.add(sink(handler))
        for seq in range(50, 100):
            logger.info("request_finished", organization_id="a", seq=seq)
    """
    done = run_script(code, child_env(server), timeout=30)
    assert done.returncode == 0, done.stderr
    expected = collections.Counter(("a", s) for s in range(100))
    assert_exactly(wait_for_events(server, 100, timeout=5), expected)
