"""The spool's connection: opening safely, fork handling, and reporting failures.

``SpoolConnection`` keeps one SQLite connection per process usable: it opens (or
creates) the file through ``_spool_db.open_db``, moves a corrupt or old-schema file
aside once, reconnects after ``fork()``, and turns every failure into one rate-limited
diagnostic. ``_spool.Spool`` adds the operations.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from ._private_files import UntrustedPathError, make_folder
from ._spool_db import (
    FILENAME,
    LegacySpoolError,
    host_id,
    is_corrupt,
    move_aside,
    new_owner,
    open_db,
    totals,
)

logger = logging.getLogger("slaos_logging")

_ERROR_INTERVAL = 10.0
# Connections abandoned in a forked child are kept alive: closing them there could
# disturb the parent's locks on the same file, and SQLite forbids using them.
_INHERITED: list[sqlite3.Connection] = []

_SPOOLS: weakref.WeakSet[SpoolConnection] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # Automatic, so a fork the caller did not notice cannot reuse the parent's
    # connection or deadlock on a lock some parent thread held at fork time.
    for spool in list(_SPOOLS):
        spool.reopen_after_fork()


class SpoolConnection:
    """One process's connection to a spool file (see ``Spool`` for the arguments)."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        endpoint: str = "",
        max_bytes: int = 256 * 1024 * 1024,
        lease_seconds: float = 60.0,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.directory = os.fspath(directory)
        self.path = os.path.join(self.directory, FILENAME)
        self.endpoint = endpoint
        self._scope = 0
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
        self._final_depth = 0
        self._last_error: dict[str, float] = {}
        self.available = False
        self._reopenable = False  # closed after it opened: reopen() may make it usable
        _SPOOLS.add(self)
        try:
            make_folder(self.directory)  # events may hold PII
            self._conn = self._connect()
            self.available = True
        except UntrustedPathError as exc:
            self._report(
                f"slaos_logging: refusing the spool in {self.directory}: {exc}. Another "
                "user could plant or read events there. Events are delivered from memory "
                "only. Point spool_dir at a folder only this user can write (mode 0700)."
            )
        except Exception as exc:  # the spool is optional, never fatal
            self._report(
                f"slaos_logging: cannot use the spool at {self.path} ({exc}); events are "
                "delivered from memory only. Point spool_dir at a writable directory on a "
                "local disk with free space."
            )

    def reopen_after_fork(self) -> None:
        """In a forked child: forget the parent's connection and become a new owner."""
        self._lock = threading.Lock()  # the parent's may have been held at fork time
        if self._conn is not None:
            _INHERITED.append(self._conn)
        self._conn = None
        self._pid = os.getpid()
        self._owner = self._new_owner()

    def reopen(self) -> bool:
        """Usable again after ``close()`` (unless it never opened); return whether usable.

        Takes no lock and opens nothing (a logging call may be the caller): the
        connection is opened by the next operation.
        """
        if not self.available and self._reopenable:
            self._reopenable = False
            self.available = True
        return self.available

    def close(self) -> None:
        """Release this instance's claims and close the connection; idempotent."""
        with self._lock:
            # `available` drops only at the end: until then loggers still hand events
            # to the overflow writer, which waits for this lock and reconnects.
            conn, self._conn = self._conn, None
            was_available = self.available
            try:
                if conn is None or self._pid != os.getpid():
                    return
                with suppress(Exception):  # what stays on disk, for stats() after close()
                    self._final_depth = totals(conn, self._scope)[0]
                # Anything still claimed was never acked: hand it to the next sender at
                # once instead of leaving it hidden behind a lease held by this process.
                with suppress(Exception):
                    conn.execute(
                        "UPDATE events SET owner = NULL, lease = NULL WHERE owner = ?",
                        (self._owner,),
                    )
                with suppress(Exception):
                    conn.close()
            finally:
                self._reopenable = self._reopenable or was_available
                self.available = False

    # -- internals ---------------------------------------------------------------------

    def _new_owner(self) -> str:
        return new_owner(self._host)

    def _open(self) -> sqlite3.Connection:
        # Remember which file we are about to open, so a corrupt one is only moved aside
        # if no other process has replaced it in the meantime.
        with suppress(OSError):
            self._inode = os.stat(self.path).st_ino
        conn, self._inode, self._scope = open_db(self.path, self.endpoint)
        return conn

    def _connect(self) -> sqlite3.Connection:
        """Open (and if needed create) the file; move a corrupt or old file aside once."""
        try:
            return self._open()
        except LegacySpoolError as exc:
            target = move_aside(self.path, self._inode, "v1")
            if target is not None:
                self._report(
                    f"slaos_logging: the spool file {self.path} was written by an older "
                    f"version that did not record which account each event belongs to; it "
                    f"was moved to {target} with its {exc.rows} events, which are not sent "
                    "automatically (see 'Upgrading the spool' in the README), and a new "
                    "spool was started."
                )
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
