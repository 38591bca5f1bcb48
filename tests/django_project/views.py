"""Views and organization resolvers used by tests/test_django.py."""

from __future__ import annotations

import asyncio
import logging
import time

from django.http import HttpRequest, HttpResponse, JsonResponse

from slaos_logging._context import organization_id_var

VIEW_LOGGER = "test.django.view"


def org_from_header(request: HttpRequest) -> str | None:
    """Resolve the organization from the X-Customer-Id header."""
    return request.headers.get("X-Customer-Id")


def broken_resolver(request: HttpRequest) -> str | None:
    """Always fails."""
    raise LookupError("no tenant table")


def item(request: HttpRequest, pk: int) -> HttpResponse:
    """Logs a line of its own and returns the organization it saw."""
    logging.getLogger(VIEW_LOGGER).info("inside the view", extra={"step": "view"})
    return JsonResponse({"pk": pk, "org": organization_id_var.get()})


def slow(request: HttpRequest) -> HttpResponse:
    """Takes 50 ms: the work of the view under test."""
    time.sleep(0.05)
    return HttpResponse("slow")


def boom(request: HttpRequest) -> HttpResponse:
    """Fails."""
    raise RuntimeError("view failed")


async def async_item(request: HttpRequest, pk: int) -> HttpResponse:
    """An async view that takes 50 ms and returns the organization it saw."""
    await asyncio.sleep(0.05)
    return JsonResponse({"pk": pk, "org": organization_id_var.get()})


def legacy(request: HttpRequest, pk: str) -> HttpResponse:
    """Routed by a regular expression."""
    return HttpResponse(pk)
