"""Process-level hooks: fork, interpreter exit, multiprocessing children, dropped pipelines.

Every live pipeline is tracked here weakly, so that a forked child can rebuild it and
exit can close it within its ``shutdown_timeout``. A pipeline whose owner was
garbage-collected while it still had a sender thread is *adopted*: held strongly until
its thread has delivered what was queued and ended, and closed at exit like the others.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import time
import weakref
from typing import Protocol


class _Closable(Protocol):
    def after_fork(self) -> None: ...

    def close(self, until: float | None = None) -> None: ...

    def begin_stop(self, until: float) -> None: ...

    def flush(self, timeout: float | None) -> bool: ...

    def mark_exiting(self) -> None: ...

    def has_thread(self) -> bool: ...

    @property
    def shutdown_timeout(self) -> float: ...


_LIVE: weakref.WeakSet[_Closable] = weakref.WeakSet()
_ADOPTED: set[_Closable] = set()
_mp_hook_pid: int | None = None


def track(pipeline: _Closable) -> None:
    """Rebuild ``pipeline`` in forked children and close it at exit."""
    _LIVE.add(pipeline)


def adopt(pipeline: _Closable) -> None:
    """Hold a pipeline whose owner is gone until its sender thread has ended."""
    for done in [p for p in _ADOPTED if not p.has_thread()]:
        _ADOPTED.discard(done)
    _ADOPTED.add(pipeline)


def pipelines() -> list[_Closable]:
    """Every pipeline this process may still deliver from."""
    return [*list(_LIVE), *list(_ADOPTED)]


def logging_lock_held() -> bool:
    """Whether this thread holds the ``logging`` module's lock.

    ``dictConfig`` and ``fileConfig`` hold it while they flush and close every handler,
    and the sender thread may need it (urllib3's ``isEnabledFor``, after the caches were
    cleared): waiting for the sender there would deadlock.
    """
    lock = getattr(logging, "_lock", None)
    is_owned = getattr(lock, "_is_owned", None)
    if is_owned is None:
        return False
    try:
        return bool(is_owned())
    except Exception:
        return False


def flush_all(timeout: float | None = None) -> bool:
    """Flush every pipeline of this process, all within ``timeout`` seconds.

    Args:
        timeout: Default: the largest ``shutdown_timeout`` among them.
    """
    found = pipelines()
    if timeout is None:
        timeout = max((p.shutdown_timeout for p in found), default=0.0)
    deadline = time.monotonic() + timeout
    done = True
    for pipeline in found:
        try:
            done = pipeline.flush(max(0.0, deadline - time.monotonic())) and done
        except Exception:  # a server's shutdown must go on
            done = False
    return done


def close_all() -> None:
    """Close every pipeline of this process, together within the largest ``shutdown_timeout``.

    Every sender is asked to finish first, so they deliver side by side: ten stalled
    handlers hold the exit up for one ``shutdown_timeout``, not ten.
    """
    found = pipelines()
    until = time.monotonic() + max((p.shutdown_timeout for p in found), default=0.0)
    for pipeline in found:
        try:
            pipeline.begin_stop(until)
        except Exception:  # exit must go on
            pass
    for pipeline in found:
        try:
            pipeline.close(until)
        except Exception:  # exit must go on
            pass


def _after_fork_in_child() -> None:
    global _mp_hook_pid
    _mp_hook_pid = None
    _ADOPTED.clear()  # their events and threads are the parent's
    for pipeline in list(_LIVE):
        try:
            pipeline.after_fork()
        except Exception:  # a fork must never fail because of us
            pass


def shutdown() -> None:
    """The process is ending: close every pipeline, and deliver later records at once.

    From here on a record is delivered on the thread that logs it (a new sender thread
    could not finish before the process ends). Run at exit, and by integrations where a
    process ends without exit hooks (Celery's pool children, multiprocessing children).
    """
    for pipeline in pipelines():
        try:
            pipeline.mark_exiting()
        except Exception:
            pass
    close_all()


def close_with_multiprocessing_child() -> None:
    """In a multiprocessing child, close every pipeline when the child's work returns.

    A child started by fork leaves through ``os._exit``: atexit never runs there,
    multiprocessing's own finalizers do. (Registered once per process from the first
    started sender, after multiprocessing has cleared the finalizers it inherited.)
    """
    global _mp_hook_pid
    mp = sys.modules.get("multiprocessing")
    if mp is None or mp.parent_process() is None or _mp_hook_pid == os.getpid():
        return
    from multiprocessing import util

    _mp_hook_pid = os.getpid()
    util.Finalize(None, shutdown, exitpriority=10)


os.register_at_fork(after_in_child=_after_fork_in_child)
# Registered after logging's own atexit hook (logging is imported first), so it runs
# first: by the time logging.shutdown() calls flush() and close(), our handlers are
# already closed within their shutdown_timeout.
atexit.register(shutdown)
