"""Counters for every path an event can take, including every way it can be lost."""

from __future__ import annotations

import itertools
from typing import Any

#: Keys of ``stats()``, in the order they are reported.
STAT_KEYS = (
    "enqueued",
    "sent",
    "skipped",
    "invalid",
    "failed",
    "dropped_queue_full",
    "dropped_closed",
    "dropped_shutdown",
    "retries",
    "requests",
    "bad_timestamps",
    "spooled",
    "spool_dropped",
    "spool_depth",
    "queue_depth",
)


def _peek(counter: itertools.count[int]) -> int:
    # itertools.count has no public reader; its repr ("count(N)") is its documented
    # display and stable across versions, and it is the only way to read it without
    # advancing it.
    return int(repr(counter)[6:-1])


class Stats:
    """Event counters of one pipeline.

    Counters bumped on application threads are ``itertools.count`` objects: ``next()``
    on them is a single C call, so concurrent loggers never lose an increment and pay
    no lock. Counters bumped only by the sender thread are plain integers.
    """

    def __init__(self) -> None:
        self.enqueued = itertools.count()
        self.skipped = itertools.count()
        self.dropped_queue_full = itertools.count()
        self.dropped_closed = itertools.count()
        self.sent = 0
        self.invalid = 0
        self.failed = 0
        self.dropped_shutdown = 0
        self.retries = 0
        self.requests = 0
        self.bad_timestamps = 0
        self.spooled = 0
        self.spool_dropped = 0

    def numbered(self) -> int:
        """Events the sender has numbered so far (the rest of ``enqueued`` still waits)."""
        return _peek(self.enqueued)

    def snapshot(
        self, *, numbered: int, queue_depth: int, spool_depth: int, waiting: int = 0
    ) -> dict[str, int]:
        """Return every counter as an ``int``, plus the current depths.

        ``enqueued`` counts events taken in: those already numbered (the sender thread
        numbers them as it builds them, keeping the work off the logging call) plus
        those still waiting in the queue or for the spool writer. The caller reads
        ``numbered`` before the depths: an event numbered in between is then missed for
        one snapshot, never counted twice (``enqueued`` never exceeds what was logged).
        """
        values: dict[str, Any] = {
            "enqueued": numbered + queue_depth + waiting,
            "sent": self.sent,
            "skipped": _peek(self.skipped),
            "invalid": self.invalid,
            "failed": self.failed,
            "dropped_queue_full": _peek(self.dropped_queue_full),
            "dropped_closed": _peek(self.dropped_closed),
            "dropped_shutdown": self.dropped_shutdown,
            "retries": self.retries,
            "requests": self.requests,
            "bad_timestamps": self.bad_timestamps,
            "spooled": self.spooled,
            "spool_dropped": self.spool_dropped,
            "spool_depth": spool_depth,
            "queue_depth": queue_depth,
        }
        return {k: int(values[k]) for k in STAT_KEYS}
