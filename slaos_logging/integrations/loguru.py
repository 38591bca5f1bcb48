"""loguru: ship loguru's records through a ``SlaOSHandler``.

One line::

    from loguru import logger
    from slaos_logging import SlaOSHandler
    from slaos_logging.integrations.loguru import sink

    logger.add(sink(SlaOSHandler(key="rated_api", events=["request_finished"])))

    logger.bind(organization_id="acme").info("request_finished", took=0.03, status_code=200)
    logger.info("request_finished", organization_id="acme", took=0.03, status_code=200)

Fields bound with ``bind()`` or passed as keyword arguments become the record's
extras, so they reach the event as with ``logging``'s ``extra=``; the record's message
is loguru's message (what ``events=`` matches), not its formatted line. (Adding the
handler itself, ``logger.add(handler)``, would hand it the formatted line with every
field nested under one ``extra`` attribute: no event could be built from that.)
This module does not import loguru.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

__all__ = ["sink"]


def sink(handler: logging.Handler) -> Callable[[Any], None]:
    """A loguru sink that passes each message to ``handler`` as a ``logging.LogRecord``.

    Args:
        handler: Usually a ``SlaOSHandler``; its level and filters apply.

    Returns:
        The callable to give to ``logger.add``. It never raises.
    """

    def write(message: Any) -> None:
        try:
            record = to_log_record(message.record)
            if record.levelno >= handler.level:
                handler.handle(record)
        except Exception:  # loguru would print it; a log call must not fail for us
            pass

    return write


def to_log_record(raw: dict[str, Any]) -> logging.LogRecord:
    """loguru's record dict as a stdlib record: its message as ``msg``, its extras as attributes."""
    exception = raw.get("exception")
    record = logging.LogRecord(
        raw["name"] or "loguru",
        raw["level"].no,
        raw["file"].path,
        raw["line"],
        raw["message"],
        None,
        (exception.type, exception.value, exception.traceback) if exception else None,
        raw["function"],
    )
    record.created = raw["time"].timestamp()
    record.msecs = (record.created % 1) * 1000
    fields = record.__dict__
    for name, value in raw["extra"].items():
        # A field named like a record attribute cannot be an extra (as with logging).
        if name not in fields:
            fields[name] = value
    return record
