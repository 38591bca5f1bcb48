"""Delivering one batch: retries with backoff, splitting on 413, isolating bad events on 400/422.

Runs on the sender thread only. Every event handed to ``deliver`` ends in exactly one
counter (``sent``, ``invalid``, ``failed``, ``dropped_shutdown``) or in the spool.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from ._deliver_report import describe, report_failed, report_invalid, report_redirect
from ._diagnostics import Reporter
from ._retry import RetryPolicy, Verdict, classify
from ._stats import Stats
from ._transport import SendResult

#: A JSON-ready event dict, or one already encoded (read back from the spool).
Event = dict[str, Any] | bytes


# A request made while closing gets at least this long, even past the deadline.
_MIN_REQUEST = 0.1


class _Sender(Protocol):
    def send(self, body: bytes, timeout: float | None = None) -> SendResult: ...


class Deliverer:
    """Sends batches and settles every event's fate in ``stats``.

    Args:
        transport: Where bodies go.
        policy: Retry limits and backoff.
        stats: Counters to settle into.
        reporter: Diagnostics.
        encode: Events to JSON bytes.
        max_batch_bytes: Bodies larger than this are split before sending.
        spill: Takes events given up on a retryable failure; returns how many it kept
            (the spool). The rest are counted lost.
    """

    def __init__(
        self,
        transport: _Sender,
        policy: RetryPolicy,
        stats: Stats,
        reporter: Reporter,
        encode: Callable[[Any], bytes],
        max_batch_bytes: int,
        spill: Callable[[list[Event]], int] | None = None,
    ) -> None:
        self._transport = transport
        self._policy = policy
        self._stats = stats
        self._reporter = reporter
        self._encode = encode
        self._max_bytes = max_batch_bytes
        # close() sets ``deadline`` and then ``_closing``: a long backoff is cut short, and
        # from then on retries only happen while they fit before the deadline.
        self.deadline: float | None = None
        self._closing = threading.Event()
        self._abort = threading.Event()
        self.spill = spill
        self._lock = threading.Lock()
        # What deliver() has not settled yet: the chunk being sent and the chunks still
        # to send (a stack, oldest last). abandon() takes exactly these, so an event is
        # either settled here or handed back, never both.
        self._chunk: list[Event] | None = None
        self._pending: list[list[Event]] | None = None
        self._batch_spill: Callable[[list[Event]], int] | None = None
        self._abandoned = False
        #: Set when a spool is configured: a batch gets one attempt and then goes to
        #: disk (where a crash cannot take it), and the spool's probes do the retrying;
        #: a batch the spool cannot take is retried in memory.
        self.skip_retries = False
        #: Mean encoded size of an event in the last batch, for closing batches by bytes.
        self.event_bytes = 200

    def deliver(
        self, events: list[Event], spill: Callable[[list[Event]], int] | None = None
    ) -> None:
        """Send ``events`` (oldest first), splitting and retrying as the answers require.

        Args:
            events: The batch.
            spill: Overrides ``self.spill`` for this batch: the spool's drain, whose
                events are rows already on disk. If close() abandons the batch, its
                unsettled events go to this ``spill`` (back to the spool) instead of
                being handed to close().
        """
        with self._lock:
            abandoned = self._abandoned
            if not abandoned:
                pending = [events]
                self._pending = pending
                self._chunk = None
                self._batch_spill = spill
        if abandoned:
            # close() gave up on this thread while it was busy elsewhere: these events
            # reached us after abandon() took the rest, so they are accounted here.
            self._give_up(events, spill, shutdown=True, late=True)
            return
        try:
            while True:
                with self._lock:
                    if self._abandoned or not pending:
                        break
                    chunk = pending.pop()
                    self._chunk = chunk
                self._send_chunk(chunk, spill)
        finally:
            with self._lock:
                self._chunk = self._pending = self._batch_spill = None

    def _send_chunk(self, chunk: list[Event], spill: Callable[[list[Event]], int] | None) -> None:
        try:
            body = self._body(chunk)
        except Exception as exc:  # an event no fallback could encode
            if len(chunk) > 1:
                self._split(_halves(chunk))
            else:
                self._reject(chunk, SendResult(None, None, f"cannot encode: {exc}"))
            return
        if len(chunk) > 1 and len(body) > self._max_bytes:
            # Keep the share that fits (by mean size) and send the rest after it.
            cut = min(len(chunk) - 1, max(1, len(chunk) * self._max_bytes // len(body)))
            self._split((chunk[cut:], chunk[:cut]))
            return
        self.event_bytes = max(1, len(body) // len(chunk))
        result = self._post(body, chunk, spill)
        if result is _SPOOLED:
            return
        if result is None:
            self._give_up(chunk, spill, shutdown=True)
            return
        verdict = classify(result.status)
        if verdict is Verdict.OK:
            if self._take(chunk):
                self._count("sent", len(chunk))
        elif verdict in (Verdict.SPLIT, Verdict.INVALID) and len(chunk) > 1:
            self._split(_halves(chunk))
        elif verdict in (Verdict.SPLIT, Verdict.INVALID):
            self._reject(chunk, result)
        elif verdict is Verdict.RETRY:
            self._give_up(chunk, spill, shutdown=False, result=result)
        else:
            self._fail(chunk, result, verdict)

    def _take(self, chunk: list[Event]) -> bool:
        """Claim the chunk in flight for settling; ``False`` if abandon() took it."""
        with self._lock:
            if self._abandoned:
                return False
            self._chunk = None
            return True

    def _split(self, parts: tuple[list[Event], list[Event]]) -> None:
        """Replace the chunk in flight by its parts (pushed: second first)."""
        with self._lock:
            if self._abandoned or self._pending is None:
                return  # abandon() took the whole chunk
            self._pending.extend(parts)
            self._chunk = None

    def _body(self, chunk: list[Event]) -> bytes:
        if type(chunk[0]) is bytes:
            return b"[" + b",".join(chunk) + b"]"  # type: ignore[arg-type]
        return self._encode(chunk)

    def _post(
        self, body: bytes, chunk: list[Event], spill: Callable[[list[Event]], int] | None
    ) -> SendResult | None:
        """One request plus its retries; ``None`` when shutdown cut the retries short,
        ``_SPOOLED`` when a retryable failure settled ``chunk`` in the spool."""
        retries = 0
        while True:
            # Once closing, a request never outlasts the deadline: a stalled server would
            # otherwise hold close() or a logging call at exit for the whole `timeout`.
            deadline = self.deadline
            left = None if deadline is None else max(_MIN_REQUEST, deadline - time.monotonic())
            result = self._transport.send(body, left)
            self._stats.requests += 1
            if result.redirect_host is not None:
                report_redirect(self._reporter, result)
            if classify(result.status) is not Verdict.RETRY or not self._policy.allows(retries):
                return result
            if self.skip_retries and self._spooled(chunk, spill):
                return _SPOOLED
            if result.redirect_host is None:
                self._reporter.every(
                    "retry",
                    logging.WARNING,
                    "slaOS did not accept a batch (%s); retrying with backoff",
                    describe(result),
                )
            delay = self._policy.delay(retries, result.retry_after)
            deadline = self.deadline
            if deadline is not None and deadline - time.monotonic() <= delay:
                return None
            self._stats.retries += 1
            retries += 1
            if deadline is None:
                self._closing.wait(delay)
            else:
                self._abort.wait(delay)

    def _spooled(self, chunk: list[Event], spill: Callable[[list[Event]], int] | None) -> bool:
        """Settle ``chunk`` in the spool; ``False`` if it must be retried in memory."""
        spill = spill or self.spill
        if spill is None:
            return False
        if not self._take(chunk):
            return True  # close() took it back: it spools or counts it
        if spill(chunk) == len(chunk):  # the spool takes a chunk whole or not at all
            return True
        # It cannot (failed to open, disk full): back in flight, retried in memory.
        with self._lock:
            if not self._abandoned:
                self._chunk = chunk
                return False
        self._give_up(chunk, spill, shutdown=True, late=True)  # abandon() missed it
        return True

    def _give_up(
        self,
        events: list[Event],
        spill: Callable[[list[Event]], int] | None,
        *,
        shutdown: bool,
        result: SendResult | None = None,
        late: bool = False,
    ) -> None:
        if not late and not self._take(events):
            return
        spill = spill or self.spill
        kept = spill(events) if spill is not None else 0
        lost = len(events) - kept
        if not lost:
            return
        if shutdown:
            self._count("dropped_shutdown", lost)
            self._reporter.every(
                "shutdown",
                logging.ERROR,
                "%d slaOS events were not delivered before shutdown_timeout ran out",
                lost,
            )
            return
        self._count("failed", lost)
        self._reporter.every(
            "failed",
            logging.ERROR,
            "gave up on %d slaOS events (%s); see stats()['failed']",
            lost,
            describe(result) if result is not None else "no answer",
        )

    def _reject(self, chunk: list[Event], result: SendResult) -> None:
        if self._take(chunk):
            self._count("invalid", 1)
            report_invalid(self._reporter, chunk[0], result)

    def _fail(self, events: list[Event], result: SendResult, verdict: Verdict) -> None:
        if self._take(events):
            self._count("failed", len(events))
            report_failed(self._reporter, result, verdict, self._stats.failed)

    def count(self, name: str, n: int) -> None:
        """Add ``n`` to the sender-side counter ``name`` (thread-safe)."""
        with self._lock:
            setattr(self._stats, name, getattr(self._stats, name) + n)

    _count = count

    def begin_closing(self, deadline: float) -> None:
        """Bound every further wait by ``deadline`` and cut the current backoff short."""
        self.deadline = deadline
        self._closing.set()

    def abandon(self) -> list[Event]:
        """Stop settling; return the events not settled yet (close() timed out on them).

        Chunks of the batch already settled (answered 2xx after a split, say) are not
        returned. Events of a spool drain are given back to its ``spill`` (they are
        still rows on disk) instead of being returned.
        """
        with self._lock:
            self._abandoned = True
            events: list[Event] = list(self._chunk or ())
            for chunk in reversed(self._pending or ()):
                events.extend(chunk)
            if self._pending is not None:
                self._pending.clear()
            self._chunk = None
            drained_by = self._batch_spill
        self._abort.set()
        if drained_by is not None:
            if events:
                drained_by(events)
            return []
        return events


#: Returned by ``_post`` when the spool took the chunk after a retryable failure.
_SPOOLED = SendResult(None, None, "spooled")


def _halves(events: list[Event]) -> tuple[list[Event], list[Event]]:
    # Pushed onto a stack: second half first, so the first half (older) is sent first.
    middle = len(events) // 2
    return events[middle:], events[:middle]
