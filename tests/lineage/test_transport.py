"""The file transport appends whole lines; the HTTP transport posts to a real local server."""

from __future__ import annotations

import json
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tests.lineage.collector import Collector

from taxiway.errors import LineageError
from taxiway.lineage.transport import FileTransport, HttpTransport


def test_concurrent_appends_keep_every_line_whole(tmp_path: Path) -> None:
    transport = FileTransport(tmp_path / "lineage")
    padding = "x" * 5000  # longer than a pipe buffer: a torn write would show
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: transport.send({"n": i, "pad": padding}), range(200)))
    lines = transport.path.read_text().splitlines()
    assert sorted(json.loads(line)["n"] for line in lines) == list(range(200))


def test_http_posts_each_event_to_the_lineage_endpoint() -> None:
    collector = Collector()
    try:
        HttpTransport(collector.url + "/", api_key="tok-123").send({"eventType": "START"})
    finally:
        collector.close()
    assert collector.received == [{"eventType": "START"}]
    assert collector.paths == ["/api/v1/lineage"]
    assert collector.headers[0]["Authorization"] == "Bearer tok-123"


def test_a_refusing_endpoint_raises_with_the_status() -> None:
    collector = Collector(status=500)
    try:
        with pytest.raises(LineageError, match="HTTP 500") as caught:
            HttpTransport(collector.url).send({"eventType": "START"})
    finally:
        collector.close()
    assert caught.value.fix is not None


def test_a_dead_endpoint_raises_with_the_fix() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(LineageError, match="could not post") as caught:
        HttpTransport(f"http://127.0.0.1:{port}", timeout_s=1).send({})
    assert "Marquez" in (caught.value.fix or "")


def test_only_http_urls_are_posted_to() -> None:
    with pytest.raises(LineageError, match="http://"):
        HttpTransport("file:///etc/passwd")
