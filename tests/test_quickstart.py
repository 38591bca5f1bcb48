"""examples/quickstart.py runs on a bare install and shows a report with SLA breaches."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_runs_and_reports_breaches(tmp_path: Path) -> None:
    """Exit 0; the table lists the three customers; one breaches uptime, one latency."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLAOS_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "examples" / "quickstart.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "key 'rated_api': 3000 events, 3 organizations" in out
    table = [line.split() for line in out.splitlines()]
    rows = {cells[0]: cells for cells in table if len(cells) == 6 and cells[1].isdigit()}
    assert sorted(rows) == ["acme", "globex", "initech"]
    assert rows["acme"][3] == rows["acme"][5] == "met"
    assert rows["globex"][3] == "BREACH"
    assert rows["initech"][5] == "BREACH"
    assert "globex breached the uptime SLA" in out
    assert "SlaOSHandler delivered 3000 of 3000 events" in out
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # the temporary database is cleaned up
