"""Test sessions for every supported Python, and the package build check.

``nox`` runs the suite on 3.10 to 3.13 and checks the sdist. Each test session installs
the tools at the versions pinned in ``constraints.txt``. Half the legs install the
``fast`` extra, so both JSON encoders (orjson and the standard library) are tested:
``SLAOS_TEST_ENCODER`` tells the suite which one that leg must be using.
"""

from __future__ import annotations

import glob
import tarfile
import tempfile

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
# A present interpreter that fails fails the run; a missing one is reported as such by
# nox and by .ci/run, which lists the interpreters before it starts.
nox.options.error_on_missing_interpreters = True
nox.options.sessions = ["tests", "package"]

# Which encoder each interpreter's leg tests: both are covered on old and new Pythons.
ENCODERS = {"3.10": "stdlib", "3.11": "orjson", "3.12": "orjson", "3.13": "stdlib"}
CONSTRAINTS = ("-c", "constraints.txt")


@nox.session(python=list(ENCODERS))
def tests(session: nox.Session) -> None:
    """The whole suite on one interpreter, with the encoder its leg is assigned."""
    encoder = ENCODERS[str(session.python)]
    extras = "test,fast" if encoder == "orjson" else "test"
    session.install(*CONSTRAINTS, "-e", f".[{extras}]")
    if encoder == "stdlib":
        # A stale venv reused from an orjson leg must not hide the stdlib encoder.
        session.run("python", "-m", "pip", "uninstall", "-q", "-y", "orjson", silent=True)
    # Most tests wait on sockets, processes and timers rather than the CPU: three workers
    # keep the four legs within CI's time on two cores. Arguments replace the default.
    args = session.posargs or ["-n", "3"]
    session.run("python", "-m", "pytest", *args, env={"SLAOS_TEST_ENCODER": encoder})


@nox.session(python="3.11")
def package(session: nox.Session) -> None:
    """Build the sdist and wheel, check their metadata, and run the tests from the sdist."""
    session.install(*CONSTRAINTS, "build", "twine")
    dist = tempfile.mkdtemp(prefix="slaos-dist-")
    session.run("python", "-m", "build", "--outdir", dist, silent=True)
    session.run("python", "-m", "twine", "check", "--strict", *glob.glob(f"{dist}/*"))
    (sdist,) = glob.glob(f"{dist}/*.tar.gz")
    unpacked = tempfile.mkdtemp(prefix="slaos-sdist-")
    with tarfile.open(sdist) as archive:
        archive.extractall(unpacked, filter="data")
    (root,) = glob.glob(f"{unpacked}/slaos_logging-*")
    # Install the package from the sdist itself, then run the suite's quick part from
    # the unpacked tree: proof that the sdist holds the tests and everything they use.
    session.install(*CONSTRAINTS, f"{sdist}[test]")
    session.chdir(root)
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only")
    session.run(
        "python",
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/test_smoke.py",
        "tests/test_config.py",
        "tests/test_encode.py",
    )
