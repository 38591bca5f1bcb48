"""Tests for the on-disk spool: real SQLite files, real processes."""

from __future__ import annotations

import glob
import logging
import multiprocessing
import os
import queue
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from slaos_logging._spool import FILENAME, Spool

_SPAWN = multiprocessing.get_context("spawn")


def _ev(n: int) -> bytes:
    return b'{"n":%04d}' % n  # 10 bytes each, so byte limits are easy to reason about


def _n(payload: bytes) -> int:
    return int(payload[5:9])


def _ns(rows: list[tuple[int, bytes]]) -> list[int]:
    return [_n(payload) for _, payload in rows]


# -- child processes (module level so the spawn context can import them) -----------------


def _claim_then_sigkill(directory: str, ids_file: str) -> None:
    rows = Spool(directory).claim(100, 10**6)
    Path(ids_file).write_text(" ".join(str(i) for i, _ in rows))
    os.kill(os.getpid(), signal.SIGKILL)


def _claim_and_hold(directory: str, ids_file: str, ready: object, done: object) -> None:
    spool = Spool(directory)
    rows = spool.claim(2, 10**6)
    Path(ids_file).write_text(" ".join(str(i) for i, _ in rows))
    ready.set()  # type: ignore[attr-defined]
    done.wait(30)  # type: ignore[attr-defined]
    spool.close()


def _drain(directory: str, out: object, barrier: object) -> None:
    errors: list[str] = []
    spool = Spool(directory, on_error=errors.append)
    seen: list[int] = []
    barrier.wait(30)  # type: ignore[attr-defined]  # start together, so claims really race
    while rows := spool.claim(37, 10**6):
        seen.extend(_ns(rows))
        time.sleep(0.002)  # stands in for the HTTP send, lets the other workers in
        spool.ack(i for i, _ in rows)
    out.put((seen, errors))  # type: ignore[attr-defined]


# -- ordering, ack, release, limits -------------------------------------------------------


def test_order_is_oldest_first_across_puts(tmp_path: Path) -> None:
    """Rows come back in insertion order across several puts and claims."""
    spool = Spool(tmp_path)
    assert spool.put([_ev(0), _ev(1), _ev(2)]) == 3
    assert spool.put([_ev(3), _ev(4)]) == 2
    first = spool.claim(2, 10**6)
    rest = spool.claim(10, 10**6)
    assert _ns(first) + _ns(rest) == [0, 1, 2, 3, 4]
    assert [i for i, _ in first + rest] == sorted(i for i, _ in first + rest)


def test_ack_deletes_rows(tmp_path: Path) -> None:
    """Acked rows are gone, for this instance and for a new one."""
    spool = Spool(tmp_path)
    spool.put([_ev(0), _ev(1), _ev(2)])
    spool.ack(i for i, _ in spool.claim(2, 10**6))
    assert spool.depth() == 1
    spool.close()
    assert _ns(Spool(tmp_path).claim(10, 10**6)) == [2]


def test_release_returns_rows_to_the_front(tmp_path: Path) -> None:
    """Released rows are claimed again before younger rows, in their original order."""
    spool = Spool(tmp_path)
    spool.put([_ev(n) for n in range(5)])
    a = spool.claim(2, 10**6)
    b = spool.claim(2, 10**6)
    assert _ns(b) == [2, 3]
    spool.release([i for i, _ in a])
    assert _ns(spool.claim(10, 10**6)) == [0, 1, 4]


def test_claim_respects_limit_and_max_bytes_but_returns_at_least_one(tmp_path: Path) -> None:
    """claim() stops at the row limit or the byte budget, but never returns nothing."""
    spool = Spool(tmp_path)
    spool.put([_ev(n) for n in range(10)])
    assert _ns(spool.claim(3, 10**6)) == [0, 1, 2]
    assert _ns(spool.claim(100, 25)) == [3, 4]
    assert _ns(spool.claim(100, 1)) == [5]
    assert spool.claim(0, 10**6) == []


def test_depth_counts_claimed_and_unclaimed(tmp_path: Path) -> None:
    """depth() counts every stored row until it is acked."""
    spool = Spool(tmp_path)
    assert spool.depth() == 0
    spool.put([_ev(n) for n in range(4)])
    rows = spool.claim(2, 10**6)
    assert spool.depth() == 4
    spool.ack(i for i, _ in rows)
    assert spool.depth() == 2


def test_size_bound_drops_oldest_unclaimed_and_counts(tmp_path: Path) -> None:
    """Over max_bytes the oldest unclaimed rows go first and are counted in dropped."""
    spool = Spool(tmp_path, max_bytes=100)
    spool.put([_ev(n) for n in range(8)])
    claimed = spool.claim(2, 10**6)
    assert spool.dropped == 0
    assert spool.put([_ev(n) for n in range(8, 13)]) == 5
    assert spool.dropped == 3
    assert spool.depth() == 10
    spool.release([i for i, _ in claimed])
    assert _ns(spool.claim(100, 10**6)) == [0, 1, *range(5, 13)]


def test_rows_persist_across_instances(tmp_path: Path) -> None:
    """A new Spool on the same directory sees what an earlier one stored."""
    first = Spool(tmp_path)
    first.put([_ev(7), _ev(8)])
    first.close()
    first.close()  # idempotent
    assert first.put([_ev(9)]) == 0
    assert _ns(Spool(tmp_path).claim(10, 10**6)) == [7, 8]


def test_close_releases_unacked_claims(tmp_path: Path) -> None:
    """Rows claimed but never acked are claimable by another instance right after close()."""
    first = Spool(tmp_path)
    first.put([_ev(1), _ev(2)])
    assert len(first.claim(10, 10**6)) == 2
    first.close()
    assert _ns(Spool(tmp_path).claim(10, 10**6)) == [1, 2]


# -- leases and owners ----------------------------------------------------------------------


def test_live_owner_lease_blocks_claim_and_release(tmp_path: Path) -> None:
    """Rows leased by a live other owner are neither claimable nor releasable by others."""
    owner = Spool(tmp_path)
    other = Spool(tmp_path)
    owner.put([_ev(0), _ev(1), _ev(2)])
    held = owner.claim(2, 10**6)
    other.release([i for i, _ in held])
    assert _ns(other.claim(10, 10**6)) == [2]
    assert other.claim(10, 10**6) == []


def test_expired_lease_is_claimable(tmp_path: Path) -> None:
    """Once a lease runs out, another owner can claim the rows."""
    owner = Spool(tmp_path, lease_seconds=0.05)
    owner.put([_ev(0)])
    assert len(owner.claim(1, 10**6)) == 1
    other = Spool(tmp_path)
    deadline = time.monotonic() + 5
    rows: list[tuple[int, bytes]] = []
    while not rows and time.monotonic() < deadline:
        rows = other.claim(1, 10**6)
        time.sleep(0.01)
    assert _ns(rows) == [0]


def test_rows_of_a_sigkilled_process_are_claimable_at_once(tmp_path: Path) -> None:
    """A claim held by a process killed with SIGKILL does not wait for its 60 s lease."""
    spool = Spool(tmp_path, lease_seconds=60)
    spool.put([_ev(0), _ev(1), _ev(2)])
    ids_file = tmp_path / "ids"
    child = _SPAWN.Process(target=_claim_then_sigkill, args=(str(tmp_path), str(ids_file)))
    child.start()
    child.join(30)
    assert child.exitcode == -signal.SIGKILL
    child_ids = [int(i) for i in ids_file.read_text().split()]
    assert len(child_ids) == 3
    rows = spool.claim(10, 10**6)
    assert [i for i, _ in rows] == child_ids


def test_lease_of_a_live_process_is_respected(tmp_path: Path) -> None:
    """Rows claimed by another live process stay hidden until it releases them."""
    spool = Spool(tmp_path)
    spool.put([_ev(n) for n in range(4)])
    ids_file = tmp_path / "ids"
    ready, done = _SPAWN.Event(), _SPAWN.Event()
    child = _SPAWN.Process(target=_claim_and_hold, args=(str(tmp_path), str(ids_file), ready, done))
    child.start()
    try:
        assert ready.wait(30), "the child never claimed its rows"
        assert _ns(spool.claim(10, 10**6)) == [2, 3]
    finally:
        done.set()
        child.join(30)
    assert child.exitcode == 0
    assert _ns(spool.claim(10, 10**6)) == [0, 1]


def test_four_processes_drain_each_row_exactly_once(tmp_path: Path) -> None:
    """Four processes claiming and acking concurrently see every row exactly once."""
    spool = Spool(tmp_path)
    for start in range(0, 4000, 1000):
        spool.put([_ev(n) for n in range(start, start + 1000)])
    out, barrier = _SPAWN.Queue(), _SPAWN.Barrier(4)
    workers = [_SPAWN.Process(target=_drain, args=(str(tmp_path), out, barrier)) for _ in range(4)]
    for worker in workers:
        worker.start()
    results = []
    for _ in workers:
        try:
            results.append(out.get(timeout=60))
        except queue.Empty:
            codes = [worker.exitcode for worker in workers]
            message = f"a drain worker sent no result in 60 s (exit codes {codes})"
            raise AssertionError(message) from None
    for worker in workers:
        worker.join(30)
    seen = [part for part, _ in results]
    assert [errors for _, errors in results] == [[], [], [], []]
    everything = [n for part in seen for n in part]
    assert sum(1 for part in seen if part) >= 2  # the workers really did interleave
    assert len(everything) == 4000
    assert sorted(everything) == list(range(4000))
    assert spool.depth() == 0


# Threads left by earlier tests (a recording server's request threads finishing their
# stalls) may still run when this test forks; the child touches only its own SQLite
# connection, which is what the test is about.
@pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded, use of fork:DeprecationWarning"
)
def test_forked_child_gets_its_own_connection(tmp_path: Path) -> None:
    """After fork the child writes through a new connection and the parent keeps working."""
    spool = Spool(tmp_path)
    spool.put([_ev(1)])
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            spool.reopen_after_fork()
            os._exit(0 if spool.put([_ev(2)]) == 1 else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert spool.put([_ev(3)]) == 1
    assert _ns(spool.claim(10, 10**6)) == [1, 2, 3]


# -- failures -----------------------------------------------------------------------------


def test_corrupt_file_is_moved_aside(tmp_path: Path) -> None:
    """A file that is not a database is renamed once and a fresh spool starts."""
    (tmp_path / FILENAME).write_bytes(b"this is not sqlite " * 500)
    errors: list[str] = []
    spool = Spool(tmp_path, on_error=errors.append)
    assert spool.available
    assert len(errors) == 1
    assert "moved" in errors[0] and ".corrupt-" in errors[0]
    aside = glob.glob(str(tmp_path / f"{FILENAME}.corrupt-*"))
    assert len(aside) == 1
    assert Path(aside[0]).read_bytes().startswith(b"this is not sqlite")
    assert spool.put([_ev(5)]) == 1
    assert _ns(spool.claim(1, 10**6)) == [5]


def test_corruption_found_while_running_starts_a_fresh_file(tmp_path: Path) -> None:
    """Damaged data pages met by claim() are reported once, moved aside and replaced."""
    first = Spool(tmp_path)
    first.put([_ev(n) + b" " * 200 for n in range(3000)])
    first.close()  # the last close checkpoints the WAL into the main file
    path = tmp_path / FILENAME
    size = path.stat().st_size
    with open(path, "r+b") as f:  # keep the header and schema, wreck the table's pages
        f.seek(size // 2)
        f.write(b"\xa5" * (size - size // 2))
    errors: list[str] = []
    spool = Spool(tmp_path, on_error=errors.append)
    assert spool.available and errors == []
    assert spool.claim(10**6, 10**9) == []
    assert len(errors) == 1 and "moved" in errors[0]
    assert glob.glob(str(tmp_path / f"{FILENAME}.corrupt-*"))
    assert spool.put([_ev(1)]) == 1
    assert _ns(spool.claim(10, 10**6)) == [1]


@pytest.mark.parametrize("under_a_file", [False, True])
def test_unusable_directory_disables_the_spool(tmp_path: Path, under_a_file: bool) -> None:
    """A spool_dir that is a file (or lies under one) reports once and turns into a no-op."""
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    directory = blocker / "spool" if under_a_file else blocker
    errors: list[str] = []
    spool = Spool(directory, on_error=errors.append)
    assert not spool.available
    assert len(errors) == 1
    assert str(directory) in errors[0] and "spool_dir" in errors[0]
    assert spool.put([_ev(1)]) == 0
    assert spool.claim(10, 10**6) == []
    assert spool.depth() == 0
    spool.ack([1])
    spool.release([1])
    spool.close()
    assert len(errors) == 1


def test_default_error_sink_is_the_library_logger(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Without on_error the message goes to the slaos_logging logger at ERROR."""
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    with caplog.at_level(logging.ERROR, logger="slaos_logging"):
        Spool(blocker)
    assert [r.name for r in caplog.records] == ["slaos_logging"]
    assert "cannot use the spool" in caplog.records[0].getMessage()


def test_disk_full_is_reported_and_survived(tmp_path: Path) -> None:
    """A full database fails put() with 0 and one report, and recovers when space returns."""
    errors: list[str] = []
    spool = Spool(tmp_path, on_error=errors.append)
    assert spool.put([_ev(0)]) == 1
    conn = spool._conn  # test hook: cap the file at its current size, a real SQLITE_FULL
    assert isinstance(conn, sqlite3.Connection)
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    big = [b"x" * 4000] * 50
    assert spool.put(big) == 0
    assert spool.put(big) == 0
    assert len(errors) == 1
    assert "full" in errors[0] and str(tmp_path) in errors[0]
    assert spool.depth() == 1
    conn.execute("PRAGMA max_page_count = 1000000")
    assert spool.put(big) == 50
    assert spool.depth() == 51
