"""Connecting to slaOS from the command line: the shared options, and what failures mean.

``send`` and ``check`` take the same connection options, read like ``SlaOSHandler`` reads
them (arguments first, then the ``SLAOS_*`` variables). The explanations say what is wrong
and what to do about it; they may quote exception messages, which can hold the ingestion
URL, so callers mask them before printing.
"""

from __future__ import annotations

import argparse
import os
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import requests
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from .._config import (
    DEFAULT_HOST,
    ENV_HOST,
    ENV_INGESTION_ID,
    ENV_INGESTION_KEY,
    Config,
    build_config,
)
from . import positive_seconds
from ._terminal import mask_ingest_path

__all__ = [
    "add_connection_args",
    "config_from_args",
    "credential",
    "explain_error",
    "http_problem",
    "redirect_host",
]


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--host``, ``--ingestion-id``, ``--ingestion-key``, ``--allow-insecure-http`` and
    ``--timeout`` to ``parser``."""
    group = parser.add_argument_group(
        "connection",
        "Unset options come from the SLAOS_* environment variables, as for the handler.",
    )
    group.add_argument("--host", help=f"host or base URL (env {ENV_HOST}, else {DEFAULT_HOST})")
    group.add_argument(
        "--ingestion-id", metavar="ID", help=f"ingestion id (env {ENV_INGESTION_ID})"
    )
    group.add_argument(
        "--ingestion-key",
        metavar="KEY",
        help=f"ingestion key (env {ENV_INGESTION_KEY}; prefer it: arguments show in ps)",
    )
    group.add_argument(
        "--allow-insecure-http", action="store_true", help="allow http:// to a non-loopback host"
    )
    group.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=positive_seconds,
        default=10.0,
        help="per request (default 10)",
    )


def credential(args: argparse.Namespace, name: str, env: str) -> tuple[str | None, str]:
    """The value of option ``name`` (else of variable ``env``) and where it came from."""
    value = getattr(args, name)
    if value:
        return value, "--" + name.replace("_", "-")
    value = os.environ.get(env)
    return (value, env) if value else (None, "not set")


def config_from_args(
    args: argparse.Namespace, *, placeholder_credentials: bool = False, **options: Any
) -> Config | str:
    """Build the handler's configuration from the connection options (and ``options``).

    Args:
        args: Parsed arguments holding the options of :func:`add_connection_args`.
        placeholder_credentials: Stand in for a missing id or key (``send --dry-run``).
        **options: Further ``build_config`` settings.

    Returns:
        The configuration, or a one-line explanation (key masked) of what is wrong.
    """
    ingestion_id, _ = credential(args, "ingestion_id", ENV_INGESTION_ID)
    ingestion_key, _ = credential(args, "ingestion_key", ENV_INGESTION_KEY)
    if placeholder_credentials:
        ingestion_id, ingestion_key = ingestion_id or "dry-run", ingestion_key or "dry-run"
    for value, option, env in (
        (ingestion_id, "--ingestion-id", ENV_INGESTION_ID),
        (ingestion_key, "--ingestion-key", ENV_INGESTION_KEY),
    ):
        if not value:
            return f"no {option[2:].replace('-', ' ')}: pass {option} or set {env}"
    try:
        return build_config(
            host=args.host,
            ingestion_id=ingestion_id,
            ingestion_key=ingestion_key,
            allow_insecure_http=args.allow_insecure_http,
            timeout=args.timeout,
            **options,
        )
    except ValueError as exc:
        text = str(exc).replace("pass allow_insecure_http=True", "pass --allow-insecure-http")
        return mask_ingest_path(text, ingestion_key)


# OpenSSL's words for "the peer answered something that is not TLS" (plain HTTP, say).
_NOT_TLS = (
    "wrong_version_number",
    "wrong version number",
    "record layer failure",
    "unknown_protocol",
    "unknown protocol",
    "packet length too long",
    "http_request",
    "http request",
)
_REFUSED = ("connection refused", "actively refused", "errno 111", "errno 61", "10061")
_UNRESOLVED = (
    "nameresolutionerror",
    "name or service not known",
    "nodename nor servname",
    "getaddrinfo failed",
    "failed to resolve",
    "temporary failure in name resolution",
)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps (urllib3 nests reasons several levels deep)."""
    seen: set[int] = set()
    stack: list[object] = [exc]
    while stack:
        item = stack.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        stack.extend((item.__cause__, item.__context__, getattr(item, "reason", None)))
        stack.extend(item.args)


def _ssl_reason(exc: BaseException) -> str:
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError) and cause.verify_message:
            return str(cause.verify_message)
        if isinstance(cause, ssl.SSLError) and cause.reason:
            return str(cause.reason)
    return type(exc).__name__


def explain_error(exc: BaseException, where: str, timeout: float) -> str:
    """What a failed request means and how to fix it.

    Args:
        exc: What ``requests`` raised.
        where: ``host:port`` as the user gave it.
        timeout: The request timeout in seconds, quoted when it ran out.
    """
    causes = list(_causes(exc))
    text = " ".join(str(c) for c in causes).lower()
    if isinstance(exc, requests.exceptions.SSLError):
        reason = _ssl_reason(exc)
        if any(isinstance(c, ssl.SSLCertVerificationError) for c in causes) or (
            "certificate verify failed" in text
        ):
            return (
                f"TLS certificate verification failed for {where} ({reason}): if a proxy or a "
                "private CA signs this traffic, point REQUESTS_CA_BUNDLE at its CA certificate"
            )
        if any(marker in text for marker in _NOT_TLS):
            return (
                f"TLS handshake failed: {where} does not speak TLS ({reason}); if it is plain "
                f"HTTP (a local receiver), use --host http://{where}"
            )
        return f"TLS handshake with {where} failed ({reason})"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return (
            f"timed out after {timeout:g} s connecting to {where}: a firewall or proxy may be "
            "dropping the traffic, or the host or port is wrong"
        )
    if isinstance(exc, requests.exceptions.Timeout):
        return (
            f"{where} took the connection but sent no answer within {timeout:g} s: the server "
            "or a proxy in between is stalled (raise --timeout to wait longer)"
        )
    if any(isinstance(c, ConnectionRefusedError) for c in causes) or any(
        marker in text for marker in _REFUSED
    ):
        return (
            f"connection refused by {where}: nothing listens there; check the host and port "
            f"(--host / {ENV_HOST}) or start the server"
        )
    if any(isinstance(c, socket.gaierror) for c in causes) or any(
        marker in text for marker in _UNRESOLVED
    ):
        host = where.rsplit(":", 1)[0] if where.count(":") == 1 else where
        return f"cannot resolve {host}: check the host name (--host / {ENV_HOST}) and DNS"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return f"cannot connect to {where} ({type(causes[-1]).__name__}): {causes[-1]}"
    return f"request to {where} failed: {type(exc).__name__}: {exc}"


def redirect_host(response: requests.Response, where: str) -> str:
    """The host a redirect points to (``host:port`` when a port is given), never its path.

    Args:
        response: A 3xx answer.
        where: The host the request went to, for a ``Location`` without one.
    """
    location = response.headers.get("Location")
    if not location:
        return "nowhere (no Location header)"
    try:
        parts = parse_url(location.strip())
    except LocationParseError:
        return "an unreadable Location"
    if not parts.host:
        return f"{where} (same host)"
    return parts.host if parts.port is None else f"{parts.host}:{parts.port}"


def http_problem(
    response: requests.Response, what: str, where: str, *, with_credentials: bool = True
) -> str:
    """What an unexpected HTTP status means and how to fix it.

    Args:
        response: The answer.
        what: The request, as the line should name it.
        where: ``host:port`` as the user gave it.
        with_credentials: The URL carried the id and key, so 401/403/404 are about them.
    """
    status = response.status_code
    if 300 <= status < 400:
        return (
            f"{what} answered {status}, a redirect to {redirect_host(response, where)}: "
            "slaos-logging never follows redirects, since the URL carries the key; if that "
            "host is the right one, set it with --host / " + ENV_HOST
        )
    try:
        body = " ".join(response.text.split())[:200]
    except Exception:  # an undecodable body still has a status worth reporting
        body = ""
    answer = f"{status} {body}".strip()
    if status in (401, 403, 404) and with_credentials:
        return (
            f"slaOS refused the ingestion id or key ({answer}): check --ingestion-id and "
            f"--ingestion-key ({ENV_INGESTION_ID} / {ENV_INGESTION_KEY}); a rotated key must "
            "be updated wherever it is set"
        )
    if status == 404:
        return f"{what} answered 404: is {where} the slaOS API host (e.g. api.rated.co)?"
    if status >= 500:
        return f"server error: {what} answered {answer}; try again later"
    if status in (400, 422):
        return f"slaOS rejected {what} ({answer})"
    return f"unexpected answer to {what}: {answer}"
