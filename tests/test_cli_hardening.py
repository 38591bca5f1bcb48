"""The security review's attacks on the command line, each one failing.

Redirects in ``check``, terminal escape sequences in every command's output, an overflowing
line in ``send``, and ``serve``'s credentials kept off the command line.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from slaos_logging.cli import main
from slaos_logging.cli._receiver import Receiver
from slaos_logging.cli._report import format_table
from slaos_logging.cli._store import EventStore, StoredEvent
from slaos_logging.cli._terminal import printable
from tests.cli_support import free_port, wait_until_healthy
from tests.server import RecordingServer, Reply

KEY = "sk_test_LEAKME_9f8e7d6c5b4a"
ESC = "\x1b"
EVIL = "\x1b]0;pwned\x07\x1b[2J\x9b31m\u202eevil\r\nsplit\x7f"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SLAOS_* variable of the developer's shell leaks into a test."""
    for name in ("SLAOS_HOST", "SLAOS_INGESTION_ID", "SLAOS_INGESTION_KEY", "SLAOS_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def target() -> Iterator[RecordingServer]:
    """The host a redirect points to: it must never see a request."""
    srv = RecordingServer().start()
    yield srv
    srv.stop()


def raw(text: str) -> bool:
    """Whether ``text`` holds any raw control character the escaping should have caught."""
    return any((ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) <= 0x9F for c in text) or (
        "\u202e" in text
    )


def test_printable_escapes_c0_c1_del_and_bidi() -> None:
    """One helper: every control character becomes a visible escape, the rest is untouched."""
    assert printable("a\x1b[2Jb\x00\x7f\x9b\u202ec\t\n") == (
        "a\\x1b[2Jb\\x00\\x7f\\x9b\\u202ec\\x09\\x0a"
    )
    assert printable("acme é ü 日本") == "acme é ü 日本"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_check_never_follows_a_redirect(
    server: RecordingServer,
    target: RecordingServer,
    status: int,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A 3xx fails naming the Location host only; nothing reaches that host; exit 1."""
    location = f"{target.url}/v1/ingest/dev/{KEY}/indexed-slis"
    server.responder = lambda body: Reply(status=status, headers={"Location": location})
    argv = ["check", "--host", server.url, "--ingestion-id", "dev", "--ingestion-key", KEY]
    code = main([*argv, "--send-test-event", "--wait", "1"])
    out, err = capsys.readouterr()
    assert code == 1
    assert target.requests == []
    assert server.requests, "check sent nothing at all"
    target_host = target.url.removeprefix("http://")
    assert f"answered {status}, a redirect to {target_host}:" in out
    assert "all checks passed" not in out
    assert KEY not in out + err and "indexed-slis" not in out.replace("read-back", "")


def test_check_escapes_the_server_body(
    server: RecordingServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A server's answer with escape sequences is shown escaped, on one line."""
    server.responder = lambda body: Reply(status=500, body=EVIL.encode())
    assert main(["check", "--host", server.url, "--ingestion-id", "i", "--ingestion-key", KEY]) == 1
    out, _ = capsys.readouterr()
    assert not raw(out)
    assert "\\x1b]0;pwned" in out and "\\u202eevil" in out


def test_send_escapes_server_messages_and_has_its_own_wrong_key_words(
    server: RecordingServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A refused key: one escaped line in the CLI's words, no stats(), no key."""
    server.responder = lambda body: Reply(status=401, body=json.dumps({"detail": EVIL}).encode())
    log = tmp_path / "app.log"
    log.write_text(json.dumps({"message": "m", "organization_id": "o", "key": "k"}) + "\n")
    argv = ["send", str(log), "--host", server.url, "--ingestion-id", "i", "--ingestion-key", KEY]
    code = main([*argv, "--no-progress"])
    _, err = capsys.readouterr()
    assert code == 1
    assert not raw(err)
    assert "slaOS refused the ingestion id or key (HTTP 401" in err
    assert "--ingestion-key" in err and "stats()" not in err and KEY not in err
    assert "1 event was not delivered" in err


def test_send_escapes_rejected_events(
    server: RecordingServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An event the server rejects is named in the log with its escape sequences escaped."""
    server.responder = lambda body: Reply(status=400, body=EVIL.encode())
    log = tmp_path / "app.log"
    log.write_text(json.dumps({"message": "m", "organization_id": EVIL, "key": "k"}) + "\n")
    argv = ["send", str(log), "--host", server.url, "--ingestion-id", "i", "--ingestion-key", KEY]
    assert main([*argv, "--no-progress"]) == 1
    _, err = capsys.readouterr()
    assert "rejected" in err and not raw(err)


def test_send_dry_run_json_stays_exact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--dry-run's JSON carries the organization id exactly as it was."""
    log = tmp_path / "app.log"
    log.write_text(json.dumps({"message": "m", "organization_id": EVIL, "key": "k"}) + "\n")
    assert main(["send", str(log), "--dry-run"]) == 0
    out, _ = capsys.readouterr()
    assert json.loads(out)["organization_id"] == EVIL


@pytest.mark.parametrize(
    "line",
    [
        {"created": 1e300},
        {"created": -1e300},
        {"created": 253402300800},
        {"asctime": "9999-12-31 23:59:59,999", "created": 1e20},
    ],
)
def test_send_counts_an_overflowing_line_as_malformed(
    line: dict[str, object], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A time beyond a date's range: malformed with its line number, no exception text."""
    log = tmp_path / "app.log"
    good = {"message": "m", "organization_id": "o", "key": "k", "created": 1_700_000_000}
    log.write_text("\n".join(json.dumps(x) for x in (good, {**good, **line}, good)) + "\n")
    with Receiver(db_path=tmp_path / "events.sqlite", ingestion_key=KEY) as receiver:
        argv = ["send", str(log), "--host", receiver.url, "--ingestion-id", "dev"]
        code = main([*argv, "--ingestion-key", KEY, "--no-progress"])
        stored = receiver.store.count()
    _, err = capsys.readouterr()
    assert code == 0 and stored == 2
    assert "read 3, sent 2, skipped 0, malformed 1," in err
    assert f"1 line skipped ({log}:2)" in err
    assert "Error" not in err and "Traceback" not in err
    assert main(["send", str(log), "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 2 and "malformed 1" in err and "Error" not in err


def test_send_summary_grammar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """One line without a timestamp is "1 line ... it was", not "1 lines ... they were"."""
    log = tmp_path / "app.log"
    log.write_text(json.dumps({"message": "m", "organization_id": "o", "key": "k"}) + "\n")
    assert main(["send", str(log), "--dry-run"]) == 0
    _, err = capsys.readouterr()
    assert "note: 1 line had no timestamp, created or asctime: it was stamped" in err


def test_report_table_escapes_org_ids_and_json_is_exact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An org id with ESC and a newline stays on its row, escaped; --format json is exact."""
    db = tmp_path / "events.sqlite"
    with EventStore(db) as store:
        values = {"status_code": 200, "took": 0.01}
        store.insert([StoredEvent(EVIL, "rated_api", "2026-01-01T00:00:00Z", 1.7e9, values)])
        store.insert([StoredEvent("acme", EVIL, "2026-01-01T00:00:00Z", 1.7e9, {})])
    assert main(["report", "--db", str(db)]) == 0
    out, _ = capsys.readouterr()
    assert not raw(out)
    rows = out.splitlines()
    assert len(rows) == 5 and rows[4].startswith("\\x1b]0;pwned") and rows[4].endswith("met")
    assert all(len(row) <= 80 for row in rows)
    assert main(["report", "--db", str(db), "--key", "nope"]) == 0
    out, _ = capsys.readouterr()
    assert not raw(out) and "\\x1b]0;pwned" in out
    assert main(["report", "--db", str(db), "--format", "json"]) == 0
    out, _ = capsys.readouterr()
    assert json.loads(out)["organizations"][0]["organization_id"] == EVIL


def test_format_table_with_wide_targets_fits_80_columns() -> None:
    """Odd thresholds and long ids still fit 80 columns."""
    with EventStore(":memory:") as store:
        store.insert([StoredEvent("o" * 200, "k", "2026-01-01T00:00:00Z", 1.7e9, {"took": 1})])
        from slaos_logging.cli._report import compute_report

        reports = compute_report(store, key="k", uptime_target=99.995, latency_target=99.995)
    table = format_table(
        reports, key="k" * 100, uptime_target=99.995, latency_threshold=0.125, latency_target=99.995
    )
    assert all(len(line) <= 80 for line in table.splitlines())
    assert "99.995%" in table and "0.125 s" in table


def test_serve_access_log_escapes_the_request_line(tmp_path: Path) -> None:
    """A request line with escape sequences is logged escaped (http.server's own rule)."""
    log = io.StringIO()
    with Receiver(db_path=tmp_path / "e.sqlite", ingestion_key=KEY, access_log=log) as receiver:
        with socket.create_connection(("127.0.0.1", receiver.port), timeout=10) as sock:
            sock.sendall(b"GET /\x1b]0;pwned\x07\x1b[2J\x9bx HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 404")
        with socket.create_connection(("127.0.0.1", receiver.port), timeout=10) as sock:
            sock.sendall(b"\x1b[2J\x1b]0;x\x07 / HTTP/1.1\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 ")
        requests.get(f"{receiver.url}/v1/ingest/dev/{KEY}/indexed-slis", timeout=10)
    text = log.getvalue()
    assert not raw(text)
    assert "\\x1b]0;pwned\\x07\\x1b[2J" in text and KEY not in text


def serve(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    """Start `serve` as a real process on a free port; return it and its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "slaos_logging", "serve", "--port", str(port), *args]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, proc)
    except BaseException:
        proc.kill()
        proc.communicate(timeout=30)
        raise
    return proc, base


def stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """Stop `serve` with SIGTERM and return its output."""
    proc.terminate()
    out, err = proc.communicate(timeout=30)
    return out, err


def accepted(base: str, ingestion_id: str, key: str) -> int:
    """Status of one valid event posted with these credentials."""
    event = {"organization_id": "o", "key": "k", "timestamp": "2026-01-01T00:00:00Z", "values": {}}
    url = f"{base}/v1/ingest/{ingestion_id}/{key}"
    return requests.post(url, json=[event], timeout=10).status_code


def test_serve_takes_credentials_from_the_environment(tmp_path: Path) -> None:
    """SLAOS_INGESTION_ID / SLAOS_INGESTION_KEY set what serve accepts; dev/dev is refused."""
    env = {"SLAOS_INGESTION_ID": "org-7", "SLAOS_INGESTION_KEY": KEY}
    proc, base = serve("--db", str(tmp_path / "e.sqlite"), env=env)
    try:
        assert accepted(base, "org-7", KEY) == 200
        assert accepted(base, "dev", "dev") == 401
    finally:
        out, err = stop(proc)
    assert KEY not in out + err


def test_serve_takes_the_key_from_a_file(tmp_path: Path) -> None:
    """--ingestion-key-file sets the key (first line, stripped); a loose mode is warned about."""
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    key_file.chmod(0o644)
    env = {"SLAOS_INGESTION_KEY": "from-env-ignored"}
    proc, base = serve(
        "--db", str(tmp_path / "e.sqlite"), "--ingestion-key-file", str(key_file), env=env
    )
    try:
        assert accepted(base, "dev", KEY) == 200
        assert accepted(base, "dev", "from-env-ignored") == 401
    finally:
        out, err = stop(proc)
    assert "readable by other users" in err and KEY not in out + err


@pytest.mark.parametrize(
    ("content", "expected"), [("", "is empty"), ('sk"bad\n', "ingestion_key may only contain")]
)
def test_serve_refuses_an_unusable_key_file(
    tmp_path: Path, content: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty key file or a key outside the URL-safe set: exit 2, one line, no key shown."""
    key_file = tmp_path / "key"
    key_file.write_text(content)
    assert main(["serve", "--ingestion-key-file", str(key_file), "--port", "0"]) == 2
    _, err = capsys.readouterr()
    assert expected in err and 'sk"bad' not in err


def test_serve_help_warns_about_ps_and_states_the_limits(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--help says a key on the command line is visible in ps, and what the caps are."""
    assert main(["serve", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "visible to every user of this machine (ps)" in text
    assert "--ingestion-key-file" in text and "SLAOS_INGESTION_KEY" in text
    assert "--max-events N a request with more events gets 413" in text and "10000" in text
    assert "--max-connections" in text
