"""Ship structured log records to slaOS as events, in batches, off the application thread.

Add ``SlaOSHandler`` to your logging config; every ``logger.info("request_finished",
extra={...})`` becomes a slaOS event. See the README for settings and guarantees.
"""

from __future__ import annotations

from ._context import organization, organization_id_var
from ._handler import SlaOSHandler
from ._version import __version__
from ._worker import SlaOSWorker

__all__ = [
    "SlaOSHandler",
    "SlaOSWorker",
    "__version__",
    "organization",
    "organization_id_var",
]
