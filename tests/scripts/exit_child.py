"""Child-process script: builds a SlaOSHandler and leaves without closing it.

Usage: ``python exit_child.py URL MODE``, credentials from ``SLAOS_INGESTION_ID`` /
``SLAOS_INGESTION_KEY``. Modes:

- ``exit``: log 100 events with a 60 s flush interval, then simply end.
- ``stall``: the same with ``shutdown_timeout=1`` (the test's server never answers).
- ``atexit``: log nothing, but log one event from an ``atexit`` hook registered after
  the handler was built, so the sender thread would have to start at shutdown.
"""

from __future__ import annotations

import atexit
import logging
import sys

from slaos_logging import SlaOSHandler


def main() -> None:
    url, mode = sys.argv[1], sys.argv[2]
    handler = SlaOSHandler(
        host=url,
        key="rated_api",
        flush_interval=60,
        shutdown_timeout=1 if mode == "stall" else 5,
        backoff_base=0.01,
        backoff_cap=0.05,
    )
    log = logging.getLogger("child")
    log.setLevel(logging.INFO)
    log.propagate = False
    log.addHandler(handler)
    if mode == "atexit":

        def late() -> None:
            log.info("request_finished", extra={"organization_id": "late", "status_code": 200})

        atexit.register(late)
        return
    for i in range(100):
        log.info("request_finished", extra={"organization_id": "child", "n": i})


if __name__ == "__main__":
    main()
