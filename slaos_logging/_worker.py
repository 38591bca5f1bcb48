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


class SlaOSWorker:
    """Drop-in for the ``SlaOSWorker`` of slaOS's example implementation.

    ``add_event`` no longer posts on the caller's thread: it enqueues, and the same
    background pipeline as ``SlaOSHandler`` batches, retries and delivers.

    Args:
        host: Host or base URL, as for ``SlaOSHandler``.
        ingestion_id: slaOS ingestion id.
        ingestion_key: slaOS ingestion key (never logged or shown).
        max_retries: Retries of a failing batch. Default 3.
        retry_delay: First backoff window in seconds (exponential, full jitter). Default 5.
        **options: Any other ``SlaOSHandler`` setting (``batch_size``, ``spool_dir``, ...).
    """

    def __init__(
        self,
        host: str,
        ingestion_id: str,
        ingestion_key: str,
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
        self._extractor = Extractor(self._config)
        self._pipeline = Pipeline(self._config)

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
            if not isinstance(event, Mapping):
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

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event added before this call is answered or given up."""
        return self._pipeline.flush(timeout)

    def close(self) -> None:
        """Deliver what is queued within ``shutdown_timeout`` and stop. Idempotent."""
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
