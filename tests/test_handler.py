"""SlaOSHandler's lifecycle: lazy sender thread, flush, close, and interpreter exit."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from slaos_logging import SlaOSHandler
from slaos_logging._batch import BatchSender

from .conftest import KEY
from .server import RecordingServer, Reply

SENDER = "slaos-logging-sender"
REPO = Path(__file__).resolve().parent.parent
CHILD = Path(__file__).resolve().parent / "scripts" / "exit_child.py"

MakeHandler = Callable[..., SlaOSHandler]


def _senders() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == SENDER}


def _log(logger: logging.Logger, n: int, org: str = "acme") -> None:
    for i in range(n):
        logger.info("request_finished", extra={"organization_id": org, "n": i})


def _stall(server: RecordingServer) -> None:
    server.responder = lambda body: Reply(stall=True)


def _wait_events(server: RecordingServer, n: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while len(server.events()) < n and time.monotonic() < deadline:
        server.wait_for_requests(len(server.requests) + 1, 0.1)
    return len(server.events())


def _run_child(
    server: RecordingServer, mode: str
) -> tuple[subprocess.CompletedProcess[str], float]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["SLAOS_INGESTION_ID"] = "ingest-id"
    env["SLAOS_INGESTION_KEY"] = KEY
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(CHILD), server.url, mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done, time.monotonic() - start


# -- the sender thread ---------------------------------------------------------------


def test_sender_thread_is_lazy_named_daemon(
    make_handler: MakeHandler, app_logger: logging.Logger
) -> None:
    """No sender thread until the first event; then one named daemon thread, gone after close."""
    before = _senders()
    handler = make_handler()
    app_logger.addHandler(handler)
    assert _senders() == before
    _log(app_logger, 1)
    new = _senders() - before
    assert len(new) == 1
    (thread,) = new
    assert thread.daemon
    _log(app_logger, 5)
    assert _senders() - before == new  # still one thread per handler
    handler.close()
    thread.join(5)
    assert not thread.is_alive()


# -- flush ---------------------------------------------------------------------------


def test_flush_with_nothing_logged_returns_true_at_once(make_handler: MakeHandler) -> None:
    """flush() on a handler that never saw an event is True immediately, without a thread."""
    before = _senders()
    handler = make_handler()
    start = time.monotonic()
    assert handler.flush() is True
    assert handler.flush(0) is True
    assert time.monotonic() - start < 5, "flush() waited although nothing was logged"
    assert _senders() == before


def test_flush_delivers_events_enqueued_before_it(
    make_handler: MakeHandler, server: RecordingServer, app_logger: logging.Logger
) -> None:
    """flush() sends the open batch at once instead of waiting out flush_interval."""
    handler = make_handler(flush_interval=60)
    app_logger.addHandler(handler)
    _log(app_logger, 3)
    start = time.monotonic()
    assert handler.flush(5) is True
    assert time.monotonic() - start < 5
    assert [e["values"]["n"] for e in server.events()] == [0, 1, 2]
    assert handler.stats()["sent"] == 3


def test_flush_times_out_on_stalled_server(
    make_handler: MakeHandler, server: RecordingServer, app_logger: logging.Logger
) -> None:
    """flush(0.2) against a server that never answers is False, and returns promptly."""
    _stall(server)
    handler = make_handler()
    app_logger.addHandler(handler)
    _log(app_logger, 2)
    start = time.monotonic()
    assert handler.flush(0.2) is False
    # The stall lasts 30 s: a few seconds of slack tell "timed out" from "waited it out".
    assert time.monotonic() - start < 5, "flush(0.2) waited on the stalled server"
    server.responder = None
    server.release.set()
    assert handler.flush(10) is True
    assert handler.stats()["sent"] == 2


# -- close ---------------------------------------------------------------------------


def test_close_delivers_queued_events_and_reopens_on_next_record(
    make_handler: MakeHandler, server: RecordingServer, app_logger: logging.Logger
) -> None:
    """close() delivers what was queued; a later record starts a new sender (as FileHandler)."""
    handler = make_handler(flush_interval=60)
    app_logger.addHandler(handler)
    _log(app_logger, 5)
    handler.close()
    assert len(server.events()) == 5
    assert not handler._pipeline.has_thread()
    _log(app_logger, 3)
    handler.close()
    stats = handler.stats()
    assert (stats["sent"], stats["enqueued"], stats["dropped_closed"]) == (8, 8, 0)
    assert len(server.events()) == 8
    assert len({e["idempotency_key"] for e in server.events()}) == 8


def test_close_twice_is_safe(
    make_handler: MakeHandler, server: RecordingServer, app_logger: logging.Logger
) -> None:
    """A second close() is a no-op: no error, no second delivery."""
    handler = make_handler()
    app_logger.addHandler(handler)
    _log(app_logger, 2)
    handler.close()
    handler.close()
    assert len(server.events()) == 2
    assert handler.stats()["sent"] == 2


def test_close_gives_up_within_shutdown_timeout(
    make_handler: MakeHandler, server: RecordingServer, app_logger: logging.Logger
) -> None:
    """With a stalled server, close() returns after about shutdown_timeout and counts the loss."""
    _stall(server)
    handler = make_handler(shutdown_timeout=0.5)
    app_logger.addHandler(handler)
    _log(app_logger, 3)
    start = time.monotonic()
    handler.close()
    assert time.monotonic() - start < 0.5 + 5, "close() waited on the stalled server"
    assert handler.stats()["dropped_shutdown"] == 3
    assert handler.stats()["sent"] == 0


def test_flush_after_timed_out_close_returns_at_once(
    make_handler: MakeHandler, server: RecordingServer, app_logger: logging.Logger
) -> None:
    """After close() gave up, flush() (as logging.shutdown calls it) does not wait on the server."""
    _stall(server)
    handler = make_handler(shutdown_timeout=0.3)
    app_logger.addHandler(handler)
    _log(app_logger, 3)
    handler.close()
    result: list[bool] = []
    flusher = threading.Thread(target=lambda: result.append(handler.flush()), daemon=True)
    start = time.monotonic()
    flusher.start()
    flusher.join(5)
    returned = not flusher.is_alive()
    server.release.set()  # let a stuck flush end before the fixture closes the handler
    flusher.join(15)
    assert returned, f"flush() after close() blocked for {time.monotonic() - start:.1f}s"
    assert result == [True]


def test_sender_thread_ends_after_timed_out_close(
    make_handler: MakeHandler, server: RecordingServer, app_logger: logging.Logger
) -> None:
    """A sender stuck in a request when close() gave up still ends: no thread is leaked."""
    _stall(server)
    before = _senders()
    handler = make_handler(shutdown_timeout=0.3)
    app_logger.addHandler(handler)
    _log(app_logger, 1)
    (thread,) = _senders() - before
    handler.close()
    # The stalled request is cut at close()'s deadline (or ends when the stall does).
    server.release.set()
    thread.join(10)
    assert not thread.is_alive(), "the sender thread outlived close() (leaked)"


def test_event_kept_when_no_thread_can_start(
    make_handler: MakeHandler,
    server: RecordingServer,
    app_logger: logging.Logger,
    mocker: pytest.MockFixture,
) -> None:
    """Where threads cannot start (Python 3.12+ at shutdown), close() still delivers the event."""
    # Python 3.12 raises this RuntimeError from Thread.start() during interpreter shutdown;
    # simulating it is the only way to take that path on every version.
    mocker.patch.object(
        BatchSender, "start", side_effect=RuntimeError("can't create new thread at shutdown")
    )
    before = _senders()
    handler = make_handler()
    app_logger.addHandler(handler)
    _log(app_logger, 2)
    assert _senders() == before
    handler.close()
    assert [e["values"]["n"] for e in server.events()] == [0, 1]
    assert handler.stats()["sent"] == 2


def test_flush_delivers_on_caller_thread_when_no_thread_can_start(
    make_handler: MakeHandler,
    server: RecordingServer,
    app_logger: logging.Logger,
    mocker: pytest.MockFixture,
) -> None:
    """With no sender thread, flush() delivers on the calling thread and returns True."""
    mocker.patch.object(
        BatchSender, "start", side_effect=RuntimeError("can't create new thread at shutdown")
    )
    handler = make_handler(flush_interval=60)
    app_logger.addHandler(handler)
    _log(app_logger, 3)
    assert handler.flush(5) is True
    assert len(server.events()) == 3


# -- interpreter exit (child processes) -------------------------------------------------


def test_interpreter_exit_delivers_pending_events(server: RecordingServer) -> None:
    """A process that logs 100 events (flush_interval=60) and just ends delivers all 100."""
    done, _ = _run_child(server, "exit")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert _wait_events(server, 100) == 100
    events = server.events()
    assert sorted(e["values"]["n"] for e in events) == list(range(100))
    assert len({e["idempotency_key"] for e in events}) == 100


def test_interpreter_exit_bounded_by_shutdown_timeout(server: RecordingServer) -> None:
    """With every request stalled, a process with shutdown_timeout=1 exits cleanly in ~1 s."""
    _stall(server)
    done, elapsed = _run_child(server, "stall")
    # Every request stalls for 30 s: an exit not bounded by shutdown_timeout takes that long.
    assert elapsed < 1 + 10, f"child took {elapsed:.1f}s to exit"
    assert done.returncode == 0
    assert done.stderr == ""


def test_event_logged_from_atexit_arrives(server: RecordingServer) -> None:
    """An event first logged from an atexit hook (sender started at shutdown) is delivered."""
    done, _ = _run_child(server, "atexit")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert _wait_events(server, 1) == 1
    (event,) = server.events()
    assert event["organization_id"] == "late"
    assert event["values"] == {"status_code": 200}


def test_app_logger_whose_name_starts_like_ours_is_shipped(
    make_handler: MakeHandler, server: RecordingServer
) -> None:
    """Only slaos_logging and its children are the library's own: slaos_logging_app ships."""
    handler = make_handler(events=None, flush_interval=60)
    own, child, app = (
        logging.getLogger(name)
        for name in ("slaos_logging", "slaos_logging.spool", "slaos_logging_app")
    )
    for n, logger in enumerate((own, child, app)):
        handler.handle(
            logger.makeRecord(
                logger.name,
                logging.INFO,
                __file__,
                0,
                "request_finished",
                (),
                None,
                extra={"organization_id": "acme", "n": n},
            )
        )
    assert handler.flush(10)
    assert [event["values"]["n"] for event in server.events()] == [2]
