"""The current organization (customer) of the running request."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

#: The organization (customer) the current request belongs to. Middleware sets it;
#: ``SlaOSHandler`` falls back to it for records that carry no ``organization_id``.
organization_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "slaos_organization_id", default=None
)


@contextlib.contextmanager
def organization(org_id: str | None) -> Iterator[None]:
    """Attribute every record logged inside the block to ``org_id``.

    Args:
        org_id: The organization id, or ``None`` to clear it for the block.

    Example:
        >>> with organization("acme"):
        ...     log.info("request_finished", extra={"took": 0.01, "status_code": 200})
    """
    token = organization_id_var.set(org_id)
    try:
        yield
    finally:
        organization_id_var.reset(token)
