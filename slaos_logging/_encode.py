"""Pending events to JSON bytes, on the sender thread.

Timestamps become ISO 8601 UTC whole seconds with ``Z``; value names are sanitised as
Rated's own shipper does; values become valid JSON whatever their type. A batch is
encoded with one call of the C encoder; only a batch that
holds a NaN or an infinity takes the slow path that walks it.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

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
                moment = raw if raw.tzinfo is not None else raw.replace(tzinfo=dt.timezone.utc)
                return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
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
    """Replaces characters other than letters, digits, ``_`` and ``/`` in value names."""

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        self._cache: dict[str, str] = {}

    def __call__(self, values: dict[str, Any]) -> dict[str, Any]:
        cache = self._cache
        for name in values:
            if cache.get(name) != name:
                return self._rename(values)
        return values

    def _rename(self, values: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in values.items():
            text = name if isinstance(name, str) else str(name)
            clean = self._cache.get(text)
            if clean is None:
                clean = _UNSAFE_NAME.sub("_", text)
                if len(self._cache) < _NAME_CACHE_LIMIT:
                    self._cache[text] = clean
            out[clean] = value
        return out


class EventBuilder:
    """Turns queued pending events into JSON-ready event dicts (one per thread)."""

    __slots__ = ("_names", "_on_bad_timestamp", "_prefix", "_seq", "_timestamps")

    def __init__(
        self,
        id_prefix: str,
        seq: Iterator[int],
        on_bad_timestamp: Callable[[object], None],
    ) -> None:
        self._prefix = id_prefix
        # Shared by every builder of the process (sender and spool writer), so each
        # event gets its own number; numbering here keeps it off the logging call.
        self._seq = seq
        self._on_bad_timestamp = on_bad_timestamp
        self._timestamps = TimestampFormatter()
        self._names = NameSanitiser()

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
            idem = str(idem)
        return {
            "organization_id": org,
            "key": key,
            "timestamp": stamp,
            "values": self._names(values),
            "idempotency_key": idem,
        }


def to_json_value(value: object) -> Any:
    """Convert what JSON cannot hold natively (the encoders' ``default`` hook)."""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return None
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, enum.Enum):
        # The member's value is what a reader of the event wants ("red", not
        # "Color.RED"); plain values stay as they are, as orjson writes them too.
        inner = value.value
        if inner is None or isinstance(inner, (str, int, float, bool)):
            return inner
        return str(inner)
    return str(value)


def _scrub(value: Any) -> Any:
    # Slow path: a batch that holds a non-finite float somewhere (json would write NaN,
    # which is not JSON). Rebuild containers with non-finite floats set to null.
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {_key(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_scrub(v) for v in value]
    if isinstance(value, (str, int)) or value is None:
        return value
    converted = to_json_value(value)
    return converted if converted is value else _scrub(converted)


def _key(key: object) -> str | int | float | bool | None:
    if key is None or isinstance(key, (str, int, float)):
        return key
    converted = to_json_value(key)
    return converted if isinstance(converted, str) else str(converted)


def _stdlib_encoder() -> Callable[[Any], bytes]:
    strict = json.JSONEncoder(
        separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=to_json_value
    ).encode

    def encode(obj: Any) -> bytes:
        # "replace": a lone surrogate (from os.fsdecode, say) must not make the body
        # invalid UTF-8.
        try:
            return strict(obj).encode("utf-8", "replace")
        except (ValueError, TypeError):
            # NaN or infinity (ValueError), or dict keys JSON cannot hold (TypeError).
            return strict(_scrub(obj)).encode("utf-8", "replace")

    return encode


def _orjson_encoder(dumps: Callable[..., bytes], option: int) -> Callable[[Any], bytes]:
    fallback = _stdlib_encoder()

    def encode(obj: Any) -> bytes:
        try:
            # orjson writes NaN and infinities as null itself.
            return dumps(obj, default=to_json_value, option=option)
        except TypeError:
            # What orjson refuses (ints beyond 64 bits, lone surrogates, tuple keys...)
            # the standard library's path handles.
            return fallback(obj)

    return encode


def make_encoder(use_orjson: bool = True) -> Callable[[Any], bytes]:
    """Return ``encode(obj) -> bytes`` producing compact, valid JSON for any event list.

    orjson (the optional ``fast`` extra) is used when it is installed: it encodes a
    batch about ten times faster, with the same output for every type listed in the
    README.
    """
    if use_orjson:
        try:
            import orjson
        except ImportError:
            pass
        else:
            return _orjson_encoder(orjson.dumps, orjson.OPT_NON_STR_KEYS)
    return _stdlib_encoder()


def dumps_event(event: dict[str, Any]) -> bytes:
    """Encode a single event with the standard library (for the spool and the CLI)."""
    return _STDLIB(event)


_STDLIB = _stdlib_encoder()
