"""Where events go: the base URL and the credentials in its path, validated.

The host decides where the ingestion key travels (it is in the URL path), so it is read
by the parser that will connect, and anything that could make two parsers disagree is
refused. The credentials must need no URL encoding, so that they can be redacted by
their literal form.
"""

from __future__ import annotations

import ipaddress
import re

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url


def is_loopback(hostname: str) -> bool:
    """Whether ``hostname`` is this machine: ``localhost`` or a loopback address ("[::1]" too)."""
    hostname = hostname.strip("[]").lower()
    if hostname == "localhost" or hostname.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


# Characters no base URL needs, each of which has made one URL parser read a different host
# than another: a backslash (WHATWG parsers treat it as "/"), "@" (userinfo), white space,
# control characters. "%" (an encoded host) is refused in the host only: a path may hold it.
_BAD_HOST_CHARS = re.compile(r"[\\@\s\x00-\x1f\x7f-\x9f]")


# An ingestion path with something after it: the id and key of a pasted ingestion URL.
_INGEST_PATH = re.compile(r"/v\d+/ingest/.")


def resolve_base_url(host: str, *, allow_insecure_http: bool = False) -> str:
    """Turn ``host`` (a bare host or a full base URL) into a base URL without trailing slash.

    The scheme and host are read by ``urllib3.util.parse_url``, the parser that will
    connect, so the loopback and https rules judge the host the request really goes to.

    Args:
        host: ``api.rated.co``, ``localhost:8080`` (both mean https) or a URL with a scheme.
        allow_insecure_http: Permit ``http://`` to a non-loopback host.

    Raises:
        ValueError: The scheme is not http(s); the host is empty or holds a backslash,
            userinfo (``user@``), white space, a control character or (in the host name)
            percent-encoding; it is a whole ingestion URL (id and key in the path); or plain
            http would send the ingestion key in clear text over a network. The message
            never quotes the value, which may be a pasted ingestion URL with the key in it.
    """
    host = host.strip()
    bad = _BAD_HOST_CHARS.search(host)
    if bad is not None:
        what = {"\\": "a backslash", "@": "userinfo (user@)"}.get(
            bad.group(), "white space or a control character"
        )
        raise ValueError(f"host: may not contain {what}")
    if "://" not in host:
        host = "https://" + host
    # urllib3 decodes an encoded host name, other parsers do not: refused there only (a
    # path may hold percent-encoding).
    if "%" in re.split(r"[/?#]", host.split("://", 1)[1], maxsplit=1)[0]:
        raise ValueError("host: may not contain percent-encoding in the host name")
    try:
        parts = parse_url(host)
    except LocationParseError:
        raise ValueError("host: not a valid host name or URL") from None
    scheme = (parts.scheme or "").lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"host: scheme must be http or https, got {scheme!r}")
    if not parts.host or parts.auth is not None:
        raise ValueError("host: no host name in the URL")
    if parts.query is not None or parts.fragment is not None:
        raise ValueError("host: a base URL may not carry a query or fragment")
    if scheme == "http" and not allow_insecure_http and not is_loopback(parts.host):
        raise ValueError(
            f"host: plain http:// to {parts.host} would send the ingestion key unencrypted "
            "(it travels in the URL path); use https, or pass allow_insecure_http=True"
        )
    netloc = parts.host if parts.port is None else f"{parts.host}:{parts.port}"
    base = f"{scheme}://{netloc}{parts.path or ''}".rstrip("/")
    if _INGEST_PATH.search(base):
        # A pasted ingestion URL: kept, it would put the key into the base URL, which
        # is shown (repr, messages) and would be sent to a path slaOS does not serve.
        raise ValueError(
            "host: this is an ingestion URL with the id and key in it; pass only its base "
            "(such as https://api.rated.co) and the id and key on their own"
        )
    # A pasted ingestion URL ending in /v1/ingest would otherwise be doubled.
    if base.endswith("/v1/ingest"):
        base = base[: -len("/v1/ingest")]
    return base


# RFC 3986's unreserved characters: they travel in a URL path exactly as written, so the
# credentials need no encoding and can be redacted by their literal form.
_URL_SAFE = re.compile(r"[A-Za-z0-9._~-]+")


def check_credential(name: str, value: str) -> str:
    """Return ``value`` if it is a valid ingestion id or key, else raise naming ``name``.

    Raises:
        ValueError: ``value`` holds a character outside ``A-Z a-z 0-9 - . _ ~``. The value
            itself is never quoted: it may be the key.
    """
    if not isinstance(value, str) or _URL_SAFE.fullmatch(value) is None:
        raise ValueError(
            f"{name} may only contain letters, digits and '-', '.', '_', '~' "
            "(as slaOS issues them); check for stray quotes, spaces or a pasted URL"
        )
    return value
