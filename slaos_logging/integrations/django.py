"""Django middleware: one ``request_finished`` record per request.

Add it near the top of ``MIDDLEWARE`` (after ``AuthenticationMiddleware`` if the
resolver reads ``request.user``)::

    MIDDLEWARE = [
        ...,
        "slaos_logging.integrations.django.SlaOSMiddleware",
    ]
    SLAOS_ORGANIZATION_ID = "myproject.slaos.organization_id"  # (request) -> str | None
    SLAOS_EXCLUDE_PATHS = ["/health", "/static/"]

Settings (all optional):

- ``SLAOS_ORGANIZATION_ID``: dotted path to (or the) callable taking the request and
  returning the organization id, or ``None`` to leave the request unlogged. Without it,
  every request is logged and ``SlaOSHandler``'s own ``organization_id`` applies.
- ``SLAOS_EXCLUDE_PATHS``: path prefixes (of ``request.path_info``) never logged.
- ``SLAOS_REQUEST_LOGGER``: logger name, default ``"slaos.requests"``.
- ``SLAOS_REQUEST_MESSAGE``: the record's message (what ``events=`` matches), default
  ``"request_finished"``.

Streaming responses (``StreamingHttpResponse``, ``FileResponse``) are timed to their
last chunk: the record is logged when the server closes the response.

The middleware runs natively in both sync and async stacks. In an async stack the
resolver is called on the event loop, so it must not query the database synchronously:
read a header or a value an earlier middleware put on the request, or make it
``async`` (``user = await request.auser()``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponseBase
from django.utils.module_loading import import_string

from slaos_logging.integrations._core import (
    DEFAULT_LOGGER_NAME,
    DEFAULT_MESSAGE,
    RequestCore,
    RequestTimer,
    awatch_chunks,
    watch_chunks,
)

__all__ = ["SlaOSMiddleware", "route_of"]

_Sync = Callable[[HttpRequest], HttpResponseBase]
_Async = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


def route_of(request: HttpRequest) -> str | None:
    """The matched URL pattern with a leading ``/`` (``/items/<int:pk>/``), if any.

    ``None`` when no pattern matched (Django's own 404), so no raw path is ever logged.
    """
    match = getattr(request, "resolver_match", None)
    route = getattr(match, "route", None) if match is not None else None
    if not isinstance(route, str):
        return None
    # re_path() patterns carry regex anchors; they say nothing about the route.
    if route.startswith("^"):
        route = route[1:]
    if route.endswith("$"):
        route = route[:-1]
    return route if route.startswith("/") else "/" + route


def _load_resolver() -> Callable[[HttpRequest], object] | None:
    value: Any = getattr(settings, "SLAOS_ORGANIZATION_ID", None)
    if value is None or callable(value):
        return value  # type: ignore[no-any-return]
    if not isinstance(value, str):
        raise ImproperlyConfigured("SLAOS_ORGANIZATION_ID must be a dotted path or a callable")
    try:
        resolver = import_string(value)
    except ImportError as exc:
        raise ImproperlyConfigured(f"SLAOS_ORGANIZATION_ID: cannot import {value!r}") from exc
    if not callable(resolver):
        raise ImproperlyConfigured(f"SLAOS_ORGANIZATION_ID: {value!r} is not callable")
    return resolver  # type: ignore[no-any-return]


class SlaOSMiddleware:
    """Times each request and logs ``request_finished`` for the resolved organization.

    While the view runs, ``slaos_logging.organization_id_var`` holds the organization,
    so every other record logged during the request is attributed to it too.

    Args:
        get_response: The next middleware or view, sync or async (Django passes it).
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: _Sync | _Async) -> None:
        self.get_response = get_response
        # Settings are read once: the middleware is built once per handler.
        self.core: RequestCore[HttpRequest] = RequestCore(
            _load_resolver(),
            exclude_paths=getattr(settings, "SLAOS_EXCLUDE_PATHS", None) or (),
            logger_name=getattr(settings, "SLAOS_REQUEST_LOGGER", DEFAULT_LOGGER_NAME),
            message=getattr(settings, "SLAOS_REQUEST_MESSAGE", DEFAULT_MESSAGE),
        )
        self._is_async = iscoroutinefunction(get_response)
        if self._is_async:
            # Tells Django this instance is a coroutine function, so an async stack
            # is not forced through a sync_to_async/async_to_sync round trip.
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        """Handle one request (returns a coroutine in an async stack)."""
        if self._is_async:
            return self.__acall__(request)
        timer = self._begin(request)
        if timer is None:
            return self.get_response(request)
        timer.activate()
        try:
            response = self.get_response(request)
        except BaseException:
            timer.finish(500, route_of(request))
            raise
        finally:
            timer.deactivate()
        self._finish(timer, request, response)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        """Handle one request in an async stack."""
        get_response = cast(_Async, self.get_response)
        timer = await self._abegin(request)
        if timer is None:
            return await get_response(request)
        timer.activate()
        try:
            response = await get_response(request)
        except BaseException:
            timer.finish(500, route_of(request))
            raise
        finally:
            timer.deactivate()
        self._finish(timer, request, response)
        return response

    def _begin(self, request: HttpRequest) -> RequestTimer | None:
        try:
            if self.core.excluded(request.path_info):
                return None
            return self.core.begin(request, request.method or "GET")
        except Exception:  # never fail the request for our sake
            return None

    async def _abegin(self, request: HttpRequest) -> RequestTimer | None:
        try:
            if self.core.excluded(request.path_info):
                return None
            return await self.core.abegin(request, request.method or "GET")
        except Exception:  # never fail the request for our sake
            return None

    @staticmethod
    def _finish(timer: RequestTimer, request: HttpRequest, response: HttpResponseBase) -> None:
        # Django turns a view's exception into a 500 response before it reaches us, so
        # the response's status is already what the client gets.
        try:
            status = int(response.status_code)
        except Exception:  # a broken response object is a server error
            status = 500
        route = route_of(request)
        if getattr(response, "streaming", False):
            # Timed to the last chunk: the server (WSGI or Django's ASGI handler) calls
            # close() once the body is sent.
            _finish_at_close(response, timer, status, route)
            return
        timer.finish(status, route)


def _finish_at_close(
    response: HttpResponseBase, timer: RequestTimer, status: int, route: str | None
) -> None:
    close = response.close

    # A body that fails midway is a 500, and Django's ASGI handler never closes a
    # response whose stream raised or was cancelled: log those where they happen.
    # (A FileResponse served by the server's file wrapper keeps its file: timed at close.)
    if getattr(response, "file_to_stream", None) is None:
        try:
            _watch_stream(response, timer, status, route)
        except Exception:  # an exotic response: its status is then the one started
            pass

    def close_and_finish() -> None:
        try:
            close()
        finally:
            timer.finish(status, route)

    try:
        response.close = close_and_finish  # type: ignore[method-assign]
    except Exception:  # an exotic response: time it to the view's return instead
        timer.finish(status, route)


def _watch_stream(
    response: HttpResponseBase, timer: RequestTimer, status: int, route: str | None
) -> None:
    def failed() -> None:
        timer.finish(500, route)

    def stopped() -> None:
        timer.finish(status, route)

    content: Any = response.streaming_content  # type: ignore[attr-defined]
    if getattr(response, "is_async", False):
        content = awatch_chunks(content, failed, stopped)
    else:
        content = watch_chunks(content, failed, stopped)
    response.streaming_content = content  # type: ignore[attr-defined]
