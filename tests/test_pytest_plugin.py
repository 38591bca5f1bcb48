"""The pytest plugin: inner test suites that use ``slaos_events``, run by pytest's pytester."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# Every inner test logs through a real handler aimed at a closed loopback port: an event
# that escaped the capture would be counted as enqueued (and then fail to arrive).
INNER_SUITE = """
import logging
import os
import threading

from slaos_logging import SlaOSHandler, SlaOSWorker

handler = SlaOSHandler(
    host="http://127.0.0.1:9", ingestion_id="id", ingestion_key="key-0123",
    key="rated_api", events=["request_finished"],
)
log = logging.getLogger("inner.app")
log.addHandler(handler)
log.setLevel(logging.INFO)
log.propagate = False


def finished(org, status):
    log.info("request_finished", extra={"organization_id": org, "status_code": status})


def test_helpers(slaos_events):
    finished("acme", 500)
    finished("beta", 200)
    log.info("other line", extra={"organization_id": "acme"})
    assert len(slaos_events) == 2
    assert slaos_events.for_org("acme").values("status_code") == [500]
    assert [e["organization_id"] for e in slaos_events] == ["acme", "beta"]
    assert slaos_events[1]["key"] == "rated_api"
    slaos_events.clear()
    finished("gamma", 201)
    assert slaos_events.organizations() == ["gamma"]


def test_starts_empty(slaos_events):
    assert list(slaos_events) == []
    finished("acme", 200)
    assert len(slaos_events) == 1


def test_other_thread(slaos_events):
    thread = threading.Thread(target=finished, args=("acme", 503))
    thread.start()
    thread.join(10)
    assert slaos_events.values("status_code") == [503]


def test_worker(slaos_events):
    with SlaOSWorker("http://127.0.0.1:9", "id", "key-0123") as worker:
        assert worker.add_event({"organization_id": "w", "key": "k", "values": {"n": 1}})
    assert slaos_events.for_key("k").organizations() == ["w"]


def test_zz_nothing_left_this_process():
    assert handler.stats()["enqueued"] == 0
    assert not [t for t in threading.enumerate() if t.name == "slaos-logging-sender"]
    with open(os.environ["INNER_PIDS"], "a") as pids:
        pids.write(f"{os.getpid()}\\n")
"""


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester directory holding INNER_SUITE; plugins load as an installed package's do."""
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    monkeypatch.setenv("INNER_PIDS", str(pytester.path / "pids.txt"))
    pytester.makepyfile(test_inner=INNER_SUITE)
    return pytester


def test_fixture_through_entry_point(inner: pytest.Pytester) -> None:
    """Installed, the plugin gives every test a fresh slaos_events; nothing is sent."""
    result = inner.runpytest_subprocess("-p", "no:cacheprovider", timeout=60)
    result.assert_outcomes(passed=5)


def test_fixture_under_xdist(inner: pytest.Pytester) -> None:
    """Under ``-p xdist -n 2`` each worker process captures its own tests' events."""
    result = inner.runpytest_subprocess(
        "-p", "xdist", "-n", "2", "-p", "no:cacheprovider", "--dist", "load", timeout=60
    )
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(["*2 workers*"])
    pids = (inner.path / "pids.txt").read_text().split()
    assert pids and str(os.getpid()) not in pids, "the tests did not run in xdist workers"


def test_plugin_can_be_disabled_by_name(inner: pytest.Pytester) -> None:
    """``-p no:slaos_logging`` turns the plugin off: the fixture is then unknown."""
    result = inner.runpytest_subprocess("-p", "no:slaos_logging", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=4)
    result.stdout.fnmatch_lines(["*fixture 'slaos_events' not found*"])


def test_plugin_by_module_without_autoload(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With plugin autoloading off, ``-p slaos_logging.pytest_plugin`` turns it on."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    result = inner.runpytest_subprocess(
        "-p", "slaos_logging.pytest_plugin", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=5)


def test_fixture_listed_with_its_help(pytester: pytest.Pytester) -> None:
    """``pytest --fixtures`` shows slaos_events and what it holds."""
    result = pytester.runpytest_subprocess("--fixtures", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*slaos_events*", "*events logged during the test*"])


def test_package_import_does_not_import_pytest() -> None:
    """Importing the package and slaos_logging.testing loads neither pytest nor the plugin."""
    code = (
        "import sys, slaos_logging, slaos_logging.testing\n"
        "loaded = [m for m in ('pytest', '_pytest', 'slaos_logging.pytest_plugin')"
        " if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


def test_example_suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """examples/test_flask_sla.py passes, with nothing but the fixture."""
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    for name in ("flask_app.py", "test_flask_sla.py"):
        (pytester.path / name).write_text((EXAMPLES / name).read_text())
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=60)
    result.assert_outcomes(passed=3)
