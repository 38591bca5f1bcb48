"""The seed worker users copy today, reproduced for the benchmarks.

A faithful copy of the Python ``SlaOSWorker`` from the slaOS guide
(``shared/seed/slaos-example-implementation.txt``): one synchronous ``requests.post`` (no
session, so a new connection each time) per event, on the caller's thread, with its
retries and ``time.sleep``. Three deliberate departures, none of which makes it faster:

- ``add_event`` calls ``_add_idempotency_key`` (the guide calls a non-existent
  ``_add_local_identifier``, which would raise ``AttributeError``; its intent is evident);
- the URL scheme is a parameter, so it can reach the plain-HTTP local sink;
- its ``print`` calls still run, into ``/dev/null`` rather than the benchmark's stdout.

``SeedHandler`` is the obvious way a user wires it into ``logging``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from threading import Lock
from typing import Any

import requests

_DEVNULL = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process


class SlaOSWorker:
    """The guide's worker: one blocking POST per event."""

    def __init__(
        self,
        host: str,
        ingestion_id: str,
        ingestion_key: str,
        max_retries: int = 3,
        retry_delay: float = 5,
        scheme: str = "https",
    ) -> None:
        self.ingestion_url = f"{scheme}://{host}/v1/ingest/{ingestion_id}/{ingestion_key}"
        self.lock = Lock()
        self.max_retries = max_retries
        self.retry_delay = retry_delay

    def add_event(self, event: dict[str, Any]) -> None:
        """Add the idempotency key and send the event now, on this thread."""
        event = self._add_idempotency_key(event)
        self._send_event(event)

    def _add_idempotency_key(self, event: dict[str, Any]) -> dict[str, Any]:
        # Adding a unique identifier to avoid duplicate processing
        event["idempotency_key"] = (
            f"{event['organization_id']}:{event['timestamp']}:{hash(json.dumps(event['values']))}"
        )
        return event

    def _send_event(self, event: dict[str, Any]) -> None:
        retries = 0
        while retries < self.max_retries:
            try:
                response = requests.post(
                    self.ingestion_url,
                    json=event,
                    headers={"Content-Type": "application/json"},
                )
                response.raise_for_status()
                print("Successfully sent event to slaOS", file=_DEVNULL)
                return
            except requests.RequestException as e:
                print(
                    f"Error sending event to slaOS: {e}. "
                    f"Retrying {retries + 1}/{self.max_retries}...",
                    file=_DEVNULL,
                )
                retries += 1
                time.sleep(self.retry_delay)
        print(f"Failed to send event after {self.max_retries} retries.", file=_DEVNULL)


class SeedHandler(logging.Handler):
    """Builds the guide's payload from a record's extras and hands it to the worker."""

    def __init__(self, worker: SlaOSWorker) -> None:
        super().__init__()
        self.worker = worker

    def emit(self, record: logging.LogRecord) -> None:
        """Send the record as one event, synchronously."""
        try:
            created = dt.datetime.fromtimestamp(record.created, dt.timezone.utc)
            event = {
                "organization_id": record.organization_id,
                "timestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "values": dict(record.values),
                "key": record.key,
            }
            self.worker.add_event(event)
        except Exception:
            self.handleError(record)
