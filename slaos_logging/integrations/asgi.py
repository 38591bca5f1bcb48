"""ASGI middleware (FastAPI, Starlette, any ASGI 3 app): one record per HTTP request.

Usage with FastAPI or Starlette::

    from slaos_logging.integrations.asgi import SlaOSMiddleware

    app.add_middleware(
        SlaOSMiddleware,
        organization_id=lambda scope: dict(scope["headers"]).get(b"x-customer-id", b"").decode(),
    )

or wrap any ASGI app: ``app = SlaOSMiddleware(app, organization_id=...)``.

Only ``http`` scopes are timed; ``websocket`` passes through untouched. On
``lifespan.shutdown`` every ``SlaOSHandler`` of the process is flushed (within its
``shutdown_timeout``) before the server is told the app has shut down: uvicorn ends by
re-raising SIGTERM, so exit hooks never run. An app that does not speak the lifespan
protocol (Django's ``ASGIHandler``) gets it spoken for it. For Django, which is timed by
its own middleware, wrap the ASGI application in ``FlushOnShutdown`` alone::

    application = FlushOnShutdown(get_asgi_application())

The route is ``scope["route"].path`` (``/items/{item_id}``), which Starlette and FastAPI
set while routing; under a Starlette ``Mount`` it is the path inside the mount. This
module imports no framework.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from slaos_logging import _lifecycle
from slaos_logging.integrations._core import (
    DEFAULT_LOGGER_NAME,
    DEFAULT_MESSAGE,
    RequestCore,
    RequestTimer,
)

__all__ = ["FlushOnShutdown", "SlaOSMiddleware", "header"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Messages after which the client has the whole response.
_FINAL_MESSAGES = ("http.response.pathsend", "http.response.zerocopysend")


def header(scope: Scope, name: str) -> str | None:
    """The first value of request header ``name`` (case-insensitive), or ``None``.

    A convenience for resolvers: ``organization_id=lambda s: header(s, "X-Customer-Id")``.
    """
    wanted = name.lower().encode("latin-1")
    for key, value in scope.get("headers", ()):
        if key.lower() == wanted:
            return bytes(value).decode("latin-1") or None
    return None


class SlaOSMiddleware:
    """Times each HTTP request and logs ``request_finished`` for the resolved organization.

    Streaming responses are timed to their last body chunk. While the app runs,
    ``slaos_logging.organization_id_var`` holds the organization, so every other
    record logged during the request is attributed to it too.

    Args:
        app: The ASGI 3 application to wrap.
        organization_id: A callable taking the ASGI scope and returning (or, if it is
            async, resolving to) the organization id, or ``None`` to leave the request
            unlogged. Without it, every request is logged and ``SlaOSHandler``'s own
            ``organization_id`` applies.
        exclude_paths: Path prefixes (of ``scope["path"]``) that are never logged.
        logger_name: The logger the records go to.
        message: The record's message (what ``SlaOSHandler(events=...)`` matches).
    """

    def __init__(
        self,
        app: ASGIApp,
        organization_id: Callable[[Scope], object] | None = None,
        exclude_paths: Iterable[str] = (),
        logger_name: str = DEFAULT_LOGGER_NAME,
        message: str = DEFAULT_MESSAGE,
    ) -> None:
        self.app = app
        self.core: RequestCore[Scope] = RequestCore(
            organization_id,
            exclude_paths=exclude_paths,
            logger_name=logger_name,
            message=message,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the wrapped app, timing ``http`` requests."""
        kind = scope.get("type")
        if kind == "lifespan":
            await flush_on_shutdown(self.app, scope, receive, send)
            return
        if kind != "http":
            await self.app(scope, receive, send)
            return
        timer = await self._begin(scope)
        if timer is None:
            await self.app(scope, receive, send)
            return

        status: int | None = None
        completed = False

        async def send_and_watch(message: Message) -> None:
            nonlocal status, completed
            kind = message.get("type")
            if kind == "http.response.start":
                status = message.get("status")
            await send(message)
            if (
                kind == "http.response.body" and not message.get("more_body", False)
            ) or kind in _FINAL_MESSAGES:
                timer.mark_end()
                completed = True

        timer.activate()
        try:
            await self.app(scope, receive, send_and_watch)
        except BaseException:
            # Unless the client already had the whole response (a background task
            # failed afterwards), it got an error, whatever status had been started.
            final = status if completed and isinstance(status, int) else 500
            timer.finish(final, _route(scope))
            raise
        finally:
            timer.deactivate()
        # Logged only now, so the route Starlette put in the scope is known; the clock
        # stopped at the last body chunk (background tasks do not count).
        timer.finish(status if isinstance(status, int) else 500, _route(scope))

    async def _begin(self, scope: Scope) -> RequestTimer | None:
        core = self.core
        try:
            if core.excluded(scope.get("path", "")):
                return None
            return await core.abegin(scope, scope.get("method", "GET"))
        except Exception:  # never fail the request for our sake
            return None


class FlushOnShutdown:
    """Flushes every ``SlaOSHandler`` at the ASGI ``lifespan.shutdown``; times nothing.

    For apps timed by other means (Django's middleware). ``SlaOSMiddleware`` does this
    too.

    Args:
        app: The ASGI 3 application to wrap.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass every scope to the app; watch the lifespan one."""
        if scope.get("type") == "lifespan":
            await flush_on_shutdown(self.app, scope, receive, send)
        else:
            await self.app(scope, receive, send)


async def _flush_handlers() -> None:
    # On a worker thread: delivery blocks, and the loop may still have work to finish.
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not asyncio (trio): block, the server is stopping anyway
        _lifecycle.flush_all()
        return
    await loop.run_in_executor(None, _lifecycle.flush_all)


async def flush_on_shutdown(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Run ``app``'s lifespan, flushing every handler before shutdown is confirmed.

    If the app neither receives nor sends a lifespan message (it raised at once, as
    Django does, or returned), the lifespan is answered here instead, so the flush
    still happens when the server stops.
    """
    spoke = False

    async def watch_receive() -> Message:
        nonlocal spoke
        spoke = True
        return await receive()

    async def flush_then_send(message: Message) -> None:
        nonlocal spoke
        spoke = True
        if message.get("type") in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            await _flush_handlers()
        await send(message)

    try:
        await app(scope, watch_receive, flush_then_send)
    except Exception:
        if spoke:
            raise
    if not spoke:
        await _serve_lifespan(receive, send)


async def _serve_lifespan(receive: Receive, send: Send) -> None:
    """The lifespan protocol for an app that does not speak it."""
    while True:
        message = await receive()
        kind = message.get("type")
        if kind == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif kind == "lifespan.shutdown":
            await _flush_handlers()
            await send({"type": "lifespan.shutdown.complete"})
            return


def _route(scope: Scope) -> str | None:
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else None
