"""Adversarial review of the spool: flush and close bounds, accounting, sharing."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from slaos_logging import SlaOSHandler
from slaos_logging._spool import FILENAME

from .server import RecordingServer
from .spool_support import burst, on_disk, seqs, wait_for


def _check_invariants(stats: dict[str, int], logged: int) -> None:
    settled = stats["sent"] + stats["invalid"] + stats["failed"] + stats["dropped_shutdown"]
    assert stats["enqueued"] == settled + stats["spool_depth"] + stats["spool_dropped"], stats
    taken = stats["enqueued"] + stats["dropped_queue_full"] + stats["dropped_closed"]
    assert taken + stats["skipped"] == logged, stats


def test_flush_after_an_outage_delivers_the_spool_without_waiting_for_the_probe(
    server: RecordingServer,
    make_handler: Callable[..., SlaOSHandler],
    app_logger: logging.Logger,
    tmp_path: Path,
) -> None:
    """Once the server is back, flush() sends the spooled rows now, not at the next probe."""
    server.go_down()
    handler = make_handler(
        spool_dir=tmp_path, backoff_base=20.0, backoff_cap=30.0, timeout=1.0, flush_interval=0.05
    )
    app_logger.addHandler(handler)
    burst(app_logger, 50)
    wait_for(on_disk(handler, 50), 20, lambda: f"not spooled: {handler.stats()}")
    server.go_up()
    assert handler.flush(15), f"flush() ran out of time: {handler.stats()}"
    stats = handler.stats()
    assert stats["spool_depth"] == 0, f"flush() left rows on disk with the server up: {stats}"
    assert seqs(server) == {seq: 1 for seq in range(50)}
    _check_invariants(stats, 50)


def test_record_after_close_does_not_open_the_spool_on_the_logging_thread(
    server: RecordingServer,
    make_handler: Callable[..., SlaOSHandler],
    app_logger: logging.Logger,
    tmp_path: Path,
) -> None:
    """After close(), a record logged while another process locks the spool does not wait for it."""
    handler = make_handler(spool_dir=tmp_path)
    app_logger.addHandler(handler)
    burst(app_logger, 1)
    assert handler.flush(10), handler.stats()
    handler.close()
    locker = sqlite3.connect(tmp_path / FILENAME, isolation_level=None, timeout=10)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        burst(app_logger, 1, start=1)
        took = time.monotonic() - started
    finally:
        locker.execute("COMMIT")
        locker.close()
    # SQLite's busy timeout is 5 s: a logging call that opened the spool waited that long.
    assert took < 3, f"the logging call waited {took:.1f}s for the spool"
    assert handler.flush(10), handler.stats()
    assert seqs(server) == {0: 1, 1: 1}
    _check_invariants(handler.stats(), 2)
