"""A Flask app as deployed under ``gunicorn --preload``: the handler is built in the master.

The organization of each request is its ``X-Org`` header; events wait in the queue
(``flush_interval=30``) so that only the workers' exit can deliver them.
"""

from __future__ import annotations

import logging

from flask import Flask, request

from slaos_logging import SlaOSHandler
from slaos_logging.integrations.flask import SlaOS

handler = SlaOSHandler(flush_interval=30, batch_size=10_000, shutdown_timeout=5)
requests_log = logging.getLogger("slaos.requests")
requests_log.setLevel(logging.INFO)
requests_log.propagate = False
requests_log.addHandler(handler)

app = Flask(__name__)
SlaOS(app, organization_id=lambda: request.headers.get("X-Org"), exclude_paths=("/health",))


@app.route("/items/<int:n>")
def item(n: int) -> str:
    """One item."""
    return "ok"


@app.route("/health")
def health() -> str:
    """Not logged."""
    return "ok"
