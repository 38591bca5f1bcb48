"""Django settings for the tests that drive the middleware through Django's own clients."""

from __future__ import annotations

import django
from django.conf import settings


def configure_django() -> None:
    """Configure Django for this test package once per process, then set it up."""
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
