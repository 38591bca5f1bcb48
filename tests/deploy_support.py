"""Helpers for tests that run real processes: child scripts, exact event accounting."""

from __future__ import annotations

import collections
import http.client
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from .conftest import KEY
from .integration_support import received
from .server import RecordingServer

ROOT = Path(__file__).resolve().parent.parent


def child_env(server: RecordingServer | None = None, **extra: str) -> dict[str, str]:
    """The environment of a child process: the package importable, credentials for ``server``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLAOS_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    if server is not None:
        env.update(
            SLAOS_HOST=server.url,
            SLAOS_INGESTION_ID="ingest-id",
            SLAOS_INGESTION_KEY=KEY,
            SLAOS_KEY="rated_api",
        )
    env.update(extra)
    return env


def run_script(
    code: str, env: dict[str, str], timeout: float = 60.0, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter; fail with its output if it does not end in time."""
    try:
        return subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"child did not end within {timeout}s; stdout={exc.stdout!r} stderr={exc.stderr!r}"
        ) from None


def wait_for_events(server: RecordingServer, count: int, timeout: float = 20.0) -> list[Any]:
    """``received`` with room for a real server's start and stop (20 s by default)."""
    return received(server, count, timeout)


def assert_exactly(events: list[dict[str, Any]], expected: collections.Counter[Any]) -> None:
    """Each expected ``(organization_id, seq)`` arrived exactly once, and nothing else did."""
    got = collections.Counter(
        (e["organization_id"], (e.get("values") or {}).get("seq")) for e in events
    )
    missing = expected - got
    extra = got - expected
    assert not missing and not extra, (
        f"{sum(missing.values())} missing (e.g. {sorted(missing)[:5]}), "
        f"{sum(extra.values())} unexpected or doubled (e.g. {sorted(extra)[:5]})"
    )
    keys = [e["idempotency_key"] for e in events]
    assert len(keys) == len(set(keys)), "an idempotency key arrived twice"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    """A real server process on 127.0.0.1, started from ``ROOT`` and stopped by SIGTERM."""

    def __init__(self, argv: list[str], env: dict[str, str], port: int) -> None:
        self.port = port
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until ``/health`` answers 200; fail with the server's output if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if self.get("/health") == 200:
                    return
            except OSError:
                time.sleep(0.1)
        self.stop(5)
        raise AssertionError(f"server did not come up within {timeout}s: {self.output}")

    def get(self, path: str, org: str | None = None) -> int:
        """One GET on a new connection; the status."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path, headers={"X-Org": org} if org else {})
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()

    def hit(self, count: int, prefix: str = "req") -> collections.Counter[Any]:
        """``count`` requests, each for its own organization; the events they must yield."""
        for n in range(count):
            status = self.get(f"/items/{n}", org=f"{prefix}-{n}")
            assert status == 200, f"request {n} answered {status}: {self.output}"
        return collections.Counter((f"{prefix}-{n}", None) for n in range(count))

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, as docker, Kubernetes and systemd stop a service; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
            raise AssertionError(f"server still running {timeout}s after SIGTERM: {out}") from None
        self.output = out
        return self.proc.returncode

    output = ""
