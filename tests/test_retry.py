"""Retry policy: status classification, full-jitter backoff, Retry-After parsing."""

from __future__ import annotations

import email.utils
import time

import pytest

from slaos_logging._retry import (
    RETRY_AFTER_CAP,
    RetryPolicy,
    Verdict,
    classify,
    parse_retry_after,
)


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, Verdict.OK),
        (201, Verdict.OK),
        (202, Verdict.OK),
        (204, Verdict.OK),
        (408, Verdict.RETRY),
        (429, Verdict.RETRY),
        (500, Verdict.RETRY),
        (502, Verdict.RETRY),
        (503, Verdict.RETRY),
        (504, Verdict.RETRY),
        (None, Verdict.RETRY),
        (413, Verdict.SPLIT),
        (400, Verdict.INVALID),
        (422, Verdict.INVALID),
        (401, Verdict.AUTH),
        (403, Verdict.AUTH),
        (404, Verdict.AUTH),
        (405, Verdict.FAIL),
        (409, Verdict.FAIL),
        (501, Verdict.FAIL),
        (505, Verdict.FAIL),
        (507, Verdict.RETRY),
        (520, Verdict.RETRY),
        (524, Verdict.RETRY),
        (599, Verdict.RETRY),
        (301, Verdict.RETRY),
        (308, Verdict.RETRY),
    ],
)
def test_classify(status: int | None, verdict: Verdict) -> None:
    """Each HTTP status (None: no answer) maps to its verdict."""
    assert classify(status) is verdict


@pytest.mark.parametrize(
    ("retry", "window"),
    [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 16.0), (6, 30.0), (7, 30.0)],
)
def test_backoff_window_doubles_up_to_cap(retry: int, window: float) -> None:
    """With rand() at its top the wait is min(cap, base * 2**n)."""
    policy = RetryPolicy(max_retries=10, base=0.5, cap=30.0)
    assert policy.backoff(retry, rand=lambda: 1.0) == pytest.approx(window)


def test_backoff_full_jitter_bottom_is_zero() -> None:
    """With rand() at 0 the wait is 0 whatever the retry number."""
    policy = RetryPolicy()
    assert [policy.backoff(n, rand=lambda: 0.0) for n in (0, 3, 10)] == [0.0, 0.0, 0.0]


def test_backoff_scales_rand_within_window() -> None:
    """The wait is rand() times the window (uniform jitter)."""
    policy = RetryPolicy(base=1.0, cap=30.0)
    assert policy.backoff(2, rand=lambda: 0.25) == pytest.approx(1.0)


def test_backoff_huge_retry_number_stays_capped() -> None:
    """A very large retry number neither overflows nor exceeds the cap."""
    policy = RetryPolicy(base=0.5, cap=30.0)
    assert policy.backoff(10_000, rand=lambda: 1.0) == 30.0


def test_backoff_default_rand_within_window() -> None:
    """With the real random source every wait lies in [0, window]."""
    policy = RetryPolicy(base=0.5, cap=30.0)
    waits = [policy.backoff(2) for _ in range(200)]
    assert all(0.0 <= w <= 2.0 for w in waits)
    assert len(set(waits)) > 1


def test_delay_prefers_retry_after() -> None:
    """A Retry-After value is used instead of backoff."""
    policy = RetryPolicy(base=0.5, cap=30.0)
    assert policy.delay(0, 7.0, rand=lambda: 1.0) == 7.0
    assert policy.delay(0, 0.0, rand=lambda: 1.0) == 0.0


def test_delay_caps_retry_after_at_60() -> None:
    """Retry-After beyond 60 s is capped at 60 s."""
    assert RetryPolicy().delay(0, 3600.0) == RETRY_AFTER_CAP == 60.0


def test_delay_without_retry_after_is_backoff() -> None:
    """With no Retry-After the delay is the jittered backoff."""
    policy = RetryPolicy(base=0.5, cap=30.0)
    assert policy.delay(3, None, rand=lambda: 1.0) == pytest.approx(4.0)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("3", 3.0), (" 7 ", 7.0), ("0", 0.0), ("999", 60.0)],
)
def test_parse_retry_after_seconds(header: str, seconds: float) -> None:
    """Delta-seconds values are read and capped at 60."""
    assert parse_retry_after(header) == seconds


def test_parse_retry_after_future_http_date() -> None:
    """An HTTP date about 10 s ahead gives about 10 s."""
    header = email.utils.formatdate(time.time() + 10, usegmt=True)
    seconds = parse_retry_after(header)
    assert seconds is not None
    assert 8.0 <= seconds <= 11.0


def test_parse_retry_after_past_http_date_is_zero() -> None:
    """An HTTP date in the past means retry now."""
    header = email.utils.formatdate(time.time() - 3600, usegmt=True)
    assert parse_retry_after(header) == 0.0


@pytest.mark.parametrize("header", ["soon", "-5", "1.5.2", None, ""])
def test_parse_retry_after_garbage_is_none(header: str | None) -> None:
    """Unreadable or absent headers give None (fall back to backoff)."""
    assert parse_retry_after(header) is None


def test_allows_counts_retries() -> None:
    """allows() permits exactly max_retries retries."""
    policy = RetryPolicy(max_retries=2)
    assert [policy.allows(n) for n in range(4)] == [True, True, False, False]
    assert RetryPolicy(max_retries=0).allows(0) is False
