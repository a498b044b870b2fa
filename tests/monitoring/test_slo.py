"""SLO burn rates, error budget and the multi-window burn-rate alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taxiway.errors import MonitoringError
from taxiway.monitoring.slo import (
    WINDOWS,
    SloSpec,
    burn_rates,
    burns,
    error_budget,
    slo_alerts,
)

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
LATENCY = SloSpec("latency", objective=0.99)
PROPERTY = settings(derandomize=True, max_examples=60, deadline=None)


def key(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M")


def traffic(
    span: timedelta, per_minute: int = 100, slow: int = 0, errors: int = 0, end: datetime = NOW
) -> dict[str, list[int]]:
    """``span`` of minutes ending just before ``end``, each with the same counts."""
    count = int(span / timedelta(minutes=1))
    return {
        key(end - timedelta(minutes=i)): [per_minute, slow, errors] for i in range(1, count + 1)
    }


def test_an_injected_latency_regression_pages() -> None:
    minutes = traffic(timedelta(days=3))  # three good days...
    minutes.update(traffic(timedelta(minutes=20), slow=50))  # ...then 20 minutes at 50% slow
    rates = burn_rates(minutes, LATENCY, NOW)
    assert rates["5m"] == pytest.approx(50.0)
    assert rates["1h"] == pytest.approx(1000 / 6000 / 0.01)  # 16.7 > 14.4
    [alert] = slo_alerts(rates, LATENCY, now=NOW, model="churn")
    assert (alert.key, alert.kind, alert.severity) == ("slo:churn:latency", "slo", "page")
    assert alert.threshold == 14.4
    assert alert.value == pytest.approx(rates["1h"])
    assert "1h/5m" in alert.detail


def test_a_single_slow_minute_does_not_page() -> None:
    minutes = traffic(timedelta(days=3))
    minutes[key(NOW - timedelta(minutes=1))] = [100, 100, 0]  # the latest minute: all slow
    rates = burn_rates(minutes, LATENCY, NOW)
    assert rates["5m"] > 14.4  # the short window alone is over...
    assert rates["1h"] < 14.4  # ...the long one proves it is not significant
    assert slo_alerts(rates, LATENCY, now=NOW) == []


def test_a_slow_burn_over_days_makes_a_ticket_not_a_page() -> None:
    minutes = traffic(timedelta(days=3), slow=2)  # 2% slow: burn 2 everywhere
    rates = burn_rates(minutes, LATENCY, NOW)
    assert set(rates) == set(WINDOWS)
    assert all(rate == pytest.approx(2.0) for rate in rates.values())
    [alert] = slo_alerts(rates, LATENCY, now=NOW)
    assert alert.severity == "ticket"
    assert alert.threshold == 1.0


def test_the_most_severe_pair_names_the_alert() -> None:
    rates = {"5m": 20.0, "30m": 20.0, "1h": 20.0, "6h": 20.0, "3d": 20.0}
    [alert] = slo_alerts(rates, LATENCY, now=NOW)
    assert alert.severity == "page"
    assert alert.threshold == 14.4
    for pair in ("1h/5m", "6h/30m", "3d/6h"):
        assert pair in alert.detail


def test_errors_slo_counts_server_errors_only() -> None:
    minutes = traffic(timedelta(hours=1), slow=100, errors=1)
    rates = burn_rates(minutes, SloSpec("errors", objective=0.999), NOW)
    assert rates["1h"] == pytest.approx(0.01 / 0.001)


def test_an_empty_window_burns_nothing_and_says_so() -> None:
    minutes = traffic(timedelta(hours=1), slow=5, end=NOW - timedelta(minutes=10))
    by_window = burns(minutes, LATENCY, NOW)
    assert by_window["5m"].rate == 0.0
    assert by_window["5m"].requests == 0
    assert by_window["5m"].note == "no requests in the last 5m: burn 0"
    assert by_window["1h"].note is None
    assert by_window["1h"].rate == pytest.approx(5.0)


def test_windows_hold_whole_minutes_up_to_now() -> None:
    minutes = {
        key(NOW - timedelta(minutes=5)): [10, 10, 0],  # the oldest minute of the 5m window
        key(NOW - timedelta(minutes=6)): [10, 10, 0],  # just outside it
        key(NOW): [10, 0, 0],  # after now: never counted
    }
    assert burns(minutes, LATENCY, NOW)["5m"].requests == 10
    # in the middle of a minute, that minute counts with what it holds
    assert burns(minutes, LATENCY, NOW + timedelta(seconds=30))["5m"].requests == 10
    assert burns(minutes, LATENCY, NOW + timedelta(seconds=30))["30m"].requests == 30


def test_error_budget_over_the_covered_span() -> None:
    minutes = traffic(timedelta(days=3), slow=1)  # exactly on objective: burn 1
    budget = error_budget(minutes, LATENCY, NOW)
    assert budget.requests == 3 * 1440 * 100
    assert budget.consumed == pytest.approx(1.0)
    assert budget.remaining == pytest.approx(0.0)
    assert budget.covered == timedelta(days=3)
    assert budget.coverage == pytest.approx(0.1)
    assert "covers 3d of the 30d period (10.0%)" in budget.note


def test_error_budget_goes_negative_when_overspent_and_ignores_older_minutes() -> None:
    minutes = traffic(timedelta(hours=1), slow=3)
    minutes[key(NOW - timedelta(days=31))] = [100, 100, 0]  # before the period
    budget = error_budget(minutes, LATENCY, NOW)
    assert budget.remaining == pytest.approx(-2.0)
    assert budget.bad == 180


def test_an_empty_period_leaves_the_budget_untouched() -> None:
    budget = error_budget({}, LATENCY, NOW)
    assert (budget.remaining, budget.coverage) == (1.0, 0.0)
    assert "untouched" in budget.note


@pytest.mark.parametrize(
    "minutes",
    [
        {"2026-12-06 12:00": [1, 0, 0]},
        {"2026-12-06T12:00": [1]},
        {"2026-12-06T12:00": [1, 2, 0]},
        {"2026-12-06T12:00": [-1, 0, 0]},
    ],
)
def test_malformed_minutes_are_refused(minutes: dict[str, list[int]]) -> None:
    with pytest.raises(MonitoringError) as error:
        burn_rates(minutes, LATENCY, NOW)
    assert error.value.fix


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(MonitoringError, match="no time zone"):
        burn_rates({}, LATENCY, datetime(2026, 12, 6, 12, 0))


@pytest.mark.parametrize(
    ("name", "objective", "period"),
    [
        ("uptime", 0.99, timedelta(days=30)),
        ("latency", 99.0, timedelta(days=30)),
        ("errors", 0.999, timedelta(seconds=5)),
    ],
)
def test_bad_slo_specs_are_refused(name: str, objective: float, period: timedelta) -> None:
    with pytest.raises(MonitoringError):
        SloSpec(name, objective, period)  # type: ignore[arg-type]


MINUTE_COUNTS = st.lists(
    st.tuples(st.integers(0, 4319), st.integers(0, 1000), st.floats(0.0, 1.0)),
    max_size=40,
)


def minutes_of(rows: list[tuple[int, int, float]]) -> dict[str, list[int]]:
    minutes: dict[str, list[int]] = {}
    for age, requests, share in rows:
        bad = round(requests * share)
        minutes[key(NOW - timedelta(minutes=age + 1))] = [requests, bad, bad]
    return minutes


@PROPERTY
@given(rows=MINUTE_COUNTS, objective=st.sampled_from([0.9, 0.99, 0.999]))
def test_burn_rates_are_never_negative(
    rows: list[tuple[int, int, float]], objective: float
) -> None:
    for name in ("latency", "errors"):
        rates = burn_rates(minutes_of(rows), SloSpec(name, objective), NOW)
        assert set(rates) == set(WINDOWS)
        assert all(rate >= 0.0 for rate in rates.values())
        assert all(rate <= 1.0 / (1.0 - objective) + 1e-9 for rate in rates.values())


@PROPERTY
@given(
    ages=st.lists(st.integers(0, 4319), min_size=1, max_size=30, unique=True),
    share=st.integers(0, 100),
)
def test_burn_rates_scale_with_the_bad_share(ages: list[int], share: int) -> None:
    # every minute has the same bad share: each non-empty window burns share / budget
    minutes = {key(NOW - timedelta(minutes=a + 1)): [100, share, 0] for a in ages}
    by_window = burns(minutes, LATENCY, NOW)
    for burn in by_window.values():
        expected = (share / 100) / 0.01 if burn.requests else 0.0
        assert burn.rate == pytest.approx(expected)


@PROPERTY
@given(rows=MINUTE_COUNTS, pick=st.integers(0, 39))
def test_one_more_bad_request_never_lowers_a_burn_rate(
    rows: list[tuple[int, int, float]], pick: int
) -> None:
    minutes = minutes_of(rows)
    busy = [k for k, (requests, bad, _) in minutes.items() if bad < requests]
    if not busy:
        return
    before = burn_rates(minutes, LATENCY, NOW)
    chosen = busy[pick % len(busy)]
    minutes[chosen] = [minutes[chosen][0], minutes[chosen][1] + 1, minutes[chosen][2]]
    after = burn_rates(minutes, LATENCY, NOW)
    assert all(after[w] >= before[w] for w in WINDOWS)
    assert any(after[w] > before[w] for w in WINDOWS)
