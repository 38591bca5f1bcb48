"""Flask example: every request to this app becomes a slaOS ``request_finished`` event.

Run it against the local receiver::

    pip install "slaos-logging[flask]"
    slaos-logging serve                  # in another shell: http://127.0.0.1:8080, id/key dev/dev
    python examples/flask_app.py         # http://127.0.0.1:5000
    curl -H "X-Customer-Id: acme" http://127.0.0.1:5000/items/42
    curl -H "X-Customer-Id: acme" http://127.0.0.1:5000/boom     # a 500
    slaos-logging report                 # uptime and latency per customer

Environment: ``SLAOS_HOST`` (default ``http://127.0.0.1:8080``), ``SLAOS_INGESTION_ID`` and
``SLAOS_INGESTION_KEY`` (default ``dev``/``dev``). Requests without an ``X-Customer-Id``
header are not logged; ``/health`` never is.
"""

from __future__ import annotations

import logging
import logging.config
import os
import time

from flask import Flask, request

from slaos_logging.integrations.flask import SlaOS

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "slaos": {
            "class": "slaos_logging.SlaOSHandler",
            "host": os.environ.get("SLAOS_HOST", "http://127.0.0.1:8080"),
            "ingestion_id": os.environ.get("SLAOS_INGESTION_ID", "dev"),
            "ingestion_key": os.environ.get("SLAOS_INGESTION_KEY", "dev"),
            "key": "rated_api",
            # Only the request records become events; other lines stay local.
            "events": ["request_finished"],
        },
    },
    "loggers": {
        "slaos.requests": {"handlers": ["slaos", "console"], "level": "INFO", "propagate": False},
        # The library's own diagnostics (delivery problems), shown on the console.
        "slaos_logging": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
    "root": {"handlers": ["console"], "level": "INFO"},
}
logging.config.dictConfig(LOGGING)

app = Flask(__name__)
SlaOS(
    app,
    organization_id=lambda: request.headers.get("X-Customer-Id"),
    exclude_paths=["/health"],
)


@app.get("/items/<int:item_id>")
def item(item_id: int) -> dict[str, int]:
    """A fast endpoint; logged with route ``/items/<int:item_id>``."""
    return {"id": item_id}


@app.get("/slow")
def slow() -> dict[str, str]:
    """A slow endpoint (300 ms), to see the latency SLI fail."""
    time.sleep(0.3)
    return {"status": "slow"}


@app.get("/boom")
def boom() -> str:
    """An endpoint that fails: logged with status 500."""
    raise RuntimeError("boom")


@app.get("/health")
def health() -> str:
    """Excluded from logging."""
    return "ok"


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=5000)
