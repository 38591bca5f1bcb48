"""JSON-lines log files to pending events, by ``SlaOSHandler``'s extraction rules.

Pure reading and conversion for ``slaos-logging send``: no threads, no network. Each line is
one JSON object as python-json-logger writes it (``message``/``msg``, ``asctime``/
``timestamp``/``created``, extra fields at top level or under ``values``).
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from .._config import Config
from .._encode import TimestampFormatter
from .._extract import MISSING_KEY, MISSING_ORG, Extractor, Pending

__all__ = ["Converter", "Tally", "line_key", "parse_line", "pending_events"]

_NOT_WANTED = "not in --events"
_SKIP_REASONS = {
    MISSING_ORG: "without organization_id (use --organization-id)",
    MISSING_KEY: "without key (use --key)",
}
_MAX_LISTED = 10
_BOM = b"\xef\xbb\xbf"


def parse_line(raw: bytes) -> dict[str, Any] | None:
    """Decode one line into a JSON object, or ``None`` when it is not one."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    return value if isinstance(value, dict) else None


def line_key(raw: bytes, number: int, organization_id: str, key: str) -> str:
    """Derive a line's idempotency key: the same on every run, whatever the file is called.

    The event's organization and key are part of it, so re-sending a file with a corrected
    ``--key`` or ``--organization-id`` is not swallowed as a duplicate of the first attempt.
    """
    digest = hashlib.sha256()
    for part in (str(number).encode(), organization_id.encode(), key.encode(), raw.strip()):
        # Length-prefixed, so no two different inputs can concatenate to the same bytes.
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return "l-" + digest.hexdigest()[:32]


def _created(fields: dict[str, Any]) -> float | None:
    """The record's creation time from ``created`` (epoch) or ``asctime`` (local time)."""
    created = fields.get("created")
    if isinstance(created, (int, float)) and not isinstance(created, bool):
        return float(created) if math.isfinite(created) else None
    asctime = fields.get("asctime")
    if isinstance(asctime, str):
        # logging's default asctime is "2024-08-15 10:30:45,123" in local time; Python 3.10's
        # fromisoformat does not take the comma.
        text = asctime.strip()
        head, sep, tail = text.rpartition(",")
        if sep and tail.isdigit():
            text = f"{head}.{tail}"
        try:
            return datetime.fromisoformat(text).timestamp()
        except (ValueError, OverflowError, OSError):
            return None
    return None


def read_lines(paths: list[str]) -> Iterator[tuple[str, int, bytes]]:
    """Yield ``(source, line number, raw line)`` for every non-blank line of every file."""
    for path in paths:
        if path == "-":
            name, stream, owned = "<stdin>", sys.stdin.buffer, False
        else:
            name, stream, owned = path, open(path, "rb"), True  # noqa: SIM115
        try:
            for number, raw in enumerate(stream, start=1):
                if number == 1 and raw.startswith(_BOM):
                    raw = raw[len(_BOM) :]
                if raw.strip():
                    yield name, number, raw
        finally:
            if owned:
                stream.close()


class Tally:
    """What happened to the lines read, apart from what the pipeline counts.

    Attributes:
        read: Non-blank lines read.
        bytes: Bytes of those lines.
        queued: Lines that made an event.
        malformed: Lines that cannot become an event: not a JSON object, or a field out of
            range (such as a ``created`` time beyond the year 9999).
        malformed_at: ``source:line`` of the first ten malformed lines.
        skipped: Lines that made no event, by reason.
        untimed: Events stamped with the current time for want of one in the line.
    """

    def __init__(self) -> None:
        self.read = 0
        self.bytes = 0
        self.queued = 0
        self.malformed = 0
        self.malformed_at: list[str] = []
        self.skipped: Counter[str] = Counter()
        self.untimed = 0

    def bad_line(self, source: str, number: int) -> None:
        """Count a malformed line, remembering where it is if it is among the first ten."""
        self.malformed += 1
        if len(self.malformed_at) < _MAX_LISTED:
            self.malformed_at.append(f"{source}:{number}")


class Converter:
    """Line -> pending event, by the handler's rules, with a derived idempotency key.

    Args:
        config: Supplies ``events`` (matched against ``msg``, else ``message``), the
            default ``key`` and ``organization_id``, and ``value_fields``.
    """

    def __init__(self, config: Config) -> None:
        self._events = config.events
        self._extract = Extractor(config).extract
        self._timestamps = TimestampFormatter()

    def convert(
        self, raw: bytes, number: int, fields: dict[str, Any], tally: Tally
    ) -> Pending | None:
        """Return the pending event, or ``None`` when the line is skipped (and tallied).

        Raises:
            OverflowError: A time in the line is beyond what a date can hold.
        """
        if self._events is not None:
            name = fields.get("msg")
            if not isinstance(name, str):
                name = fields.get("message")
            if not isinstance(name, str) or name not in self._events:
                tally.skipped[_NOT_WANTED] += 1
                return None
        created = _created(fields)
        if created is None:
            if self._timestamps.parse(fields.get("timestamp")) is None:
                tally.untimed += 1
            created = time.time()
        else:
            # A finite time can still be beyond what a date can hold (created=1e300): that
            # line cannot become an event, so it is malformed like any other such line.
            self._timestamps.created(created)
        pending = self._extract(fields, created)
        if isinstance(pending, str):
            tally.skipped[_SKIP_REASONS.get(pending, pending)] += 1
            return None
        org, key, raw_ts, created, values, idem = pending
        if idem is None or idem == "":
            idem = line_key(raw, number, org, key)
        return (org, key, raw_ts, created, values, idem)


def pending_events(
    paths: list[str],
    converter: Converter,
    tally: Tally,
    on_line: Callable[[Tally], None] | None = None,
) -> Iterator[Pending]:
    """Yield the pending event of every line that makes one; tally the rest.

    Args:
        paths: Files to read in order; ``-`` is standard input.
        converter: Turns a decoded line into a pending event.
        tally: Counts what happened to each line.
        on_line: Called after each line is counted (progress display).
    """
    for source, number, raw in read_lines(paths):
        tally.read += 1
        tally.bytes += len(raw)
        if on_line is not None:
            on_line(tally)
        fields = parse_line(raw)
        if fields is None:
            tally.bad_line(source, number)
            continue
        try:
            pending = converter.convert(raw, number, fields, tally)
        except Exception:  # whatever the reason, this line cannot become an event
            tally.bad_line(source, number)
            continue
        if pending is not None:
            tally.queued += 1
            yield pending
