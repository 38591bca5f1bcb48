"""Real servers stopped the way production stops them (SIGTERM): every event arrives once.

Each app keeps its events in the queue (``flush_interval=30``), so what arrives was
delivered by the shutdown path under test, not by the sender's timer.
"""

from __future__ import annotations

import sys

import pytest

from .deploy_support import Served, assert_exactly, child_env, free_port, wait_for_events
from .server import RecordingServer

ASGI_APP = "tests.scripts.deploy_asgi:app"
WSGI_APP = "tests.scripts.deploy_wsgi:app"


def _serve(server: RecordingServer, argv: list[str], port: int) -> Served:
    served = Served(argv, child_env(server), port)
    served.wait_ready()
    return served


def _uvicorn(port: int, *extra: str, app: str = ASGI_APP) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        *extra,
    ]


def _gunicorn(port: int, app: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "2",
        "--graceful-timeout",
        "20",
        *extra,
        app,
    ]


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(lambda port: _uvicorn(port), id="uvicorn"),
        pytest.param(lambda port: _uvicorn(port, "--workers", "2"), id="uvicorn-workers"),
        pytest.param(
            lambda port: [sys.executable, "-m", "tests.scripts.deploy_asgi", str(port)],
            id="uvicorn.run",
        ),
        pytest.param(
            lambda port: _gunicorn(
                port, ASGI_APP, "--worker-class", "uvicorn.workers.UvicornWorker"
            ),
            id="gunicorn-uvicornworker",
        ),
        pytest.param(lambda port: _gunicorn(port, WSGI_APP, "--preload"), id="gunicorn-preload"),
        pytest.param(
            lambda port: _uvicorn(port, app="tests.scripts.deploy_django_asgi:application"),
            id="django-asgi",
        ),
    ],
)
def test_sigterm_loses_nothing(server: RecordingServer, argv: object) -> None:
    """60 requests, then SIGTERM: each request's event arrives exactly once."""
    port = free_port()
    served = _serve(server, argv(port), port)  # type: ignore[operator]
    expected = served.hit(60)
    served.stop()
    assert_exactly(wait_for_events(server, 60, timeout=5), expected)
