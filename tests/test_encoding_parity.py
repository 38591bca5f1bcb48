"""Every value encodes to the same bytes with orjson and the standard library, and always ships."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import decimal
import enum
import importlib.util
import json
import logging
import math
import pathlib
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from slaos_logging import SlaOSHandler
from slaos_logging._encode import dumps_event, make_encoder

from .server import RecordingServer, Reply

HAVE_ORJSON = importlib.util.find_spec("orjson") is not None
UTC = dt.timezone.utc


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Pair(enum.Enum):
    """An Enum with tuple values: orjson and json used to write it differently."""

    ORIGIN = (0, 0)


class Mode(str, enum.Enum):
    FAST = "fast"


@dataclasses.dataclass
class Point:
    x: int
    y: float
    tags: tuple[str, ...] = ("a",)
    at: dt.datetime = dt.datetime(2024, 7, 2, 12, 34, 56, tzinfo=UTC)


@dataclasses.dataclass(frozen=True)
class Outer:
    point: Point
    color: Color


class Custom:
    def __str__(self) -> str:
        return "custom!"


class BadStr:
    """An object whose __str__ raises."""

    def __str__(self) -> str:
        raise RuntimeError("no text for you")


class NotAStr:
    def __str__(self) -> Any:
        return 5


def _self_referencing() -> dict[str, Any]:
    d: dict[str, Any] = {"x": 1}
    d["self"] = d
    return d


def _self_referencing_list() -> list[Any]:
    items: list[Any] = [1]
    items.append(items)
    return items


def _deep(levels: int) -> list[Any]:
    top: list[Any] = []
    current = top
    for _ in range(levels):
        inner: list[Any] = []
        current.append(inner)
        current = inner
    return top


Pt = collections.namedtuple("Pt", "a b")

#: (id, value, the JSON value it must arrive as)
CASES: list[tuple[str, object, object]] = [
    # The README's documented conversions.
    ("naive-datetime", dt.datetime(2024, 7, 2, 12, 34, 56), "2024-07-02T12:34:56"),
    (
        "aware-datetime",
        dt.datetime(2024, 7, 2, 12, 34, 56, 5, tzinfo=UTC),
        "2024-07-02T12:34:56.000005+00:00",
    ),
    ("date", dt.date(2024, 7, 2), "2024-07-02"),
    ("time", dt.time(12, 30, 1), "12:30:01"),
    ("decimal", decimal.Decimal("1.25"), 1.25),
    ("decimal-small", decimal.Decimal("0.00001"), 1e-05),
    ("decimal-nan", decimal.Decimal("NaN"), None),
    ("uuid", uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
    ("path", pathlib.PurePosixPath("/var/log/app"), "/var/log/app"),
    ("enum-str", Color.RED, "red"),
    ("enum-int", Level.HIGH, 3),
    ("enum-str-mixin", Mode.FAST, "fast"),
    ("enum-tuple", Pair.ORIGIN, [0, 0]),
    ("set", {3}, [3]),
    ("frozenset", frozenset({"x"}), ["x"]),
    ("tuple", (1, "a"), [1, "a"]),
    ("namedtuple", Pt(1, 2), [1, 2]),
    ("bytes", b"caf\xc3\xa9", "café"),
    ("bad-bytes", b"ok\xff", "ok\ufffd"),
    ("bytearray", bytearray(b"ab"), "ab"),
    ("memoryview", memoryview(b"ab"), "ab"),
    ("nan", math.nan, None),
    ("inf", math.inf, None),
    ("-inf", -math.inf, None),
    ("other", Custom(), "custom!"),
    # Dataclasses: their fields, converted in turn.
    (
        "dataclass",
        Point(1, 0.5),
        {"x": 1, "y": 0.5, "tags": ["a"], "at": "2024-07-02T12:34:56+00:00"},
    ),
    (
        "nested-dataclass",
        Outer(Point(2, 1e-05), Color.RED),
        {
            "point": {"x": 2, "y": 1e-05, "tags": ["a"], "at": "2024-07-02T12:34:56+00:00"},
            "color": "red",
        },
    ),
    # Floats whose shortest text the two libraries used to write differently.
    (
        "floats",
        [0.1, 1e-05, -1e-05, 2.5e-07, 1e-09, 1e-10, 1e16, 1.5e22, 5e-324, -0.0, 0.035, 123.0],
        [0.1, 1e-05, -1e-05, 2.5e-07, 1e-09, 1e-10, 1e16, 1.5e22, 5e-324, -0.0, 0.035, 123.0],
    ),
    ("big-int", 2**70, 2**70),
    ("bool-and-null", [True, False, None], [True, False, None]),
    ("non-str-keys", {1: "a", 1.5: "b", None: "c"}, {"1": "a", "1.5": "b", "null": "c"}),
    ("date-key", {dt.date(2024, 7, 2): 5}, {"2024-07-02": 5}),
    ("enum-key", {Color.RED: 1}, {"red": 1}),
    ("text", 'café \u2028 \x00\x1f "q" \\ /', 'café \u2028 \x00\x1f "q" \\ /'),
    ("text-that-looks-numeric", {"e-05": "1e-05 0.00001"}, {"e-05": "1e-05 0.00001"}),
    ("lone-surrogate", "x \udcff", "x ?"),
    ("ordered-dict", collections.OrderedDict(b=1, a=2), {"b": 1, "a": 2}),
    # What cannot be encoded becomes a placeholder; the rest of the value stays.
    ("self-referencing-dict", _self_referencing(), {"x": 1, "self": "<unserializable dict>"}),
    ("self-referencing-list", _self_referencing_list(), [1, "<unserializable list>"]),
    ("str-raises", BadStr(), "<unserializable BadStr>"),
    ("str-not-a-str", NotAStr(), "<unserializable NotAStr>"),
    ("str-raises-in-list", [1, BadStr()], [1, "<unserializable BadStr>"]),
    ("str-raises-as-key", {BadStr(): 1}, {"<unserializable BadStr>": 1}),
    ("deep-but-fine", _deep(300), _deep(300)),
]


def _encoders() -> list[Callable[[Any], bytes]]:
    encoders = [make_encoder(use_orjson=False)]
    if HAVE_ORJSON:
        encoders.append(make_encoder(use_orjson=True))
    return encoders


@pytest.mark.parametrize(("value", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_every_encoder_writes_the_same_bytes(value: object, expected: object) -> None:
    """Each installed encoder, and the spool's single-event encoder, write identical JSON."""
    event = {"organization_id": "o", "key": "k", "values": {"v": value}}
    bodies = {encode([event]) for encode in _encoders()}
    assert len(bodies) == 1, bodies
    (body,) = bodies
    assert body == b"[" + dumps_event(event) + b"]"
    assert json.loads(body.decode("utf-8")) == [
        {"organization_id": "o", "key": "k", "values": {"v": expected}}
    ]


def test_every_encoder_agrees_on_a_whole_batch() -> None:
    """A batch holding every case at once encodes identically with each installed encoder."""
    batch = [{"values": {c[0]: c[1]}} for c in CASES]
    bodies = {encode(batch) for encode in _encoders()}
    bodies.add(b"[" + b",".join(dumps_event(event) for event in batch) + b"]")
    assert len(bodies) == 1


def test_unencodable_values_ship_as_placeholders(
    make_handler: Callable[..., SlaOSHandler], server: RecordingServer, app_logger: logging.Logger
) -> None:
    """Events holding unencodable values arrive with placeholders; none is counted invalid."""
    handler = make_handler()
    app_logger.addHandler(handler)
    app_logger.info("request_finished", extra={"organization_id": "o", "loop": _self_referencing()})
    app_logger.info("request_finished", extra={"organization_id": "o", "bad": BadStr()})
    app_logger.info("request_finished", extra={"organization_id": "o", "ok": 1})
    assert handler.flush(5)
    assert [e["values"] for e in server.events()] == [
        {"loop": {"x": 1, "self": "<unserializable dict>"}},
        {"bad": "<unserializable BadStr>"},
        {"ok": 1},
    ]
    stats = handler.stats()
    assert (stats["enqueued"], stats["sent"], stats["invalid"], stats["skipped"]) == (3, 3, 0, 0)
    assert len(server.requests) == 1  # one batch: nothing was bisected or rejected


def test_live_and_spooled_delivery_send_the_same_bytes(
    make_handler: Callable[..., SlaOSHandler],
    server: RecordingServer,
    app_logger: logging.Logger,
    tmp_path: Path,
) -> None:
    """The same event sent live and sent from the spool is the same bytes on the wire."""
    extra = {
        "organization_id": "o",
        "idempotency_key": "same",
        "timestamp": "2024-07-02T12:34:56Z",
        "values": {c[0]: c[1] for c in CASES},
    }
    live = make_handler()
    app_logger.addHandler(live)
    app_logger.info("request_finished", extra=extra)
    assert live.flush(5)
    app_logger.removeHandler(live)

    server.then(Reply(status=503, body=b'{"detail":"later"}'))
    spooled = make_handler(spool_dir=tmp_path / "spool")
    app_logger.addHandler(spooled)
    app_logger.info("request_finished", extra=extra)
    assert spooled.flush(5)
    assert spooled.stats()["spooled"] == 1
    assert server.wait_for_requests(3, 10), "the spooled event was never sent again"
    bodies = [r.body for r in server.requests]
    assert [r.status for r in server.requests] == [200, 503, 200]
    assert bodies[0] == bodies[1] == bodies[2]
