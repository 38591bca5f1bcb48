"""Many application threads logging at once: every event delivered exactly once."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from slaos_logging import SlaOSHandler

from .server import RecordingServer

THREADS = 8
PER_THREAD = 2_500
TOTAL = THREADS * PER_THREAD


def test_concurrent_threads_deliver_every_event_once(
    make_handler: Callable[..., SlaOSHandler],
    server: RecordingServer,
    app_logger: logging.Logger,
) -> None:
    """8 threads x 2,500 records started together: 20,000 distinct events arrive, once each."""
    # The queue must hold a burst of all 20,000: this test is about races, not back-pressure.
    handler = make_handler(max_queue_size=TOTAL)
    app_logger.addHandler(handler)
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            barrier.wait(10)
            for i in range(PER_THREAD):
                app_logger.info(
                    "request_finished", extra={"organization_id": f"org{t}", "t": t, "i": i}
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert not any(thread.is_alive() for thread in threads)
    assert handler.flush(20)
    events = server.events()
    assert len(events) == TOTAL
    assert len({e["idempotency_key"] for e in events}) == TOTAL
    assert len({(e["values"]["t"], e["values"]["i"]) for e in events}) == TOTAL
    stats = handler.stats()
    assert stats["enqueued"] == stats["sent"] == TOTAL
    assert stats["dropped_queue_full"] == stats["failed"] == stats["skipped"] == 0
