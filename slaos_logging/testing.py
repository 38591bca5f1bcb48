"""Test your instrumentation: see the events your code would send, without sending them.

``capture_events()`` is a context manager; the pytest plugin installed with the
package wraps it in the ``slaos_events`` fixture::

    from slaos_logging.testing import capture_events

    with capture_events() as events:
        client.get("/boom", headers={"X-Customer-Id": "acme"})
    assert events[0]["organization_id"] == "acme"
    assert events[0]["values"]["status_code"] == 500

While a capture is active, every ``SlaOSHandler`` and ``SlaOSWorker`` of the process, on
any thread, turns what it is given into events exactly as it would for slaOS (its
``events`` filter, organization and key defaults, ``value_fields``, then the JSON
encoding) and appends them to the list instead of sending them. No credentials, server
or thread are needed. Nested captures each receive every event logged while they are
active.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, overload

from . import _capture

__all__ = ["CapturedEvents", "capture_events"]

#: One captured event, as slaOS receives it: ``organization_id``, ``key``,
#: ``timestamp`` (ISO 8601 UTC), ``values`` and ``idempotency_key``.
Event = dict[str, Any]


@contextlib.contextmanager
def capture_events() -> Iterator[list[Event]]:
    """Capture the events of every ``SlaOSHandler`` and ``SlaOSWorker`` instead of sending them.

    Yields:
        The list the events are appended to, in the order they were logged, each the
        JSON that would have been sent, decoded (so ``timestamp`` is a string and a
        ``Decimal`` value a float). The list stays as it is after the block ends.

    Records a handler skips (not in its ``events``, no organization or key) are not
    captured and are counted ``skipped`` as usual; captured events are not counted in
    ``stats()``, since they never enter the queue. Events logged before the block are
    sent as usual. Nested or overlapping blocks each receive every event logged while
    they are active.
    """
    events: list[Event] = []
    _capture.start(events)
    try:
        yield events
    finally:
        _capture.stop(events)


class CapturedEvents(Sequence[Event]):
    """Captured events with helpers to check them: the ``slaos_events`` fixture's type.

    A sequence of event dicts (``len()``, iteration, indexing, ``==`` with a list).
    ``for_org`` and ``for_key`` return a new ``CapturedEvents`` holding the matching
    events seen so far; the fixture itself keeps filling as the test goes on.

    Args:
        events: The list to read (the fixture passes the one ``capture_events``
            fills). Default: a new empty list.
    """

    def __init__(self, events: list[Event] | None = None) -> None:
        self._events: list[Event] = [] if events is None else events

    @property
    def events(self) -> list[Event]:
        """The captured event dicts themselves."""
        return self._events

    def for_org(self, organization_id: str) -> CapturedEvents:
        """The events of one organization."""
        return self.where(lambda event: event.get("organization_id") == organization_id)

    def for_key(self, key: str) -> CapturedEvents:
        """The events with one event key (``key``)."""
        return self.where(lambda event: event.get("key") == key)

    def where(self, predicate: Callable[[Event], object]) -> CapturedEvents:
        """The events for which ``predicate(event)`` is true."""
        return CapturedEvents([event for event in self._events if predicate(event)])

    def values(self, name: str) -> list[Any]:
        """The value ``name`` of every event that has it, in order.

        Example: ``slaos_events.for_org("acme").values("status_code") == [200, 500]``.
        """
        return [event["values"][name] for event in self._events if name in event["values"]]

    def organizations(self) -> list[str]:
        """The organization of every event, in order (repeats kept)."""
        return [event["organization_id"] for event in self._events]

    def clear(self) -> None:
        """Forget the events captured so far (capture goes on)."""
        self._events.clear()

    def __len__(self) -> int:
        return len(self._events)

    @overload
    def __getitem__(self, index: int) -> Event: ...

    @overload
    def __getitem__(self, index: slice) -> list[Event]: ...

    def __getitem__(self, index: int | slice) -> Event | list[Event]:
        return self._events[index]

    def __iter__(self) -> Iterator[Event]:
        return iter(self._events)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CapturedEvents):
            return self._events == other._events
        if isinstance(other, list):
            return self._events == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like list

    def __repr__(self) -> str:
        return f"CapturedEvents({self._events!r})"
