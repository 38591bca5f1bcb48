"""FastAPI example: every request to this app becomes a slaOS ``request_finished`` event.

Run it against the local receiver::

    pip install "slaos-logging[fastapi]" uvicorn
    slaos-logging serve                  # in another shell: http://127.0.0.1:8080, id/key dev/dev
    python examples/fastapi_app.py       # or: uvicorn --app-dir examples fastapi_app:app
    curl -H "X-Customer-Id: acme" http://127.0.0.1:8000/items/42
    curl -H "X-Customer-Id: acme" http://127.0.0.1:8000/stream   # timed to its last chunk
    slaos-logging report                 # uptime and latency per customer

Environment: ``SLAOS_HOST`` (default ``http://127.0.0.1:8080``), ``SLAOS_INGESTION_ID`` and
``SLAOS_INGESTION_KEY`` (default ``dev``/``dev``). Requests without an ``X-Customer-Id``
header are not logged; ``/health`` never is.
"""

from __future__ import annotations

import asyncio
import logging
import logging.config
import os
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import StreamingResponse

from slaos_logging.integrations.asgi import SlaOSMiddleware, header

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
            "events": ["request_finished"],
        },
    },
    "loggers": {
        "slaos.requests": {"handlers": ["slaos", "console"], "level": "INFO", "propagate": False},
        "slaos_logging": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}


# Configured at import. uvicorn's own logging set-up (a second dictConfig) closes this
# handler; a closed SlaOSHandler simply starts again with the next record.
logging.config.dictConfig(LOGGING)

# The middleware also flushes every SlaOSHandler at the lifespan's shutdown, so stopping
# uvicorn (Ctrl-C, SIGTERM) delivers the last requests' events.
app = FastAPI()
app.add_middleware(
    SlaOSMiddleware,
    organization_id=lambda scope: header(scope, "X-Customer-Id"),
    exclude_paths=["/health"],
)


@app.get("/items/{item_id}")
async def item(item_id: int) -> dict[str, int]:
    """A fast endpoint; logged with route ``/items/{item_id}``."""
    return {"id": item_id}


@app.get("/stream")
async def stream() -> StreamingResponse:
    """A streamed body; ``took`` runs to the last chunk."""

    async def chunks() -> AsyncIterator[bytes]:
        for n in range(3):
            await asyncio.sleep(0.1)
            yield f"chunk {n}\n".encode()

    return StreamingResponse(chunks(), media_type="text/plain")


@app.get("/boom")
async def boom() -> None:
    """An endpoint that fails: logged with status 500."""
    raise RuntimeError("boom")


@app.get("/health")
async def health() -> dict[str, str]:
    """Excluded from logging."""
    return {"status": "ok"}


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=8000)
