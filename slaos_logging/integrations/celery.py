"""Celery: deliver every event of a worker's pool processes before they end.

Celery's prefork pool runs tasks in billiard children that leave through ``os._exit``
(after a warm shutdown, and whenever a child is recycled by ``--max-tasks-per-child``
or ``--max-memory-per-child``): exit hooks never run there. Install once, where the
Celery app is defined::

    from slaos_logging.integrations.celery import install

    install()

Each pool process then closes its handlers (delivering what is queued, within
``shutdown_timeout``) at ``worker_process_shutdown``, and the main worker process at
``worker_shutdown``.
"""

from __future__ import annotations

from typing import Any

from celery import signals  # type: ignore[import-untyped]

from slaos_logging import _lifecycle

__all__ = ["install"]


def _shutdown(**_: Any) -> None:
    try:
        _lifecycle.shutdown()
    except Exception:  # never break Celery's own shutdown
        pass


def install() -> None:
    """Connect to Celery's shutdown signals (idempotent)."""
    signals.worker_process_shutdown.connect(_shutdown, weak=False, dispatch_uid="slaos_logging")
    signals.worker_shutdown.connect(_shutdown, weak=False, dispatch_uid="slaos_logging")
