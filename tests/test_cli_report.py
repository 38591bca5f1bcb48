"""The SLO report: exact percentages, SLA verdicts, time windows, output formats, errors."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from slaos_logging.cli import main
from slaos_logging.cli._http import validate_event
from slaos_logging.cli._report import compute_report
from slaos_logging.cli._store import EventStore, StoredEvent

LONG_ORG = "org-" + "x" * 120


def stored(org: str, second: int, values: dict[str, Any], key: str = "rated_api") -> StoredEvent:
    """A validated event at 2024-08-15T10:00:00Z + ``second``."""
    hours, rest = divmod(second, 3600)
    timestamp = f"2024-08-15T{10 + hours:02d}:{rest // 60:02d}:{rest % 60:02d}Z"
    event, reason = validate_event(
        {"organization_id": org, "key": key, "timestamp": timestamp, "values": values}
    )
    assert event is not None, reason
    return event


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A database with three orgs of known health, at 10:00Z (acme, bigcorp) and 11:00Z (slowco).

    - acme: 200 events, one 503 -> uptime exactly 99.5 % (met, >=); a 404 counts as good;
      all fast -> latency 100 %.
    - bigcorp: 200 with status (two 5xx -> 99.0 %, breach) plus 3 without status_code (one a
      string, one a bool), all 203 fast -> latency 100 %.
    - slowco: 100 with took: 95 fast, 4 slow, 1 exactly at the threshold -> 95.0 % (breach,
      strictly >); plus 2 without took; all 102 status 200 -> uptime 100 %.
    - Events with another key, which must not count.
    """
    events = [stored("acme", i, {"status_code": 200, "took": 0.05}) for i in range(197)]
    events += [stored("acme", 197, {"status_code": 503, "took": 0.05})]
    events += [stored("acme", 198 + i, {"status_code": 404, "took": 0.05}) for i in range(2)]
    events += [stored("bigcorp", i, {"status_code": 200, "took": 0.01}) for i in range(198)]
    events += [stored("bigcorp", 198, {"status_code": 500, "took": 0.01})]
    events += [stored("bigcorp", 199, {"status_code": 599, "took": 0.01})]
    events += [stored("bigcorp", 200, {"took": 0.01}), stored("bigcorp", 201, {"took": 0.01})]
    events += [stored("bigcorp", 202, {"status_code": "500", "took": 0.01})]
    slow = [0.1] * 95 + [0.5] * 4 + [0.2]
    events += [
        stored("slowco", 3600 + i, {"status_code": 200, "took": t}) for i, t in enumerate(slow)
    ]
    events += [
        stored("slowco", 3700, {"status_code": 200}),
        stored("slowco", 3701, {"status_code": 200, "took": True}),
    ]
    events += [stored("acme", i, {"status_code": 503, "took": 9.0}, key="other") for i in range(50)]
    path = tmp_path / "report.sqlite"
    with EventStore(path) as store:
        assert store.insert(events) == (len(events), 0)
    return path


EXPECTED = [
    {
        "organization_id": "acme",
        "events": 200,
        "uptime_pct": 99.5,
        "uptime_met": True,
        "latency_pct": 100.0,
        "latency_met": True,
        "missing_status_code": 0,
        "missing_took": 0,
    },
    {
        "organization_id": "bigcorp",
        "events": 203,
        "uptime_pct": 99.0,
        "uptime_met": False,
        "latency_pct": 100.0,
        "latency_met": True,
        "missing_status_code": 3,
        "missing_took": 0,
    },
    {
        "organization_id": "slowco",
        "events": 102,
        "uptime_pct": 100.0,
        "uptime_met": True,
        "latency_pct": 95.0,
        "latency_met": False,
        "missing_status_code": 0,
        "missing_took": 2,
    },
]


def test_compute_report_exact_figures(db: Path) -> None:
    """Percentages, SLA verdicts (>= for uptime, > for latency) and missing counts are exact."""
    reports = compute_report(db)
    assert [r.to_dict() for r in reports] == EXPECTED
    bigcorp = reports[1]
    assert (bigcorp.uptime_good, bigcorp.uptime_total) == (198, 200)


def test_compute_report_accepts_an_open_store_and_other_thresholds(db: Path) -> None:
    """Targets and the latency threshold are parameters; an open store works as the source."""
    with EventStore(db, create=False) as store:
        reports = compute_report(store, uptime_target=99.0, latency_threshold=0.3)
    by_org = {r.organization_id: r for r in reports}
    assert by_org["bigcorp"].uptime_met is True
    assert by_org["slowco"].latency_pct == pytest.approx(96.0)
    assert by_org["slowco"].latency_met is True


def test_compute_report_time_window(db: Path) -> None:
    """since is inclusive, until exclusive, and offsets are honoured."""
    late = compute_report(db, since="2024-08-15T13:00:00+02:00")
    assert [r.organization_id for r in late] == ["slowco"]
    early = compute_report(db, until="2024-08-15T11:00:00Z")
    assert [r.organization_id for r in early] == ["acme", "bigcorp"]
    first_second = compute_report(db, since="2024-08-15T10:00:00Z", until="2024-08-15T10:00:01Z")
    assert [(r.organization_id, r.events) for r in first_second] == [("acme", 1), ("bigcorp", 1)]


def test_report_json_output(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`report --format json` prints the documented document with rounded percentages."""
    assert main(["report", "--db", str(db), "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["key"] == "rated_api"
    assert document["latency_threshold"] == 0.2
    assert document["organizations"] == EXPECTED


def test_report_json_window_and_nulls(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--since filters the JSON output; an org with no measurable field reports null."""
    with EventStore(db) as store:
        store.insert([stored("empty", 3800, {"other": 1})])
    assert main(["report", "--db", str(db), "--format", "json", "--since", "2024-08-15T11:00"]) == 0
    orgs = json.loads(capsys.readouterr().out)["organizations"]
    assert [o["organization_id"] for o in orgs] == ["empty", "slowco"]
    assert orgs[0]["uptime_pct"] is None and orgs[0]["uptime_met"] is None
    assert orgs[0]["latency_pct"] is None and orgs[0]["missing_took"] == 1


def test_report_table_fits_80_columns(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The table shows verdicts per org, truncates long ids and never exceeds 80 columns."""
    with EventStore(db) as store:
        store.insert([stored(LONG_ORG, 5, {"status_code": 200, "took": 0.01})])
    assert main(["report", "--db", str(db)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert all(len(line) <= 80 for line in lines)
    rows = {line.split()[0]: line.split() for line in lines[2:] if not line.startswith("note")}
    assert rows["acme"] == ["acme", "200", "99.50%", "met", "100.00%", "met"]
    assert rows["bigcorp"] == ["bigcorp", "203", "99.00%", "BREACH", "100.00%", "met"]
    assert rows["slowco"] == ["slowco", "102", "100.00%", "met", "95.00%", "BREACH"]
    assert any(name.endswith("...") and LONG_ORG.startswith(name[:-3]) for name in rows)
    assert lines[1] == "uptime: share of non-5xx status codes; SLA met at >= 99.5%"
    assert lines[2] == "latency: share faster than 0.2 s; SLA met above 95%"
    assert lines[3].split() == [
        "organization",
        "events",
        *["uptime", "uptime", "SLA", "latency", "latency", "SLA"],
    ]
    assert any("bigcorp: 3 events without status_code" in line for line in lines)


def test_report_unknown_key_says_so(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A key with no events prints a hint listing the stored keys and exits 0."""
    assert main(["report", "--db", str(db), "--key", "nope"]) == 0
    out = capsys.readouterr().out
    assert "no events with key 'nope'" in out and "'rated_api'" in out


@pytest.mark.parametrize("content", [None, b"not a database at all" * 100, "sqlite-no-table"])
def test_report_unusable_db_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | str | None
) -> None:
    """A missing, corrupt or foreign database exits 1 with one line on stderr."""
    path = tmp_path / "db.sqlite"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.close()
    assert main(["report", "--db", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("slaos-logging: error: ")


@pytest.mark.parametrize(
    "args",
    [
        ["--since", "yesterday"],
        ["--until", "2024-13-01"],
        ["--uptime-target", "101"],
        ["--latency-threshold", "0"],
        ["--since", "2024-08-15T11:00:00Z", "--until", "2024-08-15T10:00:00Z"],
    ],
)
def test_report_bad_arguments_exit_2(
    db: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    """Malformed or contradictory options are usage errors (exit 2), not failures."""
    assert main(["report", "--db", str(db), *args]) == 2
    assert "error:" in capsys.readouterr().err
