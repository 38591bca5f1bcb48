"""One process's queue, sender thread and HTTP session.

Started lazily by the first event; rebuilt in a forked child (the parent's pending
events stay the parent's). ``close()`` delivers what is queued and stops the thread;
a record logged afterwards starts a fresh one, as ``FileHandler`` reopens its file.
After the exit hook has run, records are delivered on the thread that logs them.
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import threading
import time
import weakref
from typing import Any

from . import _lifecycle
from ._batch import BatchSender, FlushMarker
from ._config import Config
from ._deliver import Deliverer
from ._diagnostics import Reporter, protect_secret
from ._encode import EventBuilder, make_encoder
from ._extract import Pending
from ._retry import RetryPolicy
from ._shutdown import (
    SHUTDOWN_TIMEOUT,
    Default,
    FlushTimeout,
    drain_here,
    orphaned,
    put_at_exit,
    stop,
)
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

    def __init__(self, config: Config, owner: object | None = None) -> None:
        """Build the pipeline (no thread yet).

        Args:
            config: The validated configuration.
            owner: The handler or worker that feeds it: once ``owner`` is collected
                without being closed, the thread delivers what is queued and ends.
        """
        self.config = config
        self._policy = RetryPolicy(config.max_retries, config.backoff_base, config.backoff_cap)
        self._encode = make_encoder()
        self.spool: SpoolLink | None = None
        self._spool_closed = False
        if config.enabled and config.spool_dir is not None:
            self.spool = SpoolLink(config, self._policy)
        self._process_state()
        if not config.enabled:
            return  # never sends: no thread, no hooks
        _lifecycle.track(self)
        protect_secret(self, config.ingestion_key)
        if owner is not None:
            # The finalizer holds the pipeline, never the owner: when the owner is
            # collected, the pipeline lives on until its thread has delivered what is
            # queued. (On the owner, not on the pipeline: a finalizer that kept the
            # pipeline's __dict__ would slow every attribute look-up in put().)
            weakref.finalize(owner, orphaned, self).atexit = False
        if self.spool is not None and self.spool.depth():
            self._start()  # events left by an earlier process: deliver them now

    def _process_state(self) -> None:
        """Everything that belongs to one process (rebuilt after fork)."""
        config = self.config
        self._pid = os.getpid()
        # New in a child too: a lock held by a parent thread at fork time stays held.
        self._lock = threading.Lock()  # started / the sender's renewal
        self._sync_lock = threading.Lock()  # delivery on a caller's thread
        self._close_lock = threading.Lock()
        self.reporter = Reporter((config.ingestion_key,))
        self.stats = Stats()
        self._max_queue = config.max_queue_size
        self._batch_size = config.batch_size
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.started = False
        self._no_thread = False
        self._closing = False  # stop() runs: it starts the next sender itself
        self._exiting = False
        self._exit_failed = False
        self._prefix = _new_prefix()
        self._new_sender()

    def _new_sender(self) -> None:
        """A fresh session, deliverer and (unstarted) sender on the same queue."""
        config = self.config
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
        prefix = self._prefix
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
            link.drain_now = self.sender.drain_idle_work_now
        self._stale = False  # set once close() has used this sender up
        self._stop_sent = False

    def _renew(self) -> None:
        """After close(): a new sender (and spool connection) for the next records."""
        if self.spool is not None and self._spool_closed:
            # Reopened by its next use, on the sender's thread: this may be a logging
            # call, which must not wait for SQLite (a locked file holds it 5 s).
            self.spool.spool.reopen()
            self._spool_closed = False
        self._new_sender()

    # -- application side -------------------------------------------------------------

    def put(self, pending: Pending) -> bool:
        """Enqueue a pending event without blocking; count it if it has to be dropped.

        Returns:
            Whether the event was taken (queued, sent, or handed to the spool).
        """
        if self._exiting:
            return put_at_exit(self, pending)
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
            if self.started or self._no_thread or self._closing or not self.config.enabled:
                return
            if os.getpid() != self._pid:  # forked without our hook (e.g. a raw os.fork in C)
                self._process_state()
            if self._stale:
                self._renew()
            try:
                self.sender.start()
            except RuntimeError:
                # Python 3.12+ refuses new threads during interpreter shutdown. The events
                # stay queued and close() delivers them on its own thread.
                self._no_thread = True
                return
            self.started = True
        _lifecycle.close_with_multiprocessing_child()

    # -- control ----------------------------------------------------------------------

    def flush(self, timeout: FlushTimeout = SHUTDOWN_TIMEOUT) -> bool:
        """Wait until every event enqueued before the call is settled.

        Args:
            timeout: Seconds at most; ``None`` waits until done. Default: the
                pipeline's ``shutdown_timeout``.
        """
        if isinstance(timeout, Default):
            timeout = self.config.shutdown_timeout
        if os.getpid() != self._pid:
            self.after_fork()
        if not self.has_thread():
            if self.queue.empty() and not self.sender.has_open_batch():
                return True
            if not self._exiting:
                self._start()  # (a record's own put() may be starting it right now)
            if not self.has_thread():  # none can run: deliver on this thread
                return drain_here(self, timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        marker = FlushMarker()
        self.queue.put(marker)
        self.sender.wake.set()
        if _lifecycle.logging_lock_held():
            # The sender may need this very lock: it delivers as soon as it is released.
            return marker.done.is_set()
        done = marker.done.wait(timeout)
        if self.spool is not None:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            done = self.spool.flush(left) and done
            done = self.spool.deliver_backlog(deadline) and done  # the sender drains it
        return done

    @property
    def shutdown_timeout(self) -> float:
        """Seconds ``close()`` may spend delivering."""
        return self.config.shutdown_timeout

    def has_thread(self) -> bool:
        """Whether a sender thread is running for this pipeline."""
        thread = self.sender.thread
        return self.started and thread is not None and thread.is_alive()

    def close(self, until: float | None = None) -> None:
        """Deliver what is queued within ``shutdown_timeout`` and stop the thread.

        Idempotent, and not final: a record logged afterwards starts a new thread.
        Called with the ``logging`` lock held (``dictConfig``), it only wakes the sender
        and returns: waiting there could deadlock.

        Args:
            until: A ``time.monotonic()`` deadline that may cut ``shutdown_timeout`` short.
        """
        if os.getpid() != self._pid:
            self.after_fork()
        if _lifecycle.logging_lock_held():
            if self.has_thread():
                self.queue.put(FlushMarker())  # send the open batch now
                self.sender.wake.set()
            return
        if not self._close_lock.acquire(timeout=self.config.shutdown_timeout):
            return  # another thread is closing it, within the same bound
        try:
            stop(self, until)
        finally:
            self._close_lock.release()

    def begin_stop(self, until: float) -> None:
        """Ask the sender to deliver what is queued and end, without waiting for it."""
        if self.has_thread() and not self._stop_sent:
            self.deliverer.begin_closing(min(until, time.monotonic() + self.shutdown_timeout))
            self.queue.put(FlushMarker())
            self.release()

    def release(self) -> None:
        """Let the sender deliver what is queued, then end (without waiting for it)."""
        if not self._stop_sent:
            self._stop_sent = True
            self.sender.enqueue_sentinel()
        self.sender.wake.set()

    def mark_exiting(self) -> None:
        """The exit hook ran: from now on records are delivered on the caller's thread."""
        self._exiting = True

    def snapshot(self) -> dict[str, int]:
        """The counters, with the queue's current depth."""
        numbered = self.stats.numbered()  # first: see Stats.snapshot
        depth = self.queue.qsize()
        if self.spool is None:
            return self.stats.snapshot(numbered=numbered, queue_depth=depth, spool_depth=0)
        self.stats.spool_dropped = self.spool.spool.dropped
        return self.stats.snapshot(
            numbered=numbered,
            queue_depth=depth,
            spool_depth=self.spool.depth(),
            waiting=self.spool.waiting(),
        )

    # -- fork -------------------------------------------------------------------------

    def after_fork(self) -> None:
        """In a forked child: start over with an empty queue, a new thread and session."""
        # Nothing of the parent's is closed: its sockets and thread are the parent's.
        if self.spool is not None and self._spool_closed:
            self.spool.spool.reopen()  # closed by the parent; the child may still use it
            self._spool_closed = False
        self._process_state()
