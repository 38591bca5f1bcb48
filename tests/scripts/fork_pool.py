"""A process that forks a child which logs from a thread pool (as gunicorn's threaded workers do).

Usage: ``python -m tests.scripts.fork_pool URL MODE``, credentials from
``SLAOS_INGESTION_ID`` / ``SLAOS_INGESTION_KEY``. MODE is ``pending`` (the parent's 5
events are still queued when it forks) or ``idle`` (they were delivered first). The
parent's sender thread is running at the fork either way: its ident is the one a child
thread may be given again.

Prints one line per process, ``child {stats}`` then ``parent {stats}``; the child
prints ``child-failed {reason}`` instead if its flush timed out or it did not end in time.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

from slaos_logging import SlaOSHandler

CHILD_EVENTS = 400
PARENT_EVENTS = 5
CHILD_TIMEOUT = 20.0  # below the test's own timeout, so the child's failure is reported


def _log(logger: logging.Logger, org: str, n: int) -> None:
    logger.info("request_finished", extra={"organization_id": org, "n": n})


def _child(logger: logging.Logger, handler: SlaOSHandler) -> None:  # pragma: no cover
    code = 3
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda n: _log(logger, "child", n), range(CHILD_EVENTS)))
        if handler.flush(CHILD_TIMEOUT / 2):
            print("child", json.dumps(handler.stats()), flush=True)
            code = 0
        else:
            print("child-failed flush timed out", json.dumps(handler.stats()), flush=True)
            code = 1
    except BaseException as exc:
        print("child-failed", repr(exc), flush=True)
        code = 2
    finally:
        os._exit(code)


def main() -> None:
    url, mode = sys.argv[1], sys.argv[2]
    handler = SlaOSHandler(
        host=url,
        key="rated_api",
        flush_interval=60.0 if mode == "pending" else 0.05,
        shutdown_timeout=5.0,
    )
    logger = logging.getLogger("fork_pool")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    for n in range(PARENT_EVENTS):
        _log(logger, "parent", n)
    if mode == "idle" and not handler.flush(10):
        print("parent-failed flush before fork", flush=True)
        sys.exit(1)
    sys.stdout.flush()
    with warnings.catch_warnings():
        # Forking while the sender thread runs is the very case under test (a
        # pre-forking server that logged at start-up does it), so Python 3.12's
        # warning about forking a multi-threaded process is expected here.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        _child(logger, handler)
    deadline = time.monotonic() + CHILD_TIMEOUT + 5
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            if code != 0:
                print("child-failed exit code", code, flush=True)
                sys.exit(1)
            break
        if time.monotonic() > deadline:
            print("child-failed did not end", flush=True)
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            sys.exit(1)
        time.sleep(0.01)  # polling waitpid: there is no blocking wait with a timeout
    if not handler.flush(10):
        print("parent-failed flush after fork", flush=True)
        sys.exit(1)
    print("parent", json.dumps(handler.stats()), flush=True)
    handler.close()


if __name__ == "__main__":
    main()
