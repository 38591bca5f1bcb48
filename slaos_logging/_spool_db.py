"""The spool's SQLite layer: schema, opening safely with the right pragmas, and the SQL
of claims and the size bound. ``_spool.Spool`` adds locking, fork handling and errors.

Each row belongs to one endpoint (a digest of the base URL and the ingestion id, never
the key): a handler claims, counts and bounds only its own rows, so handlers of
different accounts may share a folder. Rows are claimed and discarded in the order
their events were logged (``record.created``), not in the order they reached the disk.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import sqlite3
import time

from ._private_files import SIDE_FILES, prepare_database, verify_database

FILENAME = "slaos-spool.sqlite"
_SCHEMA_VERSION = 2
#: Version 1 rows carry no endpoint: they cannot be attributed to an account.
_LEGACY_VERSION = 1
_FREE_PAGES_TO_VACUUM = 1024

_SCHEMA = (
    # One row per endpoint, with exact totals kept by the triggers below whichever
    # process inserts or deletes, so the size bound and depth() never need a scan.
    """CREATE TABLE IF NOT EXISTS scopes (
        id INTEGER PRIMARY KEY,
        endpoint TEXT NOT NULL UNIQUE,
        rows INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        scope INTEGER NOT NULL,
        logged REAL NOT NULL,
        payload BLOB NOT NULL,
        size INTEGER NOT NULL,
        owner TEXT,
        lease REAL)""",
    "CREATE INDEX IF NOT EXISTS events_order ON events (scope, logged, id)",
    "CREATE INDEX IF NOT EXISTS events_claimed ON events (owner, lease) WHERE owner IS NOT NULL",
    """CREATE TRIGGER IF NOT EXISTS events_ins AFTER INSERT ON events BEGIN
        UPDATE scopes SET rows = rows + 1, bytes = bytes + new.size WHERE id = new.scope; END""",
    """CREATE TRIGGER IF NOT EXISTS events_del AFTER DELETE ON events BEGIN
        UPDATE scopes SET rows = rows - 1, bytes = bytes - old.size WHERE id = old.scope; END""",
)


class SpoolError(Exception):
    """A spool failure; only used internally, the public methods never raise."""


class LegacySpoolError(SpoolError):
    """The file was written by a version that did not record each row's endpoint."""

    def __init__(self, rows: int) -> None:
        super().__init__(f"spool schema version {_LEGACY_VERSION} with {rows} events")
        self.rows = rows


def endpoint_id(base_url: str, ingestion_id: str) -> str:
    """The digest that ties rows to one account at one host (the key is not part of it)."""
    text = f"{base_url.rstrip('/')}\n{ingestion_id}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def host_id() -> str:
    """Identify the pid namespace, so pids are only compared where they mean the same."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return f"{socket.gethostname()}{namespace}".replace("@", "_").replace("#", "_")


def is_corrupt(exc: BaseException) -> bool:
    """Whether ``exc`` says the file is damaged, rather than busy, locked or unwritable."""
    if not isinstance(exc, sqlite3.DatabaseError) or isinstance(exc, sqlite3.OperationalError):
        return False
    text = str(exc).lower()
    return "not a database" in text or "malformed" in text


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # e.g. EPERM: it exists, owned by another user
    return True


def open_db(path: str, endpoint: str) -> tuple[sqlite3.Connection, int, int]:
    """Open (creating if needed) the spool file.

    Returns:
        The connection, the file's inode, and the id of ``endpoint``'s scope.

    Raises:
        UntrustedPathError: The folder or a file could have been planted by another user.
        LegacySpoolError: The file holds rows of schema version 1.
        sqlite3.Error, SpoolError, OSError: The file cannot be used.
    """
    inode = prepare_database(path)
    conn = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # only takes on a new file
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA journal_size_limit = 8388608")  # trim the WAL after big acks
        verify_database(path)
        conn.execute("BEGIN IMMEDIATE")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == _LEGACY_VERSION:
            rows = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
            raise LegacySpoolError(int(rows))
        if version not in (0, _SCHEMA_VERSION):
            raise SpoolError(f"spool schema version {version} is not supported")
        for statement in _SCHEMA:
            conn.execute(statement)
        conn.execute("INSERT OR IGNORE INTO scopes (endpoint) VALUES (?)", (endpoint,))
        scope = conn.execute("SELECT id FROM scopes WHERE endpoint = ?", (endpoint,)).fetchone()[0]
        conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.close()
        raise
    return conn, inode, int(scope)


def move_aside(path: str, inode: int | None, label: str = "corrupt") -> str | None:
    """Rename a spool file that cannot be used (and its WAL files); return the new name.

    Returns ``None`` when there is nothing to move: the file is gone, or another
    process already replaced it (its inode is no longer ``inode``).
    """
    try:
        if inode is not None and os.stat(path).st_ino != inode:
            return None
    except FileNotFoundError:
        return None
    target = f"{path}.{label}-{int(time.time())}"
    os.replace(path, target)
    for suffix in SIDE_FILES:
        try:
            if os.lstat(path + suffix).st_size:
                os.replace(path + suffix, target + suffix)
            else:  # the empty file prepare_database() made: nothing to keep
                os.unlink(path + suffix)
        except FileNotFoundError:
            pass
    return target


def new_owner(host: str) -> str:
    """An owner token for claims, parsed back by ``free_dead_owners``."""
    return f"{os.getpid()}@{host}#{secrets.token_hex(6)}"


def free_dead_owners(conn: sqlite3.Connection, owner: str, host: str, now: float) -> None:
    """Unclaim rows whose owner was a process on this host that no longer exists."""
    owners = conn.execute(
        "SELECT DISTINCT owner FROM events WHERE owner IS NOT NULL AND owner != ? AND lease >= ?",
        (owner, now),
    ).fetchall()
    dead = []
    for (other,) in owners:
        pid, _, rest = str(other).partition("@")
        their_host = rest.rpartition("#")[0]
        if their_host == host and pid.isdigit() and not pid_alive(int(pid)):
            dead.append((other,))
    conn.executemany("UPDATE events SET owner = NULL, lease = NULL WHERE owner = ?", dead)


def totals(conn: sqlite3.Connection, scope: int) -> tuple[int, int]:
    """Rows and payload bytes stored for one scope."""
    row = conn.execute("SELECT rows, bytes FROM scopes WHERE id = ?", (scope,)).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def has_backlog(conn: sqlite3.Connection, scope: int, owner: str) -> bool:
    """Whether the scope has rows ``owner`` could claim now or has claimed."""
    row = conn.execute(
        "SELECT 1 FROM events WHERE scope = ? AND (owner IS NULL OR owner = ? OR lease < ?)"
        " LIMIT 1",
        (scope, owner, time.time()),
    ).fetchone()
    return row is not None


def enforce_bound(conn: sqlite3.Connection, scope: int, max_bytes: int) -> int:
    """Delete the scope's earliest-logged unclaimed rows until it fits; return how many."""
    excess = totals(conn, scope)[1] - max_bytes
    if excess <= 0:
        return 0
    cursor = conn.execute(
        "SELECT id, size FROM events WHERE scope = ? AND (owner IS NULL OR lease < ?)"
        " ORDER BY logged, id",
        (scope, time.time()),
    )
    doomed: list[tuple[int]] = []
    for row_id, size in cursor:
        doomed.append((row_id,))
        excess -= size
        if excess <= 0:
            break
    cursor.close()
    conn.executemany("DELETE FROM events WHERE id = ?", doomed)
    return len(doomed)


def claim_rows(
    conn: sqlite3.Connection,
    scope: int,
    owner: str,
    host: str,
    limit: int,
    max_bytes: int,
    lease_seconds: float,
) -> list[tuple[int, bytes]]:
    """Lease the scope's earliest-logged claimable rows: at most ``limit`` and ``max_bytes``.

    The first row is always taken, even if alone it exceeds ``max_bytes``. Must run
    inside a write transaction, so no other process can claim the same rows.
    """
    now = time.time()
    free_dead_owners(conn, owner, host, now)
    cursor = conn.execute(
        "SELECT id, payload FROM events WHERE scope = ? AND (owner IS NULL OR lease < ?)"
        " ORDER BY logged, id LIMIT ?",
        (scope, now, limit),
    )
    rows: list[tuple[int, bytes]] = []
    total = 0
    for row_id, payload in cursor:
        total += len(payload)
        if rows and total > max_bytes:
            break
        rows.append((row_id, bytes(payload)))
    cursor.close()
    conn.executemany(
        "UPDATE events SET owner = ?, lease = ? WHERE id = ?",
        ((owner, now + lease_seconds, r[0]) for r in rows),
    )
    return rows


def shrink_if_empty(conn: sqlite3.Connection) -> None:
    """Once the spool is empty (every scope), hand its free pages back to the filesystem."""
    if conn.execute("SELECT 1 FROM events LIMIT 1").fetchone() is not None:
        return
    if conn.execute("PRAGMA freelist_count").fetchone()[0] >= _FREE_PAGES_TO_VACUUM:
        # executescript steps the pragma to completion; execute() frees one page.
        conn.executescript("PRAGMA incremental_vacuum;")
