"""What the deliverer tells the operator: one clear message per kind of failure."""

from __future__ import annotations

import json
import logging
from typing import Any

from ._diagnostics import Reporter
from ._retry import Verdict
from ._transport import SendResult


def describe(result: SendResult) -> str:
    """``HTTP 503: <body excerpt>``, or ``no answer: <error>``."""
    head = f"HTTP {result.status}" if result.status is not None else "no answer"
    return f"{head}: {result.detail}" if result.detail else head


def report_redirect(reporter: Reporter, result: SendResult) -> None:
    """A 3xx, which is never followed: name where it points (never its path)."""
    reporter.every(
        "redirect",
        logging.ERROR,
        "the slaOS endpoint answered HTTP %s, a redirect to %s; redirects are never "
        "followed (they would drop or re-send the events, and could carry the key "
        "elsewhere). The events are retried, then spooled or counted failed: point "
        "`host` at the address the redirect names, if you trust it",
        result.status,
        result.redirect_host,
    )


def report_invalid(reporter: Reporter, event: dict[str, Any] | bytes, result: SendResult) -> None:
    """One event the server rejected (each is a lost data point worth its own line)."""
    if isinstance(event, bytes):
        event = _loads(event)
    reporter.each(
        "invalid",
        logging.WARNING,
        "slaOS rejected an event as invalid (%s); event: organization_id=%r key=%r "
        "timestamp=%r values=%.200r",
        describe(result),
        event.get("organization_id"),
        event.get("key"),
        event.get("timestamp"),
        event.get("values"),
    )


def report_failed(reporter: Reporter, result: SendResult, verdict: Verdict, total: int) -> None:
    """Events given up on an answer that retrying cannot fix (credentials, other 4xx)."""
    if verdict is Verdict.AUTH:
        reporter.every(
            "auth",
            logging.ERROR,
            "slaOS refused the credentials (%s): the ingestion id or key is wrong, "
            "or the key was rotated; events are being dropped (%d so far, see "
            "stats()['failed']). Check SLAOS_INGESTION_ID / SLAOS_INGESTION_KEY and run "
            "`slaos-logging check`",
            describe(result),
            total,
        )
    else:
        reporter.every(
            f"status:{result.status}",
            logging.ERROR,
            "slaOS answered %s; events are being dropped (%d so far, see stats()['failed'])",
            describe(result),
            total,
        )


def _loads(payload: bytes) -> dict[str, Any]:
    try:
        event = json.loads(payload)
    except ValueError:
        return {}
    return event if isinstance(event, dict) else {}
