"""Fault injection (issue 4): random failures, outages, SIGKILL, shared spools, stalls, bad disks.

Every event logged here carries a unique ``values.seq``; the recording server's accepted
requests are checked by ``idempotency_key`` and by ``seq``: every event arrives exactly
once (at least once where a crash between send and commit allows a duplicate), or its
loss is counted in ``stats()``.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from slaos_logging import SlaOSHandler
from slaos_logging._encode import dumps_event
from slaos_logging._endpoint import resolve_base_url
from slaos_logging._spool import Spool
from slaos_logging._spool_db import endpoint_id

from .conftest import KEY
from .server import RecordingServer, Reply, random_failures, reject_marked

ROOT = Path(__file__).resolve().parent.parent
#: Short timeouts and backoff keep the whole file within CI's budget.
FAST: dict[str, Any] = {
    "backoff_base": 0.01,
    "backoff_cap": 0.2,
    "timeout": 2.0,
    "flush_interval": 0.1,
}
LOSS = ("failed", "dropped_queue_full", "dropped_shutdown", "dropped_closed", "invalid")


# -- helpers ---------------------------------------------------------------------------


class Tally:
    """The events of a server's accepted requests, parsed incrementally (cheap to poll)."""

    def __init__(self, server: RecordingServer) -> None:
        self._server = server
        self._next = 0
        self.seqs: Counter[int] = Counter()
        self.keys: Counter[str] = Counter()
        self._seq_of_key: dict[str, int] = {}
        #: Idempotency keys seen with two different seqs (must stay empty).
        self.conflicts: list[str] = []

    def update(self) -> Tally:
        """Take in every request answered since the last call."""
        requests = self._server.requests
        # In arrival order; a request still being answered (a stall) holds back later ones.
        while self._next < len(requests) and requests[self._next].final:
            request = requests[self._next]
            self._next += 1
            if request.method != "POST" or request.status != 200:
                continue
            for event in request.json():
                key, seq = event["idempotency_key"], event["values"]["seq"]
                self.keys[key] += 1
                self.seqs[seq] += 1
                if self._seq_of_key.setdefault(key, seq) != seq:
                    self.conflicts.append(key)
        return self

    def settle(self, timeout: float = 10.0) -> Tally:
        """Take in every request recorded so far, once each is fully answered.

        The client may have its answer a moment before the server marks the request
        final: after ``flush()`` this waits for that moment instead of missing it.
        """
        count = len(self._server.requests)
        wait_until(lambda: self.update()._next >= count, timeout)
        return self

    @property
    def distinct(self) -> int:
        """Distinct events accepted."""
        return len(self.seqs)

    @property
    def duplicates(self) -> int:
        """Accepted events beyond the first of their idempotency key."""
        return sum(n - 1 for n in self.keys.values())


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` runs out."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def lost(stats: dict[str, int]) -> int:
    """Every event the counters say was given up."""
    return sum(stats[name] for name in LOSS) + stats["spool_dropped"]


def settle(handler: SlaOSHandler, tally: Tally, total: int, timeout: float = 60) -> dict[str, int]:
    """Wait until every event arrived or was counted lost and the spool is empty; check it.

    Returns the final stats, after asserting no duplicates and a complete account.
    """

    def settled() -> bool:
        now = handler.stats()
        return tally.update().distinct + lost(now) >= total and now["spool_depth"] == 0

    assert wait_until(settled, timeout), str(handler.stats())
    assert handler.flush(10)
    stats = handler.stats()
    tally.settle()
    assert tally.duplicates == 0 and tally.conflicts == []
    assert tally.distinct + lost(stats) == total, stats
    return stats


def paced(log: logging.Logger, seqs: range, per_second: float, **extra: Any) -> None:
    """Log one event per seq, spread evenly at ``per_second`` (a steady application load)."""
    start = time.monotonic()
    for i, seq in enumerate(seqs):
        if i % 15 == 0:
            # Pacing is the point here: an outage lasts as long as the logging does.
            delay = start + i / per_second - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        log.info("request_finished", extra={"organization_id": "org", "seq": seq, **extra})


def burst(log: logging.Logger, seqs: range, **extra: Any) -> None:
    """Log one event per seq as fast as possible."""
    for seq in seqs:
        log.info("request_finished", extra={"organization_id": "org", "seq": seq, **extra})


def assert_exactly_once(tally: Tally, expected: set[int]) -> None:
    """Every expected seq was accepted exactly once, and nothing else was."""
    tally.settle()
    missing = expected - set(tally.seqs)
    assert not missing, f"{len(missing)} events never arrived, e.g. {sorted(missing)[:5]}"
    assert set(tally.seqs) == expected
    assert tally.duplicates == 0, f"{tally.duplicates} duplicates by idempotency key"
    assert max(tally.seqs.values()) == 1
    assert tally.conflicts == []


class Child:
    """A ``tests.fault_child`` process, with its stdout read into a queue of lines."""

    def __init__(self, server: RecordingServer, **options: Any) -> None:
        env = dict(os.environ, SLAOS_INGESTION_ID="ingest-id", SLAOS_INGESTION_KEY=KEY)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        options.setdefault("url", server.url)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fault_child", json.dumps(options)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self._errors: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_errors, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)

    def _read_errors(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._errors.append(line)

    def expect(self, tag: str, timeout: float = 120.0) -> dict[str, int]:
        """Wait for the child's next report; it must carry ``tag``; return its stats.

        The child's own waits are shorter than ``timeout``, so a child in trouble reports
        it (or dies with a traceback, shown here) before the test gives up on it.
        """
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            status = self.proc.poll()
            stderr = "".join(self._errors)[-2000:]
            raise AssertionError(
                f"child sent no {tag!r} report within {timeout:.0f} s "
                f"(exit status {status}); its stderr:\n{stderr}"
            ) from None
        got, _, stats = line.partition(" ")
        assert got == tag, line
        result: dict[str, int] = json.loads(stats)
        return result

    def send(self, line: str = "go") -> None:
        """Write one line to the child's stdin."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def kill(self) -> int:
        """SIGKILL the child; return its exit status."""
        self.proc.send_signal(signal.SIGKILL)
        return self.proc.wait(10)

    def end(self) -> None:
        """Make sure the child is gone."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def children() -> Iterator[list[Child]]:
    """Child processes started by the test; all are gone after it."""
    made: list[Child] = []
    yield made
    for child in made:
        child.end()


@pytest.fixture
def log(app_logger: logging.Logger) -> logging.Logger:
    """The test's application logger (handlers are added per test)."""
    return app_logger


# -- 1. random failures ----------------------------------------------------------------


@pytest.mark.parametrize("spool", [True, False], ids=["spool", "memory"])
def test_random_failures_lose_and_duplicate_nothing(
    spool: bool,
    server: RecordingServer,
    make_handler: Callable[..., SlaOSHandler],
    log: logging.Logger,
    tmp_path: Path,
) -> None:
    """30% 5xx, 10% dropped connections, some 429: all 20,000 events arrive exactly once."""
    server.responder = random_failures(1234, error=0.3, drop=0.1, throttle=0.03)
    options: dict[str, Any] = dict(FAST, batch_size=100)
    if spool:
        options["spool_dir"] = tmp_path / "spool"
    else:
        # Without a spool only retries save a batch: enough that giving up is
        # practically impossible (0.43 ** 31 per batch).
        options["max_retries"] = 30
    handler = make_handler(**options)
    log.addHandler(handler)
    n = 20_000
    burst(log, range(n))
    tally = Tally(server)
    assert wait_until(lambda: tally.update().distinct >= n, 60), str(handler.stats())
    assert handler.flush(10)
    stats = handler.stats()
    assert_exactly_once(tally, set(range(n)))
    assert lost(stats) == 0, stats
    assert stats["sent"] == n
    assert stats["enqueued"] == n
    assert stats["spool_depth"] == 0
    failed_requests = sum(1 for r in server.requests if r.status != 200)
    assert failed_requests > 0.2 * len(server.requests)  # the faults really happened
    assert any(r.status == 0 for r in server.requests)  # including dropped connections
    if spool:
        assert stats["spooled"] > 0
    else:
        assert stats["retries"] > 0 and stats["spooled"] == 0


# -- 2. a long outage ------------------------------------------------------------------

OUTAGE_SECONDS = 20.0
OUTAGE_EVENTS = 30_000


@pytest.mark.parametrize("spool", [True, False], ids=["spool", "memory"])
def test_outage_with_full_queue(
    spool: bool,
    server: RecordingServer,
    make_handler: Callable[..., SlaOSHandler],
    log: logging.Logger,
    tmp_path: Path,
) -> None:
    """A 20 s outage, 30,000 events, queue of 1,000: none lost with a spool, else all counted."""
    options: dict[str, Any] = dict(FAST, max_queue_size=1000)
    if spool:
        options["spool_dir"] = tmp_path / "spool"
    else:
        # Retries slow enough (about 0.65 s a batch) that the queue overflows as well.
        options["max_retries"] = 10
    handler = make_handler(**options)
    log.addHandler(handler)
    # A keep-alive connection exists before the outage, and must be cut by it.
    burst(log, range(100))
    assert handler.flush(10)
    server.go_down()
    total = 100 + OUTAGE_EVENTS
    paced(log, range(100, total), OUTAGE_EVENTS / OUTAGE_SECONDS)
    during = handler.stats()
    assert during["queue_depth"] <= 1000
    server.go_up()
    tally = Tally(server)
    stats = settle(handler, tally, total)
    if spool:
        assert_exactly_once(tally, set(range(total)))
        assert lost(stats) == 0, stats
        assert stats["spooled"] >= OUTAGE_EVENTS - 1000
    else:
        assert stats["dropped_queue_full"] > 0 and stats["failed"] > 0, stats
        assert stats["invalid"] == stats["spool_dropped"] == stats["dropped_closed"] == 0
        assert stats["enqueued"] == total - stats["dropped_queue_full"]
    assert stats["queue_depth"] == 0


# -- 3. SIGKILL during an outage -------------------------------------------------------


def test_sigkilled_process_spool_is_delivered_by_the_next(
    server: RecordingServer,
    make_handler: Callable[..., SlaOSHandler],
    children: list[Child],
    tmp_path: Path,
) -> None:
    """A child spools 5,000 events in an outage and is SIGKILLed; a new handler sends all."""
    spool_dir = tmp_path / "spool"
    server.go_down()
    child = Child(server, mode="crash", spool_dir=str(spool_dir), count=5000)
    children.append(child)
    stats = child.expect("ready")
    assert stats["spooled"] == 5000 and stats["spool_depth"] == 5000, stats
    assert child.kill() == -signal.SIGKILL
    server.go_up()
    handler = make_handler(spool_dir=spool_dir, **FAST)  # starts draining by itself
    tally = Tally(server)
    assert wait_until(lambda: tally.update().distinct >= 5000, 60), str(handler.stats())
    # Nothing was accepted while the child lived: exactly once, no crash duplicate.
    assert_exactly_once(tally, set(range(5000)))
    assert wait_until(lambda: handler.stats()["spool_depth"] == 0, 10)
    assert handler.stats()["sent"] == 5000


def test_sigkill_between_send_and_commit_duplicates_at_most_one_batch(
    server: RecordingServer,
    make_handler: Callable[..., SlaOSHandler],
    children: list[Child],
    tmp_path: Path,
) -> None:
    """A child killed while a drained batch is in flight: all arrive, at most that batch twice."""
    spool_dir = tmp_path / "spool"
    # The rows of the handlers below: same host and ingestion id.
    spool = Spool(spool_dir, endpoint=endpoint_id(resolve_base_url(server.url), "ingest-id"))
    events = [
        {
            "organization_id": "org",
            "key": "rated_api",
            "timestamp": "2024-01-01T00:00:00Z",
            "values": {"seq": seq},
            "idempotency_key": f"pre-{seq}",
        }
        for seq in range(3000)
    ]
    assert spool.put([dumps_event(e) for e in events]) == 3000
    spool.close()
    # Two batches accepted, the third is accepted by the server but the child dies first.
    server.then(Reply(), Reply(), Reply(stall=True))
    child = Child(server, mode="drain", spool_dir=str(spool_dir), batch_size=500, timeout=30)
    children.append(child)
    child.expect("started")
    assert server.wait_for_arrivals(3, timeout=30)
    child.kill()
    server.release.set()  # the stalled request is answered 200, to nobody
    handler = make_handler(spool_dir=spool_dir, batch_size=500, **FAST)
    tally = Tally(server)
    assert wait_until(lambda: tally.update().distinct >= 3000, 60), str(handler.stats())
    tally.settle()
    assert set(tally.seqs) == set(range(3000))
    assert tally.conflicts == []
    # Only the batch that was in flight at the kill may have arrived twice.
    in_flight = sorted(server.requests, key=lambda r: r.arrived)[2]
    twice = {key for key, count in tally.keys.items() if count > 1}
    assert twice <= {event["idempotency_key"] for event in in_flight.json()}
    assert tally.duplicates <= 500
    assert wait_until(lambda: handler.stats()["spool_depth"] == 0, 10)


# -- 4. four processes, one spool ------------------------------------------------------


def test_four_processes_share_a_spool_through_an_outage(
    server: RecordingServer, children: list[Child], tmp_path: Path
) -> None:
    """Four processes log through an outage into one spool: every event once, none twice."""
    spool_dir = str(tmp_path / "spool")
    server.go_down()
    during, after = 2500, 1000
    per_child = during + after
    for i in range(4):
        children.append(
            Child(
                server,
                mode="share",
                spool_dir=spool_dir,
                first=i * per_child,
                count=during,
                after=after,
                # A stalled answer could be a duplicate; none is expected here.
                timeout=30,
            )
        )
    for child in children:
        stats = child.expect("outage")
        assert stats["spooled"] == during, stats
    server.go_up()
    for child in children:
        child.send("up")
    finals = [child.expect("done", timeout=150) for child in children]
    for child in children:
        assert child.proc.wait(10) == 0
    tally = Tally(server)
    assert_exactly_once(tally, set(range(4 * per_child)))
    assert sum(s["sent"] for s in finals) == 4 * per_child
    assert all(lost(s) == 0 for s in finals), finals
    assert all(s["spool_depth"] == 0 for s in finals)


# -- 5. a stalled server ---------------------------------------------------------------


@pytest.mark.parametrize("spool", [True, False], ids=["spool", "memory"])
def test_stalled_server_keeps_queue_bounded_and_counts_everything(
    spool: bool,
    server: RecordingServer,
    make_handler: Callable[..., SlaOSHandler],
    log: logging.Logger,
    tmp_path: Path,
) -> None:
    """The server accepts but never answers: the queue stays bounded, nothing goes uncounted."""
    # Stalled requests end in a dropped connection: a batch is never accepted by a
    # server the client gave up on.
    server.responder = lambda body: Reply(stall=True, drop=True)
    options: dict[str, Any] = dict(FAST, max_queue_size=1000, timeout=0.5)
    if spool:
        options["spool_dir"] = tmp_path / "spool"
    handler = make_handler(**options, shutdown_timeout=2.0)
    log.addHandler(handler)
    total = 30_100
    # Warm up: the sender thread starts and its first request stalls.
    burst(log, range(100))
    assert server.wait_for_arrivals(1, timeout=20), "the sender never reached the server"
    depths: list[int] = []
    for seq in range(100, total):
        log.info("request_finished", extra={"organization_id": "org", "seq": seq})
        if seq % 500 == 0:
            depths.append(handler.stats()["queue_depth"])
    assert max(depths) <= 1000

    stats = handler.stats()
    if spool:
        assert stats["spooled"] > 0
    else:
        assert stats["dropped_queue_full"] > 0
    # The server answers again: what was kept arrives, the rest is counted.
    server.responder = None
    server.release.set()
    tally = Tally(server)
    settle(handler, tally, total)


@pytest.mark.parametrize("mode", ["spool", "memory"])
def test_stalled_server_holds_no_lasting_memory(mode: str, tmp_path: Path) -> None:
    """30,000 events beyond the queue's bound cost no lasting memory (measured in a child)."""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    script = ROOT / "tests" / "scripts" / "stalled_child.py"
    # The child gives up on its server after 20 s; the parent waits longer, so the
    # child's own message is the one that reaches the test report.
    done = subprocess.run(
        [sys.executable, str(script), mode, str(tmp_path / "spool")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["max_depth"] <= 1000, result
    # Unbounded, 30,000 held events would take over 10 MB; the overflow buffer (with a
    # spool) holds at most 10,000 on their way to disk.
    assert result["peak"] < 8_000_000, f"traced memory grew by {result['peak'] / 1e6:.1f} MB"
    counted = (
        result["stats"]["spooled"] if mode == "spool" else result["stats"]["dropped_queue_full"]
    )
    assert counted > 0, result["stats"]


# -- 6. an unusable spool, a full disk -------------------------------------------------


def test_spool_dir_that_cannot_be_created(
    server: RecordingServer,
    make_handler: Callable[..., SlaOSHandler],
    log: logging.Logger,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A spool_dir below a regular file: one clear error, events still delivered from memory."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    caplog.set_level(logging.ERROR, logger="slaos_logging")
    handler = make_handler(spool_dir=blocker / "spool", **FAST)
    log.addHandler(handler)
    burst(log, range(300))
    assert handler.flush(10)
    assert_exactly_once(Tally(server), set(range(300)))
    errors = [r for r in caplog.records if r.name == "slaos_logging" and r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert errors[0].exc_info is None  # a clear line, no traceback
    message = errors[0].getMessage()
    assert "spool" in message and str(blocker) in message
    assert KEY not in message
    stats = handler.stats()
    assert stats["spooled"] == stats["spool_depth"] == 0
    assert lost(stats) == 0
    assert stats["skipped"] == 0  # emit() hit no internal error


def test_disk_full_events_are_counted_not_raised(
    server: RecordingServer,
    make_handler: Callable[..., SlaOSHandler],
    log: logging.Logger,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SQLite reports the disk full during an outage: unspooled events are counted, not raised."""
    caplog.set_level(logging.ERROR, logger="slaos_logging")
    handler = make_handler(spool_dir=tmp_path / "spool", max_queue_size=200, batch_size=100, **FAST)
    log.addHandler(handler)
    link = handler._pipeline.spool
    assert link is not None and link.spool._conn is not None
    conn = link.spool._conn
    # SQLite's own limit on the file's size: inserts then fail with SQLITE_FULL
    # ("database or disk is full"), the very error a full disk gives.
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    server.go_down()
    n = 3000
    burst(log, range(n))  # must not raise

    def settled() -> bool:
        stats = handler.stats()
        taken = stats["spooled"] + stats["failed"] + stats["dropped_queue_full"]
        return taken >= n and stats["queue_depth"] == 0

    assert wait_until(settled, 30), str(handler.stats())
    stats = handler.stats()
    assert stats["spooled"] + stats["failed"] + stats["dropped_queue_full"] == n, stats
    assert stats["failed"] + stats["dropped_queue_full"] > n // 2, stats
    assert stats["skipped"] == 0  # emit() hit no internal error
    errors = [r.getMessage() for r in caplog.records if r.name == "slaos_logging"]
    assert any("could not write events to the spool" in m for m in errors), errors

    # Space again, server back: what made it to disk arrives.
    conn.execute("PRAGMA max_page_count = 1073741823")
    server.go_up()
    tally = Tally(server)
    assert wait_until(lambda: tally.update().distinct >= stats["spooled"], 30), str(handler.stats())
    assert handler.flush(10)
    final = handler.stats()
    tally.settle()
    assert tally.duplicates == 0
    assert tally.distinct + lost(final) == n, final


# -- bounds and validation during outages ------------------------------------------------


def test_small_spool_discards_oldest_and_counts_them(
    server: RecordingServer,
    make_handler: Callable[..., SlaOSHandler],
    log: logging.Logger,
    tmp_path: Path,
) -> None:
    """spool_max_bytes too small for an outage: spool_dropped counts exactly what is missing."""
    handler = make_handler(
        spool_dir=tmp_path / "spool", spool_max_bytes=30_000, max_queue_size=300, **FAST
    )
    log.addHandler(handler)
    server.go_down()
    n = 3000
    burst(log, range(n))
    assert wait_until(lambda: handler.stats()["spooled"] + lost(handler.stats()) >= n, 30)
    assert handler.stats()["spool_dropped"] > 0
    server.go_up()
    tally = Tally(server)
    stats = settle(handler, tally, n, timeout=30)
    assert stats["failed"] == stats["dropped_shutdown"] == stats["invalid"] == 0, stats


def test_invalid_events_in_a_drained_spool_are_not_spooled_again(
    server: RecordingServer,
    make_handler: Callable[..., SlaOSHandler],
    log: logging.Logger,
    tmp_path: Path,
) -> None:
    """400s while the spool drains after an outage: the bad events are dropped, the rest sent."""
    handler = make_handler(spool_dir=tmp_path / "spool", batch_size=100, **FAST)
    log.addHandler(handler)
    server.go_down()
    n = 1000
    bad = set(range(0, n, 97))
    for seq in range(n):
        extra = {"organization_id": "org", "seq": seq, "bad": seq in bad}
        log.info("request_finished", extra=extra)
    assert wait_until(lambda: handler.stats()["spooled"] >= n, 30), str(handler.stats())
    server.responder = reject_marked(400)
    server.go_up()
    tally = Tally(server)

    def settled() -> bool:
        stats = handler.stats()
        return stats["spool_depth"] == 0 and stats["invalid"] == len(bad)

    assert wait_until(settled, 30), str(handler.stats())
    assert handler.flush(10)
    stats = handler.stats()
    assert_exactly_once(tally, set(range(n)) - bad)
    assert stats["spooled"] == n  # the rejected events were not written back
    assert stats["sent"] == n - len(bad)
    assert stats["failed"] == stats["dropped_queue_full"] == 0
