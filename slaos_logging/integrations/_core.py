"""What every framework integration shares: resolve, time and log one request.

A framework module turns its request into three calls: ``RequestCore.excluded(path)``,
``RequestCore.begin(...)`` (which resolves the organization) and, once the response is
done, ``RequestTimer.finish(status, route)``. In between it calls ``activate`` and
``deactivate`` so that every record logged while the request runs is attributed to the
request's organization through ``organization_id_var``.

Nothing here may raise into the application: a failing resolver is reported once per
exception type and the request goes unlogged; a failing logging call is swallowed.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from slaos_logging._context import organization_id_var
from slaos_logging._diagnostics import Reporter

__all__ = [
    "DEFAULT_LOGGER_NAME",
    "DEFAULT_MESSAGE",
    "RequestCore",
    "RequestTimer",
    "awatch_chunks",
    "watch_chunks",
]

#: Deliberately outside ``slaos_logging*``: ``SlaOSHandler`` drops records from there.
DEFAULT_LOGGER_NAME = "slaos.requests"
DEFAULT_MESSAGE = "request_finished"

T = TypeVar("T")


class RequestTimer:
    """One request in flight: its organization, start time and (later) its outcome.

    Attributes:
        organization_id: The resolved organization, or ``None`` when no resolver is
            configured (the handler's own default organization then applies).
        method: The HTTP method.
        started: ``time.perf_counter()`` when the request began.
    """

    __slots__ = ("_core", "_done", "_ended", "_token", "method", "organization_id", "started")

    def __init__(self, core: RequestCore[Any], organization_id: str | None, method: str) -> None:
        self._core = core
        self.organization_id = organization_id
        self.method = method
        self.started = time.perf_counter()
        self._ended: float | None = None
        self._token: contextvars.Token[str | None] | None = None
        self._done = False

    @property
    def done(self) -> bool:
        """Whether ``finish`` already logged this request."""
        return self._done

    def activate(self) -> None:
        """Make this request's organization the current one (``organization_id_var``)."""
        if self.organization_id is not None and self._token is None:
            self._token = organization_id_var.set(self.organization_id)

    def deactivate(self) -> None:
        """Restore the organization that was current before ``activate``."""
        token, self._token = self._token, None
        if token is None:
            return
        try:
            organization_id_var.reset(token)
        except ValueError:
            # The token belongs to another Context (a server that finished the response
            # elsewhere); clearing is the closest safe equivalent.
            organization_id_var.set(None)

    def mark_end(self) -> None:
        """Stop the clock now; ``finish`` may log later (e.g. once the app has returned)."""
        if self._ended is None:
            self._ended = time.perf_counter()

    def finish(self, status: int, route: str | None = None) -> None:
        """Log the request once; later calls do nothing.

        Args:
            status: The HTTP status the client got (500 for an escaped exception).
            route: The route template, or ``None`` when the framework does not know it.
        """
        if self._done:
            return
        self._done = True
        ended = self._ended if self._ended is not None else time.perf_counter()
        self._core.emit(self.organization_id, status, ended - self.started, self.method, route)


class RequestCore(Generic[T]):
    """Per-middleware configuration plus the logging of finished requests.

    Args:
        organization_id: A callable taking the framework's request object (``T``) and
            returning the organization id, or ``None`` to leave the request unlogged.
            When the resolver itself is ``None``, every request is logged without an
            ``organization_id`` and ``SlaOSHandler`` applies its default organization.
        exclude_paths: Path prefixes that are never logged (health checks, metrics).
        logger_name: The logger the ``request_finished`` records go to.
        message: The record's message (what ``SlaOSHandler(events=...)`` matches).
    """

    def __init__(
        self,
        organization_id: Callable[[T], object] | None = None,
        *,
        exclude_paths: Iterable[str] = (),
        logger_name: str = DEFAULT_LOGGER_NAME,
        message: str = DEFAULT_MESSAGE,
    ) -> None:
        if isinstance(exclude_paths, str):
            # A lone string would otherwise be split into one-character prefixes.
            exclude_paths = (exclude_paths,)
        self.resolver = organization_id
        # A tuple lets one ``str.startswith`` call test every prefix, with no regex.
        self.exclude_paths: tuple[str, ...] = tuple(p for p in exclude_paths if p)
        self.logger = logging.getLogger(logger_name)
        self.message = message
        self._reporter = Reporter(secrets=())

    def excluded(self, path: str) -> bool:
        """Whether ``path`` starts with one of the excluded prefixes."""
        return bool(self.exclude_paths) and path.startswith(self.exclude_paths)

    def begin(self, request: T, method: str) -> RequestTimer | None:
        """Resolve the organization and start the clock; ``None`` means "do not log".

        Args:
            request: What the resolver takes (Django request, scope, environ, ...).
            method: The HTTP method.
        """
        if self.resolver is None:
            return self.timer(None, method)
        try:
            org = self.resolver(request)
        except Exception as exc:  # the app must never see our resolver fail
            self.resolver_failed(exc)
            return None
        return self.accept(org, method)

    async def abegin(self, request: T, method: str) -> RequestTimer | None:
        """``begin`` on an async stack: the resolver may also be ``async``."""
        if self.resolver is None:
            return self.timer(None, method)
        try:
            org = self.resolver(request)
            if inspect.isawaitable(org):
                org = await org
        except Exception as exc:  # the app must never see our resolver fail
            self.resolver_failed(exc)
            return None
        return self.accept(org, method)

    def accept(self, org: object, method: str) -> RequestTimer | None:
        """Start timing a request whose resolver already returned ``org``."""
        if org is None or org == "":
            return None
        if inspect.isawaitable(org):
            if inspect.iscoroutine(org):
                org.close()  # no "never awaited" warning on top of ours
            self.resolver_failed(TypeError("an async resolver needs an async stack"))
            return None
        return self.timer(org if isinstance(org, str) else str(org), method)

    def timer(self, org: str | None, method: str) -> RequestTimer:
        """Start timing a request for ``org`` (``None``: the handler's default)."""
        return RequestTimer(self, org, method)

    def resolver_failed(self, exc: BaseException) -> None:
        """Report a failing resolver once per exception type (no traceback)."""
        kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
        self._reporter.once(
            kind,
            logging.WARNING,
            "slaOS organization resolver raised %s (%s); such requests are not logged",
            kind,
            _short(exc),
        )

    def emit(
        self, org: str | None, status: int, took: float, method: str, route: str | None
    ) -> None:
        """Log one ``request_finished`` record; never raises."""
        try:
            if not self.logger.isEnabledFor(logging.INFO):
                return
            extra: dict[str, object] = {"status_code": status, "took": took, "method": method}
            if org is not None:
                extra["organization_id"] = org
            if route:
                extra["route"] = route
            self.logger.info(self.message, extra=extra)
        except Exception:  # a logging failure must not fail the request
            pass


def watch_chunks(
    chunks: Iterable[T], failed: Callable[[], None], stopped: Callable[[], None]
) -> Iterator[T]:
    """Yield a streamed body's chunks, telling how a stream that does not end ended.

    A stream whose iterator raises midway sent the client a truncated body: that is a
    server error whatever status was started, and some servers (Django's ASGI handler)
    never close such a response, so the request must be logged here.

    Args:
        chunks: The body's iterable.
        failed: Called once if the iterable raises (the request failed: a 500).
        stopped: Called once if the stream is closed or cancelled before its end (the
            client went away): log it as the server's ``close()`` would have.
    """
    try:
        yield from chunks
    except Exception:
        failed()
        raise
    except BaseException:  # GeneratorExit: closed early
        stopped()
        raise


async def awatch_chunks(
    chunks: AsyncIterable[T], failed: Callable[[], None], stopped: Callable[[], None]
) -> AsyncIterator[T]:
    """``watch_chunks`` for an asynchronous body (a cancelled stream counts as stopped)."""
    iterator = aiter(chunks)
    try:
        async for chunk in iterator:
            yield chunk
    except Exception:
        failed()
        raise
    except BaseException:  # GeneratorExit or CancelledError: closed early
        stopped()
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()  # ``async for`` does not close what it iterates
        raise


def _short(exc: BaseException, limit: int = 200) -> str:
    try:
        text = str(exc)
    except Exception:  # a broken __str__ must not escape either
        return "<unprintable>"
    return text if len(text) <= limit else text[:limit] + "..."
