"""`slaos-logging send`: JSON-lines files through the real pipeline to an in-process receiver."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pythonjsonlogger.json import JsonFormatter

from slaos_logging._encode import iso_utc
from slaos_logging.cli import _send, main
from slaos_logging.cli._jsonlines import line_key
from slaos_logging.cli._receiver import Receiver

KEY = "send-test-key-4711"
ENV_VARS = ("SLAOS_HOST", "SLAOS_INGESTION_ID", "SLAOS_INGESTION_KEY", "SLAOS_KEY")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SLAOS_* variable of the developer's shell leaks into a test."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def access_log() -> io.StringIO:
    """The receiver's access log."""
    return io.StringIO()


@pytest.fixture
def receiver(tmp_path: Path, access_log: io.StringIO) -> Iterator[Receiver]:
    """A receiver on a free loopback port with its own database."""
    with Receiver(
        db_path=tmp_path / "events.sqlite", ingestion_key=KEY, access_log=access_log
    ) as running:
        yield running


def send(receiver: Receiver, *args: str, key: str = KEY) -> int:
    """Run `send` in-process against ``receiver``."""
    connection = ["--host", receiver.url, "--ingestion-id", "dev", "--ingestion-key", key]
    return main(["send", *args, *connection, "--no-progress"])


def write_lines(path: Path, lines: list[Any]) -> Path:
    """Write JSON objects (or raw strings, written as they are) one a line."""
    with path.open("w", encoding="utf-8") as out:
        for line in lines:
            out.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
    return path


def request(n: int, org: str = "acme", **fields: Any) -> dict[str, Any]:
    """A request_finished line with a fixed timestamp and nested values."""
    line: dict[str, Any] = {
        "message": "request_finished",
        "timestamp": f"2024-08-15T10:{n // 60 % 60:02d}:{n % 60:02d}Z",
        "organization_id": org,
        "values": {"status_code": 200, "took": 0.01 * (n % 10)},
    }
    line.update(fields)
    return line


def stored(receiver: Receiver, key: str = "rated_api") -> list[dict[str, Any]]:
    """Every stored event of ``key``, oldest first."""
    return list(reversed(receiver.store.indexed(key, limit=1000)))


def summary(err: str) -> str:
    """The summary line of a run's stderr."""
    return next(line for line in err.splitlines() if line.startswith("read "))


class Collect(logging.Handler):
    """Keeps the records it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_file_written_by_python_json_logger(
    receiver: Receiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A FileHandler + JsonFormatter log: extras become values, the record time the timestamp."""
    path = tmp_path / "app.log"
    file_handler = logging.FileHandler(path, encoding="utf-8")
    file_handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    collect = Collect()
    records = collect.records
    logger = logging.getLogger("test_cli_send.app")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(file_handler)
    logger.addHandler(collect)
    try:
        for i in range(6):
            extra = {"organization_id": f"org{i % 2}", "status_code": 200 + i, "took": i / 10}
            logger.info("request_finished", extra=extra)
    finally:
        logger.removeHandler(file_handler)
        logger.removeHandler(collect)
        file_handler.close()
    assert '"levelname": "INFO"' in path.read_text().splitlines()[0]
    assert send(receiver, str(path), "--key", "rated_api") == 0
    events = stored(receiver)
    assert [e["customer_id"] for e in events] == ["org0", "org1"] * 3
    assert [e["values"] for e in events] == [
        {"status_code": 200 + i, "took": i / 10} for i in range(6)
    ]
    assert [e["timestamp"] for e in events] == [iso_utc(r.created) for r in records]
    assert summary(capsys.readouterr().err) == (
        "read 6, sent 6, skipped 0, malformed 0, invalid 0, failed 0"
    )


def test_values_nested_and_envelope_fields(receiver: Receiver, tmp_path: Path) -> None:
    """`values` is taken as it is; the line's key, timestamp and idempotency_key are kept."""
    lines = [
        request(1, other="not a value"),
        request(2, key="custom", idempotency_key="req_abc123"),
        {
            "message": "request_finished",
            "created": 1723717845.9,
            "organization_id": "acme",
            "status_code": 503,
        },
    ]
    assert send(receiver, str(write_lines(tmp_path / "n.log", lines)), "--key", "rated_api") == 0
    first, third = stored(receiver)
    assert first["values"] == {"status_code": 200, "took": 0.01}
    assert first["timestamp"] == "2024-08-15T10:00:01Z"
    assert first["idempotency_key"] == line_key(
        (json.dumps(lines[0]) + "\n").encode(), 1, "acme", "rated_api"
    )
    assert third["values"] == {"status_code": 503}
    assert third["timestamp"] == "2024-08-15T10:30:45Z"
    [custom] = stored(receiver, "custom")
    assert custom["idempotency_key"] == "req_abc123"


def test_events_filter_and_default_org(
    receiver: Receiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--events keeps only the named messages; --organization-id fills lines without one."""
    lines = [
        request(1),
        {"message": "cache_miss", "organization_id": "acme", "item": "x"},
        request(2, organization_id=None),
        {"msg": "request_started", "message": "request_finished", "organization_id": "acme"},
        {"message": "healthcheck", "organization_id": "acme"},
    ]
    path = write_lines(tmp_path / "mixed.log", lines)
    code = send(
        receiver,
        str(path),
        "--events",
        "request_finished,other",
        "--key",
        "rated_api",
        "--organization-id",
        "fallback",
    )
    assert code == 0
    assert [e["customer_id"] for e in stored(receiver)] == ["acme", "fallback"]
    err = capsys.readouterr().err
    assert summary(err) == "read 5, sent 2, skipped 3, malformed 0, invalid 0, failed 0"
    assert "skipped: 3 not in --events" in err


def test_lines_without_key_are_skipped_and_counted(
    receiver: Receiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --key, a line lacking a key makes no event and the summary says why."""
    path = write_lines(tmp_path / "k.log", [request(1, key="rated_api"), request(2)])
    assert send(receiver, str(path)) == 0
    assert len(stored(receiver)) == 1
    err = capsys.readouterr().err
    assert "skipped: 1 without key (use --key)" in err


def test_malformed_lines_are_counted_and_the_first_ten_listed(
    receiver: Receiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """15 bad lines (not JSON, not objects) are skipped; the first ten line numbers shown."""
    lines: list[Any] = []
    bad_numbers = []
    for i in range(30):
        if i % 2:
            lines.append(["not JSON {", "[1, 2]", '"text"', "42"][i % 4])
            bad_numbers.append(i + 1)
        else:
            lines.append(request(i))
    path = write_lines(tmp_path / "bad.log", lines)
    assert send(receiver, str(path), "--key", "rated_api") == 0
    assert len(stored(receiver)) == 15
    err = capsys.readouterr().err
    assert summary(err) == "read 30, sent 15, skipped 0, malformed 15, invalid 0, failed 0"
    listed = ", ".join(f"{path}:{n}" for n in bad_numbers[:10])
    assert f"out of range): 15 lines skipped (first 10: {listed})" in err


def test_stdin(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`-` reads standard input, with the same idempotency keys a file would get."""
    data = "".join(json.dumps(request(i)) + "\n" for i in range(4)).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert send(receiver, "-", "--key", "rated_api") == 0
    events = stored(receiver)
    assert len(events) == 4
    raw = data.splitlines(keepends=True)
    assert events[3]["idempotency_key"] == line_key(raw[3], 4, "acme", "rated_api")
    assert summary(capsys.readouterr().err).startswith("read 4, sent 4,")


def test_dry_run_prints_the_wire_events_and_sends_nothing(
    receiver: Receiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--dry-run needs no credentials, prints what would be sent, and sends the same later."""
    path = write_lines(tmp_path / "d.log", [request(i, values={"took": i}) for i in range(3)])
    assert main(["send", str(path), "--key", "rated_api", "--dry-run"]) == 0
    captured = capsys.readouterr()
    printed = [json.loads(line) for line in captured.out.splitlines()]
    assert [p["values"] for p in printed] == [{"took": 0}, {"took": 1}, {"took": 2}]
    assert all(p["idempotency_key"].startswith("l-") for p in printed)
    assert set(printed[0]) == {"organization_id", "key", "timestamp", "values", "idempotency_key"}
    assert "read 3, would send 3, skipped 0, malformed 0" in captured.err
    assert receiver.store.count() == 0
    assert send(receiver, str(path), "--key", "rated_api") == 0
    as_sent = [
        {
            "organization_id": e["customer_id"],
            "key": e["key"],
            "timestamp": e["timestamp"],
            "values": e["values"],
            "idempotency_key": e["idempotency_key"],
        }
        for e in stored(receiver)
    ]
    assert as_sent == printed


def test_sending_twice_stores_once(
    receiver: Receiver, tmp_path: Path, access_log: io.StringIO
) -> None:
    """Re-running on the same file changes nothing stored: every line's key is the same."""
    lines = [request(i) for i in range(10)] + [request(0)]  # a repeated line: its own event
    path = write_lines(tmp_path / "twice.log", lines)
    assert send(receiver, str(path), "--key", "rated_api") == 0
    assert receiver.store.count() == 11
    assert send(receiver, str(path), "--key", "rated_api") == 0
    assert receiver.store.count() == 11
    assert "stored=0 duplicates=11" in access_log.getvalue()


def test_wrong_key_fails_with_exit_1_and_never_shows_a_key(
    receiver: Receiver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A 401 means undelivered events: exit 1, the reason shown, no key; no spool hides it."""
    spool = tmp_path / "spool"
    monkeypatch.setenv("SLAOS_SPOOL_DIR", str(spool))
    path = write_lines(tmp_path / "w.log", [request(i) for i in range(5)])
    wrong = "wrong-key-31337"
    assert send(receiver, str(path), "--key", "rated_api", key=wrong) == 1
    err = capsys.readouterr().err
    assert summary(err) == "read 5, sent 0, skipped 0, malformed 0, invalid 0, failed 5"
    assert "refused the ingestion id or key (HTTP 401" in err and "stats()" not in err
    assert "slaos-logging: error: 5 events were not delivered" in err
    assert wrong not in err
    assert receiver.store.count() == 0
    assert not spool.exists()


def test_unreachable_host_fails_with_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A closed port with no retries: every event counted failed, exit 1."""
    with Receiver(db_path=tmp_path / "gone.sqlite") as gone:
        url = gone.url
    path = write_lines(tmp_path / "u.log", [request(i) for i in range(3)])
    argv = ["send", str(path), "--key", "rated_api", "--host", url, "--max-retries", "0"]
    assert main([*argv, "--ingestion-id", "dev", "--ingestion-key", KEY, "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert summary(err).endswith("failed 3")
    assert KEY not in err


def test_large_file_is_never_dropped_by_a_full_queue(
    receiver: Receiver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """5,000 lines through a 300-event queue: backpressure, not drops, and all stored."""
    monkeypatch.setattr(_send, "DEFAULT_MAX_QUEUE_SIZE", 300)
    path = write_lines(tmp_path / "big.log", [request(i, values={"n": i}) for i in range(5000)])
    assert send(receiver, str(path), "--key", "rated_api", "--batch-size", "50") == 0
    assert receiver.store.count() == 5000
    err = capsys.readouterr().err
    assert summary(err) == "read 5000, sent 5000, skipped 0, malformed 0, invalid 0, failed 0"
    assert "queue full" not in err


def test_usage_errors(
    receiver: Receiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing file (exit 1) or missing credentials (exit 2) stop before anything is sent."""
    path = write_lines(tmp_path / "ok.log", [request(1)])
    assert send(receiver, str(path), str(tmp_path / "missing.log")) == 1
    assert "cannot read" in capsys.readouterr().err
    assert main(["send", str(path), "--host", receiver.url, "--ingestion-id", "dev"]) == 2
    err = capsys.readouterr().err
    assert re.search(r"no ingestion key: pass --ingestion-key or set SLAOS_INGESTION_KEY", err)
    assert receiver.store.count() == 0
