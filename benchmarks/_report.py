"""Benchmark numbers into a Markdown report, with a verdict for each performance target."""

from __future__ import annotations

import datetime as dt
import os
import platform
from statistics import median
from typing import Any


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "platform": platform.platform(),
    }


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _per_round(raw: list[dict[str, Any]], fn: Any) -> float | None:
    values = []
    for r in raw:
        try:
            v = fn(r)
        except (KeyError, TypeError, ZeroDivisionError):
            v = None
        if _num(v):
            values.append(v)
    return median(values) if values else None


def _verdict(name: str, ok: bool | None, measured: str, goal: str) -> dict[str, Any]:
    status = "not measured" if ok is None else "met" if ok else "MISSED"
    return {"target": name, "status": status, "measured": measured, "goal": goal}


def _fmt(x: Any, digits: int = 2) -> str:
    if not _num(x):
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Met / missed for each performance target, with the measured ratio."""
    raw = result["raw"]
    rows = {r["case"]: r for r in result["rows"]}
    slaos, flat = rows["slaos"], rows["slaos_flat"]
    out = []

    def le(x: Any, limit: float) -> bool | None:
        return None if not _num(x) else x <= limit

    out.append(
        _verdict(
            "app cost back to back",
            le(slaos.get("app_ratio"), 1.3),
            f"{_fmt(slaos.get('app_ratio'))}x NullHandler",
            "<= 1.3x",
        )
    )
    out.append(
        _verdict(
            "app cost paced 1,000/s",
            le(slaos.get("paced_ratio"), 1.3),
            f"{_fmt(slaos.get('paced_ratio'))}x NullHandler",
            "<= 1.3x",
        )
    )
    vs_queue = _per_round(
        raw, lambda r: r["app"]["slaos"]["us_per_call"] / r["app"]["queue"]["us_per_call"]
    )
    vs_queue_p = _per_round(
        raw, lambda r: r["app"]["slaos"]["paced_median_us"] / r["app"]["queue"]["paced_median_us"]
    )
    out.append(
        _verdict(
            "below QueueHandler (b2b / paced)",
            None if vs_queue is None or vs_queue_p is None else vs_queue < 1 and vs_queue_p < 1,
            f"{_fmt(vs_queue)}x / {_fmt(vs_queue_p)}x QueueHandler",
            "< 1x",
        )
    )
    out.append(
        _verdict(
            "flat extras back to back",
            le(flat.get("app_ratio"), 1.4),
            f"{_fmt(flat.get('app_ratio'))}x NullHandler (flat)",
            "<= 1.4x",
        )
    )
    out.append(
        _verdict(
            "flat extras paced",
            le(flat.get("paced_ratio"), 1.4),
            f"{_fmt(flat.get('paced_ratio'))}x NullHandler (flat)",
            "<= 1.4x",
        )
    )
    for peer, goal in (("seed", 100.0), ("logtail", 5.0)):
        x = _per_round(
            raw,
            lambda r, p=peer: (
                r["deliver"]["slaos"]["events_per_s"] / r["deliver"][p]["events_per_s"]
            ),
        )
        out.append(
            _verdict(
                f"events/s vs {peer}",
                None if x is None else x >= goal,
                f"{_fmt(x, 1)}x",
                f">= {goal:g}x",
            )
        )
    out.append(
        _verdict(
            "client CPU per event",
            le(slaos.get("cpu_ratio"), 2.0),
            f"{_fmt(slaos.get('cpu_ratio'))}x NullHandler call",
            "<= 2x",
        )
    )
    lost = [r["deliver"]["slaos"].get("lost") for r in raw if "slaos" in r["deliver"]]
    dropped = [(r["deliver"]["slaos"].get("stats") or {}).get("dropped_queue_full") for r in raw]
    ok3 = bool(lost) and all(x == 0 for x in lost) and all(x == 0 for x in dropped)
    out.append(
        _verdict(
            "no loss in a 20,000 burst",
            ok3 if lost else None,
            f"lost per round {lost}, dropped_queue_full {dropped}",
            "0",
        )
    )
    bursts = [r["burst"] for r in raw]
    exact = [
        b.get("server") == b.get("sent")
        and b.get("sent", 0) + b.get("dropped_queue_full", 0) + b.get("failed", 0) == b.get("n")
        for b in bursts
        if "error" not in b
    ]
    desc = "; ".join(
        f"server {b.get('server')}, sent {b.get('sent')}, dropped {b.get('dropped_queue_full')}, "
        f"failed {b.get('failed')}"
        for b in bursts[:3]
        if "error" not in b
    )
    out.append(
        _verdict(
            f"{bursts[0].get('n', 0):,} burst: loss == stats()",
            all(exact) if exact else None,
            desc,
            "server == sent, sum == n",
        )
    )
    rss = max((b.get("rss_growth_mb", 0) for b in bursts if "error" not in b), default=None)
    out.append(
        _verdict(
            "peak RSS growth in the burst", le(rss, 50.0), f"{_fmt(rss, 1)} MB (max)", "< 50 MB"
        )
    )
    stalls = [r["stall"] for r in raw if "error" not in r["stall"]]
    if stalls:
        bpe = median(s["bytes_per_queued_event"] for s in stalls)
        grow = median(s["rss_growth_after_2x_more_mb"] - s["rss_growth_mb"] for s in stalls)
        out.append(
            _verdict(
                "stalled sink: bounded by max_queue_size",
                grow < 2.0,
                f"{bpe:,.0f} B per queued event; +{grow:.1f} MB after 2x more events",
                "no growth once full",
            )
        )
    out.append(
        _verdict(
            "wire bytes per event",
            le(slaos.get("wire_bytes"), 200.0),
            f"{_fmt(slaos.get('wire_bytes'), 1)} B",
            "<= 200 B",
        )
    )
    for fi, goal in (("1.0", 1050.0), ("0.05", 100.0)):
        med = _per_round(raw, lambda r, f=fi: r["latency"][f]["median_ms"])
        out.append(
            _verdict(
                f"latency median, flush_interval={fi}",
                None if med is None else med <= goal if fi == "1.0" else med < goal,
                f"{_fmt(med, 1)} ms",
                f"{'<=' if fi == '1.0' else '<'} {goal:g} ms",
            )
        )
    return out


def render(result: dict[str, Any]) -> str:
    """The Markdown report."""
    m = result["machine"]
    lines = [
        f"## slaos-logging benchmarks ({result['profile']}, {result['rounds']} rounds, "
        f"{result['seconds']:.0f} s)",
        "",
        f"{m['date']}; Python {m['python']}; {m['nproc']} CPUs ({m['cpu']}); {m['platform']}",
        "",
        "| case | app µs/call | x Null | paced µs/call | x Null (paced) | delivered ev/s "
        "| lost in burst | client CPU µs/event | CPU x Null call | wire B/event |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        if not row["installed"]:
            lines.append(f"| {row['label']} | not installed |  |  |  |  |  |  |  |  |")
            continue
        n = row.get("deliver_n")
        lost = f"{_fmt(row.get('lost'), 0)} / {n:,}" if n else "-"
        label = row["label"] + (f" (n={row['app_n']})" if row["case"] == "seed" else "")
        lines.append(
            f"| {label} | {_fmt(row.get('app_us'))} | {_fmt(row.get('app_ratio'))} "
            f"| {_fmt(row.get('paced_us'))} | {_fmt(row.get('paced_ratio'))} "
            f"| {_fmt(row.get('events_per_s'), 0)} | {lost} | {_fmt(row.get('cpu_us'))} "
            f"| {_fmt(row.get('cpu_ratio'))} | {_fmt(row.get('wire_bytes'), 1)} |"
        )
        if row.get("error"):
            lines.append(f"|  ↳ error: {row['error']} |  |  |  |  |  |  |  |  |  |")
    lines += [
        "",
        "App µs/call: wall time per `logger.info(...)` back to back (perf_counter_ns around "
        "the loop, after a warm-up); paced: median per-call time at 1,000 calls/s. x Null: "
        "ratio to the NullHandler floor of the same call form in the same round, median "
        "over rounds. Lost: counted at the sink after flush. Client CPU: process_time of the "
        "whole client (both threads) from the first call until flush() returned, per event.",
        "",
    ]
    lines += _details(result)
    lines += [
        "",
        "### Targets",
        "",
        "| target | status | measured | goal |",
        "|---|---|---|---|",
    ]
    for t in result["targets"]:
        lines.append(f"| {t['target']} | {t['status']} | {t['measured']} | {t['goal']} |")
    return "\n".join(lines)


def _details(result: dict[str, Any]) -> list[str]:
    raw = result["raw"]
    rows = {r["case"]: r for r in result["rows"]}
    out = ["### Details (SlaOSHandler)", ""]
    slaos = rows["slaos"]
    if slaos.get("app_thread_us"):
        out.append(
            "- App thread CPU (thread_time) per call back to back: "
            f"{_fmt(slaos['app_thread_us'])} µs "
            f"(wall {_fmt(slaos.get('app_us'))} µs: the rest is the sender thread holding the GIL)."
        )
    for b in (r["burst"] for r in raw):
        if "error" in b:
            out.append(f"- Burst: error {b['error']}")
            continue
        out.append(
            f"- Burst of {b['n']:,}: server counted {b['server']:,}; stats sent "
            f"{b['sent']:,}, dropped_queue_full {b['dropped_queue_full']:,}, failed "
            f"{b['failed']:,}; peak RSS growth {b['rss_growth_mb']:.1f} MB"
        )
    for s in (r["stall"] for r in raw):
        if "error" in s:
            out.append(f"- Stall: error {s['error']}")
            continue
        out.append(
            f"- Stalled sink (max_queue_size {s['max_queue_size']:,}): queue depth "
            f"{s['queue_depth']:,}, RSS +{s['rss_growth_mb']:.1f} MB when full "
            f"(= {s['bytes_per_queued_event']:,.0f} B per queued event), "
            f"+{s['rss_growth_after_2x_more_mb']:.1f} MB after twice as many more events"
        )
    for fi in ("1.0", "0.05"):
        lat = [r["latency"][fi] for r in raw if "median_ms" in r["latency"][fi]]
        if lat:
            med = median(x["median_ms"] for x in lat)
            p95 = median(x["p95_ms"] for x in lat)
            got = sum(x["received"] for x in lat)
            sent = sum(x["n"] for x in lat)
            out.append(
                f"- Latency at 100 events/s, flush_interval={fi}: median {med:.1f} ms, "
                f"p95 {p95:.1f} ms (received {got}/{sent})"
            )
    cap = result.get("sink_capacity") or {}
    if cap:
        sink = cap.get("sink", {}).get("events_per_s")
        rec = cap.get("receiver", {})
        ev = slaos.get("events_per_s")
        out.append(
            f"- Sink capacity (one keep-alive client, 500-event JSON batches): benchmark sink "
            f"{_fmt(sink, 0)} ev/s; project Receiver "
            f"{_fmt(rec.get('events_per_s'), 0) if 'events_per_s' in rec else rec.get('error')} "
            f"ev/s; SlaOSHandler delivers {_fmt(ev, 0)} ev/s."
        )
    return out
