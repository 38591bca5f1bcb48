"""Connects a pipeline to its on-disk spool: overflow, spill, and draining with probes.

Three paths lead to disk: the in-memory queue is full (the application thread hands
the event to a writer thread, never touching SQLite itself), a batch failed with a
retryable error, or ``close()`` ran out of time. With a spool a failed batch is not
retried in memory: it goes to disk at once, so a crash during an outage finds it
there, and the spool's drain does the retrying. Whenever the spool cannot take a
batch (it failed to open, the disk is full or read-only), the batch is retried in
memory exactly as without a spool. The sender drains the spool in the order events
were logged whenever its queue is idle, one batch at a time, and while the server
keeps failing it probes with exponential backoff. ``flush()`` and ``close()`` wait for
that drain (``deliver_backlog``) within their time bounds.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import secrets
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
from ._spool_db import endpoint_id
from ._spool_overflow import Overflow
from ._stats import Stats

# How often a sender looks again at rows other processes hold (their lease is 60 s).
_RECHECK = 30.0
# While flush() or close() waits for the drain it nudges the sender this often, in case
# a wake-up raced with the sender deciding the spool was empty.
_NUDGE = 0.2


class LoggedEvent(dict[str, Any]):
    """An event dict that remembers when it was logged (for the spool's order)."""

    __slots__ = ("logged",)
    logged: float


class LoggedEventBuilder(EventBuilder):
    """Builds ``LoggedEvent``: used by the sender when a spool is configured."""

    __slots__ = ()

    def build(self, item: tuple[Any, ...]) -> dict[str, Any]:
        """The event for one queued pending event, with its ``record.created``."""
        event = LoggedEvent(super().build(item))
        event.logged = item[3]
        return event


class SpoolLink:
    """One pipeline's use of a ``Spool``: overflow writer, spill, drain."""

    _overflow: Overflow
    _overflow_pid = 0  # the process whose overflow buffer ``_overflow`` is

    def __init__(self, config: Config, policy: RetryPolicy) -> None:
        assert config.spool_dir is not None
        self._config = config
        # Replaced by the pipeline's own in reset(); this one reports opening errors.
        self._reporter = Reporter((config.ingestion_key,))
        self._policy = policy
        self.spool = Spool(
            config.spool_dir,
            endpoint=endpoint_id(config.base_url, config.ingestion_id),
            max_bytes=config.spool_max_bytes,
            on_error=self._on_error,
        )
        #: Called after events were stored: the pipeline schedules a drain.
        self.on_stored: Callable[[], None] = lambda: None
        #: Called by flush() and close(): the pipeline drains now, cutting a probe's
        #: backoff short (the server may be back).
        self.drain_now: Callable[[], None] = lambda: None
        self.reset(Stats(), self._reporter, "")

    def reset(self, stats: Stats, reporter: Reporter, id_prefix: str) -> None:
        """Per-process state (called again in a forked child)."""
        self._stats = stats
        self._reporter = reporter
        self._prefix = id_prefix
        self._lock = threading.Lock()
        self._failures = 0
        self._attempts = 0  # drains that sent something, for deliver_backlog()
        self._generation = 0  # bumped whenever events were stored
        # Notified after every drain attempt, for deliver_backlog().
        self._drained = threading.Condition(threading.Lock())
        # Used by the overflow writer thread only (or by close() when there is none).
        # Its own prefix and numbering: an event is counted in ``enqueued`` only once it
        # is on disk, so one the spool cannot take is counted ``dropped_queue_full``
        # alone, exactly as without a spool.
        self._builder = LoggedEventBuilder(
            secrets.token_urlsafe(8), itertools.count(), lambda raw: None
        )
        if self._overflow_pid == os.getpid():
            # close() and reuse: the same buffer, whose writer may still be writing
            # events that loggers handed over during close().
            self._overflow.reporter = reporter
        else:
            self._overflow = Overflow(self._config.max_queue_size, self._write_overflow, reporter)
            self._overflow_pid = os.getpid()

    def _stored(self) -> None:
        self._generation += 1  # before the wake-up: see drain()
        self.on_stored()

    def _on_error(self, message: str) -> None:
        self._reporter.every("spool:" + message[:60], logging.ERROR, "%s", message)

    # -- the queue is full: application thread ---------------------------------------

    def overflow(self, item: tuple[Any, ...]) -> bool:
        """Take an event the queue had no room for; ``False`` if the spool cannot."""
        spool = self.spool
        # Closed by a close() that ran while loggers went on: open again (the connection
        # is opened by the writer thread, not here).
        if not spool.available and not spool.reopen():
            return False
        return self._overflow.put(item)

    def _write_overflow(self, items: list[tuple[Any, ...]]) -> None:
        build = self._builder.build
        # Built and encoded row by row inside the transaction: SQLite lets the
        # application thread in between rows, instead of after the whole slice.
        payloads = (dumps_event(build(item)) for item in items)
        kept = self.spool.put(payloads, [item[3] for item in items])
        counter = self._stats.enqueued if kept else self._stats.dropped_queue_full
        for _ in items:
            next(counter)
        if kept:
            with self._lock:
                self._stats.spooled += kept
            self._stored()

    def flush(self, timeout: float | None) -> bool:
        """Wait until the overflow taken so far is on disk."""
        return self._overflow.flush(timeout)

    # -- given up: sender or close() thread ------------------------------------------

    def spill(self, events: list[Event]) -> int:
        """Store events on disk (all or none); return how many are kept there.

        Encoded events (``bytes``) were read back from the spool and are still on disk,
        claimed by this process: they are kept without being stored twice (``close()``
        releases the claim).
        """
        fresh = [e for e in events if not isinstance(e, bytes)]
        on_disk = len(events) - len(fresh)
        if not fresh:
            return on_disk
        now = time.time()
        logged = [getattr(e, "logged", now) for e in fresh]
        kept = self.spool.put((dumps_event(e) for e in fresh), logged)  # type: ignore[arg-type]
        if kept:
            with self._lock:
                self._stats.spooled += kept
            self._stored()
        return on_disk + kept

    # -- draining: sender thread, when idle ------------------------------------------

    def drain(self, deliverer: Deliverer) -> float | None:
        """Send one batch from the spool; return seconds until the next try, or None."""
        generation = self._generation
        try:
            delay = self._drain_once(deliverer)
            if (delay is None or delay >= _RECHECK) and self._generation != generation:
                # Stored while this drain found nothing to claim: the wake-up that came
                # with them found a drain running and was lost, so look again now.
                return 0.0
            return delay
        finally:
            with self._drained:
                self._drained.notify_all()

    def _drain_once(self, deliverer: Deliverer) -> float | None:
        rows = self.spool.claim(self._config.batch_size, self._config.max_batch_bytes)
        if not rows:
            self._failures = 0
            # Rows held by other live processes (or none at all): look again later only
            # if there are any, so rows of a sibling that dies are not left behind.
            return _RECHECK if self.spool.depth() else None
        ids = {id(payload): rowid for rowid, payload in rows}
        kept: list[Event] = []

        def keep(events: list[Event]) -> int:
            kept.extend(events)
            return len(events)

        deliverer.deliver([payload for _, payload in rows], spill=keep)
        self._attempts += 1
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

    def deliver_backlog(self, deadline: float | None, deliverer: Deliverer | None = None) -> bool:
        """Drain this endpoint's rows until none is left, the server fails, or ``deadline``.

        For ``flush()`` and ``close()``. With ``deliverer`` the batches are sent on the
        calling thread (only when no sender thread runs); without, the sender thread
        drains and this waits for it.

        Returns:
            ``False`` only if ``deadline`` (``time.monotonic()``) passed first. Rows left
            because the server does not answer are settled: they stay on disk.
        """
        attempts = self._attempts
        while True:
            # Rows are settled when a drain made during this call failed: a failure seen
            # before it (an outage since over) must not keep it from trying.
            if (self._failures and self._attempts != attempts) or not self.spool.has_backlog():
                return True
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            if deliverer is not None:
                if self._drain_once(deliverer) is None:
                    return True
                continue
            with self._drained:
                self.drain_now()
                self._drained.wait(_NUDGE if remaining is None else min(remaining, _NUDGE))

    def close(self, deadline: float, deliverer: Deliverer | None = None) -> bool:
        """Write out the overflow and close the spool, within ``deadline``.

        Args:
            deadline: ``time.monotonic()`` bound.
            deliverer: When no sender thread runs: send this endpoint's rows from here.

        Returns:
            Whether the spool was closed: not while the overflow writer still writes
            (loggers that went on during close() keep it busy), which needs it open.
        """
        finished = self._overflow.close(deadline)
        if deliverer is not None:
            self.deliver_backlog(deadline, deliverer)
        if finished:
            self.spool.close()
        return finished

    def stop_writer(self) -> None:
        """The owner is gone: the overflow writer stores what it holds, then ends."""
        self._overflow.stop()

    def waiting(self) -> int:
        """Events handed over by a full queue, not yet on disk."""
        return self._overflow.waiting()

    def depth(self) -> int:
        """This endpoint's events waiting on disk (all processes')."""
        return self.spool.depth()
