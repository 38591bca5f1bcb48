"""Helpers for the spool tests: what a server accepted, waits with a message, old files."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from slaos_logging import SlaOSHandler
from slaos_logging._endpoint import resolve_base_url
from slaos_logging._spool import FILENAME
from slaos_logging._spool_db import endpoint_id

from .server import RecordingServer

#: Quick probes and retries, so outages end fast in tests.
FAST: dict[str, Any] = {
    "backoff_base": 0.01,
    "backoff_cap": 0.2,
    "timeout": 2.0,
    "flush_interval": 0.05,
}


def wait_for(predicate: Callable[[], bool], timeout: float, what: Callable[[], str]) -> None:
    """Wait (on an event, polling) until ``predicate`` holds; fail saying ``what`` did not."""
    pause = threading.Event()
    for _ in range(int(timeout / 0.05) + 1):
        if predicate():
            return
        pause.wait(0.05)
    assert predicate(), f"timed out after {timeout} s: {what()}"


def accepted(server: RecordingServer) -> list[tuple[str, dict[str, Any]]]:
    """(request path, event) of every event in a 2xx answered POST, in arrival order.

    The client has its answer a moment before the server marks the request final: a
    request being answered is waited for (a few seconds at most, for a stalled one).
    """
    requests = list(server.requests)
    pause = threading.Event()
    for _ in range(100):
        if all(request.final for request in requests):
            break
        pause.wait(0.05)
    out: list[tuple[str, dict[str, Any]]] = []
    for request in requests:
        if request.method == "POST" and request.final and 200 <= request.status < 300:
            out.extend((request.path, event) for event in request.json())
    return out


def seqs(server: RecordingServer) -> Counter[int]:
    """How often each ``values.seq`` was accepted."""
    return Counter(event["values"]["seq"] for _, event in accepted(server))


def burst(log: logging.Logger, count: int, start: int = 0, **extra: Any) -> None:
    """Log ``count`` events back to back, with ``values.seq`` from ``start``."""
    for seq in range(start, start + count):
        log.info("request_finished", extra={"organization_id": "org", "seq": seq, **extra})


def endpoint_of(server: RecordingServer, ingestion_id: str = "ingest-id") -> str:
    """The spool endpoint digest of handlers aimed at ``server``."""
    return endpoint_id(resolve_base_url(server.url), ingestion_id)


def rows_on_disk(folder: Path) -> int:
    """Rows in a spool file, read directly (every endpoint)."""
    conn = sqlite3.connect(folder / FILENAME)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])
    finally:
        conn.close()


def on_disk(handler: SlaOSHandler, count: int) -> Callable[[], bool]:
    """``handler``'s spool holds ``count`` rows of its own (an outage moved them there)."""
    return lambda: handler.stats()["spool_depth"] >= count


# The schema of spool files written before rows carried their endpoint (version 1).
V1_SCHEMA = """
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    payload BLOB NOT NULL,
    size INTEGER NOT NULL,
    owner TEXT,
    lease REAL);
CREATE INDEX events_claimed ON events (owner, lease) WHERE owner IS NOT NULL;
CREATE TABLE totals (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    rows INTEGER NOT NULL,
    bytes INTEGER NOT NULL);
CREATE TRIGGER events_ins AFTER INSERT ON events BEGIN
    UPDATE totals SET rows = rows + 1, bytes = bytes + new.size WHERE id = 0; END;
CREATE TRIGGER events_del AFTER DELETE ON events BEGIN
    UPDATE totals SET rows = rows - 1, bytes = bytes - old.size WHERE id = 0; END;
INSERT INTO totals VALUES (0, 0, 0);
PRAGMA user_version = 1;
"""


def write_v1_spool(folder: Path, payloads: list[bytes]) -> Path:
    """A spool file as version 1 wrote it, holding ``payloads``."""
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / FILENAME
    conn = sqlite3.connect(path)
    try:
        conn.executescript(V1_SCHEMA)
        conn.executemany(
            "INSERT INTO events (payload, size) VALUES (?, ?)", [(p, len(p)) for p in payloads]
        )
        conn.commit()
    finally:
        conn.close()
    return path


# -- a second local user (the tests run these in a spawned child that drops to it) --------

#: The conventional "nobody" user: a second user on any Linux host.
OTHER_UID = 65534


def as_other_user(action: str, folder: str, arg: str) -> None:
    """Child process: become ``OTHER_UID``, then plant ``action`` in ``folder``.

    ``database``: a valid spool file holding a forged event for endpoint ``arg``, readable
    and writable by everyone. ``symlink``: ``folder/arg`` made a link to a file of the
    victim that the second user cannot even see.
    """
    from slaos_logging._spool import Spool  # imported before the privileges go

    os.setgid(OTHER_UID)
    os.setuid(OTHER_UID)
    if action == "database":
        forged = b'{"organization_id":"victim","key":"k","values":{"seq":-1}}'
        spool = Spool(folder, endpoint=arg)
        assert spool.available and spool.put([forged]) == 1
        spool.close()
        for name in os.listdir(folder):
            os.chmod(os.path.join(folder, name), 0o666)
    elif action.startswith("symlink:"):
        os.symlink(arg, os.path.join(folder, action.split(":", 1)[1]))
    else:
        raise ValueError(action)
