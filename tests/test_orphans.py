"""Workers and handlers that are dropped, and records logged after the exit hook ran."""

from __future__ import annotations

import collections
import gc
import json
import threading
import time

from slaos_logging import SlaOSWorker

from .conftest import KEY
from .deploy_support import assert_exactly, child_env, run_script, wait_for_events
from .server import RecordingServer, Reply


def _senders() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "slaos-logging-sender")


def test_worker_created_in_a_function_delivers_at_exit(server: RecordingServer) -> None:
    """A SlaOSWorker dropped when its function returns still delivers all 1,000 events at exit."""
    code = """
        import os
        from slaos_logging import SlaOSWorker

        def report():
            worker = SlaOSWorker(
                os.environ["SLAOS_HOST"],
                os.environ["SLAOS_INGESTION_ID"],
                os.environ["SLAOS_INGESTION_KEY"],
                flush_interval=30,
                batch_size=5000,
            )
            for seq in range(1000):
                worker.add_event({"organization_id": "gc", "key": "rated_api",
                                  "values": {"seq": seq}})

        report()
    """
    done = run_script(code, child_env(server), timeout=40)
    assert done.returncode == 0, done.stderr
    expected = collections.Counter(("gc", s) for s in range(1000))
    assert_exactly(wait_for_events(server, 1000, timeout=5), expected)


def test_dropped_workers_deliver_and_leave_no_threads(server: RecordingServer) -> None:
    """50 workers dropped with events queued deliver them, and their 50 threads end."""
    before = _senders()
    for n in range(50):
        worker = SlaOSWorker(
            server.url, "ingest-id", KEY, flush_interval=30, backoff_base=0.01, batch_size=100
        )
        for seq in range(10):
            worker.add_event(
                {"organization_id": f"w{n}", "key": "rated_api", "values": {"seq": seq}}
            )
        del worker
    gc.collect()
    expected = collections.Counter((f"w{n}", s) for n in range(50) for s in range(10))
    assert_exactly(wait_for_events(server, 500, timeout=20), expected)
    deadline = time.monotonic() + 20
    while _senders() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _senders() <= before, f"{_senders() - before} sender threads left behind"


# Logged from an atexit hook registered before slaos_logging was imported: atexit runs
# hooks last-in first-out, so this one runs after the library's own exit hook, as a
# request finishing during Django runserver's reload does.
AFTER_EXIT_HOOK = """
    import atexit, json, logging, sys

    def late():
        for seq in range(3):
            log.info("request_finished", extra={"organization_id": "late", "seq": seq})
        print(json.dumps(handler.stats()))
        sys.stdout.flush()

    atexit.register(late)

    from slaos_logging import SlaOSHandler

    handler = SlaOSHandler(flush_interval=30, shutdown_timeout=3)
    log = logging.getLogger("app")
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    for seq in range(20):
        log.info("request_finished", extra={"organization_id": "early", "seq": seq})
"""


def test_record_after_exit_hook_is_delivered(server: RecordingServer) -> None:
    """Records logged after the exit hook are sent on the logging thread, not dropped."""
    done = run_script(AFTER_EXIT_HOOK, child_env(server), timeout=40)
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    assert (stats["sent"], stats["dropped_closed"], stats["enqueued"]) == (23, 0, 23)
    expected = collections.Counter(
        [("early", s) for s in range(20)] + [("late", s) for s in range(3)]
    )
    assert_exactly(wait_for_events(server, 23, timeout=5), expected)


def test_record_after_exit_hook_is_spooled_when_server_is_down(
    server: RecordingServer, tmp_path: object
) -> None:
    """With the server down at exit, late records go to the spool; the next process sends them."""
    server.go_down()
    env = child_env(server, SLAOS_SPOOL_DIR=str(tmp_path))
    code = AFTER_EXIT_HOOK.replace("shutdown_timeout=3", "shutdown_timeout=1, timeout=0.5")
    done = run_script(code, env, timeout=40)
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    assert stats["dropped_closed"] == stats["failed"] == stats["dropped_shutdown"] == 0
    assert stats["spooled"] == 23
    server.go_up()
    drain = """
        from slaos_logging import SlaOSHandler
        handler = SlaOSHandler()
        assert handler.flush(10)
    """
    done = run_script(drain, env, timeout=40)
    assert done.returncode == 0, done.stderr
    expected = collections.Counter(
        [("early", s) for s in range(20)] + [("late", s) for s in range(3)]
    )
    assert_exactly(wait_for_events(server, 23, timeout=10), expected)


def test_records_after_a_failed_exit_delivery_are_counted_dropped_closed(
    server: RecordingServer,
) -> None:
    """Server down at exit, no spool: one late record is tried, the rest count dropped_closed."""
    server.go_down()
    code = AFTER_EXIT_HOOK.replace("shutdown_timeout=3", "shutdown_timeout=1, timeout=0.5")
    done = run_script(code, child_env(server), timeout=40)
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    assert stats["dropped_closed"] == 2
    assert stats["sent"] == 0
    assert stats["enqueued"] == 21
    settled = stats["sent"] + stats["invalid"] + stats["failed"] + stats["dropped_shutdown"]
    assert stats["enqueued"] == settled, stats
    shown = [line for line in done.stderr.splitlines() if "dropped_closed" in line]
    assert len(shown) == 1, done.stderr


def test_exit_with_several_stalled_handlers_takes_one_shutdown_timeout(
    server: RecordingServer,
) -> None:
    """Four handlers facing a stalled server end together, not one shutdown_timeout each."""
    server.responder = lambda body: Reply(stall=True)
    code = """
        import logging
        from slaos_logging import SlaOSHandler

        for n in range(4):
            log = logging.getLogger(f"app{n}")
            log.setLevel(logging.INFO)
            log.addHandler(SlaOSHandler(flush_interval=30, shutdown_timeout=3))
            log.info("request_finished", extra={"organization_id": f"h{n}"})
    """
    started = time.monotonic()
    done = run_script(code, child_env(server), timeout=40)
    took = time.monotonic() - started
    server.release.set()
    assert done.returncode == 0, done.stderr
    assert server.wait_for_arrivals(4, timeout=5), "not every handler tried to deliver"
    # One after the other they would need 4 x 3 s; side by side, about 3 s.
    assert took < 9, f"exit took {took:.1f}s"
