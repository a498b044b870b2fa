"""The webhook transport against a real local HTTP server: delivery, retries, redaction."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.monitoring.webhook_server import TOKEN, HookServer, closed_port_url

from taxiway.errors import MonitoringError
from taxiway.monitoring.webhook import check_url, post_json, redact


@pytest.fixture
def hook(request: pytest.FixtureRequest) -> Iterator[HookServer]:
    statuses = getattr(request, "param", ())
    server = HookServer(statuses)
    yield server
    server.close()


def test_delivers_the_payload_as_json(hook: HookServer) -> None:
    result = post_json(hook.url, {"status": "firing", "n": 1})
    assert (result.ok, result.attempts, result.status, result.error) == (True, 1, 200, None)
    assert hook.received == [{"status": "firing", "n": 1}]
    assert hook.headers[0]["Content-Type"] == "application/json"


@pytest.mark.parametrize("hook", [[503]], indirect=True)
def test_retries_after_a_503(hook: HookServer) -> None:
    pauses: list[float] = []
    result = post_json(hook.url, {"n": 1}, backoff_s=0.25, sleep=pauses.append)
    assert (result.ok, result.attempts, result.status) == (True, 2, 200)
    assert len(hook.received) == 2
    assert pauses == [0.25]


@pytest.mark.parametrize("hook", [[500, 502, 503]], indirect=True)
def test_gives_up_after_three_tries_with_exponential_backoff(hook: HookServer) -> None:
    pauses: list[float] = []
    result = post_json(hook.url, {"n": 1}, backoff_s=0.25, sleep=pauses.append)
    assert (result.ok, result.attempts, result.status, result.retryable) == (False, 3, 503, True)
    assert pauses == [0.25, 0.5]
    assert len(hook.received) == 3
    assert result.error == f"{hook.shown} answered HTTP 503"


@pytest.mark.parametrize("hook", [[400]], indirect=True)
def test_a_4xx_is_not_retried_but_reported(hook: HookServer) -> None:
    pauses: list[float] = []
    result = post_json(hook.url, {"n": 1}, sleep=pauses.append)
    assert (result.ok, result.attempts, result.status, result.retryable) == (False, 1, 400, False)
    assert pauses == []
    assert len(hook.received) == 1
    assert result.error is not None
    assert "not retried" in result.error


def test_a_refused_connection_is_retried_and_reported_redacted() -> None:
    url = closed_port_url()
    pauses: list[float] = []
    result = post_json(url, {"n": 1}, backoff_s=0.01, sleep=pauses.append)
    assert (result.ok, result.attempts, result.status, result.retryable) == (False, 3, None, True)
    assert len(pauses) == 2
    assert result.error is not None
    assert result.error.startswith(f"{redact(url)} could not be reached")
    assert TOKEN not in result.error


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"https://hooks.slack.com/services/T0/B0/{TOKEN}", "https://hooks.slack.com/..."),
        (
            f"https://events.example.com:8443/v2?routing_key={TOKEN}",
            "https://events.example.com:8443/...",
        ),
        (f"https://user:{TOKEN}@example.com/hook", "https://example.com/..."),
        (f"http://[::1]:9000/{TOKEN}", "http://[::1]:9000/..."),
        (f"{TOKEN}", "<webhook>/..."),
    ],
)
def test_redaction_keeps_only_scheme_and_host(url: str, shown: str) -> None:
    assert redact(url) == shown
    assert TOKEN not in redact(url)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x", "https://"])
def test_only_http_urls_are_accepted(url: str) -> None:
    with pytest.raises(MonitoringError) as error:
        check_url(url)
    assert error.value.fix


def test_at_least_one_try() -> None:
    with pytest.raises(MonitoringError):
        post_json("http://127.0.0.1:1/", {}, tries=0)
