"""One benchmark sample in a fresh process: ``python benchmarks/_cases.py CASE MODE --sink URL``.

Prints exactly one JSON line on stdout. Modes:

- ``app``: application-thread cost, back to back (``--n`` calls after ``--warm``) and paced
  at ``--rate`` calls/s for ``--seconds`` (median of per-call times).
- ``deliver``: ``--n`` events back to back, then flush; events/s to the sink's last
  arrival, events lost (counted at the sink), client CPU per event, wire bytes per event.
- ``burst``: ``--n`` (200,000) events with defaults: loss versus ``stats()``, peak RSS growth.
- ``stall``: the sink holds every request; RSS growth per queued event with the queue full.
- ``latency``: ``--rate`` events/s for ``--seconds``; logging-to-receipt median and p95.
- ``sinkcheck``: how fast the sink at ``--sink`` absorbs 500-event JSON batches.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import sys
import time
import urllib.request
from pathlib import Path
from statistics import median
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _targets import ORG, Target, build


def sink_call(sink: str, path: str, method: str = "POST") -> dict[str, Any]:
    """Call the sink's control endpoint (stdlib client: no shared pool with the handler)."""
    data = b"" if method == "POST" else None
    with urllib.request.urlopen(urllib.request.Request(sink + path, data=data), timeout=30) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def rss_kb() -> int:
    """Current resident set size in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def tooks(n: int) -> list[float]:
    """Realistic request durations (full-precision floats, as time.perf_counter deltas are)."""
    rng = random.Random(42)
    return [rng.random() * 0.2 for _ in range(n)]


def log_n(target: Target, form: str, values: list[float]) -> None:
    """Log one event per value, back to back, in the call form the case measures."""
    logger = target.logger
    if form == "flat":
        for took in values:
            logger.info(
                "request_finished",
                extra={"organization_id": ORG, "took": took, "status_code": 200},
            )
    else:
        for took in values:
            logger.info(
                "request_finished",
                extra={
                    "organization_id": ORG,
                    "key": "rated_api",
                    "values": {"took": took, "status_code": 200},
                },
            )


def paced(target: Target, form: str, rate: float, seconds: float) -> list[int]:
    """Per-call nanoseconds of calls paced at ``rate``/s; the sleeps let the sender run."""
    logger, clock, sleep, now = target.logger, time.perf_counter_ns, time.sleep, time.perf_counter
    samples: list[int] = []
    period = 1.0 / rate
    due = now()
    flat = form == "flat"
    for took in tooks(int(rate * seconds)):
        if flat:
            start = clock()
            logger.info(
                "request_finished",
                extra={"organization_id": ORG, "took": took, "status_code": 200},
            )
        else:
            start = clock()
            logger.info(
                "request_finished",
                extra={
                    "organization_id": ORG,
                    "key": "rated_api",
                    "values": {"took": took, "status_code": 200},
                },
            )
        samples.append(clock() - start)
        due += period
        delay = due - now()
        if delay > 0:
            sleep(delay)
    return samples


def mode_app(target: Target, form: str, args: argparse.Namespace) -> dict[str, Any]:
    log_n(target, form, tooks(args.warm))
    target.flush(60)
    values = tooks(args.n)
    gc.collect()
    c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
    log_n(target, form, values)
    t1, c1 = time.perf_counter_ns(), time.thread_time_ns()
    target.flush(60)
    samples = paced(target, form, args.rate, args.seconds)
    target.flush(60)
    samples.sort()
    return {
        "n": args.n,
        "us_per_call": (t1 - t0) / args.n / 1000,
        "thread_us_per_call": (c1 - c0) / args.n / 1000,
        "paced_n": len(samples),
        "paced_median_us": median(samples) / 1000,
        "paced_p90_us": samples[int(len(samples) * 0.9)] / 1000,
    }


def _warm_and_reset(target: Target, form: str, sink: str, n: int = 100) -> dict[str, int]:
    """Warm up (thread, connection), zero the sink; return the handler's stats baseline."""
    log_n(target, form, tooks(n))
    target.flush(60)
    sink_call(sink, "/_reset")
    return target.stats() or {}


def _since(target: Target, base: dict[str, int]) -> dict[str, int] | None:
    stats = target.stats()
    if stats is None:
        return None
    return {k: v - base.get(k, 0) if k != "queue_depth" else v for k, v in stats.items()}


def _settled_sink(sink: str, expected: int, wait: float) -> dict[str, Any]:
    # flush() returns once the server answered, so this is a formality for most cases;
    # peers whose flush does not wait for answers get a short grace period.
    deadline = time.monotonic() + wait
    while True:
        stats = sink_call(sink, "/_stats", "GET")
        if stats["events"] >= expected or time.monotonic() > deadline:
            return stats
        time.sleep(0.05)


def mode_deliver(target: Target, form: str, args: argparse.Namespace) -> dict[str, Any]:
    base = _warm_and_reset(target, form, args.sink)
    values = tooks(args.n)
    gc.collect()
    wall0, cpu0 = time.time(), time.process_time()
    log_n(target, form, values)
    logged = time.time()
    target.flush(120)
    cpu1 = time.process_time()
    sink = _settled_sink(args.sink, args.n, 2.0)
    delivered = sink["events"]
    span = max(sink["last"] - wall0, 1e-9) if delivered else float("nan")
    result = {
        "n": args.n,
        "delivered": delivered,
        "lost": args.n - delivered,
        "log_seconds": logged - wall0,
        "seconds": span,
        "events_per_s": delivered / span if delivered else 0.0,
        "cpu_us_per_event": (cpu1 - cpu0) * 1e6 / max(delivered, 1),
        "wire_bytes_per_event": sink["bytes"] / max(delivered, 1),
        "requests": sink["requests"],
        "stats": _since(target, base),
    }
    target.close()
    return result


def mode_burst(target: Target, form: str, args: argparse.Namespace) -> dict[str, Any]:
    base = _warm_and_reset(target, form, args.sink)
    before = rss_kb()
    values = tooks(args.n)
    list_kb = rss_kb() - before  # the benchmark's own list of floats, not the handler's
    gc.collect()
    log_n(target, form, values)
    target.flush(300)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stats = _since(target, base) or {}
    sink = _settled_sink(args.sink, stats.get("sent", args.n), 2.0)
    target.close()
    return {
        "n": args.n,
        "server": sink["events"],
        "sent": stats.get("sent"),
        "dropped_queue_full": stats.get("dropped_queue_full"),
        "failed": stats.get("failed"),
        "stats": stats,
        "rss_growth_mb": (peak - before - list_kb) / 1024,
    }


def _queue_depth(target: Target) -> int:
    # Wait for the sender to take its batch and block on the stalled request.
    last, stable_since = -1, time.monotonic()
    while time.monotonic() - stable_since < 0.3:
        depth = (target.stats() or {}).get("queue_depth", 0)
        if depth != last:
            last, stable_since = depth, time.monotonic()
        time.sleep(0.02)
    return last


def mode_stall(target: Target, form: str, args: argparse.Namespace) -> dict[str, Any]:
    size = args.max_queue_size
    base = _warm_and_reset(target, form, args.sink, n=1000)
    first, second = tooks(size + size // 2), tooks(2 * size)
    gc.collect()
    before = rss_kb()
    sink_call(args.sink, "/_stall")
    try:
        log_n(target, form, first)
        depth = _queue_depth(target)
        full = rss_kb()
        log_n(target, form, second)
        _queue_depth(target)
        after_more = rss_kb()
        stats = _since(target, base) or {}
    finally:
        sink_call(args.sink, "/_release")
    target.flush(60)
    target.close()
    return {
        "max_queue_size": size,
        "queue_depth": depth,
        "dropped_queue_full": stats.get("dropped_queue_full"),
        "rss_growth_mb": (full - before) / 1024,
        "rss_growth_after_2x_more_mb": (after_more - before) / 1024,
        "bytes_per_queued_event": (full - before) * 1024 / size,
    }


def mode_latency(target: Target, form: str, args: argparse.Namespace) -> dict[str, Any]:
    _warm_and_reset(target, form, args.sink, n=10)
    logger = target.logger
    period = 1.0 / args.rate
    count = int(args.rate * args.seconds)
    rng = random.Random(7)
    due = time.perf_counter()
    for _ in range(count):
        logger.info(
            "request_finished",
            extra={
                "organization_id": ORG,
                "key": "rated_api",
                "values": {"took": rng.random() * 0.2, "status_code": 200, "sent_at": time.time()},
            },
        )
        due += period
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    # Let the last batch go on its own schedule; flush() would cut its wait short.
    time.sleep(args.flush_interval + 0.3)
    target.flush(30)
    latencies = sorted(sink_call(args.sink, "/_stats", "GET")["latencies"])
    target.close()
    if not latencies:
        return {"n": 0, "received": 0}
    return {
        "flush_interval": args.flush_interval,
        "n": count,
        "received": len(latencies),
        "median_ms": median(latencies) * 1000,
        "p95_ms": latencies[int(len(latencies) * 0.95)] * 1000,
    }


def mode_sinkcheck(args: argparse.Namespace) -> dict[str, Any]:
    import requests

    from slaos_logging._encode import make_encoder

    encode = make_encoder()
    rng = random.Random(3)
    batches = args.n // 500
    bodies = [
        encode(
            [
                {
                    "organization_id": ORG,
                    "key": "rated_api",
                    "timestamp": "2024-07-02T12:34:56Z",
                    "values": {"took": rng.random() * 0.2, "status_code": 200},
                    "idempotency_key": f"sinkcheck-{time.time_ns()}-{b}-{i}",
                }
                for i in range(500)
            ]
        )
        for b in range(batches)
    ]
    session = requests.Session()
    url = f"{args.sink}/v1/ingest/bench/benchkey"
    ok = 0
    start = time.perf_counter()
    for body in bodies:
        response = session.post(url, data=body, headers={"Content-Type": "application/json"})
        ok += 500 if response.status_code == 200 else 0
    seconds = time.perf_counter() - start
    return {"n": batches * 500, "accepted": ok, "events_per_s": ok / seconds}


def main() -> None:
    """Parse arguments, run one sample, print its JSON line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("case")
    parser.add_argument("mode")
    parser.add_argument("--sink", required=True)
    parser.add_argument("--form", default="values")
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--warm", type=int, default=2_000)
    parser.add_argument("--rate", type=float, default=1_000)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--flush-interval", type=float, default=1.0)
    parser.add_argument("--max-queue-size", type=int, default=10_000)
    args = parser.parse_args()
    if args.mode == "sinkcheck":
        print(json.dumps(mode_sinkcheck(args)), flush=True)
        return
    options: dict[str, Any] = {}
    if args.mode == "latency":
        options["flush_interval"] = args.flush_interval
    if args.mode == "stall":
        options["max_queue_size"] = args.max_queue_size
    target = build(args.case, args.sink, options)
    modes = {
        "app": mode_app,
        "deliver": mode_deliver,
        "burst": mode_burst,
        "stall": mode_stall,
        "latency": mode_latency,
    }
    result = modes[args.mode](target, args.form, args)
    result.update(case=args.case, mode=args.mode)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
