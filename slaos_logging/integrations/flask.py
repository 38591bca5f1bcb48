"""Flask extension: one ``request_finished`` record per request.

Usage::

    from flask import Flask, request
    from slaos_logging.integrations.flask import SlaOS

    app = Flask(__name__)
    SlaOS(app, organization_id=lambda: request.headers.get("X-Customer-Id"))

or, with an application factory, ``slaos = SlaOS(organization_id=...)`` at import time
and ``slaos.init_app(app)`` in the factory. Responses streamed from a generator are timed
to their last chunk (the record is logged when the server closes the body).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterable

from flask import Flask, Response, g, request

from slaos_logging.integrations._core import (
    DEFAULT_LOGGER_NAME,
    DEFAULT_MESSAGE,
    RequestCore,
    RequestTimer,
    watch_chunks,
)

__all__ = ["SlaOS"]

_TIMER = "_slaos_timer"
_STARTED = "_slaos_started"
_STATUS = "_slaos_status"
_STREAMING = "_slaos_streaming"


class SlaOS:
    """Times each request and logs ``request_finished`` for the resolved organization.

    While the request runs, ``slaos_logging.organization_id_var`` holds the organization,
    so every other record logged during the request is attributed to it too.

    Args:
        app: The application, or ``None`` to call ``init_app`` later.
        organization_id: A callable with no arguments, run inside the request context
            (it reads ``flask.request`` or ``flask.g``), returning the organization id,
            or ``None`` to leave the request unlogged. It runs before the app's own
            ``before_request`` hooks; if it answers ``None`` there, it is asked again
            when the request ends, so an organization those hooks put on ``g`` is still
            logged (though ``organization_id_var`` is then not set during the view).
            Without a resolver, every request is logged and ``SlaOSHandler``'s own
            ``organization_id`` applies.
        exclude_paths: Path prefixes (of ``request.path``) that are never logged.
        logger_name: The logger the records go to.
        message: The record's message (what ``SlaOSHandler(events=...)`` matches).
    """

    def __init__(
        self,
        app: Flask | None = None,
        organization_id: Callable[[], object] | None = None,
        exclude_paths: Iterable[str] = (),
        logger_name: str = DEFAULT_LOGGER_NAME,
        message: str = DEFAULT_MESSAGE,
    ) -> None:
        self.organization_id = organization_id
        self.exclude_paths: tuple[str, ...] = (
            (exclude_paths,) if isinstance(exclude_paths, str) else tuple(exclude_paths)
        )
        self.logger_name = logger_name
        self.message = message
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Install the request hooks on ``app`` (state goes to ``app.extensions["slaos"]``)."""
        resolver = self.organization_id
        core: RequestCore[None] = RequestCore(
            None if resolver is None else (lambda _: resolver()),
            exclude_paths=self.exclude_paths,
            logger_name=self.logger_name,
            message=self.message,
        )
        app.extensions["slaos"] = core

        def start_timer() -> None:
            try:
                if core.excluded(request.path):
                    return
                setattr(g, _STARTED, time.perf_counter())
                timer = core.begin(None, request.method)
            except Exception:  # never fail the request for our sake
                return
            if timer is not None:
                setattr(g, _TIMER, timer)
                timer.activate()

        def resolve_late() -> RequestTimer | None:
            timer: RequestTimer | None = g.get(_TIMER)
            started: float | None = g.get(_STARTED)
            if timer is None and started is not None:
                # The resolver may read what the app's own before_request hooks (which
                # run after ours) put on ``g``: ask again now that they have run.
                timer = core.begin(None, request.method)
                if timer is not None:
                    timer.started = started
                    setattr(g, _TIMER, timer)
            return timer

        def note_status(response: Response) -> Response:
            if _STARTED not in g:
                return response
            setattr(g, _STATUS, response.status_code)
            # A body produced by a generator (a streamed view, stream_with_context).
            # Not is_streamed: error pages are wrapped iterators with a finished body.
            if inspect.isgenerator(response.response):
                try:
                    timer = resolve_late()
                except Exception:  # never fail the request for our sake
                    timer = None
                if timer is not None:
                    # Timed to the last chunk: werkzeug calls this when the server
                    # closes the body.
                    rule = request.url_rule
                    status, route = response.status_code, rule.rule if rule else None
                    # A body that raises midway is a 500 (the client got a truncated one).
                    body: Iterable[bytes] = response.response  # type: ignore[assignment]
                    response.response = watch_chunks(
                        body,
                        lambda: timer.finish(500, route),
                        lambda: timer.finish(status, route),
                    )
                    response.call_on_close(lambda: timer.finish(status, route))
                    setattr(g, _STREAMING, True)
            return response

        def log_request(exc: BaseException | None) -> None:
            timer = resolve_late()
            g.pop(_TIMER, None)
            g.pop(_STARTED, None)
            status: int = g.pop(_STATUS, 500)
            streaming = g.pop(_STREAMING, False)
            if timer is None:
                return
            try:
                if streaming and exc is None:
                    return  # logged when the body is closed
                # Teardown sees only exceptions no error handler turned into a response.
                rule = request.url_rule
                timer.finish(500 if exc is not None else status, rule.rule if rule else None)
            finally:
                timer.deactivate()

        # First before_request and last after_request: the timing spans the other hooks,
        # and the status is the one the client finally gets.
        app.before_request_funcs.setdefault(None, []).insert(0, start_timer)
        app.after_request_funcs.setdefault(None, []).insert(0, note_status)
        app.teardown_request(log_request)
