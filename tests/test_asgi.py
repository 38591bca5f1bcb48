"""The ASGI middleware, through Starlette's TestClient (FastAPI and plain Starlette)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

from slaos_logging import SlaOSHandler
from slaos_logging._context import organization_id_var
from slaos_logging.integrations.asgi import Scope, SlaOSMiddleware, header

from .integration_support import Collect, attach, received, shipping
from .server import RecordingServer


@pytest.fixture
def app_log() -> Iterator[Collect]:
    yield from attach("test.asgi.view")


def org_from_header(scope: Scope) -> str | None:
    """Resolve the organization from the X-Customer-Id header."""
    return header(scope, "X-Customer-Id")


ACME = {"X-Customer-Id": "acme"}


def make_fastapi(**options: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, object]:
        logging.getLogger("test.asgi.view").info("inside the endpoint")
        return {"id": item_id, "org": organization_id_var.get()}

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        await asyncio.sleep(0.05)
        return {"ok": "slow"}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("endpoint failed")

    @app.get("/health")
    async def health() -> str:
        return "ok"

    options.setdefault("organization_id", org_from_header)
    app.add_middleware(SlaOSMiddleware, exclude_paths=["/health"], **options)
    return app


async def chunks() -> AsyncIterator[bytes]:
    yield b"one,"
    await asyncio.sleep(0.05)
    yield b"two,"
    await asyncio.sleep(0.05)
    yield b"three"


async def stream(request: Request) -> StreamingResponse:
    return StreamingResponse(chunks(), media_type="text/plain")


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("echo:" + await websocket.receive_text())
    await websocket.close()


def fail_later() -> None:
    raise RuntimeError("background task failed")


async def with_background(request: Request) -> PlainTextResponse:
    return PlainTextResponse("done", background=BackgroundTask(fail_later))


async def user(request: Request) -> JSONResponse:
    return JSONResponse({"name": request.path_params["name"]})


def make_starlette(lifespan_log: list[str] | None = None, **options: Any) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if lifespan_log is not None:
            lifespan_log.append("startup")
        yield
        if lifespan_log is not None:
            lifespan_log.append("shutdown")

    app = Starlette(
        routes=[
            Route("/stream", stream),
            Route("/users/{name}", user),
            Route("/background", with_background),
            WebSocketRoute("/ws", echo),
        ],
        lifespan=lifespan,
    )
    options.setdefault("organization_id", org_from_header)
    app.add_middleware(SlaOSMiddleware, **options)
    return app


def test_fastapi_request_logged_with_route_template(requests_log: Collect) -> None:
    """A 200 on /items/42 is logged with org, method and /items/{item_id}."""
    response = TestClient(make_fastapi()).get("/items/42", headers=ACME)
    assert response.status_code == 200
    (record,) = requests_log.records
    assert record.getMessage() == "request_finished"
    assert record.organization_id == "acme"  # type: ignore[attr-defined]
    assert record.status_code == 200  # type: ignore[attr-defined]
    assert record.method == "GET"  # type: ignore[attr-defined]
    assert record.route == "/items/{item_id}"  # type: ignore[attr-defined]


def test_starlette_route_template(requests_log: Collect) -> None:
    """Plain Starlette routes give their template too."""
    TestClient(make_starlette()).get("/users/bob", headers=ACME)
    assert requests_log.records[0].route == "/users/{name}"  # type: ignore[attr-defined]


def test_took_covers_the_endpoint(requests_log: Collect) -> None:
    """An endpoint that waits 50 ms is reported as taking at least that long."""
    TestClient(make_fastapi()).get("/slow", headers=ACME)
    took = requests_log.records[0].took  # type: ignore[attr-defined]
    assert isinstance(took, float) and 0.05 <= took < 5


def test_unrouted_404_has_no_route(requests_log: Collect) -> None:
    """A path no route matches is logged as 404 without a route."""
    assert TestClient(make_fastapi()).get("/nope/1", headers=ACME).status_code == 404
    (record,) = requests_log.records
    assert record.status_code == 404  # type: ignore[attr-defined]
    assert not hasattr(record, "route")


def test_exception_logged_as_500_and_reraised(requests_log: Collect) -> None:
    """An exception before the response starts is logged as 500 and re-raised."""
    with pytest.raises(RuntimeError, match="endpoint failed"):
        TestClient(make_fastapi()).get("/boom", headers=ACME)
    (record,) = requests_log.records
    assert record.status_code == 500  # type: ignore[attr-defined]
    assert record.route == "/boom"  # type: ignore[attr-defined]


def test_exception_returns_500(requests_log: Collect) -> None:
    """The client gets Starlette's 500, and the record says 500."""
    client = TestClient(make_fastapi(), raise_server_exceptions=False)
    assert client.get("/boom", headers=ACME).status_code == 500
    assert requests_log.records[0].status_code == 500  # type: ignore[attr-defined]


def test_streaming_timed_to_last_chunk(requests_log: Collect) -> None:
    """A streamed body that pauses twice for 50 ms takes at least 100 ms."""
    response = TestClient(make_starlette()).get("/stream", headers=ACME)
    assert response.text == "one,two,three"
    (record,) = requests_log.records
    assert record.took >= 0.1  # type: ignore[attr-defined]
    assert record.route == "/stream"  # type: ignore[attr-defined]


def test_background_task_failure_keeps_sent_status(requests_log: Collect) -> None:
    """A failure after the response was fully sent does not turn a 200 into a 500."""
    client = TestClient(make_starlette(), raise_server_exceptions=False)
    assert client.get("/background", headers=ACME).text == "done"
    assert [r.status_code for r in requests_log.records] == [200]  # type: ignore[attr-defined]


def test_no_organization_means_no_record(requests_log: Collect) -> None:
    """A request the resolver cannot attribute is not logged."""
    assert TestClient(make_fastapi()).get("/items/1").status_code == 200
    assert requests_log.records == []


def test_async_resolver(requests_log: Collect) -> None:
    """An async resolver is awaited."""

    async def resolver(scope: Scope) -> str:
        return "async-org"

    TestClient(make_fastapi(organization_id=resolver)).get("/items/1")
    assert requests_log.records[0].organization_id == "async-org"  # type: ignore[attr-defined]


def test_raising_resolver_warns_once(requests_log: Collect, diagnostics: Collect) -> None:
    """A raising resolver: requests succeed unlogged, with one warning for the failure."""

    def broken(scope: Scope) -> str:
        raise LookupError("no tenant table")

    client = TestClient(make_fastapi(organization_id=broken))
    assert client.get("/items/1", headers=ACME).status_code == 200
    assert client.get("/items/2", headers=ACME).status_code == 200
    assert requests_log.records == []
    warnings = [r for r in diagnostics.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "LookupError" in warnings[0].getMessage()


def test_excluded_path_not_logged(requests_log: Collect) -> None:
    """Excluded prefixes are never logged."""
    assert TestClient(make_fastapi()).get("/health", headers=ACME).status_code == 200
    assert requests_log.records == []


def test_org_context_var_inside_endpoint(requests_log: Collect, app_log: Collect) -> None:
    """Log lines in the endpoint see the request's organization."""
    response = TestClient(make_fastapi()).get("/items/5", headers={"X-Customer-Id": "globex"})
    assert response.json()["org"] == "globex"
    assert app_log.orgs == ["globex"]


@pytest.mark.parametrize("fail", [False, True])
def test_org_context_var_reset_afterwards(requests_log: Collect, fail: bool) -> None:
    """After the middleware returns (or raises), the previous organization is back."""
    seen: list[str | None] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        seen.append(organization_id_var.get())
        if fail:
            raise ValueError("app failed")
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def send(message: Any) -> None:
        pass

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    async def run() -> str | None:
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/x",
            "headers": [(b"x-customer-id", b"a")],
        }
        middleware = SlaOSMiddleware(app, organization_id=org_from_header)
        try:
            await middleware(scope, receive, send)
        except ValueError:
            pass
        return organization_id_var.get()

    assert asyncio.run(run()) is None
    assert seen == ["a"]
    assert requests_log.records[0].status_code == (500 if fail else 204)  # type: ignore[attr-defined]


def test_websocket_passed_through(requests_log: Collect) -> None:
    """WebSockets work through the middleware, which neither resolves nor logs them."""
    calls: list[Scope] = []

    def resolver(scope: Scope) -> str:
        calls.append(scope)
        return "acme"

    with TestClient(make_starlette(organization_id=resolver)).websocket_connect("/ws") as ws:
        ws.send_text("hi")
        assert ws.receive_text() == "echo:hi"
    assert calls == []
    assert requests_log.records == []


def test_lifespan_passed_through(requests_log: Collect) -> None:
    """Startup and shutdown still reach the app."""
    events: list[str] = []
    with TestClient(make_starlette(lifespan_log=events)) as client:
        assert events == ["startup"]
        client.get("/users/x", headers=ACME)
    assert events == ["startup", "shutdown"]
    assert len(requests_log.records) == 1


def test_end_to_end_to_a_real_server(
    server: RecordingServer, make_handler: Callable[..., SlaOSHandler]
) -> None:
    """With a real SlaOSHandler, FastAPI and streaming Starlette requests arrive as events."""
    handler = make_handler(flush_interval=0.05)
    with shipping(handler):
        assert TestClient(make_fastapi()).get("/items/42", headers=ACME).status_code == 200
        streamed = TestClient(make_starlette()).get("/stream", headers={"X-Customer-Id": "b"})
        assert streamed.text == "one,two,three"
        assert handler.flush(5)
    item_event, stream_event = received(server, 2)
    assert item_event["organization_id"] == "acme"
    assert item_event["key"] == "rated_api"
    assert item_event["values"]["status_code"] == 200
    assert item_event["values"]["route"] == "/items/{item_id}"
    assert 0 < item_event["values"]["took"] < 5
    assert stream_event["organization_id"] == "b"
    assert stream_event["values"]["route"] == "/stream"
    assert stream_event["values"]["took"] >= 0.1
