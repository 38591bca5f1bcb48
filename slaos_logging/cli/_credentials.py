"""Where ``serve`` gets the id and key it accepts: options, a key file, the environment.

Kept apart from the command so the rule reads in one place: ``--ingestion-id`` and
``--ingestion-key-file`` (or ``--ingestion-key``, which ``ps`` shows to everyone), else
``SLAOS_INGESTION_ID`` and ``SLAOS_INGESTION_KEY``, else ``dev`` and ``dev``.
"""

from __future__ import annotations

import argparse
import os
import stat

from .._config import ENV_INGESTION_ID, ENV_INGESTION_KEY
from .._endpoint import check_credential
from . import print_warning

__all__ = ["serve_credentials"]


def serve_credentials(args: argparse.Namespace) -> tuple[str, str]:
    """The accepted id and key: options, else the environment, else ``dev``.

    Raises:
        ValueError: The key file cannot be read or is empty, or a value is not URL-safe.
    """
    ingestion_id = getattr(args, "ingestion_id", None) or os.environ.get(ENV_INGESTION_ID) or "dev"
    key_file = getattr(args, "ingestion_key_file", None)
    if key_file is not None:
        key = _read_key_file(key_file)
    else:
        key = getattr(args, "ingestion_key", None) or os.environ.get(ENV_INGESTION_KEY) or "dev"
    return check_credential("ingestion_id", ingestion_id), check_credential("ingestion_key", key)


def _read_key_file(path: str) -> str:
    try:
        # utf-8-sig: an editor may start the file with a byte order mark.
        with open(path, encoding="utf-8-sig") as stream:
            mode = os.fstat(stream.fileno()).st_mode
            key = stream.readline().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise ValueError(f"cannot read --ingestion-key-file {path}: {reason}") from None
    if not key:
        raise ValueError(f"--ingestion-key-file {path} is empty")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        print_warning(f"{path} is readable by other users; chmod 600 {path}")
    return key
