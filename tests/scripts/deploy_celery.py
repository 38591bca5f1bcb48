"""A Celery app whose tasks log one event each, over kombu's filesystem transport.

``CELERY_TEST_BROKER`` names the broker folder; each task also leaves a file in
``<folder>/done`` so the test knows when every task has run.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from celery import Celery

from slaos_logging import SlaOSHandler
from slaos_logging.integrations.celery import install

FOLDER = os.environ["CELERY_TEST_BROKER"]


def broker_options(folder: str) -> dict[str, object]:
    """kombu's filesystem transport: one folder in and out, no network."""
    return {
        "data_folder_in": folder,
        "data_folder_out": folder,
        "polling_interval": 0.05,
    }


app = Celery("deploy_celery", broker="filesystem://")
app.conf.update(
    broker_transport_options=broker_options(FOLDER),
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)

handler = SlaOSHandler(flush_interval=30, batch_size=10_000, shutdown_timeout=5)
log = logging.getLogger("tasks")
log.setLevel(logging.INFO)
log.propagate = False
log.addHandler(handler)
install()


@app.task(name="deploy.work")
def work(seq: int) -> None:
    """Log one event, then mark the task done."""
    log.info("task_done", extra={"organization_id": "celery", "seq": seq})
    (Path(FOLDER) / "done" / str(seq)).touch()
