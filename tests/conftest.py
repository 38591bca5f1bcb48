"""Shared fixtures: a recording server, handlers that are always closed, a clean root logger."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from slaos_logging import SlaOSHandler

from .integration_support import Collect, attach
from .server import RecordingServer

KEY = "sekrit-ingestion-key-0123"


@pytest.fixture
def server() -> Iterator[RecordingServer]:
    """A recording HTTP server on 127.0.0.1, stopped after the test."""
    srv = RecordingServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def make_handler(server: RecordingServer) -> Iterator[Callable[..., SlaOSHandler]]:
    """Build SlaOSHandlers aimed at ``server``; every one is closed after the test."""
    made: list[SlaOSHandler] = []

    def make(**kwargs: Any) -> SlaOSHandler:
        options: dict[str, Any] = {
            "host": server.url,
            "ingestion_id": "ingest-id",
            "ingestion_key": KEY,
            "key": "rated_api",
            "backoff_base": 0.01,
            "backoff_cap": 0.05,
            "shutdown_timeout": 5.0,
        }
        options.update(kwargs)
        handler = SlaOSHandler(**options)
        made.append(handler)
        return handler

    yield make
    for handler in made:
        handler.close()


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Put the root logger and the loggers tests touch back as they were."""
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    yield
    for handler in root.handlers[:]:
        if handler not in saved[1]:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(saved[0])


@pytest.fixture
def app_logger(request: pytest.FixtureRequest) -> Iterator[logging.Logger]:
    """A fresh, non-propagating INFO logger named after the test."""
    logger = logging.getLogger(f"app.{request.node.name}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger
    for handler in logger.handlers[:]:
        logger.removeHandler(handler)


@pytest.fixture
def requests_log() -> Iterator[Collect]:
    """Every record logged on ``slaos.requests`` during the test."""
    yield from attach("slaos.requests")


@pytest.fixture
def diagnostics() -> Iterator[Collect]:
    """Every record the library logged on ``slaos_logging`` during the test."""
    yield from attach("slaos_logging")
