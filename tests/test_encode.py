"""Encoding on the sender thread: timestamps, value names, and values as valid JSON."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import logging
import math
import pathlib
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from slaos_logging import SlaOSHandler
from slaos_logging._encode import (
    NameSanitiser,
    TimestampFormatter,
    dumps_event,
    iso_utc,
    make_encoder,
)

from .server import RecordingServer

#: 2024-07-02T12:34:56Z as epoch seconds.
EPOCH = 1719923696
STAMP = "2024-07-02T12:34:56Z"
UTC = dt.timezone.utc


class Color(enum.Enum):
    RED = "red"


class Level(enum.Enum):
    HIGH = 3


class Custom:
    def __str__(self) -> str:
        return "custom!"


def ship(
    handler: SlaOSHandler,
    server: RecordingServer,
    logger: logging.Logger,
    extra: dict[str, Any],
    *,
    created: float | None = None,
) -> dict[str, Any]:
    """Log one record through ``handler`` and return the event the server received."""
    logger.addHandler(handler)
    record = logger.makeRecord(
        logger.name, logging.INFO, __file__, 1, "request_finished", (), None, extra=extra
    )
    if created is not None:
        record.created = created
    logger.handle(record)
    assert handler.flush(5)
    # The server records a request just after answering it: wait for the record.
    assert server.wait_for_requests(1, 5)
    (event,) = server.events()
    return event


# -- timestamps: unit ----------------------------------------------------------------------


def test_iso_utc_whole_seconds_with_z() -> None:
    """Epoch seconds format as ISO 8601 UTC, fraction dropped, Z suffix."""
    assert iso_utc(EPOCH) == STAMP
    assert iso_utc(EPOCH + 0.999) == STAMP


def test_created_reuses_text_within_a_second() -> None:
    """The formatter gives the right text as seconds change, cached or not."""
    fmt = TimestampFormatter()
    assert fmt.created(EPOCH + 0.1) == STAMP
    assert fmt.created(EPOCH + 0.9) == STAMP
    assert fmt.created(EPOCH + 1.0) == "2024-07-02T12:34:57Z"
    assert fmt.created(EPOCH) == STAMP


@pytest.mark.parametrize(
    "raw",
    [
        dt.datetime(2024, 7, 2, 12, 34, 56, tzinfo=UTC),
        dt.datetime(2024, 7, 2, 12, 34, 56, 999_999, tzinfo=UTC),
        dt.datetime(2024, 7, 2, 14, 34, 56, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        dt.datetime(2024, 7, 2, 7, 34, 56, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
        "2024-07-02T12:34:56Z",
        "2024-07-02T12:34:56z",
        " 2024-07-02T12:34:56Z ",
        "2024-07-02T12:34:56.123456Z",
        "2024-07-02T12:34:56+00:00",
        "2024-07-02T14:34:56+02:00",
        "2024-07-02T07:34:56-05:00",
        "2024-07-02 12:34:56+00:00",
        EPOCH,
        float(EPOCH),
        EPOCH + 0.75,
    ],
    ids=repr,
)
def test_parse_accepted_forms(raw: object) -> None:
    """Aware datetimes, ISO strings with Z or offsets, and epoch seconds all parse.

    (Naive ones are local time: see tests/test_records.py.)
    """
    assert TimestampFormatter().parse(raw) == STAMP


@pytest.mark.parametrize(
    "raw",
    ["yesterday", "", "2024-13-45T00:00:00Z", math.nan, math.inf, 1e300, True, None, object()],
    # Stable ids (an object's repr holds its address): parallel workers must collect alike.
    ids=lambda raw: type(raw).__name__ if type(raw) is object else repr(raw),
)
def test_parse_unusable_is_none(raw: object) -> None:
    """Unparseable timestamps give None rather than raising."""
    assert TimestampFormatter().parse(raw) is None


# -- timestamps: through the pipeline -----------------------------------------------------


def test_record_created_becomes_timestamp(make_handler, server, app_logger) -> None:
    """With no timestamp in extra, record.created is sent as whole-second UTC with Z."""
    event = ship(make_handler(), server, app_logger, {"organization_id": "o"}, created=EPOCH + 0.6)
    assert event["timestamp"] == STAMP


@pytest.mark.parametrize(
    "raw",
    [
        dt.datetime(2024, 7, 2, 14, 34, 56, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        "2024-07-02T12:34:56Z",
        EPOCH + 0.25,
    ],
    ids=["aware-datetime", "iso-z", "epoch-float"],
)
def test_extra_timestamp_is_sent_as_utc(make_handler, server, app_logger, raw: object) -> None:
    """An explicit timestamp wins over record.created and is normalised to UTC."""
    handler = make_handler()
    event = ship(handler, server, app_logger, {"organization_id": "o", "timestamp": raw}, created=0)
    assert event["timestamp"] == STAMP
    assert "timestamp" not in event["values"]
    assert handler.stats()["bad_timestamps"] == 0


def test_bad_timestamp_falls_back_and_is_counted(make_handler, server, app_logger) -> None:
    """An unparseable timestamp uses record.created and bumps stats()['bad_timestamps']."""
    handler = make_handler()
    event = ship(
        handler,
        server,
        app_logger,
        {"organization_id": "o", "timestamp": "not a time"},
        created=EPOCH + 0.4,
    )
    assert event["timestamp"] == STAMP
    assert handler.stats()["bad_timestamps"] == 1


# -- value names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "clean"),
    [
        ("resp.time-ms", "resp_time_ms"),
        ("a/b", "a/b"),
        ("status_code", "status_code"),
        ("Took2", "Took2"),
        ("with space", "with_space"),
        ("café", "caf_"),
    ],
)
def test_name_sanitiser(name: str, clean: str) -> None:
    """Characters other than letters, digits, '_' and '/' become '_'."""
    assert NameSanitiser()({name: 1}) == {clean: 1}


def test_name_sanitiser_keeps_order_and_values_when_cached() -> None:
    """A second pass over the same names (served from the cache) gives the same result."""
    names = NameSanitiser()
    first = names({"ok": 1, "a.b": 2})
    second = names({"ok": 1, "a.b": 2})
    assert first == second == {"ok": 1, "a_b": 2}
    assert list(first) == ["ok", "a_b"]
    clean = {"ok": 1, "a/b": 2}
    assert names(clean) == clean


def test_name_sanitiser_stringifies_non_string_names() -> None:
    """Non-string names (from a values dict) become strings."""
    assert NameSanitiser()({7: "x", ("a", 1): "y"}) == {"7": "x", "__a___1_": "y"}


def test_names_sanitised_in_shipped_event(make_handler, server, app_logger) -> None:
    """Value names are sanitised in the JSON the server receives."""
    extra = {"organization_id": "o", "resp.time-ms": 5, "a/b": 1}
    event = ship(make_handler(), server, app_logger, extra)
    assert event["values"] == {"resp_time_ms": 5, "a/b": 1}


# -- values: through the pipeline ---------------------------------------------------------

CONVERSIONS: list[tuple[str, object, object]] = [
    ("naive-datetime", dt.datetime(2024, 7, 2, 12, 34, 56), "2024-07-02T12:34:56"),
    (
        "aware-datetime",
        dt.datetime(2024, 7, 2, 12, 34, 56, tzinfo=UTC),
        "2024-07-02T12:34:56+00:00",
    ),
    ("date", dt.date(2024, 7, 2), "2024-07-02"),
    ("decimal", decimal.Decimal("1.25"), 1.25),
    ("decimal-nan", decimal.Decimal("NaN"), None),
    ("uuid", uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
    ("path", pathlib.PurePosixPath("/var/log/app"), "/var/log/app"),
    ("enum-str", Color.RED, "red"),
    ("enum-int", Level.HIGH, 3),
    ("set", {3}, [3]),
    ("frozenset", frozenset({"x"}), ["x"]),
    ("tuple", (1, "a"), [1, "a"]),
    ("bytes", b"caf\xc3\xa9", "café"),
    ("bad-bytes", b"ok\xff", "ok\ufffd"),
    ("nan", math.nan, None),
    ("inf", math.inf, None),
    ("-inf", -math.inf, None),
    (
        "nested-non-finite",
        {"a": [1.5, math.nan], "b": {"c": (math.inf,)}},
        {"a": [1.5, None], "b": {"c": [None]}},
    ),
    ("other", Custom(), "custom!"),
    ("plain", {"n": 1, "s": "x", "t": True, "z": None}, {"n": 1, "s": "x", "t": True, "z": None}),
]


@pytest.mark.parametrize(
    ("value", "expected"), [c[1:] for c in CONVERSIONS], ids=[c[0] for c in CONVERSIONS]
)
def test_value_conversion_shipped(
    make_handler, server: RecordingServer, app_logger, value: object, expected: object
) -> None:
    """Each value type arrives at the server as the documented JSON."""
    event = ship(make_handler(), server, app_logger, {"organization_id": "o", "v": value})
    assert event["values"] == {"v": expected}
    (request,) = server.requests
    json.loads(request.body.decode("utf-8"))  # strict UTF-8, and no NaN/Infinity literals
    assert b"NaN" not in request.body
    assert b"Infinity" not in request.body


# -- values: encoder unit -----------------------------------------------------------------


@pytest.fixture(params=[True, False], ids=["orjson-if-installed", "stdlib"])
def encode(request: pytest.FixtureRequest) -> Callable[[Any], bytes]:
    """Each encoder the library may pick."""
    return make_encoder(use_orjson=request.param)


@pytest.mark.parametrize(
    ("value", "expected"), [c[1:] for c in CONVERSIONS], ids=[c[0] for c in CONVERSIONS]
)
def test_encoders_agree_on_every_conversion(value: object, expected: object) -> None:
    """orjson (when installed) and the standard library write the same JSON values."""
    for use_orjson in (True, False):
        body = make_encoder(use_orjson=use_orjson)([{"v": value}])
        assert json.loads(body.decode("utf-8")) == [{"v": expected}]


def test_encoder_is_compact_utf8_json(encode: Callable[[Any], bytes]) -> None:
    """The encoder writes compact JSON with non-ASCII text as UTF-8."""
    body = encode([{"values": {"name": "café", "n": 1}}])
    assert body == '[{"values":{"name":"café","n":1}}]'.encode()


def test_encoder_fast_path_keeps_finite_floats(encode: Callable[[Any], bytes]) -> None:
    """Finite floats keep their value; a non-finite one elsewhere does not disturb them."""
    assert json.loads(encode([{"a": 0.1, "b": math.nan}])) == [{"a": 0.1, "b": None}]
    assert json.loads(encode([{"a": 0.1}])) == [{"a": 0.1}]


def test_dumps_event_matches_encoder() -> None:
    """The single-event encoder applies the same conversions."""
    event = {"values": {"d": decimal.Decimal("2.5"), "x": math.inf, "c": Color.RED}}
    assert json.loads(dumps_event(event)) == {"values": {"d": 2.5, "x": None, "c": "red"}}


@pytest.mark.parametrize(
    "value",
    [
        {dt.date(2024, 7, 2): 5},
        {("GET", "/"): 3},
        decimal.Decimal("sNaN"),
        "lone surrogate \udcff",
    ],
    ids=["date-keyed-dict", "tuple-keyed-dict", "signalling-nan", "lone-surrogate"],
)
def test_encoder_always_produces_valid_utf8_json(
    encode: Callable[[Any], bytes], value: object
) -> None:
    """Awkward values (non-string dict keys, sNaN, lone surrogates) still encode to valid JSON."""
    body = encode([{"values": {"v": value}, "key": "k"}])
    (event,) = json.loads(body.decode("utf-8"))
    assert event["key"] == "k"
    assert "v" in event["values"]


def test_awkward_value_does_not_lose_its_batch(make_handler, server, app_logger) -> None:
    """A date-keyed dict is shipped with string keys, and its batch neighbour still arrives."""
    handler = make_handler()
    app_logger.addHandler(handler)
    app_logger.info("request_finished", extra={"organization_id": "o", "ok": 1})
    app_logger.info(
        "request_finished", extra={"organization_id": "o", "by_day": {dt.date(2024, 7, 2): 5}}
    )
    assert handler.flush(5)
    server.wait_for_requests(1, 2)
    assert [e["values"] for e in server.events()] == [{"ok": 1}, {"by_day": {"2024-07-02": 5}}]
    assert handler.stats()["sent"] == 2


def test_encoder_callable_type() -> None:
    """make_encoder returns a callable producing bytes."""
    encode: Callable[[Any], bytes] = make_encoder()
    assert isinstance(encode([]), bytes)
    assert encode([]) == b"[]"
