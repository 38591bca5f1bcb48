"""Django example: every request to this project becomes a slaOS ``request_finished`` event.

Run it against the local receiver::

    pip install "slaos-logging[django]"
    slaos-logging serve                          # in another shell: http://127.0.0.1:8080
    cd examples/django_app
    python manage.py runserver 127.0.0.1:8000
    curl -H "X-Customer-Id: acme" http://127.0.0.1:8000/items/42/
    curl -H "X-Customer-Id: acme" http://127.0.0.1:8000/async/7/   # an async view
    curl -H "X-Customer-Id: acme" http://127.0.0.1:8000/boom/      # a 500
    slaos-logging report                         # uptime and latency per customer

Environment: ``SLAOS_HOST`` (default ``http://127.0.0.1:8080``), ``SLAOS_INGESTION_ID`` and
``SLAOS_INGESTION_KEY`` (default ``dev``/``dev``). The settings are in ``settings.py``.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
