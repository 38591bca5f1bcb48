"""Views of the Django example, and the organization resolver the settings point to."""

from __future__ import annotations

import asyncio
import time

from django.http import HttpRequest, HttpResponse, JsonResponse


def customer_id(request: HttpRequest) -> str | None:
    """The customer a request belongs to: here, its ``X-Customer-Id`` header."""
    return request.headers.get("X-Customer-Id") or None


def item(request: HttpRequest, pk: int) -> HttpResponse:
    """A fast view; logged with route ``/items/<int:pk>/``."""
    return JsonResponse({"id": pk})


async def async_item(request: HttpRequest, pk: int) -> HttpResponse:
    """An async view: the middleware stays async under ASGI."""
    await asyncio.sleep(0.01)
    return JsonResponse({"id": pk})


def slow(request: HttpRequest) -> HttpResponse:
    """A slow view (300 ms), to see the latency SLI fail."""
    time.sleep(0.3)
    return JsonResponse({"status": "slow"})


def boom(request: HttpRequest) -> HttpResponse:
    """A view that fails: logged with status 500."""
    raise RuntimeError("boom")


def health(request: HttpRequest) -> HttpResponse:
    """Excluded from logging by SLAOS_EXCLUDE_PATHS."""
    return HttpResponse("ok")
