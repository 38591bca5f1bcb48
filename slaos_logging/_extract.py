"""Pure ``record -> pending event``: what ``emit()`` does on the application thread.

Only the cheap part runs here (look-ups in the record's ``__dict__`` and a shallow
copy of the values); turning the pending tuple into JSON-ready data happens on the
sender thread (see ``_encode``). No threads, no I/O.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS

from ._config import Config
from ._context import organization_id_var

#: Fields of the event envelope that are never values.
ENVELOPE_FIELDS = frozenset({"organization_id", "key", "timestamp", "idempotency_key"})

# Standard LogRecord attributes, from python-json-logger's list, plus taskName (3.12+),
# which older versions of that list lack.
_RECORD_ATTRS = frozenset(RESERVED_ATTRS) | {"taskName"}
_NOT_VALUES = _RECORD_ATTRS | ENVELOPE_FIELDS

# LogRecord.__init__ sets its attributes first and always in the same order, and
# makeRecord adds `extra` after them: the extras are the tail of a record's __dict__.
# Skipping the known head is much cheaper than testing every attribute name.
_PROBE = list(logging.LogRecord("probe", logging.INFO, "", 0, "", (), None).__dict__)
_HEAD_LEN = len(_PROBE)
_HEAD_LAST = _PROBE[-1]
del _PROBE

#: A pending event: (organization_id, key, raw timestamp or None, created, values,
#: idempotency_key or None). The sender thread numbers it when it builds the event.
Pending = tuple[str, str, Any, float, dict[str, Any], Any]

#: Reasons a record is not an event, with the message logged once for each.
MISSING_ORG = "missing_organization_id"
MISSING_KEY = "missing_key"
REASONS = {
    MISSING_ORG: (
        "record %r has no organization_id and the handler has no default: it is skipped "
        "(pass extra={'organization_id': ...}, set organization_id= on the handler, "
        "or use slaos_logging.organization())"
    ),
    MISSING_KEY: (
        "record %r has no key and the handler has no default: it is skipped "
        "(pass extra={'key': ...} or set key= on the handler)"
    ),
}


def _extra_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The fields that are neither standard record attributes nor envelope fields."""
    names = list(fields)
    if len(names) > _HEAD_LEN and names[_HEAD_LEN - 1] == _HEAD_LAST:
        # Laid out like a LogRecord: only the tail can hold extras (and attributes a
        # formatter added, such as message or asctime, which the test below drops).
        return {k: fields[k] for k in names[_HEAD_LEN:] if k not in _NOT_VALUES}
    return {k: v for k, v in fields.items() if k not in _NOT_VALUES}


class Extractor:
    """Builds pending events from log records (or plain mappings) by the handler's rules."""

    __slots__ = ("_default_key", "_org", "_org_callable", "_value_fields")

    def __init__(self, config: Config) -> None:
        self._default_key = config.key
        self._value_fields = config.value_fields
        org = config.organization_id
        self._org_callable: Callable[[], object] | None = org if callable(org) else None
        self._org: str | None = org if isinstance(org, str) else None

    def extract(self, fields: Mapping[str, Any], created: float) -> Pending | str:
        """Return the pending event from a record's ``__dict__``, or a skip reason."""
        values = fields.get("values")
        if isinstance(values, dict):
            if self._value_fields is None:
                values = values.copy()
            else:
                values = {k: v for k, v in values.items() if k in self._value_fields}
        elif self._value_fields is None:
            values = _extra_fields(fields)
        else:
            values = {
                k: fields[k] for k in self._value_fields if k in fields and k not in _NOT_VALUES
            }
        org = fields.get("organization_id")
        if org is None or org == "":
            org = self._default_org()
            if org is None:
                return MISSING_ORG
        if org.__class__ is not str:
            org = str(org)
        key = fields.get("key")
        if key is None or key == "":
            key = self._default_key
            if key is None:
                return MISSING_KEY
        if key.__class__ is not str:
            key = str(key)
        return (org, key, fields.get("timestamp"), created, values, fields.get("idempotency_key"))

    def _default_org(self) -> str | None:
        if self._org is not None:
            return self._org
        if self._org_callable is not None:
            # A failing resolver must not fail the logging call: treat it as "no default".
            try:
                value = self._org_callable()
            except Exception:
                value = None
            if value is not None and value != "":
                return value if isinstance(value, str) else str(value)
        return organization_id_var.get() or None


# -- structlog's ProcessorFormatter: the whole event dict as ``record.msg`` ------------

#: What ``ProcessorFormatter.wrap_for_formatter`` adds to a record for its own use.
_STRUCTLOG_PRIVATE = frozenset({"_logger", "_name", "_from_structlog"})


def record_from_event_dict(record: logging.LogRecord) -> logging.LogRecord:
    """A copy of a record whose ``msg`` is structlog's event dict, as ``logging`` would have it.

    ``event`` becomes the message (what ``events=`` matches) and the other keys become
    extras, as ``render_to_log_kwargs`` would have made them. The original record is
    left untouched for the other handlers (the ``ProcessorFormatter`` renders it). Any
    other record is returned as it is.
    """
    event_dict = record.msg
    if event_dict.__class__ is not dict:
        return record
    fields = {k: v for k, v in record.__dict__.items() if k not in _STRUCTLOG_PRIVATE}
    fields["msg"] = event_dict.get("event")
    fields["args"] = ()
    for name, value in event_dict.items():
        # A key named like a record attribute cannot be an extra (as with logging).
        if name != "event" and name not in fields:
            fields[name] = value
    stamp = fields.get("timestamp")
    if stamp.__class__ is str and not _zoned(stamp):
        # TimeStamper's text without a zone: UTC by default, local with utc=False, and
        # often cut to the second. The record's own creation time is that same
        # instant, exact: use it rather than guess (a guess was hours off).
        del fields["timestamp"]
    return logging.makeLogRecord(fields)


def _zoned(text: str) -> bool:
    """Whether ``text`` is an ISO 8601 time that says its zone."""
    text = text.strip()
    if text.endswith(("Z", "z")):
        return True
    try:
        return dt.datetime.fromisoformat(text).tzinfo is not None
    except ValueError:
        return False
