"""Adversarial review of the lifecycle: exit, close, fork and flush bounds, counted exactly."""

from __future__ import annotations

import json
import time

from .deploy_support import child_env, run_script
from .server import RecordingServer, Reply
from .test_orphans import AFTER_EXIT_HOOK


def _settled(stats: dict[str, int]) -> int:
    return stats["sent"] + stats["invalid"] + stats["failed"] + stats["dropped_shutdown"]


def test_record_after_exit_hook_waits_shutdown_timeout_not_the_request_timeout(
    server: RecordingServer,
) -> None:
    """A late record at exit, server stalled, waits ~shutdown_timeout, not the request timeout."""
    server.responder = lambda body: Reply(stall=True)
    code = AFTER_EXIT_HOOK.replace("shutdown_timeout=3", "shutdown_timeout=1, timeout=25")
    started = time.monotonic()
    done = run_script(code, child_env(server), timeout=60)
    took = time.monotonic() - started
    server.release.set()
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    assert stats["enqueued"] == _settled(stats), stats
    assert stats["enqueued"] + stats["dropped_closed"] == 23, stats
    # close() at exit (1 s) plus one late delivery (1 s); the 25 s request timeout
    # must not apply once a deadline is set.
    assert took < 12, f"exit took {took:.1f}s"
