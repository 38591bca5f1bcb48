"""Settings: environment variable names, defaults, validation, and the frozen result."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ._endpoint import check_credential, resolve_base_url

ENV_INGESTION_ID = "SLAOS_INGESTION_ID"
ENV_INGESTION_KEY = "SLAOS_INGESTION_KEY"
ENV_HOST = "SLAOS_HOST"
ENV_KEY = "SLAOS_KEY"
ENV_SPOOL_DIR = "SLAOS_SPOOL_DIR"
ENV_ENABLED = "SLAOS_ENABLED"
_FALSE = frozenset({"0", "false", "no", "off"})

DEFAULT_HOST = "api.rated.co"
DEFAULT_BATCH_SIZE = 500
DEFAULT_MAX_BATCH_BYTES = 1_000_000
DEFAULT_FLUSH_INTERVAL = 1.0
# Issue 2 asked for 10,000; a 20,000-event burst at full logging speed then
# overflows it (the sender gets about half the GIL while the application logs). At
# roughly 300-400 bytes per queued event, 50,000 costs at most ~20 MB.
DEFAULT_MAX_QUEUE_SIZE = 50_000
DEFAULT_MAX_RETRIES = 5
DEFAULT_TIMEOUT = 10.0
DEFAULT_SHUTDOWN_TIMEOUT = 5.0
DEFAULT_SPOOL_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_BACKOFF_BASE = 0.5
DEFAULT_BACKOFF_CAP = 30.0

OrganizationSource = str | Callable[[], object] | None


@dataclass(frozen=True, repr=False)
class Config:
    """Everything a pipeline needs, validated once at construction.

    The ingestion key is held here only; ``repr`` masks it.
    """

    base_url: str
    ingestion_id: str
    ingestion_key: str
    key: str | None = None
    events: frozenset[str] | None = None
    organization_id: OrganizationSource = None
    value_fields: frozenset[str] | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES
    flush_interval: float = DEFAULT_FLUSH_INTERVAL
    max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE
    max_retries: int = DEFAULT_MAX_RETRIES
    timeout: float = DEFAULT_TIMEOUT
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
    verify: bool | str = True
    backoff_base: float = DEFAULT_BACKOFF_BASE
    backoff_cap: float = DEFAULT_BACKOFF_CAP
    spool_dir: str | None = None
    spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES
    #: ``False``: turned off (``enabled=False``, ``SLAOS_ENABLED=0``, or no credentials
    #: at all): nothing is sent, no thread is started.
    enabled: bool = True
    #: Why it is off: ``"no_credentials"`` (worth a warning) or ``"off"`` (asked for).
    disabled_reason: str = ""

    @property
    def endpoint(self) -> str:
        """The ingestion URL. It contains the key: never log or print it."""
        return f"{self.base_url}/v1/ingest/{self.ingestion_id}/{self.ingestion_key}"

    @property
    def masked_endpoint(self) -> str:
        """The ingestion URL with the key replaced by ``***``, safe to show."""
        return f"{self.base_url}/v1/ingest/{self.ingestion_id}/***"

    def __repr__(self) -> str:
        # getattr: repr must not raise, even on an instance whose construction failed.
        return (
            f"Config(base_url={getattr(self, 'base_url', None)!r}, "
            f"ingestion_id={getattr(self, 'ingestion_id', None)!r}, "
            f"ingestion_key='***', key={getattr(self, 'key', None)!r})"
        )


def _positive(name: str, value: float, *, integer: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if integer and not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")


def _names(name: str, value: Iterable[str] | str | None) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        # A single name is a common slip in settings files: accept it rather than
        # treating it as a set of characters.
        return frozenset((value,))
    names = frozenset(value)
    if not all(isinstance(n, str) for n in names):
        raise ValueError(f"{name} must be a list of strings")
    return names


def _credential(value: str | None, env: str) -> str:
    if value is None:
        value = os.environ.get(env)
    return value or ""


def _missing(name: str, env: str) -> ValueError:
    return ValueError(f"{name} is required: pass {name}=... or set the {env} environment variable")


def _enabled(enabled: bool | None) -> bool:
    if enabled is not None:
        return bool(enabled)
    return os.environ.get(ENV_ENABLED, "").strip().lower() not in _FALSE


def build_config(
    *,
    ingestion_id: str | None = None,
    ingestion_key: str | None = None,
    host: str | None = None,
    allow_insecure_http: bool = False,
    key: str | None = None,
    events: Iterable[str] | str | None = None,
    organization_id: OrganizationSource = None,
    value_fields: Iterable[str] | str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
    flush_interval: float = DEFAULT_FLUSH_INTERVAL,
    max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE,
    max_retries: int = DEFAULT_MAX_RETRIES,
    timeout: float = DEFAULT_TIMEOUT,
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
    verify: bool | str = True,
    backoff_base: float = DEFAULT_BACKOFF_BASE,
    backoff_cap: float = DEFAULT_BACKOFF_CAP,
    spool_dir: str | os.PathLike[str] | None = None,
    spool_max_bytes: int = DEFAULT_SPOOL_MAX_BYTES,
    enabled: bool | None = None,
) -> Config:
    """Validate arguments, fill the rest from ``SLAOS_*`` variables, and freeze them.

    With neither credential given (nor in the environment) the result is disabled
    (``enabled=False``, reason ``"no_credentials"``), as is one asked to be off by
    ``enabled=False`` or ``SLAOS_ENABLED=0``/``false``.

    Raises:
        ValueError: With a message that names the offending argument (and its
            environment variable, where it has one). Exactly one credential missing
            is such an error: a misconfiguration, not an absent configuration.
    """
    ingestion_id = _credential(ingestion_id, ENV_INGESTION_ID)
    ingestion_key = _credential(ingestion_key, ENV_INGESTION_KEY)
    reason = ""
    if not _enabled(enabled):
        reason = "off"
    elif not ingestion_id and not ingestion_key:
        reason = "no_credentials"
    elif not ingestion_id:
        raise _missing("ingestion_id", ENV_INGESTION_ID)
    elif not ingestion_key:
        raise _missing("ingestion_key", ENV_INGESTION_KEY)
    for name, secret in (("ingestion_id", ingestion_id), ("ingestion_key", ingestion_key)):
        if secret:  # absent only when the handler is disabled
            check_credential(name, secret)
    base_url = resolve_base_url(
        host or os.environ.get(ENV_HOST) or DEFAULT_HOST, allow_insecure_http=allow_insecure_http
    )
    for name, number, integer in (
        ("batch_size", batch_size, True),
        ("max_batch_bytes", max_batch_bytes, True),
        ("flush_interval", flush_interval, False),
        ("max_queue_size", max_queue_size, True),
        ("timeout", timeout, False),
        ("shutdown_timeout", shutdown_timeout, False),
        ("backoff_base", backoff_base, False),
        ("backoff_cap", backoff_cap, False),
        ("spool_max_bytes", spool_max_bytes, True),
    ):
        _positive(name, number, integer=integer)
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(f"max_retries must be a non-negative integer, got {max_retries!r}")
    if not isinstance(verify, (bool, str)):
        raise ValueError("verify must be True, False or the path of a CA bundle")
    if organization_id is not None and not (
        isinstance(organization_id, str) or callable(organization_id)
    ):
        raise ValueError("organization_id must be a string or a zero-argument callable")
    key = key if key is not None else os.environ.get(ENV_KEY) or None
    # An empty string turns the spool off even when SLAOS_SPOOL_DIR is set.
    spool = spool_dir if spool_dir is not None else os.environ.get(ENV_SPOOL_DIR) or None
    if spool is not None and not os.fspath(spool):
        spool = None
    return Config(
        base_url=base_url,
        ingestion_id=ingestion_id,
        ingestion_key=ingestion_key,
        key=key,
        events=_names("events", events),
        organization_id=organization_id,
        value_fields=_names("value_fields", value_fields),
        batch_size=batch_size,
        max_batch_bytes=max_batch_bytes,
        flush_interval=float(flush_interval),
        max_queue_size=max_queue_size,
        max_retries=max_retries,
        timeout=float(timeout),
        shutdown_timeout=float(shutdown_timeout),
        verify=verify,
        backoff_base=float(backoff_base),
        backoff_cap=float(backoff_cap),
        spool_dir=os.fspath(spool) if spool is not None else None,
        spool_max_bytes=spool_max_bytes,
        enabled=not reason,
        disabled_reason=reason,
    )
