"""Where run events go: a JSON-lines file (the default) or an OpenLineage HTTP endpoint.

The file transport appends each event as one line with a single ``write`` on a file opened
with ``O_APPEND``, then ``fsync``: concurrent commands never interleave within a line, and an
event written is on disk before the command goes on. The HTTP transport posts each event as
JSON (``POST {url}/api/v1/lineage``, what Marquez and every OpenLineage consumer accept) and
raises :class:`LineageError` when the endpoint cannot take it; the emitter turns that into a
warning, so a dead endpoint never fails a command.

>>> import json, tempfile
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp())
>>> FileTransport(folder).send({"eventType": "START"})
>>> [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
[{'eventType': 'START'}]
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from taxiway.errors import LineageError

__all__ = ["EVENTS_FILE", "FileTransport", "HttpTransport", "Transport"]

EVENTS_FILE = "events.jsonl"


class Transport(Protocol):
    """Sends one run event (a JSON-ready dict) somewhere, or raises :class:`LineageError`."""

    def send(self, event: dict[str, Any]) -> None:
        """Send ``event``."""


class FileTransport:
    """Appends events to ``<folder>/events.jsonl``, one JSON document per line."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / EVENTS_FILE

    def send(self, event: dict[str, Any]) -> None:
        """Append ``event`` as one line and make it durable."""
        line = (json.dumps(event, separators=(",", ":"), default=str) + "\n").encode()
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)


class HttpTransport:
    """Posts events to an OpenLineage endpoint (Marquez: ``http://host:5000``)."""

    def __init__(
        self,
        url: str,
        *,
        endpoint: str = "api/v1/lineage",
        timeout_s: float = 2.0,
        api_key: str | None = None,
    ) -> None:
        if urlsplit(url).scheme not in ("http", "https"):
            raise LineageError(
                "lineage.url must be an http:// or https:// URL",
                fix="write `lineage: {transport: http, url: http://host:5000}`",
            )
        self.target = url.rstrip("/") + "/" + endpoint.lstrip("/")
        self.timeout_s = timeout_s
        self._api_key = api_key

    def send(self, event: dict[str, Any]) -> None:
        """Post ``event``; raise :class:`LineageError` unless the endpoint answers 2xx."""
        body = json.dumps(event, default=str).encode()
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(self.target, data=body, headers=headers, method="POST")
        try:
            # the scheme was checked in __init__: only http(s), never file:// or others
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # nosec B310
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise LineageError(
                f"could not post the lineage event: {reason}",
                fix="start the OpenLineage endpoint (Marquez) or correct lineage.url; "
                "`lineage: {transport: file}` keeps events in the state folder only",
            ) from None
        if not 200 <= status < 300:
            raise LineageError(
                f"the OpenLineage endpoint answered HTTP {status}",
                fix="check lineage.url and lineage.endpoint (Marquez: api/v1/lineage) and the "
                "token in lineage.api_key_env",
            )
