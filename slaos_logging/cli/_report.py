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
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from . import iso_timestamp, percentage, positive_seconds, print_error
from ._store import EventStore, StoreError, parse_timestamp
from ._terminal import printable

__all__ = ["OrgReport", "add_parser", "compute_report", "format_table", "report_json", "run"]


@dataclass(frozen=True)
class OrgReport:
    """SLO figures for one organization.

    ``events`` counts every event of the key in the window; ``uptime_total`` and
    ``latency_total`` only those with a numeric ``status_code`` / ``took``, of which
    ``uptime_good`` are not 5xx and ``latency_good`` are under the threshold. The
    ``missing_*`` counts are events without the field: neither good nor bad. The uptime SLA
    is met at ``>= uptime_target`` percent, the latency SLA above ``latency_target``.
    """

    organization_id: str
    events: int
    uptime_good: int
    uptime_total: int
    latency_good: int
    latency_total: int
    uptime_target: float
    latency_target: float

    @property
    def missing_status_code(self) -> int:
        """Events without a numeric ``status_code``."""
        return self.events - self.uptime_total

    @property
    def missing_took(self) -> int:
        """Events without a numeric ``took``."""
        return self.events - self.latency_total

    @property
    def uptime_pct(self) -> float | None:
        """Share of non-5xx events in percent, or ``None`` without any status code."""
        return 100.0 * self.uptime_good / self.uptime_total if self.uptime_total else None

    @property
    def uptime_met(self) -> bool | None:
        """Whether uptime meets its SLA (``>=``), or ``None`` without data."""
        pct = self.uptime_pct
        return None if pct is None else pct >= self.uptime_target

    @property
    def latency_pct(self) -> float | None:
        """Share of events faster than the threshold in percent, or ``None`` without data."""
        return 100.0 * self.latency_good / self.latency_total if self.latency_total else None

    @property
    def latency_met(self) -> bool | None:
        """Whether latency meets its SLA (strictly ``>``), or ``None`` without data."""
        pct = self.latency_pct
        return None if pct is None else pct > self.latency_target

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form used by ``report --format json``."""
        uptime, latency = self.uptime_pct, self.latency_pct
        return {
            "organization_id": self.organization_id,
            "events": self.events,
            "uptime_pct": None if uptime is None else round(uptime, 3),
            "uptime_met": self.uptime_met,
            "latency_pct": None if latency is None else round(latency, 3),
            "latency_met": self.latency_met,
            "missing_status_code": self.missing_status_code,
            "missing_took": self.missing_took,
        }


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


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}%"


def _met(value: bool | None) -> str:
    return "-" if value is None else ("met" if value else "BREACH")


def format_table(
    reports: Sequence[OrgReport],
    *,
    key: str,
    uptime_target: float,
    latency_threshold: float,
    latency_target: float,
    width: int = 80,
) -> str:
    """Render the reports as a plain-text table no wider than ``width`` columns.

    Two lines above the table say what each SLO measures and its target; organization ids
    (which come from the events) are shown with control characters escaped.
    """
    if not reports:
        return f"no events with key {printable(repr(key))}"
    header = ["events", "uptime", "uptime SLA", "latency", "latency SLA"]
    cells = [
        [
            str(r.events),
            _pct(r.uptime_pct),
            _met(r.uptime_met),
            _pct(r.latency_pct),
            _met(r.latency_met),
        ]
        for r in reports
    ]
    orgs = [printable(r.organization_id) for r in reports]
    widths = [max(len(header[i]), *(len(row[i]) for row in cells)) for i in range(len(header))]
    room = width - sum(widths) - 2 * len(widths)
    org_width = max(8, min(room, max(len("organization"), *(len(org) for org in orgs))))

    def fit(text: str) -> str:
        return text if len(text) <= width else text[: width - 3] + "..."

    def line(org: str, row: list[str]) -> str:
        if len(org) > org_width:
            org = org[: org_width - 3] + "..."
        parts = [org.ljust(org_width)]
        for i, cell in enumerate(row):
            # Counts and percentages read best right-aligned, verdicts left-aligned.
            parts.append(cell.ljust(widths[i]) if i in (2, 4) else cell.rjust(widths[i]))
        return "  ".join(parts).rstrip()[:width]

    total = sum(r.events for r in reports)
    lines = [
        fit(f"key {printable(repr(key))}: {total} events, {len(reports)} organizations"),
        fit(f"uptime: share of non-5xx status codes; SLA met at >= {uptime_target:g}%"),
        fit(
            f"latency: share faster than {latency_threshold:g} s; SLA met above {latency_target:g}%"
        ),
        line("organization", header),
    ]
    lines.extend(line(org, row) for org, row in zip(orgs, cells, strict=True))
    for org, r in zip(orgs, reports, strict=True):
        if r.missing_status_code or r.missing_took:
            lines.append(
                fit(
                    f"note: {org}: {r.missing_status_code} events without"
                    f" status_code, {r.missing_took} without took (not counted)"
                )
            )
    return "\n".join(lines)


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
