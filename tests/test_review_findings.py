"""Regression tests for what an adversarial review of the merged work found."""

from __future__ import annotations

import argparse
import enum
import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from slaos_logging import SlaOSHandler
from slaos_logging._encode import dumps_event
from slaos_logging._endpoint import resolve_base_url
from slaos_logging.cli import main
from slaos_logging.cli._credentials import serve_credentials
from slaos_logging.cli._receiver import Receiver
from slaos_logging.cli._terminal import printable
from slaos_logging.testing import capture_events

from .conftest import KEY
from .integration_support import Collect
from .server import RecordingServer, Reply
from .test_encoding_parity import _encoders

pytest_plugins = ["pytester"]

#: Location headers a broken or hostile endpoint may send, and how each must be named.
ODD_LOCATIONS = [
    ("unparsable", "http://[::1/x", "an unreadable Location"),
    ("control-characters", "http://ev\x1b]0;pwned\x07il.example/", "an unreadable Location"),
    ("huge-host", "http://" + "a" * 60_000 + ".example/", "an unreadable Location"),
    ("bare-word", "login", "{server}"),
    ("backslash", "http://evil.example\\@127.0.0.1/", "http://evil.example"),
    ("empty", "", "nowhere (no Location header)"),
]


class Real(float):
    """A float subclass, as numpy.float64 is."""


class Setting(enum.Enum):
    """Enum members with values that are not strings, used as dict keys."""

    ON = True
    UNSET = None
    SMALL = 1e-07
    THREE = 3


FLOAT_CASES: list[tuple[str, object, object]] = [
    ("float-subclass", Real(1e-05), 1e-05),
    ("float-subclass-nan", Real("nan"), None),
    ("float-subclass-in-list", [Real(3.0), Real(2.5e-08)], [3.0, 2.5e-08]),
    ("float-key", {1e-07: 1}, {"1e-07": 1}),
    ("float-keys", {1e16: 1, 0.1: 2}, {"1e+16": 1, "0.1": 2}),
    ("float-subclass-key", {Real(2.5e-08): 1}, {"2.5e-08": 1}),
    ("str-key-like-a-float", {"1e-07": "s"}, {"1e-07": "s"}),
    (
        "enum-keys",
        {Setting.ON: 1, Setting.UNSET: 2, Setting.SMALL: 3, Setting.THREE: 4},
        {"true": 1, "null": 2, "1e-07": 3, "3": 4},
    ),
]


@pytest.mark.parametrize(
    ("value", "expected"), [c[1:] for c in FLOAT_CASES], ids=[c[0] for c in FLOAT_CASES]
)
def test_float_subclasses_and_float_keys_encode_identically(
    value: object, expected: object
) -> None:
    """Float subclasses and float dict keys get the same bytes from every encoder and the spool."""
    batch: list[dict[str, Any]] = [{"values": {"v": value}}, {"values": {"ok": 1}}]
    bodies = {encode(batch) for encode in _encoders()}
    bodies.add(b"[" + b",".join(dumps_event(event) for event in batch) + b"]")
    assert len(bodies) == 1, bodies
    (body,) = bodies
    decoded = json.loads(body)
    assert decoded[1] == {"values": {"ok": 1}}
    assert _numeric_keys(decoded[0]["values"]["v"]) == _numeric_keys(expected)


def _numeric_keys(value: object) -> object:
    # A float key's text is the encoder's float form ("1e-7" or "1e-07"); its number is not.
    if not isinstance(value, dict):
        return value
    return {(float(k) if k[:1].isdigit() else k): v for k, v in value.items()}


def test_a_float_key_beside_its_lookalike_str_key_encodes_identically() -> None:
    """A dict with the float 1e-07 and the string "1e-07" as keys: the same bytes everywhere."""
    event = {"values": {"v": {"1e-07": "str", 1e-07: "float"}, "w": {1e-07: 0}}}
    bodies = {encode([event]) for encode in _encoders()} | {b"[" + dumps_event(event) + b"]"}
    assert len(bodies) == 1, bodies


@pytest.mark.parametrize(
    ("location", "named"), [c[1:] for c in ODD_LOCATIONS], ids=[c[0] for c in ODD_LOCATIONS]
)
def test_an_odd_location_is_a_redirect_named_in_one_bounded_line(
    location: str,
    named: str,
    server: RecordingServer,
    make_handler: Callable[..., SlaOSHandler],
    app_logger: logging.Logger,
    diagnostics: Collect,
) -> None:
    """A 3xx with an unparsable, huge or odd Location is reported as a redirect, not no answer."""
    server.responder = lambda body: Reply(status=302, headers={"Location": location}, body=b"")
    handler = make_handler(max_retries=0)
    app_logger.addHandler(handler)
    app_logger.info("request_finished", extra={"organization_id": "acme"})
    assert handler.flush(10), "flush timed out"
    stats = handler.stats()
    assert (stats["enqueued"], stats["sent"], stats["failed"]) == (1, 0, 1)
    messages = [r.getMessage() for r in diagnostics.records]
    redirects = [m for m in messages if "answered HTTP 302" in m]
    assert len(redirects) == 1, messages
    assert f"a redirect to {named.format(server=server.url)};" in redirects[0]
    assert all(len(m) < 1000 for m in messages)
    assert not any("\x1b" in m or KEY in m for m in messages)


@pytest.mark.parametrize(
    ("location", "named"), [c[1:] for c in ODD_LOCATIONS], ids=[c[0] for c in ODD_LOCATIONS]
)
def test_check_names_an_odd_redirect_instead_of_crashing(
    location: str, named: str, server: RecordingServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """check fails each step on an odd Location with one bounded line, and no traceback."""
    server.responder = lambda body: Reply(status=302, headers={"Location": location}, body=b"")
    argv = ["check", "--host", server.url, "--ingestion-id", "dev", "--ingestion-key", KEY]
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert "unexpected" not in out + err
    expected = f"a redirect to {named.format(server=server.url)}:"
    health = [line for line in out.splitlines() if line.startswith("health")]
    credentials = [line for line in out.splitlines() if line.startswith("credentials")]
    assert len(health) == len(credentials) == 1, out
    assert expected in health[0] and expected in credentials[0]
    assert all(len(line) < 1000 for line in out.splitlines())
    assert KEY not in out + err


def test_a_failed_test_shows_a_bounded_excerpt_of_its_events(pytester: pytest.Pytester) -> None:
    """A failing test that captured 5,000 events shows 50 of them and a count, not 5,000 lines."""
    pytester.makepyfile(
        test_many="""
import logging
from slaos_logging import SlaOSHandler

handler = SlaOSHandler(
    host="http://127.0.0.1:9", ingestion_id="id", ingestion_key="key-0123", key="rated_api"
)
log = logging.getLogger("inner.many")
log.addHandler(handler)
log.propagate = False


def test_many(slaos_events):
    for n in range(5000):
        log.warning("request_finished", extra={"organization_id": "acme", "n": n})
    assert len(slaos_events) == 0
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    shown = [line for line in out.splitlines() if line.startswith('{"organization_id": "acme"')]
    assert len(shown) == 50
    assert '"n": 0}' in shown[0] and '"n": 4999}' in shown[-1]
    assert "4950 more events not shown" in out


UNSTORABLE = [
    ("infinite-number", b'{"v":1e400}'),
    ("lone-surrogate-value", b'{"v":"\\udc80"}'),
    ("lone-surrogate-name", b'{"\\ud800":1}'),
]


@pytest.mark.parametrize("values", [c[1] for c in UNSTORABLE], ids=[c[0] for c in UNSTORABLE])
def test_serve_refuses_an_unstorable_event_with_400(values: bytes, tmp_path: Path) -> None:
    """An infinite number or a lone surrogate is a 400 naming the event, not a 500 or bad JSON."""
    good = b'{"organization_id":"o","key":"k","timestamp":"2024-01-01T00:00:00Z","values":{}}'
    bad = b'{"organization_id":"o","key":"k","timestamp":"2024-01-01T00:00:00Z","values":%s}' % (
        values
    )
    with Receiver(db_path=tmp_path / "events.sqlite") as receiver:
        answer = requests.post(receiver.ingest_url, data=b"[%s,%s]" % (good, bad), timeout=30)
        assert answer.status_code == 400, answer.text
        assert answer.json()["rejected"] == 1
        assert answer.json()["detail"][0]["index"] == 1
        assert receiver.store.count() == 0
        readback = requests.get(receiver.ingest_url + "/indexed-slis", timeout=30)
        assert readback.status_code == 200
        assert readback.json() == []


def test_serve_quotes_a_lone_surrogate_in_its_400(tmp_path: Path) -> None:
    """An unknown field named by a lone surrogate is a 400 that quotes it, not a 500."""
    event = b'{"organization_id":"o","key":"k","timestamp":"2024-01-01T00:00:00Z","values":{}'
    with Receiver(db_path=tmp_path / "events.sqlite") as receiver:
        answer = requests.post(receiver.ingest_url, data=event + b',"x\\ud800":1}', timeout=30)
        assert answer.status_code == 400, answer.text
        assert answer.json()["detail"][0]["reason"] == "unknown field(s): x\ud800"


LEGITIMATE_HOSTS = [
    ("http://[::1]:8080", "http://[::1]:8080"),
    ("http://[::1]:8080/", "http://[::1]:8080"),
    ("[::1]:8443", "https://[::1]:8443"),
    ("HTTP://LOCALHOST:8080", "http://localhost:8080"),
    ("HTTPS://API.RATED.CO/", "https://api.rated.co"),
    ("api.rated.co:443", "https://api.rated.co:443"),
    ("https://bücher.example:8443/x/", "https://xn--bcher-kva.example:8443/x"),
    ("https://proxy.example/slaos%2Dproxy/v1/ingest/", "https://proxy.example/slaos%2Dproxy"),
    ("https://proxy.example/a%20b//", "https://proxy.example/a%20b"),
]


@pytest.mark.parametrize(("host", "expected"), LEGITIMATE_HOSTS)
def test_legitimate_hosts_are_accepted(host: str, expected: str) -> None:
    """IPv6, upper case, ports, IDNA, trailing slashes and an encoded path are all accepted."""
    assert resolve_base_url(host) == expected


@pytest.mark.parametrize("host", ["http://%31%32%37.0.0.1:8080", "ho%73t/x", "https://a%2eb/"])
def test_an_encoded_host_name_is_still_refused(host: str) -> None:
    """Percent-encoding stays refused in the host name, which parsers decode differently."""
    with pytest.raises(ValueError, match=r"^host: may not contain percent-encoding"):
        resolve_base_url(host)


def test_printable_escapes_every_bidirectional_control() -> None:
    """The Arabic letter mark reorders text like the other bidi marks: it is escaped too."""
    marks = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
    assert printable(f"a{marks}b") == "a" + "".join(f"\\u{ord(c):04x}" for c in marks) + "b"


@pytest.mark.parametrize(
    "host",
    [
        f"https://api.rated.co/v1/ingest/myid/{KEY}",
        f"https://api.rated.co/v1/ingest/myid/{KEY}/",
        f"http://127.0.0.1:8080/v1/ingest/myid/{KEY}/indexed-slis",
    ],
)
def test_a_pasted_ingestion_url_is_refused_without_echoing_the_key(host: str) -> None:
    """A whole ingestion URL as host is a ValueError naming host that never echoes the key."""
    with pytest.raises(ValueError, match=r"^host: this is an ingestion URL") as caught:
        SlaOSHandler(host=host, ingestion_id="myid", ingestion_key=KEY, key="k")
    assert KEY not in str(caught.value)


def test_check_refuses_a_pasted_ingestion_url(capsys: pytest.CaptureFixture[str]) -> None:
    """check says the host is a whole ingestion URL, without printing the key."""
    host = f"https://api.rated.co/v1/ingest/myid/{KEY}"
    assert main(["check", "--host", host, "--ingestion-id", "myid", "--ingestion-key", KEY]) == 1
    out, err = capsys.readouterr()
    assert "this is an ingestion URL" in out
    assert KEY not in out + err


def test_send_names_its_own_option_for_a_redirect(
    server: RecordingServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """send's redirect error points the user to --host, not to the handler's `host` argument."""
    location = f"https://elsewhere.example/v1/ingest/id/{KEY}/"
    server.responder = lambda body: Reply(status=308, headers={"Location": location})
    log = tmp_path / "app.log"
    log.write_text(json.dumps({"message": "m", "organization_id": "o", "key": "k"}) + "\n")
    argv = ["send", str(log), "--host", server.url, "--ingestion-id", "id", "--ingestion-key", KEY]
    assert main([*argv, "--no-progress", "--max-retries", "0"]) == 1
    _, err = capsys.readouterr()
    assert "a redirect to https://elsewhere.example;" in err
    assert "point --host at" in err and "`host`" not in err
    assert KEY not in err


class OnlyAcme(SlaOSHandler):
    """Overrides filter(), as logging.Handler subclasses may: only acme's records pass."""

    def filter(self, record: logging.LogRecord) -> logging.LogRecord | bool:
        if getattr(record, "organization_id", None) == "boom":
            raise RuntimeError("filter failed")
        return getattr(record, "organization_id", None) == "acme" and super().filter(record)


@pytest.mark.parametrize("with_filters", [False, True], ids=["no-filters", "with-filters"])
def test_a_subclass_filter_override_is_honoured(
    with_filters: bool, app_logger: logging.Logger
) -> None:
    """A subclass's filter() decides, with or without added filters; its error is counted."""
    handler = OnlyAcme(host="http://127.0.0.1:9", ingestion_id="i", ingestion_key=KEY, key="k")
    if with_filters:
        handler.addFilter(lambda record: True)
    app_logger.addHandler(handler)
    try:
        with capture_events() as events:
            for org in ("acme", "globex", "boom"):
                app_logger.info("request_finished", extra={"organization_id": org})
        assert [event["organization_id"] for event in events] == ["acme"]
        assert handler.stats()["skipped"] == 1  # the filter that raised
    finally:
        handler.close()


# A value whose __str__ takes an application lock, while another thread holds that lock
# and logs: capture must not hold its own lock while encoding, or both threads wait
# forever. Run in a child process, which reports its own verdict before the parent's
# timeout, so that a deadlock cannot hang the test run.
LOCKED_STR = """
import logging, os, threading
from slaos_logging import SlaOSHandler
from slaos_logging.testing import capture_events

handler = SlaOSHandler(ingestion_id="i", ingestion_key="key-0123", key="k", host="http://127.0.0.1:9")
log = logging.getLogger("locked")
log.propagate = False
log.setLevel(logging.INFO)
log.addHandler(handler)
app_lock = threading.Lock()
in_str = threading.Event()

class Lazy:
    def __str__(self):
        in_str.set()
        with app_lock:
            return "lazy"

def other():
    with app_lock:
        in_str.wait(5)
        log.info("m", extra={"organization_id": "other"})

def first():
    log.info("m", extra={"organization_id": "first", "v": Lazy()})

def scenario(result):
    with capture_events() as events:
        threads = [threading.Thread(target=f, daemon=True) for f in (other, first)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        result.append(sorted(e["organization_id"] for e in events))

result = []
runner = threading.Thread(target=scenario, args=(result,), daemon=True)
runner.start()
runner.join(20)
print(result[0] if result else "deadlocked: the capture did not finish within 20 s", flush=True)
os._exit(0)
"""


def test_capture_does_not_deadlock_on_a_value_that_takes_an_app_lock() -> None:
    """A __str__ that waits for a lock held by another logging thread does not hang capture."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(LOCKED_STR)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == "['first', 'other']", done.stdout + done.stderr


def test_a_key_file_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    """A key file saved by an editor that writes a UTF-8 byte order mark gives the key."""
    key_file = tmp_path / "key"
    key_file.write_bytes(b"\xef\xbb\xbf" + KEY.encode() + b"\r\n")
    key_file.chmod(0o600)
    args = argparse.Namespace(ingestion_id="dev", ingestion_key_file=str(key_file))
    assert serve_credentials(args) == ("dev", KEY)
