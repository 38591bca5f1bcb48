"""A real Celery worker (prefork, recycling children) stopped by SIGTERM: every event arrives."""

from __future__ import annotations

import collections
import subprocess
import sys
import time
from pathlib import Path

import celery

from .deploy_support import ROOT, assert_exactly, child_env, wait_for_events
from .server import RecordingServer

TASKS = 200


def _send(folder: Path) -> None:
    # The app module is not imported here: it builds a handler and connects signals.
    app = celery.Celery("sender", broker="filesystem://")
    app.conf.broker_transport_options = {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
    }
    with app.connection_for_write() as conn:
        for seq in range(TASKS):
            app.send_task("deploy.work", args=(seq,), connection=conn)


def test_recycled_children_and_warm_shutdown_lose_nothing(
    server: RecordingServer, tmp_path: Path
) -> None:
    """200 tasks over children recycled every 30 tasks, then SIGTERM: 200 events, once each."""
    folder = tmp_path / "broker"
    (folder / "done").mkdir(parents=True)
    _send(folder)
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.scripts.deploy_celery",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            "2",
            "--max-tasks-per-child",
            "30",
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        env=child_env(server, CELERY_TEST_BROKER=str(folder)),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while len(list((folder / "done").iterdir())) < TASKS and time.monotonic() < deadline:
            if worker.poll() is not None:
                break
            time.sleep(0.1)
        ran = len(list((folder / "done").iterdir()))
    finally:
        worker.terminate()  # SIGTERM: Celery's warm shutdown
        try:
            out, _ = worker.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            out, _ = worker.communicate()
    assert ran == TASKS, f"only {ran} of {TASKS} tasks ran within 60 s: {out}"
    assert worker.returncode == 0, out
    expected = collections.Counter(("celery", seq) for seq in range(TASKS))
    assert_exactly(wait_for_events(server, TASKS, timeout=5), expected)
