"""The sender thread: a ``QueueListener`` that gathers pending events into batches.

The stdlib listener supplies the thread, the loop and the stop sentinel; this class
decides how long each ``get`` may block. With no batch open it blocks with no timeout,
so an idle process never wakes; with a batch open it waits at most until the batch is
due. Batches close at ``batch_size`` events, about ``max_batch_bytes`` of JSON, or
``flush_interval`` after their first event.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from logging.handlers import QueueListener
from typing import Any

from ._config import Config
from ._deliver import Deliverer, Event
from ._diagnostics import Reporter
from ._encode import EventBuilder
from ._stats import Stats

#: Idents of every live sender thread: records they log (urllib3's, say) are never shipped.
SENDER_THREADS: set[int] = set()
# A forked child has none of its parent's threads, but glibc hands their stacks, and so
# their idents, to the child's next threads: an inherited ident would make emit() ignore
# every record of whichever child thread got it. The child's own sender adds itself.
os.register_at_fork(after_in_child=SENDER_THREADS.clear)


class FlushMarker:
    """Put in the queue by ``flush()``; set once every earlier event is settled."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class _Due:
    """Returned by ``dequeue`` when the open batch is due (no item arrived in time)."""


_DUE = _Due()


class BatchSender(QueueListener):
    """Drains the queue on one named daemon thread and hands batches to a ``Deliverer``."""

    def __init__(
        self,
        q: queue.SimpleQueue[Any],
        config: Config,
        deliverer: Deliverer,
        stats: Stats,
        reporter: Reporter,
        id_prefix: str,
        idle_work: Callable[[], float | None] | None = None,
        builder: type[EventBuilder] = EventBuilder,
    ) -> None:
        super().__init__(q)
        self._q = q  # typed view of self.queue
        #: Set by producers when a full batch is queued, and by flush() and close().
        self.wake = threading.Event()
        self._halted = False
        self._blocking = False  # the sender is blocked on the queue with no timeout
        self._config = config
        self._deliverer = deliverer
        self._stats = stats
        self._reporter = reporter
        self._batch: list[Event] = []
        self._due_at = 0.0
        self._builder = builder(
            id_prefix, stats.enqueued, self._bad_timestamp, self._name_collision
        )
        # Called when the queue is idle; returns seconds until it wants to run again
        # (the spool's drain and probe), or None to sleep until an event arrives.
        self._idle_work = idle_work
        self._idle_at: float | None = 0.0 if idle_work is not None else None

    def start(self) -> None:
        """Start the thread (named, daemon), and remember its ident."""
        thread = threading.Thread(target=self._run, name="slaos-logging-sender", daemon=True)
        self._thread = thread
        thread.start()

    def _run(self) -> None:
        ident = threading.get_ident()
        SENDER_THREADS.add(ident)
        try:
            # The stdlib loop (dequeue, handle, until the sentinel); not in typeshed.
            self._monitor()  # type: ignore[attr-defined]
        finally:
            SENDER_THREADS.discard(ident)

    @property
    def thread(self) -> threading.Thread | None:
        """The sender thread, once started."""
        return self._thread

    def dequeue(self, block: bool) -> Any:
        """Return the next item; block only as long as nothing is due.

        With no batch open (and no idle work pending) this blocks on the queue with no
        timeout. With a batch open it takes what is already queued without blocking,
        then sleeps on ``wake`` until the batch is due: producers set ``wake`` only
        once a full batch is waiting, so a burst does not cost a thread hand-off per
        event.
        """
        if self._halted:
            # The stdlib loop's stop sentinel: close() gave up on us. An event taken
            # from the queue in the meantime is settled (spooled or counted), not lost.
            self.send_batch()
            return None
        batch_due = self._due_at if self._batch else None
        idle_at = self._idle_at
        if batch_due is None and idle_at is None:
            # wake_idle_work() and halt() on another thread put a _DUE in the queue if
            # they find us here; re-checking after raising the flag closes the gap.
            self._blocking = True
            if self._idle_at is None and not self._halted:
                try:
                    return self._q.get()
                finally:
                    self._blocking = False
            self._blocking = False
            if self._halted:
                return None
            idle_at = self._idle_at
        try:
            # What is queued joins the open batch before it is sent, and fresh events
            # go before idle work (the spool). A batch still closes at batch_size.
            return self._q.get_nowait()
        except queue.Empty:
            pass
        now = time.monotonic()
        wake_at = min(t for t in (batch_due, idle_at) if t is not None)
        remaining = wake_at - now
        if remaining > 0:
            self.wake.clear()
            # Re-check after clear(): an event put in between would otherwise wait
            # for the timeout.
            if self._q.empty():
                self.wake.wait(remaining)
            try:
                return self._q.get_nowait()  # what arrived meanwhile joins the batch
            except queue.Empty:
                pass
        return _DUE

    def handle(self, record: Any) -> None:
        """Take one queue item: a pending event, a flush marker, or the due signal."""
        try:
            if type(record) is tuple:
                self._add(record)
            elif record is _DUE:
                self._tick()
            elif isinstance(record, FlushMarker):
                self.send_batch()
                record.done.set()
        except Exception as exc:  # the sender thread must never die
            self._reporter.every(
                "internal",
                logging.ERROR,
                "slaos_logging sender error: %s: %s",
                type(exc).__name__,
                exc,
            )
            if isinstance(record, FlushMarker):
                record.done.set()

    def _add(self, item: tuple[Any, ...]) -> None:
        event = self._builder.build(item)
        batch = self._batch
        if not batch:
            # Due flush_interval after the event was logged, not after the sender saw
            # it: an event that waited in the queue must not wait a full interval more.
            waited = max(0.0, time.time() - item[3])
            self._due_at = time.monotonic() + max(0.0, self._config.flush_interval - waited)
        batch.append(event)
        if (
            len(batch) >= self._config.batch_size
            # Close before the next event would not fit (by the last batch's mean size).
            or (len(batch) + 1) * self._deliverer.event_bytes > self._config.max_batch_bytes
        ):
            self.send_batch()

    def _bad_timestamp(self, raw: object) -> None:
        self._stats.bad_timestamps += 1
        self._reporter.every(
            "timestamp",
            logging.WARNING,
            "unusable timestamp %.60r: used the record's creation time instead",
            raw,
        )

    def _name_collision(self, name: str) -> None:
        # Once per name: a code path that always logs both spellings would otherwise
        # repeat it on every event.
        self._reporter.once(
            "name_collision:" + name,
            logging.WARNING,
            "value names that differ only in characters other than letters, digits, '_' "
            "and '/' all become %r: the first one's value is kept, the others are dropped "
            "from values",
            name,
        )

    def _tick(self) -> None:
        # Reached when the queue is drained: the batch is sent if due, else the
        # next dequeue() goes back to sleep until it is (or until woken).
        now = time.monotonic()
        if self._batch and now >= self._due_at:
            self.send_batch()
        if self._idle_work is not None and self._idle_at is not None and now >= self._idle_at:
            delay = self._idle_work()
            self._idle_at = None if delay is None else time.monotonic() + delay

    def wake_idle_work(self) -> None:
        """The spool gained events: schedule a drain now, unless one is already scheduled.

        An already scheduled drain keeps its time, so events spilled during an outage
        do not cut the probes' backoff short.
        """
        if self._idle_work is not None and self._idle_at is None:
            self._idle_at = 0.0
            self.wake.set()
            if self._blocking:
                self._q.put(_DUE)  # the sender sleeps on the queue itself: wake it there

    def drain_idle_work_now(self) -> None:
        """flush() or close() waits for the spool: drain now, even if a probe is scheduled
        later (the server may be back)."""
        if self._idle_work is not None:
            self._idle_at = 0.0
            self.wake.set()
            if self._blocking:
                self._q.put(_DUE)

    def send_batch(self) -> None:
        """Deliver the open batch now."""
        batch, self._batch = self._batch, []
        if batch:
            self._deliverer.deliver(batch)

    def halt(self) -> None:
        """End the loop at the next dequeue (close() timed out and took the queue)."""
        self._halted = True
        self.wake.set()
        if self._blocking:
            # Blocked on the queue, which close() emptied (its stop sentinel too):
            # without this it would wait there forever, a leaked thread.
            self._q.put(_DUE)

    def has_open_batch(self) -> bool:
        """Whether events are gathered but not yet sent."""
        return bool(self._batch)

    def take_open_batch(self) -> list[Event]:
        """Remove and return the batch not yet sent (for shutdown accounting)."""
        batch, self._batch = self._batch, []
        return batch
