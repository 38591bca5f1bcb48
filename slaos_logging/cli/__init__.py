"""The ``slaos-logging`` command line.

``serve`` runs a local slaOS-compatible receiver, ``report`` computes per-customer SLOs
from it, ``send`` backfills JSON-lines log files, ``check`` diagnoses a configuration.
``Receiver``, ``compute_report`` and ``format_table`` are importable from here for use
in-process (the quickstart does). Never imported by ``slaos_logging`` itself.

Each command lives in its own module exposing ``add_parser(subparsers)`` (returns the command's
parser) and ``run(args) -> int``; registering a command is one entry in :data:`_COMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol, cast

from .._version import __version__
from ._terminal import mask_ingest_path, printable

__all__ = [
    "Receiver",
    "build_parser",
    "compute_report",
    "format_table",
    "iso_timestamp",
    "main",
    "percentage",
    "positive_int",
    "positive_seconds",
    "print_error",
    "tcp_port",
]

PROG = "slaos-logging"

# Modules imported lazily, so a command's module can import helpers from this package and a
# command with optional dependencies costs nothing until it runs.
_COMMANDS: tuple[str, ...] = ("._receiver", "._report", "._send", "._check")


class _Command(Protocol):
    def add_parser(self, subparsers: argparse._SubParsersAction[Any]) -> argparse.ArgumentParser:
        """Register the subcommand and return its parser."""

    def run(self, args: argparse.Namespace) -> int:
        """Execute the subcommand and return the exit code."""


def print_error(message: str, status: int = 1) -> int:
    """Print ``slaos-logging: error: <message>`` as one line on stderr and return ``status``."""
    text = printable(" ".join(str(message).split()))
    print(f"{PROG}: error: {text}", file=sys.stderr, flush=True)
    return status


def _number(text: str, kind: type[float] | type[int]) -> float:
    # NaN fails every range check, so a non-number gets the caller's message.
    try:
        return kind(text)
    except ValueError:
        return math.nan


def tcp_port(text: str) -> int:
    """Argument type: a TCP port, 0 to 65535 (0 lets the OS pick)."""
    value = _number(text, int)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port: {text!r}")
    return int(value)


def positive_int(text: str) -> int:
    """Argument type: an integer of at least 1."""
    value = _number(text, int)
    if not value >= 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer: {text!r}")
    return int(value)


def percentage(text: str) -> float:
    """Argument type: a number from 0 to 100."""
    value = _number(text, float)
    if not 0.0 <= value <= 100.0:
        raise argparse.ArgumentTypeError(f"must be a percentage between 0 and 100: {text!r}")
    return value


def positive_seconds(text: str) -> float:
    """Argument type: a finite number of seconds above 0."""
    value = _number(text, float)
    if not (value > 0.0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


def iso_timestamp(text: str) -> datetime:
    """Argument type: an ISO 8601 date or date-time (``Z`` or offset; naive means UTC)."""
    from ._store import parse_timestamp

    try:
        return parse_timestamp(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 timestamp: {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Ship structured log records to slaOS; run a local receiver and SLO reports.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in _COMMANDS:
        command = cast(_Command, importlib.import_module(name, __name__))
        command.add_parser(subparsers).set_defaults(_run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code (0 ok, 1 failed, 2 bad usage).

    Args:
        argv: Arguments without the program name; ``sys.argv[1:]`` when ``None``.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    run = getattr(args, "_run", None)
    if run is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(run(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the last line of defence: one line, never a traceback
        secret = getattr(args, "ingestion_key", None)
        text = mask_ingest_path(f"unexpected {type(exc).__name__}: {exc}", secret)
        return print_error(text)


_LAZY = {
    "Receiver": "._receiver",
    "compute_report": "._report",
    "format_table": "._report",
}


def __getattr__(name: str) -> Any:
    # Re-exported lazily: the command modules import helpers from this package.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
