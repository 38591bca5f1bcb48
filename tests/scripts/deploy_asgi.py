"""A Starlette app as deployed: logging configured at import, SlaOSMiddleware around it.

Served by tests/test_deployments.py with uvicorn (CLI, ``--workers``, and
``uvicorn.run()`` when run as a script) and gunicorn's ``UvicornWorker``. The
organization of each request is its ``X-Org`` header; events wait in the queue
(``flush_interval=30``) so that only a flush at shutdown can deliver them.
"""

from __future__ import annotations

import logging
import sys

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from slaos_logging import SlaOSHandler
from slaos_logging.integrations.asgi import SlaOSMiddleware, header

handler = SlaOSHandler(flush_interval=30, batch_size=10_000, shutdown_timeout=5)
requests_log = logging.getLogger("slaos.requests")
requests_log.setLevel(logging.INFO)
requests_log.propagate = False
requests_log.addHandler(handler)


async def item(request: Request) -> PlainTextResponse:
    """One item."""
    return PlainTextResponse("ok")


app = SlaOSMiddleware(
    Starlette(routes=[Route("/items/{n}", item), Route("/health", item)]),
    organization_id=lambda scope: header(scope, "X-Org"),
    exclude_paths=("/health",),
)

if __name__ == "__main__":
    import uvicorn

    # uvicorn.run() configures logging itself (dictConfig), closing the handler above.
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
