"""Review of the framework integrations and logging-library adapters."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import structlog

from .django_support import configure_django

configure_django()

from django.core.handlers.asgi import ASGIHandler  # noqa: E402
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse  # noqa: E402
from django.test import AsyncClient, Client, override_settings  # noqa: E402
from django.urls import path  # noqa: E402
from flask import Flask, Response, stream_with_context  # noqa: E402

from slaos_logging import SlaOSHandler  # noqa: E402
from slaos_logging.integrations.flask import SlaOS  # noqa: E402
from slaos_logging.testing import capture_events  # noqa: E402

from .integration_support import Collect  # noqa: E402


def _failing_chunks() -> Iterator[bytes]:
    yield b"first"
    raise RuntimeError("the stream failed midway")


async def _afailing_chunks() -> AsyncIterator[bytes]:
    yield b"first"
    raise RuntimeError("the stream failed midway")


def _sync_stream(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse(_failing_chunks())


async def _async_stream(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse(_afailing_chunks())


async def _hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse("hello")


async def _org_from_async_lookup(request: HttpRequest) -> str | None:
    """An async resolver, as one reading ``await request.auser()`` is."""
    await asyncio.sleep(0)
    return request.headers.get("X-Customer-Id")


async def _slow_chunks() -> AsyncIterator[bytes]:
    for _ in range(100):
        yield b"chunk"
        await asyncio.sleep(0.1)


async def _slow_stream(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse(_slow_chunks())


urlpatterns = [
    path("sync/", _sync_stream),
    path("async/", _async_stream),
    path("slow/", _slow_stream),
    path("hello/", _hello),
]


@pytest.fixture
def django_app() -> Iterator[None]:
    with override_settings(
        ROOT_URLCONF=__name__,
        MIDDLEWARE=["slaos_logging.integrations.django.SlaOSMiddleware"],
        ALLOWED_HOSTS=["testserver"],
        DEBUG=False,
    ):
        yield


def _statuses(log: Collect) -> list[Any]:
    return [record.status_code for record in log.records]


async def _asgi_get(url: str, leave: bool = False) -> list[dict[str, Any]]:
    """One GET through Django's ASGI handler, as an ASGI server runs it.

    With ``leave``, the client disconnects once the first body chunk is sent.
    """
    pending = [{"type": "http.request", "body": b"", "more_body": False}]
    disconnected = asyncio.Event()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop()
        await asyncio.wait_for(disconnected.wait(), 10)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if leave and message["type"] == "http.response.body":
            disconnected.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": url,
        "raw_path": url.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    if leave:
        await asyncio.wait_for(ASGIHandler()(scope, receive, send), 10)
        return sent
    with pytest.raises(RuntimeError, match="midway"):
        await ASGIHandler()(scope, receive, send)
    disconnected.set()
    return sent


def test_django_wsgi_stream_failing_midway_is_a_500(
    django_app: None, requests_log: Collect
) -> None:
    """A Django stream that raises midway under WSGI is logged once, as a 500, not its 200."""
    response = Client().get("/sync/")
    assert response.status_code == 200
    with pytest.raises(RuntimeError, match="midway"):
        list(response.streaming_content)  # type: ignore[attr-defined]
    response.close()
    assert _statuses(requests_log) == [500]


@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume")
@pytest.mark.parametrize("url", ["/sync/", "/async/"])
def test_django_asgi_stream_failing_midway_is_logged(
    django_app: None, requests_log: Collect, url: str
) -> None:
    """Django's ASGI handler never closes a stream that raised: it is still logged, as a 500."""
    sent = asyncio.run(_asgi_get(url))
    assert sent[0]["status"] == 200
    assert _statuses(requests_log) == [500]


def test_django_asgi_stream_left_by_the_client_is_logged(
    django_app: None, requests_log: Collect
) -> None:
    """A client leaving a Django stream under ASGI (never closed by Django) is logged once."""
    sent = asyncio.run(_asgi_get("/slow/", leave=True))
    assert sent[0]["status"] == 200
    assert len(sent) < 50, "the stream was not cut short by the disconnect"
    assert _statuses(requests_log) == [200]


def test_django_async_stack_awaits_an_async_resolver(
    django_app: None, requests_log: Collect, diagnostics: Collect
) -> None:
    """Under an async Django stack an async resolver is awaited: the request is logged for it."""
    with override_settings(SLAOS_ORGANIZATION_ID=_org_from_async_lookup):
        response = asyncio.run(AsyncClient().get("/hello/", headers={"X-Customer-Id": "acme"}))
    assert response.status_code == 200
    assert [r.organization_id for r in requests_log.records] == ["acme"]
    assert not diagnostics.records


def _flask_app(with_context: bool) -> Flask:
    app = Flask(__name__)
    SlaOS(app)

    @app.get("/stream")
    def stream() -> Response:
        chunks = _failing_chunks()
        return Response(stream_with_context(chunks) if with_context else chunks)

    @app.get("/fine")
    def fine() -> Response:
        return Response(iter_ok())

    def iter_ok() -> Iterator[bytes]:
        yield b"a"
        yield b"b"

    return app


@pytest.mark.parametrize("with_context", [False, True])
def test_flask_stream_failing_midway_is_a_500(requests_log: Collect, with_context: bool) -> None:
    """A Flask stream that raises midway is logged once, as a 500, not the 200 it started."""
    response = _flask_app(with_context).test_client().get("/stream")
    try:
        with pytest.raises(RuntimeError, match="midway"):
            response.get_data()
    finally:
        response.close()
    assert _statuses(requests_log) == [500]


def test_flask_stream_that_ends_keeps_its_status(requests_log: Collect) -> None:
    """A Flask stream that ends normally is logged once with its own status."""
    with _flask_app(False).test_client().get("/fine") as response:
        assert response.get_data() == b"ab"
    assert _statuses(requests_log) == [200]


@pytest.fixture
def new_york_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time five hours behind UTC (a POSIX TZ string: no tz database needed)."""
    monkeypatch.setenv("TZ", "EST+05")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_structlog_zoneless_timestamp_is_not_read_as_local_time(new_york_time: None) -> None:
    """structlog's documented TimeStamper(fmt=...) text (UTC, no zone) does not move the event."""
    stamp = structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S")
    handler = SlaOSHandler(ingestion_id="id", ingestion_key="k", key="rated", organization_id="o")
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(processor=structlog.processors.KeyValueRenderer())
    )
    log = logging.getLogger("review.structlog.tz")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)
    bound = structlog.wrap_logger(
        log,
        processors=[stamp, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    try:
        before = time.time()
        with capture_events() as events:
            bound.info("request_finished", took=0.1)
        after = time.time()
    finally:
        log.removeHandler(handler)
        handler.close()
    (event,) = events
    sent = dt.datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()
    assert int(before) <= sent <= after + 1, (event["timestamp"], before)
