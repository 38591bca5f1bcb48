"""The spool's SQLite layer: schema, opening with the right pragmas, and the SQL of
claims and the size bound. ``_spool.Spool`` adds locking, fork handling and errors."""

from __future__ import annotations

import os
import secrets
import socket
import sqlite3
import time

FILENAME = "slaos-spool.sqlite"
_SCHEMA_VERSION = 1
_FREE_PAGES_TO_VACUUM = 1024

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        payload BLOB NOT NULL,
        size INTEGER NOT NULL,
        owner TEXT,
        lease REAL)""",
    "CREATE INDEX IF NOT EXISTS events_claimed ON events (owner, lease) WHERE owner IS NOT NULL",
    """CREATE TABLE IF NOT EXISTS totals (
        id INTEGER PRIMARY KEY CHECK (id = 0),
        rows INTEGER NOT NULL,
        bytes INTEGER NOT NULL)""",
    # Triggers keep the totals exact whichever process inserts or deletes, so the size
    # bound and depth() never need a scan.
    """CREATE TRIGGER IF NOT EXISTS events_ins AFTER INSERT ON events BEGIN
        UPDATE totals SET rows = rows + 1, bytes = bytes + new.size WHERE id = 0; END""",
    """CREATE TRIGGER IF NOT EXISTS events_del AFTER DELETE ON events BEGIN
        UPDATE totals SET rows = rows - 1, bytes = bytes - old.size WHERE id = 0; END""",
)


class SpoolError(Exception):
    """A spool failure; only used internally, the public methods never raise."""


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


def open_db(path: str) -> tuple[sqlite3.Connection, int]:
    """Open (creating if needed) the spool file; return the connection and its inode."""
    conn = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # only takes on a new file
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA journal_size_limit = 8388608")  # trim the WAL after big acks
        conn.execute("BEGIN IMMEDIATE")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, _SCHEMA_VERSION):
            raise SpoolError(f"spool schema version {version} is not supported")
        for statement in _SCHEMA:
            conn.execute(statement)
        if conn.execute("SELECT 1 FROM totals").fetchone() is None:
            conn.execute(
                "INSERT INTO totals (id, rows, bytes)"
                " SELECT 0, COUNT(*), COALESCE(SUM(size), 0) FROM events"
            )
        conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        conn.execute("COMMIT")
        inode = os.stat(path).st_ino
    except BaseException:
        conn.close()
        raise
    return conn, inode


def move_aside(path: str, inode: int | None) -> str | None:
    """Rename a corrupt spool file (and its WAL files); return the new name.

    Returns ``None`` when there is nothing to move: the file is gone, or another
    process already replaced it (its inode is no longer ``inode``).
    """
    try:
        if inode is not None and os.stat(path).st_ino != inode:
            return None
    except FileNotFoundError:
        return None
    target = f"{path}.corrupt-{int(time.time())}"
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.replace(path + suffix, target + suffix)
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


def enforce_bound(conn: sqlite3.Connection, max_bytes: int) -> int:
    """Delete the oldest unclaimed rows until the payload total fits; return how many."""
    excess = conn.execute("SELECT bytes FROM totals WHERE id = 0").fetchone()[0]
    excess -= max_bytes
    if excess <= 0:
        return 0
    cursor = conn.execute(
        "SELECT id, size FROM events WHERE owner IS NULL OR lease < ? ORDER BY id",
        (time.time(),),
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
    owner: str,
    host: str,
    limit: int,
    max_bytes: int,
    lease_seconds: float,
) -> list[tuple[int, bytes]]:
    """Lease the oldest claimable rows to ``owner``: at most ``limit`` and ``max_bytes``.

    The first row is always taken, even if alone it exceeds ``max_bytes``. Must run
    inside a write transaction, so no other process can claim the same rows.
    """
    now = time.time()
    free_dead_owners(conn, owner, host, now)
    cursor = conn.execute(
        "SELECT id, payload FROM events WHERE owner IS NULL OR lease < ? ORDER BY id LIMIT ?",
        (now, limit),
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
    """Once the spool is empty, hand its free pages back to the filesystem."""
    if conn.execute("SELECT rows FROM totals WHERE id = 0").fetchone()[0]:
        return
    if conn.execute("PRAGMA freelist_count").fetchone()[0] >= _FREE_PAGES_TO_VACUUM:
        # executescript steps the pragma to completion; execute() frees one page.
        conn.executescript("PRAGMA incremental_vacuum;")
