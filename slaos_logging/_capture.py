"""Capture for tests: while a capture is active, events go to lists instead of slaOS.

``slaos_logging.testing.capture_events()`` registers a list in ``ACTIVE``. Every
``SlaOSHandler.emit`` and ``SlaOSWorker.add_event`` first reads ``ACTIVE`` (one global
load and a truth test: the whole cost while no capture is on); while it holds a list,
they hand the record here instead of to their pipeline. Here the record goes through
the handler's own ``emit()`` rules and extractor, then through the sender thread's
event builder and encoder, and the resulting JSON is decoded into every active list.
Nothing is queued, so no thread is started and no request is made.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ._diagnostics import Reporter
from ._encode import EventBuilder, make_encoder
from ._extract import REASONS, Extractor, Pending
from ._pipeline import Pipeline, _new_prefix

if TYPE_CHECKING:
    from ._handler import SlaOSHandler
    from ._worker import SlaOSWorker

#: The list of every active capture, oldest first. Only changed in place, under
#: ``_lock``: ``_handler`` and ``_worker`` import this very object.
ACTIVE: list[list[dict[str, Any]]] = []

#: Marks the copy of a handler that ``capture_record`` runs ``emit()`` on.
_TWIN = "_slaos_capture_twin"

# Guards ACTIVE's changes and the builder (its timestamp cache is not thread-safe).
# Reentrant: encoding calls str() on values, and a __str__ may log an event itself.
_lock = threading.RLock()


def _after_fork_in_child() -> None:
    # Another thread may have held the lock at fork time. The child keeps capturing
    # into its copies of the lists: a test's child process must not start sending.
    global _lock
    _lock = threading.RLock()


os.register_at_fork(after_in_child=_after_fork_in_child)
_encode = make_encoder()
_reporter: Reporter | None = None  # the reporter of the pipeline whose event is built


def _bad_timestamp(raw: object) -> None:
    if _reporter is not None:
        _reporter.every(
            "timestamp",
            logging.WARNING,
            "unusable timestamp %.60r: used the record's creation time instead",
            raw,
        )


_builder = EventBuilder(_new_prefix(), itertools.count(), _bad_timestamp)


def start(events: list[dict[str, Any]]) -> None:
    """Make ``events`` receive every event from now on."""
    global _builder
    with _lock:
        if not ACTIVE:
            # A fresh prefix per outermost capture: a forked child's idempotency keys
            # then differ from its parent's.
            _builder = EventBuilder(_new_prefix(), itertools.count(), _bad_timestamp)
        ACTIVE.append(events)


def stop(events: list[dict[str, Any]]) -> None:
    """Stop filling ``events`` (by identity: two lists may be equal). Idempotent."""
    with _lock:
        for index, active in enumerate(ACTIVE):
            if active is events:
                del ACTIVE[index]
                return


def capture_record(
    handler: SlaOSHandler,
    record: logging.LogRecord,
    emit: Callable[[SlaOSHandler, logging.LogRecord], None],
) -> bool:
    """Take a record for the active captures, by ``emit()``'s own rules.

    ``emit`` (``SlaOSHandler.emit``, passed in so that this module need not import
    ``_handler``) runs itself, on a shallow copy of the handler whose queue is the
    captures: whatever ``emit()`` does to a record (its filter, structlog's event
    dicts, the extraction), a captured record gets the same.

    Returns:
        ``False`` if no capture is active, or ``handler`` is such a copy (the caller
        goes on as usual), else ``True``.
    """
    if not ACTIVE or _TWIN in handler.__dict__:
        return False
    pipeline: Pipeline = handler._pipeline
    ended: list[Pending] = []

    def put(pending: Pending) -> bool:
        if _store(pending, pipeline) is None:
            ended.append(pending)
        return True

    try:
        twin = copy.copy(handler)
        twin.__dict__[_TWIN] = True
        # The configured filter: a disabled handler empties its own copy.
        twin._events = handler._config.events
        if "enabled" in twin.__dict__:
            twin.__dict__["enabled"] = True
        twin._put = put
        # SlaOSHandler's emit, not a subclass's: that one already ran up to its
        # super().emit() call, which brought the record here.
        emit(twin, record)
        if ended:
            emit(handler, record)  # the last capture ended meanwhile: as if none had been
    except Exception as exc:  # nothing may raise into the logging call
        handler._report_error(exc)
    return True


def capture_mapping(worker: SlaOSWorker, event: Mapping[str, Any]) -> bool | None:
    """Take a ``SlaOSWorker.add_event`` event for the active captures.

    Returns:
        ``None`` if no capture is active; else what ``add_event`` returns.
    """
    if not ACTIVE:
        return None
    extractor: Extractor = worker._extractor
    pipeline: Pipeline = worker._pipeline
    try:
        if not isinstance(event, Mapping):
            next(pipeline.stats.skipped)
            return False
        pending = extractor.extract(event, time.time())
        if isinstance(pending, str):
            next(pipeline.stats.skipped)
            pipeline.reporter.once(pending, logging.WARNING, REASONS[pending], "add_event")
            return False
        stored = _store(pending, pipeline)
        # None: the last capture ended meanwhile, so as if none had been.
        return worker.add_event(event) if stored is None else stored
    except Exception:  # the application's call must not fail
        return False


def _store(pending: Pending, pipeline: Pipeline) -> bool | None:
    """Build and encode the event as the sender thread would; append it to each capture.

    Returns:
        ``None`` if no capture is active any more (the caller ships the event), else
        whether the event could be encoded (one that could not is never sent either).
    """
    global _reporter
    # One lock from the look at ACTIVE to the last append: once stop() returns, its
    # list never grows, and an event is captured or shipped, never both or neither.
    with _lock:
        if not ACTIVE:
            return None
        _reporter = pipeline.reporter
        try:
            event = _builder.build(pending)
            # A one-event batch: the bytes of this event in a request body.
            body = _encode([event])
        except Exception as exc:
            pipeline.reporter.every(
                "capture_encode",
                logging.ERROR,
                "slaos_logging could not encode a captured event (%s: %s): not captured",
                type(exc).__name__,
                exc,
            )
            return False
        finally:
            _reporter = None
        for target in ACTIVE:
            # Decoded once per capture: each gets dicts of its own to change.
            target.append(json.loads(body)[0])
    return True
