"""Durable on-disk spool for events that could not be sent (issue 4).

One SQLite file per spool directory, shared by every process that points at it (for
example gunicorn workers). Rows are claimed with a lease before they are sent, acked
(deleted) once delivered, or released back in their original order. A row whose owner
died (same host, pid gone) or whose lease ran out can be claimed by anyone, so events
left by a SIGKILLed worker are picked up by the next claim.

``max_bytes`` bounds the stored payload bytes, not the file: SQLite reuses freed pages,
so the file stays near its high-water mark (plus the WAL) until the spool drains, when
free pages are handed back to the filesystem.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress

from ._spool_db import (
    FILENAME,
    SpoolError,
    claim_rows,
    enforce_bound,
    host_id,
    is_corrupt,
    move_aside,
    new_owner,
    open_db,
    shrink_if_empty,
)

# Re-exported so callers keep importing the public names from this module.
__all__ = ["FILENAME", "Spool", "SpoolError"]

logger = logging.getLogger("slaos_logging")

_ERROR_INTERVAL = 10.0
# Connections abandoned in a forked child are kept alive: closing them there could
# disturb the parent's locks on the same file, and SQLite forbids using them.
_INHERITED: list[sqlite3.Connection] = []

_SPOOLS: weakref.WeakSet[Spool] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # Automatic, so a fork the caller did not notice cannot reuse the parent's
    # connection or deadlock on a lock some parent thread held at fork time.
    for spool in list(_SPOOLS):
        spool.reopen_after_fork()


class Spool:
    """A multi-process, size-bounded FIFO of event payloads stored in SQLite.

    Used from one sender thread per process (``put`` may also come from another
    thread, so every call takes a lock). No method raises: failures are reported through
    ``on_error`` (at most once per 10 s per distinct message) and return an empty result.

    Args:
        directory: Spool directory, created if missing; the file is ``slaos-spool.sqlite``.
        max_bytes: Upper bound on stored payload bytes; the oldest unclaimed rows go first.
        lease_seconds: How long a claim protects rows from other processes.
        on_error: Receives one-line diagnostics; defaults to the ``slaos_logging`` logger.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_bytes: int = 256 * 1024 * 1024,
        lease_seconds: float = 60.0,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.directory = os.fspath(directory)
        self.path = os.path.join(self.directory, FILENAME)
        self.max_bytes = max_bytes
        self.lease_seconds = lease_seconds
        self._on_error = on_error
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._inode: int | None = None
        self._pid = os.getpid()
        self._host = host_id()
        self._owner = self._new_owner()
        self._dropped = 0
        self._last_error: dict[str, float] = {}
        self.available = False
        _SPOOLS.add(self)
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)  # events may hold PII
            self._conn = self._connect()
            self.available = True
        except Exception as exc:  # the spool is optional, never fatal
            self._report(
                f"slaos_logging: cannot use the spool at {self.path} ({exc}); events that "
                "cannot be sent will be dropped instead of spooled. Point spool_dir at a "
                "writable directory on a local disk with free space."
            )

    @property
    def dropped(self) -> int:
        """Events this instance discarded to keep the spool within ``max_bytes``."""
        return self._dropped

    def put(self, events: Sequence[bytes]) -> int:
        """Append events (compact JSON bytes) in order; return how many were stored."""
        if not events or not self.available:
            return 0
        try:
            with self._transaction() as conn:
                conn.executemany(
                    "INSERT INTO events (payload, size) VALUES (?, ?)",
                    ((bytes(e), len(e)) for e in events),
                )
                self._dropped += enforce_bound(conn, self.max_bytes)
            return len(events)
        except Exception as exc:
            self._failed("could not write events to", exc, " They were dropped.")
            return 0

    def claim(self, limit: int, max_bytes: int) -> list[tuple[int, bytes]]:
        """Lease the oldest claimable rows: at most ``limit`` and ``max_bytes``, at least one."""
        if limit <= 0 or not self.available:
            return []
        try:
            with self._transaction() as conn:
                return claim_rows(
                    conn, self._owner, self._host, limit, max_bytes, self.lease_seconds
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
        """Rows stored, claimed or not."""
        if not self.available:
            return 0
        try:
            with self._locked() as conn:
                row = conn.execute("SELECT rows FROM totals WHERE id = 0").fetchone()
            return int(row[0]) if row else 0
        except Exception as exc:
            self._failed("could not count events in", exc)
            return 0

    def reopen_after_fork(self) -> None:
        """In a forked child: forget the parent's connection and become a new owner."""
        self._lock = threading.Lock()  # the parent's may have been held at fork time
        if self._conn is not None:
            _INHERITED.append(self._conn)
        self._conn = None
        self._pid = os.getpid()
        self._owner = self._new_owner()

    def close(self) -> None:
        """Release this instance's claims and close the connection; idempotent."""
        with self._lock:
            conn, self._conn = self._conn, None
            self.available = False
            if conn is None or self._pid != os.getpid():
                return
            # Anything still claimed was never acked: hand it to the next sender at once
            # instead of leaving it hidden behind a lease held by this (live) process.
            with suppress(Exception):
                conn.execute(
                    "UPDATE events SET owner = NULL, lease = NULL WHERE owner = ?", (self._owner,)
                )
            with suppress(Exception):
                conn.close()

    # -- internals ---------------------------------------------------------------------

    def _new_owner(self) -> str:
        return new_owner(self._host)

    def _open(self) -> sqlite3.Connection:
        # Remember which file we are about to open, so a corrupt one is only moved aside
        # if no other process has replaced it in the meantime.
        with suppress(OSError):
            self._inode = os.stat(self.path).st_ino
        conn, self._inode = open_db(self.path)
        return conn

    def _connect(self) -> sqlite3.Connection:
        """Open (and if needed create) the file; move a corrupt file aside once."""
        try:
            return self._open()
        except sqlite3.DatabaseError as exc:
            if not is_corrupt(exc):
                raise
            self._move_aside(exc)
            return self._open()

    def _move_aside(self, exc: BaseException) -> None:
        target = move_aside(self.path, self._inode)
        if target is not None:
            self._report(
                f"slaos_logging: the spool file {self.path} is unreadable ({exc}); it was "
                f"moved to {target} and a new spool was started. Events in the old file "
                "were not sent."
            )

    @contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None or self._pid != os.getpid():
                if self._conn is not None:  # forked without reopen_after_fork()
                    _INHERITED.append(self._conn)
                    self._conn = None
                    self._pid = os.getpid()
                    self._owner = self._new_owner()
                self._conn = self._connect()
            yield self._conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        # BEGIN IMMEDIATE takes the write lock up front, so two processes can never read
        # the same claimable rows and both mark them as theirs.
        with self._locked() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _maybe_shrink(self) -> None:
        """Once the spool is empty, hand its free pages back to the filesystem."""
        with self._locked() as conn:
            shrink_if_empty(conn)

    def _failed(self, action: str, exc: BaseException, consequence: str = "") -> None:
        if is_corrupt(exc):
            with self._lock:
                if self._conn is not None and self._pid == os.getpid():
                    with suppress(Exception):
                        self._conn.close()
                self._conn = None  # the next call reconnects and starts a fresh file
                try:
                    self._move_aside(exc)
                except OSError as move_exc:
                    exc = move_exc
                else:
                    return
        self._report(
            f"slaos_logging: {action} the spool at {self.path} ({exc}).{consequence} Check "
            "free disk space and permissions, or lower spool_max_bytes."
        )

    def _report(self, message: str) -> None:
        now = time.monotonic()
        last = self._last_error.get(message)
        if last is not None and now - last < _ERROR_INTERVAL:
            return
        if len(self._last_error) > 100:  # exception texts vary; keep the memo bounded
            self._last_error.clear()
        self._last_error[message] = now
        try:
            if self._on_error is not None:
                self._on_error(message)
            else:
                logger.error("%s", message)
        except Exception:  # a diagnostic must never break the caller
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
