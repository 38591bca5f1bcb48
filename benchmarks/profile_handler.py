"""cProfile of SlaOSHandler on both threads: ``python benchmarks/profile_handler.py [--n 20000]``.

Starts the benchmark sink, logs ``--n`` events back to back (values form, or ``--flat``)
with the application thread profiled, and the sender thread profiled by its own
``cProfile.Profile`` (enabled inside the thread). Prints the top functions of each by
own time, in microseconds per event. Profiling inflates every Python call, so read
the shares, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from _cases import log_n, tooks  # noqa: E402
from _targets import build  # noqa: E402
from run import Sink  # noqa: E402


def _top(profile: cProfile.Profile, n_events: int, limit: int, title: str) -> str:
    stream = io.StringIO()
    stats = pstats.Stats(profile, stream=stream)
    total = stats.total_tt  # type: ignore[attr-defined]
    rows: list[tuple[float, float, int, str]] = []
    for (path, line, name), (_cc, calls, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{Path(path).name}:{line}({name})" if path != "~" else name
        rows.append((tt, ct, calls, where))
    rows.sort(reverse=True)
    out = [
        f"### {title}: {total * 1e6 / n_events:.2f} µs/event profiled in total",
        "",
        "| own µs/event | cum µs/event | calls/event | function |",
        "|---:|---:|---:|---|",
    ]
    for tt, ct, calls, where in rows[:limit]:
        out.append(
            f"| {tt * 1e6 / n_events:.3f} | {ct * 1e6 / n_events:.3f} "
            f"| {calls / n_events:.3f} | `{where}` |"
        )
    return "\n".join(out)


def main() -> None:
    """Profile both threads and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--flat", action="store_true")
    parser.add_argument("--top", type=int, default=18)
    args = parser.parse_args()
    sink = Sink()
    try:
        case, form = ("slaos_flat", "flat") if args.flat else ("slaos", "values")
        # A queue as large as the burst: profiling slows emit, and drops would skew per-event
        # numbers on the sender side.
        target = build(case, sink.url, {"max_queue_size": args.n * 2})
        sender_profile = cProfile.Profile()
        pipeline: Any = target.handler._pipeline  # type: ignore[attr-defined]
        original = pipeline.sender._run

        def profiled_run() -> None:
            sender_profile.enable()
            try:
                original()
            finally:
                sender_profile.disable()

        pipeline.sender._run = profiled_run
        log_n(target, form, tooks(200))
        target.flush(60)
        sender_profile.clear()  # warm-up (thread start, first connection) excluded
        values = tooks(args.n)
        app_profile = cProfile.Profile()
        app_profile.enable()
        log_n(target, form, values)
        app_profile.disable()
        target.flush(120)
        stats = target.stats()
        target.close()
    finally:
        sink.stop()
    print(f"SlaOSHandler, {args.n:,} events back to back ({form} form); stats: {stats}\n")
    print(_top(app_profile, args.n, args.top, "Application thread (logger.info)"))
    print()
    print(_top(sender_profile, args.n, args.top, "Sender thread"))


if __name__ == "__main__":
    main()
