"""Flask and Django streaming responses are timed to their last chunk, logged at close()."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from .django_support import configure_django

configure_django()  # before Django's request machinery is imported

from django.http import HttpRequest, StreamingHttpResponse  # noqa: E402
from django.test import AsyncClient, Client, override_settings  # noqa: E402
from django.urls import path  # noqa: E402
from flask import Flask, Response, request, stream_with_context  # noqa: E402

from slaos_logging.integrations.flask import SlaOS  # noqa: E402

from .integration_support import Collect  # noqa: E402

CHUNK_PAUSE = 0.1  # three chunks: the stream lasts at least 0.3 s


def chunks() -> Iterator[bytes]:
    """Three chunks, a pause before each."""
    for n in range(3):
        time.sleep(CHUNK_PAUSE)
        yield b"chunk %d\n" % n


async def achunks() -> AsyncIterator[bytes]:
    """The same, asynchronously."""
    for n in range(3):
        await asyncio.sleep(CHUNK_PAUSE)
        yield b"chunk %d\n" % n


def stream_view(request: HttpRequest) -> StreamingHttpResponse:
    """A sync streaming response."""
    return StreamingHttpResponse(chunks())


async def astream_view(request: HttpRequest) -> StreamingHttpResponse:
    """An async streaming response."""
    return StreamingHttpResponse(achunks())


urlpatterns = [path("stream/", stream_view), path("astream/", astream_view)]


@pytest.fixture
def django_streaming() -> Iterator[None]:
    """This module's URLs, with the middleware and a header resolver."""
    with override_settings(
        ROOT_URLCONF=__name__,
        MIDDLEWARE=["slaos_logging.integrations.django.SlaOSMiddleware"],
        SLAOS_ORGANIZATION_ID=lambda request: request.headers.get("X-Customer-Id"),
    ):
        yield


def test_django_streaming_response_timed_to_last_chunk(
    django_streaming: None, requests_log: Collect
) -> None:
    """The record comes after the last chunk, and took covers the whole stream."""
    response = Client().get("/stream/", HTTP_X_CUSTOMER_ID="acme")
    assert requests_log.records == []  # nothing logged at the view's return
    assert b"".join(response.streaming_content) == b"chunk 0\nchunk 1\nchunk 2\n"  # type: ignore[attr-defined]
    (record,) = requests_log.records
    assert record.status_code == 200  # type: ignore[attr-defined]
    assert record.route == "/stream/"  # type: ignore[attr-defined]
    assert record.took >= 3 * CHUNK_PAUSE  # type: ignore[attr-defined]


def test_django_async_streaming_response_timed_to_last_chunk(
    django_streaming: None, requests_log: Collect
) -> None:
    """Under ASGI, an async stream is logged once, after its last chunk."""

    async def fetch() -> bytes:
        response = await AsyncClient().get("/astream/", headers={"X-Customer-Id": "acme"})
        return b"".join([c async for c in response.streaming_content])  # type: ignore[attr-defined]

    assert asyncio.run(fetch()) == b"chunk 0\nchunk 1\nchunk 2\n"
    (record,) = requests_log.records
    assert record.organization_id == "acme"  # type: ignore[attr-defined]
    assert record.took >= 3 * CHUNK_PAUSE  # type: ignore[attr-defined]


def _flask_app() -> Flask:
    app = Flask(__name__)

    @app.get("/stream")
    def stream() -> Response:
        return Response(chunks())

    @app.get("/stream-ctx")
    def stream_ctx() -> Response:
        @stream_with_context
        def generate() -> Iterator[bytes]:
            yield request.path.encode()
            yield from chunks()

        return Response(generate())

    @app.get("/plain")
    def plain() -> str:
        return "plain"

    SlaOS(app, organization_id=lambda: request.headers.get("X-Customer-Id"))
    return app


@pytest.mark.parametrize("route", ["/stream", "/stream-ctx"])
def test_flask_streamed_response_timed_to_last_chunk(route: str, requests_log: Collect) -> None:
    """A generator response is logged once, when the server closes it, with the whole stream."""
    client = _flask_app().test_client()
    response = client.get(route, headers={"X-Customer-Id": "acme"}, buffered=True)
    assert response.data.endswith(b"chunk 2\n")
    (record,) = requests_log.records
    assert record.status_code == 200  # type: ignore[attr-defined]
    assert record.route == route  # type: ignore[attr-defined]
    assert record.organization_id == "acme"  # type: ignore[attr-defined]
    assert record.took >= 3 * CHUNK_PAUSE  # type: ignore[attr-defined]


def test_flask_plain_response_still_logged_at_teardown(requests_log: Collect) -> None:
    """A response with a finished body is logged at teardown, as before, without close()."""
    response = _flask_app().test_client().get("/plain", headers={"X-Customer-Id": "acme"})
    assert response.status_code == 200
    assert len(requests_log.records) == 1
