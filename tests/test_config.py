"""Settings: credentials from arguments or the environment, host forms, validation, masking."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from slaos_logging import SlaOSHandler
from slaos_logging._config import DEFAULT_HOST, Config, build_config
from slaos_logging._endpoint import resolve_base_url

SECRET = "very-secret-ingestion-key-42"
ENV_NAMES = (
    "SLAOS_INGESTION_ID",
    "SLAOS_INGESTION_KEY",
    "SLAOS_HOST",
    "SLAOS_KEY",
    "SLAOS_SPOOL_DIR",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No SLAOS_* variable of the machine running the tests leaks into them."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    yield


def config(**kwargs: Any) -> Config:
    options: dict[str, Any] = {"ingestion_id": "ingest-id", "ingestion_key": SECRET}
    options.update(kwargs)
    return build_config(**options)


# -- credentials -------------------------------------------------------------------------


def test_credentials_default_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """SLAOS_INGESTION_ID and SLAOS_INGESTION_KEY fill in missing credentials."""
    monkeypatch.setenv("SLAOS_INGESTION_ID", "env-id")
    monkeypatch.setenv("SLAOS_INGESTION_KEY", "env-key")
    cfg = build_config()
    assert (cfg.ingestion_id, cfg.ingestion_key) == ("env-id", "env-key")
    assert cfg.endpoint == "https://api.rated.co/v1/ingest/env-id/env-key"


def test_arguments_beat_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Explicit credentials win over the environment variables."""
    monkeypatch.setenv("SLAOS_INGESTION_ID", "env-id")
    monkeypatch.setenv("SLAOS_INGESTION_KEY", "env-key")
    cfg = build_config(ingestion_id="arg-id", ingestion_key="arg-key")
    assert (cfg.ingestion_id, cfg.ingestion_key) == ("arg-id", "arg-key")


@pytest.mark.parametrize(
    ("present", "missing", "env"),
    [
        ({"ingestion_key": SECRET}, "ingestion_id", "SLAOS_INGESTION_ID"),
        ({"ingestion_id": "ingest-id"}, "ingestion_key", "SLAOS_INGESTION_KEY"),
    ],
)
def test_missing_credential_names_parameter_and_env(
    present: dict[str, str], missing: str, env: str
) -> None:
    """A missing credential fails construction with its parameter and variable named."""
    with pytest.raises(ValueError) as info:
        SlaOSHandler(**present)  # type: ignore[arg-type]
    message = str(info.value)
    assert missing in message
    assert env in message
    assert SECRET not in message


def test_empty_environment_credential_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty SLAOS_INGESTION_KEY counts as missing, not as an empty key."""
    monkeypatch.setenv("SLAOS_INGESTION_ID", "env-id")
    monkeypatch.setenv("SLAOS_INGESTION_KEY", "")
    with pytest.raises(ValueError, match="SLAOS_INGESTION_KEY"):
        build_config()


# -- host ----------------------------------------------------------------------------------


def test_host_defaults_to_api_rated_co() -> None:
    """With no host and no SLAOS_HOST, events go to https://api.rated.co."""
    assert DEFAULT_HOST == "api.rated.co"
    assert config().base_url == "https://api.rated.co"


def test_host_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """SLAOS_HOST is used when no host is passed."""
    monkeypatch.setenv("SLAOS_HOST", "https://slaos.internal/prefix")
    assert config().base_url == "https://slaos.internal/prefix"


@pytest.mark.parametrize(
    ("host", "base"),
    [
        ("api.rated.co", "https://api.rated.co"),
        ("localhost:8080", "https://localhost:8080"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("https://slaos.internal/prefix", "https://slaos.internal/prefix"),
        ("https://slaos.internal/prefix/", "https://slaos.internal/prefix"),
        ("  api.rated.co  ", "https://api.rated.co"),
    ],
)
def test_host_forms(host: str, base: str) -> None:
    """A bare host means https; a full base URL is used as given."""
    cfg = config(host=host)
    assert cfg.base_url == base
    assert cfg.endpoint == f"{base}/v1/ingest/ingest-id/{SECRET}"


@pytest.mark.parametrize("host", ["http://api.rated.co", "http://10.0.0.5:8080/slaos"])
def test_plain_http_to_network_host_refused(host: str) -> None:
    """http:// to a non-loopback host is refused, naming the way out."""
    with pytest.raises(ValueError, match="allow_insecure_http") as info:
        config(host=host)
    assert SECRET not in str(info.value)


def test_plain_http_allowed_when_asked() -> None:
    """allow_insecure_http=True permits http:// to any host."""
    cfg = config(host="http://api.rated.co", allow_insecure_http=True)
    assert cfg.base_url == "http://api.rated.co"


@pytest.mark.parametrize(
    "host",
    ["http://127.0.0.1:8080", "http://127.9.8.7", "http://[::1]:8080", "http://localhost:8080"],
)
def test_plain_http_allowed_to_loopback(host: str) -> None:
    """Loopback hosts (127.0.0.0/8, ::1, localhost) may use plain http."""
    assert config(host=host).base_url == host


@pytest.mark.parametrize("host", ["ftp://api.rated.co", "https://", "https://h/p?q=1"])
def test_malformed_host_refused(host: str) -> None:
    """Other schemes, empty host names and query strings are refused."""
    with pytest.raises(ValueError, match="host"):
        resolve_base_url(host)


# -- numbers -------------------------------------------------------------------------------

NUMERIC = [
    "batch_size",
    "max_batch_bytes",
    "flush_interval",
    "max_queue_size",
    "timeout",
    "shutdown_timeout",
    "backoff_base",
    "backoff_cap",
    "spool_max_bytes",
]


@pytest.mark.parametrize("name", NUMERIC)
@pytest.mark.parametrize("bad", [0, -1, "10", None, True])
def test_numbers_must_be_positive(name: str, bad: object) -> None:
    """Zero, negatives, strings, None and booleans are refused with the argument named."""
    with pytest.raises(ValueError, match=name):
        config(**{name: bad})


@pytest.mark.parametrize("name", ["batch_size", "max_batch_bytes", "max_queue_size"])
def test_counts_must_be_integers(name: str) -> None:
    """Counts refuse fractional values."""
    with pytest.raises(ValueError, match=name):
        config(**{name: 1.5})


def test_valid_numbers_kept() -> None:
    """Valid numbers are stored, intervals as floats."""
    cfg = config(batch_size=7, flush_interval=2, timeout=3, max_retries=0)
    assert (cfg.batch_size, cfg.flush_interval, cfg.timeout, cfg.max_retries) == (7, 2.0, 3.0, 0)
    assert isinstance(cfg.flush_interval, float)


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_max_retries_non_negative_integer(bad: object) -> None:
    """max_retries may be 0 but not negative, fractional, a string or a boolean."""
    with pytest.raises(ValueError, match="max_retries"):
        config(max_retries=bad)


def test_organization_id_must_be_string_or_callable() -> None:
    """A default organization that is neither a string nor a callable is refused."""
    with pytest.raises(ValueError, match="organization_id"):
        config(organization_id=42)


# -- name lists ----------------------------------------------------------------------------


def test_single_event_name_is_not_split_into_characters() -> None:
    """events="request_finished" means one event name."""
    assert config(events="request_finished").events == frozenset({"request_finished"})


def test_value_fields_become_frozenset() -> None:
    """value_fields is stored as a frozenset of names."""
    assert config(value_fields=["took", "status_code"]).value_fields == frozenset(
        {"took", "status_code"}
    )


# -- the key never shows -------------------------------------------------------------------


def test_repr_and_masked_endpoint_hide_key() -> None:
    """Config's repr and masked_endpoint never contain the ingestion key."""
    cfg = config(host="https://slaos.internal/prefix")
    assert SECRET not in repr(cfg)
    assert SECRET not in cfg.masked_endpoint
    assert cfg.masked_endpoint == "https://slaos.internal/prefix/v1/ingest/ingest-id/***"
    assert "ingest-id" in repr(cfg)


def test_handler_repr_hides_key() -> None:
    """SlaOSHandler's repr shows the masked endpoint, never the key."""
    handler = SlaOSHandler(ingestion_id="ingest-id", ingestion_key=SECRET, key="rated_api")
    try:
        text = repr(handler)
        assert SECRET not in text
        assert "ingest-id/***" in text
    finally:
        handler.close()


@pytest.mark.parametrize("bad", ["a/b", "has space"])
def test_credential_shape_error_hides_value(bad: str) -> None:
    """A key with '/' or white space is refused without echoing it."""
    with pytest.raises(ValueError, match="ingestion_key") as info:
        config(ingestion_key=bad)
    assert bad not in str(info.value)


def test_unknown_level_names_the_argument() -> None:
    """level="NOPE" is a ValueError that says it is the level argument."""
    with pytest.raises(ValueError, match=r"^level must be a logging level.*'NOPE'"):
        SlaOSHandler(level="NOPE", ingestion_id="ingest-id", ingestion_key="key-0123")
