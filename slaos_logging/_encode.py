"""Pending events to JSON-ready event dicts, on the sender thread.

Timestamps become ISO 8601 UTC whole seconds with ``Z``; value names are sanitised as
Rated's own shipper does. Turning the dicts into JSON bytes is ``_json``'s part (its
names are re-exported here).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

from ._json import dumps_event, make_encoder, safe_str, to_json_value

__all__ = [
    "EventBuilder",
    "NameSanitiser",
    "TimestampFormatter",
    "dumps_event",
    "iso_utc",
    "make_encoder",
    "to_json_value",
]

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_/]")
_NAME_CACHE_LIMIT = 4096
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def iso_utc(epoch: float) -> str:
    """Epoch seconds to ``YYYY-MM-DDTHH:MM:SSZ`` (UTC, whole seconds)."""
    return (_EPOCH + dt.timedelta(seconds=int(epoch))).strftime("%Y-%m-%dT%H:%M:%SZ")


class TimestampFormatter:
    """Formats timestamps, reusing the string while events arrive within one second."""

    __slots__ = ("_second", "_text")

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def created(self, epoch: float) -> str:
        """Format a record's ``created`` time."""
        second = int(epoch)
        if second != self._second:
            self._text = iso_utc(epoch)
            self._second = second
        return self._text

    def parse(self, raw: object) -> str | None:
        """Format an explicit timestamp (datetime, ISO string or epoch); ``None`` if unusable."""
        try:
            if isinstance(raw, dt.datetime):
                # A naive datetime is local time, as everywhere in Python
                # (datetime.timestamp(), astimezone()): astimezone() reads it so.
                return raw.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            if isinstance(raw, (int, float)) and not isinstance(raw, bool):
                if math.isfinite(raw):
                    return self.created(float(raw))
                return None
            if isinstance(raw, str):
                text = raw.strip()
                if text.endswith(("Z", "z")):
                    text = text[:-1] + "+00:00"
                return self.parse(dt.datetime.fromisoformat(text))
        except (ValueError, OverflowError, OSError):
            return None
        return None


class NameSanitiser:
    """Replaces characters other than letters, digits, ``_`` and ``/`` in value names.

    Names that become the same (``a-b``, ``a.b`` and ``a_b`` all become ``a_b``) keep
    the first value; ``on_collision(name)`` is called the first time each name collides.
    """

    __slots__ = ("_cache", "_collided", "_on_collision")

    def __init__(self, on_collision: Callable[[str], None] | None = None) -> None:
        self._cache: dict[str, str] = {}
        self._collided: set[str] = set()
        self._on_collision = on_collision

    def __call__(self, values: dict[str, Any]) -> dict[str, Any]:
        cache = self._cache
        for name in values:
            if cache.get(name) != name:
                return self._rename(values)
        return values

    def _rename(self, values: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in values.items():
            text = name if isinstance(name, str) else safe_str(name)
            clean = self._cache.get(text)
            if clean is None:
                clean = _UNSAFE_NAME.sub("_", text)
                if len(self._cache) < _NAME_CACHE_LIMIT:
                    self._cache[text] = clean
            if clean in out:
                self._collision(clean)
                continue
            out[clean] = value
        return out

    def _collision(self, clean: str) -> None:
        if clean in self._collided or len(self._collided) >= _NAME_CACHE_LIMIT:
            return
        self._collided.add(clean)
        if self._on_collision is not None:
            self._on_collision(clean)


class EventBuilder:
    """Turns queued pending events into JSON-ready event dicts (one per thread)."""

    __slots__ = ("_names", "_on_bad_timestamp", "_prefix", "_seq", "_timestamps")

    def __init__(
        self,
        id_prefix: str,
        seq: Iterator[int],
        on_bad_timestamp: Callable[[object], None],
        on_name_collision: Callable[[str], None] | None = None,
    ) -> None:
        self._prefix = id_prefix
        # Shared by every builder of the process (sender and spool writer), so each
        # event gets its own number; numbering here keeps it off the logging call.
        self._seq = seq
        self._on_bad_timestamp = on_bad_timestamp
        self._timestamps = TimestampFormatter()
        self._names = NameSanitiser(on_name_collision)

    def build(self, item: tuple[Any, ...]) -> dict[str, Any]:
        """The event for one queued pending event."""
        org, key, raw_ts, created, values, idem = item
        if raw_ts is None:
            stamp = self._timestamps.created(created)
        else:
            parsed = self._timestamps.parse(raw_ts)
            if parsed is None:
                self._on_bad_timestamp(raw_ts)
                parsed = self._timestamps.created(created)
            stamp = parsed
        # Every event takes a number, so that ``enqueued`` (this counter) counts events
        # that bring their own idempotency key too.
        number = next(self._seq, 0)
        if idem is None:
            # Unique per emitted record and stable across retries and the spool.
            idem = f"{self._prefix}{number:x}"
        elif idem.__class__ is not str:
            idem = safe_str(idem)
        return {
            "organization_id": org,
            "key": key,
            "timestamp": stamp,
            "values": self._names(values),
            "idempotency_key": idem,
        }
