"""The spool (and ``serve --db``) keeps its files private and trusts nothing it did not create.

Where the tests run as root, a spawned child drops to a second user (uid 65534) to plant
a database or a symbolic link in a shared sticky folder, as another local user could.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from slaos_logging import SlaOSHandler
from slaos_logging._spool import FILENAME, Spool
from slaos_logging.cli import main
from slaos_logging.cli._store import EventStore, StoreError

from .server import RecordingServer
from .spool_support import (
    FAST,
    OTHER_UID,
    as_other_user,
    burst,
    endpoint_of,
    rows_on_disk,
    seqs,
)

_SPAWN = multiprocessing.get_context("spawn")
needs_second_user = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="acting as a second local user (uid 65534) needs root",
)


def mode(path: Path) -> int:
    """Permission bits of ``path`` (not following a link)."""
    return stat.S_IMODE(path.lstat().st_mode)


def database_files(folder: Path, name: str = FILENAME) -> list[Path]:
    """The database and its WAL side files that exist."""
    return [
        p for p in (folder / name, folder / f"{name}-wal", folder / f"{name}-shm") if p.exists()
    ]


@pytest.fixture
def umask_zero() -> Iterator[None]:
    """The most permissive umask, restored afterwards."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def shared_folder() -> Iterator[Path]:
    """A folder like /tmp: everyone may create files, the sticky bit protects them."""
    folder = Path(tempfile.mkdtemp(prefix="slaos-shared-", dir="/tmp"))
    folder.chmod(0o1777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def plant(action: str, folder: Path, arg: str) -> None:
    """Run ``as_other_user`` in a spawned child; fail if the child did."""
    child = _SPAWN.Process(target=as_other_user, args=(action, str(folder), arg))
    child.start()
    child.join(60)
    assert child.exitcode == 0, f"the second user's child failed (exit {child.exitcode})"


# -- private files ------------------------------------------------------------------------


@pytest.mark.parametrize("folder_existed", [False, True])
def test_spool_files_are_private_whatever_the_umask(
    umask_zero: None, tmp_path: Path, folder_existed: bool
) -> None:
    """Database, -wal and -shm are 0600 with umask 0, whether or not the folder existed."""
    folder = tmp_path / "spool"
    if folder_existed:
        folder.mkdir()
        folder.chmod(0o755)
    spool = Spool(folder)
    assert spool.available
    assert spool.put([b'{"n":1}']) == 1
    files = database_files(folder)
    assert len(files) == 3, files
    assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
    if not folder_existed:
        assert mode(folder) == 0o700
    spool.close()


def test_missing_parent_folders_are_private_too(umask_zero: None, tmp_path: Path) -> None:
    """Parents created for spool_dir are 0700 as well, not left at the umask's 0777."""
    folder = tmp_path / "a" / "b" / "spool"
    spool = Spool(folder)
    assert spool.available
    assert [mode(p) for p in (tmp_path / "a", tmp_path / "a" / "b", folder)] == [0o700] * 3
    spool.close()


def test_spool_files_an_older_version_left_readable_are_made_private(tmp_path: Path) -> None:
    """A 0644 spool file from before is narrowed to 0600 when opened."""
    Spool(tmp_path).close()
    (tmp_path / FILENAME).chmod(0o644)
    spool = Spool(tmp_path)
    assert spool.available
    assert mode(tmp_path / FILENAME) == 0o600
    spool.close()


# -- folders and files another user controls ----------------------------------------------


def test_folder_writable_by_others_is_refused_and_delivery_goes_on(
    server: RecordingServer,
    make_handler: Callable[..., SlaOSHandler],
    app_logger: logging.Logger,
    tmp_path: Path,
    diagnostics: object,
) -> None:
    """A 0777 spool_dir without the sticky bit: one clear error, events sent from memory."""
    folder = tmp_path / "spool"
    folder.mkdir()
    folder.chmod(0o777)
    handler = make_handler(spool_dir=folder, **FAST)
    app_logger.addHandler(handler)
    burst(app_logger, 20)
    assert handler.flush(10)
    assert sorted(seqs(server)) == list(range(20))
    stats = handler.stats()
    assert stats["sent"] == stats["enqueued"] == 20 and stats["spooled"] == 0, stats
    errors = [r.getMessage() for r in diagnostics.records if r.levelno >= logging.ERROR]  # type: ignore[attr-defined]
    assert len(errors) == 1, errors
    assert "refusing the spool" in errors[0] and "writable by other users" in errors[0]
    assert str(folder) in errors[0]
    assert not (folder / FILENAME).exists()


def test_sticky_shared_folder_is_accepted(shared_folder: Path) -> None:
    """A world-writable folder with the sticky bit (like /tmp) is usable."""
    spool = Spool(shared_folder)
    assert spool.available
    assert spool.put([b"{}"]) == 1
    spool.close()


@needs_second_user
def test_folder_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    """A spool_dir that belongs to uid 65534 is refused, and nothing is created in it."""
    folder = tmp_path / "theirs"
    folder.mkdir(mode=0o700)
    os.chown(folder, OTHER_UID, OTHER_UID)
    errors: list[str] = []
    spool = Spool(folder, on_error=errors.append)
    assert not spool.available
    assert len(errors) == 1 and f"belongs to uid {OTHER_UID}" in errors[0], errors
    assert list(folder.iterdir()) == []


@needs_second_user
def test_database_planted_by_another_user_is_refused(
    server: RecordingServer,
    make_handler: Callable[..., SlaOSHandler],
    app_logger: logging.Logger,
    shared_folder: Path,
    diagnostics: object,
) -> None:
    """A spool file uid 65534 planted (forged events, mode 0666) is neither drained nor used."""
    plant("database", shared_folder, endpoint_of(server))
    planted = shared_folder / FILENAME
    assert planted.stat().st_uid == OTHER_UID
    handler = make_handler(spool_dir=shared_folder, **FAST)
    app_logger.addHandler(handler)
    burst(app_logger, 5)
    assert handler.flush(10)
    assert sorted(seqs(server)) == list(range(5))  # the forged seq -1 never arrives
    stats = handler.stats()
    assert stats["sent"] == stats["enqueued"] == 5 and stats["spooled"] == 0, stats
    errors = [r.getMessage() for r in diagnostics.records if r.levelno >= logging.ERROR]  # type: ignore[attr-defined]
    assert len(errors) == 1 and f"belongs to uid {OTHER_UID}" in errors[0], errors
    assert planted.stat().st_uid == OTHER_UID and rows_on_disk(shared_folder) == 1


@needs_second_user
@pytest.mark.parametrize("name", [FILENAME, f"{FILENAME}-wal", f"{FILENAME}-shm"])
def test_symlink_planted_by_another_user_is_refused(
    name: str, shared_folder: Path, tmp_path: Path
) -> None:
    """A link planted as the database or a WAL file: refused, its target never created."""
    private = tmp_path / "victim-only"
    private.mkdir(mode=0o700)
    target = private / "clobbered"
    plant(f"symlink:{name}", shared_folder, str(target))
    errors: list[str] = []
    spool = Spool(shared_folder, on_error=errors.append)
    assert not spool.available
    assert len(errors) == 1 and "symbolic link" in errors[0], errors
    assert not target.exists()
    assert (shared_folder / name).is_symlink()


def test_symlinked_database_is_refused(tmp_path: Path) -> None:
    """Whoever made it, a database that is a symbolic link is not followed."""
    folder = tmp_path / "spool"
    folder.mkdir(mode=0o700)
    target = tmp_path / "elsewhere.sqlite"
    (folder / FILENAME).symlink_to(target)
    errors: list[str] = []
    assert not Spool(folder, on_error=errors.append).available
    assert len(errors) == 1 and "symbolic link" in errors[0], errors
    assert not target.exists()


# -- serve --db ---------------------------------------------------------------------------


def test_serve_database_files_are_private(umask_zero: None, tmp_path: Path) -> None:
    """serve's database, -wal and -shm are 0600 even with umask 0 in a 0755 folder."""
    tmp_path.chmod(0o755)
    store = EventStore(tmp_path / "events.sqlite")
    try:
        files = database_files(tmp_path, "events.sqlite")
        assert len(files) == 3, files
        assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
    finally:
        store.close()


def test_serve_refuses_a_symlinked_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`serve --db LINK` exits 1 with one error line; the link's target is not created."""
    target = tmp_path / "target.sqlite"
    link = tmp_path / "events.sqlite"
    link.symlink_to(target)
    assert main(["serve", "--port", "0", "--db", str(link), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "refusing database" in err[0] and "symbolic link" in err[0]
    assert not target.exists()


def test_serve_refuses_a_folder_others_can_write(tmp_path: Path) -> None:
    """A database in a 0777 folder without the sticky bit is refused."""
    folder = tmp_path / "open"
    folder.mkdir()
    folder.chmod(0o777)
    with pytest.raises(StoreError, match="writable by other users"):
        EventStore(folder / "events.sqlite")
    assert list(folder.iterdir()) == []


@needs_second_user
def test_serve_refuses_a_database_of_another_user(shared_folder: Path) -> None:
    """A database file uid 65534 planted for serve is refused."""
    plant("database", shared_folder, "any")
    with pytest.raises(StoreError, match=f"belongs to uid {OTHER_UID}"):
        EventStore(shared_folder / FILENAME)


def test_serve_in_memory_database_creates_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EventStore(":memory:") stays in memory: no file of that name appears."""
    monkeypatch.chdir(tmp_path)
    with EventStore(":memory:") as store:
        assert store.count() == 0
    assert list(tmp_path.iterdir()) == []
