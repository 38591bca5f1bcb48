"""One HTTP POST of one encoded batch: ``send(body) -> SendResult``, which never raises."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests

from ._diagnostics import redact
from ._retry import parse_retry_after
from ._version import __version__

USER_AGENT = f"slaos-logging/{__version__}"
_BODY_EXCERPT = 500


@dataclass(frozen=True)
class SendResult:
    """The outcome of one request.

    Attributes:
        status: The HTTP status, or ``None`` when no answer came (connection error, timeout).
        retry_after: Seconds the server asked us to wait, if it said.
        detail: The error text or the start of the response body, key redacted.
        redirect_host: For a redirect (3xx, never followed): the ``Location``'s scheme,
            host and port (never its path, which may hold the key), or ``"no Location"``.
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
        session = requests.Session()
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

    def send(self, body: bytes) -> SendResult:
        """POST ``body``; return what happened. Never raises."""
        try:
            # Never follow a redirect: a 301/302/303 would turn the POST into a GET (events
            # counted sent that nobody stored), and a 307/308 would re-send the events,
            # and with a Location that keeps the path the key too, to wherever it points,
            # over plain http if it says so.
            response = self._session.post(
                self._url, data=body, timeout=self._timeout, allow_redirects=False
            )
        except requests.RequestException as exc:
            return SendResult(None, None, self._clean(f"{type(exc).__name__}: {exc}"))
        except Exception as exc:  # anything else is a bug we must survive
            return SendResult(None, None, self._clean(f"{type(exc).__name__}: {exc}"))
        try:
            status = response.status_code
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if 300 <= status < 400:
                host = self._location_host(response.headers.get("Location"))
                # The body of a redirect (a login page, say) says nothing useful.
                return SendResult(status, retry_after, f"redirect to {host}, not followed", host)
            detail = "" if status < 300 else self._clean(response.text[:_BODY_EXCERPT])
        except Exception as exc:  # a garbled response is still an answer
            return SendResult(response.status_code, None, self._clean(str(exc)))
        finally:
            response.close()
        return SendResult(status, retry_after, detail)

    def _location_host(self, location: str | None) -> str:
        """Where a redirect points: scheme, host and port, never its path, query or user info."""
        if not location:
            return "no Location"
        try:
            parts = urlsplit(urljoin(self._url, location.strip()))
            host = parts.hostname or "an unreadable Location"
            port = parts.port
        except ValueError:
            return "an unreadable Location"
        if ":" in host:  # IPv6
            host = f"[{host}]"
        where = f"{host}:{port}" if port is not None else host
        return self._clean(f"{parts.scheme}://{where}" if parts.scheme else where)

    def _clean(self, text: str) -> str:
        # requests' exception texts contain the full URL, key included.
        return redact(text, (self._secret,))

    def close(self) -> None:
        """Close the session's pooled connections."""
        try:
            self._session.close()
        except Exception:  # closing must not fail shutdown
            pass
