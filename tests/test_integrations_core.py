"""The request core shared by the framework integrations."""

from __future__ import annotations

import logging

import pytest

from slaos_logging._context import organization_id_var
from slaos_logging.integrations._core import RequestCore

from .integration_support import Collect, attach


def test_finish_logs_one_record_with_all_fields(requests_log: Collect) -> None:
    """finish() logs request_finished with org, status, took, method and route, once."""
    core: RequestCore[str] = RequestCore(lambda r: r.upper())
    timer = core.begin("acme", "GET")
    assert timer is not None
    timer.finish(201, "/items/{id}")
    timer.finish(500, "/again")
    assert len(requests_log.records) == 1
    record = requests_log.records[0]
    assert record.getMessage() == "request_finished"
    assert record.organization_id == "ACME"  # type: ignore[attr-defined]
    assert record.status_code == 201  # type: ignore[attr-defined]
    assert record.method == "GET"  # type: ignore[attr-defined]
    assert record.route == "/items/{id}"  # type: ignore[attr-defined]
    assert isinstance(record.took, float) and 0 <= record.took < 5  # type: ignore[attr-defined]


def test_route_omitted_when_unknown(requests_log: Collect) -> None:
    """Without a route, the record carries no route attribute at all."""
    core: RequestCore[None] = RequestCore(lambda _: "acme")
    timer = core.begin(None, "POST")
    assert timer is not None
    timer.finish(404)
    assert not hasattr(requests_log.records[0], "route")


def test_no_resolver_leaves_organization_to_the_handler(requests_log: Collect) -> None:
    """Without a resolver every request is logged with no organization_id of its own."""
    core: RequestCore[None] = RequestCore(None)
    timer = core.begin(None, "GET")
    assert timer is not None
    timer.activate()
    assert organization_id_var.get() is None
    timer.finish(200)
    timer.deactivate()
    assert not hasattr(requests_log.records[0], "organization_id")


@pytest.mark.parametrize("value", [None, ""])
def test_resolver_without_organization_skips(value: str | None) -> None:
    """A resolver answering None (or an empty string) means: do not log this request."""
    core: RequestCore[None] = RequestCore(lambda _: value)
    assert core.begin(None, "GET") is None


def test_non_string_organization_is_stringified(requests_log: Collect) -> None:
    """An integer organization id becomes its string form."""
    core: RequestCore[None] = RequestCore(lambda _: 42)
    timer = core.begin(None, "GET")
    assert timer is not None
    timer.finish(200)
    assert requests_log.records[0].organization_id == "42"  # type: ignore[attr-defined]


def test_raising_resolver_warns_once_per_exception_type(diagnostics: Collect) -> None:
    """A raising resolver skips the request and warns once per exception type, no traceback."""
    errors: list[Exception] = [ValueError("a"), ValueError("b"), KeyError("c")]
    core: RequestCore[None] = RequestCore(lambda _: (_ for _ in ()).throw(errors.pop(0)))
    assert [core.begin(None, "GET") for _ in range(3)] == [None, None, None]
    assert len(diagnostics.records) == 2
    assert all(r.levelno == logging.WARNING for r in diagnostics.records)
    assert "ValueError" in diagnostics.records[0].getMessage()
    assert "KeyError" in diagnostics.records[1].getMessage()
    assert all(r.exc_info is None for r in diagnostics.records)


def test_async_resolver_in_sync_stack_is_refused(diagnostics: Collect) -> None:
    """A coroutine returned to a sync integration is closed and reported, not logged as org."""

    async def resolver(_: None) -> str:
        return "acme"

    core: RequestCore[None] = RequestCore(resolver)
    assert core.begin(None, "GET") is None
    assert "async" in diagnostics.records[0].getMessage()


def test_excluded_prefixes() -> None:
    """Excluded paths match by prefix; a lone string is one prefix, not characters."""
    core: RequestCore[None] = RequestCore(None, exclude_paths=("/health", "/static/"))
    assert core.excluded("/health")
    assert core.excluded("/healthz")
    assert core.excluded("/static/app.js")
    assert not core.excluded("/items/1")
    single: RequestCore[None] = RequestCore(None, exclude_paths="/metrics")
    assert single.excluded("/metrics") and not single.excluded("/m")
    assert not RequestCore(None).excluded("/anything")


def test_activate_sets_and_deactivate_resets_the_context_var() -> None:
    """The organization is current between activate() and deactivate() only."""
    core: RequestCore[None] = RequestCore(lambda _: "acme")
    token = organization_id_var.set("outer")
    try:
        timer = core.begin(None, "GET")
        assert timer is not None
        timer.activate()
        assert organization_id_var.get() == "acme"
        timer.deactivate()
        assert organization_id_var.get() == "outer"
    finally:
        organization_id_var.reset(token)


def test_logging_failure_is_swallowed() -> None:
    """A handler that raises inside emit never reaches the caller of finish()."""

    class Boom(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            raise RuntimeError("disk full")

        def handleError(self, record: logging.LogRecord) -> None:
            raise RuntimeError("still broken")

    logger = logging.getLogger("test.core.boom")
    boom = Boom()
    logger.addHandler(boom)
    logger.setLevel(logging.INFO)
    try:
        core: RequestCore[None] = RequestCore(lambda _: "acme", logger_name="test.core.boom")
        timer = core.begin(None, "GET")
        assert timer is not None
        timer.finish(200)
        assert timer.done
    finally:
        logger.removeHandler(boom)


def test_custom_logger_and_message() -> None:
    """The logger name and the message are configurable."""
    with_custom = attach("custom.requests")
    handler = next(with_custom)
    try:
        core: RequestCore[None] = RequestCore(
            lambda _: "acme", logger_name="custom.requests", message="api_call"
        )
        timer = core.begin(None, "GET")
        assert timer is not None
        timer.finish(200)
        assert [r.getMessage() for r in handler.records] == ["api_call"]
    finally:
        with_custom.close()
