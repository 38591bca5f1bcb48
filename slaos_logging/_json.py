"""Events to JSON bytes: the same bytes from orjson and from the standard library.

A batch is encoded with one call of the C encoder (orjson when the optional ``fast``
extra is installed, else the standard library's). Whatever the encoder, every value
becomes valid JSON the same way: documented conversions through ``to_json_value``,
non-finite floats as ``null``, and anything that cannot be encoded at all (a
self-referencing dict, an object whose ``__str__`` raises) as a placeholder string
such as ``"<unserializable Foo>"``, so its event still ships. Only a batch that the
fast call refuses takes the slow path that walks it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import json
import math
import re
from collections.abc import Callable
from typing import Any

# Deeper than any real event; orjson itself stops at 254 levels.
_MAX_DEPTH = 200


def placeholder(value: object) -> str:
    """The text that stands for a value no conversion could encode."""
    try:
        name = type(value).__name__
    except Exception:
        name = "object"
    return f"<unserializable {name}>"


def safe_str(value: object) -> str:
    """``str(value)``, or the placeholder if that raises."""
    try:
        text = str(value)
    except Exception:
        return placeholder(value)
    return text if isinstance(text, str) else placeholder(value)


def to_json_value(value: object) -> Any:
    """Convert what JSON cannot hold natively (the encoders' ``default`` hook). Never raises."""
    try:
        return _convert(value)
    except Exception:
        return placeholder(value)


def _convert(value: object) -> Any:
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
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
        # "Color.RED"), converted in turn like any value (a tuple becomes a list).
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # Its fields, in definition order; the encoder converts their values in turn.
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return safe_str(value)


def _scrub(value: Any, active: set[int], depth: int) -> Any:
    # Slow path: rebuild the batch as plain JSON data. Non-finite floats become null,
    # keys strings, and a value that refers back to itself (or nests absurdly deep,
    # or cannot even be walked) becomes a placeholder.
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int)) or value is None:
        return value
    if depth > _MAX_DEPTH or id(value) in active:
        return placeholder(value)
    active.add(id(value))
    try:
        if isinstance(value, dict):
            return {_key(k): _scrub(v, active, depth + 1) for k, v in list(value.items())}
        if isinstance(value, (list, tuple, set, frozenset)):
            return [_scrub(v, active, depth + 1) for v in list(value)]
        return _scrub(to_json_value(value), active, depth + 1)
    except Exception:  # changed while being walked, say
        return placeholder(value)
    finally:
        active.discard(id(value))


def _key(key: object) -> str | int | float | bool | None:
    if isinstance(key, float) and not math.isfinite(key):
        return "null"  # as orjson writes such a key
    if key is None or isinstance(key, (str, int, float)):
        return key
    converted = to_json_value(key)
    return converted if isinstance(converted, str) else safe_str(converted)


def scrubbed(event: Any) -> Any:
    """``event`` as plain JSON data, for the slow path."""
    return _scrub(event, set(), 0)


# A JSON string token, or a number token: only numbers outside strings are rewritten.
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?')


def _orjson_floats(dumps: Callable[..., bytes]) -> Callable[[bytes], bytes]:
    """Rewrites the standard library's float tokens as orjson writes them.

    Both write the shortest text that reads back as the same float, but not always
    the same text: orjson writes 1e-05 as ``0.00001`` and 2.5e-07 as ``2.5e-7``.
    Which floats differ depends on orjson's version, so the float tokens are handed to
    orjson itself; with the versions tested, only exponent forms differ, and a check
    at import decides whether the others can be left alone.
    """
    probes = (0.1, 0.035, 1e-4, 123.456, 2.0**53 + 2, 1e15, 9999999999999998.0, -0.0, 1.0)
    positional_agree = all(dumps(x) == json.dumps(x).encode() for x in probes)
    triggers = (b"e-", b"e+") if positional_agree else (b".",)

    def number(match: re.Match[bytes]) -> bytes:
        token = match.group()
        if token[:1] == b'"' or not (b"e" in token or b"." in token or b"E" in token):
            return token
        if positional_agree and b"e" not in token and b"E" not in token:
            return token
        return dumps(float(token))

    def rewrite(text: bytes) -> bytes:
        if any(t in text for t in triggers):
            return _TOKEN.sub(number, text)
        return text

    return rewrite


def _stdlib_encoder(rewrite: Callable[[bytes], bytes] | None) -> Callable[[Any], bytes]:
    strict = json.JSONEncoder(
        separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=to_json_value
    ).encode

    def one(event: Any) -> str:
        try:
            return strict(event)
        except (ValueError, TypeError, RecursionError):
            # NaN or infinity, a circular reference (ValueError), dict keys JSON
            # cannot hold (TypeError), or nesting too deep.
            return strict(scrubbed(event))

    def encode(obj: Any) -> bytes:
        try:
            text = strict(obj)
        except (ValueError, TypeError, RecursionError):
            # Event by event, so that each is written exactly as it is alone (in the
            # spool): only the event that needs it takes the slow path.
            text = "[" + ",".join(map(one, obj)) + "]" if isinstance(obj, list) else one(obj)
        # "replace": a lone surrogate (from os.fsdecode, say) must not make the body
        # invalid UTF-8.
        data = text.encode("utf-8", "replace")
        return data if rewrite is None else rewrite(data)

    return encode


def _orjson_encoder(
    dumps: Callable[..., bytes], option: int, fallback: Callable[[Any], bytes]
) -> Callable[[Any], bytes]:
    def encode(obj: Any) -> bytes:
        try:
            # orjson writes NaN and infinities as null itself.
            return dumps(obj, default=to_json_value, option=option)
        except TypeError:
            # What orjson refuses (ints beyond 64 bits, lone surrogates, tuple keys,
            # circular references...) the standard library's path handles.
            return fallback(obj)

    return encode


def _load_orjson() -> tuple[Callable[..., bytes], int] | None:
    try:
        import orjson
    except ImportError:
        return None
    # Datetimes and dataclasses go through to_json_value, as with the standard
    # library, so that both write the same bytes.
    option = (
        orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
    )
    return orjson.dumps, option


_ORJSON = _load_orjson()
# With orjson installed, the standard library's output (the spool's, and the fallback
# of a batch orjson refuses) is made to match orjson's, byte for byte.
_STDLIB = _stdlib_encoder(_orjson_floats(_ORJSON[0]) if _ORJSON is not None else None)


def make_encoder(use_orjson: bool = True) -> Callable[[Any], bytes]:
    """Return ``encode(obj) -> bytes`` producing compact, valid JSON for any event list.

    orjson (the optional ``fast`` extra) is used when it is installed: it encodes a
    batch about ten times faster, with the same bytes as the standard library's path.
    """
    if use_orjson and _ORJSON is not None:
        return _orjson_encoder(_ORJSON[0], _ORJSON[1], _STDLIB)
    return _STDLIB


def dumps_event(event: dict[str, Any]) -> bytes:
    """Encode a single event (for the spool and the CLI): the same bytes as in a batch."""
    return _STDLIB(event)
