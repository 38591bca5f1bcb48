"""Connects a pipeline to its on-disk spool: overflow, spill, and draining with probes.

Three paths lead to disk: the in-memory queue is full (the application thread hands
the event to a writer thread, never touching SQLite itself), a batch failed with a
retryable error, or ``close()`` ran out of time. With a spool a failed batch is not
retried in memory: it goes to disk at once, so a crash during an outage finds it
there, and the spool's drain does the retrying. The sender drains the spool oldest
first whenever its queue is idle, one batch at a time, and while the server keeps
failing it probes with exponential backoff.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from ._config import Config
from ._deliver import Deliverer, Event
from ._diagnostics import Reporter
from ._encode import EventBuilder, dumps_event
from ._retry import RetryPolicy
from ._spool import Spool
from ._stats import Stats

_WRITE_CHUNK = 1000
# The overflow buffer must absorb a burst at full logging speed while the writer
# thread catches up; its own bound keeps memory finite whatever happens to the disk.
_MIN_OVERFLOW = 10_000
# How often a sender looks again at rows other processes hold (their lease is 60 s).
_RECHECK = 30.0


class SpoolLink:
    """One pipeline's use of a ``Spool``: writer thread, spill, drain."""

    def __init__(self, config: Config, policy: RetryPolicy) -> None:
        assert config.spool_dir is not None
        self._config = config
        self._overflow_cap = max(_MIN_OVERFLOW, config.max_queue_size)
        # Replaced by the pipeline's own in reset(); this one reports opening errors.
        self._reporter = Reporter((config.ingestion_key,))
        self._policy = policy
        self.spool = Spool(
            config.spool_dir, max_bytes=config.spool_max_bytes, on_error=self._on_error
        )
        #: Called after events were stored: the pipeline schedules a drain.
        self.on_stored: Callable[[], None] = lambda: None
        self.reset(Stats(), self._reporter, "")

    def reset(self, stats: Stats, reporter: Reporter, id_prefix: str) -> None:
        """Per-process state (called again in a forked child)."""
        self._stats = stats
        self._reporter = reporter
        self._prefix = id_prefix
        self._overflow: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._lock = threading.Lock()
        self._failures = 0

    def _on_error(self, message: str) -> None:
        self._reporter.every("spool:" + message[:60], logging.ERROR, "%s", message)

    # -- the queue is full: application thread ---------------------------------------

    def overflow(self, item: tuple[Any, ...]) -> bool:
        """Take an event the queue had no room for; ``False`` if the spool cannot."""
        if not self.spool.available or self._overflow.qsize() >= self._overflow_cap:
            return False
        self._overflow.put(item)
        if self._writer is None:
            self._start_writer()
        return True

    def _start_writer(self) -> None:
        with self._lock:
            if self._writer is not None:
                return
            thread = threading.Thread(
                target=self._write_loop, name="slaos-logging-spool-writer", daemon=True
            )
            try:
                thread.start()
            except RuntimeError:
                return  # interpreter shutdown: close() writes what is left
            self._writer = thread

    def _write_loop(self) -> None:
        builder = EventBuilder(self._prefix, self._stats.enqueued, lambda raw: None)
        while True:
            item = self._overflow.get()
            if item is None:
                return
            items: list[tuple[Any, ...]] = []
            markers: list[threading.Event] = []
            while True:
                if isinstance(item, threading.Event):
                    markers.append(item)
                elif item is None:
                    self._write(items, builder)
                    return
                else:
                    items.append(item)
                if len(items) >= _WRITE_CHUNK:
                    break
                try:
                    item = self._overflow.get_nowait()
                except queue.Empty:
                    break
            self._write(items, builder)
            for marker in markers:
                marker.set()

    def flush(self, timeout: float | None) -> bool:
        """Wait until the overflow taken so far is on disk."""
        writer = self._writer
        if writer is None or not writer.is_alive():
            return True
        marker = threading.Event()
        self._overflow.put(marker)
        return marker.wait(timeout)

    def _write(self, items: list[tuple[Any, ...]], builder: EventBuilder) -> None:
        if not items:
            return
        events: list[Event] = [builder.build(item) for item in items]
        kept = self.spill(events)
        if kept < len(events):
            with self._lock:
                for _ in range(len(events) - kept):
                    next(self._stats.dropped_queue_full)

    # -- given up: sender or close() thread ------------------------------------------

    def spill(self, events: list[Event]) -> int:
        """Store events on disk; return how many were kept."""
        payloads = [e if isinstance(e, bytes) else dumps_event(e) for e in events]
        kept = self.spool.put(payloads)
        if kept:
            with self._lock:
                self._stats.spooled += kept
            self.on_stored()
        return kept

    # -- draining: sender thread, when idle ------------------------------------------

    def drain(self, deliverer: Deliverer) -> float | None:
        """Send one batch from the spool; return seconds until the next try, or None."""
        rows = self.spool.claim(self._config.batch_size, self._config.max_batch_bytes)
        if not rows:
            # Rows held by other live processes (or none at all): look again later only
            # if there are any, so rows of a sibling that dies are not left behind.
            return _RECHECK if self.spool.depth() else None
        ids = {id(payload): rowid for rowid, payload in rows}
        kept: list[Event] = []

        def keep(events: list[Event]) -> int:
            kept.extend(events)
            return len(events)

        deliverer.deliver([payload for _, payload in rows], spill=keep)
        back = {ids[id(e)] for e in kept}
        self.spool.release(back)
        self.spool.ack(rowid for rowid, _ in rows if rowid not in back)
        if back:
            # The server is still failing: probe again later, with backoff.
            self._failures += 1
            window = self._policy.backoff(min(self._failures, 16), lambda: 1.0)
            return max(self._policy.base, window * (0.5 + 0.5 * random.random()))
        self._failures = 0
        return 0.0

    def close(self, deadline: float) -> None:
        """Write out the overflow (within ``deadline``) and stop the writer."""
        writer = self._writer
        if writer is not None and writer.is_alive():
            self._overflow.put(None)
            writer.join(max(0.0, deadline - time.monotonic()))
        elif not self._overflow.empty():
            builder = EventBuilder(self._prefix, self._stats.enqueued, lambda raw: None)
            items: list[tuple[Any, ...]] = []
            while True:
                try:
                    item = self._overflow.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, tuple):
                    items.append(item)
            if items:
                self._write(items, builder)
        self.spool.close()

    def waiting(self) -> int:
        """Events handed over by a full queue, not yet on disk."""
        return self._overflow.qsize()

    def depth(self) -> int:
        """Events waiting on disk (all processes')."""
        return self.spool.depth()
