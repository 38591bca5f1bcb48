"""``slaos-logging report``: the two SLOs of Rated's example (uptime, latency) per organization.

The computation is a pure function over an :class:`EventStore`, so the quickstart example can
call it in-process on the receiver's database.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from . import iso_timestamp, percentage, positive_seconds, print_error
from ._store import EventStore, StoreError, parse_timestamp
from ._table import OrgReport, format_table
from ._terminal import printable

__all__ = ["OrgReport", "add_parser", "compute_report", "format_table", "report_json", "run"]


def _number(value: object) -> float | None:
    # bool is an int subclass, but True is not a status code.
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _epoch(moment: datetime | str | None) -> float | None:
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = parse_timestamp(moment)
    elif moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def compute_report(
    source: EventStore | str | os.PathLike[str],
    *,
    key: str = "rated_api",
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    uptime_target: float = 99.5,
    latency_threshold: float = 0.2,
    latency_target: float = 95.0,
) -> list[OrgReport]:
    """Compute the uptime and latency SLOs per organization, sorted by organization id.

    Args:
        source: An open store, or the path of an existing event database.
        key: Only events with this key count.
        since: Inclusive lower bound on the event timestamp (naive means UTC).
        until: Exclusive upper bound on the event timestamp.
        uptime_target: Uptime SLA in percent (met when ``>=``).
        latency_threshold: An event is fast when ``values.took`` is below this many seconds.
        latency_target: Latency SLA in percent (met when ``>``).

    Raises:
        StoreError: ``source`` is a path that is missing or not an event database.
        ValueError: ``since`` or ``until`` is a string that is not ISO 8601.
    """
    lower, upper = _epoch(since), _epoch(until)
    if isinstance(source, EventStore):
        rows = list(source.iter_values(key, lower, upper))
    else:
        with EventStore(source, create=False) as store:
            rows = list(store.iter_values(key, lower, upper))
    # Per org: events, uptime good/total, latency good/total.
    tallies: dict[str, list[int]] = {}
    for org, values in rows:
        tally = tallies.setdefault(org, [0, 0, 0, 0, 0])
        tally[0] += 1
        status = _number(values.get("status_code"))
        if status is not None:
            tally[2] += 1
            tally[1] += not 500 <= status < 600
        took = _number(values.get("took"))
        if took is not None:
            tally[4] += 1
            tally[3] += took < latency_threshold
    return [
        OrgReport(org, t[0], t[1], t[2], t[3], t[4], uptime_target, latency_target)
        for org, t in sorted(tallies.items())
    ]


def report_json(
    reports: Sequence[OrgReport], *, key: str, latency_threshold: float, **window: Any
) -> dict[str, Any]:
    """Return the JSON document of ``report --format json``; extra keywords are included."""
    document: dict[str, Any] = {"key": key, "latency_threshold": latency_threshold}
    document.update(window)
    document["organizations"] = [r.to_dict() for r in reports]
    return document


def add_parser(subparsers: argparse._SubParsersAction[Any]) -> argparse.ArgumentParser:
    """Register ``report`` and return its parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "report",
        help="compute uptime and latency SLOs per organization from a receiver database",
        description="Compute Rated's example SLOs per organization from events stored by "
        "'slaos-logging serve': uptime (share of non-5xx values.status_code) and latency "
        "(share of values.took under a threshold).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--db", metavar="PATH", default="slaos-events.sqlite", help="receiver database file"
    )
    parser.add_argument("--key", default="rated_api", help="event key")
    parser.add_argument("--since", metavar="ISO", type=iso_timestamp, help="inclusive start")
    parser.add_argument("--until", metavar="ISO", type=iso_timestamp, help="exclusive end")
    parser.add_argument(
        "--uptime-target", metavar="PCT", type=percentage, default=99.5, help="SLA: >= this %%"
    )
    parser.add_argument(
        "--latency-threshold",
        metavar="SECONDS",
        type=positive_seconds,
        default=0.2,
        help="an event is fast below this",
    )
    parser.add_argument(
        "--latency-target", metavar="PCT", type=percentage, default=95.0, help="SLA: > this %% fast"
    )
    parser.add_argument(
        "--format", choices=("table", "json"), default="table", help="output format"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``report``: print the table or JSON document; 1 when the database is unusable."""
    if args.since and args.until and args.since >= args.until:
        return print_error("--since must be earlier than --until", status=2)
    try:
        with EventStore(args.db, create=False) as store:
            known_keys = store.keys()
            reports = compute_report(
                store,
                key=args.key,
                since=args.since,
                until=args.until,
                uptime_target=args.uptime_target,
                latency_threshold=args.latency_threshold,
                latency_target=args.latency_target,
            )
    except StoreError as exc:
        return print_error(str(exc))
    if args.format == "json":
        document = report_json(
            reports,
            key=args.key,
            latency_threshold=args.latency_threshold,
            uptime_target=args.uptime_target,
            latency_target=args.latency_target,
            since=args.since.isoformat() if args.since else None,
            until=args.until.isoformat() if args.until else None,
        )
        print(json.dumps(document, indent=2))
    elif not reports:
        hint = ", ".join(repr(k) for k in known_keys[:5]) or "none"
        text = f"no events with key {args.key!r} in {args.db} (keys stored: {hint})"
        print(printable(text))
    else:
        table = format_table(
            reports,
            key=args.key,
            uptime_target=args.uptime_target,
            latency_threshold=args.latency_threshold,
            latency_target=args.latency_target,
        )
        print(table)
    sys.stdout.flush()
    return 0
