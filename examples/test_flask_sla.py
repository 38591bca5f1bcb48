"""Testing your instrumentation: the SLA events of examples/flask_app.py, checked in tests.

Run it with ``pytest examples/test_flask_sla.py``. The ``slaos_events`` fixture comes
with slaos-logging (a pytest plugin, loaded by itself): during each test it holds the
events the app's ``SlaOSHandler`` would have sent to slaOS, and nothing is sent.
"""

from __future__ import annotations

from flask_app import app


def test_failing_view_is_reported_as_500_for_its_customer(slaos_events):
    """A view that raises is one request_finished event, status 500, for the right customer."""
    response = app.test_client().get("/boom", headers={"X-Customer-Id": "acme"})

    assert response.status_code == 500
    (event,) = slaos_events.for_org("acme")
    assert event["key"] == "rated_api"
    assert event["values"]["status_code"] == 500
    assert event["values"]["route"] == "/boom"
    assert event["values"]["took"] >= 0
    assert slaos_events.organizations() == ["acme"]


def test_each_request_is_reported_once_for_its_customer(slaos_events):
    """Two customers, three requests: three events, each for the customer who asked."""
    client = app.test_client()
    client.get("/items/1", headers={"X-Customer-Id": "acme"})
    client.get("/items/2", headers={"X-Customer-Id": "globex"})
    client.get("/boom", headers={"X-Customer-Id": "globex"})

    assert len(slaos_events) == 3
    assert slaos_events.for_org("acme").values("status_code") == [200]
    assert slaos_events.for_org("globex").values("status_code") == [200, 500]


def test_health_checks_and_anonymous_requests_are_not_reported(slaos_events):
    """Excluded paths and requests without a customer send nothing."""
    client = app.test_client()
    client.get("/health", headers={"X-Customer-Id": "acme"})
    client.get("/items/1")

    assert len(slaos_events) == 0
