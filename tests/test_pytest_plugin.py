"""The pytest plugin: inner test suites that use ``slaos_events``, run by pytest's pytester."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

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


@pytest.fixture(autouse=True)
def plain_pytest_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inner runs load plugins as an installed package's are, whatever runs this suite."""
    own = ("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_ADDOPTS", "PYTEST_PLUGINS")
    for name in list(os.environ):
        # PYTEST_XDIST_*: this suite may itself run in an xdist worker.
        if name in own or name.startswith("PYTEST_XDIST_"):
            monkeypatch.delenv(name)


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A pytester directory holding INNER_SUITE."""
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
    result = inner.runpytest_subprocess(
        "-p", "no:slaos_logging", "-p", "no:cacheprovider", timeout=60
    )
    result.assert_outcomes(passed=1, errors=4)
    result.stdout.fnmatch_lines(["*fixture 'slaos_events' not found*"])


def test_plugin_by_module_without_autoload(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With plugin autoloading off, ``-p slaos_logging.pytest_plugin`` turns it on."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    result = inner.runpytest_subprocess(
        "-p", "slaos_logging.pytest_plugin", "-p", "no:cacheprovider", timeout=60
    )
    result.assert_outcomes(passed=5)


def test_fixture_listed_with_its_help(pytester: pytest.Pytester) -> None:
    """``pytest --fixtures`` shows slaos_events and what it holds."""
    result = pytester.runpytest_subprocess("--fixtures", "-p", "no:cacheprovider", timeout=60)
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


def test_example_suite(pytester: pytest.Pytester) -> None:
    """examples/test_flask_sla.py passes, with nothing but the fixture."""
    for name in ("flask_app.py", "test_flask_sla.py"):
        (pytester.path / name).write_text((EXAMPLES / name).read_text())
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=60)
    result.assert_outcomes(passed=3)


def run(args: list[str | Path], timeout: float, **kwargs: object) -> str:
    """Run a command; fail with its output if it fails or takes longer than ``timeout``."""
    done = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,  # type: ignore[call-overload]
    )
    assert done.returncode == 0, f"{args[:4]} failed:\n{done.stdout}\n{done.stderr}"
    return str(done.stdout)


def outer_dependencies(into: Path) -> Path:
    """Links to this environment's installed packages, except slaos-logging's own files.

    The fresh venv finds pytest, Flask and the runtime dependencies there without a
    download, and can only find slaos_logging (and its entry point) in the wheel.
    """
    into.mkdir()
    own = ("slaos_logging", "slaos-logging", "__editable__", "_slaos_logging")
    for site_dir in {Path(p) for p in sys.path if p.endswith("site-packages")}:
        for entry in site_dir.iterdir():
            name = entry.name
            if name.lower().startswith(own) or name.endswith((".pth", ".egg-link")):
                continue
            if name == "__pycache__" or (into / name).exists():
                continue
            (into / name).symlink_to(entry)
    return into


def build_isolation_needed(source: Path) -> bool:
    """Whether this environment lacks what ``[build-system] requires`` asks for."""
    requires = tomllib.loads((source / "pyproject.toml").read_text())["build-system"]["requires"]
    for spec in requires:
        requirement = Requirement(spec)
        try:
            installed = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            return True
        if not requirement.specifier.contains(installed, prereleases=True):
            return True
    return False


def test_wheel_in_fresh_venv_runs_example_suite(tmp_path: Path) -> None:
    """The built wheel, installed in a new venv, brings the plugin: the example suite passes."""
    source = tmp_path / "source"
    shutil.copytree(
        EXAMPLES.parent,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv*", ".nox", "build", "dist", "*.egg-info", "__pycache__",
            ".*_cache", "*.sqlite*",
        ),
    )  # fmt: skip
    wheels = tmp_path / "wheels"
    # Offline where it can be: this environment's setuptools, if it is recent enough
    # (the test extra asks for it), builds without an index.
    offline = ["--no-build-isolation", "--no-index"]
    if build_isolation_needed(source):
        offline = []
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", *offline, "-q", "-w", wheels, source],
        timeout=50,
    )
    (wheel,) = wheels.glob("slaos_logging-*.whl")

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv], timeout=50)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    run([python, "-m", "pip", "install", "--no-index", "--no-deps", "-q", wheel], timeout=50)
    purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], 20)
    deps = outer_dependencies(tmp_path / "deps")
    # Appended after the venv's own site-packages: the wheel's files come first.
    (Path(purelib.strip()) / "zz_outer_deps.pth").write_text(f"{deps}\n")

    suite = tmp_path / "suite"
    suite.mkdir()
    for name in ("flask_app.py", "test_flask_sla.py"):
        (suite / name).write_text((EXAMPLES / name).read_text())
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_ADDOPTS")
        and not k.startswith(("SLAOS_", "PYTEST_XDIST", "VIRTUAL_ENV"))
    }
    where = run(
        [python, "-c",
         "import importlib.metadata as m, slaos_logging.pytest_plugin as p\n"
         "print(p.__file__)\n"
         "print(len([e for e in m.entry_points(group='pytest11') if e.name == 'slaos_logging']))"],
        timeout=20, cwd=suite, env=env,
    ).split()  # fmt: skip
    assert where[0].startswith(str(venv)), f"the plugin was imported from {where[0]}"
    assert where[1] == "1", "slaos_logging's pytest11 entry point is not there exactly once"

    out = run(
        [python, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_flask_sla.py"],
        timeout=50,
        cwd=suite,
        env=env,
    )
    assert "3 passed" in out, out


def test_failed_test_shows_its_events(pytester: pytest.Pytester) -> None:
    """Like captured logs, a failing test's captured events are shown in its report."""
    pytester.makepyfile(
        test_fails="""
import logging
from slaos_logging import SlaOSHandler

handler = SlaOSHandler(
    host="http://127.0.0.1:9", ingestion_id="id", ingestion_key="key-0123", key="rated_api"
)
log = logging.getLogger("inner.failing")
log.addHandler(handler)
log.propagate = False


def test_wrong_org(slaos_events):
    log.warning("request_finished", extra={"organization_id": "globex", "status_code": 500})
    assert slaos_events.organizations() == ["acme"]


def test_passes(slaos_events):
    log.warning("request_finished", extra={"organization_id": "quiet-org"})
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=60)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*Captured slaOS events call*", '*"organization_id": "globex"*"status_code": 500*']
    )
    assert "quiet-org" not in result.stdout.str()
