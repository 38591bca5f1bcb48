"""The Flask extension, through Flask's test client."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import pytest
from flask import Flask, abort, g, request

from slaos_logging import SlaOSHandler
from slaos_logging._context import organization_id_var
from slaos_logging.integrations._core import RequestCore
from slaos_logging.integrations.flask import SlaOS

from .integration_support import Collect, attach, received, shipping
from .server import RecordingServer


@pytest.fixture
def app_log() -> Iterator[Collect]:
    yield from attach("test.flask.view")


def org_from_header() -> str | None:
    """Resolve the organization from the X-Customer-Id header."""
    return request.headers.get("X-Customer-Id")


def make_app(
    resolver: Callable[[], object] | None = org_from_header, *, testing: bool = True
) -> Flask:
    app = Flask(__name__)
    app.testing = testing

    @app.get("/items/<int:item_id>")
    def item(item_id: int) -> dict[str, object]:
        logging.getLogger("test.flask.view").info("inside the view", extra={"step": "view"})
        return {"id": item_id, "org": organization_id_var.get()}

    @app.get("/slow")
    def slow() -> str:
        time.sleep(0.05)
        return "slow"

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("view failed")

    @app.get("/missing/<name>")
    def missing(name: str) -> str:
        abort(404)

    @app.get("/health")
    def health() -> str:
        return "ok"

    SlaOS(app, organization_id=resolver, exclude_paths=["/health"])
    return app


ACME = {"X-Customer-Id": "acme"}


def test_request_logged_with_route_rule(requests_log: Collect) -> None:
    """A 200 on /items/42 is logged with org, method and the rule, not the raw path."""
    response = make_app().test_client().get("/items/42", headers=ACME)
    assert response.status_code == 200
    (record,) = requests_log.records
    assert record.getMessage() == "request_finished"
    assert record.organization_id == "acme"  # type: ignore[attr-defined]
    assert record.status_code == 200  # type: ignore[attr-defined]
    assert record.method == "GET"  # type: ignore[attr-defined]
    assert record.route == "/items/<int:item_id>"  # type: ignore[attr-defined]


def test_took_covers_the_view(requests_log: Collect) -> None:
    """A view that waits 50 ms is reported as taking at least that long."""
    make_app().test_client().get("/slow", headers=ACME)
    took = requests_log.records[0].took  # type: ignore[attr-defined]
    assert isinstance(took, float) and 0.05 <= took < 5


def test_unrouted_404_has_no_route(requests_log: Collect) -> None:
    """A path with no rule is logged as 404 without a route."""
    assert make_app().test_client().get("/nope/1", headers=ACME).status_code == 404
    (record,) = requests_log.records
    assert record.status_code == 404  # type: ignore[attr-defined]
    assert not hasattr(record, "route")


def test_abort_404_keeps_the_rule(requests_log: Collect) -> None:
    """An abort(404) inside a routed view is logged as 404 with its rule."""
    make_app().test_client().get("/missing/x", headers=ACME)
    assert requests_log.records[0].status_code == 404  # type: ignore[attr-defined]
    assert requests_log.records[0].route == "/missing/<name>"  # type: ignore[attr-defined]


def test_exception_propagates_and_is_logged_as_500(requests_log: Collect) -> None:
    """In testing mode the exception reaches the caller, and the request is logged as 500."""
    with pytest.raises(RuntimeError, match="view failed"):
        make_app().test_client().get("/boom", headers=ACME)
    (record,) = requests_log.records
    assert record.status_code == 500  # type: ignore[attr-defined]
    assert record.route == "/boom"  # type: ignore[attr-defined]
    assert organization_id_var.get() is None


def test_exception_becomes_500_response(requests_log: Collect) -> None:
    """Outside testing mode Flask answers 500, and that is what is logged."""
    app = make_app(testing=False)
    app.logger.disabled = True  # Flask would print the traceback of the expected error
    try:
        assert app.test_client().get("/boom", headers=ACME).status_code == 500
    finally:
        app.logger.disabled = False
    assert requests_log.records[0].status_code == 500  # type: ignore[attr-defined]


def test_no_organization_means_no_record(requests_log: Collect) -> None:
    """A request the resolver cannot attribute is not logged."""
    assert make_app().test_client().get("/items/1").status_code == 200
    assert requests_log.records == []


def test_resolver_reading_g_set_by_a_later_hook(requests_log: Collect, app_log: Collect) -> None:
    """An organization put on g by the app's own before_request hook is still logged."""
    app = make_app(lambda: getattr(g, "tenant", None))

    @app.before_request
    def set_tenant() -> None:
        g.tenant = request.args.get("tenant")

    assert app.test_client().get("/items/1?tenant=t1").status_code == 200
    assert app.test_client().get("/items/1").status_code == 200
    (record,) = requests_log.records
    assert record.organization_id == "t1"  # type: ignore[attr-defined]
    assert record.route == "/items/<int:item_id>"  # type: ignore[attr-defined]


def test_raising_resolver_warns_once(requests_log: Collect, diagnostics: Collect) -> None:
    """A raising resolver: requests succeed unlogged, with one warning for the failure."""

    def broken() -> str:
        raise LookupError("no tenant table")

    client = make_app(broken).test_client()
    assert client.get("/items/1", headers=ACME).status_code == 200
    assert client.get("/items/2", headers=ACME).status_code == 200
    assert requests_log.records == []
    warnings = [r for r in diagnostics.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "LookupError" in warnings[0].getMessage()


def test_excluded_path_not_logged(requests_log: Collect) -> None:
    """Excluded prefixes are never logged."""
    assert make_app().test_client().get("/health", headers=ACME).status_code == 200
    assert requests_log.records == []


def test_org_context_var_in_view_and_reset(requests_log: Collect, app_log: Collect) -> None:
    """Log lines in the view see the organization; it is cleared after the request."""
    response = make_app().test_client().get("/items/5", headers={"X-Customer-Id": "globex"})
    assert response.get_json()["org"] == "globex"
    assert app_log.orgs == ["globex"]
    assert organization_id_var.get() is None


def test_init_app_factory_pattern(requests_log: Collect) -> None:
    """SlaOS() then init_app(app) works and stores its state in app.extensions."""
    slaos = SlaOS(organization_id=org_from_header)
    app = Flask(__name__)

    @app.get("/x/<int:n>")
    def x(n: int) -> str:
        return str(n)

    slaos.init_app(app)
    assert isinstance(app.extensions["slaos"], RequestCore)
    app.test_client().get("/x/3", headers=ACME)
    assert requests_log.records[0].route == "/x/<int:n>"  # type: ignore[attr-defined]


def test_end_to_end_to_a_real_server(
    server: RecordingServer, make_handler: Callable[..., SlaOSHandler]
) -> None:
    """With a real SlaOSHandler, the request and a log line from the view arrive as events."""
    handler = make_handler(flush_interval=0.05)
    with shipping(handler, "test.flask.view"):
        client = make_app().test_client()
        assert client.get("/items/42", headers=ACME).status_code == 200
        with pytest.raises(RuntimeError):
            client.get("/boom", headers={"X-Customer-Id": "globex"})
        assert handler.flush(5)
    view_event, ok_event, failed_event = received(server, 3)
    assert view_event["organization_id"] == "acme"
    assert view_event["values"] == {"step": "view"}
    assert ok_event["organization_id"] == "acme"
    assert ok_event["key"] == "rated_api"
    assert ok_event["values"]["status_code"] == 200
    assert ok_event["values"]["route"] == "/items/<int:item_id>"
    assert 0 < ok_event["values"]["took"] < 5
    assert failed_event["organization_id"] == "globex"
    assert failed_event["values"]["status_code"] == 500
    assert failed_event["values"]["route"] == "/boom"
