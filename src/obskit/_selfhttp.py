"""obskit's own HTTP calls beside a service: bounded, capped, never instrumented, plain errors.

Every call the incident-loop tools make for themselves goes through :func:`request`: Prometheus'
API (the canary judge, the incident timeline), the arms' ``/metrics`` (``obskit canary watch``)
and the deploy-marker APIs (Grafana, Sentry, Datadog). The standard library does the HTTP (a
service that only marks its deploys needs no client library; proxies are taken from the usual
``HTTP(S)_PROXY`` / ``NO_PROXY`` variables), and each call:

- is **bounded as a whole**: ``timeout`` seconds cover connecting, sending, the status line, the
  headers and the body. A socket timeout alone bounds each read, not the call: a server that
  answers one byte a second would hold it for hours. A timer shuts the connection down at the
  deadline, and the call fails with "no answer within N s";
- reads at most ``max_bytes`` of the answer (:data:`MAX_BODY` by default) and fails beyond them,
  without reading the rest;
- speaks ``http://`` and ``https://`` only (urllib alone would also read ``file:`` and ``ftp:``
  URLs, and follow a redirect to ``ftp:``); a redirect from ``https`` to ``http`` is refused, and
  one to another host, port or scheme goes there without the caller's headers (an
  ``Authorization`` or API key meant for one server is never handed to another);
- runs under :func:`obskit._selfcalls.quiet`: no span, metric, buffered log line or propagation
  header of its own;
- fails with :class:`HttpError` alone, whose one-line message names the URL without its query
  (which may hold PromQL or a key) and the reason; nothing else is raised.
"""

from __future__ import annotations

import dataclasses
import functools
import http.client
import json
import math
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from obskit import _locks
from obskit._selfcalls import quiet

__all__ = ["MAX_BODY", "Answer", "HttpError", "base_url", "detail", "get", "request"]

#: The largest answer read by default (a Prometheus range query of a busy service is large).
MAX_BODY = 64 * 1024 * 1024
# At most this much of an error answer is kept (for its message and for a JSON error body).
_ERROR_BODY = 64 * 1024
# At most this much of a body goes into a message.
_DETAIL = 300
_CHUNK = 256 * 1024


class HttpError(Exception):
    """A call failed: not an http(s) URL, unreachable, no answer in time, an error status, an
    answer too large, or (from :meth:`Answer.json`) an unreadable one.

    ``status`` is the HTTP status when there was one; ``body`` the start of an error answer
    (at most 64 KiB), for callers that read an API's own error object from it.
    """

    def __init__(self, message: str, status: int | None = None, body: bytes = b"") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


def _where(url: str) -> str:
    return url.split("?", 1)[0]


def detail(raw: bytes | str, limit: int = _DETAIL) -> str:
    """The start of a body as one line of text (whitespace runs collapsed)."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


@dataclasses.dataclass(frozen=True)
class Answer:
    """A successful (2xx) answer: where from, its status, its content type and its body."""

    url: str
    status: int
    body: bytes
    content_type: str = ""

    def json(self) -> Any:
        """The body as JSON (HttpError when it is not JSON)."""
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):
            raise HttpError(
                f"{_where(self.url)}: not a JSON answer (starts {detail(self.body, 80)!r})",
                self.status,
            ) from None

    def text(self) -> str:
        """The body as UTF-8 text (HttpError when it is not)."""
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HttpError(f"{_where(self.url)}: the answer is not UTF-8 text ({exc})") from None


def base_url(url: str, what: str) -> str:
    """``url`` without its trailing slash, if it is an ``http://`` or ``https://`` URL with a
    host; ValueError naming ``what`` (``--prometheus``, ``the Grafana URL``) otherwise."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} must be an http:// or https:// URL, not {url!r}")
    return url.rstrip("/")


class _Deadline:
    """Shuts down every connection of one call when its time is up (a blocked read returns)."""

    def __init__(self) -> None:
        self._lock = _locks.lock()
        self._sockets: list[socket.socket] = []
        self.expired = False

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shut(sock)

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed: nothing to interrupt


class _HTTPConnection(http.client.HTTPConnection):
    """A connection whose socket the call's deadline watches once it is connected."""

    def __init__(self, *args: Any, deadline: _Deadline, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._obskit_deadline = deadline

    def connect(self) -> None:
        super().connect()  # for HTTPS, the TLS handshake too: the deadline watches that socket
        self._obskit_deadline.watch(self.sock)


class _HTTPSConnection(_HTTPConnection, http.client.HTTPSConnection):
    """The same, over TLS (HTTPSConnection's own connect runs inside ``_HTTPConnection``'s)."""


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        connection = functools.partial(_HTTPConnection, deadline=self._deadline)
        return self.do_open(connection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self._deadline = deadline

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        connection = functools.partial(_HTTPSConnection, deadline=self._deadline)
        return self.do_open(connection, req, context=self._context)  # type: ignore[attr-defined]


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


class _RedirectHandler(urllib.request.HTTPRedirectHandler):
    """Redirects among http(s) URLs only; the caller's headers stay with the caller's origin."""

    def __init__(self, own_headers: frozenset[str]) -> None:
        super().__init__()
        self._own = own_headers

    def http_error_302(
        self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any
    ) -> Any:
        # Judged before urllib's own check, which fails a redirect to file: with a bare 302.
        target = headers.get("Location") or headers.get("URI") or ""
        scheme = urllib.parse.urlsplit(urllib.parse.urljoin(req.full_url, target)).scheme
        where = _where(req.full_url)
        if scheme not in ("http", "https"):
            fp.close()
            raise HttpError(
                f"{where}: HTTP {code} redirects to a {scheme}: URL; only http(s) is followed", code
            )
        if urllib.parse.urlsplit(req.full_url).scheme == "https" and scheme == "http":
            fp.close()
            raise HttpError(f"{where}: HTTP {code} redirects from https to plain http", code)
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(newurl) != _origin(req.full_url):
            for name in self._own:
                new.remove_header(name.capitalize())
        return new


def _opener(
    deadline: _Deadline, own_headers: frozenset[str] = frozenset()
) -> urllib.request.OpenerDirector:
    """http and https (through the environment's proxies), redirects among them, nothing else."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        urllib.request.UnknownHandler(),
        _HTTPHandler(deadline),
        _HTTPSHandler(deadline),
        urllib.request.HTTPDefaultErrorHandler(),
        _RedirectHandler(own_headers),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


def _read(response: Any, where: str, max_bytes: int) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise HttpError(f"{where}: answer larger than {max_bytes} bytes ({declared} declared)")
    parts: list[bytes] = []
    size = 0
    while True:
        chunk = response.read(min(_CHUNK, max_bytes + 1 - size))
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            raise HttpError(f"{where}: answer larger than {max_bytes} bytes")


def _reason(reason: object) -> str:
    """A failure's reason in words: ``connection refused``, ``Name or service not known``."""
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return detail(str(reason) or type(reason).__name__)


def request(
    method: str,
    url: str,
    *,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    timeout: float,
    max_bytes: int = MAX_BODY,
    accept: str = "application/json",
) -> Answer:
    """One HTTP call as obskit's own work, done (or failed) within ``timeout`` seconds.

    ``body`` (if not None) is sent as JSON. A 2xx answer is an :class:`Answer`; anything else
    an :class:`HttpError`.
    """
    if not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"a timeout is a positive number of seconds, not {timeout!r}")
    where = _where(url)
    try:
        base_url(url, "the URL")
    except ValueError:
        raise HttpError(f"{where}: not an http:// or https:// URL") from None
    sent = {"Accept": accept, "User-Agent": "obskit", **(headers or {})}
    data = None
    if body is not None:
        data = json.dumps(body, separators=(",", ":")).encode()
        sent.setdefault("Content-Type", "application/json")
    try:
        prepared = urllib.request.Request(url, data=data, headers=sent, method=method)
    except ValueError as exc:
        raise HttpError(f"{where}: not a URL ({exc})") from None
    deadline = _Deadline()
    timer = threading.Timer(timeout, deadline.expire)
    timer.daemon = True
    timer.start()
    try:
        own = frozenset(headers or {})
        with quiet(), _opener(deadline, own).open(prepared, timeout=timeout) as response:
            payload = _read(response, where, max_bytes)
            content_type = response.headers.get("Content-Type", "")
            status = int(response.status)
    except HttpError:
        raise
    except urllib.error.HTTPError as exc:
        raise _status_error(exc, where) from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        if deadline.expired or isinstance(reason, TimeoutError):
            raise HttpError(f"{where}: no answer within {timeout:g} s") from None
        raise HttpError(f"{where}: {_reason(reason)}") from None
    finally:
        timer.cancel()
    if deadline.expired:  # the body was cut short by the deadline
        raise HttpError(f"{where}: no answer within {timeout:g} s")
    return Answer(url, status, payload, content_type)


def _status_error(exc: urllib.error.HTTPError, where: str) -> HttpError:
    try:
        raw = exc.read(_ERROR_BODY)
    except (OSError, http.client.HTTPException):
        raw = b""
    finally:
        exc.close()
    text = detail(raw)
    return HttpError(f"{where}: HTTP {exc.code} {text}".rstrip(), exc.code, raw)


def get(
    url: str, *, timeout: float, accept: str = "application/json", max_bytes: int = MAX_BODY
) -> Answer:
    """``GET url`` (see :func:`request`)."""
    return request("GET", url, timeout=timeout, accept=accept, max_bytes=max_bytes)
