"""Adversarial review of the spool: flush and close bounds, accounting, sharing."""

from __future__ import annotations

import gc
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from slaos_logging import SlaOSHandler
from slaos_logging._spool import FILENAME, Spool
from slaos_logging.cli._store import EventStore, StoreError

from .conftest import KEY
from .server import RecordingServer
from .spool_support import OTHER_UID, burst, on_disk, rows_on_disk, seqs, wait_for
from .test_spool_trust import needs_second_user, plant, shared_folder

__all__ = ["shared_folder"]  # the fixture, imported for these tests


def _check_invariants(stats: dict[str, int], logged: int) -> None:
    settled = stats["sent"] + stats["invalid"] + stats["failed"] + stats["dropped_shutdown"]
    assert stats["enqueued"] == settled + stats["spool_depth"] + stats["spool_dropped"], stats
    taken = stats["enqueued"] + stats["dropped_queue_full"] + stats["dropped_closed"]
    assert taken + stats["skipped"] == logged, stats


def _wait_for_seqs(server: RecordingServer, expected: dict[int, int]) -> None:
    # The server marks a request answered just after writing the answer the client read.
    wait_for(
        lambda: seqs(server) == expected,
        10,
        lambda: f"accepted {len(seqs(server))} distinct, expected {len(expected)} once each",
    )


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
    _wait_for_seqs(server, {seq: 1 for seq in range(50)})
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
    _wait_for_seqs(server, {0: 1, 1: 1})
    _check_invariants(handler.stats(), 2)


@needs_second_user
def test_journal_symlink_planted_by_another_user_is_refused(
    shared_folder: Path, tmp_path: Path
) -> None:
    """A link planted as SQLite's -journal in a sticky folder: the spool is refused, not opened."""
    private = tmp_path / "victim-only"
    private.mkdir(mode=0o700)
    target = private / "precious"
    target.write_bytes(b"precious")
    plant(f"symlink:{FILENAME}-journal", shared_folder, str(target))
    errors: list[str] = []
    spool = Spool(shared_folder, on_error=errors.append)
    assert not spool.available
    assert len(errors) == 1 and "symbolic link" in errors[0], errors
    assert target.read_bytes() == b"precious"
    assert (shared_folder / f"{FILENAME}-journal").is_symlink()


@needs_second_user
def test_journal_owned_by_another_user_is_refused(shared_folder: Path) -> None:
    """A -journal file of uid 65534 (a forged "hot" journal SQLite would play back) is refused."""
    journal = shared_folder / f"{FILENAME}-journal"
    journal.write_bytes(b"\xd9\xd5\x05\xf9\x20\xa1\x63\xd7" + b"\0" * 504)
    os.chown(journal, OTHER_UID, OTHER_UID)
    errors: list[str] = []
    spool = Spool(shared_folder, on_error=errors.append)
    assert not spool.available
    assert len(errors) == 1 and f"belongs to uid {OTHER_UID}" in errors[0], errors


def test_serve_store_refuses_a_symlinked_journal(tmp_path: Path) -> None:
    """`serve --db`: a -journal that is a link is refused; the link's target is not touched."""
    target = tmp_path / "target"
    (tmp_path / "events.sqlite-journal").symlink_to(target)
    with pytest.raises(StoreError, match="symbolic link"):
        EventStore(tmp_path / "events.sqlite")
    assert not target.exists()


def _log_from_threads(log: logging.Logger, threads: int, each: int) -> list[threading.Thread]:
    go = threading.Event()

    def work(first: int) -> None:
        go.wait(10)
        burst(log, each, start=first)

    started = [
        threading.Thread(target=work, args=(n * each,), name=f"app-{n}") for n in range(threads)
    ]
    for thread in started:
        thread.start()
    go.set()
    return started


def test_close_while_threads_log_into_a_full_queue_loses_nothing(
    server: RecordingServer,
    make_handler: Callable[..., SlaOSHandler],
    app_logger: logging.Logger,
    tmp_path: Path,
) -> None:
    """close() during an 8-thread burst that overflows to the spool: none dropped, none doubled."""
    handler = make_handler(
        spool_dir=tmp_path, batch_size=50, flush_interval=0.05, max_queue_size=2000
    )
    app_logger.addHandler(handler)
    loggers = _log_from_threads(app_logger, 8, 3000)
    while any(thread.is_alive() for thread in loggers):
        handler.close()
    for thread in loggers:
        thread.join(30)
        assert not thread.is_alive(), "a logging thread did not finish"
    assert handler.flush(30), handler.stats()
    handler.close()
    stats = handler.stats()
    assert stats["dropped_queue_full"] == 0, f"dropped although the spool had room: {stats}"
    _wait_for_seqs(server, {seq: 1 for seq in range(24000)})
    _check_invariants(stats, 24000)
    wait_for(
        lambda: not [t for t in threading.enumerate() if t.name.startswith("slaos-logging")],
        10,
        lambda: f"threads left after close(): {threading.enumerate()}",
    )


def test_dropped_handlers_with_a_spool_leave_no_writer_threads(
    server: RecordingServer, tmp_path: Path
) -> None:
    """20 handlers that overflowed to the spool, then dropped: no thread stays, none lost."""
    for n in range(20):
        handler = SlaOSHandler(
            host=server.url,
            ingestion_id="ingest-id",
            ingestion_key=KEY,
            key="rated_api",
            spool_dir=tmp_path,
            max_queue_size=5,
            flush_interval=30,
        )
        log = logging.getLogger(f"dropped-{n}")
        log.propagate = False
        log.setLevel(logging.INFO)
        log.addHandler(handler)
        burst(log, 40, start=n * 1000)
        log.removeHandler(handler)
        del handler
    gc.collect()
    wait_for(
        lambda: not [t for t in threading.enumerate() if t.name.startswith("slaos-logging")],
        20,
        lambda: f"threads of dropped handlers left: {threading.enumerate()}",
    )
    # What was not sent yet waits on disk for the next process: none is lost.
    wait_for(
        lambda: len(seqs(server)) + rows_on_disk(tmp_path) == 800,
        10,
        lambda: f"{len(seqs(server))} accepted + {rows_on_disk(tmp_path)} on disk != 800",
    )
    assert all(count == 1 for count in seqs(server).values()), seqs(server)
