"""Database files only this user can read, in folders no other user controls.

The spool (and ``serve --db``) stores customer ids and every extra field of an event,
so its files are created ``0600`` whatever the umask, and nothing another user could
have planted is trusted: a folder other users may write to (without the sticky bit),
a folder owned by someone else, or a database, ``-wal``, ``-shm`` or ``-journal`` file that is a
symbolic link or belongs to another user is refused.

The main file, ``-wal`` and ``-shm`` are created here with ``O_NOFOLLOW`` before SQLite
opens them, so SQLite never creates them itself (it would follow a planted symbolic
link, and it gives them its own default mode). SQLite removes ``-wal`` and ``-shm`` when
the last connection closes; a process that opens the file at that very moment may
see SQLite recreate them, with the main file's ``0600`` mode.
"""

from __future__ import annotations

import errno
import os
import stat

#: Files next to a SQLite database in WAL mode.
SIDE_FILES = ("-wal", "-shm")
#: SQLite's rollback journal: used only while a new file switches to WAL, and removed
#: after; never created here, but one that is present must be ours (SQLite follows a
#: link there, and plays a "hot" journal back into the database).
JOURNAL = "-journal"


class UntrustedPathError(Exception):
    """A folder or file another user could have planted or can read; the text says which."""


def _euid() -> int:
    return os.geteuid() if hasattr(os, "geteuid") else 0


def check_folder(folder: str) -> None:
    """Refuse a folder another user controls.

    Raises:
        UntrustedPathError: Owned by a user other than this one or root, or writable by
            other users without the sticky bit (anyone could replace the database).
        OSError: The folder cannot be examined.
    """
    info = os.stat(folder)
    if not stat.S_ISDIR(info.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", folder)
    uid = _euid()
    if info.st_uid not in (uid, 0):
        raise UntrustedPathError(
            f"the folder {folder} belongs to uid {info.st_uid}, not to this user "
            f"(uid {uid}) or root"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not info.st_mode & stat.S_ISVTX:
        raise UntrustedPathError(
            f"the folder {folder} is writable by other users "
            f"(mode {stat.S_IMODE(info.st_mode):o}, no sticky bit)"
        )


def make_folder(folder: str) -> None:
    """Create ``folder`` and any missing parents with mode ``0700`` (whatever the umask
    allows beyond that: never more)."""
    if os.path.isdir(folder):
        return
    parent = os.path.dirname(os.path.abspath(folder))
    if parent != os.path.abspath(folder):
        make_folder(parent)
    try:
        os.mkdir(folder, 0o700)  # os.makedirs would leave parents at the umask's mode
    except FileExistsError:
        pass


def _claim(path: str, *, create: bool) -> int | None:
    """Open ``path`` without following links, check it is ours, make it ``0600``.

    Returns:
        The file's inode, or ``None`` if it does not exist and ``create`` is false.
    """
    flags = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    if create:
        flags |= os.O_CREAT
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        if exc.errno == errno.ENOENT and not create:
            return None
        if exc.errno == errno.ELOOP or os.path.islink(path):
            raise UntrustedPathError(f"{path} is a symbolic link") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UntrustedPathError(f"{path} is not a regular file")
        uid = _euid()
        if info.st_uid != uid:
            raise UntrustedPathError(
                f"{path} belongs to uid {info.st_uid}, not to this user (uid {uid})"
            )
        if stat.S_IMODE(info.st_mode) & 0o077:
            os.fchmod(fd, 0o600)  # written by an older version, before the umask was ignored
        return info.st_ino
    finally:
        os.close(fd)


def prepare_database(path: str) -> int:
    """Make ``path`` and its WAL side files exist as private files of this user.

    Call before ``sqlite3.connect``: SQLite then opens what was checked here and never
    creates a file itself.

    Returns:
        The database file's inode.

    Raises:
        UntrustedPathError: The folder or one of the files is not to be trusted.
        OSError: The folder or a file cannot be opened or created.
    """
    check_folder(os.path.dirname(path) or ".")
    inode = _claim(path, create=True)
    assert inode is not None
    for suffix in SIDE_FILES:
        _claim(path + suffix, create=True)
    _claim(path + JOURNAL, create=False)
    return inode


def verify_database(path: str) -> None:
    """After SQLite opened ``path``: its files are still ours, private, and not links.

    Raises:
        UntrustedPathError: A file was swapped for a link or another user's file.
    """
    for suffix in ("", *SIDE_FILES, JOURNAL):
        _claim(path + suffix, create=False)
