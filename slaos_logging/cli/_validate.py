"""The receiver's ingestion contract: decoding a body into events and checking each one.

A large body is decoded one element of its top-level list at a time, so it is refused as
soon as it holds more events than the cap, and each event can be checked and turned into its
stored form before the next is decoded: memory stays close to the body's size, whatever the
body holds. A body of up to 1 MB (the library's default batch bound) is decoded in one call.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ._store import StoredEvent, parse_timestamp

__all__ = ["MAX_LISTED_ERRORS", "NotEvents", "TooManyEvents", "iter_events", "validate_event"]

#: Bad events listed in a 400 answer; the rest are only counted.
MAX_LISTED_ERRORS = 20
_MAX_NAMES = 5
_MAX_NAME_CHARS = 40

# Bodies up to this size are decoded in one call, which is faster; even made of the tiniest
# items, such a body decodes to a few tens of MB at most. Larger ones go element by element.
_WHOLE_UP_TO = 1_000_000
_FIELDS = frozenset({"organization_id", "key", "timestamp", "values", "idempotency_key"})
_WHITESPACE = json.decoder.WHITESPACE  # type: ignore[attr-defined]


class TooManyEvents(ValueError):
    """The body holds more events than one request may carry."""


class NotEvents(ValueError):
    """The body is JSON, but neither an event object nor a list."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def iter_events(text: str, max_events: int) -> Iterator[object]:
    """Yield the events of a body: one JSON object, or a JSON list of them.

    Raises:
        ValueError: The text is not JSON (``json.JSONDecodeError``, or ``NaN`` and the like).
        NotEvents: The text is JSON but not an object or a list.
        TooManyEvents: The list holds more than ``max_events`` elements; raised when the
            element past the cap is reached, before it is decoded.
        RecursionError: Nesting too deep to decode.
    """
    if len(text) <= _WHOLE_UP_TO:
        yield from _whole(text, max_events)
        return
    index = _WHITESPACE.match(text, 0).end()
    if not text.startswith("[", index):
        value, end = _DECODER.raw_decode(text, index)
        _expect_end(text, end)
        if not isinstance(value, dict):
            raise NotEvents("body must be a JSON event object or a list of them")
        yield value
        return
    index = _WHITESPACE.match(text, index + 1).end()
    if text.startswith("]", index):
        _expect_end(text, index + 1)
        return
    count = 0
    while True:
        count += 1
        if count > max_events:
            raise TooManyEvents(f"more than {max_events} events in one request")
        value, index = _DECODER.raw_decode(text, index)
        yield value
        index = _WHITESPACE.match(text, index).end()
        if text.startswith("]", index):
            _expect_end(text, index + 1)
            return
        if not text.startswith(",", index):
            raise json.JSONDecodeError("Expecting ',' delimiter", text, index)
        index = _WHITESPACE.match(text, index + 1).end()


def _whole(text: str, max_events: int) -> list[Any]:
    value = _DECODER.decode(text)
    if isinstance(value, dict):
        return [value]
    if not isinstance(value, list):
        raise NotEvents("body must be a JSON event object or a list of them")
    if len(value) > max_events:
        raise TooManyEvents(f"more than {max_events} events in one request")
    return value


def _expect_end(text: str, index: int) -> None:
    index = _WHITESPACE.match(text, index).end()
    if index != len(text):
        raise json.JSONDecodeError("Extra data", text, index)


def _names(names: list[str]) -> str:
    # Bounded: an event with a million unknown fields must not make a million-name answer.
    shown = [name[:_MAX_NAME_CHARS] for name in names[:_MAX_NAMES]]
    more = f" and {len(names) - _MAX_NAMES} more" if len(names) > _MAX_NAMES else ""
    return ", ".join(shown) + more


def validate_event(event: object) -> tuple[StoredEvent | None, str | None]:
    """Check one decoded event against the ingestion contract.

    Returns:
        ``(event, None)`` when valid, else ``(None, reason)``; the reason is of bounded
        length whatever the event holds.
    """
    if not isinstance(event, dict):
        return None, "event must be a JSON object"
    problems: list[str] = []
    unknown = sorted(str(name) for name in event if name not in _FIELDS)
    if unknown:
        problems.append("unknown field(s): " + _names(unknown))
    for name in ("organization_id", "key"):
        value = event.get(name)
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{name} must be a non-empty string")
    timestamp = event.get("timestamp")
    ts_text, epoch = "", 0.0
    if not isinstance(timestamp, str):
        problems.append("timestamp must be an ISO 8601 string")
    else:
        ts_text = timestamp
        try:
            epoch = parse_timestamp(timestamp).timestamp()
        except (ValueError, OverflowError):
            problems.append(f"timestamp is not ISO 8601: {timestamp[:40]!r}")
    if not isinstance(event.get("values"), dict):
        problems.append("values must be a JSON object")
    idem = event.get("idempotency_key")
    if idem is not None and (not isinstance(idem, str) or not idem):
        problems.append("idempotency_key must be a non-empty string when present")
    if problems:
        return None, "; ".join(problems)
    return (
        StoredEvent(
            organization_id=event["organization_id"],
            key=event["key"],
            timestamp=ts_text,
            ts_epoch=epoch,
            values=event["values"],
            idempotency_key=idem,
        ),
        None,
    )
