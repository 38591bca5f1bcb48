"""SQLite storage behind the local receiver: events in, read-back and report queries out.

One connection is shared by every request thread behind a lock. SQLite serialises writers
anyway, and a shared connection avoids paying a connect per request (the receiver is used by
benchmarks over keep-alive connections, so per-request cost matters).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .._private_files import UntrustedPathError, prepare_database, verify_database

__all__ = ["EventStore", "Row", "StoreError", "StoredEvent", "encode_row", "parse_timestamp"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    organization_id TEXT NOT NULL,
    key TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    ts_epoch REAL NOT NULL,
    values_json TEXT NOT NULL,
    idempotency_key TEXT,
    received_at TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_idempotency_key
    ON events (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_key_ts ON events (key, ts_epoch);
"""

_INSERT = (
    "INSERT OR IGNORE INTO events"
    " (organization_id, key, timestamp, ts_epoch, values_json, idempotency_key, received_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)


class StoreError(Exception):
    """The database cannot be opened or is not an event database."""


@dataclass(frozen=True)
class StoredEvent:
    """One validated event, ready to be written.

    Attributes:
        organization_id: The customer the event belongs to.
        key: The event kind, e.g. ``"rated_api"``.
        timestamp: The timestamp exactly as the client sent it.
        ts_epoch: ``timestamp`` as POSIX seconds (naive timestamps are taken as UTC).
        values: The measured fields.
        idempotency_key: Optional client-chosen key used to drop duplicates.
    """

    organization_id: str
    key: str
    timestamp: str
    ts_epoch: float
    values: dict[str, Any]
    idempotency_key: str | None = None


def parse_timestamp(text: str) -> datetime:
    """Parse an ISO 8601 timestamp (``Z`` suffix or offset allowed) into an aware datetime.

    Naive timestamps are taken as UTC, which is what slaOS expects events to carry.

    Raises:
        ValueError: ``text`` is not an ISO 8601 date or date-time.
    """
    candidate = text.strip()
    # datetime.fromisoformat only learned the "Z" suffix in 3.11; the library supports 3.10.
    if candidate[-1:] in ("Z", "z"):
        candidate = candidate[:-1] + "+00:00"
    parsed = datetime.fromisoformat(candidate)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


#: An event as stored, but for the time it was received.
Row = tuple[str, str, str, float, str, str | None]


def encode_row(event: StoredEvent) -> Row:
    """The event's row: its values as compact JSON, so the parsed values can be freed.

    Raises:
        ValueError: A number is out of range (``1e400`` decodes as infinity, which JSON
            cannot write back), or a string holds a lone surrogate (``"\\udc80"`` is valid
            JSON but not Unicode, so SQLite cannot store it as UTF-8).
    """
    values = json.dumps(event.values, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    for text in (event.organization_id, event.key, values, event.idempotency_key or ""):
        if not text.isascii():
            text.encode("utf-8")  # UnicodeEncodeError, a ValueError, on a lone surrogate
    return (
        event.organization_id,
        event.key,
        event.timestamp,
        event.ts_epoch,
        values,
        event.idempotency_key,
    )


def _utc_now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class EventStore:
    """Events kept in one SQLite file (WAL mode), safe to share between threads.

    Args:
        path: The database file.
        create: Create the file and schema when missing. With ``False`` the file must
            already exist and hold the events table (what ``report`` wants: a typo in
            ``--db`` should be an error, not an empty report).

    Raises:
        StoreError: The file is missing (with ``create=False``), unreadable, or not an
            event database.
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = os.fspath(path)
        if not create and not os.path.isfile(self.path):
            raise StoreError(f"database not found: {self.path} (run 'slaos-logging serve' first?)")
        self._lock = threading.Lock()
        on_disk = self.path not in ("", ":memory:")
        if create and on_disk:
            # Events hold customer ids and every extra field: a private file, never one
            # another user could have planted or linked (see _private_files).
            try:
                prepare_database(self.path)
            except UntrustedPathError as exc:
                raise StoreError(f"refusing database {self.path}: {exc}") from None
            except OSError as exc:
                reason = exc.strerror or str(exc)
                raise StoreError(f"cannot open database {self.path}: {reason}") from None
        try:
            # Autocommit mode: transactions are opened explicitly so a batch is all-or-nothing.
            self._conn = sqlite3.connect(
                self.path, timeout=10.0, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open database {self.path}: {exc}") from None
        try:
            if create:
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
                if on_disk:
                    verify_database(self.path)
                self._conn.executescript(_SCHEMA)
            else:
                row = self._conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'"
                ).fetchone()
                if row is None:
                    raise StoreError(f"not a slaos-logging event database: {self.path}")
        except sqlite3.Error as exc:
            self._conn.close()
            raise StoreError(f"cannot use database {self.path}: {exc}") from None
        except UntrustedPathError as exc:
            self._conn.close()
            raise StoreError(f"refusing database {self.path}: {exc}") from None
        except StoreError:
            self._conn.close()
            raise

    def close(self) -> None:
        """Close the connection; later calls fail with ``sqlite3.ProgrammingError``."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def insert(self, events: Sequence[StoredEvent]) -> tuple[int, int]:
        """Store a batch in one transaction, skipping repeated idempotency keys.

        Returns:
            ``(stored, duplicates)``; a key repeated inside the batch counts as a duplicate too.
        """
        return self.insert_rows([encode_row(e) for e in events])

    def insert_rows(self, rows: Sequence[Row]) -> tuple[int, int]:
        """Like :meth:`insert`, for events already turned into rows by :func:`encode_row`."""
        received_at = _utc_now_iso()
        with self._lock:
            before = self._conn.total_changes
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(_INSERT, [(*row, received_at) for row in rows])
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            stored = self._conn.total_changes - before
        return stored, len(rows) - stored

    def count(self) -> int:
        """Return how many events are stored."""
        with self._lock:
            row = self._conn.execute("SELECT COUNT(*) FROM events").fetchone()
        return int(row[0])

    def keys(self) -> list[str]:
        """Return the distinct event keys stored, sorted."""
        with self._lock:
            rows = self._conn.execute("SELECT DISTINCT key FROM events ORDER BY key").fetchall()
        return [str(r[0]) for r in rows]

    def indexed(
        self, key: str | None = None, limit: int = 100, customer_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Return the newest stored items in the shape of slaOS's ``indexed-slis`` read-back."""
        sql = (
            "SELECT key, timestamp, received_at, organization_id, values_json, idempotency_key"
            " FROM events"
        )
        clauses: list[str] = []
        params: list[Any] = []
        if key is not None:
            clauses.append("key = ?")
            params.append(key)
        if customer_id is not None:
            clauses.append("organization_id = ?")
            params.append(customer_id)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY ts_epoch DESC, id DESC LIMIT ?"
        params.append(limit)
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        return [
            {
                "key": r[0],
                "timestamp": r[1],
                "report_timestamp": r[1],
                "ingestion_timestamp": r[2],
                "customer_id": r[3],
                "values": json.loads(r[4]),
                "idempotency_key": r[5],
            }
            for r in rows
        ]

    def iter_values(
        self, key: str, since: float | None = None, until: float | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield ``(organization_id, values)`` for events of ``key`` in ``[since, until)``.

        The rows are fetched under the lock before yielding, so a slow consumer never
        holds up the receiver's writers.
        """
        sql = "SELECT organization_id, values_json FROM events WHERE key = ?"
        params: list[Any] = [key]
        if since is not None:
            sql += " AND ts_epoch >= ?"
            params.append(since)
        if until is not None:
            sql += " AND ts_epoch < ?"
            params.append(until)
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
        for org, values_json in rows:
            values = json.loads(values_json)
            yield str(org), values if isinstance(values, dict) else {}
