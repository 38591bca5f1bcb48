"""The WSGI middleware, called the way a PEP 3333 server calls an app."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest

from slaos_logging import SlaOSHandler
from slaos_logging._context import organization_id_var
from slaos_logging.integrations.wsgi import Environ, SlaOSMiddleware, StartResponse

from .integration_support import Collect, received, shipping
from .server import RecordingServer


def org_from_header(environ: Environ) -> str | None:
    """Resolve the organization from the X-Customer-Id header."""
    return environ.get("HTTP_X_CUSTOMER_ID")


def environ_for(path: str, org: str | None = "acme", method: str = "GET") -> Environ:
    environ: Environ = {"PATH_INFO": path, "REQUEST_METHOD": method}
    if org is not None:
        environ["HTTP_X_CUSTOMER_ID"] = org
    setup_testing_defaults(environ)
    return environ


class Served:
    """What a server saw: the status line and the body."""

    def __init__(self) -> None:
        self.status = ""
        self.body = b""


def serve(app: Callable[[Environ, StartResponse], Iterable[bytes]], environ: Environ) -> Served:
    """Call the app, consume the body and close it, as a WSGI server does."""
    served = Served()

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        served.status = status
        return lambda data: None

    result = app(environ, start_response)
    try:
        served.body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return served


def hello(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"org={organization_id_var.get()}".encode()]


def not_found(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no"]


def slow(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    time.sleep(0.05)
    start_response("200 OK", [])
    return [b"slow"]


def boom(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    raise RuntimeError("app failed")


def wrap(
    app: Callable[[Environ, StartResponse], Iterable[bytes]], **options: Any
) -> SlaOSMiddleware:
    options.setdefault("organization_id", org_from_header)
    return SlaOSMiddleware(app, **options)


def test_request_logged_without_route(requests_log: Collect) -> None:
    """A 200 is logged with org, status and method; a plain WSGI app has no route."""
    served = serve(wrap(hello), environ_for("/items/42", method="POST"))
    assert served.status == "200 OK"
    (record,) = requests_log.records
    assert record.getMessage() == "request_finished"
    assert record.organization_id == "acme"  # type: ignore[attr-defined]
    assert record.status_code == 200  # type: ignore[attr-defined]
    assert record.method == "POST"  # type: ignore[attr-defined]
    assert not hasattr(record, "route")


def test_404_status_from_start_response(requests_log: Collect) -> None:
    """The status comes from the app's start_response call."""
    serve(wrap(not_found), environ_for("/x"))
    assert requests_log.records[0].status_code == 404  # type: ignore[attr-defined]


def test_took_covers_the_app(requests_log: Collect) -> None:
    """An app that waits 50 ms is reported as taking at least that long."""
    serve(wrap(slow), environ_for("/slow"))
    took = requests_log.records[0].took  # type: ignore[attr-defined]
    assert isinstance(took, float) and 0.05 <= took < 5


def test_exception_logged_as_500_and_reraised(requests_log: Collect) -> None:
    """An exception raised by the app is logged as 500 and re-raised, org reset."""
    with pytest.raises(RuntimeError, match="app failed"):
        wrap(boom)(environ_for("/boom"), lambda *a: lambda d: None)
    assert requests_log.records[0].status_code == 500  # type: ignore[attr-defined]
    assert organization_id_var.get() is None


def test_exception_while_iterating_logged_once_as_500(requests_log: Collect) -> None:
    """A body generator that fails after start_response is a 500, logged once."""

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"first"
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        serve(wrap(app), environ_for("/gen"))
    assert [r.status_code for r in requests_log.records] == [500]  # type: ignore[attr-defined]


def test_timed_to_close_and_close_propagated(requests_log: Collect) -> None:
    """The original close() is called, in the org context, and the record comes after it."""
    events: list[str] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            events.append(f"iter org={organization_id_var.get()}")
            yield b"a"
            yield b"b"

        def close(self) -> None:
            events.append(
                f"close org={organization_id_var.get()} logged={len(requests_log.records)}"
            )
            time.sleep(0.05)

    def app(environ: Environ, start_response: StartResponse) -> Body:
        start_response("200 OK", [])
        return Body()

    served = serve(wrap(app), environ_for("/body", org="globex"))
    assert served.body == b"ab"
    assert events == ["iter org=globex", "close org=globex logged=0"]
    assert requests_log.records[0].took >= 0.05  # type: ignore[attr-defined]
    assert organization_id_var.get() is None


def test_generator_start_response_inside_iteration(requests_log: Collect) -> None:
    """Apps that call start_response lazily from their generator still report the status."""

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("201 Created", [])
        yield f"org={organization_id_var.get()}".encode()

    served = serve(wrap(app), environ_for("/lazy"))
    assert served.body == b"org=acme"
    assert requests_log.records[0].status_code == 201  # type: ignore[attr-defined]


def test_org_context_var_set_while_app_runs(requests_log: Collect) -> None:
    """The app sees the organization; it is cleared afterwards."""
    assert serve(wrap(hello), environ_for("/h", org="initech")).body == b"org=initech"
    assert organization_id_var.get() is None


def test_no_organization_means_no_record(requests_log: Collect) -> None:
    """A request the resolver cannot attribute passes through unlogged and unwrapped."""
    assert serve(wrap(hello), environ_for("/h", org=None)).body == b"org=None"
    assert requests_log.records == []


def test_raising_resolver_warns_once(requests_log: Collect, diagnostics: Collect) -> None:
    """A raising resolver: requests succeed unlogged, with one warning for the failure."""

    def broken(environ: Environ) -> str:
        raise LookupError("no tenant table")

    app = wrap(hello, organization_id=broken)
    assert serve(app, environ_for("/a")).status == "200 OK"
    assert serve(app, environ_for("/b")).status == "200 OK"
    assert requests_log.records == []
    warnings = [r for r in diagnostics.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "LookupError" in warnings[0].getMessage()


def test_excluded_path_not_logged(requests_log: Collect) -> None:
    """Excluded prefixes are never logged."""
    serve(wrap(hello, exclude_paths=["/health"]), environ_for("/health/live"))
    assert requests_log.records == []


def test_end_to_end_to_a_real_server(
    server: RecordingServer, make_handler: Callable[..., SlaOSHandler]
) -> None:
    """With a real SlaOSHandler, the request arrives as an event without a route."""
    handler = make_handler(flush_interval=0.05)
    with shipping(handler):
        assert serve(wrap(not_found), environ_for("/items/42")).status == "404 Not Found"
        assert handler.flush(5)
    (event,) = received(server, 1)
    assert event["organization_id"] == "acme"
    assert event["key"] == "rated_api"
    assert event["values"]["status_code"] == 404
    assert event["values"]["method"] == "GET"
    assert 0 < event["values"]["took"] < 5
    assert "route" not in event["values"]
