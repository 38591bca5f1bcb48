"""``slaos-logging send``: ship JSON-lines log files through the handler's own pipeline.

The handler's extraction rules turn each line into an event (see ``_jsonlines``) and the same
:class:`~slaos_logging._pipeline.Pipeline` batches, retries and delivers it. Every line gets
an idempotency key derived from its content and position, so sending a file again stores
nothing twice.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import re
import sys
from collections.abc import Iterator
from typing import Any

from .._config import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_QUEUE_SIZE,
    DEFAULT_MAX_RETRIES,
    ENV_INGESTION_ID,
    ENV_INGESTION_KEY,
    Config,
)
from .._encode import EventBuilder, dumps_event
from .._pipeline import Pipeline
from . import positive_int, print_error
from ._connection import add_connection_args, config_from_args
from ._jsonlines import Converter, Tally, pending_events
from ._progress import Progress
from ._terminal import printable

__all__ = ["add_parser", "run"]

# Queue depth (in batches) above which reading pauses until the sender has caught up: far
# below max_queue_size, so a large file is never dropped by a full queue.
_HIGH_WATER_BATCHES = 4
_PROGRESS_EVERY = 5.0  # seconds between plain progress lines


def _retries(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to 100: {text!r}")
    return value


def add_parser(subparsers: argparse._SubParsersAction[Any]) -> argparse.ArgumentParser:
    """Register ``send`` and return its parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "send",
        help="ship JSON-lines log files (as python-json-logger writes them) to slaOS",
        description="Read log files with one JSON object a line, turn each into a slaOS event "
        "by SlaOSHandler's rules, and deliver them in batches. Every line gets an idempotency "
        "key derived from its content and position, so sending a file twice stores it once.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="JSON-lines file; - is stdin")
    parser.add_argument(
        "--events",
        action="append",
        metavar="NAMES",
        help="only lines whose msg/message is one of these (comma-separated, repeatable)",
    )
    parser.add_argument("--key", help="event key for lines without one (env SLAOS_KEY)")
    parser.add_argument(
        "--organization-id", metavar="ORG", help="organization for lines without one"
    )
    parser.add_argument(
        "--value-fields", metavar="NAMES", help="only these fields go into values (comma-separated)"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the events as JSON lines, exactly as they would be sent, and send nothing",
    )
    add_connection_args(parser)
    parser.add_argument(
        "--batch-size",
        metavar="N",
        type=positive_int,
        default=DEFAULT_BATCH_SIZE,
        help=f"events per request (default {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument(
        "--max-retries",
        metavar="N",
        type=_retries,
        default=DEFAULT_MAX_RETRIES,
        help=f"retries of a failing batch, 0 to 100 (default {DEFAULT_MAX_RETRIES})",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    return parser


def _names(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def _summary(tally: Tally, stats: dict[str, int] | None) -> list[str]:
    skipped = sum(tally.skipped.values())
    parts = [f"read {tally.read}"]
    if stats is None:
        parts.append(f"would send {tally.queued}")
    else:
        parts.append(f"sent {stats['sent']}")
    parts += [f"skipped {skipped}", f"malformed {tally.malformed}"]
    if stats is not None:
        parts += [f"invalid {stats['invalid']}", f"failed {_undelivered(stats) - stats['invalid']}"]
    lines = [", ".join(parts)]
    if skipped:
        reasons = ", ".join(f"{n} {reason}" for reason, n in tally.skipped.most_common())
        lines.append(f"skipped: {reasons}")
    if tally.malformed:
        where = ", ".join(tally.malformed_at)
        more = (
            f"first {len(tally.malformed_at)}: "
            if tally.malformed > len(tally.malformed_at)
            else ""
        )
        count = _lines(tally.malformed)
        lines.append(
            f"malformed (not a JSON object, or a value out of range): {count} skipped "
            f"({more}{printable(where)})"
        )
    if tally.untimed:
        lines.append(
            f"note: {_lines(tally.untimed)} had no timestamp, created or asctime: "
            f"{'they were' if tally.untimed != 1 else 'it was'} stamped with the current time"
        )
    return lines


def _lines(n: int) -> str:
    return f"{n} line{'s' if n != 1 else ''}"


def _undelivered(stats: dict[str, int]) -> int:
    return (
        stats["invalid"]
        + stats["failed"]
        + stats["dropped_queue_full"]
        + stats["dropped_closed"]
        + stats["dropped_shutdown"]
    )


# The pipeline's messages are written for a program's log, and point to handler.stats() and
# the SLAOS_* variables; a command-line user has neither handler nor stats, but options.
_AUTH = re.compile(r"refused the credentials \((.*?)\)[:;.,]", re.S)
_STATS_HINT = re.compile(r"[;,]? *see stats\(\)\[['\"]?\w+['\"]?\]")


class _CliFormatter(logging.Formatter):
    """The pipeline's diagnostics in the command line's words, on one escaped line."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        auth = _AUTH.search(text)
        if auth is not None:
            text = (
                f"slaOS refused the ingestion id or key ({auth.group(1)}): check "
                f"--ingestion-id and --ingestion-key ({ENV_INGESTION_ID} / "
                f"{ENV_INGESTION_KEY}); `slaos-logging check` tests them"
            )
        else:
            text = _STATS_HINT.sub("", text)
        return f"slaos-logging: {printable(text)}"


@contextlib.contextmanager
def _diagnostics_to_stderr() -> Iterator[None]:
    """Show the pipeline's own warnings (rejections, credentials, retries) while sending."""
    logger = logging.getLogger("slaos_logging")
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(_CliFormatter())
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _check_files(paths: list[str]) -> str | None:
    for path in paths:
        if path == "-":
            continue
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            return f"cannot read {path}: {exc.strerror or exc}"
    return None


def run(args: argparse.Namespace) -> int:
    """Run ``send``: 0 when every event was delivered, 1 otherwise, 2 for bad settings."""
    problem = _check_files(args.files)
    if problem is not None:
        return print_error(problem)
    batch_size: int = args.batch_size
    config = config_from_args(
        args,
        placeholder_credentials=args.dry_run,
        key=args.key,
        events=_names(args.events),
        organization_id=args.organization_id,
        value_fields=_names([args.value_fields] if args.value_fields else None),
        batch_size=batch_size,
        max_queue_size=max(DEFAULT_MAX_QUEUE_SIZE, batch_size * (_HIGH_WATER_BATCHES + 2)),
        max_retries=args.max_retries,
    )
    if isinstance(config, str):
        return print_error(config, status=2)
    # The file is the durable copy and re-sending it is harmless, so a spool (which
    # SLAOS_SPOOL_DIR would switch on) would only hide undelivered events from the exit status.
    config = dataclasses.replace(config, spool_dir=None)
    if args.dry_run:
        return _dry_run(args.files, Converter(config))
    return _send(args, config)


def _send(args: argparse.Namespace, config: Config) -> int:
    tally = Tally()
    batch_size = config.batch_size
    total = None if "-" in args.files else sum(os.path.getsize(p) for p in args.files)
    pipeline = Pipeline(config)
    progress = Progress(total, pipeline.snapshot, enabled=not args.no_progress)
    try:
        with _diagnostics_to_stderr():
            for pending in pending_events(args.files, Converter(config), tally, progress.advance):
                pipeline.put(pending)
                # Backpressure: past max_queue_size the queue drops events, so reading
                # waits for the sender whenever it falls a few batches behind.
                if tally.queued % batch_size == 0 and (
                    pipeline.queue.qsize() > _HIGH_WATER_BATCHES * batch_size
                ):
                    pipeline.flush()
            pipeline.flush()
    finally:
        progress.close(tally)
        pipeline.close()
    stats = pipeline.snapshot()
    for line in _summary(tally, stats):
        print(line, file=sys.stderr)
    lost = _undelivered(stats)
    if lost:
        were = "events were" if lost != 1 else "event was"
        return print_error(f"{lost} {were} not delivered (see the messages above)")
    sys.stderr.flush()
    return 0


def _dry_run(paths: list[str], converter: Converter) -> int:
    tally = Tally()
    build = EventBuilder("", iter(()), lambda raw: None).build
    out = sys.stdout
    try:
        for pending in pending_events(paths, converter, tally):
            out.write(dumps_event(build(pending)).decode("utf-8") + "\n")
        out.flush()
    except BrokenPipeError:
        # `send --dry-run f | head` closed the pipe: stop quietly, and point stdout at
        # devnull so the interpreter's final flush does not complain either.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)
        return 0
    for line in _summary(tally, None):
        print(line, file=sys.stderr)
    return 0
