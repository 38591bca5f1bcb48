"""Every event ends in exactly one counter: shutdown mid-batch, own idempotency keys, 5xx."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from slaos_logging import SlaOSHandler, SlaOSWorker

from .conftest import KEY
from .server import RecordingServer, Reply, _events_of

MakeHandler = Callable[..., SlaOSHandler]


def _log(logger: logging.Logger, n: int, first: int = 0) -> None:
    for i in range(first, first + n):
        logger.info("request_finished", extra={"organization_id": "acme", "n": i})


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _settled(stats: dict[str, int]) -> int:
    return stats["sent"] + stats["invalid"] + stats["failed"] + stats["dropped_shutdown"]


class SplitThenStall:
    """413 for batches of more than 3 events; the first ``ok`` smaller ones get 200, then
    every request stalls (until ``server.release``) and its connection is dropped."""

    def __init__(self, ok: int) -> None:
        self._ok = ok
        self._lock = threading.Lock()
        self.stalled = threading.Event()

    def __call__(self, body: bytes) -> Reply:
        if len(_events_of(body)) > 3:
            return Reply(status=413, body=b'{"detail":"too large"}')
        with self._lock:
            self._ok -= 1
            if self._ok >= 0:
                return Reply()
        self.stalled.set()
        return Reply(stall=True, drop=True)


def _stall_mid_split(
    server: RecordingServer, make_handler: MakeHandler, logger: logging.Logger, **options: Any
) -> SlaOSHandler:
    """Close a handler while the third chunk of its split batch of 10 stalls.

    The batch of 10 is split (413) into 5 + 5, the first 5 into 2 + 3, both answered
    200; the second 5 into 2 + 3, whose first chunk stalls until close() gives up.
    """
    responder = SplitThenStall(ok=2)
    server.responder = responder
    handler = make_handler(
        batch_size=10, flush_interval=60, shutdown_timeout=1.0, timeout=30, **options
    )
    logger.addHandler(handler)
    _log(logger, 10)
    handler.close()
    assert responder.stalled.is_set(), "the third chunk was never sent"
    # End the stalled request; the sender thread must not settle its events again.
    server.release.set()
    thread = handler._pipeline.sender.thread
    assert thread is not None
    thread.join(10)
    assert not thread.is_alive(), "the sender thread did not end after its request did"
    return handler


def test_close_mid_split_counts_settled_chunks_once(
    server: RecordingServer, make_handler: MakeHandler, app_logger: logging.Logger
) -> None:
    """close() timing out mid-split counts the 2xx chunks sent and only the rest dropped."""
    handler = _stall_mid_split(server, make_handler, app_logger)
    stats = handler.stats()
    assert (stats["enqueued"], stats["sent"], stats["dropped_shutdown"]) == (10, 5, 5)
    assert stats["enqueued"] == _settled(stats)
    assert sorted(e["values"]["n"] for e in server.events()) == [0, 1, 2, 3, 4]


def test_close_mid_split_spools_only_unsettled_events(
    server: RecordingServer,
    make_handler: MakeHandler,
    app_logger: logging.Logger,
    tmp_path: Path,
) -> None:
    """With a spool, close() mid-split writes back only the 5 unsent events, once each."""
    spool_dir = tmp_path / "spool"
    handler = _stall_mid_split(server, make_handler, app_logger, spool_dir=spool_dir)
    stats = handler.stats()
    assert (stats["enqueued"], stats["sent"], stats["spooled"]) == (10, 5, 5)
    assert stats["dropped_shutdown"] + stats["failed"] == 0
    server.responder = None
    later = make_handler(spool_dir=spool_dir)  # drains what the first one left
    _wait_for(lambda: later.stats()["sent"] >= 5, 10, "the spooled events to be delivered")
    _wait_for(lambda: later.stats()["spool_depth"] == 0, 10, "the spool to empty")
    assert later.flush(5)
    events = server.events()
    assert sorted(e["values"]["n"] for e in events) == list(range(10))
    assert len({e["idempotency_key"] for e in events}) == 10
    assert later.stats()["sent"] == 5


def test_close_during_drain_leaves_rows_once(
    server: RecordingServer, make_handler: MakeHandler, app_logger: logging.Logger, tmp_path: Path
) -> None:
    """close() timing out while a spool drain batch is in flight does not write it back again."""
    spool_dir = tmp_path / "spool"
    server.responder = lambda body: Reply(status=503, body=b'{"detail":"down"}')
    first = make_handler(spool_dir=spool_dir, flush_interval=60)
    app_logger.addHandler(first)
    _log(app_logger, 300)
    assert first.flush(10)
    _wait_for(lambda: first.stats()["spooled"] == 300, 10, "300 events spooled")
    first.close()
    app_logger.removeHandler(first)

    stalled = threading.Event()

    def stall(body: bytes) -> Reply:
        stalled.set()
        return Reply(stall=True, drop=True)

    server.responder = stall
    second = make_handler(spool_dir=spool_dir, shutdown_timeout=1.0, timeout=30)
    assert stalled.wait(10), "the second handler never sent a drain batch"
    second.close()
    server.release.set()
    thread = second._pipeline.sender.thread
    assert thread is not None
    thread.join(10)
    assert not thread.is_alive(), "the sender thread did not end after its request did"
    stats = second.stats()
    assert (stats["spooled"], stats["dropped_shutdown"], stats["sent"]) == (0, 0, 0)

    server.responder = None
    third = make_handler(spool_dir=spool_dir)
    _wait_for(lambda: third.stats()["spool_depth"] == 0, 10, "the spool to empty")
    assert third.flush(5)
    events = server.events()
    assert sorted(e["values"]["n"] for e in events) == list(range(300))
    assert len({e["idempotency_key"] for e in events}) == 300
    assert third.stats()["sent"] == 300


def test_events_with_own_idempotency_key_are_enqueued(server: RecordingServer) -> None:
    """Events carrying their own idempotency_key count in enqueued like any other."""
    worker = SlaOSWorker(server.url, "ingest-id", KEY, key="rated_api", flush_interval=60)
    try:
        for i in range(4):
            event: dict[str, Any] = {"organization_id": "acme", "values": {"n": i}}
            if i:
                event["idempotency_key"] = f"req_{i}"
            assert worker.add_event(event)
        assert worker.flush(5)
        stats = worker.stats()
    finally:
        worker.close()
    assert (stats["enqueued"], stats["sent"]) == (4, 4)
    assert stats["enqueued"] == _settled(stats)
    keys = [e["idempotency_key"] for e in server.events()]
    assert keys[1:] == ["req_1", "req_2", "req_3"]


def test_handler_counts_records_with_own_idempotency_key(
    server: RecordingServer, make_handler: MakeHandler, app_logger: logging.Logger
) -> None:
    """A record whose extra carries idempotency_key is counted enqueued once, and keeps it."""
    handler = make_handler()
    app_logger.addHandler(handler)
    app_logger.info("request_finished", extra={"organization_id": "a", "idempotency_key": 7})
    _log(app_logger, 2)
    assert handler.flush(5)
    stats = handler.stats()
    assert (stats["enqueued"], stats["sent"]) == (3, 3)
    assert server.events()[0]["idempotency_key"] == "7"


@pytest.mark.parametrize("status", [500, 502, 503, 504, 507, 508, 520, 521, 522, 523, 524, 599])
def test_server_errors_are_retried(
    status: int, server: RecordingServer, make_handler: MakeHandler, app_logger: logging.Logger
) -> None:
    """Every 5xx but 501 and 505 is retried, and the batch then arrives."""
    server.then(Reply(status=status, body=b'{"detail":"busy"}'))
    handler = make_handler()
    app_logger.addHandler(handler)
    _log(app_logger, 3)
    assert handler.flush(10)
    stats = handler.stats()
    assert (stats["enqueued"], stats["sent"], stats["failed"]) == (3, 3, 0)
    assert (stats["requests"], stats["retries"]) == (2, 1)


@pytest.mark.parametrize("status", [507, 520, 524])
def test_server_errors_are_spooled(
    status: int,
    server: RecordingServer,
    make_handler: MakeHandler,
    app_logger: logging.Logger,
    tmp_path: Path,
) -> None:
    """With a spool, a batch answered 507 or 52x goes to disk and is delivered from there."""
    server.then(Reply(status=status, body=b'{"detail":"busy"}'))
    handler = make_handler(spool_dir=tmp_path / "spool")
    app_logger.addHandler(handler)
    _log(app_logger, 3)
    _wait_for(lambda: handler.stats()["sent"] == 3, 10, "3 events delivered")
    _wait_for(lambda: handler.stats()["spool_depth"] == 0, 10, "the spool to empty")
    stats = handler.stats()
    assert (stats["enqueued"], stats["spooled"], stats["failed"]) == (3, 3, 0)
    assert sorted(e["values"]["n"] for e in server.events()) == [0, 1, 2]


@pytest.mark.parametrize("status", [501, 505])
def test_not_implemented_and_bad_version_are_not_retried(
    status: int, server: RecordingServer, make_handler: MakeHandler, app_logger: logging.Logger
) -> None:
    """501 and 505 say the request can never succeed: counted failed after one attempt."""
    server.responder = lambda body: Reply(status=status, body=b'{"detail":"no"}')
    handler = make_handler()
    app_logger.addHandler(handler)
    _log(app_logger, 3)
    assert handler.flush(10)
    stats = handler.stats()
    assert (stats["enqueued"], stats["failed"], stats["requests"], stats["retries"]) == (3, 3, 1, 0)
