"""End to end over real processes: serve, the handler and `send` ship, `report` adds up."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from slaos_logging import SlaOSHandler

from .cli_support import free_port, wait_until_healthy

KEY = "e2e-ingestion-key-2468"
REPO_ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `python -m slaos_logging ARGS` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "slaos_logging", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def log_line(org: str, status: int, took: float | None, n: int) -> str:
    """One JSON line as python-json-logger would write it, extras at top level."""
    line: dict[str, Any] = {
        "asctime": f"2024-08-15 10:00:{n % 60:02d},000",
        "levelname": "INFO",
        "name": "shop",
        "message": "request_finished",
        "organization_id": org,
        "status_code": status,
    }
    if took is not None:
        line["took"] = took
    return json.dumps(line)


def test_serve_handler_send_report(tmp_path: Path) -> None:
    """Figures from two shipping paths, one of them run twice, add up exactly per organization."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    db = tmp_path / "e2e.sqlite"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLAOS_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    serve = ["serve", "--port", str(port), "--db", str(db), "--ingestion-key", KEY]
    proc = subprocess.Popen(
        [sys.executable, "-m", "slaos_logging", *serve],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_healthy(base, proc)
        # acme through the handler: 1 of 200 is a 503 (99.5 %, met), 10 are slow (95 %, not >).
        handler = SlaOSHandler(host=base, ingestion_id="dev", ingestion_key=KEY, key="rated_api")
        logger = logging.getLogger("test_cli_e2e.shop")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        try:
            for i in range(200):
                extra = {"organization_id": "acme", "status_code": 503 if i == 7 else 200}
                logger.info("request_finished", extra={**extra, "took": 0.5 if i < 10 else 0.05})
            assert handler.flush(timeout=10)
            assert handler.stats()["sent"] == 200
        finally:
            logger.removeHandler(handler)
            handler.close()
        # globex through `send`: 2 of 41 are 500s, one line has no took; plus lines to skip.
        lines = [log_line("globex", 500 if i in (3, 4) else 200, 0.1, i) for i in range(40)]
        lines += [log_line("globex", 200, None, 40), "not json", '{"message": "cache_miss"}']
        path = tmp_path / "app.log"
        path.write_text("\n".join(lines) + "\n")
        send = ["send", str(path), "--events", "request_finished", "--key", "rated_api"]
        send += ["--host", base, "--ingestion-id", "dev"]
        send_env = {**env, "SLAOS_INGESTION_KEY": KEY}
        for _ in range(2):  # the second run must not store anything again
            result = cli(*send, env=send_env, cwd=tmp_path)
            assert result.returncode == 0, result.stderr
            assert "read 43, sent 41, skipped 1, malformed 1, invalid 0, failed 0" in result.stderr
        report = cli("report", "--db", str(db), "--format", "json", env=env, cwd=tmp_path)
        assert report.returncode == 0, report.stderr
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert json.loads(report.stdout)["organizations"] == [
        {
            "organization_id": "acme",
            "events": 200,
            "uptime_pct": 99.5,
            "uptime_met": True,
            "latency_pct": 95.0,
            "latency_met": False,
            "missing_status_code": 0,
            "missing_took": 0,
        },
        {
            "organization_id": "globex",
            "events": 41,
            "uptime_pct": 95.122,
            "uptime_met": False,
            "latency_pct": 100.0,
            "latency_met": True,
            "missing_status_code": 0,
            "missing_took": 1,
        },
    ]
    # The second `send` was answered "duplicate" for every one of its 41 events.
    assert sum(int(n) for n in re.findall(r"stored=0 duplicates=(\d+)", err)) == 41
    assert KEY not in out + err
