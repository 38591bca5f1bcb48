"""The logging setups the benchmarks compare, each built fresh in its own process.

Every setup is one logger (``propagate=False``, level INFO) with exactly one handler, plus
how to flush and close it. Optional peers (OpenTelemetry, logtail-python) raise
``ImportError`` when they are not installed.
"""

from __future__ import annotations

import logging
import queue
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from logging.handlers import QueueHandler
from typing import Any

ORG = "531ccc57c17a4b418236935e96fb8049"
INGESTION_ID = "bench"
INGESTION_KEY = "benchkey"

#: Cases in table order: name -> (label, call form).
CASES: dict[str, tuple[str, str]] = {
    "null": ("NullHandler (floor)", "values"),
    "null_flat": ("NullHandler, flat extras (floor)", "flat"),
    "queue": ("stdlib QueueHandler (no delivery)", "values"),
    "seed": ("slaOS example SlaOSWorker (sync POST per event)", "values"),
    "slaos": ("SlaOSHandler", "values"),
    "slaos_flat": ("SlaOSHandler, flat extras", "flat"),
    "otel": ("OTel LoggingHandler + BatchLogRecordProcessor + OTLP/HTTP", "values"),
    "logtail": ("logtail-python LogtailHandler", "values"),
}
DELIVERING = ("seed", "slaos", "slaos_flat", "otel", "logtail")
OPTIONAL = ("otel", "logtail")


@dataclass
class Target:
    """A logger wired to one handler, and how to drain and stop it."""

    logger: logging.Logger
    handler: logging.Handler
    flush: Callable[[float], Any] = lambda timeout: None
    close: Callable[[], Any] = lambda: None
    stats: Callable[[], dict[str, int] | None] = lambda: None
    extra: dict[str, Any] = field(default_factory=dict)


def _logger(case: str, handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"bench.{case}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def _slaos(case: str, sink: str, options: dict[str, Any]) -> Target:
    from slaos_logging import SlaOSHandler

    if case == "slaos_flat":
        options = {"key": "rated_api", **options}
    handler = SlaOSHandler(
        ingestion_id=INGESTION_ID, ingestion_key=INGESTION_KEY, host=sink, **options
    )
    return Target(
        _logger(case, handler),
        handler,
        flush=lambda timeout: handler.flush(timeout),
        close=handler.close,
        stats=handler.stats,
    )


def _seed(case: str, sink: str) -> Target:
    from _seed_worker import SeedHandler, SlaOSWorker

    host = sink.split("://", 1)[1]
    worker = SlaOSWorker(host, INGESTION_ID, INGESTION_KEY, scheme="http")
    handler = SeedHandler(worker)
    return Target(_logger(case, handler), handler)


def _otel(case: str, sink: str) -> Target:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    provider = LoggerProvider()
    processor = BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{sink}/v1/logs"))
    provider.add_log_record_processor(processor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LoggingHandler's deprecation notice
        handler = LoggingHandler(level=logging.NOTSET, logger_provider=provider)
    return Target(
        _logger(case, handler),
        handler,
        flush=lambda timeout: provider.force_flush(int(timeout * 1000)),
        close=provider.shutdown,
    )


def _logtail(case: str, sink: str) -> Target:
    from logtail import LogtailHandler

    handler = LogtailHandler(source_token="bench", host=f"{sink}/logtail")
    return Target(
        _logger(case, handler),
        handler,
        flush=lambda timeout: handler.flush(),
        close=handler.close,
        stats=lambda: {"dropped_queue_full": handler.dropcount},
    )


def build(case: str, sink: str, options: dict[str, Any] | None = None) -> Target:
    """Build the named setup, delivering to ``sink`` (``http://127.0.0.1:PORT``)."""
    if case in ("null", "null_flat"):
        null = logging.NullHandler()
        return Target(_logger(case, null), null)
    if case == "queue":
        handler = QueueHandler(queue.Queue())
        return Target(_logger(case, handler), handler)
    if case == "seed":
        return _seed(case, sink)
    if case in ("slaos", "slaos_flat"):
        return _slaos(case, sink, options or {})
    if case == "otel":
        return _otel(case, sink)
    if case == "logtail":
        return _logtail(case, sink)
    raise ValueError(f"unknown case {case!r}")


def available(case: str) -> bool:
    """Whether the case's library can be imported here."""
    try:
        if case == "otel":
            import opentelemetry.exporter.otlp.proto.http._log_exporter
            import opentelemetry.sdk._logs  # noqa: F401
        elif case == "logtail":
            import logtail  # noqa: F401
    except ImportError:
        return False
    return True
