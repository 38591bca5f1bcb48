"""Missing credentials disable the handler; what the user must see reaches stderr once."""

from __future__ import annotations

import logging
import threading

import pytest

from slaos_logging import SlaOSHandler, SlaOSWorker

from .conftest import KEY
from .deploy_support import child_env, run_script
from .server import RecordingServer, Reply


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SLAOS_* variable is set."""
    for name in ("SLAOS_INGESTION_ID", "SLAOS_INGESTION_KEY", "SLAOS_ENABLED", "SLAOS_SPOOL_DIR"):
        monkeypatch.delenv(name, raising=False)


def _senders() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "slaos-logging-sender")


def test_no_credentials_builds_a_disabled_handler(no_env: None, app_logger: logging.Logger) -> None:
    """Neither credential: the handler is built, enabled is False, records count skipped."""
    before = _senders()
    handler = SlaOSHandler(key="rated_api", organization_id="acme")
    app_logger.addHandler(handler)
    for _ in range(3):
        app_logger.info("request_finished", extra={"took": 0.1})
    assert handler.enabled is False
    assert handler.flush() is True
    stats = handler.stats()
    assert (stats["skipped"], stats["enqueued"], stats["requests"]) == (3, 0, 0)
    assert _senders() == before
    handler.close()


@pytest.mark.parametrize("value", ["0", "false", "False"])
def test_slaos_enabled_false_turns_off_even_with_credentials(
    value: str, server: RecordingServer, monkeypatch: pytest.MonkeyPatch, app_logger: logging.Logger
) -> None:
    """SLAOS_ENABLED=0/false disables a handler that has credentials: nothing is sent."""
    monkeypatch.setenv("SLAOS_ENABLED", value)
    handler = SlaOSHandler(host=server.url, ingestion_id="ingest-id", ingestion_key=KEY, key="k")
    app_logger.addHandler(handler)
    app_logger.info("request_finished", extra={"organization_id": "acme"})
    handler.close()
    assert handler.enabled is False
    assert handler.stats()["skipped"] == 1
    assert server.requests == []


def test_enabled_argument_wins_over_environment(
    server: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """enabled=False turns a handler off; enabled=True turns it on despite SLAOS_ENABLED=0."""
    monkeypatch.setenv("SLAOS_ENABLED", "0")
    on = SlaOSHandler(host=server.url, ingestion_id="i", ingestion_key=KEY, enabled=True)
    monkeypatch.delenv("SLAOS_ENABLED")
    off = SlaOSHandler(host=server.url, ingestion_id="i", ingestion_key=KEY, enabled=False)
    assert (on.enabled, off.enabled) == (True, False)
    on.close()
    off.close()


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        ({"ingestion_id": "i"}, "SLAOS_INGESTION_KEY"),
        ({"ingestion_key": KEY}, "SLAOS_INGESTION_ID"),
    ],
)
def test_exactly_one_credential_missing_is_an_error(
    no_env: None, given: dict[str, str], missing: str
) -> None:
    """One credential without the other is a misconfiguration: ValueError naming it."""
    with pytest.raises(ValueError, match=missing):
        SlaOSHandler(**given)
    with pytest.raises(ValueError, match=missing):
        SlaOSWorker(None, **given)


def test_worker_without_credentials_is_disabled(no_env: None) -> None:
    """SlaOSWorker follows the same rules: no credentials, no thread, events skipped."""
    before = _senders()
    worker = SlaOSWorker()
    event = {"organization_id": "acme", "key": "rated_api", "values": {"took": 1}}
    assert worker.add_event(event) is False
    assert worker.enabled is False
    assert worker.stats()["skipped"] == 1
    assert _senders() == before
    worker.close()


def test_disabled_warning_reaches_stderr_once() -> None:
    """Without credentials, one warning naming both variables reaches stderr, once per process."""
    code = """
        import logging
        from slaos_logging import SlaOSHandler, SlaOSWorker
        SlaOSHandler()
        SlaOSHandler()
        SlaOSWorker()
        logging.getLogger().warning("app still logs")
    """
    done = run_script(code, child_env(), timeout=30)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "SLAOS_INGESTION_ID" in line]
    assert len(lines) == 1, done.stderr
    assert "SLAOS_INGESTION_KEY" in lines[0]
    done = run_script(code, child_env(SLAOS_ENABLED="false"), timeout=30)
    assert "SLAOS_INGESTION" not in done.stderr


REFUSED = """
    import logging, sys
    from slaos_logging import SlaOSHandler
    if sys.argv[-1] == "configured":
        logging.basicConfig(format="configured: %(message)s")
    handler = SlaOSHandler(max_retries=0)
    log = logging.getLogger("app")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    for _ in range(3):
        log.info("request_finished", extra={"organization_id": "acme"})
        handler.flush(5)
    print(handler.stats()["failed"])
"""


@pytest.mark.parametrize("setup", ["bare", "configured"])
def test_refused_credentials_reach_stderr_once(server: RecordingServer, setup: str) -> None:
    """A 401 is printed once to stderr, whether or not the app gave our logger a handler."""
    server.responder = lambda body: Reply(status=401, body=b'{"detail":"bad key"}')
    code = REFUSED.replace('sys.argv[-1] == "configured"', repr(setup == "configured"))
    done = run_script(code, child_env(server), timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "3"
    lines = [line for line in done.stderr.splitlines() if "refused the credentials" in line]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("configured: ") == (setup == "configured")
    assert KEY not in done.stderr
