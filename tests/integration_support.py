"""Helpers for the framework integration tests: record collectors and a shipping block."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from slaos_logging._context import organization_id_var

from .server import RecordingServer


class Collect(logging.Handler):
    """Keeps every record, plus the organization current when it was logged."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.orgs: list[str | None] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.orgs.append(organization_id_var.get())


def attach(name: str) -> Iterator[Collect]:
    """Collect ``name``'s records at every level until the generator is closed."""
    handler = Collect()
    logger = logging.getLogger(name)
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


@contextlib.contextmanager
def shipping(handler: logging.Handler, *names: str) -> Iterator[None]:
    """Attach a real handler to the ``slaos.requests`` logger (and ``names``) for a block."""
    loggers = [logging.getLogger(name) for name in ("slaos.requests", *names)]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def received(server: RecordingServer, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The events the server accepted, waiting (up to ``timeout``) until there are ``count``."""
    deadline = time.monotonic() + timeout
    events = server.events()
    while len(events) < count and time.monotonic() < deadline:
        server.wait_for_requests(len(server.requests) + 1, timeout=0.05)
        events = server.events()
    return events


def log_events(logger: logging.Logger, n: int, first: int = 0) -> None:
    """Log ``n`` request_finished records for acme, numbered from ``first`` in value ``n``."""
    for i in range(first, first + n):
        logger.info("request_finished", extra={"organization_id": "acme", "n": i})


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait until ``predicate()`` holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)
