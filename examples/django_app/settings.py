"""Settings of the Django example: the SlaOS middleware and the LOGGING dict."""

from __future__ import annotations

import os

DEBUG = False
SECRET_KEY = "example-only-not-secret"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "urls"
INSTALLED_APPS: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
TIME_ZONE = "UTC"

MIDDLEWARE = [
    # First, so the timing covers the other middleware too.
    "slaos_logging.integrations.django.SlaOSMiddleware",
    "django.middleware.common.CommonMiddleware",
]

# (request) -> str | None; None means "do not log this request".
SLAOS_ORGANIZATION_ID = "views.customer_id"
SLAOS_EXCLUDE_PATHS = ["/health"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "slaos": {
            "class": "slaos_logging.SlaOSHandler",
            "host": os.environ.get("SLAOS_HOST", "http://127.0.0.1:8080"),
            "ingestion_id": os.environ.get("SLAOS_INGESTION_ID", "dev"),
            "ingestion_key": os.environ.get("SLAOS_INGESTION_KEY", "dev"),
            "key": "rated_api",
            # Only the request records become events; other lines stay local.
            "events": ["request_finished"],
        },
    },
    "loggers": {
        "slaos.requests": {"handlers": ["slaos", "console"], "level": "INFO", "propagate": False},
        # The library's own diagnostics (delivery problems), shown on the console.
        "slaos_logging": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
