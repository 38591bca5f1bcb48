"""Durable on-disk spool for events that could not be sent.

One SQLite file per spool directory, shared by every process that points at it (for
example gunicorn workers, or handlers of different accounts: each sees only the rows of
its own endpoint). Rows are claimed with a lease before they are sent, acked (deleted)
once delivered, or released back to their place, which is the order their events were
logged. A row whose owner died (same host, pid gone) or whose lease ran out can be
claimed by anyone, so events left by a SIGKILLed worker are picked up by the next claim.

``max_bytes`` bounds the stored payload bytes, not the file: SQLite reuses freed pages,
so the file stays near its high-water mark (plus the WAL) until the spool drains, when
free pages are handed back to the filesystem.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from itertools import repeat

from ._spool_conn import SpoolConnection
from ._spool_db import (
    FILENAME,
    SpoolError,
    claim_rows,
    enforce_bound,
    has_backlog,
    shrink_if_empty,
    totals,
)

# Re-exported so callers keep importing the public names from this module.
__all__ = ["FILENAME", "Spool", "SpoolError"]


class Spool(SpoolConnection):
    """A multi-process, size-bounded queue of event payloads stored in SQLite.

    Used from one sender thread per process (``put`` may also come from another
    thread, so every call takes a lock). No method raises: failures are reported through
    ``on_error`` (at most once per 10 s per distinct message) and return an empty result.

    Args:
        directory: Spool directory, created if missing; the file is ``slaos-spool.sqlite``.
        endpoint: Whose rows these are (``endpoint_id()``); other endpoints' rows in the
            same file are never claimed, counted or discarded by this instance.
        max_bytes: Upper bound on this endpoint's stored payload bytes; the
            earliest-logged unclaimed rows go first.
        lease_seconds: How long a claim protects rows from other processes.
        on_error: Receives one-line diagnostics; defaults to the ``slaos_logging`` logger.
    """

    @property
    def dropped(self) -> int:
        """Events this instance discarded to keep the spool within ``max_bytes``."""
        return self._dropped

    def put(self, events: Iterable[bytes], logged: Iterable[float] | None = None) -> int:
        """Store events (compact JSON bytes); return how many were stored (all or none).

        Args:
            events: The payloads; may be a generator, consumed inside the transaction
                (SQLite lets other threads run between rows, so encoding lazily here
                keeps the GIL from being held for a whole batch).
            logged: When each was logged (``record.created``), which places it in the
                drain order; default: now, for every event, in the order given.
        """
        if not self.available or (isinstance(events, Sequence) and not events):
            return 0
        stored = 0
        times = repeat(time.time()) if logged is None else logged

        def rows() -> Iterator[tuple[int, float, bytes, int]]:
            nonlocal stored
            scope = self._scope
            for payload, when in zip(events, times, strict=False):
                stored += 1
                yield scope, when, payload, len(payload)

        try:
            with self._transaction() as conn:
                conn.executemany(
                    "INSERT INTO events (scope, logged, payload, size) VALUES (?, ?, ?, ?)",
                    rows(),
                )
                self._dropped += enforce_bound(conn, self._scope, self.max_bytes)
            return stored
        except Exception as exc:
            self._failed("could not write events to", exc, " They were dropped.")
            return 0

    def claim(self, limit: int, max_bytes: int) -> list[tuple[int, bytes]]:
        """Lease the earliest-logged claimable rows: at most ``limit`` and ``max_bytes``."""
        if limit <= 0 or not self.available:
            return []
        try:
            with self._transaction() as conn:
                return claim_rows(
                    conn,
                    self._scope,
                    self._owner,
                    self._host,
                    limit,
                    max_bytes,
                    self.lease_seconds,
                )
        except Exception as exc:
            self._failed("could not read events from", exc)
            return []

    def ack(self, ids: Iterable[int]) -> None:
        """Delete rows that were delivered (or rejected as invalid by the server)."""
        keys = [(i,) for i in ids]
        if not keys or not self.available:
            return
        try:
            with self._transaction() as conn:
                conn.executemany("DELETE FROM events WHERE id = ?", keys)
            self._maybe_shrink()
        except Exception as exc:
            self._failed("could not delete sent events from", exc)

    def release(self, ids: Iterable[int]) -> None:
        """Give rows this instance claimed back; they keep their place at the front."""
        keys = [(self._owner, i) for i in ids]
        if not keys or not self.available:
            return
        try:
            with self._transaction() as conn:
                conn.executemany(
                    "UPDATE events SET owner = NULL, lease = NULL WHERE owner = ? AND id = ?",
                    keys,
                )
        except Exception as exc:
            self._failed("could not release events in", exc)

    def depth(self) -> int:
        """This endpoint's rows stored, claimed or not (as of ``close()``, once closed)."""
        if not self.available:
            return self._final_depth
        try:
            with self._locked() as conn:
                return totals(conn, self._scope)[0]
        except Exception as exc:
            self._failed("could not count events in", exc)
            return 0

    def has_backlog(self) -> bool:
        """Whether this endpoint has rows this instance could claim now, or holds claimed."""
        if not self.available:
            return False
        try:
            with self._locked() as conn:
                return has_backlog(conn, self._scope, self._owner)
        except Exception as exc:
            self._failed("could not count events in", exc)
            return False

    def _maybe_shrink(self) -> None:
        """Once the spool is empty, hand its free pages back to the filesystem."""
        with self._locked() as conn:
            shrink_if_empty(conn)
