"""The full-queue path to the spool: a bounded buffer, a writer thread, backpressure.

When the in-memory queue is full, the application thread puts the event here and
returns: it never touches SQLite. A writer thread takes everything buffered at once
(which makes room at once), then builds, encodes and stores it in one transaction.

When the buffer is full too, the application thread waits for the writer to make room
(at most ``_MAX_WAIT``) instead of dropping the event: losing it is the only other
choice. The writer takes the whole buffer each time, so only about one call in
``max(5_000, max_queue_size)`` waits. If the disk makes no progress for ``_MAX_WAIT``,
the event is dropped (counted ``dropped_queue_full``) and so is every later overflow
at once, without waiting, until the writer moves again.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from ._diagnostics import Reporter

# Events the writer may hold besides the buffer's (memory: twice this many at most);
# the application waits about once per this many events while the writer is behind.
_MIN_CAPACITY = 5_000
_WRITE_CHUNK = 1_000
_MAX_WAIT = 1.0


class Overflow:
    """Buffer and writer thread between a full queue and the spool.

    Args:
        queue_size: The pipeline's ``max_queue_size``; the buffer holds at least 5,000.
        write: Builds and stores pending events (on the writer thread, or on the thread
            of ``close()`` when there is none); counts what it cannot store.
        reporter: Diagnostics.
    """

    def __init__(
        self,
        queue_size: int,
        write: Callable[[list[tuple[Any, ...]]], None],
        reporter: Reporter,
    ) -> None:
        self._capacity = max(_MIN_CAPACITY, queue_size)
        self._buffer: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._room = threading.Event()
        self._stalled = False
        self._writer: threading.Thread | None = None
        self._lock = threading.Lock()
        self._in_hand = 0  # taken by the writer, not yet stored or counted
        self._write = write
        self.reporter = reporter

    def put(self, item: tuple[Any, ...]) -> bool:
        """Take an event (application thread); ``False`` if it must be dropped."""
        buffer = self._buffer
        if buffer.qsize() >= self._capacity and not self._wait_for_room():
            return False
        buffer.put(item)
        if not self._running():
            self._start_writer()  # the first overflow, or the first since close()
        return True

    def _running(self) -> bool:
        writer = self._writer
        return writer is not None and writer.is_alive()

    def _wait_for_room(self) -> bool:
        if self._stalled:
            return False
        if not self._running():
            self._start_writer()
            if self._writer is None:
                return False
        room = self._room
        room.clear()
        # Re-check after clear(): the writer may have taken the buffer in between.
        if self._buffer.qsize() < self._capacity or room.wait(_MAX_WAIT):
            return True
        self._stalled = True
        self.reporter.every(
            "spool_stalled",
            logging.ERROR,
            "the spool's writer made no progress for %.0f s (is the disk stalled?): events "
            "that do not fit in the queue are dropped until it moves again",
            _MAX_WAIT,
        )
        return False

    def _start_writer(self) -> None:
        with self._lock:
            if self._running():
                return
            thread = threading.Thread(
                target=self._run, name="slaos-logging-spool-writer", daemon=True
            )
            try:
                thread.start()
            except RuntimeError:
                self._writer = None
                return  # interpreter shutdown: close() writes what is left
            self._writer = thread

    def _run(self) -> None:
        stop = False
        while True:
            item = self._buffer.get()
            items: list[tuple[Any, ...]] = []
            markers: list[threading.Event] = []
            while True:
                if item is None:
                    # close() asked us to end: still write what was put after its
                    # request (loggers do not stop for close()), then end.
                    stop = True
                elif isinstance(item, threading.Event):
                    markers.append(item)
                else:
                    items.append(item)
                if len(items) >= self._capacity:
                    break
                try:
                    item = self._buffer.get_nowait()
                except queue.Empty:
                    break
            # The buffer is empty now: let waiting application threads in before the
            # slow part (building, encoding, the transaction).
            self._in_hand = len(items)
            self._stalled = False
            self._room.set()
            # In slices, so that at most one slice of built events is in memory.
            for start in range(0, len(items), _WRITE_CHUNK):
                self._write(items[start : start + _WRITE_CHUNK])
                self._in_hand = max(0, len(items) - start - _WRITE_CHUNK)
            for marker in markers:
                marker.set()
            if stop and self._buffer.empty():
                return  # (an item put after this check: the next put, flush or close)

    def flush(self, timeout: float | None) -> bool:
        """Wait until the events taken so far are on disk (or counted)."""
        if not self._running():
            if self._buffer.empty():
                return True
            self._start_writer()  # events put while a writer was ending
            if self._writer is None:
                return False  # no thread can start: close() writes them
        marker = threading.Event()
        self._buffer.put(marker)
        return marker.wait(timeout)

    def stop(self) -> None:
        """Let the writer write what is buffered, then end (without waiting for it)."""
        if self._running():
            self._buffer.put(None)

    def close(self, deadline: float) -> bool:
        """Write what is buffered (within ``deadline``) and stop the writer.

        Returns:
            Whether the writer has ended (else it is still writing, and the spool must
            stay open for it).
        """
        writer = self._writer
        if writer is not None and writer.is_alive():
            self._buffer.put(None)
            writer.join(max(0.0, deadline - time.monotonic()))
            if writer.is_alive():
                return False
        items: list[tuple[Any, ...]] = []
        markers: list[threading.Event] = []
        while True:
            try:
                item = self._buffer.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, tuple):
                items.append(item)
            elif isinstance(item, threading.Event):
                markers.append(item)
        if items:
            self._write(items)
        for marker in markers:
            marker.set()
        return True

    def waiting(self) -> int:
        """Events buffered or taken by the writer, not yet stored or counted."""
        return self._buffer.qsize() + self._in_hand
