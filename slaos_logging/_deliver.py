"""Delivering one batch: retries with backoff, splitting on 413, isolating bad events on 400/422.

Runs on the sender thread only. Every event handed to ``deliver`` ends in exactly one
counter (``sent``, ``invalid``, ``failed``, ``dropped_shutdown``) or in the spool.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from ._diagnostics import Reporter
from ._retry import RetryPolicy, Verdict, classify
from ._stats import Stats
from ._transport import SendResult

#: A JSON-ready event dict, or one already encoded (read back from the spool).
Event = dict[str, Any] | bytes


class _Sender(Protocol):
    def send(self, body: bytes) -> SendResult: ...


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
        self._inflight: list[Event] | None = None
        self._abandoned = False
        #: Set when a spool is configured: a batch gets one attempt and then goes to
        #: disk (where a crash cannot take it), and the spool's probes do the retrying.
        #: A batch the spool cannot take is retried in memory.
        self.skip_retries = False
        #: Mean encoded size of an event in the last batch, for closing batches by bytes.
        self.event_bytes = 200

    def deliver(
        self, events: list[Event], spill: Callable[[list[Event]], int] | None = None
    ) -> None:
        """Send ``events`` (oldest first), splitting and retrying as the answers require.

        Args:
            events: The batch.
            spill: Overrides ``self.spill`` for this batch.
        """
        with self._lock:
            if self._abandoned:
                return
            self._inflight = events
        try:
            pending = [events]
            while pending:
                chunk = pending.pop()
                try:
                    body = self._body(chunk)
                except Exception as exc:  # an event no fallback could encode
                    if len(chunk) > 1:
                        pending.extend(_halves(chunk))
                    else:
                        self._reject(chunk[0], SendResult(None, None, f"cannot encode: {exc}"))
                    continue
                if len(chunk) > 1 and len(body) > self._max_bytes:
                    # Keep the share that fits (by mean size) and send the rest after it.
                    cut = min(len(chunk) - 1, max(1, len(chunk) * self._max_bytes // len(body)))
                    pending.extend((chunk[cut:], chunk[:cut]))
                    continue
                self.event_bytes = max(1, len(body) // len(chunk))
                result = self._post(body, chunk, spill)
                if result is _SPOOLED:
                    continue
                if result is None:
                    self._give_up(chunk, spill, shutdown=True)
                    continue
                verdict = classify(result.status)
                if verdict is Verdict.OK:
                    self._count("sent", len(chunk))
                elif verdict in (Verdict.SPLIT, Verdict.INVALID) and len(chunk) > 1:
                    pending.extend(_halves(chunk))
                elif verdict in (Verdict.SPLIT, Verdict.INVALID):
                    self._reject(chunk[0], result)
                elif verdict is Verdict.RETRY:
                    self._give_up(chunk, spill, shutdown=False, result=result)
                else:
                    self._fail(chunk, result, verdict)
        finally:
            with self._lock:
                self._inflight = None

    def _body(self, chunk: list[Event]) -> bytes:
        if type(chunk[0]) is bytes:
            return b"[" + b",".join(chunk) + b"]"  # type: ignore[arg-type]
        return self._encode(chunk)

    def _post(
        self, body: bytes, chunk: list[Event], spill: Callable[[list[Event]], int] | None
    ) -> SendResult | None:
        """One request plus its retries; ``None`` when shutdown cut the retries short.

        Returns ``_SPOOLED`` when a retryable failure handed ``chunk`` to the spool.
        """
        retries = 0
        while True:
            result = self._transport.send(body)
            self._stats.requests += 1
            if classify(result.status) is not Verdict.RETRY or not self._policy.allows(retries):
                return result
            if self.skip_retries and self._spooled(chunk, spill):
                return _SPOOLED
            self._reporter.every(
                "retry",
                logging.WARNING,
                "slaOS did not accept a batch (%s); retrying with backoff",
                _describe(result),
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
        if self._abandoned:
            return True  # close() took this batch back: it spools or counts it
        # The spool takes a batch whole or not at all; if it cannot (it failed to open,
        # the disk is full), the batch is retried in memory as without a spool.
        spill = spill or self.spill
        return spill is not None and spill(chunk) == len(chunk)

    def _give_up(
        self,
        events: list[Event],
        spill: Callable[[list[Event]], int] | None,
        *,
        shutdown: bool,
        result: SendResult | None = None,
    ) -> None:
        if self._abandoned:
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
            _describe(result) if result is not None else "no answer",
        )

    def _reject(self, event: Event, result: SendResult) -> None:
        self._count("invalid", 1)
        if isinstance(event, bytes):
            event = _loads(event)
        self._reporter.each(
            "invalid",
            logging.WARNING,
            "slaOS rejected an event as invalid (%s); event: organization_id=%r key=%r "
            "timestamp=%r values=%.200r",
            _describe(result),
            event.get("organization_id"),
            event.get("key"),
            event.get("timestamp"),
            event.get("values"),
        )

    def _fail(self, events: list[Event], result: SendResult, verdict: Verdict) -> None:
        self._count("failed", len(events))
        if verdict is Verdict.AUTH:
            self._reporter.every(
                "auth",
                logging.ERROR,
                "slaOS refused the credentials (%s): the ingestion id or key is wrong, "
                "or the key was rotated; events are being dropped (%d so far, see "
                "stats()['failed']). Check SLAOS_INGESTION_ID / SLAOS_INGESTION_KEY and run "
                "`slaos-logging check`",
                _describe(result),
                self._stats.failed,
            )
        else:
            self._reporter.every(
                f"status:{result.status}",
                logging.ERROR,
                "slaOS answered %s; events are being dropped (%d so far, see stats()['failed'])",
                _describe(result),
                self._stats.failed,
            )

    def _count(self, name: str, n: int) -> None:
        with self._lock:
            if not self._abandoned:
                setattr(self._stats, name, getattr(self._stats, name) + n)

    def begin_closing(self, deadline: float) -> None:
        """Bound every further wait by ``deadline`` and cut the current backoff short."""
        self.deadline = deadline
        self._closing.set()

    def abandon(self) -> list[Event]:
        """Stop settling; return the batch still in flight (close() timed out on it)."""
        with self._lock:
            self._abandoned = True
            events, self._inflight = self._inflight, None
        self._abort.set()
        return events or []


#: Returned by ``_post`` when the spool took the chunk after a retryable failure.
_SPOOLED = SendResult(None, None, "spooled")


def _loads(payload: bytes) -> dict[str, Any]:
    try:
        event = json.loads(payload)
    except ValueError:
        return {}
    return event if isinstance(event, dict) else {}


def _halves(events: list[Event]) -> tuple[list[Event], list[Event]]:
    # Pushed onto a stack: second half first, so the first half (older) is sent first.
    middle = len(events) // 2
    return events[middle:], events[:middle]


def _describe(result: SendResult) -> str:
    head = f"HTTP {result.status}" if result.status is not None else "no answer"
    return f"{head}: {result.detail}" if result.detail else head
