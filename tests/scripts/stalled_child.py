"""Child-process script: how much memory does the library hold while a server stalls?

Usage: ``python stalled_child.py memory|spool SPOOL_DIR``. Measures in a process of its
own, with a logging setup of its own, so that no test runner's log capture (which may
keep every record) is counted. Prints one JSON line: the peak traced allocation while
30,000 events beyond the queue's bound were logged, the deepest queue seen, and stats().
"""

from __future__ import annotations

import json
import logging
import sys
import tracemalloc
from pathlib import Path

from slaos_logging import SlaOSHandler
from tests.server import RecordingServer, Reply


def main() -> None:
    mode, spool_dir = sys.argv[1], Path(sys.argv[2])
    server = RecordingServer().start()
    # Every request stalls until the process ends, then its connection is dropped.
    server.responder = lambda body: Reply(stall=True, drop=True)
    options: dict[str, object] = {"spool_dir": spool_dir} if mode == "spool" else {}
    handler = SlaOSHandler(
        host=server.url,
        ingestion_id="ingest-id",
        ingestion_key="child-key-0123",
        key="rated_api",
        max_queue_size=1000,
        flush_interval=0.1,
        timeout=0.5,
        backoff_base=0.01,
        backoff_cap=0.2,
        shutdown_timeout=1.0,
        **options,  # type: ignore[arg-type]
    )
    log = logging.getLogger("stalled-child")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    # Warm up: the sender thread starts, its first request stalls, the queue fills.
    for seq in range(1_100):
        log.info("request_finished", extra={"organization_id": "org", "seq": seq})
    if not server.wait_for_arrivals(1, timeout=20):
        raise SystemExit("the sender never reached the stalled server within 20 s")
    depths: list[int] = []
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for seq in range(1_100, 31_100):
        log.info("request_finished", extra={"organization_id": "org", "seq": seq})
        if seq % 1000 == 0:
            depths.append(handler.stats()["queue_depth"])
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    print(json.dumps({"peak": peak, "max_depth": max(depths), "stats": handler.stats()}))
    server.release.set()
    handler.close()
    server.stop()


if __name__ == "__main__":
    main()
