"""Side-by-side benchmarks of SlaOSHandler and its peers.

Usage: ``python benchmarks/run.py [--rounds 5] [--quick] [--json out.json]``.

Every sample runs in a fresh process (``benchmarks/_cases.py``) against one local sink
process (``benchmarks/_sink.py``). Rounds are interleaved (each round runs every case
once); ratios are taken within a round, and the table shows medians over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _report import machine, render, targets  # noqa: E402
from _targets import CASES, DELIVERING, OPTIONAL, available  # noqa: E402

#: Counts per profile. "seed" posts synchronously (~2 ms a call), so it gets fewer calls.
PROFILES: dict[str, dict[str, Any]] = {
    "full": {
        "rounds": 5,
        "app": {"n": 20_000, "warm": 2_000, "seconds": 2.0},
        "seed_app": {"n": 300, "warm": 20, "seconds": 0.3},
        "deliver": 20_000,
        "seed_deliver": 1_000,
        "burst": 200_000,
        "stall_queue": 10_000,
        "latency_seconds": 5.0,
        "sinkcheck": 20_000,
    },
    "quick": {
        "rounds": 1,
        "app": {"n": 5_000, "warm": 500, "seconds": 0.5},
        "seed_app": {"n": 100, "warm": 10, "seconds": 0.1},
        "deliver": 20_000,
        "seed_deliver": 200,
        "burst": 200_000,
        "stall_queue": 10_000,
        "latency_seconds": 2.0,
        "sinkcheck": 10_000,
    },
    "smoke": {
        "rounds": 1,
        "app": {"n": 2_000, "warm": 200, "seconds": 0.2},
        "seed_app": {"n": 30, "warm": 5, "seconds": 0.03},
        "deliver": 20_000,
        "seed_deliver": 50,
        "burst": 20_000,
        "stall_queue": 2_000,
        "latency_seconds": 1.0,
        "sinkcheck": 0,
    },
}


class Sink:
    """The sink process (or the project's Receiver): started, reachable at ``url``, killed."""

    def __init__(self, receiver_db: str | None = None) -> None:
        cmd = [sys.executable, str(HERE / "_sink.py")]
        if receiver_db is not None:
            cmd += ["--receiver", receiver_db]
        env = {**os.environ, "PYTHONPATH": _pythonpath()}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "PORT":
            self.stop()
            raise RuntimeError("the sink did not start")
        self.url = f"http://127.0.0.1:{line[1]}"

    def stop(self) -> None:
        """Terminate the process this object started."""
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _pythonpath() -> str:
    parts = [str(HERE.parent), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return os.pathsep.join(parts)


def sample(sink: str, case: str, mode: str, **opts: Any) -> dict[str, Any]:
    """Run one sample in a fresh process; a failure becomes ``{"error": ...}``."""
    form = CASES[case][1] if case in CASES else "values"
    cmd = [sys.executable, str(HERE / "_cases.py"), case, mode, "--sink", sink, "--form", form]
    for name, value in opts.items():
        cmd += [f"--{name.replace('_', '-')}", str(value)]
    env = {**os.environ, "PYTHONPATH": _pythonpath()}
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    except subprocess.TimeoutExpired:
        return {"error": "timed out"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1][:200]}
    return json.loads(lines[-1])  # type: ignore[no-any-return]


def run_round(sink: str, cases: list[str], p: dict[str, Any], log: Any) -> dict[str, Any]:
    """Every case once: app cost, delivery, then the SlaOSHandler-only measurements."""
    out: dict[str, Any] = {"app": {}, "deliver": {}}
    for case in cases:
        out["app"][case] = sample(sink, case, "app", **p["seed_app" if case == "seed" else "app"])
        log(f"  app {case}: {out['app'][case].get('us_per_call', out['app'][case])}")
    for case in cases:
        if case in DELIVERING:
            n = p["seed_deliver"] if case == "seed" else p["deliver"]
            out["deliver"][case] = sample(sink, case, "deliver", n=n)
            log(f"  deliver {case}: {out['deliver'][case].get('events_per_s', '?')} ev/s")
    out["burst"] = sample(sink, "slaos", "burst", n=p["burst"])
    out["stall"] = sample(sink, "slaos", "stall", max_queue_size=p["stall_queue"])
    out["latency"] = {
        str(fi): sample(
            sink, "slaos", "latency", rate=100, seconds=p["latency_seconds"], flush_interval=fi
        )
        for fi in (1.0, 0.05)
    }
    log(f"  burst/stall/latency done: {out['burst'].get('rss_growth_mb', out['burst'])}")
    return out


def _ratio(a: Any, b: Any) -> float | None:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b > 0:
        return float(a) / float(b)
    return None


def _med(values: list[Any]) -> float | None:
    numbers = [v for v in values if isinstance(v, (int, float))]
    return median(numbers) if numbers else None


def aggregate(rounds: list[dict[str, Any]], cases: list[str]) -> list[dict[str, Any]]:
    """One row per case: medians over rounds, ratios computed within each round first."""
    rows = []
    for case, (label, form) in CASES.items():
        row: dict[str, Any] = {"case": case, "label": label, "installed": case in cases}
        if case not in cases:
            rows.append(row)
            continue
        floor = "null_flat" if form == "flat" else "null"
        apps = [r["app"].get(case, {}) for r in rounds]
        floors = [r["app"].get(floor, {}) for r in rounds]
        dels = [r["deliver"].get(case, {}) for r in rounds]
        errors = [s["error"] for s in apps + dels if "error" in s]
        row.update(
            app_us=_med([a.get("us_per_call") for a in apps]),
            app_thread_us=_med([a.get("thread_us_per_call") for a in apps]),
            app_ratio=_med(
                [
                    _ratio(a.get("us_per_call"), f.get("us_per_call"))
                    for a, f in zip(apps, floors, strict=True)
                ]
            ),
            paced_us=_med([a.get("paced_median_us") for a in apps]),
            paced_ratio=_med(
                [
                    _ratio(a.get("paced_median_us"), f.get("paced_median_us"))
                    for a, f in zip(apps, floors, strict=True)
                ]
            ),
            app_n=apps[0].get("n"),
            error=errors[0] if errors else None,
        )
        if case in DELIVERING:
            row.update(
                deliver_n=dels[0].get("n"),
                events_per_s=_med([d.get("events_per_s") for d in dels]),
                lost=_med([d.get("lost") for d in dels]),
                dropped_reported=_med(
                    [(d.get("stats") or {}).get("dropped_queue_full") for d in dels]
                ),
                cpu_us=_med([d.get("cpu_us_per_event") for d in dels]),
                cpu_ratio=_med(
                    [
                        _ratio(d.get("cpu_us_per_event"), f.get("us_per_call"))
                        for d, f in zip(dels, floors, strict=True)
                    ]
                ),
                wire_bytes=_med([d.get("wire_bytes_per_event") for d in dels]),
            )
        rows.append(row)
    return rows


def main() -> int:
    """Run the rounds, print the Markdown report, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--quick", action="store_true", help="1 round, smaller counts (< 60 s)")
    parser.add_argument("--smoke", action="store_true", help="tiny counts, for the test suite")
    parser.add_argument("--json", metavar="PATH", help="also write every number as JSON")
    parser.add_argument("--cases", help="comma-separated subset (null is always included)")
    parser.add_argument("-v", "--verbose", action="store_true", help="progress on stderr")
    args = parser.parse_args()
    p = dict(PROFILES["smoke" if args.smoke else "quick" if args.quick else "full"])
    rounds_n = args.rounds or p["rounds"]
    wanted = args.cases.split(",") if args.cases else list(CASES)
    wanted = ["null", *[c for c in wanted if c != "null"]]
    cases = [c for c in CASES if c in wanted and (c not in OPTIONAL or available(c))]

    def log(text: str) -> None:
        if args.verbose:
            print(text, file=sys.stderr, flush=True)

    started = time.monotonic()
    sink = Sink()
    try:
        rounds = []
        for i in range(rounds_n):
            log(f"round {i + 1}/{rounds_n}")
            rounds.append(run_round(sink.url, cases, p, log))
        capacity = _sink_capacity(sink.url, p["sinkcheck"], log)
    finally:
        sink.stop()
    rows = aggregate(rounds, cases)
    result = {
        "machine": machine(),
        "profile": "smoke" if args.smoke else "quick" if args.quick else "full",
        "rounds": rounds_n,
        "rows": rows,
        "raw": rounds,
        "sink_capacity": capacity,
        "seconds": time.monotonic() - started,
    }
    result["targets"] = targets(result)
    print(render(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


def _sink_capacity(url: str, n: int, log: Any) -> dict[str, Any]:
    """Events/s each sink absorbs from one keep-alive client posting 500-event batches."""
    if n <= 0:
        return {}
    out: dict[str, Any] = {"sink": sample(url, "slaos", "sinkcheck", n=n)}
    try:
        import slaos_logging.cli._receiver  # noqa: F401
    except ImportError:
        out["receiver"] = {"error": "slaos_logging.cli._receiver not importable"}
        return out
    with tempfile.TemporaryDirectory() as tmp:
        receiver = Sink(receiver_db=str(Path(tmp) / "bench.sqlite"))
        try:
            out["receiver"] = sample(receiver.url, "slaos", "sinkcheck", n=n)
        finally:
            receiver.stop()
    log(f"  sink capacity: {out}")
    return out


if __name__ == "__main__":
    sys.exit(main())
