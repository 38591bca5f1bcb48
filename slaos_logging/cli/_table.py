"""``report``'s figures per organization, and their plain-text table within 80 columns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._terminal import printable

__all__ = ["OrgReport", "format_table"]


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
