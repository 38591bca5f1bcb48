"""Quickstart: request logs become slaOS events, and an SLO report shows who breached.

Run it (after ``pip install slaos-logging``, or ``pip install -e .`` in a checkout)::

    python examples/quickstart.py

Everything happens in this process and nothing leaves the machine: a local slaOS-compatible
receiver (the one ``slaos-logging serve`` runs) listens on a free loopback port; logging is
configured with ``dictConfig``, a python-json-logger console handler beside ``SlaOSHandler``;
a simulated web service serves three customers (one healthy, one with bursts of 5xx, one
slow) and logs one ``request_finished`` record per request; then the events the receiver
stored are turned into the uptime and latency SLO report (``slaos-logging report``).
"""

from __future__ import annotations

import logging
import logging.config
import math
import random
import secrets
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from slaos_logging import SlaOSHandler
from slaos_logging.cli import Receiver, compute_report, format_table

REQUESTS = 3000
UPTIME_TARGET = 99.5  # percent of requests that are not 5xx
LATENCY_THRESHOLD = 0.2  # seconds
LATENCY_TARGET = 95.0  # percent of requests faster than the threshold

# Customer -> (median latency in seconds, the customer's request numbers that get a 503).
CUSTOMERS = {
    "acme": (0.05, range(0)),  # healthy
    "globex": (0.05, [*range(300, 306), *range(700, 705)]),  # two bursts of server errors
    "initech": (0.11, range(0)),  # slow: a tenth of its requests take over 0.2 s
}
PATHS = ("/v1/orders", "/v1/orders/{id}", "/v1/invoices", "/v1/users/me")


def logging_config(receiver: Receiver) -> dict[str, object]:
    """The application's logging: JSON lines on the console, events to slaOS."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            }
        },
        "handlers": {
            # WARNING and up only: the console shows the server errors, not 3,000 lines.
            "console": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "json",
                "level": "WARNING",
            },
            "slaos": {
                "()": "slaos_logging.SlaOSHandler",
                "host": receiver.url,  # for slaOS itself: leave out (api.rated.co)
                "ingestion_id": receiver.ingestion_id,
                "ingestion_key": receiver.ingestion_key,
                "key": "rated_api",
                "events": ["request_finished"],
            },
        },
        "loggers": {
            "shop.requests": {"handlers": ["console", "slaos"], "level": "INFO", "propagate": False}
        },
    }


def serve_traffic(logger: logging.Logger, rng: random.Random) -> None:
    """Simulate the service: one ``request_finished`` record per request, no real waiting."""
    served = dict.fromkeys(CUSTOMERS, 0)
    names = list(CUSTOMERS)
    for _ in range(REQUESTS):
        customer = rng.choice(names)
        median, failing = CUSTOMERS[customer]
        number = served[customer]
        served[customer] += 1
        took = rng.lognormvariate(math.log(median), 0.45)
        status = 503 if number in failing else rng.choices((200, 201, 404), (90, 6, 4))[0]
        logger.log(
            logging.ERROR if status >= 500 else logging.INFO,
            "request_finished",
            extra={
                "organization_id": customer,
                "path": rng.choice(PATHS),
                "status_code": status,
                "took": round(took, 4),
            },
        )


def main() -> int:
    """Run the whole demonstration; return the exit code."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="slaos-quickstart-") as tmp:
        receiver = Receiver(
            db_path=Path(tmp) / "events.sqlite", ingestion_key=secrets.token_urlsafe(16)
        ).start()
        try:
            logging.config.dictConfig(logging_config(receiver))
            logger = logging.getLogger("shop.requests")
            handler = next(h for h in logger.handlers if isinstance(h, SlaOSHandler))
            print(f"local slaOS receiver on {receiver.url}; simulating {REQUESTS} requests")
            print("console handler (WARNING and up, JSON):")
            serve_traffic(logger, random.Random(20240815))
            delivered = handler.flush(timeout=10.0)
            stats = handler.stats()
            logger.removeHandler(handler)
            handler.close()
            reports = compute_report(
                receiver.store,
                key="rated_api",
                uptime_target=UPTIME_TARGET,
                latency_threshold=LATENCY_THRESHOLD,
                latency_target=LATENCY_TARGET,
            )
        finally:
            receiver.stop()
    elapsed = time.monotonic() - started
    print(
        f"\nSlaOSHandler delivered {stats['sent']} of {stats['enqueued']} events "
        f"in {stats['requests']} requests ({elapsed:.1f} s in all). SLO report:\n"
    )
    table = format_table(
        reports,
        key="rated_api",
        uptime_target=UPTIME_TARGET,
        latency_threshold=LATENCY_THRESHOLD,
        latency_target=LATENCY_TARGET,
    )
    print(table)
    uptime = [r.organization_id for r in reports if r.uptime_met is False]
    latency = [r.organization_id for r in reports if r.latency_met is False]
    closing = (
        "What you saw: every 'request_finished' record, extras and all, became a slaOS "
        f"event; {', '.join(uptime) or 'nobody'} breached the uptime SLA (the 5xx lines above) "
        f"and {', '.join(latency) or 'nobody'} the latency SLA. Next: set SLAOS_INGESTION_ID "
        "and SLAOS_INGESTION_KEY, run `slaos-logging check --send-test-event`, and add "
        "SlaOSHandler to your own logging config (see the README)."
    )
    print("\n" + textwrap.fill(closing, width=88, break_on_hyphens=False))
    return 0 if delivered and stats["sent"] == REQUESTS else 1


if __name__ == "__main__":
    sys.exit(main())
