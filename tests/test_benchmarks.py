"""Smoke test of the benchmark harness (benchmarks/run.py --smoke)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_smoke_run_reports_every_case(tmp_path: Path) -> None:
    """run.py --smoke writes a row per case, positive numbers, and no loss at 20,000."""
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--smoke", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "### Targets" in done.stdout
    result = json.loads(out.read_text())
    rows = {row["case"]: row for row in result["rows"]}
    expected = {"null", "null_flat", "queue", "seed", "slaos", "slaos_flat", "otel", "logtail"}
    assert set(rows) == expected
    for case, row in rows.items():
        if not row["installed"]:
            assert case in ("otel", "logtail")
            continue
        assert row["app_us"] > 0 and row["paced_us"] > 0, row
        if case in ("seed", "slaos", "slaos_flat"):
            assert row["events_per_s"] > 0 and row["wire_bytes"] > 0, row
    slaos = rows["slaos"]
    assert slaos["deliver_n"] == 20_000
    assert slaos["lost"] == 0, f"SlaOSHandler lost {slaos['lost']} of a 20,000 burst"
