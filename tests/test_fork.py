"""Forked and multiprocessing children: own queue, thread and keys; nothing lost or doubled."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable

import pytest

from slaos_logging import SlaOSHandler

from .conftest import KEY
from .scripts.mp_target import log_with_own_handler
from .server import RecordingServer

MakeHandler = Callable[..., SlaOSHandler]

# Forking while threads run is the very case under test here: the sender thread, the
# recording server's threads and other loggers' threads exist when a server forks its
# workers. Python 3.12+ warns about exactly that; the warning is expected, not a finding.
pytestmark = pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded, use of fork:DeprecationWarning"
)


def _log(logger: logging.Logger, n: int, org: str) -> None:
    for i in range(n):
        logger.info("request_finished", extra={"organization_id": org, "n": i})


def _wait_child(pid: int, timeout: float) -> int | None:
    """The child's exit code, or None (after killing it) if it did not end in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)  # polling waitpid: there is no blocking wait with a timeout
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def _fork_and_log(logger: logging.Logger, handler: SlaOSHandler, n: int) -> int:
    """Fork; the child logs ``n`` events, flushes and leaves through os._exit."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 3
        try:
            _log(logger, n, "child")
            code = 0 if handler.flush(5) else 1
        except BaseException:
            code = 2
        finally:
            os._exit(code)
    return pid


def _orgs(server: RecordingServer) -> list[str]:
    return [e["organization_id"] for e in server.events()]


def test_fork_child_has_its_own_queue_and_keys(
    make_handler: MakeHandler, server: RecordingServer, app_logger: logging.Logger
) -> None:
    """The child sends only its own 5 events; the parent's pending 10 arrive once, from it."""
    handler = make_handler(flush_interval=60)
    app_logger.addHandler(handler)
    _log(app_logger, 10, "parent")
    pid = _fork_and_log(app_logger, handler, 5)
    assert _wait_child(pid, 20) == 0
    assert _orgs(server) == ["child"] * 5
    assert handler.flush(5)
    events = server.events()
    assert sorted(_orgs(server)) == ["child"] * 5 + ["parent"] * 10
    child_keys = {e["idempotency_key"] for e in events if e["organization_id"] == "child"}
    parent_keys = {e["idempotency_key"] for e in events if e["organization_id"] == "parent"}
    assert len(child_keys) == 5
    assert len(parent_keys) == 10
    assert not child_keys & parent_keys
    assert handler.stats()["sent"] == 10  # the child's counters are the child's


def test_multiprocessing_fork_child_delivers_on_return(
    make_handler: MakeHandler, server: RecordingServer, app_logger: logging.Logger
) -> None:
    """A multiprocessing (fork) child that logs and returns, without flush or close, delivers."""
    handler = make_handler(flush_interval=60)
    app_logger.addHandler(handler)
    _log(app_logger, 1, "parent")  # the parent's sender is running when the child forks
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=_log, args=(app_logger, 20, "child"))
    child.start()
    child.join(20)
    assert child.exitcode == 0
    assert _orgs(server) == ["child"] * 20
    assert len({e["idempotency_key"] for e in server.events()}) == 20


def test_multiprocessing_spawn_child_delivers_on_return(server: RecordingServer) -> None:
    """A spawned child that builds its own handler, logs and returns delivers its events."""
    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(target=log_with_own_handler, args=(server.url, "ingest-id", KEY, 20))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert _orgs(server) == ["spawned"] * 20
    assert sorted(e["values"]["n"] for e in server.events()) == list(range(20))


def test_fork_while_another_thread_logs(
    make_handler: MakeHandler, server: RecordingServer, app_logger: logging.Logger
) -> None:
    """Forking while a thread logs non-stop never deadlocks the child."""
    handler = make_handler(max_queue_size=100_000)
    app_logger.addHandler(handler)
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            _log(app_logger, 50, "parent")

    logger_thread = threading.Thread(target=busy, daemon=True)
    logger_thread.start()
    try:
        codes = [_wait_child(_fork_and_log(app_logger, handler, 5), 15) for _ in range(5)]
    finally:
        stop.set()
        logger_thread.join(5)
    assert codes == [0] * 5
    assert handler.flush(10)
    assert _orgs(server).count("child") == 25
    stats = handler.stats()
    assert stats["sent"] == stats["enqueued"]
