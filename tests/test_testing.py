"""slaos_logging.testing.capture_events(): the events that would be sent, captured instead."""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from slaos_logging import SlaOSHandler, SlaOSWorker
from slaos_logging.testing import CapturedEvents, capture_events

from .integration_support import Collect, received
from .server import RecordingServer

Make = Callable[..., SlaOSHandler]


@pytest.fixture
def env_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials from the environment only, as an application's tests would have them."""
    monkeypatch.setenv("SLAOS_INGESTION_ID", "env-id")
    monkeypatch.setenv("SLAOS_INGESTION_KEY", "env-key-0123")


def no_sender_threads() -> bool:
    return not any(t.name == "slaos-logging-sender" for t in threading.enumerate())


def records() -> list[logging.LogRecord]:
    """Records covering every rule emit() applies: filters, defaults, encoding, skips."""

    def make(msg: object, name: str = "app", **extra: Any) -> logging.LogRecord:
        record = logging.LogRecord(name, logging.INFO, __file__, 1, msg, (), None)
        record.__dict__.update(extra)
        return record

    return [
        make("request_finished", organization_id="acme", status_code=500, took=0.25),
        make(
            "request_finished",
            organization_id="beta",
            key="custom_key",
            timestamp=dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.timezone.utc),
            idempotency_key="fixed-1",
            price=decimal.Decimal("1.50"),
            tags={"a"},
            when=dt.date(2024, 5, 1),
            ratio=float("nan"),
            **{"bad name!": 1},
        ),
        make("request_finished", status_code=200),  # no organization: skipped
        make("something_else", organization_id="acme"),  # not in events: skipped
        make("request_finished", organization_id="acme", timestamp="not a time"),
        make("request_finished", name="slaos_logging.x", organization_id="acme"),
        make({"unhashable": "msg"}, organization_id="acme"),  # skipped
        # structlog's ProcessorFormatter puts the event dict in msg.
        make({"event": "request_finished", "organization_id": "acme", "status_code": 201}),
        make("request_finished", organization_id=42, values={"explicit": True, "n": 1}),
    ]


def without_generated_keys(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in e.items() if k != "idempotency_key" or v == "fixed-1"} for e in events
    ]


@pytest.mark.parametrize("events", [["request_finished"], None])
def test_captured_events_equal_what_the_server_receives(
    make_handler: Make, server: RecordingServer, events: list[str] | None
) -> None:
    """The same records, captured and then sent, give the same events and the same skips."""
    captured_handler = make_handler(events=events)
    with capture_events() as captured:
        for record in records():
            captured_handler.handle(record)
    captured_stats = captured_handler.stats()
    sent_handler = make_handler(events=events)
    for record in records():
        sent_handler.handle(record)
    assert sent_handler.flush(10), "the handler did not flush within 10 s"
    sent = received(server, len(captured))
    assert without_generated_keys(captured) == without_generated_keys(sent)
    assert captured_stats["skipped"] == sent_handler.stats()["skipped"]
    # Non-trivial on both sides (how many of the records are events is emit()'s call).
    assert len(captured) >= 5 and captured_stats["skipped"] >= 1


def test_events_are_wire_json_decoded(make_handler: Make) -> None:
    """Values come back as the JSON slaOS reads: floats, strings, lists, null."""
    handler = make_handler()
    logger = logging.getLogger("app.wire")
    logger.addHandler(handler)
    try:
        with capture_events() as events:
            logger.warning(
                "done",
                extra={
                    "organization_id": "acme",
                    "price": decimal.Decimal("2.5"),
                    "tags": ("x",),
                    "ratio": float("inf"),
                    "a-b": 1,
                },
            )
    finally:
        logger.removeHandler(handler)
    (event,) = events
    assert set(event) == {"organization_id", "key", "timestamp", "values", "idempotency_key"}
    assert event["values"] == {"price": 2.5, "tags": ["x"], "ratio": None, "a_b": 1}
    assert event["timestamp"].endswith("Z")


def test_nothing_is_sent_and_no_thread_started(make_handler: Make, server: RecordingServer) -> None:
    """While capturing, a handler queues nothing, starts no thread and makes no request."""
    handler = make_handler()
    with capture_events() as events:
        for i in range(50):
            handler.handle(_record("request_finished", organization_id="acme", n=i))
        assert no_sender_threads(), "a sender thread was started while capturing"
    assert handler.flush(5)
    handler.close()
    assert len(events) == 50
    assert server.requests == []
    assert handler.stats()["enqueued"] == 0


def _record(msg: str, **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("app", logging.INFO, __file__, 1, msg, (), None)
    record.__dict__.update(extra)
    return record


def test_handler_with_credentials_from_environment(env_credentials: None) -> None:
    """A handler configured only by SLAOS_* variables captures; it never connects."""
    handler = SlaOSHandler(key="rated_api", host="http://127.0.0.1:9")
    try:
        with capture_events() as events:
            handler.handle(_record("request_finished", organization_id="acme"))
    finally:
        handler.close()
    assert [e["organization_id"] for e in events] == ["acme"]
    assert handler.stats()["requests"] == 0


def test_capture_needs_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """capture_events() itself reads no setting: it works with no SLAOS_* variable set."""
    for name in ("SLAOS_INGESTION_ID", "SLAOS_INGESTION_KEY", "SLAOS_HOST"):
        monkeypatch.delenv(name, raising=False)
    with capture_events() as events:
        logging.getLogger("app.nocreds").warning("request_finished")
    assert events == []


def test_worker_events_captured(make_handler: Make, server: RecordingServer) -> None:
    """SlaOSWorker.add_event is captured too, with add_event's return values."""
    with SlaOSWorker(server.url, "ingest-id", "worker-key-0123") as worker:
        with capture_events() as events:
            taken = worker.add_event(
                {"organization_id": "acme", "key": "k", "values": {"status_code": 500}}
            )
            refused = worker.add_event({"key": "k", "values": {}})  # no organization
            not_mapping = worker.add_event(["not", "a", "mapping"])  # type: ignore[arg-type]
        assert (taken, refused, not_mapping) == (True, False, False)
        assert worker.stats()["skipped"] == 2
    assert [e["values"] for e in events] == [{"status_code": 500}]
    assert server.requests == []


def test_events_from_other_threads_captured(make_handler: Make) -> None:
    """Records logged on many threads at once are all captured, each once."""
    handler = make_handler()
    per_thread, threads = 300, 6
    with capture_events() as events:

        def log(n: int) -> None:
            for i in range(per_thread):
                handler.handle(_record("e", organization_id=f"t{n}", i=i))

        workers = [threading.Thread(target=log, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30)
            assert not worker.is_alive(), "a logging thread did not finish within 30 s"
    assert len(events) == per_thread * threads
    assert len({e["idempotency_key"] for e in events}) == len(events)
    for n in range(threads):
        assert [e["values"]["i"] for e in events if e["organization_id"] == f"t{n}"] == list(
            range(per_thread)
        )


def test_nested_captures_each_see_their_span(make_handler: Make) -> None:
    """An inner block sees what is logged inside it; the outer block sees everything."""
    handler = make_handler()
    with capture_events() as outer:
        handler.handle(_record("e", organization_id="before"))
        with capture_events() as inner:
            handler.handle(_record("e", organization_id="inside"))
        handler.handle(_record("e", organization_id="after"))
    assert [e["organization_id"] for e in outer] == ["before", "inside", "after"]
    assert [e["organization_id"] for e in inner] == ["inside"]
    inner[0]["organization_id"] = "changed"
    assert outer[1]["organization_id"] == "inside", "the blocks share event dicts"


def test_overlapping_captures_end_in_any_order(make_handler: Make) -> None:
    """Two equal (empty) lists ended out of order: each stops exactly when its block ends."""
    handler = make_handler()
    first_cm, second_cm = capture_events(), capture_events()
    first, second = first_cm.__enter__(), second_cm.__enter__()
    first_cm.__exit__(None, None, None)
    handler.handle(_record("e", organization_id="acme"))
    second_cm.__exit__(None, None, None)
    assert (len(first), len(second)) == (0, 1)


def test_after_capture_events_are_sent(make_handler: Make, server: RecordingServer) -> None:
    """Once the block ends, the same handler ships to the server again."""
    handler = make_handler()
    with capture_events():
        handler.handle(_record("e", organization_id="captured"))
    handler.handle(_record("e", organization_id="sent"))
    assert handler.flush(10), "the handler did not flush within 10 s"
    assert [e["organization_id"] for e in received(server, 1)] == ["sent"]


def test_capture_ending_under_traffic_loses_and_doubles_nothing(
    make_handler: Make, server: RecordingServer
) -> None:
    """A thread logs while captures start and stop: each event is captured or sent, once."""
    handler = make_handler(flush_interval=0.05)
    captured: list[dict[str, Any]] = []
    logged = 0
    stop = threading.Event()

    def log() -> None:
        nonlocal logged
        # Bounded well below max_queue_size: a full queue would drop events.
        while not stop.is_set() and logged < 10_000:
            handler.handle(_record("e", organization_id="acme", i=logged))
            logged += 1

    thread = threading.Thread(target=log)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        for cycle in itertools.count():
            with capture_events() as events:
                stop.wait(0.001)  # the logging thread runs while the capture is on...
            captured.extend(events)
            stop.wait(0.001)  # ...and while it is off
            sent_some = handler.stats()["enqueued"] > 0
            if (cycle >= 20 and captured and sent_some) or time.monotonic() > deadline:
                break
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive(), "the logging thread did not stop within 30 s"
    assert captured and handler.stats()["enqueued"], "20 s of toggling never hit both paths"
    assert handler.flush(20), "the handler did not flush within 20 s"
    sent = received(server, logged - len(captured), timeout=10)
    numbers = sorted(e["values"]["i"] for e in [*captured, *sent])
    assert numbers == list(range(logged))


def test_closed_handler_still_captures(make_handler: Make) -> None:
    """A handler closed by a logging reconfiguration still reports to the capture."""
    handler = make_handler()
    handler.close()
    with capture_events() as events:
        handler.handle(_record("e", organization_id="acme"))
    assert len(events) == 1
    assert handler.stats()["dropped_closed"] == 0


def test_bad_timestamp_reported_while_capturing(make_handler: Make, diagnostics: Collect) -> None:
    """An unusable timestamp falls back to the record's time and is reported, as when sent."""
    handler = make_handler()
    with capture_events() as events:
        handler.handle(_record("e", organization_id="acme", timestamp="yesterday-ish", created=0))
    assert events[0]["timestamp"] != "yesterday-ish"
    assert any("unusable timestamp" in r.getMessage() for r in diagnostics.records)


def test_captured_events_helpers() -> None:
    """for_org, for_key, where, values, organizations, clear, len, indexing and equality."""
    raw = [
        {"organization_id": "acme", "key": "a", "values": {"status_code": 200}},
        {"organization_id": "beta", "key": "a", "values": {"status_code": 500}},
        {"organization_id": "acme", "key": "b", "values": {"status_code": 500, "took": 0.1}},
    ]
    events = CapturedEvents(raw)
    assert len(events) == 3 and events[0] is raw[0] and events[1:] == raw[1:]
    assert events.for_org("acme").values("status_code") == [200, 500]
    assert events.for_key("b").organizations() == ["acme"]
    assert events.values("took") == [0.1]
    assert events.where(lambda e: e["values"]["status_code"] >= 500).organizations() == [
        "beta",
        "acme",
    ]
    assert events.for_org("nobody") == [] and not events.for_org("nobody")
    assert list(events) == raw and events == CapturedEvents(list(raw))
    assert "beta" in repr(events)
    events.clear()
    assert raw == [] and len(events) == 0


@pytest.fixture
def flat_logger(make_handler: Make) -> Iterator[logging.Logger]:
    logger = logging.getLogger("app.testing.flat")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = make_handler(events=["request_finished"])
    logger.addHandler(handler)
    yield logger
    logger.removeHandler(handler)


def test_level_and_events_filter_respected(flat_logger: logging.Logger) -> None:
    """Records below the logger's level, or not in events, are not captured."""
    with capture_events() as events:
        flat_logger.debug("request_finished", extra={"organization_id": "acme"})
        flat_logger.info("other", extra={"organization_id": "acme"})
        flat_logger.info("request_finished", extra={"organization_id": "acme"})
    assert len(events) == 1


def test_capture_ending_during_extraction_ships_the_record(
    make_handler: Make, server: RecordingServer
) -> None:
    """A record whose capture ends while it is being extracted is shipped instead, once."""
    block = capture_events()

    def resolver() -> str:
        block.__exit__(None, None, None)  # the test's block ends on another thread
        return "acme"

    handler = make_handler(organization_id=resolver)
    events = block.__enter__()
    handler.handle(_record("e", n=1))
    assert handler.flush(10), "the handler did not flush within 10 s"
    assert events == []
    assert [e["values"] for e in received(server, 1)] == [{"n": 1}]
    assert handler.stats()["enqueued"] == 1


def test_worker_capture_ending_during_extraction_ships_the_event(
    server: RecordingServer,
) -> None:
    """The same race for SlaOSWorker.add_event: shipped once, not lost."""
    block = capture_events()

    def resolver() -> str:
        block.__exit__(None, None, None)
        return "acme"

    events = block.__enter__()
    with SlaOSWorker(server.url, "ingest-id", "worker-key-0123", organization_id=resolver) as w:
        assert w.add_event({"key": "k", "values": {"n": 2}})
        assert w.flush(10), "the worker did not flush within 10 s"
    assert events == []
    assert [e["values"] for e in received(server, 1)] == [{"n": 2}]


def test_handler_without_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no credentials anywhere: refused today, or, where allowed, a handler that captures."""
    for name in ("SLAOS_INGESTION_ID", "SLAOS_INGESTION_KEY", "SLAOS_ENABLED"):
        monkeypatch.delenv(name, raising=False)
    try:
        handler = SlaOSHandler(key="rated_api", events=["request_finished"])
    except ValueError as exc:  # the library's rule until handlers can be built disabled
        assert "SLAOS_INGESTION_ID" in str(exc)
        return
    try:
        with capture_events() as events:
            handler.handle(_record("request_finished", organization_id="acme", status_code=500))
            handler.handle(_record("other", organization_id="acme"))
        assert [(e["organization_id"], e["values"]) for e in events] == [
            ("acme", {"status_code": 500})
        ]
        assert no_sender_threads()
    finally:
        handler.close()


class LogsWhenShown:
    """A value whose ``__str__`` logs an event itself (a lazy ORM object might)."""

    def __init__(self, handler: SlaOSHandler) -> None:
        self.handler = handler

    def __str__(self) -> str:
        self.handler.handle(_record("e", organization_id="nested"))
        return "shown"


def test_value_that_logs_while_encoded_does_not_deadlock(make_handler: Make) -> None:
    """Encoding a captured event may log another event: both are captured, no deadlock."""
    handler = make_handler()
    events: list[dict[str, Any]] = []

    def log() -> None:
        with capture_events() as captured:
            handler.handle(_record("e", organization_id="outer", thing=LogsWhenShown(handler)))
        events.extend(captured)

    thread = threading.Thread(target=log, daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "capturing deadlocked on a value that logs when encoded"
    assert sorted(e["organization_id"] for e in events) == ["nested", "outer"]
    assert [e["values"] for e in events if e["organization_id"] == "outer"] == [{"thing": "shown"}]


FORK_SCRIPT = """
import logging, os, sys, threading, time
from slaos_logging import SlaOSHandler
from slaos_logging.testing import capture_events

handler = SlaOSHandler(
    host="http://127.0.0.1:9", ingestion_id="id", ingestion_key="key-0123", key="k"
)
log = logging.getLogger("forked")
log.addHandler(handler)
log.propagate = False
with capture_events() as events:
    log.warning("e", extra={"organization_id": "parent"})
    pid = os.fork()
    if pid == 0:
        code = 9
        try:
            log.warning("e", extra={"organization_id": "child"})
            orgs = [e["organization_id"] for e in events]
            sent = handler.stats()["enqueued"]
            threads = [t.name for t in threading.enumerate()]
            code = 0 if (orgs, sent, threads) == (["parent", "child"], 0, ["MainThread"]) else 1
            if code:
                print("child:", orgs, sent, threads, flush=True)
        finally:
            os._exit(code)
    deadline = time.monotonic() + 10  # below the test's own timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.01)  # polling waitpid: there is no blocking wait with a timeout
    else:
        sys.exit("the forked child did not exit within 10 s")
    log.warning("e", extra={"organization_id": "parent2"})
assert os.waitstatus_to_exitcode(status) == 0, status
assert [e["organization_id"] for e in events] == ["parent", "parent2"], events
assert handler.stats()["enqueued"] == 0
print("ok")
"""


def test_forked_child_captures_into_its_own_copy() -> None:
    """A child forked during a capture captures into its copy and sends nothing."""
    done = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", FORK_SCRIPT],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stdout + done.stderr


class Enriching(SlaOSHandler):
    """A subclass that adds a field, counts its calls, then lets SlaOSHandler emit."""

    calls = 0

    def emit(self, record: logging.LogRecord) -> None:
        type(self).calls += 1
        record.region = "eu"
        super().emit(record)


def test_subclass_emit_runs_once_per_record(server: RecordingServer) -> None:
    """A subclass's own emit() runs once per captured record, and its additions are kept."""
    handler = Enriching(host=server.url, ingestion_id="i", ingestion_key="k-0123", key="k")
    try:
        with capture_events() as events:
            handler.handle(_record("e", organization_id="acme"))
    finally:
        handler.close()
    assert Enriching.calls == 1
    assert [e["values"] for e in events] == [{"region": "eu"}]
