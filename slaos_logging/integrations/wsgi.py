"""WSGI middleware (any PEP 3333 app): one ``request_finished`` record per request.

Usage::

    from slaos_logging.integrations.wsgi import SlaOSMiddleware

    application = SlaOSMiddleware(
        application,
        organization_id=lambda environ: environ.get("HTTP_X_CUSTOMER_ID"),
        exclude_paths=("/health",),
    )

The request is timed until the server closes the response iterable, so streamed bodies
count. A plain WSGI app has no route templates, so ``route`` is never logged (the raw
path could hold ids); use the Django or Flask integration to get it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any

from slaos_logging.integrations._core import (
    DEFAULT_LOGGER_NAME,
    DEFAULT_MESSAGE,
    RequestCore,
    RequestTimer,
)

__all__ = ["SlaOSMiddleware"]

Environ = dict[str, Any]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]


class SlaOSMiddleware:
    """Times each request and logs ``request_finished`` for the resolved organization.

    ``slaos_logging.organization_id_var`` holds the organization while the app runs and
    while the server consumes and closes the response.

    Args:
        app: The WSGI application to wrap.
        organization_id: A callable taking the WSGI environ and returning the
            organization id, or ``None`` to leave the request unlogged. Without it,
            every request is logged and ``SlaOSHandler``'s own ``organization_id`` applies.
        exclude_paths: Path prefixes (of ``PATH_INFO``) that are never logged.
        logger_name: The logger the records go to.
        message: The record's message (what ``SlaOSHandler(events=...)`` matches).
    """

    def __init__(
        self,
        app: WSGIApp,
        organization_id: Callable[[Environ], object] | None = None,
        exclude_paths: Iterable[str] = (),
        logger_name: str = DEFAULT_LOGGER_NAME,
        message: str = DEFAULT_MESSAGE,
    ) -> None:
        self.app = app
        self.core: RequestCore[Environ] = RequestCore(
            organization_id,
            exclude_paths=exclude_paths,
            logger_name=logger_name,
            message=message,
        )

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Run the wrapped app and return its response, wrapped to time it."""
        try:
            if self.core.excluded(environ.get("PATH_INFO", "")):
                timer = None
            else:
                timer = self.core.begin(environ, environ.get("REQUEST_METHOD", "GET"))
        except Exception:  # never fail the request for our sake
            timer = None
        if timer is None:
            return self.app(environ, start_response)
        response = _TimedResponse(timer, start_response)
        timer.activate()
        try:
            response.result = self.app(environ, response.start_response)
        except BaseException:
            timer.finish(500)
            raise
        finally:
            timer.deactivate()
        return response


class _TimedResponse:
    """The app's response iterable, with the organization set around each step."""

    def __init__(self, timer: RequestTimer, start_response: StartResponse) -> None:
        self._timer = timer
        self._start_response = start_response
        self.result: Iterable[bytes] = ()
        self._iterator: Iterator[bytes] | None = None
        self._status: int | None = None
        self._failed = False

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], object]:
        try:
            self._status = int(status.split(None, 1)[0])
        except (ValueError, IndexError, AttributeError):
            self._status = None
        if exc_info is None:
            return self._start_response(status, headers)
        return self._start_response(status, headers, exc_info)

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        self._timer.activate()
        try:
            if self._iterator is None:
                self._iterator = iter(self.result)
            return next(self._iterator)
        except StopIteration:
            raise
        except BaseException:
            self._failed = True
            self._timer.finish(500)
            raise
        finally:
            self._timer.deactivate()

    def close(self) -> None:
        """Close the app's response (PEP 3333), then log the request."""
        timer = self._timer
        timer.activate()
        try:
            close = getattr(self.result, "close", None)
            if close is not None:
                close()
        except BaseException:
            self._failed = True
            raise
        finally:
            status = self._status
            timer.finish(500 if self._failed or status is None else status)
            timer.deactivate()
