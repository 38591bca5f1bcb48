"""The ingestion key never shows: not in any log line, repr, stats or console output."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from slaos_logging import SlaOSHandler, SlaOSWorker

from .conftest import KEY
from .server import RecordingServer, Reply


class _Lines(logging.Handler):
    """Keeps every record fully formatted, traceback included."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def lines() -> Iterator[_Lines]:
    """Every logger's records at DEBUG, via the root logger (restored after the test)."""
    handler = _Lines()
    root = logging.getLogger()
    root.addHandler(handler)
    # Levels on the loggers that talk, not on root: a test runner may reset root's level
    # between a test's phases.
    talkers = [logging.getLogger(name) for name in ("urllib3", "slaos_logging", "slaos")]
    saved = [logger.level for logger in talkers]
    for logger in talkers:
        logger.setLevel(logging.DEBUG)
    yield handler
    for logger, level in zip(talkers, saved, strict=True):
        logger.setLevel(level)
    root.removeHandler(handler)


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _always(reply: Reply) -> Callable[[bytes], Reply]:
    return lambda body: reply


# (responder, handler options, whether urllib3 logs the request line)
BRANCHES: dict[str, tuple[Callable[[bytes], Reply] | None, dict[str, Any], bool]] = {
    "connection-refused": (None, {"max_retries": 1}, False),
    "connection-dropped": (_always(Reply(drop=True)), {"max_retries": 1}, False),
    "timeout": (_always(Reply(stall=True)), {"max_retries": 1, "timeout": 0.2}, False),
    "500-exhausted": (_always(Reply(status=500, echo_path=True)), {"max_retries": 1}, True),
    "401": (_always(Reply(status=401, echo_path=True)), {}, True),
    "400-echoing-path": (_always(Reply(status=400, echo_path=True)), {}, True),
    "413": (_always(Reply(status=413, echo_path=True)), {}, True),
}


def _assert_clean(text: str) -> None:
    assert KEY not in text


@pytest.mark.parametrize("branch", list(BRANCHES))
def test_key_never_shown(
    make_handler: Callable[..., SlaOSHandler],
    server: RecordingServer,
    app_logger: logging.Logger,
    lines: _Lines,
    capfd: pytest.CaptureFixture[str],
    branch: str,
) -> None:
    """Under each failure, no log line, repr, str, stats or console text holds the key."""
    responder, options, logs_request_line = BRANCHES[branch]
    if responder is None:
        options = {**options, "host": _closed_port_url()}
    server.responder = responder
    handler = make_handler(flush_interval=60, **options)
    app_logger.addHandler(handler)
    for n in range(3):
        app_logger.info("request_finished", extra={"organization_id": "acme", "n": n})
    assert handler.flush(5)
    stats = handler.stats()
    assert stats["sent"] == 0
    assert stats["failed"] + stats["invalid"] == 3
    own = [line for line in lines.lines if line.startswith("slaos_logging ")]
    assert own, "the failure should have been reported"
    if logs_request_line:
        # urllib3 did log the request path, with the key masked.
        assert any("/v1/ingest/ingest-id/" in line for line in lines.lines if "urllib3" in line)
    for line in lines.lines:
        _assert_clean(line)
    _assert_clean(repr(handler))
    _assert_clean(str(handler))
    _assert_clean(repr(stats))
    handler.close()
    for line in lines.lines:
        _assert_clean(line)
    captured = capfd.readouterr()
    _assert_clean(captured.out)
    _assert_clean(captured.err)


def test_worker_never_shows_key(
    server: RecordingServer, lines: _Lines, capfd: pytest.CaptureFixture[str]
) -> None:
    """SlaOSWorker's repr, stats and diagnostics hold no key, even when the server echoes it."""
    server.responder = _always(Reply(status=401, echo_path=True))
    worker = SlaOSWorker(
        server.url, "ingest-id", KEY, max_retries=1, retry_delay=0.01, flush_interval=60
    )
    try:
        assert worker.add_event(
            {"organization_id": "acme", "key": "rated_api", "values": {"took": 1}}
        )
        assert worker.flush(5)
        assert worker.stats()["failed"] == 1
        _assert_clean(repr(worker))
        _assert_clean(str(worker))
        _assert_clean(repr(worker.stats()))
    finally:
        worker.close()
    assert any("ingestion id or key" in line for line in lines.lines)
    for line in lines.lines:
        _assert_clean(line)
    captured = capfd.readouterr()
    _assert_clean(captured.out + captured.err)
