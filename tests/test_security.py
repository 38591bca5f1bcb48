"""The security review's attacks on the library's settings and messages, each one failing."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator

import pytest
import requests

from slaos_logging import SlaOSHandler, SlaOSWorker
from slaos_logging._config import Config, build_config
from slaos_logging._diagnostics import protect_secret, redact
from slaos_logging._endpoint import resolve_base_url
from tests.integration_support import Collect, attach
from tests.server import RecordingServer

KEY = "sk_test_LEAKME_9f8e7d6c5b4a"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SLAOS_* variable of the developer's shell leaks into a test."""
    for name in ("SLAOS_HOST", "SLAOS_INGESTION_ID", "SLAOS_INGESTION_KEY", "SLAOS_SPOOL_DIR"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    "host",
    [
        "http://collector.example:8080\\@127.0.0.1",
        "https://collector.example\\@127.0.0.1",
        "http://user@127.0.0.1:8080",
        "http://user:pass@127.0.0.1",
        "http://127.0.0.1 .evil.example",
        "http://127.0.0.1\t:8080",
        "http://127.0.0.1\x00.evil.example",
        "http://127.0.0.1\x1b:8080",
        "http://127.0.0.1\x85:8080",
        "http://%31%32%37.0.0.1:8080",
    ],
)
def test_host_that_parsers_read_differently_is_refused(host: str) -> None:
    """Backslash, userinfo, white space, control characters: ValueError naming host, no echo."""
    with pytest.raises(ValueError, match=r"^host: ") as caught:
        build_config(ingestion_id="id", ingestion_key=KEY, host=host)
    assert host not in str(caught.value) and "collector" not in str(caught.value)


def test_backslash_host_sends_nothing_anywhere(server: RecordingServer) -> None:
    """The review's attack: the handler refuses the host, and the loopback server sees nothing."""
    port = server.url.rsplit(":", 1)[1]
    host = f"http://collector.example:{port}\\@127.0.0.1"
    with pytest.raises(ValueError, match="host"):
        SlaOSHandler(ingestion_id="id", ingestion_key=KEY, host=host)
    assert server.requests == []


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://[::1]:8080/", "http://[::1]:8080"),
        ("http://localhost:8080/base/v1/ingest", "http://localhost:8080/base"),
        ("api.rated.co", "https://api.rated.co"),
        ("HTTPS://API.rated.co:443", "https://api.rated.co:443"),
    ],
)
def test_loopback_and_https_judged_by_the_connecting_parser(host: str, expected: str) -> None:
    """The base URL is rebuilt from urllib3's reading: what is checked is what connects."""
    assert resolve_base_url(host) == expected


def test_plain_http_to_a_network_host_still_refused() -> None:
    """http:// to a non-loopback host needs allow_insecure_http, as before."""
    with pytest.raises(ValueError, match=r"host: plain http:// to 10\.1\.2\.3"):
        resolve_base_url("http://10.1.2.3:8080")
    assert resolve_base_url("http://10.1.2.3:8080", allow_insecure_http=True)


@pytest.mark.parametrize("bad", ['sk"quote', "sk^caret", "sk|pipe", "sk%41", "sk/x", "sk key", "é"])
@pytest.mark.parametrize("name", ["ingestion_id", "ingestion_key"])
def test_credentials_outside_the_url_safe_set_are_refused(name: str, bad: str) -> None:
    """A credential that would need percent-encoding: ValueError naming it, value not echoed."""
    good = {"ingestion_id": "id-1", "ingestion_key": KEY}
    with pytest.raises(ValueError, match=f"^{name} may only contain") as caught:
        SlaOSHandler(**{**good, name: bad})
    assert bad not in str(caught.value)


def test_url_safe_credentials_are_accepted() -> None:
    """Letters, digits and - . _ ~ are all a key may need."""
    config = build_config(ingestion_id="Org-1.a_b~", ingestion_key="sk_Test-9.x~Y")
    assert config.endpoint.endswith("/v1/ingest/Org-1.a_b~/sk_Test-9.x~Y")


@pytest.mark.parametrize(
    "form",
    [
        "sk_test_%22%5E%7C_LEAK",
        "sk_test_%22%5e%7c_LEAK",
        'sk_test_"%5E|_LEAK',
        "%73%6B_test_%22%5E%7C_LEAK",
    ],
)
def test_percent_encoded_key_is_redacted(form: str) -> None:
    """Any mix of raw and percent-encoded characters of the key is masked."""
    secret = 'sk_test_"^|_LEAK'
    text = redact(f"POST /v1/ingest/id/{form} HTTP/1.1 500", [secret])
    assert text == "POST /v1/ingest/id/*** HTTP/1.1 500"


def test_redaction_leaves_other_text_alone() -> None:
    """A differently cased or different string is not masked."""
    assert redact("sk_test_%22%5e%7c_leak", ['sk_test_"^|_LEAK']) == "sk_test_%22%5e%7c_leak"


@pytest.fixture
def urllib3_debug() -> Iterator[Collect]:
    """urllib3's connection pool records at DEBUG, through our own handler."""
    yield from attach("urllib3.connectionpool")


def test_encoded_key_is_redacted_from_urllib3_debug_line(urllib3_debug: Collect) -> None:
    """urllib3 logs the path as sent (encoded): the filter masks that form too."""
    secret = 'sk_test_"^|_LEAK'

    class Owner:
        pass

    owner = Owner()
    protect_secret(owner, secret)
    url = requests.Request("POST", f"http://127.0.0.1:9/v1/ingest/id/{secret}").prepare().url
    assert url is not None and "%22%5E%7C" in url
    logging.getLogger("urllib3.connectionpool").debug('%s "POST %s HTTP/1.1" 200 2', "h", url)
    lines = [record.getMessage() for record in urllib3_debug.records]
    assert lines and all("LEAK" not in line and "***" in line for line in lines)
    del owner


def test_repr_of_half_built_handler_never_raises() -> None:
    """A handler whose __init__ failed still has a repr (traceback capture_locals needs it)."""
    try:
        SlaOSHandler(ingestion_id="id", ingestion_key=KEY, batch_size=0)
    except ValueError as exc:
        text = "".join(
            traceback.TracebackException.from_exception(exc, capture_locals=True).format()
        )
    else:  # pragma: no cover - the settings above are invalid
        pytest.fail("batch_size=0 was accepted")
    assert "batch_size" in text and "self = <SlaOSHandler" in text
    bare = SlaOSHandler.__new__(SlaOSHandler)
    assert "SlaOSHandler" in repr(bare)
    config = Config.__new__(Config)
    assert "ingestion_key='***'" in repr(config)
    assert "SlaOSWorker" in repr(SlaOSWorker.__new__(SlaOSWorker))
