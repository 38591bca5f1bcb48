"""``slaos-logging check``: is the configuration right, and can this machine reach slaOS?

Steps run in order and each prints one line (``OK``, ``WARN`` or ``FAIL`` with what to do);
a step that needs the network to answer is not attempted once it is known not to.
"""

from __future__ import annotations

import argparse
import email.utils
import ipaddress
import os
import socket
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import requests

from .._config import (
    DEFAULT_HOST,
    ENV_HOST,
    ENV_INGESTION_ID,
    ENV_INGESTION_KEY,
    Config,
)
from .._encode import iso_utc
from .._endpoint import resolve_base_url
from .._transport import USER_AGENT, NoRedirectSession
from . import positive_seconds
from ._connection import (
    add_connection_args,
    config_from_args,
    credential,
    explain_error,
    http_problem,
)
from ._terminal import mask_ingest_path, printable

__all__ = ["CHECK_KEY", "add_parser", "run"]

#: Event key and organization of the test event.
CHECK_KEY = "slaos_logging_check"
_SKEW_LIMIT = 60.0


class _Report:
    """Prints one line per step, masking the key, and remembers whether any failed."""

    def __init__(self, secret: str | None) -> None:
        self._secret = secret
        self.failed = 0

    def line(self, step: str, verdict: str, text: str) -> None:
        if verdict == "FAIL":
            self.failed += 1
        text = printable(" ".join(mask_ingest_path(text, self._secret).split()))
        print(f"{step:<14} {verdict:<4} {text}".rstrip(), flush=True)


def add_parser(subparsers: argparse._SubParsersAction[Any]) -> argparse.ArgumentParser:
    """Register ``check`` and return its parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "check",
        help="check the configuration and the connection to slaOS",
        description="Print the configuration SlaOSHandler would use (key masked), then check "
        "DNS, TLS, the health endpoint, the clock and the credentials; with "
        "--send-test-event, send one event and confirm slaOS indexed it. Exit 0 when all pass.",
    )
    add_connection_args(parser)
    parser.add_argument(
        "--send-test-event",
        action="store_true",
        help=f"send one event (key and organization {CHECK_KEY!r}) and wait until it is indexed",
    )
    parser.add_argument(
        "--wait",
        metavar="SECONDS",
        type=positive_seconds,
        default=30.0,
        help="how long to wait for the test event to be indexed (default 30)",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``check``: 0 when every step passed, 1 otherwise."""
    ingestion_id, id_source = credential(args, "ingestion_id", ENV_INGESTION_ID)
    ingestion_key, key_source = credential(args, "ingestion_key", ENV_INGESTION_KEY)
    report = _Report(ingestion_key)
    host, host_source = (args.host, "--host") if args.host else (os.environ.get(ENV_HOST), ENV_HOST)
    if not host:
        host, host_source = DEFAULT_HOST, "default"
    try:
        base = resolve_base_url(host, allow_insecure_http=args.allow_insecure_http)
    except ValueError as exc:
        text = str(exc).replace("pass allow_insecure_http=True", "pass --allow-insecure-http")
        report.line("host", "FAIL", f"{text} (from {host_source})")
        return 1
    report.line("host", "", f"{base} (from {host_source})")
    report.line("ingestion id", "", f"{ingestion_id or '-'} ({_origin(id_source)})")
    report.line("ingestion key", "", f"{'***' if ingestion_key else '-'} ({_origin(key_source)})")
    credentials = config_from_args(args)
    if isinstance(credentials, str):
        report.line("settings", "FAIL", credentials)
    with NoRedirectSession() as session:
        session.headers["User-Agent"] = USER_AGENT
        checker = _Checker(session, base, args.timeout, report)
        if (
            checker.reachable()
            and isinstance(credentials, Config)
            and checker.credentials(credentials)
            and args.send_test_event
        ):
            checker.test_event(credentials, args.wait)
    if report.failed:
        print(f"{report.failed} check{'s' if report.failed != 1 else ''} failed")
        return 1
    hint = (
        "" if args.send_test_event else " (add --send-test-event to send an event and read it back)"
    )
    print(f"all checks passed{hint}")
    return 0


def _origin(source: str) -> str:
    return source if source == "not set" else f"from {source}"


class _Checker:
    """The network steps; each prints its line and returns whether it passed."""

    def __init__(
        self, session: requests.Session, base: str, timeout: float, report: _Report
    ) -> None:
        self._session = session
        self._base = base
        self._timeout = timeout
        self._report = report
        parts = urlsplit(base)
        self._hostname = parts.hostname or ""
        self._where = parts.netloc

    def _get(self, url: str) -> requests.Response:
        # Never follow a redirect: the next request would carry the key to wherever it points.
        return self._session.get(url, timeout=self._timeout, allow_redirects=False)

    def reachable(self) -> bool:
        """DNS, then the health endpoint (TLS and connection problems show here), then clock."""
        line = self._report.line
        try:
            ipaddress.ip_address(self._hostname)
            line("dns", "OK", f"{self._hostname} is an IP address")
        except ValueError:
            try:
                found = socket.getaddrinfo(self._hostname, None, proto=socket.IPPROTO_TCP)
                line("dns", "OK", f"{self._hostname} -> {found[0][4][0]}")
            except (OSError, UnicodeError) as exc:
                if not requests.utils.get_environ_proxies(self._base):
                    reason = getattr(exc, "strerror", None) or exc
                    line(
                        "dns",
                        "FAIL",
                        f"cannot resolve {self._hostname} ({reason}): check the host name "
                        f"(--host / {ENV_HOST}) and this machine's DNS",
                    )
                    return False
                line("dns", "WARN", f"cannot resolve {self._hostname}; trying through the proxy")
        url = f"{self._base}/v1/health"
        started = time.time()
        try:
            response = self._get(url)
        except requests.RequestException as exc:
            line("health", "FAIL", explain_error(exc, self._where, self._timeout))
            return False
        finished = time.time()
        millis = (finished - started) * 1000
        if response.status_code == 200:
            line("health", "OK", f"GET {url} answered 200 in {millis:.0f} ms")
        else:
            problem = http_problem(response, f"GET {url}", self._where, with_credentials=False)
            line("health", "FAIL", problem)
        self._clock(response.headers.get("Date"), (started + finished) / 2)
        return True

    def _clock(self, date: str | None, local: float) -> None:
        try:
            server = email.utils.parsedate_to_datetime(date or "").timestamp()
        except (TypeError, ValueError, IndexError):
            self._report.line("clock", "WARN", "the server sent no usable Date header")
            return
        skew = local - server
        if abs(skew) <= _SKEW_LIMIT:
            self._report.line("clock", "OK", f"within {abs(skew):.0f} s of the server's")
            return
        side = "ahead of" if skew > 0 else "behind"
        self._report.line(
            "clock",
            "WARN",
            f"this machine's clock is {abs(skew):.0f} s {side} the server's: events carry "
            "its timestamps, so sync it (NTP)",
        )

    def _indexed(self, config: Config, limit: int) -> requests.Response:
        url = f"{config.endpoint}/indexed-slis"
        params = {"key": CHECK_KEY, "limit": str(limit)}
        if limit > 1:
            params["customer_id"] = CHECK_KEY
        return self._session.get(url, params=params, timeout=self._timeout, allow_redirects=False)

    def credentials(self, config: Config) -> bool:
        """Read back one item: only a right id and key get a 200."""
        try:
            response = self._indexed(config, 1)
        except requests.RequestException as exc:
            self._report.line("credentials", "FAIL", explain_error(exc, self._where, self._timeout))
            return False
        if response.status_code == 200:
            self._report.line("credentials", "OK", "the ingestion id and key were accepted")
            return True
        self._report.line("credentials", "FAIL", http_problem(response, "read-back", self._where))
        return False

    def test_event(self, config: Config, wait: float) -> bool:
        """POST one event, then poll the read-back until it shows up or ``wait`` runs out."""
        nonce = uuid.uuid4().hex
        event = {
            "organization_id": CHECK_KEY,
            "key": CHECK_KEY,
            "timestamp": iso_utc(time.time()),
            "values": {"check_id": nonce, "client": USER_AGENT},
            "idempotency_key": f"{CHECK_KEY}_{nonce}",
        }
        line = self._report.line
        try:
            response = self._session.post(
                config.endpoint, json=[event], timeout=self._timeout, allow_redirects=False
            )
        except requests.RequestException as exc:
            line("test event", "FAIL", explain_error(exc, self._where, self._timeout))
            return False
        if not 200 <= response.status_code < 300:
            line("test event", "FAIL", http_problem(response, "the test event", self._where))
            return False
        line(
            "test event",
            "OK",
            f"accepted ({response.status_code}), idempotency key {event['idempotency_key']}",
        )
        started = time.monotonic()
        deadline = started + wait
        pause = 0.1
        while True:
            try:
                response = self._indexed(config, 50)
                items = response.json() if response.status_code == 200 else []
            except (requests.RequestException, ValueError):
                items = []
            if isinstance(items, list) and any(_is_ours(item, event) for item in items):
                line("indexed", "OK", f"read back after {time.monotonic() - started:.1f} s")
                return True
            if time.monotonic() + pause > deadline:
                break
            time.sleep(pause)
            pause = min(pause * 2, 2.0)
        line(
            "indexed",
            "FAIL",
            f"the test event was accepted but not read back within {wait:g} s (--wait): "
            f"slaOS may be slow to index; run check again or look for key {CHECK_KEY!r}",
        )
        return False


def _is_ours(item: object, event: dict[str, Any]) -> bool:
    if not isinstance(item, dict):
        return False
    if item.get("idempotency_key") == event["idempotency_key"]:
        return True
    values = item.get("values")
    return isinstance(values, dict) and values.get("check_id") == event["values"]["check_id"]
