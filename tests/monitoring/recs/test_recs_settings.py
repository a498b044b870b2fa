"""`monitoring.recommend` (horizon, max_fallback_share, min_answers) is what the
recommendation monitor judges by: each key changes the verdict it governs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pytest

from taxiway.monitoring.alerts import Alert
from taxiway.monitoring.recs import CatalogFacts, RecsInputs, run_recs_monitor
from taxiway.monitoring.recs.findings import (
    FallbackFinding,
    QualityFinding,
    alerts_of,
    fallback_finding,
    mix_finding,
)
from taxiway.monitoring.recs.windows import RecsWindow
from taxiway.monitoring.report.model import LatencyFinding
from taxiway.recommend.pipeline import Recommendation
from taxiway.serving.recommend_service import RecommendAnswer
from taxiway.spec.models import Monitoring, RecommendWatch

T0 = datetime(2026, 3, 2, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _windows(answers: int, fallbacks: int, n: int = 3) -> list[RecsWindow]:
    return [
        RecsWindow(
            T0 + i * HOUR,
            T0 + (i + 1) * HOUR,
            answers=answers,
            model_fallbacks=fallbacks,
            paths={"model": answers - fallbacks, "fallback:popularity": fallbacks},
            reasons={"model failed": fallbacks},
        )
        for i in range(n)
    ]


def test_the_defaults_are_the_documented_ones() -> None:
    watch = Monitoring().recommend
    assert (watch.horizon, watch.max_fallback_share, watch.min_answers) == (
        timedelta(days=7),
        0.05,
        50,
    )


@pytest.mark.parametrize(
    ("watch", "judged", "status"),
    [
        ({}, False, "ok"),  # 30 answers < 50: shown, not judged
        ({"min_answers": 20}, True, "drift"),  # 4/30 = 13% > 5% in every window
        ({"min_answers": 20, "max_fallback_share": 0.2}, True, "ok"),  # 13% < 20%
    ],
)
def test_min_answers_and_max_fallback_share_decide_the_fallback_verdict(
    watch: dict[str, object], judged: bool, status: str
) -> None:
    windows = _windows(answers=30, fallbacks=4)
    period = windows[0].merge(windows[1]).merge(windows[2])
    settings = RecommendWatch.model_validate(watch)
    finding = fallback_finding(windows, period, 2, 3, watch=settings)
    assert [h.judged for h in finding.history] == [judged] * 3
    assert finding.status == status
    assert finding.threshold == settings.max_fallback_share
    alerts = [a for a in _alerts(finding) if a.key.startswith("fallback:")]
    assert len(alerts) == (status == "drift")
    for alert in alerts:
        assert (alert.kind, alert.threshold) == ("fallback", settings.max_fallback_share)
        assert "over 5% of answers" in alert.title


def _alerts(finding: FallbackFinding) -> list[Alert]:
    quality = QualityFinding("recall@10", 7, 0, 0, None, None, 0, None, None, None, None,
                             None, 0, None)  # fmt: skip
    latency = LatencyFinding(None, None, None, None, [])
    return alerts_of("shop", finding, [], quality, latency, T0)


def test_min_answers_picks_the_served_mix_reference_window() -> None:
    windows = [
        RecsWindow(T0 + i * HOUR, T0 + (i + 1) * HOUR, answers=n, paths={"model": n},
                   model_stages={"ease": 8 * n, "popularity": 2 * n})
        for i, n in enumerate([10, 30, 30])
    ]  # fmt: skip
    default = mix_finding("stages", windows, lambda w: w.model_stages, None, 0, Monitoring(), 2, 3)
    assert default.reference_source == "none yet"
    assert "no window has 50 model answers yet" in default.why
    low = Monitoring(recommend=RecommendWatch(min_answers=25))
    found = mix_finding("stages", windows, lambda w: w.model_stages, None, 0, low, 2, 3)
    assert found.reference_source.startswith("the first window (2026-03-02 01:00 UTC")
    assert [h.judged for h in found.history] == [True]


def _record(ts: datetime, rid: str, user: str, items: list[str]) -> bytes:
    answer = RecommendAnswer(
        request_id=rid,
        user=user,
        items=[Recommendation(i, 1.0, "ease") for i in items],
        model_version=1,
        degraded=False,
        path="model",
        latency_ms=1.0,
    )
    return orjson.dumps(answer.record(ts.isoformat(), "shop")) + b"\n"


@pytest.mark.parametrize(("horizon", "recall"), [("7d", 0.5), ("1h", 0.0), ("90m", 0.5)])
def test_the_horizon_decides_what_the_user_did_next(
    tmp_path: Path, horizon: str, recall: float
) -> None:
    logs = tmp_path / "predictions"
    logs.mkdir()
    (logs / "predictions-1-a-20260302T000000-0000.jsonl").write_bytes(
        _record(T0, "r1", "u1", ["a", "b"])
    )

    def micros(t: datetime) -> int:
        return int(t.timestamp() * 1_000_000)

    interactions = pa.table(
        {
            "user": ["u1", "u1", "u2"],
            "item": ["c", "b", "z"],  # c after 30 minutes, b after 80
            "at": [micros(T0 + HOUR / 2), micros(T0 + HOUR + 20 * timedelta(minutes=1)),
                   micros(T0 + timedelta(days=10))],
        }
    )  # fmt: skip
    monitoring = Monitoring.model_validate({"recommend": {"horizon": horizon}})
    inputs = RecsInputs(
        model="shop",
        version=1,
        log_folder=logs,
        outcomes_folder=None,
        state_folder=tmp_path / "state",
        window=HOUR,
        since=None,
        budget_ms=None,
        monitoring=monitoring,
        catalog=CatalogFacts(tuple("abcz"), frozenset("abcz"), np.ones(4)),
        metrics={},
        k=2,
        interactions=lambda: interactions,
    )
    report = run_recs_monitor(inputs)
    assert report.quality.horizon_days == monitoring.recommend.horizon / timedelta(days=1)
    assert (report.quality.relevant, report.quality.realised) == (1, recall)
