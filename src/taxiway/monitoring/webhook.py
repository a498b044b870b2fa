"""The webhook sink's transport: one JSON POST, retried, whose URL is never shown whole.

A delivery is tried up to ``tries`` times. A connection error, a timeout or a 5xx answer is
retried after an exponential backoff (``backoff_s``, then twice that, ...); a 4xx answer means
the receiver refused this payload, so it is not retried but reported with its status. Any
other answer outside 2xx (a redirect) is reported too. Nothing here raises on a failed
delivery: :func:`post_json` returns a :class:`PostResult` saying what happened.

A webhook URL often carries its secret (a Slack or PagerDuty token in the path or the query),
so every message this module writes names the URL only as :func:`redact` shows it:
``scheme://host/...``.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

from taxiway.errors import MonitoringError

__all__ = ["PostResult", "check_url", "post_json", "redact"]


def redact(url: str) -> str:
    """The URL as it may be logged: scheme and host (with the port), never the user, path or
    query, which may hold a token.

    >>> redact("https://hooks.example.com/services/T000/B000/XXXX?token=s3cret")
    'https://hooks.example.com/...'
    >>> redact("http://user:pw@127.0.0.1:8080/hook")
    'http://127.0.0.1:8080/...'
    >>> redact("not a url")
    '<webhook>/...'
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return "<webhook>/..."
    if not parts.scheme or not host:
        return "<webhook>/..."
    where = f"[{host}]" if ":" in host else host
    if port is not None:
        where = f"{where}:{port}"
    return f"{parts.scheme}://{where}/..."


def check_url(url: str) -> str:
    """``url`` if it is an http(s) URL with a host, else a :class:`MonitoringError` (naming it
    redacted): urllib would also open ``file://`` and ``ftp://`` URLs.

    >>> check_url("https://hooks.example.com/x")
    'https://hooks.example.com/x'
    >>> check_url("file:///etc/passwd")
    Traceback (most recent call last):
    ...
    taxiway.errors.MonitoringError: the alert webhook <webhook>/... is not an http(s) URL
      fix: give monitoring.webhook an http:// or https:// URL, e.g. ${ALERT_WEBHOOK_URL}
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        host = None
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise MonitoringError(
            f"the alert webhook {redact(url)} is not an http(s) URL",
            fix="give monitoring.webhook an http:// or https:// URL, e.g. ${ALERT_WEBHOOK_URL}",
        )
    return url


@dataclass(frozen=True)
class PostResult:
    """What became of one POST: ``ok`` (a 2xx answer), the tries made, the last HTTP status
    (None when no answer came) and, on failure, why (the URL redacted).

    ``retryable`` says whether the last failure was of the kind retried (a connection error,
    a timeout, a 5xx): the receiver is unreachable or broken, not refusing this payload.
    """

    ok: bool
    attempts: int
    status: int | None = None
    error: str | None = None
    retryable: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-able data.

        >>> PostResult(ok=True, attempts=1, status=200).to_dict()["status"]
        200
        """
        return asdict(self)


def post_json(
    url: str,
    payload: Mapping[str, Any],
    *,
    tries: int = 3,
    backoff_s: float = 0.5,
    timeout_s: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> PostResult:
    """POST ``payload`` as JSON to ``url``, retried as the module says; never raises on a
    failed delivery.

    >>> post_json("http://127.0.0.1:9/hook?token=x", {"a": 1}, tries=2, backoff_s=0.0).ok
    False
    """
    if tries < 1:
        raise MonitoringError(
            f"a webhook delivery needs at least one try, not {tries}", fix="pass tries >= 1"
        )
    body = json.dumps(payload, default=str).encode()
    shown = redact(url)
    result = PostResult(ok=False, attempts=0)
    for attempt in range(1, tries + 1):
        if attempt > 1:
            sleep(backoff_s * 2 ** (attempt - 2))
        result = _post_once(url, body, timeout_s, shown, attempt)
        if result.ok or not result.retryable:
            return result
    return result


def _post_once(url: str, body: bytes, timeout_s: float, shown: str, attempt: int) -> PostResult:
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "taxiway-monitor"},
    )
    try:
        with urllib.request.urlopen(  # nosec B310
            request, timeout=timeout_s
        ) as response:  # checked scheme (check_url)
            response.read()
            status = int(response.status)
    except urllib.error.HTTPError as error:
        status = int(error.code)
        error.close()
        return PostResult(
            ok=False,
            attempts=attempt,
            status=status,
            error=f"{shown} answered HTTP {status}"
            + (" (not retried: the receiver refused the payload)" if status < 500 else ""),
            retryable=status >= 500,
        )
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        reason = error.reason if isinstance(error, urllib.error.URLError) else error
        text = str(reason).replace(url, shown) or type(reason).__name__
        return PostResult(
            ok=False,
            attempts=attempt,
            error=f"{shown} could not be reached: {text}",
            retryable=True,
        )
    if 200 <= status < 300:
        return PostResult(ok=True, attempts=attempt, status=status)
    return PostResult(
        ok=False, attempts=attempt, status=status, error=f"{shown} answered HTTP {status}"
    )
