"""The monitor over a real prediction log: drift per window against calibrated thresholds,
hysteresis, the missing share, latency and SLO burn, quality, alerts, incremental reruns."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.monitoring.monitor_world import (
    START,
    World,
    reference,
    shift_spend,
    spend_as_text,
    spend_missing,
)

from taxiway.errors import MonitoringError
from taxiway.monitoring.monitor import run_monitor
from taxiway.monitoring.reference import build_reference
from taxiway.monitoring.report import MonitorReport, render_html
from taxiway.spec.models import Monitoring


@pytest.fixture(scope="module")
def stored() -> dict[str, Any]:
    return reference()


@pytest.fixture
def world(tmp_path: Path, stored: dict[str, Any]) -> World:
    return World(tmp_path, stored)


def statuses(report: MonitorReport) -> dict[str, str]:
    return {f.name: f.status for f in report.features}


def test_a_stationary_log_is_healthy(world: World) -> None:
    for hour in range(4):
        world.write_window(hour)
    report = run_monitor(world.inputs())
    assert report.healthy, [a.text for a in report.alerts]
    assert statuses(report) == {"age": "ok", "spend": "ok", "plan": "ok"}
    assert report.output is not None
    assert report.output.status == "ok"
    assert report.period.windows == 4
    assert report.period.requests == 2_400
    assert report.period.start == START
    spend = next(f for f in report.features if f.name == "spend")
    assert spend.statistic == "psi"
    assert spend.windows == 4
    assert spend.threshold is not None
    assert spend.value is not None
    assert spend.value < spend.threshold
    assert next(f for f in report.features if f.name == "plan").statistic == "chi2"


def test_a_shifted_feature_drifts_alone_and_its_alert_says_where_to_look(world: World) -> None:
    world.write_window(0)
    for hour in (1, 2, 3):
        world.write_window(hour, shift=shift_spend)
    report = run_monitor(world.inputs())
    assert statuses(report) == {"age": "ok", "spend": "drift", "plan": "ok"}
    assert not report.healthy
    drift = [a for a in report.alerts if a.kind == "drift" and "spend" in a.key]
    assert len(drift) == 1
    alert = drift[0]
    assert alert.severity == "ticket"  # drift explains; it does not page
    assert alert.where == "view orders, source shop"
    assert "over in 3 of the last 3 windows" in alert.detail
    assert alert.since == START + timedelta(hours=1)
    assert "p-value" in alert.detail
    assert "diagnosis only" in alert.detail
    assert not any(a.kind == "drift" and "age" in a.key for a in report.alerts)


def test_one_window_over_is_a_warning_not_an_alert(world: World) -> None:
    for hour in range(3):
        world.write_window(hour)
    world.write_window(3, shift=shift_spend)
    report = run_monitor(world.inputs())
    spend = next(f for f in report.features if f.name == "spend")
    assert spend.status == "warn"
    assert [h.over for h in spend.history] == [False, False, False, True]
    assert not any(a.kind == "drift" and "spend" in a.key for a in report.alerts)


def test_two_of_three_windows_over_make_a_drift(world: World) -> None:
    world.write_window(0)
    world.write_window(1, shift=shift_spend)
    world.write_window(2)
    world.write_window(3, shift=shift_spend)
    report = run_monitor(world.inputs())
    spend = next(f for f in report.features if f.name == "spend")
    assert [h.status for h in spend.history] == ["ok", "warn", "ok", "drift"]
    assert spend.status == "drift"


def test_a_rise_in_the_missing_share_counts_as_drift(world: World) -> None:
    world.write_window(0)
    for hour in (1, 2):
        world.write_window(hour, shift=spend_missing)
    report = run_monitor(world.inputs())
    spend = next(f for f in report.features if f.name == "spend")
    assert spend.status == "drift"
    assert spend.missing_share is not None
    assert 0.15 < spend.missing_share < 0.35
    assert "missing" in spend.why


def test_a_format_change_that_makes_every_value_unreadable_drifts(world: World) -> None:
    """The vendor's new format: no value parses, so no statistic of the known values exists;
    the missing share says it."""
    world.write_window(0)
    for hour in (1, 2):
        world.write_window(hour, shift=spend_as_text)
    report = run_monitor(world.inputs())
    spend = next(f for f in report.features if f.name == "spend")
    assert spend.status == "drift"
    assert spend.missing_share == 1.0
    assert spend.value is None  # nothing known to compare
    assert [h.over for h in spend.history] == [False, True, True]
    assert "missing 100.0%" in spend.why
    [alert] = [a for a in report.alerts if a.kind == "drift" and "spend" in a.key]
    assert alert.where == "view orders, source shop"


def test_a_fixed_threshold_from_the_spec_replaces_the_calibrated_one(world: World) -> None:
    for hour in range(2):
        world.write_window(hour)
    report = run_monitor(world.inputs(monitoring=Monitoring(alert_threshold=1e-9)))
    assert {f.threshold for f in report.features} == {1e-9}
    assert report.threshold_mode == "fixed at 1e-09"
    assert set(statuses(report).values()) == {"drift"}


def test_a_rerun_reads_only_new_records_and_equals_a_fresh_run(
    world: World, tmp_path: Path
) -> None:
    world.write_window(0)
    first = run_monitor(world.inputs())
    world.write_window(1, shift=shift_spend)
    world.write_window(2, shift=shift_spend)
    again = run_monitor(world.inputs())
    fresh = run_monitor(world.inputs(state_folder=tmp_path / "fresh"))
    assert first.period.requests == 600
    assert again.period.requests == fresh.period.requests == 1_800
    assert again.to_json()["features"] == fresh.to_json()["features"]


def test_since_keeps_the_later_windows(world: World) -> None:
    for hour in range(3):
        world.write_window(hour)
    report = run_monitor(world.inputs(since=START + timedelta(hours=1, minutes=30)))
    assert report.period.windows == 2
    assert report.period.start == START + timedelta(hours=1)


def test_latency_per_window_against_the_budget_and_its_slo_burn(world: World) -> None:
    for hour in range(3):
        world.write_window(hour, latency_ms=2.0)
    world.write_window(3, latency_ms=200.0)  # a regression: nearly every answer over 50 ms
    report = run_monitor(world.inputs())
    lat = report.latency
    assert lat.budget_ms == 50.0
    assert lat.p99 is not None
    assert lat.p99 > 50.0
    assert lat.previous_p99 is not None
    assert lat.previous_p99 < 20.0
    assert [w.requests for w in lat.windows] == [600] * 4
    latency = next(s for s in report.slo if s.name == "latency")
    assert latency.burn["1h"] > 14.4
    assert latency.status == "page"
    kinds = {(a.kind, a.severity) for a in report.alerts}
    assert ("slo", "page") in kinds
    assert ("latency", "ticket") in kinds


def test_a_single_slow_minute_does_not_page(world: World) -> None:
    for hour in range(2):
        world.write_window(hour, latency_ms=2.0)
    report = run_monitor(world.inputs())
    assert all(s.status == "ok" for s in report.slo)


def test_quality_estimated_without_labels_and_realised_with_them(world: World) -> None:
    for hour in range(3):
        world.write_window(hour, outcomes=True)
    report = run_monitor(world.inputs())
    q = report.quality
    assert q.metric == "roc_auc"
    assert q.estimated is not None
    assert q.estimated["rows"] == 1_800
    assert q.realised is not None
    assert q.realised["rows"] == 1_800
    # a calibrated model: the estimate and the realised AUC agree
    assert abs(q.estimated["roc_auc"] - q.realised["roc_auc"]) < 0.05
    assert q.minimum is not None
    assert q.reference is not None
    assert q.minimum == pytest.approx(q.reference - 0.05)
    assert report.healthy


def test_a_concept_change_pages_on_realised_quality(world: World) -> None:
    """Labels flip with no input drift: the estimate cannot see it, realised quality can."""
    for hour in range(3):
        world.write_window(hour, outcomes=True, flip=0.45)
    report = run_monitor(world.inputs())
    pages = [a for a in report.alerts if a.severity == "page"]
    assert [a.key for a in pages] == ["quality:churn:realised"]
    assert set(statuses(report).values()) == {"ok"}
    assert "concept change" in pages[0].detail  # no input drifted: it says so


def test_a_failed_contract_pages(world: World) -> None:
    world.write_window(0)
    contracts = {"shop": {"status": "fail", "detail": "orders: amount in cents"}}
    report = run_monitor(world.inputs(contracts=contracts))
    [alert] = [a for a in report.alerts if a.kind == "contract"]
    assert alert.severity == "page"
    assert alert.where == "source shop"


def test_other_versions_are_counted_not_profiled(world: World) -> None:
    world.write_window(0)
    world.write_window(0, rows=100, version=2, shift=shift_spend)
    report = run_monitor(world.inputs())
    assert report.versions == {"3": 600, "2": 100}
    assert statuses(report)["spend"] == "ok"


def test_no_log_says_to_serve_first(world: World) -> None:
    with pytest.raises(MonitoringError, match="nothing has been served") as caught:
        run_monitor(world.inputs())
    assert caught.value.fix is not None
    assert "taxiway serve" in caught.value.fix


def test_a_log_without_the_version_says_so(world: World) -> None:
    world.write_window(0, version=2)
    with pytest.raises(MonitoringError, match="no answers of churn v3"):
        run_monitor(world.inputs())


def test_the_json_has_the_issue_fields(world: World) -> None:
    world.write_window(0)
    document = run_monitor(world.inputs()).to_json()
    assert {"features", "output", "latency", "slo", "quality", "alerts", "healthy"} <= set(document)
    feature = document["features"][0]
    assert {"name", "statistic", "value", "threshold", "status"} <= set(feature)
    assert {"estimated", "realised"} <= set(document["quality"])
    assert feature["status"] in ("ok", "warn", "drift")
    assert np.isclose(sum(feature["current"]["shares"]), 1.0)


def test_a_torn_line_in_the_kept_predictions_is_skipped(world: World) -> None:
    world.write_window(0, outcomes=True)
    run_monitor(world.inputs())
    kept = world.root / "state" / "predictions.jsonl"
    with kept.open("ab") as out:
        out.write(b'{"request_id": "r9", "ts": "2026-')  # a crash while appending
    world.write_window(1, outcomes=True)
    report = run_monitor(world.inputs())
    assert report.quality.realised is not None
    assert report.quality.realised["rows"] == 1_200


def test_a_feature_never_known_in_training_is_judged_on_its_missing_share(
    world: World, stored: dict[str, Any]
) -> None:
    empty = build_reference({"coupon": [None] * 500}, {"coupon": "numeric"}, np.zeros(500))
    with_empty = {
        **stored,
        "features": {**stored["features"], "coupon": empty["features"]["coupon"]},
        "thresholds": {**stored["thresholds"], "coupon": empty["thresholds"]["coupon"]},
    }
    world.write_window(0)
    report = run_monitor(world.inputs(reference=with_empty))
    coupon = next(f for f in report.features if f.name == "coupon")
    assert coupon.status == "ok"
    assert coupon.value is None
    assert coupon.missing_share == 1.0
    assert coupon.reference.labels == []
    render_html(report)  # draws without a distribution to draw
