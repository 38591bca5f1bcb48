"""Child process for the fault-injection suite (``tests/test_faults.py``).

Usage: ``python -m tests.fault_child OPTIONS_JSON``, credentials from
``SLAOS_INGESTION_ID`` / ``SLAOS_INGESTION_KEY``. It talks to the test over its pipes:
one line per step on stdout (``TAG {stats json}``), and it waits for a line on stdin
where the test must act (bring the server back, or kill it). Modes:

- ``crash``: log ``count`` events (the server is down), wait until every one of them
  is on disk, print ``ready``, then block until the test kills it (SIGKILL).
- ``share``: log ``count`` events (the server is down), wait until they are on disk,
  print ``outage``; after a line on stdin (the server is back) log ``after`` more,
  wait until the shared spool is empty, close the handler, print ``done`` and exit.
- ``drain``: only build the handler (which starts draining a spool left by others)
  and print ``started``; block until the test kills it.

Each event carries ``values.seq`` (``first`` + i), unique across the whole test.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable

from slaos_logging import SlaOSHandler


def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def main() -> None:
    options = json.loads(sys.argv[1])
    mode = options["mode"]
    handler = SlaOSHandler(
        host=options["url"],
        key="rated_api",
        spool_dir=options["spool_dir"],
        max_queue_size=options.get("max_queue_size", 1000),
        batch_size=options.get("batch_size", 500),
        flush_interval=0.1,
        backoff_base=0.01,
        backoff_cap=0.2,
        timeout=options.get("timeout", 2.0),
        shutdown_timeout=5.0,
    )
    log = logging.getLogger("fault_child")
    log.setLevel(logging.INFO)
    log.propagate = False
    log.addHandler(handler)

    def report(tag: str) -> None:
        sys.stdout.write(f"{tag} {json.dumps(handler.stats())}\n")
        sys.stdout.flush()

    def log_events(first: int, count: int) -> None:
        for seq in range(first, first + count):
            log.info("request_finished", extra={"organization_id": "org", "seq": seq})

    first, count = int(options.get("first", 0)), int(options.get("count", 0))
    if mode == "drain":
        report("started")
        sys.stdin.readline()
        return
    log_events(first, count)
    # Every event is either sent (not during an outage) or spooled once it is on disk.
    # 60 s: the test waits 120 s for this report.
    on_disk = _wait(lambda: handler.stats()["spooled"] >= count, 60)
    report("ready" if mode == "crash" else "outage" if on_disk else "timeout")
    sys.stdin.readline()  # crash: the test kills us while we wait here
    if mode != "share":
        return
    after = int(options.get("after", 0))
    log_events(first + count, after)
    # Every wait here ends well before the test gives up on this process (150 s), so a
    # stuck spool shows up as this process's own report, not as a bare timeout.
    handler.flush(20)
    _wait(lambda: handler.stats()["spool_depth"] == 0, 40)
    handler.flush(20)
    handler.close()
    report("done")


if __name__ == "__main__":
    main()
