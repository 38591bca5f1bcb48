"""Web framework integrations: one ``request_finished`` record per request.

Each submodule imports its framework, so import the one you use directly:

- ``slaos_logging.integrations.django``: ``SlaOSMiddleware`` for ``MIDDLEWARE``.
- ``slaos_logging.integrations.flask``: the ``SlaOS`` extension.
- ``slaos_logging.integrations.asgi``: ``SlaOSMiddleware`` for FastAPI, Starlette or any ASGI 3 app
  (and ``FlushOnShutdown``, the lifespan flush alone).
- ``slaos_logging.integrations.wsgi``: ``SlaOSMiddleware`` for any WSGI app.
- ``slaos_logging.integrations.celery``: ``install()`` delivers pool processes' events.
- ``slaos_logging.integrations.loguru``: ``sink(handler)`` for ``logger.add``.

They all log on the ``slaos.requests`` logger; attach a ``SlaOSHandler`` to it (or to the
root logger) to ship the records to slaOS.
"""
