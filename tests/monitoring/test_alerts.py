"""Alerts, hysteresis and the sinks (log and a real local webhook server)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.monitoring.webhook_server import TOKEN, HookServer, closed_port_url

from taxiway.errors import MonitoringError
from taxiway.monitoring.alerts import Alert, AlertSinks, Severity, hysteresis
from taxiway.monitoring.slo import SloSpec, burn_rates, slo_alerts

NOW = datetime(2026, 12, 6, 6, 0, tzinfo=UTC)


def alert(key: str = "slo:latency", severity: Severity = "page") -> Alert:
    return Alert(
        key=key,
        kind="slo",
        severity=severity,
        title=f"{key} firing",
        detail="1h/5m at 16.7x and 50.0x > 14.4x",
        value=16.7,
        threshold=14.4,
        since=NOW - timedelta(minutes=20),
        where="latency by answer path and arm",
    )


@pytest.fixture
def hook(request: pytest.FixtureRequest) -> Iterator[HookServer]:
    server = HookServer(getattr(request, "param", ()))
    yield server
    server.close()


def sinks(state: Path, hook: HookServer | str, **options: object) -> AlertSinks:
    url = hook if isinstance(hook, str) else hook.url
    return AlertSinks(state, webhook=url, backoff_s=0.0, timeout_s=2.0, **options)  # type: ignore[arg-type]


# -- hysteresis ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        ([], False),
        ([True], True),
        ([False], False),
        ([True, True], True),
        ([True, False], False),
        ([False, True, True], True),
        ([True, False, True], True),
        ([True, False, False], False),
        ([True, True, False, False, True], False),  # only the last three count
    ],
)
def test_hysteresis_two_of_three(history: list[bool], expected: bool) -> None:
    assert hysteresis(history, k=2, m=3) is expected


@pytest.mark.parametrize(("k", "m"), [(0, 3), (4, 3), (-1, -1)])
def test_hysteresis_refuses_impossible_k_of_m(k: int, m: int) -> None:
    with pytest.raises(MonitoringError):
        hysteresis([True], k=k, m=m)


@settings(derandomize=True, max_examples=80, deadline=None)
@given(
    history=st.lists(st.booleans(), max_size=12),
    km=st.tuples(st.integers(1, 5), st.integers(0, 4)).map(lambda t: (t[0], t[0] + t[1])),
)
def test_hysteresis_is_monotone_in_the_verdicts(history: list[bool], km: tuple[int, int]) -> None:
    k, m = km
    # turning one verdict from False to True never clears the status
    base = hysteresis(history, k, m)
    for i, verdict in enumerate(history):
        if not verdict:
            raised = [*history[:i], True, *history[i + 1 :]]
            assert hysteresis(raised, k, m) >= base
    assert hysteresis([True] * m, k, m)
    assert not hysteresis([False] * m, k, m)


# -- the alert -----------------------------------------------------------------------------


def test_an_alert_round_trips_through_json() -> None:
    original = alert()
    data = json.loads(json.dumps(original.to_dict()))
    assert Alert.from_dict(data) == original


def test_an_unknown_severity_is_refused() -> None:
    with pytest.raises(MonitoringError):
        alert(severity="urgent")  # type: ignore[arg-type]


# -- the sinks -----------------------------------------------------------------------------


def test_delivers_a_firing_alert_and_logs_it(
    tmp_path: Path, hook: HookServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="taxiway.monitoring")
    [delivery] = sinks(tmp_path / "alerts.json", hook).send([alert()], now=NOW)
    assert (delivery.outcome, delivery.event, delivery.attempts, delivery.status) == (
        "sent",
        "firing",
        1,
        200,
    )
    [payload] = hook.received
    assert payload["status"] == "firing"
    assert payload["alert"] == json.loads(json.dumps(alert().to_dict()))
    assert payload["text"].startswith("[page] slo:latency firing")
    [record] = [r for r in caplog.records if r.name == "taxiway.monitoring"]
    assert record.levelno == logging.ERROR  # a page
    assert "slo:latency" in record.getMessage()


def test_dedup_across_two_instances_sharing_the_state_file(
    tmp_path: Path, hook: HookServer
) -> None:
    state = tmp_path / "monitor" / "alerts.json"
    first, second = sinks(state, hook), sinks(state, hook)
    assert [d.outcome for d in first.send([alert("a", "ticket")], now=NOW)] == ["sent"]
    # a rerun of the monitor (another instance) within the hour: not re-sent
    later = NOW + timedelta(minutes=30)
    assert [d.outcome for d in second.send([alert("a", "ticket")], now=later)] == ["deduplicated"]
    assert len(hook.received) == 1
    # the severity rises: re-sent at once
    assert [d.outcome for d in second.send([alert("a", "page")], now=later)] == ["sent"]
    # back to ticket, then page again within the hour: the page was sent, nothing new
    assert [d.outcome for d in first.send([alert("a", "ticket")], now=later)] == ["deduplicated"]
    assert [d.outcome for d in first.send([alert("a", "page")], now=later)] == ["deduplicated"]
    # an hour after the last send: repeated
    again = later + timedelta(hours=1)
    assert [d.outcome for d in first.send([alert("a", "page")], now=again)] == ["sent"]
    assert [p["alert"]["severity"] for p in hook.received] == ["ticket", "page", "page"]


def test_a_resolved_alert_sends_one_resolved(tmp_path: Path, hook: HookServer) -> None:
    state = tmp_path / "alerts.json"
    sinks(state, hook).send([alert("a"), alert("b")], now=NOW)
    deliveries = sinks(state, hook).send([alert("b")], now=NOW + timedelta(minutes=5))
    assert [(d.key, d.event, d.outcome) for d in deliveries] == [
        ("b", "firing", "deduplicated"),
        ("a", "resolved", "sent"),
    ]
    assert sinks(state, hook).send([alert("b")], now=NOW + timedelta(minutes=10))[0].outcome == (
        "deduplicated"
    )
    assert [(p["status"], p["alert"]["key"]) for p in hook.received] == [
        ("firing", "a"),
        ("firing", "b"),
        ("resolved", "a"),
    ]
    assert hook.received[-1]["text"].startswith("[resolved] ")
    # firing again after being resolved: notified afresh
    again = sinks(state, hook).send([alert("a"), alert("b")], now=NOW + timedelta(minutes=11))
    assert {d.key: d.outcome for d in again} == {"a": "sent", "b": "deduplicated"}


def test_a_scope_never_resolves_another_scopes_alerts(tmp_path: Path, hook: HookServer) -> None:
    state = tmp_path / "alerts.json"
    sinks(state, hook).send([alert("churn:a")], now=NOW, scope="churn")
    assert sinks(state, hook).send([], now=NOW, scope="ltv") == []
    [resolved] = sinks(state, hook).send([], now=NOW, scope="churn")
    assert (resolved.key, resolved.event) == ("churn:a", "resolved")


def test_rate_limit_counts_the_rest_and_summarises_them_next(
    tmp_path: Path, hook: HookServer, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "alerts.json"
    five = [alert(f"drift:f{i}", "ticket") for i in range(5)]
    deliveries = sinks(state, hook, per_minute=2).send(five, now=NOW)
    assert [d.outcome for d in deliveries] == ["sent"] * 2 + ["rate_limited"] * 3
    assert len(hook.received) == 2
    assert "rate limit" in caplog.text
    # within the same minute: still limited (two sent already)
    soon = NOW + timedelta(seconds=30)
    assert [d.outcome for d in sinks(state, hook, per_minute=2).send(five, now=soon)] == [
        "deduplicated",
        "deduplicated",
        "rate_limited",
        "rate_limited",
        "rate_limited",
    ]
    # the next minute: the next send carries the count of those not sent
    later = NOW + timedelta(minutes=1, seconds=1)
    sinks(state, hook, per_minute=2).send(five, now=later)
    summary = hook.received[2]["suppressed"]
    assert summary["count"] == 3  # each alert once, however many runs held it back
    assert summary["keys"] == ["drift:f2", "drift:f3", "drift:f4"]
    assert "suppressed" not in hook.received[3]  # cleared once carried


@pytest.mark.parametrize("hook", [[400]], indirect=True)
def test_a_refused_delivery_is_returned_logged_and_retried_next_run(
    tmp_path: Path, hook: HookServer, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "alerts.json"
    [failed] = sinks(state, hook).send([alert()], now=NOW)
    assert (failed.outcome, failed.status, failed.attempts) == ("failed", 400, 1)
    assert "not delivered" in caplog.text
    # not recorded as notified: the next run sends it
    [sent] = sinks(state, hook).send([alert()], now=NOW + timedelta(minutes=1))
    assert sent.outcome == "sent"


@pytest.mark.parametrize("hook", [[503]], indirect=True)
def test_a_503_is_retried_within_one_send(tmp_path: Path, hook: HookServer) -> None:
    [sent] = sinks(tmp_path / "alerts.json", hook).send([alert()], now=NOW)
    assert (sent.outcome, sent.attempts) == ("sent", 2)


def test_an_unreachable_webhook_never_crashes_and_is_tried_once_per_run(
    tmp_path: Path,
) -> None:
    deliveries = sinks(tmp_path / "alerts.json", closed_port_url()).send(
        [alert("a"), alert("b"), alert("c")], now=NOW
    )
    assert [d.outcome for d in deliveries] == ["failed"] * 3
    assert [d.attempts for d in deliveries] == [3, 0, 0]
    assert all(d.error and "could not be reached" in d.error for d in deliveries)


def test_the_webhook_secret_never_reaches_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = closed_port_url()
    sink = sinks(tmp_path / "alerts.json", url)
    deliveries = sink.send([alert()], now=NOW)
    assert caplog.records
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
        assert TOKEN not in str(record.__dict__)
    assert any(url.split("/hooks")[0] + "/..." in r.getMessage() for r in caplog.records)
    assert TOKEN not in repr(sink)
    assert all(TOKEN not in json.dumps(d.to_dict()) for d in deliveries)


def test_state_is_one_json_file_written_atomically(tmp_path: Path, hook: HookServer) -> None:
    state = tmp_path / "monitor" / "alerts.json"
    sinks(state, hook).send([alert()], now=NOW)
    data = json.loads(state.read_text())
    assert data["format"] == 1
    assert set(data["alerts"]) == {"slo:latency"}
    assert sorted(p.name for p in state.parent.iterdir()) == ["alerts.json", "alerts.json.lock"]


def test_an_unreadable_state_starts_afresh_with_a_warning(
    tmp_path: Path, hook: HookServer, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "alerts.json"
    state.write_text("{not json")
    [delivery] = sinks(state, hook).send([alert()], now=NOW)
    assert delivery.outcome == "sent"
    assert "unreadable" in caplog.text


def test_without_a_webhook_the_log_is_deduplicated_too(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="taxiway.monitoring")
    sink = AlertSinks(tmp_path / "alerts.json")
    assert [d.outcome for d in sink.send([alert()], now=NOW)] == ["sent"]
    assert [d.outcome for d in sink.send([alert()], now=NOW + timedelta(minutes=1))] == [
        "deduplicated"
    ]
    assert sum("slo:latency firing" in r.getMessage() for r in caplog.records) == 1


def test_bad_sink_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(MonitoringError):
        AlertSinks(tmp_path / "a.json", webhook=f"file:///tmp/{TOKEN}")
    with pytest.raises(MonitoringError):
        AlertSinks(tmp_path / "a.json", per_minute=0)


def test_a_state_that_cannot_be_written_never_stops_the_alerts(
    tmp_path: Path, hook: HookServer, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "alerts.json"
    state.mkdir()  # neither readable nor replaceable as a file
    [delivery] = sinks(state, hook).send([alert()], now=NOW)
    assert delivery.outcome == "sent"
    assert "unreadable" in caplog.text
    assert "cannot be written" in caplog.text
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_a_state_folder_that_cannot_exist_is_a_monitoring_error(tmp_path: Path) -> None:
    (tmp_path / "monitor").write_text("a file where the folder should be")
    with pytest.raises(MonitoringError) as error:
        AlertSinks(tmp_path / "monitor" / "alerts.json").send([alert()], now=NOW)
    assert error.value.fix


def test_an_alert_carried_into_a_new_scope_is_resolved_there(
    tmp_path: Path, hook: HookServer
) -> None:
    state = tmp_path / "alerts.json"
    sinks(state, hook).send([alert("drift:churn:spend")], now=NOW, scope="churn-v3")
    # version 4 is served and the alert still fires: deduplicated, now held by v4's scope
    later = NOW + timedelta(minutes=5)
    [held] = sinks(state, hook).send([alert("drift:churn:spend")], now=later, scope="churn-v4")
    assert held.outcome == "deduplicated"
    [resolved] = sinks(state, hook).send([], now=later, scope="churn-v4")
    assert (resolved.event, resolved.outcome) == ("resolved", "sent")


def test_a_latency_regression_pages_once_across_reruns_then_resolves(
    tmp_path: Path, hook: HookServer
) -> None:
    slo = SloSpec("latency", 0.99)

    def minute(at: datetime) -> str:
        return at.strftime("%Y-%m-%dT%H:%M")

    good = {minute(NOW - timedelta(minutes=i)): [100, 0, 0] for i in range(1, 181)}
    slow = {**good, **{minute(NOW - timedelta(minutes=i)): [100, 50, 0] for i in range(1, 21)}}
    state = tmp_path / "alerts.json"
    for rerun in range(3):  # `taxiway monitor` run every 5 minutes over the same regression
        now = NOW + timedelta(minutes=5 * rerun)
        alerts = slo_alerts(burn_rates(slow, slo, NOW), slo, now=now, model="churn")
        sinks(state, hook).send(alerts, now=now, scope="churn")
    assert [(p["status"], p["alert"]["severity"]) for p in hook.received] == [("firing", "page")]
    recovered = slo_alerts(burn_rates(good, slo, NOW), slo, now=NOW, model="churn")
    assert recovered == []
    sinks(state, hook).send(recovered, now=NOW + timedelta(minutes=20), scope="churn")
    assert [p["status"] for p in hook.received] == ["firing", "resolved"]
