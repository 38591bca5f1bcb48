"""A multiprocessing target importable by a spawned child (spawn re-imports by name)."""

from __future__ import annotations

import logging

from slaos_logging import SlaOSHandler


def log_with_own_handler(url: str, ingestion_id: str, ingestion_key: str, count: int) -> None:
    """Build a handler in this process, log ``count`` events and return without closing."""
    handler = SlaOSHandler(
        host=url,
        ingestion_id=ingestion_id,
        ingestion_key=ingestion_key,
        key="rated_api",
        flush_interval=60,
    )
    log = logging.getLogger("spawned")
    log.setLevel(logging.INFO)
    log.propagate = False
    log.addHandler(handler)
    for i in range(count):
        log.info("request_finished", extra={"organization_id": "spawned", "n": i})
