"""The ``slaos_events`` fixture through each integration's own test client, and Celery eagerly."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import django
import pytest
from django.conf import settings

# Django can be configured once per process; another test module may have done it.
if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="slaos-logging-tests",
        ALLOWED_HOSTS=["testserver"],
        INSTALLED_APPS=[],
        DATABASES={},
        MIDDLEWARE=[],
        ROOT_URLCONF=f"{__package__}.django_project.urls",
        USE_TZ=True,
    )
django.setup()

from celery import Celery  # noqa: E402
from celery.utils.log import get_task_logger  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from flask import Flask, request  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import PlainTextResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from slaos_logging import SlaOSHandler  # noqa: E402
from slaos_logging.integrations.asgi import Scope, header  # noqa: E402
from slaos_logging.integrations.asgi import SlaOSMiddleware as AsgiMiddleware  # noqa: E402
from slaos_logging.integrations.flask import SlaOS  # noqa: E402
from slaos_logging.testing import CapturedEvents  # noqa: E402

from .django_project import urls, views  # noqa: E402
from .integration_support import shipping  # noqa: E402
from .server import RecordingServer  # noqa: E402

ACME = {"X-Customer-Id": "acme"}


@pytest.fixture
def handler(server: RecordingServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[SlaOSHandler]:
    """The handler an app's logging config would build, credentials from the environment."""
    monkeypatch.setenv("SLAOS_INGESTION_ID", "env-id")
    monkeypatch.setenv("SLAOS_INGESTION_KEY", "env-key-0123")
    made = SlaOSHandler(host=server.url, key="rated_api", events=["request_finished"])
    with shipping(made, "celery.task"):
        yield made
    made.close()
    assert server.requests == [], "an event was sent while it should have been captured"
    assert made.stats()["enqueued"] == 0


def assert_one_500_for_acme(events: CapturedEvents) -> None:
    (event,) = events.for_org("acme")
    assert event["key"] == "rated_api"
    assert event["values"]["status_code"] == 500
    assert isinstance(event["values"]["took"], float)
    assert events.organizations() == ["acme"]


def test_flask_test_client(handler: SlaOSHandler, slaos_events: CapturedEvents) -> None:
    """A failing Flask view, through Flask's test client, is captured as a 500 for acme."""
    app = Flask(__name__)

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("view failed")

    SlaOS(app, organization_id=lambda: request.headers.get("X-Customer-Id"))
    assert app.test_client().get("/boom", headers=ACME).status_code == 500
    assert_one_500_for_acme(slaos_events)
    assert slaos_events.values("route") == ["/boom"]


def test_django_test_client(handler: SlaOSHandler, slaos_events: CapturedEvents) -> None:
    """A failing Django view, through Django's test client, is captured as a 500 for acme."""
    with override_settings(
        ROOT_URLCONF=urls.__name__,
        MIDDLEWARE=["slaos_logging.integrations.django.SlaOSMiddleware"],
        SLAOS_ORGANIZATION_ID=f"{views.__name__}.org_from_header",
    ):
        response = Client(raise_request_exception=False).get("/boom/", HTTP_X_CUSTOMER_ID="acme")
    assert response.status_code == 500
    assert_one_500_for_acme(slaos_events)
    assert slaos_events.values("route") == ["/boom/"]


def test_starlette_test_client(handler: SlaOSHandler, slaos_events: CapturedEvents) -> None:
    """Logged on TestClient's server thread, the 500 is captured before the call returns."""
    threads: list[int] = []

    async def boom(request: Request) -> PlainTextResponse:
        threads.append(threading.get_ident())
        raise RuntimeError("endpoint failed")

    def org(scope: Scope) -> str | None:
        return header(scope, "X-Customer-Id")

    app = Starlette(routes=[Route("/boom", boom)])
    app.add_middleware(AsgiMiddleware, organization_id=org)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/boom", headers=ACME).status_code == 500
        assert_one_500_for_acme(slaos_events)
    assert threads and threads[0] != threading.get_ident(), "the app ran on the test's thread"


def test_celery_eager_task(handler: SlaOSHandler, slaos_events: CapturedEvents) -> None:
    """A Celery task run eagerly logs through the task logger; its event is captured."""
    app = Celery("slaos_capture_test", set_as_current=False)
    app.conf.task_always_eager = True
    logger = get_task_logger("tests.billing")
    logger.setLevel(logging.INFO)

    @app.task
    def charge(org: str) -> None:
        started = time.perf_counter()
        logger.info(
            "request_finished",
            extra={
                "organization_id": org,
                "status_code": 500,
                "took": time.perf_counter() - started,
            },
        )

    charge.delay("acme").get(timeout=10)
    assert_one_500_for_acme(slaos_events)


def test_fixture_starts_empty_for_each_test(slaos_events: CapturedEvents) -> None:
    """Events of earlier tests are not in a later test's fixture."""
    assert len(slaos_events) == 0
