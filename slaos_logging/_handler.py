"""``SlaOSHandler``: the ``logging.Handler`` users put in their logging config."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from threading import get_ident
from typing import Any

from ._batch import SENDER_THREADS
from ._capture import ACTIVE as CAPTURES
from ._capture import capture_record
from ._config import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_FLUSH_INTERVAL,
    DEFAULT_MAX_BATCH_BYTES,
    DEFAULT_MAX_QUEUE_SIZE,
    DEFAULT_MAX_RETRIES,
    DEFAULT_SHUTDOWN_TIMEOUT,
    DEFAULT_SPOOL_MAX_BYTES,
    DEFAULT_TIMEOUT,
    OrganizationSource,
    build_config,
)
from ._extract import REASONS, Extractor, record_from_event_dict
from ._pipeline import Pipeline
from ._shutdown import SHUTDOWN_TIMEOUT, FlushTimeout, warn_if_disabled

_OWN_LOGGER = "slaos_logging"
_OWN_CHILD = _OWN_LOGGER + "."


class SlaOSHandler(logging.Handler):
    """Turns log records into slaOS events and ships them in batches from a background thread.

    ``emit()`` only filters, extracts and enqueues (never blocks, never raises); one
    daemon thread per process batches, retries and posts. Every argument is optional
    and keyword-only, so the handler can be built by ``logging.config.dictConfig``.

    Args:
        ingestion_id: slaOS ingestion id. Default: env ``SLAOS_INGESTION_ID``.
        ingestion_key: slaOS ingestion key (a secret: never logged or shown). Default:
            env ``SLAOS_INGESTION_KEY``. With neither credential the handler is built
            disabled (one warning on stderr); with only one, it is a ``ValueError``.
        host: ``api.rated.co``-style host (https) or a base URL. Default: env
            ``SLAOS_HOST``, else ``api.rated.co``.
        allow_insecure_http: Allow ``http://`` to a non-loopback host. Default ``False``.
        key: Event key for records that carry none. Default: env ``SLAOS_KEY``, else none.
        events: Record messages (``record.msg``) to ship. Default ``None``: every record
            that yields a complete event.
        organization_id: Organization for records that carry none: a string or a
            zero-argument callable. Default ``None``: ``slaos_logging.organization_id_var``.
        value_fields: Only these extra fields go into ``values``. Default ``None``: all.
        batch_size: Events per request at most. Default 500.
        max_batch_bytes: JSON bytes per request at most. Default 1,000,000.
        flush_interval: Seconds a batch may wait for more events. Default 1.0.
        max_queue_size: Events held in memory at most; beyond, new events are dropped
            (or spooled). Default 50,000.
        max_retries: Retries of a failing batch before it is given up. Default 5.
        timeout: Seconds per HTTP request (connect and read). Default 10.0.
        shutdown_timeout: Seconds ``close()`` may spend delivering. Default 5.0.
        verify: TLS verification: ``True``, ``False`` or a CA bundle path. Default ``True``.
        backoff_base: First retry's backoff window in seconds. Default 0.5.
        backoff_cap: Largest backoff window in seconds. Default 30.0.
        spool_dir: Folder of an on-disk spool that keeps events through outages and
            restarts. Default: env ``SLAOS_SPOOL_DIR``, else none (memory only).
        spool_max_bytes: Bound of the spool's stored events. Default 256 MiB.
        level: Handler level. Default ``logging.NOTSET``.
        enabled: ``False`` turns the handler off silently (tests, local development):
            records are counted ``skipped``, nothing is sent, no thread starts.
            Default: env ``SLAOS_ENABLED`` (``0``/``false`` turn it off), else on.

    Attributes:
        enabled: Whether the handler sends anything.

    Raises:
        ValueError: One credential without the other, or an invalid setting (the
            message names it).
    """

    #: Diagnostics of ``slaos_logging`` never go through this handler (see _diagnostics).
    ignores_slaos_logging = True

    def __init__(
        self,
        *,
        ingestion_id: str | None = None,
        ingestion_key: str | None = None,
        host: str | None = None,
        allow_insecure_http: bool = False,
        key: str | None = None,
        events: Iterable[str] | str | None = None,
        organization_id: OrganizationSource = None,
        value_fields: Iterable[str] | str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE,
        max_retries: int = DEFAULT_MAX_RETRIES,
        timeout: float = DEFAULT_TIMEOUT,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        verify: bool | str = True,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        spool_dir: str | os.PathLike[str] | None = None,
        spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES,
        level: int | str = logging.NOTSET,
        enabled: bool | None = None,
    ) -> None:
        config = build_config(
            ingestion_id=ingestion_id,
            ingestion_key=ingestion_key,
            host=host,
            allow_insecure_http=allow_insecure_http,
            key=key,
            events=events,
            organization_id=organization_id,
            value_fields=value_fields,
            batch_size=batch_size,
            max_batch_bytes=max_batch_bytes,
            flush_interval=flush_interval,
            max_queue_size=max_queue_size,
            max_retries=max_retries,
            timeout=timeout,
            shutdown_timeout=shutdown_timeout,
            verify=verify,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            spool_dir=spool_dir,
            spool_max_bytes=spool_max_bytes,
            enabled=enabled,
        )
        try:
            super().__init__(level)
        except (TypeError, ValueError) as exc:
            # logging's own "Unknown level: 'NOPE'" does not say which argument it was.
            raise ValueError(f"level must be a logging level name or number: {exc}") from None
        self._config = config
        self.enabled = config.enabled
        self._pipeline = Pipeline(config, owner=self)
        # Bound once: emit() is paid on every logging call.
        self._events = config.events
        if not config.enabled:
            # Matches no record: each is counted `skipped`, and emit() stays untouched.
            self._events = frozenset()
            warn_if_disabled(config, self._pipeline.reporter)
        self._extract = Extractor(config).extract
        self._put = self._pipeline.put

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # logging.Handler.handle calls filter() even when no filter was added: so does the
        # handle() of a subclass that overrides filter(). (Ours skips it then, for speed.)
        if cls.filter is not SlaOSHandler.filter and cls.handle is SlaOSHandler.handle:
            cls.handle = SlaOSHandler._filter_and_emit  # type: ignore[method-assign]

    def handle(self, record: logging.LogRecord) -> logging.LogRecord | bool:  # type: ignore[override]
        """Filter and emit without taking the handler lock: ``emit`` is thread-safe.

        Returns:
            The record emitted (a filter's replacement, see :meth:`filter`), or ``False``
            if a filter dropped it or raised (counted ``skipped`` and reported).
        """
        if self.filters:
            return self._filter_and_emit(record)
        self.emit(record)
        return record

    def _filter_and_emit(self, record: logging.LogRecord) -> logging.LogRecord | bool:
        try:
            result = self.filter(record)
        except Exception as exc:  # a failing filter must not fail the logging call
            self._report_error(exc)
            return False
        if not result:
            return False
        if isinstance(result, logging.LogRecord):
            record = result
        self.emit(record)
        return record

    def filter(self, record: logging.LogRecord) -> logging.LogRecord | bool:  # type: ignore[override]
        """Apply the handler's filters, as Python 3.12's ``Filterer.filter`` does.

        A filter may return a replacement record (to redact a field without touching
        the record other handlers see): the record the filters return is the one
        emitted, on every supported Python version.

        Returns:
            The record (or its last replacement), or ``False`` if a filter dropped it.
        """
        for f in self.filters:
            result = f.filter(record) if hasattr(f, "filter") else f(record)
            if not result:
                return False
            if isinstance(result, logging.LogRecord):
                record = result
        return record

    def emit(self, record: logging.LogRecord) -> None:
        """Extract the event and enqueue it. Never blocks, never raises."""
        # slaos_logging.testing.capture_events(): while one is active, the event goes
        # to its list instead. One global read when none is (see _capture).
        if CAPTURES and capture_record(self, record, SlaOSHandler.emit):
            return
        # The hot path of every logging call: attribute look-ups and one queue put,
        # nothing formatted, nothing copied but the values.
        try:
            events = self._events
            if events is not None:
                try:
                    wanted = record.msg in events
                except TypeError:  # unhashable: structlog's event dict, else never an event
                    record = record_from_event_dict(record)
                    wanted = record.msg.__class__ is str and record.msg in events
                if not wanted:
                    next(self._pipeline.stats.skipped)
                    return
            else:
                # Our own diagnostics, or urllib3 talking on a sender thread. (With
                # `events` set they never match, so the test is only needed here.)
                if get_ident() in SENDER_THREADS:
                    return
                name = record.name
                if name.__class__ is not str:  # logging.makeLogRecord() without a name
                    name = str(name)
                # Ours and its children only: an app's "slaos_logging_app" is an app logger.
                if name.startswith(_OWN_CHILD) or name == _OWN_LOGGER:
                    return
                if record.msg.__class__ is dict:  # structlog's wrap_for_formatter
                    record = record_from_event_dict(record)
            pending = self._extract(record.__dict__, record.created)
            if pending.__class__ is str:
                self._skip(pending, record)  # type: ignore[arg-type]
                return
            self._put(pending)  # type: ignore[arg-type]
        except Exception as exc:  # nothing may raise into the logging call
            self._report_error(exc)

    def _skip(self, reason: str, record: logging.LogRecord) -> None:
        next(self._pipeline.stats.skipped)
        self._pipeline.reporter.once(reason, logging.WARNING, REASONS[reason], record.msg)

    def _report_error(self, exc: Exception) -> None:
        try:
            next(self._pipeline.stats.skipped)
            self._pipeline.reporter.every(
                "emit_error",
                logging.ERROR,
                "slaos_logging could not take a record (%s: %s): skipped",
                type(exc).__name__,
                exc,
            )
        except Exception:
            pass

    def handleError(self, record: logging.LogRecord) -> None:
        """Never print a traceback to stderr: errors are counted and reported instead."""

    def flush(self, timeout: FlushTimeout = SHUTDOWN_TIMEOUT) -> bool:  # type: ignore[override]
        """Block until every event enqueued before this call is answered or given up.

        Args:
            timeout: Seconds to wait at most. Default: ``shutdown_timeout``, so that
                ``logging.shutdown()`` and ``dictConfig()`` (which call ``flush()``) are
                bounded. ``None`` waits until done.

        Returns:
            ``False`` if the timeout ran out first (or the caller holds the ``logging``
            lock, under which it never waits: the events are still delivered).
        """
        try:
            return self._pipeline.flush(timeout)
        except Exception as exc:
            self._report_error(exc)
            return False

    def close(self) -> None:
        """Deliver what is queued within ``shutdown_timeout`` and stop the sender thread.

        Idempotent. Like ``FileHandler``, a closed handler still works: a record
        logged afterwards starts a new sender thread (``dictConfig`` closes every
        existing handler, even those that stay attached).
        """
        try:
            self._pipeline.close()
        except Exception as exc:
            self._report_error(exc)
        finally:
            super().close()

    def stats(self) -> dict[str, int]:
        """Counters of this process's events; see the README's "Delivery guarantees"."""
        return self._pipeline.snapshot()

    def __repr__(self) -> str:
        # Never raises, even when __init__ failed half-way (traceback's capture_locals calls it).
        config = getattr(self, "_config", None)
        where = config.masked_endpoint if config is not None else "(not configured)"
        level = logging.getLevelName(getattr(self, "level", logging.NOTSET))
        return f"<{type(self).__name__} {where} key={getattr(config, 'key', None)!r} ({level})>"
