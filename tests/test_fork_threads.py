"""A forked child's threads are never mistaken for the parent's sender thread."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from .conftest import KEY
from .scripts.fork_pool import CHILD_EVENTS, CHILD_TIMEOUT, PARENT_EVENTS
from .server import RecordingServer

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _run(server: RecordingServer, mode: str) -> dict[str, dict[str, int]]:
    env = dict(os.environ, SLAOS_INGESTION_ID="ingest-id", SLAOS_INGESTION_KEY=KEY)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "tests.scripts.fork_pool", server.url, mode],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT + 40,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out: dict[str, dict[str, int]] = {}
    for line in proc.stdout.splitlines():
        tag, _, stats = line.partition(" ")
        assert tag in ("child", "parent"), proc.stdout  # a process reported its own failure
        out[tag] = json.loads(stats)
    assert set(out) == {"child", "parent"}, proc.stdout
    return out


@pytest.mark.parametrize("mode", ["pending", "idle"])
def test_forked_child_thread_pool_delivers_every_record(server: RecordingServer, mode: str) -> None:
    """A forked child logging 400 records from a thread pool delivers all 400, once each."""
    stats = _run(server, mode)
    events = server.events()
    child = [e for e in events if e["organization_id"] == "child"]
    parent = [e for e in events if e["organization_id"] == "parent"]
    assert sorted(e["values"]["n"] for e in child) == list(range(CHILD_EVENTS))
    assert sorted(e["values"]["n"] for e in parent) == list(range(PARENT_EVENTS))
    keys = {e["idempotency_key"] for e in events}
    assert len(keys) == CHILD_EVENTS + PARENT_EVENTS
    for who, n in (("child", CHILD_EVENTS), ("parent", PARENT_EVENTS)):
        s = stats[who]
        assert (s["enqueued"], s["sent"], s["skipped"]) == (n, n, 0), (who, s)
        assert s["invalid"] + s["failed"] + s["dropped_shutdown"] == 0, (who, s)
        assert s["dropped_queue_full"] + s["dropped_closed"] == 0, (who, s)
