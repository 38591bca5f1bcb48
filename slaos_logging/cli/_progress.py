"""``send``'s progress display: a tqdm bar on a terminal, else a line every few seconds."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from ._jsonlines import Tally

__all__ = ["Progress"]

_PROGRESS_EVERY = 5.0  # seconds between plain progress lines


class Progress:
    """A tqdm bar when stderr is a terminal and tqdm (the ``cli`` extra) is installed, else
    a plain line every few seconds."""

    def __init__(
        self, total: int | None, stats: Callable[[], dict[str, int]], enabled: bool
    ) -> None:
        self._stats = stats
        self._enabled = enabled
        self._bar: Any = None
        if enabled and sys.stderr.isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                pass
            else:
                self._bar = tqdm(total=total, unit="B", unit_scale=True, file=sys.stderr)
        self._due = time.monotonic() + (0.2 if self._bar is not None else _PROGRESS_EVERY)

    def _counts(self, tally: Tally) -> dict[str, int]:
        skipped = sum(tally.skipped.values()) + tally.malformed
        return {"read": tally.read, "sent": self._stats()["sent"], "skipped": skipped}

    def advance(self, tally: Tally) -> None:
        """Show progress if it is due (cheap to call for every line)."""
        if not self._enabled or tally.read % 256 or time.monotonic() < self._due:
            return
        bar = self._bar
        self._due = time.monotonic() + (0.5 if bar is not None else _PROGRESS_EVERY)
        if bar is not None:
            bar.set_postfix(_as_text(self._counts(tally)), refresh=False)
            bar.update(tally.bytes - bar.n)
        else:
            text = ", ".join(f"{name} {n}" for name, n in self._counts(tally).items())
            print(f"slaos-logging send: {text}", file=sys.stderr, flush=True)

    def close(self, tally: Tally) -> None:
        """Bring the bar to its final figures and leave it on screen."""
        bar = self._bar
        if bar is not None:
            bar.set_postfix(_as_text(self._counts(tally)), refresh=False)
            bar.update(tally.bytes - bar.n)
            bar.close()


def _as_text(counts: dict[str, int]) -> dict[str, str]:
    # tqdm would print a count of 100000 as "1e+5".
    return {name: str(n) for name, n in counts.items()}
