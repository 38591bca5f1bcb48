"""pytest plugin, registered through the ``pytest11`` entry point: the ``slaos_events`` fixture.

pytest loads it by itself once the package is installed; nothing in the package
imports it, so pytest stays an optional dependency. Turn it off with
``-p no:slaos_logging``; where plugin autoloading is disabled, turn it on with
``-p slaos_logging.pytest_plugin``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .testing import CapturedEvents, capture_events

__all__ = ["slaos_events"]


@pytest.fixture
def slaos_events() -> Iterator[CapturedEvents]:
    """The slaOS events logged during the test, captured instead of sent.

    Every ``SlaOSHandler`` and ``SlaOSWorker`` in the process, on any thread, puts the
    events it would have sent here; see ``slaos_logging.testing.capture_events``.
    Helpers: ``for_org(org)``, ``for_key(key)``, ``values(name)``, ``clear()``,
    ``len()``, iteration and indexing.
    """
    with capture_events() as events:
        yield CapturedEvents(events)
