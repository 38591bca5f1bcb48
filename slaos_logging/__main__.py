"""``python -m slaos_logging`` runs the ``slaos-logging`` command line."""

from __future__ import annotations

from slaos_logging.cli import main

raise SystemExit(main())
