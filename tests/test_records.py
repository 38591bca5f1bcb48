"""Awkward records: replacement records from filters, nameless records, naive times, clashes."""

from __future__ import annotations

import copy
import datetime as dt
import logging
import os
import time
from collections.abc import Callable, Iterator

import pytest

from slaos_logging import SlaOSHandler

from .integration_support import Collect
from .server import RecordingServer

MakeHandler = Callable[..., SlaOSHandler]


class Redact(logging.Filter):
    """Returns a copy of the record with ``email`` masked (the Python 3.12 filter style)."""

    def filter(self, record: logging.LogRecord) -> logging.LogRecord:  # type: ignore[override]
        clone = copy.copy(record)
        clone.email = "***"
        return clone


def test_filter_replacement_record_is_the_one_shipped(
    make_handler: MakeHandler, server: RecordingServer, app_logger: logging.Logger
) -> None:
    """A filter's replacement record is extracted; the original record is left as it was."""
    handler = make_handler()
    handler.addFilter(Redact())
    app_logger.addHandler(handler)
    record = app_logger.makeRecord(
        app_logger.name,
        logging.INFO,
        __file__,
        1,
        "request_finished",
        (),
        None,
        extra={"organization_id": "o", "email": "jane@example.com", "took": 0.1},
    )
    app_logger.handle(record)
    assert handler.flush(5)
    assert [e["values"] for e in server.events()] == [{"email": "***", "took": 0.1}]
    assert record.email == "jane@example.com"  # other handlers still see the original


def test_callable_filters_chain_their_replacements(
    make_handler: MakeHandler, server: RecordingServer, app_logger: logging.Logger
) -> None:
    """Each filter gets the record the previous one returned; a falsy result drops it."""

    def add_region(record: logging.LogRecord) -> logging.LogRecord:
        clone = copy.copy(record)
        clone.region = "eu"
        return clone

    def keep_eu(record: logging.LogRecord) -> bool:
        return getattr(record, "region", None) == "eu" and getattr(record, "n", 0) != 2

    handler = make_handler()
    handler.addFilter(add_region)
    handler.addFilter(keep_eu)
    app_logger.addHandler(handler)
    for n in range(3):
        app_logger.info("request_finished", extra={"organization_id": "o", "n": n})
    assert handler.flush(5)
    assert [e["values"] for e in server.events()] == [
        {"n": 0, "region": "eu"},
        {"n": 1, "region": "eu"},
    ]
    stats = handler.stats()
    assert (stats["enqueued"], stats["sent"], stats["skipped"]) == (2, 2, 0)


def test_failing_filter_skips_the_record_without_raising(
    make_handler: MakeHandler,
    server: RecordingServer,
    app_logger: logging.Logger,
    diagnostics: Collect,
) -> None:
    """A filter that raises costs its record (counted skipped, reported), not the logging call."""

    def broken(record: logging.LogRecord) -> bool:
        if getattr(record, "n", None) == 1:
            raise KeyError("boom")
        return True

    handler = make_handler()
    handler.addFilter(broken)
    app_logger.addHandler(handler)
    for n in range(3):
        app_logger.info("request_finished", extra={"organization_id": "o", "n": n})
    assert handler.flush(5)
    assert [e["values"] for e in server.events()] == [{"n": 0}, {"n": 2}]
    stats = handler.stats()
    assert (stats["enqueued"], stats["sent"], stats["skipped"]) == (2, 2, 1)
    assert any("KeyError" in r.getMessage() for r in diagnostics.records)


def test_record_without_a_name_is_shipped(
    make_handler: MakeHandler, server: RecordingServer
) -> None:
    """A record made by logging.makeLogRecord without a name is an event like any other."""
    handler = make_handler()
    record = logging.makeLogRecord(
        {"msg": "request_finished", "organization_id": "o", "status_code": 200}
    )
    assert record.name is None
    assert handler.handle(record)
    assert handler.flush(5)
    assert [e["values"] for e in server.events()] == [{"status_code": 200}]
    stats = handler.stats()
    assert (stats["enqueued"], stats["sent"], stats["skipped"]) == (1, 1, 0)


def test_colliding_value_names_keep_the_first_and_warn_once_each(
    make_handler: MakeHandler,
    server: RecordingServer,
    app_logger: logging.Logger,
    diagnostics: Collect,
) -> None:
    """a-b, a.b and a_b all become a_b: the first value is kept, one warning per name."""
    handler = make_handler()
    app_logger.addHandler(handler)
    for _ in range(3):
        app_logger.info(
            "request_finished", extra={"organization_id": "o", "a-b": 1, "a.b": 2, "a_b": 3}
        )
    app_logger.info("request_finished", extra={"organization_id": "o", "x.y": 4, "x-y": 5})
    assert handler.flush(5)
    assert [e["values"] for e in server.events()] == [{"a_b": 1}] * 3 + [{"x_y": 4}]
    warnings = [r.getMessage() for r in diagnostics.records if "first one" in r.getMessage()]
    assert len(warnings) == 2
    assert "'a_b'" in warnings[0]
    assert "'x_y'" in warnings[1]
    assert all(r.levelno == logging.WARNING for r in diagnostics.records)
    stats = handler.stats()
    assert (stats["enqueued"], stats["sent"]) == (4, 4)


@pytest.fixture
def india_time() -> Iterator[None]:
    """The process's local time is UTC+05:30 for the test (a POSIX TZ rule, no tz database)."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "IST-05:30"
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()


@pytest.mark.parametrize(
    "raw",
    [dt.datetime(2024, 7, 2, 18, 4, 56), "2024-07-02T18:04:56", "2024-07-02 18:04:56.500"],
    ids=["naive-datetime", "iso-without-offset", "iso-space-fraction"],
)
def test_naive_timestamp_is_local_time(
    india_time: None,
    make_handler: MakeHandler,
    server: RecordingServer,
    app_logger: logging.Logger,
    raw: object,
) -> None:
    """A timestamp without an offset is the machine's local time, as in Python itself."""
    assert dt.datetime(2024, 7, 2, 18, 4, 56).astimezone().utcoffset() == dt.timedelta(
        hours=5, minutes=30
    )
    handler = make_handler()
    app_logger.addHandler(handler)
    app_logger.info("request_finished", extra={"organization_id": "o", "timestamp": raw})
    app_logger.info(
        "request_finished",
        extra={
            "organization_id": "o",
            "timestamp": dt.datetime(2024, 7, 2, 12, 34, 56, tzinfo=dt.timezone.utc),
        },
    )
    assert handler.flush(5)
    assert [e["timestamp"] for e in server.events()] == ["2024-07-02T12:34:56Z"] * 2
    assert handler.stats()["bad_timestamps"] == 0
