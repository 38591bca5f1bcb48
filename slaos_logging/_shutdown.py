"""The end of a pipeline's life: shutdown accounting, delivery at exit, orphans.

Functions over a ``Pipeline`` (passed in) so that ``_pipeline`` keeps to the queue, the
thread and their control.
"""

from __future__ import annotations

import enum
import logging
import queue
import time
from typing import TYPE_CHECKING

from . import _lifecycle
from ._batch import FlushMarker
from ._config import Config
from ._deliver import Event
from ._diagnostics import Reporter, protect_secret
from ._encode import EventBuilder
from ._extract import Pending
from ._spooling import LoggedEventBuilder

if TYPE_CHECKING:
    from ._pipeline import Pipeline


class Default(enum.Enum):
    """The type of ``SHUTDOWN_TIMEOUT``."""

    SHUTDOWN_TIMEOUT = "shutdown_timeout"


#: ``flush()``'s default timeout: the handler's ``shutdown_timeout``.
SHUTDOWN_TIMEOUT = Default.SHUTDOWN_TIMEOUT
FlushTimeout = float | None | Default


def warn_if_disabled(config: Config, reporter: Reporter) -> None:
    """One warning (on stderr if nobody listens) for a handler with no credentials at all."""
    if config.disabled_reason == "no_credentials":
        reporter.alert(
            "disabled",
            logging.WARNING,
            "slaos_logging: SLAOS_INGESTION_ID and SLAOS_INGESTION_KEY are not set (nor "
            "ingestion_id= and ingestion_key=): the handler is disabled and sends "
            "nothing. Set both to ship events, or SLAOS_ENABLED=0 to turn it off quietly.",
        )


def stop(self: Pipeline, until: float | None = None) -> None:
    """close()'s work: deliver within ``shutdown_timeout`` (and ``until``), stop, account."""
    deadline = time.monotonic() + self.config.shutdown_timeout
    if until is not None:
        deadline = min(deadline, until)
    self.deliverer.begin_closing(deadline)
    if not self.has_thread() and not self._exiting and not self.queue.empty():
        # Records are waiting and their put() may be starting a thread right now:
        # start it here, so that only one thread ever consumes the queue.
        self._start()
    with self._lock:
        # Until the end of close() no logging call starts a sender thread: one started
        # after the test below would never be stopped (a leaked thread, and a second
        # consumer of the queue). Records wait in the queue; the end starts the next.
        self._closing = True
    try:
        _stop_thread(self, deadline)
    except BaseException:
        with self._lock:
            self._closing = False
        raise
    with self._lock:
        self._closing = False
        self.started = False
        self._stale = True
        # Records that arrived while we waited went in behind the stop sentinel.
        leftover = not self.queue.empty()
    if leftover:
        if self._exiting:
            drain_here(self, max(0.0, deadline - time.monotonic()))
        else:
            self._start()


def _stop_thread(self: Pipeline, deadline: float) -> None:
    """Stop the running sender (or deliver here), then close the spool and session."""
    abandoned = False
    if self.has_thread():
        if not self._stop_sent:  # (begin_stop() or an orphan's finalizer already asked)
            if self.spool is not None:
                deliver_spool(self, deadline)
            self.queue.put(FlushMarker())
            self.release()
        thread = self.sender.thread
        assert thread is not None
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            abandon(self)
            abandoned = True
        elif self.sender.has_open_batch():
            # Records logged between our marker and the stop sentinel were gathered
            # but not sent when the thread ended: send them here.
            self.sender.send_batch()
    elif self.started or self._no_thread or not self.queue.empty():
        drain_here(self, max(0.0, deadline - time.monotonic()))
        if not self.queue.empty():
            abandon(self)
    if self.spool is not None and not self._spool_closed:
        # With no sender thread left, what the spool holds is sent from this one.
        # (Left open while its overflow writer still writes what loggers handed over.)
        self._spool_closed = self.spool.close(
            deadline, None if self.has_thread() else self.deliverer
        )
    if not abandoned:
        self.transport.close()


def deliver_spool(self: Pipeline, deadline: float) -> None:
    """Settle the queue, then have the running sender deliver the spool's rows."""
    assert self.spool is not None
    marker = FlushMarker()
    self.queue.put(marker)
    self.sender.wake.set()
    left = deadline - time.monotonic()
    if marker.done.wait(max(0.0, left)) and self.spool.flush(max(0.0, left)):
        # Stop a little early, so the batch in flight can finish before the deadline.
        self.spool.deliver_backlog(deadline - min(1.0, 0.1 * self.config.shutdown_timeout))


def _builder(self: Pipeline) -> EventBuilder:
    # With a spool, events remember when they were logged: the spool's order.
    build = EventBuilder if self.spool is None else LoggedEventBuilder
    return build(self._prefix, self.stats.enqueued, lambda raw: None)


def put_at_exit(self: Pipeline, pending: Pending) -> bool:
    """After the exit hook: deliver on this thread within ``shutdown_timeout``, or spool.

    Once such a delivery has failed, later records are not tried again (each would
    hold its thread up to ``shutdown_timeout``): spooled, or counted ``dropped_closed``.
    """
    if self._exit_failed or not self._sync_lock.acquire(timeout=self.config.shutdown_timeout):
        if self.spool is not None:
            # Numbered (so counted in `enqueued`) only once it is an event we keep.
            if self.spool.spill([_builder(self).build(pending)]):
                return True
            self.stats.dropped_shutdown += 1
            return False
        next(self.stats.dropped_closed)
        self.reporter.alert(
            "closed",
            logging.WARNING,
            "a slaOS event logged during interpreter shutdown could not be sent "
            "(an earlier one failed): dropped (see stats()['dropped_closed'])",
        )
        return False
    try:
        before = self.stats.sent
        self.queue.put(pending)
        drain_locked(self, self.config.shutdown_timeout, bounded=True)
        if self.stats.sent == before:
            self._exit_failed = True
    finally:
        self._sync_lock.release()
    return True


def abandon(self: Pipeline) -> None:
    """shutdown_timeout ran out: spool or count everything not delivered."""
    events: list[Event] = self.deliverer.abandon()
    events.extend(self.sender.take_open_batch())
    builder = _builder(self)
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


def orphaned(orphan: Pipeline) -> None:
    """A pipeline's owner was collected: its thread delivers what is queued, then ends.

    ``_lifecycle`` holds the pipeline until the thread has ended, and closes it at exit
    like a live one.
    """
    try:
        if orphan.spool is not None:
            orphan.spool.stop_writer()  # else one writer thread per dropped handler
        if not orphan.has_thread():
            return
        protect_secret(orphan, orphan.config.ingestion_key)
        _lifecycle.adopt(orphan)
        orphan.queue.put(FlushMarker())
        orphan.release()
    except Exception:  # a finalizer must never raise
        pass


def drain_here(self: Pipeline, timeout: float | None, bounded: bool = True) -> bool:
    """Deliver what is queued on the calling thread, within ``timeout``.

    Returns:
        Whether the queue was emptied.
    """
    # No sender thread can run (none could be started, or exit began): deliver on
    # this thread. Never while a thread may start: two consumers of one queue
    # would share one open batch.
    limit = -1 if timeout is None else timeout
    if not self._sync_lock.acquire(timeout=limit):
        return False
    try:
        return drain_locked(self, timeout, bounded)
    finally:
        self._sync_lock.release()


def drain_locked(self: Pipeline, timeout: float | None, bounded: bool) -> bool:
    """``drain_here`` for a caller that holds ``_sync_lock`` (or needs no lock)."""
    with self._lock:
        if self._stale:
            self._renew()
    deadline = None if timeout is None else time.monotonic() + timeout
    if deadline is not None and bounded:
        # Retries must fit in the caller's time. (Not for a plain flush: a sender
        # thread may take this deliverer over afterwards.)
        self.deliverer.begin_closing(deadline)
    while deadline is None or time.monotonic() < deadline:
        try:
            item = self.queue.get_nowait()
        except queue.Empty:
            break
        if item is not None:  # a stop sentinel no thread will read
            self.sender.handle(item)
    self.sender.send_batch()
    return self.queue.empty()
