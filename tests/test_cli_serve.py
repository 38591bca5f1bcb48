"""The local slaOS-compatible receiver: contract, storage, concurrency, key hygiene, CLI."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from slaos_logging._endpoint import is_loopback
from slaos_logging.cli import main
from slaos_logging.cli._receiver import Receiver, mask_ingest_path

from .cli_support import free_port, wait_until_healthy

KEY = "sekrit-key-123"
REPO_ROOT = Path(__file__).resolve().parents[1]


def event(org: str = "acme", n: int = 0, **fields: Any) -> dict[str, Any]:
    """Build a valid event; ``fields`` override or add top-level fields."""
    base: dict[str, Any] = {
        "organization_id": org,
        "key": "rated_api",
        "timestamp": f"2024-08-15T10:{n // 60 % 60:02d}:{n % 60:02d}Z",
        "values": {"status_code": 200, "took": 0.035},
    }
    base.update(fields)
    return base


@pytest.fixture
def access_log() -> io.StringIO:
    """An in-memory access log."""
    return io.StringIO()


@pytest.fixture
def receiver(tmp_path: Path, access_log: io.StringIO) -> Iterator[Receiver]:
    """A receiver on a free loopback port with a distinctive key."""
    with Receiver(
        db_path=tmp_path / "events.sqlite", ingestion_key=KEY, access_log=access_log
    ) as running:
        yield running


@pytest.fixture
def session() -> Iterator[requests.Session]:
    """One keep-alive session, like the library's transport."""
    with requests.Session() as s:
        yield s


def ingest_url(receiver: Receiver, ingestion_id: str = "dev", key: str = KEY) -> str:
    """The ingest URL for given credentials."""
    return f"{receiver.url}/v1/ingest/{ingestion_id}/{key}"


def test_single_event_object_is_stored(receiver: Receiver, session: requests.Session) -> None:
    """A lone event object (not in a list) is accepted and stored."""
    response = session.post(ingest_url(receiver), json=event())
    assert response.status_code == 200
    assert response.json() == {"stored": 1, "duplicates": 0}
    assert receiver.store.count() == 1


def test_event_list_is_stored_with_its_fields(
    receiver: Receiver, session: requests.Session
) -> None:
    """A list is stored whole and read back with the slaOS field names."""
    batch = [event("acme", 1), event("globex", 2, idempotency_key="req_1")]
    response = session.post(ingest_url(receiver), json=batch)
    assert response.json() == {"stored": 2, "duplicates": 0}
    items = receiver.store.indexed("rated_api")
    assert [i["customer_id"] for i in items] == ["globex", "acme"]
    assert items[0]["idempotency_key"] == "req_1"
    assert items[0]["report_timestamp"] == items[0]["timestamp"] == "2024-08-15T10:00:02Z"
    assert items[0]["ingestion_timestamp"].endswith("Z")
    assert items[1]["values"] == {"status_code": 200, "took": 0.035}


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({k: v for k, v in event().items() if k != "organization_id"}, "organization_id"),
        (event(key=""), "key must be a non-empty string"),
        (event(timestamp="15/08/2024 10:30"), "timestamp is not ISO 8601"),
        (event(timestamp=1723717845), "timestamp must be an ISO 8601 string"),
        (event(values=[1, 2]), "values must be a JSON object"),
        (event(idempotency_key=42), "idempotency_key must be a non-empty string"),
        (event(customer="x"), "unknown field(s): customer"),
        ("not an object", "event must be a JSON object"),
    ],
)
def test_bad_event_rejects_whole_batch_naming_it(
    receiver: Receiver, session: requests.Session, bad: object, reason: str
) -> None:
    """One bad event -> 400 naming its index and reason, and nothing of the batch is stored."""
    response = session.post(ingest_url(receiver), json=[event(n=1), bad, event(n=2)])
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert len(detail) == 1
    assert detail[0]["index"] == 1
    assert reason in detail[0]["reason"]
    assert receiver.store.count() == 0


def test_every_bad_event_is_named(receiver: Receiver, session: requests.Session) -> None:
    """Each bad event of a batch gets its own entry, in order."""
    batch = [event(organization_id=""), event(), event(values=None), event(timestamp="x")]
    response = session.post(ingest_url(receiver), json=batch)
    assert response.status_code == 400
    assert [d["index"] for d in response.json()["detail"]] == [0, 2, 3]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", "not valid JSON"),
        (b'[{"a": NaN}]', "not valid JSON"),
        (b"42", "JSON event object or a list"),
        (b"\xff\xfe\x00", "not valid JSON"),
    ],
)
def test_unusable_body_is_400(
    receiver: Receiver, session: requests.Session, body: bytes, expected: str
) -> None:
    """A body that is not JSON, or not an object or list, is refused with a clear detail."""
    response = session.post(
        ingest_url(receiver), data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert expected in response.json()["detail"]


@pytest.mark.parametrize(("ingestion_id", "key"), [("dev", "wrong-key"), ("other", KEY)])
def test_wrong_credentials_are_401(
    receiver: Receiver, session: requests.Session, ingestion_id: str, key: str
) -> None:
    """A wrong key or a wrong id is refused with 401 and nothing is stored."""
    response = session.post(ingest_url(receiver, ingestion_id, key), json=[event()])
    assert response.status_code == 401
    assert response.json() == {"detail": "invalid ingestion id or key"}
    assert receiver.store.count() == 0


def test_oversized_body_is_413_and_connection_stays_usable(
    tmp_path: Path, session: requests.Session
) -> None:
    """A body over max_body_bytes gets 413, nothing is stored, and later requests succeed."""
    with Receiver(db_path=tmp_path / "small.sqlite", max_body_bytes=400) as small:
        url = f"{small.url}/v1/ingest/dev/dev"
        response = session.post(url, json=[event(n=i) for i in range(10)])
        assert response.status_code == 413
        assert "exceeds 400 bytes" in response.json()["detail"]
        assert session.post(url, json=[event()]).json() == {"stored": 1, "duplicates": 0}
        assert small.store.count() == 1


def test_missing_content_length_is_411(receiver: Receiver) -> None:
    """A chunked body (no Content-Length) is refused with 411."""
    response = requests.post(ingest_url(receiver), data=iter([b"[", b"]"]))
    assert response.status_code == 411


def test_duplicate_idempotency_keys_are_counted_not_stored(
    receiver: Receiver, session: requests.Session
) -> None:
    """Repeated idempotency keys within and across batches are dropped; keyless events are not."""
    first = [event(idempotency_key="a"), event(idempotency_key="a"), event(), event()]
    assert session.post(ingest_url(receiver), json=first).json() == {
        "stored": 3,
        "duplicates": 1,
    }
    second = [event(idempotency_key="a"), event(idempotency_key="b"), event()]
    assert session.post(ingest_url(receiver), json=second).json() == {
        "stored": 2,
        "duplicates": 1,
    }
    assert receiver.store.count() == 5


def test_concurrent_clients_store_everything_exactly_once(receiver: Receiver) -> None:
    """8 threads x 50 batches, sharing one contested key per batch round, store each event once."""
    threads, batches, unique = 8, 50, 4

    def client(t: int) -> int:
        duplicates = 0
        with requests.Session() as s:
            for b in range(batches):
                batch = [event(f"org{t}", b, idempotency_key=f"{t}-{b}-{i}") for i in range(unique)]
                batch.append(event("shared", b, idempotency_key=f"shared-{b}"))
                response = s.post(ingest_url(receiver), json=batch)
                assert response.status_code == 200
                duplicates += response.json()["duplicates"]
        return duplicates

    with ThreadPoolExecutor(threads) as pool:
        duplicates = sum(pool.map(client, range(threads)))
    assert receiver.store.count() == threads * batches * unique + batches
    assert duplicates == (threads - 1) * batches


def test_health(receiver: Receiver, session: requests.Session) -> None:
    """GET /v1/health answers 200 ok over HTTP/1.1 keep-alive."""
    response = session.get(f"{receiver.url}/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.raw.version == 11
    assert response.headers.get("Connection", "").lower() != "close"


def test_unknown_paths_are_json_404(receiver: Receiver, session: requests.Session) -> None:
    """Unknown routes and methods answer 404 with a JSON body."""
    for method, path in [("GET", "/nope"), ("POST", "/v1/health"), ("PUT", "/v1/ingest/dev/x")]:
        response = session.request(method, receiver.url + path, data=b"{}")
        assert response.status_code == 404
        assert response.json() == {"detail": "Not Found"}


def test_indexed_slis_read_back(receiver: Receiver, session: requests.Session) -> None:
    """Read-back is newest first, honours limit, key and customer_id, and needs the key."""
    batch = [event("acme", n) for n in (5, 1, 9)] + [event("globex", 7)]
    batch.append(event("acme", 8, key="other_key"))
    session.post(ingest_url(receiver), json=batch)
    url = ingest_url(receiver) + "/indexed-slis"
    items = session.get(url, params={"key": "rated_api"}).json()
    assert [i["timestamp"][-3:] for i in items] == ["09Z", "07Z", "05Z", "01Z"]
    limited = session.get(url, params={"key": "rated_api", "limit": "2"}).json()
    assert [i["timestamp"][-3:] for i in limited] == ["09Z", "07Z"]
    acme = session.get(url, params={"key": "rated_api", "customer_id": "acme"}).json()
    assert {i["customer_id"] for i in acme} == {"acme"} and len(acme) == 3
    assert session.get(url, params={"limit": "x"}).status_code == 400
    wrong = session.get(ingest_url(receiver, key="nope") + "/indexed-slis", params={"key": "k"})
    assert wrong.status_code == 401


def test_access_log_never_contains_the_key(
    receiver: Receiver, session: requests.Session, access_log: io.StringIO
) -> None:
    """Every request path is logged with the key masked, even in a malformed request line."""
    session.post(ingest_url(receiver), json=[event()] * 3)
    session.post(ingest_url(receiver, key=KEY + "x"), json=[event()])
    session.get(ingest_url(receiver) + "/indexed-slis?key=rated_api")
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=5) as raw:
        raw.sendall(f"BROKEN /v1/ingest/dev/{KEY} HTTP/1.1 extra\r\n\r\n".encode())
        assert raw.recv(65536).startswith(b"HTTP/1.1 400")
    log = access_log.getvalue()
    assert "POST /v1/ingest/dev/*** 200 stored=3 duplicates=0" in log
    assert "GET /v1/ingest/dev/***/indexed-slis 200" in log
    assert "401" in log and "400" in log
    assert KEY not in log
    assert KEY not in repr(receiver)


def test_mask_ingest_path() -> None:
    """The key segment is masked wherever an ingest path appears in text."""
    text = f"'POST http://h:1/v1/ingest/dev/{KEY}/indexed-slis?key=a' and {KEY}"
    masked = mask_ingest_path(text, KEY)
    assert KEY not in masked
    assert "/v1/ingest/dev/***/indexed-slis?key=a" in masked


def test_loopback_detection() -> None:
    """Only loopback hosts count as local (others trigger the serve warning)."""
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.4", "example.com", ""))


def test_serve_reports_port_in_use(
    receiver: Receiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Serving on a taken port fails with one error line and exit code 1."""
    argv = ["serve", "--port", str(receiver.port), "--db", str(tmp_path / "b.sqlite"), "--quiet"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("slaos-logging: error: cannot listen on 127.0.0.1:")


def test_serve_command_end_to_end(tmp_path: Path) -> None:
    """`python -m slaos_logging serve` stores events, exits 0 on SIGTERM, never shows the key."""
    port = free_port()
    db = tmp_path / "e2e.sqlite"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, "-m", "slaos_logging", "serve", "--port", str(port), "--db", str(db)]
    proc = subprocess.Popen(
        [*cmd, "--ingestion-key", KEY],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_healthy(base, proc)
        with requests.Session() as s:
            response = s.post(f"{base}/v1/ingest/dev/{KEY}", json=[event(n=i) for i in range(3)])
            assert response.json() == {"stored": 3, "duplicates": 0}
            assert s.post(f"{base}/v1/ingest/dev/wrong", json=[]).status_code == 401
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert out.strip() == f"slaos-logging receiver listening on {base} (db: {db})"
    assert "POST /v1/ingest/dev/*** 200 stored=3" in err
    assert KEY not in out + err
    assert "Traceback" not in err


def test_cli_frame_help_version_and_usage(capsys: pytest.CaptureFixture[str]) -> None:
    """--version and --help exit 0 for every command; no command is a usage error (2)."""
    from slaos_logging._version import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"slaos-logging {__version__}"
    for command in ("serve", "report"):
        assert main([command, "--help"]) == 0
        assert f"usage: slaos-logging {command}" in capsys.readouterr().out
    assert main([]) == 2
    assert main(["serve", "--port", "70000"]) == 2
