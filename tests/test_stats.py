"""stats(): a snapshot never counts an event twice while the sender takes it."""

from __future__ import annotations

import logging
from collections.abc import Callable

from slaos_logging import SlaOSHandler

from .server import RecordingServer, Reply


def test_enqueued_never_exceeds_what_was_logged_mid_snapshot(
    make_handler: Callable[..., SlaOSHandler], server: RecordingServer, app_logger: logging.Logger
) -> None:
    """An event numbered by the sender between the snapshot's reads is not counted twice."""
    # The first event's request stalls: the other four stay queued, so the test decides
    # when the "sender" takes the next one.
    server.responder = lambda body: Reply(stall=True)
    handler = make_handler(batch_size=1, shutdown_timeout=0.5)
    app_logger.addHandler(handler)
    for n in range(5):
        app_logger.info("request_finished", extra={"organization_id": "acme", "n": n})
    assert server.wait_for_arrivals(1, timeout=10), "the first event never reached the server"
    pipeline = handler._pipeline
    stats = pipeline.stats
    read_numbered = stats.numbered

    def numbered_while_the_sender_takes_one() -> int:
        # The interleaving a busy sender produces: just before the snapshot reads the
        # numbered count, the sender takes one more event off the queue and numbers it.
        pipeline.queue.get_nowait()
        next(stats.enqueued)
        return read_numbered()

    stats.numbered = numbered_while_the_sender_takes_one  # type: ignore[method-assign]
    try:
        enqueued = handler.stats()["enqueued"]
    finally:
        del stats.numbered
        server.release.set()
    assert enqueued <= 5, f"stats() counted {enqueued} events enqueued of 5 logged"
