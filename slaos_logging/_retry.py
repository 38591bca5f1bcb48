"""Which answers are retried, and how long to wait: an immutable policy with pure maths."""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass

from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

#: Client errors worth another try; every 5xx is retried too, except these two, which
#: say the server cannot ever handle the request (not implemented, HTTP version).
RETRYABLE_STATUS = frozenset({408, 429})
NOT_RETRYABLE_5XX = frozenset({501, 505})
INVALID_STATUS = frozenset({400, 422})
AUTH_STATUS = frozenset({401, 403, 404})
RETRY_AFTER_CAP = 60.0

# Only its header parser is used: mounting Retry on the adapter would skip POST,
# retry 413 by itself and log the URL (which holds the key).
_RETRY_AFTER_PARSER = Retry(total=0)


class Verdict(enum.Enum):
    """What to do with a batch after one answer."""

    OK = "ok"
    RETRY = "retry"
    SPLIT = "split"
    INVALID = "invalid"
    AUTH = "auth"
    FAIL = "fail"


def classify(status: int | None) -> Verdict:
    """Map an HTTP status (``None``: no answer, i.e. connection error or timeout).

    A redirect (3xx) is never followed: the events were not stored, and the endpoint
    is failing like one that does not answer, so it is retried (then spooled or
    counted ``failed``) like any other failure of the endpoint.
    """
    if status is None:
        return Verdict.RETRY
    if 200 <= status < 300:
        return Verdict.OK
    if (
        300 <= status < 400
        or status in RETRYABLE_STATUS
        or (500 <= status < 600 and status not in NOT_RETRYABLE_5XX)
    ):
        return Verdict.RETRY
    if status == 413:
        return Verdict.SPLIT
    if status in INVALID_STATUS:
        return Verdict.INVALID
    if status in AUTH_STATUS:
        return Verdict.AUTH
    return Verdict.FAIL


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or HTTP date), capped at 60 s."""
    if not value:
        return None
    try:
        seconds = _RETRY_AFTER_PARSER.parse_retry_after(value)
    except (InvalidHeader, ValueError, OverflowError):
        return None
    return min(max(float(seconds), 0.0), RETRY_AFTER_CAP)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, as in the AWS architecture blog's analysis.

    Attributes:
        max_retries: Retries after the first attempt before a batch is given up.
        base: Backoff of the first retry's window, in seconds.
        cap: Upper bound of any backoff window, in seconds.
    """

    max_retries: int = 5
    base: float = 0.5
    cap: float = 30.0

    def backoff(self, retry: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number ``retry`` (0-based): uniform in [0, window]."""
        window = min(self.cap, self.base * (2.0 ** min(retry, 62)))
        return rand() * window

    def delay(
        self, retry: int, retry_after: float | None, rand: Callable[[], float] = random.random
    ) -> float:
        """The wait before a retry: the server's ``Retry-After`` if it sent one, else backoff."""
        if retry_after is not None:
            return min(retry_after, RETRY_AFTER_CAP)
        return self.backoff(retry, rand)

    def allows(self, retries_done: int) -> bool:
        """Whether another retry is allowed after ``retries_done`` retries."""
        return retries_done < self.max_retries
