"""`slaos-logging check`: each step's verdict against real loopback servers, key never shown."""

from __future__ import annotations

import email.utils
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from urllib3.exceptions import MaxRetryError

from slaos_logging.cli import main
from slaos_logging.cli._check import CHECK_KEY
from slaos_logging.cli._connection import explain_error
from slaos_logging.cli._receiver import Receiver

KEY = "check-test-key-8086"
ENV_VARS = ("SLAOS_HOST", "SLAOS_INGESTION_ID", "SLAOS_INGESTION_KEY", "SLAOS_KEY")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SLAOS_* variable of the developer's shell leaks into a test."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    """A receiver on a free loopback port."""
    with Receiver(db_path=tmp_path / "events.sqlite", ingestion_key=KEY) as running:
        yield running


def check(host: str, *args: str, key: str = KEY) -> int:
    """Run `check` in-process."""
    return main(["check", "--host", host, "--ingestion-id", "dev", "--ingestion-key", key, *args])


def lines(out: str) -> dict[str, str]:
    """Step name -> the rest of its line."""
    steps = {}
    for line in out.splitlines():
        if len(line) > 15 and line[14] == " ":
            steps[line[:14].strip()] = line[15:]
    return steps


def test_all_steps_pass_and_the_test_event_is_indexed(
    receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """Against a healthy receiver every step is OK, exit 0, and the event really is stored."""
    assert check(receiver.url, "--send-test-event") == 0
    out, err = capsys.readouterr()
    steps = lines(out)
    for step in ("dns", "health", "clock", "credentials", "test event", "indexed"):
        assert steps[step].startswith("OK "), out
    assert steps["ingestion key"].strip() == "*** (from --ingestion-key)"
    assert out.splitlines()[-1] == "all checks passed"
    [item] = receiver.store.indexed(CHECK_KEY)
    assert item["customer_id"] == CHECK_KEY
    assert item["idempotency_key"] in steps["test event"]
    assert KEY not in out + err


def test_settings_come_from_the_environment(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without arguments the SLAOS_* variables are used, and their sources shown."""
    monkeypatch.setenv("SLAOS_HOST", receiver.url)
    monkeypatch.setenv("SLAOS_INGESTION_ID", "dev")
    monkeypatch.setenv("SLAOS_INGESTION_KEY", KEY)
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    steps = lines(out)
    assert steps["host"].strip() == f"{receiver.url} (from SLAOS_HOST)"
    assert steps["ingestion key"].strip() == "*** (from SLAOS_INGESTION_KEY)"
    assert "add --send-test-event" in out.splitlines()[-1]
    assert KEY not in out


def test_wrong_key_is_a_credentials_failure(
    receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong key: the 401 is explained on one line, exit 1, neither key printed."""
    wrong = "wrong-key-1234567"
    assert check(receiver.url, "--send-test-event", key=wrong) == 1
    out, err = capsys.readouterr()
    steps = lines(out)
    assert steps["health"].startswith("OK ")
    assert steps["credentials"].startswith("FAIL slaOS refused the ingestion id or key (401")
    assert "--ingestion-key" in steps["credentials"]
    assert "test event" not in steps
    assert out.splitlines()[-1] == "1 check failed"
    assert wrong not in out + err
    assert KEY not in out + err
    assert receiver.store.count() == 0


def test_closed_port_is_connection_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing listening: one 'refused' line, exit 1."""
    with Receiver(db_path=tmp_path / "gone.sqlite") as gone:
        url = gone.url
    assert check(url) == 1
    out = capsys.readouterr().out
    assert lines(out)["health"].startswith("FAIL connection refused by 127.0.0.1:")
    assert "credentials" not in lines(out)


def test_https_to_a_plain_http_port_is_a_tls_error(
    receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bare host means https; a plain-HTTP port answers no TLS: say so, no traceback."""
    assert check(f"127.0.0.1:{receiver.port}") == 1
    out, err = capsys.readouterr()
    health = lines(out)["health"]
    assert health.startswith("FAIL TLS handshake failed")
    assert f"use --host http://127.0.0.1:{receiver.port}" in health
    assert "Traceback" not in out + err


def test_missing_key_fails_but_connectivity_is_still_checked(
    receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """No key anywhere: a settings failure naming the fix; the health step still runs."""
    assert main(["check", "--host", receiver.url, "--ingestion-id", "dev"]) == 1
    steps = lines(capsys.readouterr().out)
    assert steps["settings"] == (
        "FAIL no ingestion key: pass --ingestion-key or set SLAOS_INGESTION_KEY"
    )
    assert steps["health"].startswith("OK ")


class _SkewedHandler(BaseHTTPRequestHandler):
    """Answers every GET with 200 ``[]`` and a Date header five minutes in the past."""

    def date_time_string(self, timestamp: float | None = None) -> str:
        return email.utils.formatdate(time.time() - 300, usegmt=True)

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"[]")

    def log_message(self, format: str, *args: Any) -> None:
        """Silence."""


def test_clock_skew_is_a_warning(capsys: pytest.CaptureFixture[str]) -> None:
    """A server clock 300 s behind: a WARN line naming the skew, and still exit 0."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SkewedHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        code = check(f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert code == 0
    clock = lines(capsys.readouterr().out)["clock"]
    assert clock.startswith("WARN this machine's clock is 30")
    assert "s ahead of the server's" in clock


def test_certificate_failure_explains_the_ca_bundle() -> None:
    """A verification failure (as requests wraps it) points at REQUESTS_CA_BUNDLE."""
    cause = ssl.SSLCertVerificationError(1, "certificate verify failed")
    cause.verify_message = "self-signed certificate"
    wrapped = requests.exceptions.SSLError(MaxRetryError(None, "/v1/health", cause))  # type: ignore[arg-type]
    text = explain_error(wrapped, "api.example:443", 10.0)
    assert text.startswith("TLS certificate verification failed for api.example:443")
    assert "(self-signed certificate)" in text
    assert "REQUESTS_CA_BUNDLE" in text
