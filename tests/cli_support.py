"""Helpers for the tests that run the receiver as a real process."""

from __future__ import annotations

import socket
import subprocess
import time

import pytest
import requests


def free_port() -> int:
    """A port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_healthy(base: str, proc: subprocess.Popen[str]) -> None:
    """Poll /v1/health until it answers, failing after a deadline or an early exit."""
    deadline = time.monotonic() + 15
    while True:
        try:
            if requests.get(f"{base}/v1/health", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            assert time.monotonic() < deadline, "receiver did not come up"
        # Waiting on the process doubles as the poll interval and catches an early exit.
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=0.05)
