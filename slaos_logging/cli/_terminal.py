"""Text that reaches a terminal: the key masked, control characters escaped.

Every command prints through these two functions whatever came from outside the program (a
request line, an organization id, an event key, a server's answer), so one shared rule
decides what a terminal may receive. JSON output is not passed through them: it is exact,
and JSON escapes control characters itself.
"""

from __future__ import annotations

import re

from .._diagnostics import redact

__all__ = ["mask_ingest_path", "printable"]

# Whatever follows the ingestion id in an ingest path is a key (right or wrong): never echo it.
_KEY_IN_TEXT = re.compile(r"(/v\d+/ingest/[^/\s?#\"']+/)[^/\s?#\"']+")

# C0, DEL and C1 move the cursor, clear the screen, retitle the window or split a line; the
# bidirectional overrides reorder what is shown ("Trojan Source"). All become visible escapes,
# the way http.server's own log_message escapes them.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: object) -> str:
    """Return ``str(text)`` with control characters written as ``\\xNN`` (``\\uNNNN``)."""
    return _CONTROL.sub(_escape, str(text))


def mask_ingest_path(text: str, secret: str | None = None) -> str:
    """Return ``text`` with the key segment of any ingest path, and ``secret``, masked.

    The literal ``secret`` is only replaced when it is long enough to be a real key: a toy
    key such as ``dev`` would otherwise mangle ordinary words (and the ingestion id).
    """
    masked = _KEY_IN_TEXT.sub(r"\1***", text)
    if secret and len(secret) >= 6:
        masked = redact(masked, (secret,))
    return masked
