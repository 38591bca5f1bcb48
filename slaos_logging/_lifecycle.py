"""Process-level hooks: fork, interpreter exit, multiprocessing children.

Every live pipeline is tracked here (weakly) so that a forked child can rebuild it and
exit can close it within its ``shutdown_timeout``.
"""

from __future__ import annotations

import atexit
import os
import sys
import weakref
from typing import Protocol


class _Closable(Protocol):
    def after_fork(self) -> None: ...

    def close(self) -> None: ...


_LIVE: weakref.WeakSet[_Closable] = weakref.WeakSet()


def track(pipeline: _Closable) -> None:
    """Rebuild ``pipeline`` in forked children and close it at exit."""
    _LIVE.add(pipeline)


def _after_fork_in_child() -> None:
    for pipeline in list(_LIVE):
        try:
            pipeline.after_fork()
        except Exception:  # a fork must never fail because of us
            pass


def _close_all_at_exit() -> None:
    for pipeline in list(_LIVE):
        try:
            pipeline.close()
        except Exception:  # exit must go on
            pass


def close_with_multiprocessing_child(pipeline: _Closable) -> None:
    """In a multiprocessing child, close ``pipeline`` when the child's work returns.

    A child started by fork leaves through ``os._exit``: atexit never runs there,
    multiprocessing's own finalizers do. (Registered from the child's first event,
    after multiprocessing has cleared the finalizers it inherited.)
    """
    mp = sys.modules.get("multiprocessing")
    if mp is None or mp.parent_process() is None:
        return
    from multiprocessing import util

    util.Finalize(pipeline, _close_ref, args=(weakref.ref(pipeline),), exitpriority=10)


def _close_ref(ref: weakref.ref[_Closable]) -> None:
    pipeline = ref()
    if pipeline is not None:
        pipeline.close()


os.register_at_fork(after_in_child=_after_fork_in_child)
# Registered after logging's own atexit hook (logging is imported first), so it runs
# first: by the time logging.shutdown() calls flush() with no timeout, our handlers
# are already closed within their shutdown_timeout.
atexit.register(_close_all_at_exit)
