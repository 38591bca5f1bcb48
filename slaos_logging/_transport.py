"""One HTTP POST of one encoded batch: ``send(body) -> SendResult``, which never raises."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urljoin

import requests
from urllib3.util import parse_url

from ._diagnostics import redact
from ._retry import parse_retry_after
from ._version import __version__

USER_AGENT = f"slaos-logging/{__version__}"
_BODY_EXCERPT = 500
# The longest name DNS allows: a longer "host" is noise, and would fill a log line.
_HOST_MAX = 253


class NoRedirectSession(requests.Session):
    """A ``requests.Session`` that never follows a redirect, nor reads where it points.

    Even with ``allow_redirects=False``, requests prepares the next request (for
    ``response.next``) and so parses the ``Location``: a malformed one
    (``http://[::1``) would raise ``ValueError`` out of a request that was answered.
    """

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        """No redirect target, ever: the 3xx is the answer."""
        return None


def redirect_target(url: str, location: str | None) -> str:
    """Where a redirect answered to ``url`` points: ``scheme://host[:port]``.

    A relative ``Location`` is resolved against ``url``; the result is read by
    ``urllib3.util.parse_url``, the parser that would connect. The path, query and
    user info, which may hold the key, are never part of the result; a host may hold
    it too, so callers still redact.

    Returns:
        The scheme, host and port; else ``"nowhere (no Location header)"`` or ``"an
        unreadable Location"`` (unparsable, no host, or a host too long to be one).
    """
    if not location or not location.strip():
        return "nowhere (no Location header)"
    try:
        parts = parse_url(urljoin(url, location.strip()))
    except ValueError:  # LocationParseError is one
        return "an unreadable Location"
    if not parts.host or len(parts.host) > _HOST_MAX:
        return "an unreadable Location"
    where = parts.host if parts.port is None else f"{parts.host}:{parts.port}"
    return f"{parts.scheme}://{where}" if parts.scheme else where


@dataclass(frozen=True)
class SendResult:
    """The outcome of one request.

    Attributes:
        status: The HTTP status, or ``None`` when no answer came (connection error, timeout).
        retry_after: Seconds the server asked us to wait, if it said.
        detail: The error text or the start of the response body, key redacted.
        redirect_host: For a redirect (3xx, never followed): the ``Location``'s scheme,
            host and port (never its path, which may hold the key); see ``redirect_target``.
    """

    status: int | None
    retry_after: float | None = None
    detail: str = ""
    redirect_host: str | None = None


class Transport:
    """Posts JSON bodies to one ingestion URL over a keep-alive ``requests.Session``."""

    def __init__(self, url: str, *, timeout: float, verify: bool | str, secret: str) -> None:
        self._url = url
        self._timeout = timeout
        self._verify = verify
        self._secret = secret
        self._session = self._new_session()

    def _new_session(self) -> requests.Session:
        session = NoRedirectSession()
        session.headers.update({"Content-Type": "application/json", "User-Agent": USER_AGENT})
        # The environment's proxy and CA-bundle settings are read once, here, instead of
        # on every request: with trust_env requests stats ~/.netrc and scans the
        # environment per request, the largest CPU cost of a send after JSON.
        session.proxies.update(requests.utils.get_environ_proxies(self._url))
        verify = self._verify
        if verify is True:
            verify = (
                os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
            )
        session.verify = verify
        session.trust_env = False
        return session

    def send(self, body: bytes, timeout: float | None = None) -> SendResult:
        """POST ``body``; return what happened. Never raises.

        Args:
            body: The JSON array of events.
            timeout: Seconds for this request, if shorter than the configured ``timeout``
                (a closing deadline).
        """
        try:
            # Never follow a redirect: a 301/302/303 would turn the POST into a GET (events
            # counted sent that nobody stored), and a 307/308 would re-send the events,
            # and with a Location that keeps the path the key too, to wherever it points,
            # over plain http if it says so.
            response = self._session.post(
                self._url,
                data=body,
                timeout=self._timeout if timeout is None else min(timeout, self._timeout),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            return SendResult(None, None, self._clean(f"{type(exc).__name__}: {exc}"))
        except Exception as exc:  # anything else is a bug we must survive
            return SendResult(None, None, self._clean(f"{type(exc).__name__}: {exc}"))
        try:
            status = response.status_code
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if 300 <= status < 400:
                host = self._clean(redirect_target(self._url, response.headers.get("Location")))
                # The body of a redirect (a login page, say) says nothing useful.
                return SendResult(status, retry_after, f"redirect to {host}, not followed", host)
            detail = "" if status < 300 else self._clean(response.text[:_BODY_EXCERPT])
        except Exception as exc:  # a garbled response is still an answer
            return SendResult(response.status_code, None, self._clean(str(exc)))
        finally:
            response.close()
        return SendResult(status, retry_after, detail)

    def _clean(self, text: str) -> str:
        # requests' exception texts contain the full URL, key included.
        return redact(text, (self._secret,))

    def close(self) -> None:
        """Close the session's pooled connections."""
        try:
            self._session.close()
        except Exception:  # closing must not fail shutdown
            pass
