"""Reconfiguring logging under traffic: no deadlock, nothing lost, closed handlers reopen."""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections.abc import Callable

from slaos_logging import SlaOSHandler

from .deploy_support import assert_exactly, child_env, run_script, wait_for_events
from .server import RecordingServer, Reply

MakeHandler = Callable[..., SlaOSHandler]

# A second dictConfig() from another thread while 500 events wait in the queue. urllib3
# logs at DEBUG on the sender thread, so the sender needs logging's lock right after
# dictConfig cleared the loggers' caches: waiting for it under that lock deadlocks.
SECOND_DICTCONFIG = """
    import json, logging, logging.config, sys, threading, time

    def config():
        return {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"slaos": {
                "class": "slaos_logging.SlaOSHandler",
                "flush_interval": 30,
                "batch_size": 1000,
                "shutdown_timeout": 3,
            }},
            "loggers": {"app": {"handlers": ["slaos"], "level": "INFO", "propagate": False}},
            "root": {"level": "DEBUG"},
        }

    logging.config.dictConfig(config())
    log = logging.getLogger("app")
    for seq in range(500):
        log.info("request_finished", extra={"organization_id": "first", "seq": seq})
    started = time.monotonic()
    worker = threading.Thread(target=logging.config.dictConfig, args=(config(),), daemon=True)
    worker.start()
    worker.join(20)
    took = time.monotonic() - started
    for seq in range(100):
        log.info("request_finished", extra={"organization_id": "second", "seq": seq})
    print(json.dumps({"returned": not worker.is_alive(), "took": took}))
    sys.stdout.flush()
"""


def test_second_dictconfig_returns_and_delivers_each_event_once(server: RecordingServer) -> None:
    """A second dictConfig() with 500 events queued returns at once; all 600 arrive once."""
    done = run_script(SECOND_DICTCONFIG, child_env(server), timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["returned"], f"dictConfig() still blocked after 20 s: {done.stderr}"
    assert report["took"] < 10, f"dictConfig() took {report['took']:.1f}s"
    expected = collections.Counter(
        [("first", s) for s in range(500)] + [("second", s) for s in range(100)]
    )
    assert_exactly(wait_for_events(server, 600, timeout=10), expected)


def test_handler_left_attached_by_dictconfig_works_again(
    make_handler: MakeHandler, server: RecordingServer, app_logger: logging.Logger
) -> None:
    """dictConfig() closes a handler that stays attached: later records are still delivered."""
    handler = make_handler(flush_interval=30)
    app_logger.addHandler(handler)
    for seq in range(50):
        app_logger.info("request_finished", extra={"organization_id": "a", "seq": seq})
    # What dictConfig() does to every existing handler, with logging's lock held.
    with logging._lock:  # type: ignore[attr-defined]
        handler.flush()
        handler.close()
    for seq in range(50, 80):
        app_logger.info("request_finished", extra={"organization_id": "a", "seq": seq})
    handler.close()
    stats = handler.stats()
    assert (stats["sent"], stats["enqueued"], stats["dropped_closed"]) == (80, 80, 0)
    assert_exactly(server.events(), collections.Counter(("a", s) for s in range(80)))


def test_flush_without_timeout_is_bounded_by_shutdown_timeout(
    make_handler: MakeHandler, server: RecordingServer, app_logger: logging.Logger
) -> None:
    """flush() with no argument (as logging.shutdown calls it) gives up after shutdown_timeout."""
    server.then(Reply(stall=True))
    handler = make_handler(shutdown_timeout=1.0, flush_interval=0.01)
    app_logger.addHandler(handler)
    app_logger.info("request_finished", extra={"organization_id": "a", "seq": 0})
    assert server.wait_for_arrivals(1, timeout=10), "the first request never arrived"
    result: list[bool] = []
    flusher = threading.Thread(target=lambda: result.append(handler.flush()), daemon=True)
    start = time.monotonic()
    flusher.start()
    flusher.join(15)
    server.release.set()
    assert not flusher.is_alive(), "flush() without a timeout waited on the stalled server"
    assert result == [False]
    assert time.monotonic() - start < 10
    assert handler.flush(timeout=None) is True  # explicit: wait until done
    assert handler.stats()["sent"] == 1


def test_close_while_threads_log_loses_and_doubles_nothing(
    make_handler: MakeHandler, server: RecordingServer, app_logger: logging.Logger
) -> None:
    """Four threads log while close() runs again and again: every event arrives exactly once."""
    handler = make_handler(flush_interval=0.05, batch_size=50)
    app_logger.addHandler(handler)
    per_thread = 1500

    def produce(name: str) -> None:
        for seq in range(per_thread):
            app_logger.info("request_finished", extra={"organization_id": name, "seq": seq})

    threads = [threading.Thread(target=produce, args=(f"t{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    closes = 0
    while any(t.is_alive() for t in threads) or closes < 5:
        handler.close()
        closes += 1
    for thread in threads:
        thread.join(30)
    handler.close()
    stats = handler.stats()
    total = 4 * per_thread
    assert (stats["enqueued"], stats["sent"], stats["queue_depth"]) == (total, total, 0), stats
    expected = collections.Counter((f"t{n}", s) for n in range(4) for s in range(per_thread))
    assert_exactly(server.events(), expected)
