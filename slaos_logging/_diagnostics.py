"""The library's own messages: rate-limited, redacted, and never fed back into a handler.

Every message goes to the ``slaos_logging`` logger (which has a ``NullHandler``, so
an application that configures nothing sees nothing), except that what the user must
see (``MUST_SEE``) also reaches stderr once, through ``logging.lastResort``, when no
handler of the application would show it. ``SlaOSHandler`` ignores
records from ``slaos_logging*`` loggers, so these can never loop back into it.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import threading
import time
import weakref
from collections.abc import Iterable

logger = logging.getLogger("slaos_logging")
_NULL = logging.NullHandler()
logger.addHandler(_NULL)

#: Reasons (prefixes) that reach stderr once even when the application set up no
#: handler for our logger: refused credentials, a redirect, a record dropped after
#: close, a disabled handler.
MUST_SEE = ("auth", "redirect", "closed", "disabled")

# Reasons already shown on stderr in this process.
_ALERTED: set[str] = set()
_ALERT_LOCK = threading.Lock()

_REDACTED = "***"


def _hex(digit: str) -> str:
    return f"[{digit.upper()}{digit.lower()}]" if digit.isalpha() else digit


@functools.lru_cache(maxsize=32)
def _encoded_pattern(secret: str) -> re.Pattern[str]:
    # Each character as itself or percent-encoded (UTF-8, either hex case): a URL may carry
    # the secret in any mix of the two, whatever quoting rules the sender applied.
    parts = []
    for char in secret:
        encoded = "".join(
            "%" + _hex(f"{b:02x}"[0]) + _hex(f"{b:02x}"[1])
            for b in char.encode("utf-8", "surrogatepass")
        )
        parts.append(f"(?:{re.escape(char)}|{encoded})")
    return re.compile("".join(parts))


def redact(text: str, secrets: Iterable[str]) -> str:
    """Return ``text`` with every secret, raw or percent-encoded, replaced by ``***``."""
    for secret in secrets:
        if not secret:
            continue
        if secret in text:
            text = text.replace(secret, _REDACTED)
        if "%" in text:
            text = _encoded_pattern(secret).sub(_REDACTED, text)
    return text


class RateLimiter:
    """Lets ``burst`` messages per key through per ``interval`` seconds, and counts the rest."""

    def __init__(self, interval: float, burst: int = 1) -> None:
        self._interval = interval
        self._burst = burst
        self._window: dict[str, tuple[float, int]] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> int | None:
        """Return how many were suppressed since the last one let through, or ``None``."""
        now = time.monotonic()
        with self._lock:
            start, count = self._window.get(key, (now - self._interval, 0))
            if now - start >= self._interval:
                start, count = now, 0
            if count >= self._burst:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return None
            self._window[key] = (start, count + 1)
            return self._suppressed.pop(key, 0)


class Reporter:
    """Writes one handler's diagnostics: once per reason, or at most once per interval."""

    def __init__(self, secrets: tuple[str, ...], interval: float = 10.0) -> None:
        self._secrets = secrets
        self._limiter = RateLimiter(interval)
        # Events the server rejects are logged one by one (each is a lost data point
        # worth its own line), up to a burst per minute so a bad deploy cannot flood.
        self._each = RateLimiter(60.0, burst=100)
        self._once: set[str] = set()
        self._lock = threading.Lock()

    def once(self, reason: str, level: int, msg: str, *args: object) -> None:
        """Log ``msg`` the first time ``reason`` is seen, never again."""
        with self._lock:
            if reason in self._once:
                return
            self._once.add(reason)
        self._log(level, msg, args)

    def every(self, reason: str, level: int, msg: str, *args: object) -> None:
        """Log ``msg`` at most once per interval for ``reason``, noting how many were held back.

        Reasons the user must see (``MUST_SEE``) also go to stderr once, as ``alert``.
        """
        suppressed = self._limiter.allow(reason)
        if suppressed is None:
            return
        if suppressed:
            msg += " (%d similar messages suppressed)"
            args = (*args, suppressed)
        record = self._log(level, msg, args)
        if record is not None and reason.startswith(MUST_SEE):
            show_on_stderr(reason, record)

    def each(self, reason: str, level: int, msg: str, *args: object) -> None:
        """Log every occurrence, up to 100 a minute per reason, noting the ones held back."""
        suppressed = self._each.allow(reason)
        if suppressed is None:
            return
        if suppressed:
            msg += " (%d more not logged)"
            args = (*args, suppressed)
        self._log(level, msg, args)

    def alert(self, reason: str, level: int, msg: str, *args: object) -> None:
        """Like ``every``, and the first time per process also on stderr if nobody listens.

        For what the user must see (refused credentials, a redirect, a disabled
        handler): when no handler of the application's would show the record, it goes
        to ``logging.lastResort``, the way ``logging`` treats a logger with no handlers.
        """
        suppressed = self._limiter.allow(reason)
        if suppressed is None:
            return
        record = self._log(level, msg, args)
        if record is not None:
            show_on_stderr(reason, record)

    def _log(self, level: int, msg: str, args: tuple[object, ...]) -> logging.LogRecord | None:
        # Format here so the key can be scrubbed from the finished text, whatever the args held.
        try:
            text = redact(msg % args if args else msg, self._secrets)
            path, line, func, _ = logger.findCaller()
            record = logger.makeRecord(logger.name, level, path, line, text, (), None, func)
            if logger.isEnabledFor(level):
                logger.handle(record)
            return record
        except Exception:  # a diagnostic must never break the caller
            return None


def _someone_listens(level: int) -> bool:
    """Whether a handler other than ours would show a ``slaos_logging`` record."""
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            # SlaOSHandler ignores our records, so it shows nothing either.
            if isinstance(handler, logging.NullHandler) or getattr(
                handler, "ignores_slaos_logging", False
            ):
                continue
            if level >= handler.level:
                return True
        current = current.parent if current.propagate else None
    return False


def show_on_stderr(reason: str, record: logging.LogRecord) -> None:
    """Show ``record`` through ``logging.lastResort`` once per reason, if nobody listens."""
    try:
        if not logger.isEnabledFor(record.levelno) and logger.getEffectiveLevel() > 30:
            return  # the application turned our warnings off on purpose
        with _ALERT_LOCK:
            if reason in _ALERTED:
                return
            _ALERTED.add(reason)
        if _someone_listens(record.levelno):
            return
        last = logging.lastResort
        if last is not None and record.levelno >= last.level:
            last.handle(record)
        elif last is None:
            sys.stderr.write(record.getMessage() + "\n")
    except Exception:  # a diagnostic must never break the caller
        pass


class _UrlRedactingFilter(logging.Filter):
    """Scrubs live ingestion keys from urllib3's request lines (it logs the path at DEBUG)."""

    def __init__(self) -> None:
        super().__init__()
        self._owners: weakref.WeakKeyDictionary[object, str] = weakref.WeakKeyDictionary()

    def add(self, owner: object, secret: str) -> None:
        self._owners[owner] = secret

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = [s for s in list(self._owners.values()) if s]
        if not secrets:
            return True
        try:
            if isinstance(record.msg, str):
                record.msg = redact(record.msg, secrets)
            if isinstance(record.args, tuple):
                record.args = tuple(
                    redact(a, secrets) if isinstance(a, str) else a for a in record.args
                )
        except Exception:  # never break urllib3's logging call
            pass
        return True


_url_filter = _UrlRedactingFilter()
_URLLIB3_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry", "urllib3.connection")
for _name in _URLLIB3_LOGGERS:
    logging.getLogger(_name).addFilter(_url_filter)


def protect_secret(owner: object, secret: str) -> None:
    """Redact ``secret`` from urllib3's log records for as long as ``owner`` lives."""
    _url_filter.add(owner, secret)
