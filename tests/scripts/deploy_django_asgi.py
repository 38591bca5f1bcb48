"""A Django project served over ASGI: its middleware times requests, FlushOnShutdown flushes.

Django's ``ASGIHandler`` does not speak the lifespan protocol, so without the wrapper
nothing would flush when uvicorn stops (it re-raises SIGTERM: no exit hooks run).
"""

from __future__ import annotations

import logging

import django
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import path

from slaos_logging import SlaOSHandler
from slaos_logging.integrations.asgi import FlushOnShutdown


def item(request: HttpRequest, n: int = 0) -> HttpResponse:
    """One item (or the health check)."""
    return HttpResponse("ok")


def org(request: HttpRequest) -> str | None:
    """The organization is the X-Org header."""
    return request.headers.get("X-Org")


urlpatterns = [path("items/<int:n>", item), path("health", item)]

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["*"],
    SECRET_KEY="test-only",
    ROOT_URLCONF=__name__,
    MIDDLEWARE=["slaos_logging.integrations.django.SlaOSMiddleware"],
    SLAOS_ORGANIZATION_ID=org,
    SLAOS_EXCLUDE_PATHS=["/health"],
    LOGGING_CONFIG=None,
)
django.setup()

handler = SlaOSHandler(flush_interval=30, batch_size=10_000, shutdown_timeout=5)
requests_log = logging.getLogger("slaos.requests")
requests_log.setLevel(logging.INFO)
requests_log.propagate = False
requests_log.addHandler(handler)

from django.core.asgi import get_asgi_application  # noqa: E402

application = FlushOnShutdown(get_asgi_application())
