"""SlaOSWorker: the seed example's interface, now queued, batched and non-blocking."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from typing import Any

import pytest

from slaos_logging import SlaOSWorker

from .conftest import KEY
from .server import RecordingServer, Reply


def seed_event(**changes: Any) -> dict[str, Any]:
    """The event of slaOS's example implementation."""
    event: dict[str, Any] = {
        "organization_id": "531ccc57c17a4b418236935e96fb8049",
        "timestamp": "2024-07-02T12:34:56Z",
        "values": {"took": 0.03523564338684082, "status_code": 200},
        "key": "rated_api",
    }
    event.update(changes)
    return event


@pytest.fixture
def workers() -> Iterator[list[SlaOSWorker]]:
    """Workers to close after the test."""
    made: list[SlaOSWorker] = []
    yield made
    for worker in made:
        worker.close()


def _worker(made: list[SlaOSWorker], host: str, **options: Any) -> SlaOSWorker:
    worker = SlaOSWorker(host, "ingest-id", KEY, max_retries=3, retry_delay=5, **options)
    made.append(worker)
    return worker


def test_seed_event_arrives_as_given(server: RecordingServer, workers: list[SlaOSWorker]) -> None:
    """The seed's event is delivered with its fields unchanged and a generated idempotency key."""
    worker = _worker(workers, server.url)
    event = seed_event()
    original = copy.deepcopy(event)
    assert worker.add_event(event) is True
    assert worker.flush(5)
    (sent,) = server.events()
    idem = sent.pop("idempotency_key")
    assert isinstance(idem, str)
    assert idem
    assert sent == original
    assert event == original  # the caller's dict is not modified
    assert server.requests[0].path == f"/v1/ingest/ingest-id/{KEY}"


def test_add_event_does_not_block_on_stalled_server(
    server: RecordingServer, workers: list[SlaOSWorker]
) -> None:
    """add_event returns at once even while the server never answers."""
    server.responder = lambda body: Reply(stall=True)
    worker = _worker(workers, server.url, batch_size=10)
    start = time.monotonic()
    results = [worker.add_event(seed_event(values={"n": i})) for i in range(100)]
    # Waiting on the stalled server would take 30 s; speed itself is for benchmarks/.
    assert time.monotonic() - start < 10, "add_event waited on the stalled server"
    assert all(results)
    assert worker.flush(0.2) is False
    server.responder = None
    server.release.set()
    assert worker.flush(15)
    assert len(server.events()) == 100


def test_events_are_batched(server: RecordingServer, workers: list[SlaOSWorker]) -> None:
    """100 add_event calls and a flush make one request of 100 events."""
    worker = _worker(workers, server.url)
    for i in range(100):
        assert worker.add_event(seed_event(values={"n": i}))
    assert worker.flush(5)
    assert len(server.requests) == 1
    assert [e["values"]["n"] for e in server.requests[0].json()] == list(range(100))
    stats = worker.stats()
    assert stats["sent"] == 100
    assert stats["requests"] == 1


def test_idempotency_keys_kept_or_generated_unique(
    server: RecordingServer, workers: list[SlaOSWorker]
) -> None:
    """A given idempotency_key is kept; events without one get distinct generated keys."""
    worker = _worker(workers, server.url)
    assert worker.add_event(seed_event(idempotency_key="req_abc123"))
    for i in range(50):
        assert worker.add_event(seed_event(values={"n": i}))
    assert worker.flush(5)
    keys = [e["idempotency_key"] for e in server.events()]
    assert keys[0] == "req_abc123"
    generated = keys[1:]
    assert len(set(generated)) == 50
    assert "req_abc123" not in generated


def test_event_without_organization_is_skipped(
    server: RecordingServer, workers: list[SlaOSWorker]
) -> None:
    """An event missing organization_id is refused (False) and counted skipped, never sent."""
    worker = _worker(workers, server.url)
    event = seed_event()
    del event["organization_id"]
    assert worker.add_event(event) is False
    assert worker.add_event(seed_event()) is True
    assert worker.flush(5)
    assert len(server.events()) == 1
    stats = worker.stats()
    assert stats["skipped"] == 1
    assert stats["enqueued"] == 1


def test_max_retries_is_honoured(server: RecordingServer, workers: list[SlaOSWorker]) -> None:
    """max_retries=3 means 4 attempts in all before the batch is given up."""
    server.responder = lambda body: Reply(status=503)
    worker = SlaOSWorker(server.url, "ingest-id", KEY, max_retries=3, retry_delay=0.01)
    workers.append(worker)
    assert worker.add_event(seed_event())
    assert worker.flush(5)
    stats = worker.stats()
    assert stats["requests"] == 4
    assert stats["retries"] == 3
    assert stats["failed"] == 1


def test_host_is_read_like_the_handler(server: RecordingServer, workers: list[SlaOSWorker]) -> None:
    """A bare host means https; plain http is allowed to loopback only; the key is masked."""
    bare = _worker(workers, "your-slaos-host.com")
    assert "https://your-slaos-host.com/v1/ingest/ingest-id/***" in repr(bare)
    assert KEY not in repr(bare)
    with pytest.raises(ValueError, match="http") as excinfo:
        SlaOSWorker("http://your-slaos-host.com", "ingest-id", KEY)
    assert KEY not in str(excinfo.value)
    local = _worker(workers, server.url)
    assert local.add_event(seed_event())
    assert local.flush(5)
    assert len(server.events()) == 1
