"""pytest plugin, registered through the ``pytest11`` entry point: the ``slaos_events`` fixture.

pytest loads it by itself once the package is installed; nothing in the package
imports it, so pytest stays an optional dependency. Turn it off with
``-p no:slaos_logging``; where plugin autoloading is disabled, turn it on with
``-p slaos_logging.pytest_plugin``.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from .testing import CapturedEvents, capture_events

__all__ = ["pytest_runtest_makereport", "slaos_events"]


@pytest.fixture
def slaos_events() -> Iterator[CapturedEvents]:
    """The slaOS events logged during the test, captured instead of sent.

    Every ``SlaOSHandler`` and ``SlaOSWorker`` in the process, on any thread, puts the
    events it would have sent here; see ``slaos_logging.testing.capture_events``.
    Helpers: ``for_org(org)``, ``for_key(key)``, ``where(predicate)``, ``values(name)``,
    ``organizations()``, ``clear()``, ``len()``, iteration and indexing.
    """
    with capture_events() as events:
        yield CapturedEvents(events)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """A failed test that used ``slaos_events`` shows them, as a failure shows its logs."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if call.when != "call" or not report.failed:
        return
    events = getattr(item, "funcargs", {}).get("slaos_events")
    if isinstance(events, CapturedEvents) and len(events):
        lines = (json.dumps(event, ensure_ascii=False) for event in events)
        report.sections.append(("Captured slaOS events call", "\n".join(lines)))
