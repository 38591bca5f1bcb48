"""Every event accounted for with a spool: retries, full queues, flush/close, accounts, order.

Real SQLite files in a temporary folder and the real HTTP server of ``tests/server.py``.
"""

from __future__ import annotations

import functools
import glob
import itertools
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from slaos_logging import SlaOSHandler
from slaos_logging._spool import FILENAME, Spool

from .server import RecordingServer, Reply
from .spool_support import (
    FAST,
    accepted,
    burst,
    on_disk,
    rows_on_disk,
    seqs,
    wait_for,
    write_v1_spool,
)

#: Events of the outage burst; the full case is 200,000 (benchmarks/spool_burst.py).
BURST = int(os.environ.get("SLAOS_SPOOL_BURST_EVENTS", "50000"))
#: A burst of a few events goes out as one batch (due a second after the first event).
ONE_BATCH = {**FAST, "flush_interval": 1.0}
LOSSES = ("failed", "invalid", "dropped_queue_full", "dropped_closed", "dropped_shutdown")


def assert_adds_up(stats: dict[str, int]) -> None:
    """The README's invariant for a process alone on its spool, once flush() returned."""
    settled = ("sent", "invalid", "failed", "dropped_shutdown", "spool_depth", "spool_dropped")
    assert stats["enqueued"] == sum(stats[name] for name in settled), stats


def assert_all_sent(handler: SlaOSHandler, server: RecordingServer, total: int) -> None:
    """Every seq in ``range(total)`` accepted once, and ``stats()`` says exactly that."""
    counts = seqs(server)
    assert set(counts) == set(range(total)), f"{total - len(counts)} events missing"
    assert max(counts.values()) == 1, "an event arrived twice"
    stats = handler.stats()
    assert_adds_up(stats)
    assert stats["enqueued"] == stats["sent"] == total, stats
    assert all(stats[name] == 0 for name in LOSSES), stats
    assert stats["spool_dropped"] == stats["spool_depth"] == stats["queue_depth"] == 0, stats


# -- an unusable spool keeps in-memory retries ------------------------------------------


@pytest.mark.parametrize("failure", ["cannot_open", "disk_full"])
def test_spool_that_cannot_take_events_leaves_retries_on(
    failure: str,
    server: RecordingServer,
    make_handler: Callable[..., SlaOSHandler],
    app_logger: logging.Logger,
    tmp_path: Path,
) -> None:
    """A spool that cannot store a batch: one 503 then 200 still delivers all 10 events."""
    if failure == "cannot_open":
        blocker = tmp_path / "a-file"
        blocker.write_text("")
        handler = make_handler(spool_dir=blocker / "spool", **ONE_BATCH)
        assert handler._pipeline.spool is not None
        assert not handler._pipeline.spool.spool.available
    else:
        handler = make_handler(spool_dir=tmp_path / "spool", **ONE_BATCH)
        link = handler._pipeline.spool
        assert link is not None and link.spool._conn is not None
        # SQLite's own cap on the file: every insert fails with SQLITE_FULL, as on a
        # full disk, while the spool stays open.
        conn = link.spool._conn
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(sqlite3.OperationalError, match="full"):
            for _ in range(10_000):  # fill the last free bytes with rows nobody owns
                conn.execute(
                    "INSERT INTO events (scope, logged, payload, size) VALUES (-1, 0, x'00', 1)"
                )
    app_logger.addHandler(handler)
    server.then(Reply(503))
    burst(app_logger, 10)
    assert handler.flush(10)
    assert_all_sent(handler, server, 10)
    stats = handler.stats()
    assert stats["retries"] == 1 and stats["requests"] == 2, stats
    assert stats["spooled"] == 0, stats


def test_spool_that_takes_events_still_skips_memory_retries(
    server: RecordingServer,
    make_handler: Callable[..., SlaOSHandler],
    app_logger: logging.Logger,
    tmp_path: Path,
) -> None:
    """A working spool takes a failed batch at once, and its drain delivers it."""
    handler = make_handler(spool_dir=tmp_path / "spool", **ONE_BATCH)
    app_logger.addHandler(handler)
    server.then(Reply(503))
    burst(app_logger, 10)
    assert handler.flush(10)
    wait_for(lambda: len(seqs(server)) == 10, 10, lambda: f"sent {seqs(server)}")
    assert_all_sent(handler, server, 10)
    stats = handler.stats()
    assert stats["retries"] == 0 and stats["spooled"] == 10, stats


# -- a full queue spills everything while the spool has room ----------------------------


def test_outage_burst_with_a_small_queue_loses_nothing(
    server: RecordingServer,
    make_handler: Callable[..., SlaOSHandler],
    app_logger: logging.Logger,
    tmp_path: Path,
) -> None:
    """A burst during an outage with max_queue_size=100: all arrive once after recovery."""
    handler = make_handler(spool_dir=tmp_path / "spool", max_queue_size=100, **FAST)
    app_logger.addHandler(handler)
    server.go_down()
    burst(app_logger, BURST)
    wait_for(on_disk(handler, BURST), 120, lambda: f"not all on disk: {handler.stats()}")
    during = handler.stats()
    assert during["dropped_queue_full"] == 0, during
    assert during["enqueued"] == during["spooled"] == during["spool_depth"] == BURST, during
    server.go_up()
    wait_for(lambda: len(seqs(server)) >= BURST, 180, lambda: f"sent {handler.stats()}")
    assert handler.flush(30)
    assert_all_sent(handler, server, BURST)


# -- flush() and close() deliver what the spool holds ------------------------------------


def test_flush_delivers_the_spool_while_the_server_answers(
    server: RecordingServer,
    make_handler: Callable[..., SlaOSHandler],
    app_logger: logging.Logger,
    tmp_path: Path,
) -> None:
    """5,000 events through a queue of 100: flush() returns with every one delivered."""
    handler = make_handler(spool_dir=tmp_path / "spool", max_queue_size=100, **FAST)
    app_logger.addHandler(handler)
    burst(app_logger, 5000)
    assert handler.flush(60)
    assert_all_sent(handler, server, 5000)  # no wait: flush() itself delivered them


def test_close_delivers_the_spool_while_the_server_answers(
    server: RecordingServer,
    make_handler: Callable[..., SlaOSHandler],
    app_logger: logging.Logger,
    tmp_path: Path,
) -> None:
    """close() delivers the spool's rows too; no row is left on disk."""
    folder = tmp_path / "spool"
    handler = make_handler(spool_dir=folder, max_queue_size=100, shutdown_timeout=60, **FAST)
    app_logger.addHandler(handler)
    burst(app_logger, 5000)
    handler.close()
    assert_all_sent(handler, server, 5000)
    assert rows_on_disk(folder) == 0


def test_spool_depth_after_close_counts_what_stayed_on_disk(
    server: RecordingServer,
    make_handler: Callable[..., SlaOSHandler],
    app_logger: logging.Logger,
    tmp_path: Path,
) -> None:
    """With the server down, close() leaves the rows on disk and stats() still counts them."""
    folder = tmp_path / "spool"
    handler = make_handler(spool_dir=folder, max_queue_size=100, shutdown_timeout=5, **FAST)
    app_logger.addHandler(handler)
    server.go_down()
    burst(app_logger, 300)
    handler.close()
    stats = handler.stats()
    assert_adds_up(stats)
    assert stats["spooled"] == stats["spool_depth"] == rows_on_disk(folder) == 300, stats
    assert stats["enqueued"] == 300 and stats["sent"] == 0, stats
    assert all(stats[name] == 0 for name in LOSSES), stats


# -- rows belong to one account ------------------------------------------------------------


def test_two_accounts_sharing_a_spool_dir_each_drain_their_own(
    server: RecordingServer,
    make_handler: Callable[..., SlaOSHandler],
    app_logger: logging.Logger,
    tmp_path: Path,
) -> None:
    """Handlers of accounts A and B on one spool_dir: each event reaches its own account."""
    folder = tmp_path / "spool"
    a = make_handler(spool_dir=folder, ingestion_id="acct-a", max_queue_size=100, **FAST)
    b = make_handler(spool_dir=folder, ingestion_id="acct-b", max_queue_size=100, **FAST)
    log_a = logging.getLogger(f"{app_logger.name}.a")
    log_b = logging.getLogger(f"{app_logger.name}.b")
    for log, handler in ((log_a, a), (log_b, b)):
        log.propagate = False
        log.setLevel(logging.INFO)
        log.addHandler(handler)
    try:
        server.go_down()
        burst(log_a, 300, account="a")
        burst(log_b, 200, start=300, account="b")
        for handler, count in ((a, 300), (b, 200)):
            wait_for(on_disk(handler, count), 30, functools.partial(_stats_text, handler))
            assert handler.stats()["spool_depth"] == count, handler.stats()
        assert rows_on_disk(folder) == 500
        server.go_up()
        wait_for(lambda: len(seqs(server)) >= 500, 60, lambda: f"{a.stats()} {b.stats()}")
        assert a.flush(10) and b.flush(10)
    finally:
        log_a.removeHandler(a)
        log_b.removeHandler(b)
    for path, event in accepted(server):
        account = event["values"]["account"]
        assert f"/v1/ingest/acct-{account}/" in path, (path, event["values"])
    assert sorted(seqs(server)) == list(range(500))
    assert max(seqs(server).values()) == 1
    for handler, count in ((a, 300), (b, 200)):
        stats = handler.stats()
        assert stats["sent"] == stats["enqueued"] == count, stats
        assert stats["spool_depth"] == 0, stats


def test_spool_of_the_old_schema_is_moved_aside_not_sent(
    server: RecordingServer,
    make_handler: Callable[..., SlaOSHandler],
    app_logger: logging.Logger,
    tmp_path: Path,
    diagnostics: object,
) -> None:
    """Rows without an account are kept in a renamed file, never sent to this account."""
    folder = tmp_path / "spool"
    old = [b'{"organization_id":"old","key":"k","values":{"seq":%d}}' % n for n in range(5)]
    write_v1_spool(folder, old)
    handler = make_handler(spool_dir=folder, **FAST)
    app_logger.addHandler(handler)
    burst(app_logger, 3)
    assert handler.flush(10)
    assert_all_sent(handler, server, 3)
    messages = [r.getMessage() for r in diagnostics.records]  # type: ignore[attr-defined]
    moved = [m for m in messages if "older version" in m]
    assert len(moved) == 1, messages
    aside = glob.glob(str(folder / f"{FILENAME}.v1-*"))
    assert [p for p in aside if not p.endswith(("-wal", "-shm"))] == [aside[0]]
    assert aside[0] in moved[0] and "5 events" in moved[0]
    conn = sqlite3.connect(aside[0])
    try:
        kept = [row[0] for row in conn.execute("SELECT payload FROM events ORDER BY id")]
    finally:
        conn.close()
    assert kept == old


# -- order of logging, not of arrival on disk ----------------------------------------------


def test_drain_follows_the_order_events_were_logged(
    server: RecordingServer,
    make_handler: Callable[..., SlaOSHandler],
    app_logger: logging.Logger,
    tmp_path: Path,
) -> None:
    """Overflow reaches the disk before the older queued events; the drain still goes by seq."""
    handler = make_handler(spool_dir=tmp_path / "spool", max_queue_size=100, batch_size=50, **FAST)
    app_logger.addHandler(handler)
    server.go_down()
    burst(app_logger, 2000)
    wait_for(on_disk(handler, 2000), 30, lambda: f"not all on disk: {handler.stats()}")
    assert handler.stats()["spool_depth"] == 2000, handler.stats()
    server.go_up()
    wait_for(lambda: len(seqs(server)) >= 2000, 60, lambda: f"sent {handler.stats()}")
    order = [event["values"]["seq"] for _, event in accepted(server)]
    assert order == list(range(2000)), f"first out of order at {_first_disorder(order)}"


def _stats_text(handler: SlaOSHandler) -> str:
    return f"not all on disk: {handler.stats()}"


def _first_disorder(order: list[int]) -> int:
    return next((i for i, (x, y) in enumerate(itertools.pairwise(order)) if y < x), -1)


def test_spool_claims_and_discards_by_logging_time(tmp_path: Path) -> None:
    """Rows come back, and are discarded over the bound, earliest logged first."""
    spool = Spool(tmp_path, endpoint="e", max_bytes=40)
    assert spool.put([b"late-0001", b"late-0002"], [20.0, 21.0]) == 2
    assert spool.put([b"early-001", b"early-002"], [10.0, 11.0]) == 2
    assert [p for _, p in spool.claim(10, 10**6)] == [
        b"early-001",
        b"early-002",
        b"late-0001",
        b"late-0002",
    ]
    spool.close()
    spool = Spool(tmp_path, endpoint="e", max_bytes=40)
    assert spool.put([b"mid-00001"], [15.0]) == 1  # 45 bytes: the earliest logged goes
    assert spool.dropped == 1
    assert [p for _, p in spool.claim(10, 10**6)] == [
        b"early-002",
        b"mid-00001",
        b"late-0001",
        b"late-0002",
    ]


def test_spool_rows_of_another_endpoint_are_invisible(tmp_path: Path) -> None:
    """claim, depth and the size bound see only the instance's own endpoint."""
    a = Spool(tmp_path, endpoint="a", max_bytes=30)
    b = Spool(tmp_path, endpoint="b", max_bytes=30)
    assert a.put([b"a-000001", b"a-000002", b"a-000003"]) == 3
    assert b.put([b"b-000001"]) == 1
    assert b.put([b"b-000002", b"b-000003", b"b-000004"]) == 3  # over b's bound only
    assert (a.depth(), a.dropped, b.depth(), b.dropped) == (3, 0, 3, 1)
    assert [p for _, p in b.claim(10, 10**6)] == [b"b-000002", b"b-000003", b"b-000004"]
    assert [p for _, p in a.claim(10, 10**6)] == [b"a-000001", b"a-000002", b"a-000003"]


def test_events_stored_while_a_drain_finds_nothing_are_drained_at_once(
    make_handler: Callable[..., SlaOSHandler], tmp_path: Path
) -> None:
    """A row committed between a drain's empty claim and its end is not left for 30 s."""
    handler = make_handler(spool_dir=tmp_path / "spool", **FAST)
    link = handler._pipeline.spool
    assert link is not None
    claim = link.spool.claim
    event = {"organization_id": "o", "key": "k", "values": {"seq": 0}, "idempotency_key": "i"}

    def claim_then_store(limit: int, max_bytes: int) -> list[tuple[int, bytes]]:
        rows = claim(limit, max_bytes)
        assert link.spill([event]) == 1  # as the overflow writer would, meanwhile
        return rows

    link.spool.claim = claim_then_store  # type: ignore[method-assign]
    assert link.drain(handler._pipeline.deliverer) == 0.0
    link.spool.claim = claim  # type: ignore[method-assign]
    assert handler.stats()["spool_depth"] == 1


def test_stalled_disk_drops_and_counts_instead_of_blocking(
    server: RecordingServer,
    make_handler: Callable[..., SlaOSHandler],
    app_logger: logging.Logger,
    tmp_path: Path,
    diagnostics: object,
) -> None:
    """Another process holds the spool locked: emit() waits once, then drops and counts."""
    folder = tmp_path / "spool"
    handler = make_handler(spool_dir=folder, max_queue_size=100, **FAST)
    app_logger.addHandler(handler)
    server.go_down()
    blocker = sqlite3.connect(folder / FILENAME, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # the writer's inserts now wait, then fail
    try:
        started = time.monotonic()
        burst(app_logger, 20_000)
        elapsed = time.monotonic() - started
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert elapsed < 30, f"emit() blocked for {elapsed:.1f} s on a stalled disk"
    during = handler.stats()
    assert during["dropped_queue_full"] > 0, during
    server.go_up()

    def settled() -> bool:
        stats = handler.stats()
        return stats["queue_depth"] == handler._pipeline.spool.waiting() == 0 and (  # type: ignore[union-attr]
            stats["sent"] + stats["failed"] == stats["enqueued"]
        )

    wait_for(settled, 60, lambda: f"not settled: {handler.stats()}")
    assert handler.flush(30)
    stats = handler.stats()
    assert_adds_up(stats)
    assert stats["enqueued"] + stats["dropped_queue_full"] == 20_000, stats
    # A batch the locked spool could not take was retried in memory (failed, if the
    # lock outlived its retries); everything else arrived exactly once.
    assert stats["sent"] + stats["failed"] == stats["enqueued"], stats
    assert stats["sent"] == sum(seqs(server).values()) == len(seqs(server)), stats
    assert stats["spool_depth"] == stats["spool_dropped"] == 0, stats
    messages = [r.getMessage() for r in diagnostics.records]  # type: ignore[attr-defined]
    assert sum("made no progress" in m for m in messages) == 1, messages
