"""obskit's own HTTP calls for the incident tools: bounded, never instrumented, plain errors.

Marker APIs and Prometheus are called with the standard library (no dependency for a service
that only marks its deploys), each call under :func:`obskit._selfcalls.quiet` so it produces no
span, metric or propagation header, with a timeout on every socket operation. The answer is
:class:`Answer` or an :class:`HttpError` whose message names the URL (without its query, which
may hold PromQL or a key) and the reason; nothing else is raised.
"""

from __future__ import annotations

import dataclasses
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from obskit._selfcalls import quiet

__all__ = ["Answer", "HttpError", "get_json", "request"]

# At most this much of an error answer's body goes into a message.
_DETAIL = 300
# Bodies above this size are refused (a Prometheus answer is large, a marker answer small).
MAX_BODY = 64 * 1024 * 1024


class HttpError(Exception):
    """A call failed: unreachable, timed out, an error status, or an unreadable answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclasses.dataclass(frozen=True)
class Answer:
    """A successful answer: its status and body."""

    status: int
    body: bytes

    def json(self) -> Any:
        """The body as JSON (HttpError when it is not)."""
        try:
            return json.loads(self.body)
        except ValueError:
            raise HttpError(f"not a JSON answer: {self.body[:_DETAIL]!r}") from None


def request(
    method: str,
    url: str,
    *,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    timeout: float,
) -> Answer:
    """One HTTP call as obskit's own work; ``body`` (if not None) is sent as JSON."""
    sent = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body, separators=(",", ":")).encode()
        sent.setdefault("Content-Type", "application/json")
    sent.setdefault("Accept", "application/json")
    sent.setdefault("User-Agent", "obskit")
    where = url.split("?", 1)[0]
    try:
        prepared = urllib.request.Request(url, data=data, headers=sent, method=method)
    except ValueError as exc:
        raise HttpError(f"{where}: not a URL ({exc})") from None
    try:
        with quiet(), urllib.request.urlopen(prepared, timeout=timeout) as response:
            payload = response.read(MAX_BODY + 1)
            if len(payload) > MAX_BODY:
                raise HttpError(f"{where}: answer larger than {MAX_BODY} bytes")
            return Answer(int(response.status), bytes(payload))
    except urllib.error.HTTPError as exc:
        try:
            detail = exc.read(_DETAIL).decode("utf-8", "replace").strip()
        except OSError:
            detail = ""
        finally:
            exc.close()
        raise HttpError(f"{where}: HTTP {exc.code} {detail}".strip(), exc.code) from None
    except TimeoutError:
        raise HttpError(f"{where}: no answer within {timeout:g} s") from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise HttpError(f"{where}: {reason}") from None


def get_json(url: str, timeout: float) -> Any:
    """GET ``url`` and parse its JSON answer."""
    return request("GET", url, timeout=timeout).json()
