"""Adversarial review of the lifecycle: exit, close, fork and flush bounds, counted exactly."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable

from slaos_logging import SlaOSHandler

from .deploy_support import child_env, run_script
from .server import RecordingServer, Reply
from .test_orphans import AFTER_EXIT_HOOK


def _settled(stats: dict[str, int]) -> int:
    return stats["sent"] + stats["invalid"] + stats["failed"] + stats["dropped_shutdown"]


def test_record_after_exit_hook_waits_shutdown_timeout_not_the_request_timeout(
    server: RecordingServer,
) -> None:
    """A late record at exit, server stalled, waits ~shutdown_timeout, not the request timeout."""
    server.responder = lambda body: Reply(stall=True)
    code = AFTER_EXIT_HOOK.replace("shutdown_timeout=3", "shutdown_timeout=1, timeout=25")
    started = time.monotonic()
    done = run_script(code, child_env(server), timeout=60)
    took = time.monotonic() - started
    server.release.set()
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    assert stats["enqueued"] == _settled(stats), stats
    assert stats["enqueued"] + stats["dropped_closed"] == 23, stats
    # close() at exit (1 s) plus one late delivery (1 s); the 25 s request timeout
    # must not apply once a deadline is set.
    assert took < 12, f"exit took {took:.1f}s"


def _sender_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("slaos-logging")]


def test_close_racing_the_first_records_leaves_no_second_sender(
    server: RecordingServer, make_handler: Callable[..., SlaOSHandler]
) -> None:
    """close() called while 8 threads log their first records: no thread outlives close()."""
    for round_ in range(5):
        handler = make_handler(batch_size=50, flush_interval=0.05, max_queue_size=2000)
        log = logging.getLogger(f"race-{round_}")
        log.propagate = False
        log.setLevel(logging.INFO)
        log.addHandler(handler)
        go = threading.Event()

        def work(first: int, log: logging.Logger = log, go: threading.Event = go) -> None:
            go.wait(10)
            for seq in range(first, first + 500):
                log.info("request_finished", extra={"organization_id": "org", "seq": seq})

        loggers = [threading.Thread(target=work, args=(n * 500,)) for n in range(8)]
        for thread in loggers:
            thread.start()
        go.set()
        while any(thread.is_alive() for thread in loggers):
            handler.close()
        for thread in loggers:
            thread.join(30)
        assert handler.flush(30), handler.stats()
        handler.close()
        stats = handler.stats()
        assert stats["enqueued"] == _settled(stats), stats
        logged = stats["enqueued"] + stats["dropped_queue_full"] + stats["skipped"]
        assert logged == 4000, stats
        deadline = time.monotonic() + 10
        while _sender_threads() and time.monotonic() < deadline:
            threading.Event().wait(0.05)
        assert not _sender_threads(), f"round {round_}: threads outlived close()"
        log.removeHandler(handler)
