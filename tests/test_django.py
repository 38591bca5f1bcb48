"""The Django middleware, through Django's own test clients."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator

import pytest

from .django_support import configure_django

configure_django()

from asgiref.sync import iscoroutinefunction  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.test import AsyncClient, Client, override_settings  # noqa: E402

from slaos_logging import SlaOSHandler  # noqa: E402
from slaos_logging._context import organization_id_var  # noqa: E402
from slaos_logging.integrations.django import SlaOSMiddleware  # noqa: E402

from .django_project import urls, views  # noqa: E402
from .integration_support import Collect, attach, received, shipping  # noqa: E402
from .server import RecordingServer  # noqa: E402

MIDDLEWARE = "slaos_logging.integrations.django.SlaOSMiddleware"


@pytest.fixture
def app_log() -> Iterator[Collect]:
    yield from attach(views.VIEW_LOGGER)


@pytest.fixture(autouse=True)
def django_settings() -> Iterator[None]:
    with override_settings(
        ROOT_URLCONF=urls.__name__,
        MIDDLEWARE=[MIDDLEWARE],
        SLAOS_ORGANIZATION_ID=f"{views.__name__}.org_from_header",
        SLAOS_EXCLUDE_PATHS=["/health"],
        ALLOWED_HOSTS=["testserver"],
        DEBUG=False,
    ):
        yield


ACME = {"HTTP_X_CUSTOMER_ID": "acme"}


def test_sync_view_logged_with_route_template(requests_log: Collect) -> None:
    """A 200 from /items/42/ is logged with org, method and the route template."""
    response = Client().get("/items/42/", **ACME)
    assert response.status_code == 200
    (record,) = requests_log.records
    assert record.getMessage() == "request_finished"
    assert record.organization_id == "acme"  # type: ignore[attr-defined]
    assert record.status_code == 200  # type: ignore[attr-defined]
    assert record.method == "GET"  # type: ignore[attr-defined]
    assert record.route == "/items/<int:pk>/"  # type: ignore[attr-defined]


def test_included_and_regex_routes(requests_log: Collect) -> None:
    """Routes from include() are joined; re_path anchors are dropped."""
    Client().get("/api/v1/items/7/", **ACME)
    Client().get("/legacy/9/", **ACME)
    routes = [r.route for r in requests_log.records]  # type: ignore[attr-defined]
    assert routes == ["/api/v1/items/<int:pk>/", "/legacy/(?P<pk>[0-9]+)/"]


def test_took_covers_the_view(requests_log: Collect) -> None:
    """A view that waits 50 ms is reported as taking at least that long."""
    Client().get("/slow/", **ACME)
    took = requests_log.records[0].took  # type: ignore[attr-defined]
    assert isinstance(took, float)
    assert 0.05 <= took < 5


def test_unrouted_404_logged_without_route(requests_log: Collect) -> None:
    """Django's own 404 is logged with its status and no route (never the raw path)."""
    response = Client().get("/nope/123", **ACME)
    assert response.status_code == 404
    (record,) = requests_log.records
    assert record.status_code == 404  # type: ignore[attr-defined]
    assert not hasattr(record, "route")


def test_view_exception_logged_as_500_and_reraised(requests_log: Collect) -> None:
    """An exception in a view is logged as 500 and still reaches the test client."""
    with pytest.raises(RuntimeError, match="view failed"):
        Client().get("/boom/", **ACME)
    (record,) = requests_log.records
    assert record.status_code == 500  # type: ignore[attr-defined]
    assert record.route == "/boom/"  # type: ignore[attr-defined]


def test_view_exception_returns_500(requests_log: Collect) -> None:
    """Without re-raising in the client, the client gets a 500 and so does the record."""
    response = Client(raise_request_exception=False).get("/boom/", **ACME)
    assert response.status_code == 500
    assert requests_log.records[0].status_code == 500  # type: ignore[attr-defined]


def test_middleware_outside_django_handler_logs_500_and_reraises(requests_log: Collect) -> None:
    """If the exception escapes get_response itself, it is logged as 500 and re-raised."""

    def get_response(request: HttpRequest) -> HttpResponse:
        raise ValueError("escaped")

    request = HttpRequest()
    request.method = "PUT"
    request.path_info = request.path = "/x"
    request.META["HTTP_X_CUSTOMER_ID"] = "acme"
    with pytest.raises(ValueError, match="escaped"):
        SlaOSMiddleware(get_response)(request)
    assert requests_log.records[0].status_code == 500  # type: ignore[attr-defined]
    assert requests_log.records[0].method == "PUT"  # type: ignore[attr-defined]
    assert organization_id_var.get() is None


def test_no_organization_means_no_record(requests_log: Collect) -> None:
    """A request the resolver cannot attribute is not logged."""
    assert Client().get("/items/1/").status_code == 200
    assert requests_log.records == []


def test_raising_resolver_warns_once(requests_log: Collect, diagnostics: Collect) -> None:
    """A raising resolver: the request succeeds, is not logged, and one warning is logged."""
    with override_settings(SLAOS_ORGANIZATION_ID=f"{views.__name__}.broken_resolver"):
        client = Client()
        assert client.get("/items/1/", **ACME).status_code == 200
        assert client.get("/items/2/", **ACME).status_code == 200
    assert requests_log.records == []
    warnings = [r for r in diagnostics.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "LookupError" in warnings[0].getMessage()


def test_excluded_path_not_logged(requests_log: Collect) -> None:
    """Paths under SLAOS_EXCLUDE_PATHS are never logged."""
    assert Client().get("/health/", **ACME).status_code == 200
    assert requests_log.records == []


def test_custom_logger_setting() -> None:
    """SLAOS_REQUEST_LOGGER sends the records to another logger."""
    collect = attach("custom.django.requests")
    handler = next(collect)
    try:
        with override_settings(SLAOS_REQUEST_LOGGER="custom.django.requests"):
            Client().get("/items/3/", **ACME)
        assert [r.getMessage() for r in handler.records] == ["request_finished"]
    finally:
        collect.close()


def test_org_context_var_set_in_view_and_reset(requests_log: Collect, app_log: Collect) -> None:
    """Log lines inside the view see the organization; it is cleared afterwards."""
    response = Client().get("/items/5/", HTTP_X_CUSTOMER_ID="globex")
    assert response.json()["org"] == "globex"
    assert app_log.orgs == ["globex"]
    assert organization_id_var.get() is None


def test_async_view_through_async_client(requests_log: Collect) -> None:
    """An async view in an async stack is timed, attributed and routed."""

    async def call() -> tuple[int, dict[str, object]]:
        response = await AsyncClient().get("/async/8/", headers={"X-Customer-Id": "initech"})
        return response.status_code, response.json()

    status, body = asyncio.run(call())
    assert status == 200 and body["org"] == "initech"
    (record,) = requests_log.records
    assert record.organization_id == "initech"  # type: ignore[attr-defined]
    assert record.route == "/async/<int:pk>/"  # type: ignore[attr-defined]
    assert record.took >= 0.05  # type: ignore[attr-defined]


def test_async_stack_stays_async() -> None:
    """Given an async get_response, the middleware instance is itself a coroutine function."""

    async def get_response(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    def sync_get_response(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    assert iscoroutinefunction(SlaOSMiddleware(get_response))
    assert not iscoroutinefunction(SlaOSMiddleware(sync_get_response))


def test_end_to_end_to_a_real_server(
    server: RecordingServer, make_handler: Callable[..., SlaOSHandler]
) -> None:
    """With a real SlaOSHandler, the request and a log line from the view arrive as events."""
    handler = make_handler(flush_interval=0.05)
    with shipping(handler, views.VIEW_LOGGER):
        assert Client().get("/items/42/", **ACME).status_code == 200
        assert handler.flush(5)
    events = received(server, 2)
    assert len(events) == 2
    view_event, request_event = events
    assert view_event["organization_id"] == "acme"
    assert view_event["values"] == {"step": "view"}
    assert request_event["organization_id"] == "acme"
    assert request_event["key"] == "rated_api"
    values = request_event["values"]
    assert values["status_code"] == 200
    assert values["route"] == "/items/<int:pk>/"
    assert values["method"] == "GET"
    assert isinstance(values["took"], float) and 0 < values["took"] < 5
