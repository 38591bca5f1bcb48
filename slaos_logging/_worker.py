"""``SlaOSWorker``: the seed example's interface, on the batching pipeline."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from ._capture import ACTIVE as CAPTURES
from ._capture import capture_mapping
from ._config import build_config
from ._extract import REASONS, Extractor
from ._pipeline import Pipeline
from ._shutdown import SHUTDOWN_TIMEOUT, FlushTimeout, warn_if_disabled


class SlaOSWorker:
    """Drop-in for the ``SlaOSWorker`` of slaOS's example implementation.

    ``add_event`` no longer posts on the caller's thread: it enqueues, and the same
    background pipeline as ``SlaOSHandler`` batches, retries and delivers.

    The credentials follow ``SlaOSHandler``'s rules: from the arguments or the
    environment; with neither, the worker is disabled (``enabled`` is ``False``, one
    warning, events counted ``skipped``); with only one, ``ValueError``.

    Args:
        host: Host or base URL, as for ``SlaOSHandler``. Default: env ``SLAOS_HOST``,
            else ``api.rated.co``.
        ingestion_id: slaOS ingestion id. Default: env ``SLAOS_INGESTION_ID``.
        ingestion_key: slaOS ingestion key (never logged or shown). Default: env
            ``SLAOS_INGESTION_KEY``.
        max_retries: Retries of a failing batch. Default 3.
        retry_delay: First backoff window in seconds (exponential, full jitter). Default 5.
        **options: Any other ``SlaOSHandler`` setting (``batch_size``, ``spool_dir``,
            ``enabled``, ...).
    """

    def __init__(
        self,
        host: str | None = None,
        ingestion_id: str | None = None,
        ingestion_key: str | None = None,
        max_retries: int = 3,
        retry_delay: float = 5,
        **options: Any,
    ) -> None:
        options.setdefault("backoff_base", retry_delay)
        self._config = build_config(
            host=host,
            ingestion_id=ingestion_id,
            ingestion_key=ingestion_key,
            max_retries=max_retries,
            **options,
        )
        self.enabled = self._config.enabled
        self._extractor = Extractor(self._config)
        self._pipeline = Pipeline(self._config, owner=self)
        warn_if_disabled(self._config, self._pipeline.reporter)

    def add_event(self, event: Mapping[str, Any]) -> bool:
        """Queue one event (``organization_id``, ``key``, ``timestamp``, ``values``, ...).

        Returns:
            ``True`` if queued; ``False`` if it was not an event (counted ``skipped``)
            or could not be queued (counted as dropped). Never raises.
        """
        # slaos_logging.testing.capture_events(): while one is active, the event goes
        # to its list instead (see _capture).
        if CAPTURES:
            captured = capture_mapping(self, event)
            if captured is not None:
                return captured
        try:
            if not isinstance(event, Mapping) or not self.enabled:
                next(self._pipeline.stats.skipped)
                return False
            pending = self._extractor.extract(event, time.time())
            if isinstance(pending, str):
                next(self._pipeline.stats.skipped)
                self._pipeline.reporter.once(
                    pending, logging.WARNING, REASONS[pending], "add_event"
                )
                return False
            return self._pipeline.put(pending)
        except Exception:  # the application's call must not fail
            return False

    def flush(self, timeout: FlushTimeout = SHUTDOWN_TIMEOUT) -> bool:
        """Wait until every event added before this call is answered or given up.

        Args:
            timeout: Seconds at most (default ``shutdown_timeout``); ``None`` waits
                until done.
        """
        return self._pipeline.flush(timeout)

    def close(self) -> None:
        """Deliver what is queued within ``shutdown_timeout`` and stop the thread.

        Idempotent; an event added afterwards starts a new thread.
        """
        self._pipeline.close()

    def stats(self) -> dict[str, int]:
        """The same counters as ``SlaOSHandler.stats()``."""
        return self._pipeline.snapshot()

    def __enter__(self) -> SlaOSWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        config = getattr(self, "_config", None)  # a half-built worker has a repr too
        return f"<SlaOSWorker {config.masked_endpoint if config else '(not configured)'}>"
