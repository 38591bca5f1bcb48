"""Extraction: which records become events, and their organization, key, timestamp and values."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import slaos_logging
from slaos_logging import SlaOSHandler
from slaos_logging._config import build_config
from slaos_logging._extract import MISSING_KEY, MISSING_ORG, Extractor

from .server import RecordingServer

SECRET = "extract-test-secret-key"


@pytest.fixture(autouse=True)
def no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """SLAOS_KEY of the machine running the tests must not supply a default key."""
    monkeypatch.delenv("SLAOS_KEY", raising=False)


@pytest.fixture
def diagnostics() -> Iterator[list[logging.LogRecord]]:
    """Records the library logs to the ``slaos_logging`` logger during the test."""
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    own = logging.getLogger("slaos_logging")
    collector = Collect(logging.DEBUG)
    saved_level = own.level
    own.addHandler(collector)
    own.setLevel(logging.DEBUG)
    yield records
    own.removeHandler(collector)
    own.setLevel(saved_level)


def extractor(**kwargs: Any) -> Extractor:
    return Extractor(build_config(ingestion_id="ingest-id", ingestion_key=SECRET, **kwargs))


def record(msg: object = "request_finished", **extra: Any) -> logging.LogRecord:
    """A LogRecord as ``logger.info(msg, extra=extra)`` would build it."""
    rec = logging.LogRecord("app", logging.INFO, __file__, 1, msg, (), None)
    rec.__dict__.update(extra)
    return rec


def extract(ex: Extractor, rec: logging.LogRecord) -> Any:
    return ex.extract(rec.__dict__, rec.created)


def shipped(
    handler: SlaOSHandler, server: RecordingServer, logger: logging.Logger, n: int = 1
) -> list[dict[str, Any]]:
    """Flush ``handler`` and return the events the server received (expecting ``n``)."""
    assert handler.flush(5)
    if n:
        # The server records a request just after answering it: wait for the record.
        assert server.wait_for_requests(1, 5)
    events = server.events()
    assert len(events) == n
    return events


# -- organization_id -----------------------------------------------------------------------


def test_org_from_extra_beats_defaults() -> None:
    """extra's organization_id wins over the handler default and the context variable."""
    ex = extractor(organization_id="handler-org", key="k")
    with slaos_logging.organization("ctx-org"):
        pending = extract(ex, record(organization_id="extra-org"))
    assert pending[0] == "extra-org"


def test_org_from_handler_string_beats_context() -> None:
    """The handler's string default wins over the context variable."""
    ex = extractor(organization_id="handler-org", key="k")
    with slaos_logging.organization("ctx-org"):
        assert extract(ex, record())[0] == "handler-org"


def test_org_from_handler_callable() -> None:
    """A zero-argument callable default is called per record."""
    current = ["first"]
    ex = extractor(organization_id=lambda: current[0], key="k")
    assert extract(ex, record())[0] == "first"
    current[0] = "second"
    assert extract(ex, record())[0] == "second"


def _raises() -> str:
    raise RuntimeError("no request")


@pytest.mark.parametrize(
    "resolver", [_raises, lambda: None, lambda: ""], ids=["raises", "None", "empty"]
)
def test_failing_callable_falls_back_to_context(resolver: Any) -> None:
    """A callable that raises or returns nothing falls back to the context variable."""
    ex = extractor(organization_id=resolver, key="k")
    with slaos_logging.organization("ctx-org"):
        assert extract(ex, record())[0] == "ctx-org"
    assert extract(ex, record()) == MISSING_ORG


def test_org_from_context_variable() -> None:
    """slaos_logging.organization() supplies the organization inside its block only."""
    ex = extractor(key="k")
    with slaos_logging.organization("ctx-org"):
        assert slaos_logging.organization_id_var.get() == "ctx-org"
        assert extract(ex, record())[0] == "ctx-org"
    assert extract(ex, record()) == MISSING_ORG


@pytest.mark.parametrize("empty", [None, ""])
def test_empty_extra_org_falls_back(empty: object) -> None:
    """organization_id=None or "" in extra counts as absent."""
    ex = extractor(organization_id="handler-org", key="k")
    assert extract(ex, record(organization_id=empty))[0] == "handler-org"


@pytest.mark.parametrize(
    ("raw", "text"),
    [(42, "42"), (uuid.UUID(int=5), "00000000-0000-0000-0000-000000000005"), (0, "0")],
)
def test_non_string_org_becomes_string(raw: object, text: str) -> None:
    """Non-string organization ids (extra or from a callable) are converted with str()."""
    assert extract(extractor(key="k"), record(organization_id=raw))[0] == text
    assert extract(extractor(key="k", organization_id=lambda: raw), record())[0] == text


# -- key -----------------------------------------------------------------------------------


def test_key_from_extra_beats_handler() -> None:
    """extra's key wins over the handler's key."""
    pending = extract(extractor(key="handler-key"), record(organization_id="o", key="extra-key"))
    assert pending[1] == "extra-key"


def test_key_from_handler() -> None:
    """Without a key in extra, the handler's key is used."""
    assert extract(extractor(key="handler-key"), record(organization_id="o"))[1] == "handler-key"


def test_missing_key_is_a_skip_reason() -> None:
    """No key anywhere: the record is not an event."""
    assert extract(extractor(), record(organization_id="o")) == MISSING_KEY


def test_non_string_key_becomes_string() -> None:
    """A non-string key is converted with str()."""
    assert extract(extractor(), record(organization_id="o", key=7))[1] == "7"


@pytest.mark.parametrize("empty", [None, ""])
def test_empty_extra_key_falls_back_to_handler_key(empty: object) -> None:
    """key=None or "" in extra counts as absent, as organization_id does."""
    pending = extract(extractor(key="handler-key"), record(organization_id="o", key=empty))
    assert pending != MISSING_KEY
    assert pending[1] == "handler-key"


# -- timestamp and idempotency key (raw on the pending event) ------------------------------


def test_timestamp_raw_and_created_carried() -> None:
    """The raw extra timestamp and record.created travel to the sender unparsed."""
    rec = record(organization_id="o", timestamp="2024-07-02T12:34:56Z")
    pending = extract(extractor(key="k"), rec)
    assert pending[2] == "2024-07-02T12:34:56Z"
    assert pending[3] == rec.created
    assert extract(extractor(key="k"), record(organization_id="o"))[2] is None


def test_idempotency_key_raw_carried() -> None:
    """An extra idempotency_key travels as given; none gives None (the sender makes one)."""
    assert extract(extractor(key="k"), record(organization_id="o", idempotency_key=9))[5] == 9
    assert extract(extractor(key="k"), record(organization_id="o"))[5] is None


# -- values --------------------------------------------------------------------------------


def test_values_are_remaining_extra_fields() -> None:
    """Values are the extra fields, minus standard attributes and envelope fields."""
    rec = record(
        organization_id="o",
        key="k",
        timestamp=1,
        idempotency_key="i",
        took=0.03,
        status_code=200,
        taskName="t",
    )
    assert extract(extractor(), rec)[4] == {"took": 0.03, "status_code": 200}


def test_values_dict_used_as_is() -> None:
    """A dict under extra 'values' is the values; other extra fields are ignored."""
    given = {"took": 0.5, "route": "/x"}
    pending = extract(extractor(key="k"), record(organization_id="o", values=given, other=1))
    assert pending[4] == {"took": 0.5, "route": "/x"}
    given["took"] = 9  # mutating after logging must not change the event
    assert pending[4]["took"] == 0.5


def test_value_fields_restrict_extra_fields() -> None:
    """value_fields keeps only the named extra fields, never envelope fields."""
    ex = extractor(key="k", value_fields=["took", "key", "absent"])
    assert extract(ex, record(organization_id="o", took=1, status_code=200))[4] == {"took": 1}


def test_value_fields_restrict_values_dict() -> None:
    """value_fields also filters a values dict."""
    ex = extractor(key="k", value_fields=["took"])
    rec = record(organization_id="o", values={"took": 1, "status_code": 200})
    assert extract(ex, rec)[4] == {"took": 1}


def test_value_fields_never_pick_standard_attributes() -> None:
    """value_fields naming a LogRecord attribute (name, levelname) does not ship it."""
    ex = extractor(key="k", value_fields=["took", "name", "levelname", "process"])
    assert extract(ex, record(organization_id="o", took=1))[4] == {"took": 1}


# -- which records ---------------------------------------------------------------------------


def wanted(handler: SlaOSHandler, rec: logging.LogRecord) -> bool:
    """Whether the handler takes ``rec`` (rather than counting it skipped)."""
    rec.organization_id = "o"
    before = handler.stats()["skipped"]
    handler.handle(rec)
    return handler.stats()["skipped"] == before


def test_wants_without_events_takes_everything(make_handler) -> None:
    """With events=None every record is wanted, whatever its message."""
    handler = make_handler(flush_interval=60)
    assert wanted(handler, record("anything"))
    assert wanted(handler, record({"a": 1}))


def test_wants_matches_unformatted_message(make_handler) -> None:
    """Only records whose unformatted msg is listed are wanted."""
    handler = make_handler(events=["request_finished", "job %s done"], flush_interval=60)
    assert wanted(handler, record("request_finished"))
    assert not wanted(handler, record("request_started"))
    rec = record("job %s done")
    rec.args = ("42",)
    assert wanted(handler, rec)


@pytest.mark.parametrize("msg", [{"a": 1}, ["request_finished"], None, 5])
def test_wants_non_hashable_or_non_string_msg(make_handler, msg: object) -> None:
    """A dict, list or other non-string msg is simply not wanted (no TypeError)."""
    handler = make_handler(events=["request_finished"], flush_interval=60)
    assert wanted(handler, record(msg)) is False
    assert handler.stats()["enqueued"] == 0


# -- through the pipeline ------------------------------------------------------------------


def test_events_filter_ships_only_listed(make_handler, server, app_logger) -> None:
    """With events set, other messages (also non-hashable ones) are skipped and counted."""
    handler = make_handler(events=["request_finished"])
    app_logger.addHandler(handler)
    app_logger.info("request_started", extra={"organization_id": "o"})
    app_logger.info({"not": "hashable"}, extra={"organization_id": "o"})
    app_logger.info("request_finished", extra={"organization_id": "o", "took": 1})
    (event,) = shipped(handler, server, app_logger)
    assert event["values"] == {"took": 1}
    stats = handler.stats()
    assert (stats["skipped"], stats["enqueued"]) == (2, 1)


def test_missing_org_and_key_warned_once_per_reason(
    make_handler, server, app_logger, diagnostics: list[logging.LogRecord]
) -> None:
    """Records lacking org or key are skipped; each reason is warned about exactly once."""
    handler = make_handler(key=None)
    app_logger.addHandler(handler)
    for _ in range(3):
        app_logger.info("request_finished", extra={"key": "k", "took": 1})  # no org
    for _ in range(3):
        app_logger.info("request_finished", extra={"organization_id": "o"})  # no key
    shipped(handler, server, app_logger, n=0)
    assert handler.stats()["skipped"] == 6
    warnings = [r.getMessage() for r in diagnostics if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert sum("no organization_id" in w for w in warnings) == 1
    assert sum("no key" in w for w in warnings) == 1
    assert all(r.name == "slaos_logging" for r in diagnostics)
    assert not any(SECRET in w for w in warnings)


def test_org_sources_shipped(make_handler, server, app_logger) -> None:
    """Extra, handler callable and context variable all reach the server, as strings."""
    handler = make_handler(organization_id=lambda: None)
    app_logger.addHandler(handler)
    app_logger.info("request_finished", extra={"organization_id": 42})
    with slaos_logging.organization("ctx-org"):
        app_logger.info("request_finished")
    events = shipped(handler, server, app_logger, n=2)
    assert [e["organization_id"] for e in events] == ["42", "ctx-org"]


def test_envelope_shipped_from_extra(make_handler, server, app_logger) -> None:
    """key and idempotency_key from extra are sent in the envelope, not in values."""
    handler = make_handler()
    app_logger.addHandler(handler)
    app_logger.info(
        "request_finished",
        extra={"organization_id": "o", "key": "api_requests", "idempotency_key": 123, "took": 1},
    )
    (event,) = shipped(handler, server, app_logger)
    assert event["key"] == "api_requests"
    assert event["idempotency_key"] == "123"
    assert event["values"] == {"took": 1}
    assert set(event) == {"organization_id", "key", "timestamp", "values", "idempotency_key"}


def test_generated_idempotency_keys_unique_and_short(make_handler, server, app_logger) -> None:
    """Two identical records get two different short idempotency keys."""
    handler = make_handler()
    app_logger.addHandler(handler)
    for _ in range(2):
        app_logger.info("request_finished", extra={"organization_id": "o", "took": 1})
    first, second = shipped(handler, server, app_logger, n=2)
    assert first["values"] == second["values"]
    assert first["idempotency_key"] != second["idempotency_key"]
    assert all(isinstance(e["idempotency_key"], str) for e in (first, second))
    assert all(0 < len(e["idempotency_key"]) <= 30 for e in (first, second))


def test_values_dict_and_value_fields_shipped(make_handler, server, app_logger) -> None:
    """A values dict, filtered by value_fields, is what the server receives."""
    handler = make_handler(value_fields="took")
    app_logger.addHandler(handler)
    app_logger.info(
        "request_finished",
        extra={"organization_id": "o", "values": {"took": 0.2, "secret_field": "x"}},
    )
    app_logger.info("request_finished", extra={"organization_id": "o", "took": 0.3, "other": 1})
    events = shipped(handler, server, app_logger, n=2)
    assert [e["values"] for e in events] == [{"took": 0.2}, {"took": 0.3}]
