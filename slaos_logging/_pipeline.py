"""One process's queue, sender thread and HTTP session.

Started lazily by the first event; rebuilt in a forked child (the parent's pending
events stay the parent's); closed by ``close()`` or by the hooks in ``_lifecycle``.
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import threading
import time
from typing import Any

from . import _lifecycle
from ._batch import BatchSender, FlushMarker
from ._config import Config
from ._deliver import Deliverer, Event
from ._diagnostics import Reporter, protect_secret
from ._encode import EventBuilder, make_encoder
from ._extract import Pending
from ._retry import RetryPolicy
from ._spooling import LoggedEventBuilder, SpoolLink
from ._stats import Stats
from ._transport import Transport


def _new_prefix() -> str:
    # 64 random bits per process (and per fork), URL-safe, always 11 characters: with
    # the per-event counter appended in hex, keys stay short on the wire, and the fixed
    # length keeps (prefix, counter) pairs from running into each other.
    return secrets.token_urlsafe(8)


class Pipeline:
    """Queue -> sender thread -> slaOS, for one handler or worker."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._policy = RetryPolicy(config.max_retries, config.backoff_base, config.backoff_cap)
        self._encode = make_encoder()
        self._closed = False
        self._close_done = threading.Event()
        self.spool: SpoolLink | None = None
        if config.spool_dir is not None:
            self.spool = SpoolLink(config, self._policy)
        self._process_state()
        _lifecycle.track(self)
        protect_secret(self, config.ingestion_key)
        if self.spool is not None and self.spool.depth():
            self._start()  # events left by an earlier process: deliver them now

    def _process_state(self) -> None:
        """Everything that belongs to one process (rebuilt after fork)."""
        config = self.config
        self._pid = os.getpid()
        self._lock = threading.Lock()
        # New in a child too: a lock held by a parent thread at fork time stays held.
        self.reporter = Reporter((config.ingestion_key,))
        self.stats = Stats()
        self._max_queue = config.max_queue_size
        self._batch_size = config.batch_size
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.started = False
        self._no_thread = False
        self.transport = Transport(
            config.endpoint,
            timeout=config.timeout,
            verify=config.verify,
            secret=config.ingestion_key,
        )
        self.deliverer = Deliverer(
            self.transport,
            self._policy,
            self.stats,
            self.reporter,
            self._encode,
            config.max_batch_bytes,
        )
        prefix = _new_prefix()
        link = self.spool
        drain = None
        if link is not None:
            link.reset(self.stats, self.reporter, prefix)
            self.deliverer.spill = link.spill
            self.deliverer.skip_retries = True
            deliverer = self.deliverer

            def drain() -> float | None:
                return link.drain(deliverer)

        # With a spool, events remember when they were logged: the spool's order.
        builder = EventBuilder if link is None else LoggedEventBuilder
        self.sender = BatchSender(
            self.queue, config, self.deliverer, self.stats, self.reporter, prefix, drain, builder
        )
        if link is not None:
            link.on_stored = self.sender.wake_idle_work
        self._prefix = prefix

    # -- application side -------------------------------------------------------------

    def put(self, pending: Pending) -> bool:
        """Enqueue a pending event without blocking; count it if it has to be dropped.

        Returns:
            Whether the event was taken (queued, or handed to the spool).
        """
        if self._closed:
            next(self.stats.dropped_closed)
            self.reporter.every("closed", logging.WARNING, "event logged after close(): dropped")
            return False
        q = self.queue
        depth = q.qsize()
        if depth >= self._max_queue:
            if self.spool is not None and self.spool.overflow(pending):
                return True
            next(self.stats.dropped_queue_full)
            self.reporter.every(
                "queue_full",
                logging.WARNING,
                "slaOS queue full (%d events): dropping new events; the server is slow or "
                "unreachable, or max_queue_size is too small",
                self.config.max_queue_size,
            )
            return False
        q.put(pending)
        if depth >= self._batch_size:
            wake = self.sender.wake
            if not wake.is_set():
                wake.set()
        if not self.started:
            self._start()
        return True

    def _start(self) -> None:
        with self._lock:
            if self.started or self._no_thread:
                return
            if os.getpid() != self._pid:  # forked without our hook (e.g. a raw os.fork in C)
                self._after_fork_locked()
            try:
                self.sender.start()
            except RuntimeError:
                # Python 3.12+ refuses new threads during interpreter shutdown. The events
                # stay queued and close() delivers them on its own thread.
                self._no_thread = True
                return
            self.started = True
        _lifecycle.close_with_multiprocessing_child(self)

    # -- control ----------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event enqueued before the call is settled."""
        if os.getpid() != self._pid:
            self.after_fork()
        if self._closed:
            # Everything was delivered or given up by close(); a marker queued now,
            # behind the stop sentinel, would never be answered.
            return self._close_done.wait(timeout)
        if not self._sender_alive():
            if self.queue.empty() and not self.sender.has_open_batch():
                return True
            return self._drain_here(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        marker = FlushMarker()
        self.queue.put(marker)
        self.sender.wake.set()
        done = marker.done.wait(timeout)
        if self.spool is not None:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            done = self.spool.flush(left) and done
            done = self.spool.deliver_backlog(deadline) and done  # the sender drains it
        return done

    def _sender_alive(self) -> bool:
        thread = self.sender.thread
        return self.started and thread is not None and thread.is_alive()

    def _drain_here(self, timeout: float | None) -> bool:
        # No sender thread (none could be started at shutdown): deliver on this thread.
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while deadline is None or time.monotonic() < deadline:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                self.sender.handle(item)
            self.sender.send_batch()
        return self.queue.empty()

    def close(self) -> None:
        """Deliver what is queued within ``shutdown_timeout``, then stop. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._close()
        finally:
            self._close_done.set()

    def _close(self) -> None:
        if os.getpid() != self._pid:
            self.after_fork()
        timeout = self.config.shutdown_timeout
        deadline = time.monotonic() + timeout
        self.deliverer.begin_closing(deadline)
        if self._sender_alive():
            if self.spool is not None:
                self._deliver_spool(deadline)
            self.queue.put(FlushMarker())
            self.sender.enqueue_sentinel()
            self.sender.wake.set()
            thread = self.sender.thread
            assert thread is not None
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                self._abandon()
                self._close_spool(deadline)
                return
        else:
            self._drain_here(max(0.0, deadline - time.monotonic()))
            if not self.queue.empty():
                self._abandon()
        self._close_spool(deadline)
        self.transport.close()

    def _deliver_spool(self, deadline: float) -> None:
        """close(): settle the queue, then have the sender deliver the spool's rows."""
        assert self.spool is not None
        marker = FlushMarker()
        self.queue.put(marker)
        self.sender.wake.set()
        left = deadline - time.monotonic()
        if marker.done.wait(max(0.0, left)) and self.spool.flush(max(0.0, left)):
            # Stop a little early, so the batch in flight can finish before the deadline.
            self.spool.deliver_backlog(deadline - min(1.0, 0.1 * self.config.shutdown_timeout))

    def _close_spool(self, deadline: float) -> None:
        if self.spool is not None:
            # With no sender thread left, what the spool holds is sent from this one.
            self.spool.close(deadline, None if self._sender_alive() else self.deliverer)

    def _abandon(self) -> None:
        """shutdown_timeout ran out: spool or count everything not delivered."""
        events: list[Event] = self.deliverer.abandon()
        events.extend(self.sender.take_open_batch())
        build = EventBuilder if self.spool is None else LoggedEventBuilder
        builder = build(self._prefix, self.stats.enqueued, lambda raw: None)
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if type(item) is tuple:
                events.append(builder.build(item))
            elif isinstance(item, FlushMarker):
                item.done.set()  # its events are settled: spooled or counted below
        # The stop sentinel went with the queue: tell the thread to end once its
        # request returns, instead of waiting on an empty queue forever.
        self.sender.halt()
        kept = self.spool.spill(events) if self.spool is not None and events else 0
        lost = len(events) - kept
        if lost:
            # Through the deliverer's lock: its thread may still be counting too.
            self.deliverer.count("dropped_shutdown", lost)
            self.reporter.every(
                "shutdown",
                logging.ERROR,
                "%d slaOS events were not delivered before shutdown_timeout (%.1fs) ran out",
                lost,
                self.config.shutdown_timeout,
            )

    def snapshot(self) -> dict[str, int]:
        """The counters, with the queue's current depth."""
        depth = self.queue.qsize()
        if self.spool is None:
            return self.stats.snapshot(queue_depth=depth, spool_depth=0)
        self.stats.spool_dropped = self.spool.spool.dropped
        return self.stats.snapshot(
            queue_depth=depth, spool_depth=self.spool.depth(), waiting=self.spool.waiting()
        )

    # -- fork -------------------------------------------------------------------------

    def after_fork(self) -> None:
        """In a forked child: start over with an empty queue, a new thread and session."""
        self._after_fork_locked()

    def _after_fork_locked(self) -> None:
        # Nothing of the parent's is closed: its sockets and thread are the parent's.
        self._process_state()
