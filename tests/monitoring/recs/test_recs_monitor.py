"""`taxiway monitor` on a recommender: the figures match brute force over the log the real
RecommendService wrote, a broken model raises the fallback alert with hysteresis, realised
recall matches a hand computation, and a second run reads only the new records."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pytest
from tests.serving.recommend_world import NOW, copy_world

from taxiway.cli.monitor import recs_inputs
from taxiway.monitoring.recs import CatalogFacts, RecsInputs, run_recs_monitor
from taxiway.monitoring.recs.measures import coverage, gini
from taxiway.monitoring.recs.windows import RecsStore
from taxiway.recommend.pipeline import Recommendation, Recommender
from taxiway.serving.monitored import resolve_version
from taxiway.serving.recommend_service import RecommendAnswer, RecommendService
from taxiway.spec.project import Project

HOUR = timedelta(hours=1)
KNOWN = [str(u) for u in range(0, 150, 3)]  # 50 users the world knows


class BrokenModel(Recommender):
    """The full pipeline fails; the fallbacks (stages given) still answer."""

    def recommend(
        self,
        users: Sequence[str],
        at: datetime,
        k: int | None = None,
        *,
        recent: Sequence[Sequence[str]] | None = None,
        stages: Sequence[str] | None = None,
    ) -> list[list[Recommendation]]:
        if stages is None:
            raise RuntimeError("the model's index is gone")
        return super().recommend(users, at, k, recent=recent, stages=stages)


class World:
    """A served world with a clock the test moves."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.now = NOW
        self.service = RecommendService(project, clock=lambda: self.now, reload_interval_s=0)

    def ask(self, user: str, recent: Sequence[str] = ()) -> dict[str, Any]:
        context = {"recent_items": list(recent)} if recent else None
        answer: dict[str, Any] = asyncio.run(self.service.recommend(user, 5, context))
        return answer

    def click(self, request_id: str, item: str, value: object = True) -> None:
        payload = {"request_id": request_id, "item": item, "name": "click", "value": value}
        asyncio.run(self.service.outcome(payload))

    def serve_hour(self, start: datetime, n: int = 60) -> list[dict[str, Any]]:
        """``n`` answers in the hour from ``start``: known users, a few strangers, some with
        recent items (one the catalog does not know); clicks on positions 1 and 3."""
        answers = []
        for i in range(n):
            self.now = start + timedelta(seconds=30 * i + 1)
            user = KNOWN[i % len(KNOWN)] if i % 10 else f"stranger-{i}"
            recent = ["i3", "not-an-item"] if i % 7 == 0 else []
            answer = self.ask(user, recent)
            answers.append(answer)
            items = [s["item"] for s in answer["items"]]
            if i % 4 == 0:
                self.click(answer["request_id"], items[0])
                self.click(answer["request_id"], items[0])  # twice: one impression
            if i % 5 == 0 and len(items) >= 3:
                self.click(answer["request_id"], items[2])
            if i % 6 == 0 and len(items) >= 2:
                self.click(answer["request_id"], items[1], False)  # not a click
        return answers

    def inputs(self) -> RecsInputs:
        version = resolve_version(self.project)
        return recs_inputs(self.project, version, window=HOUR)

    def close(self) -> None:
        self.service.close()


@pytest.fixture
def world(trained_world: Path, tmp_path: Path) -> Any:
    w = World(copy_world(trained_world, tmp_path))
    yield w
    w.close()


def _log(folder: Path) -> list[dict[str, Any]]:
    return [
        orjson.loads(line)
        for path in sorted(folder.glob("predictions-*.jsonl"))
        for line in path.read_bytes().splitlines()
        if line.strip()
    ]


def _values(table: pa.Table, name: str) -> list[Any]:
    """Column ``name`` of ``table`` as Python values, none of them null."""
    values = [v for v in table[name].to_pylist() if v is not None]
    assert len(values) == table.num_rows, f"column {name} holds nulls"
    return values


def test_the_figures_match_brute_force_over_the_log(world: World) -> None:
    start = NOW.replace(minute=0, second=0, microsecond=0) + HOUR
    for hour in range(3):
        world.serve_hour(start + hour * HOUR)
    inputs = world.inputs()
    report = run_recs_monitor(inputs)
    records = _log(inputs.log_folder)
    outcomes = _log(inputs.outcomes_folder or Path())
    n = len(records)
    assert report.answers == n == 180
    assert report.windows == 3
    f = report.fallback
    assert f.fallback_share == pytest.approx(sum(r["path"] != "model" for r in records) / n)
    assert f.degraded_share == pytest.approx(sum(r["degraded"] for r in records) / n)
    assert f.unknown_user_share == pytest.approx(sum(r["unknown_user"] for r in records) / n)
    recent = [i for r in records for i in r["recent_items"]]
    known = set(inputs.catalog.items)
    assert f.unknown_recent_share == pytest.approx(
        sum(i not in known for i in recent) / len(recent)
    )
    # coverage and Gini over the items on offer (and anything else shown)
    shown = Counter(s["item"] for r in records for s in r["items"])
    available = sorted(inputs.catalog.available)
    others = sorted(set(shown) - inputs.catalog.available)
    counts = np.array([shown.get(i, 0) for i in available + others])
    assert report.catalog.coverage == pytest.approx(
        coverage(np.array([shown.get(i, 0) for i in available]))
    )
    assert report.catalog.gini == pytest.approx(gini(counts))
    # click-through by position: impressions with a positive outcome / impressions shown
    position = {(r["request_id"], s["item"]): s["position"] for r in records for s in r["items"]}
    clicked = {
        (o["request_id"], o["item"])
        for o in outcomes
        if o["value"] is True and (o["request_id"], o["item"]) in position
    }
    hits = Counter(position[key] for key in clicked)
    shows = Counter(s["position"] for r in records for s in r["items"])
    rows = report.click_through.names["click"]
    assert [(r["position"], r["shows"], r["hits"]) for r in rows] == [
        (p, shows[p], hits.get(p, 0)) for p in sorted(shows)
    ]
    assert all(r["low"] <= r["rate"] <= r["high"] for r in rows)
    # realised recall@k over the answers whose user did something in the next 7 days
    table = inputs.interactions() if inputs.interactions else pa.table({})
    users, items, at = (_values(table, c) for c in ("user", "item", "at"))
    assert inputs.monitoring is not None
    assert inputs.horizon is None  # the spec's: 7 days by default
    horizon = int(inputs.monitoring.recommend.horizon / timedelta(microseconds=1))
    recalls = []
    for r in records:
        ts = int((datetime.fromisoformat(r["ts"]) - datetime(1970, 1, 1, tzinfo=NOW.tzinfo))
                 / timedelta(microseconds=1))  # fmt: skip
        later = {i for u, i, t in zip(users, items, at, strict=True)
                 if u == r["unit"] and ts < t <= ts + horizon}  # fmt: skip
        if later:
            served = {s["item"] for s in r["items"][: inputs.k]}
            recalls.append(len(served & later) / len(later))
    assert report.quality.relevant == len(recalls) > 0
    assert report.quality.realised == pytest.approx(float(np.mean(recalls)))
    assert report.quality.reference == inputs.metrics["model"][f"recall@{inputs.k}"]
    assert report.to_json()["healthy"] == report.healthy


def test_a_second_run_reads_only_the_new_records(world: World) -> None:
    start = NOW.replace(minute=0, second=0, microsecond=0) + HOUR
    world.serve_hour(start, n=20)
    first = run_recs_monitor(world.inputs())
    assert first.answers == 20
    again = run_recs_monitor(world.inputs())
    assert again.answers == 20  # nothing new: nothing counted twice
    world.serve_hour(start + HOUR / 2, n=10)
    third = run_recs_monitor(world.inputs())
    assert third.answers == 30
    assert third.click_through.names["click"][0]["shows"] == 30  # position 1 of each answer


def test_taxiway_monitor_on_a_recommend_spec(world: World, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from taxiway.cli.app import app

    start = NOW.replace(minute=0, second=0, microsecond=0) + HOUR
    world.serve_hour(start)
    spec, state = world.project.spec_path, world.project.state_dir
    args = ["monitor", "-f", str(spec), "--state-dir", str(state), "--window", "1h"]
    result = CliRunner().invoke(app, [*args, "--json", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    document = orjson.loads(result.output)
    assert document["kind"] == "recommend"
    assert document["period"]["answers"] == 60
    assert (tmp_path / "out" / "monitor.md").read_text().startswith("# Monitor: ")
    summary = CliRunner().invoke(app, args)
    assert summary.exit_code == 0
    assert "coverage" in summary.output


def test_a_broken_model_raises_the_fallback_alert_with_hysteresis(world: World) -> None:
    start = NOW.replace(minute=0, second=0, microsecond=0) + HOUR
    world.serve_hour(start)
    healthy = run_recs_monitor(world.inputs())
    assert healthy.fallback.status == "ok"
    assert not [a for a in healthy.alerts if a.key.startswith("fallback:")]
    world.service.recommender = BrokenModel.load(Path(world.service.version.artifact_dir))
    world.serve_hour(start + HOUR)
    one = run_recs_monitor(world.inputs())
    assert one.fallback.history[-1].over
    assert one.fallback.status == "warn"
    assert not [a for a in one.alerts if a.key.startswith("fallback:")]  # one window: no alert
    world.serve_hour(start + 2 * HOUR)
    two = run_recs_monitor(world.inputs())
    [alert] = [a for a in two.alerts if a.key.startswith("fallback:")]
    assert two.fallback.status == "drift"
    assert (alert.kind, alert.severity) == ("fallback", "page")
    assert "model failed" in alert.detail
    assert not two.healthy


def _record(ts: datetime, rid: str, user: str, items: list[str], **kw: Any) -> bytes:
    answer = RecommendAnswer(
        request_id=rid,
        user=user,
        items=[Recommendation(i, 1.0, "ease") for i in items],
        model_version=1,
        degraded=False,
        path="model",
        latency_ms=1.0,
        **kw,
    )
    return orjson.dumps(answer.record(ts.isoformat(), "shop")) + b"\n"


def test_realised_recall_matches_a_hand_computation(tmp_path: Path) -> None:
    t0 = NOW
    logs = tmp_path / "predictions"
    logs.mkdir()
    lines = [
        _record(t0, "r1", "u1", ["a", "b", "c"]),
        _record(t0, "r2", "u2", ["x", "y"]),
        _record(t0 + timedelta(days=5), "r3", "u1", ["d"]),  # its horizon is not over yet
    ]
    (logs / "predictions-1-a-20250101T000000-0000.jsonl").write_bytes(b"".join(lines))

    def micros(t: datetime) -> int:
        return int(t.timestamp() * 1_000_000)

    interactions = pa.table(
        {
            "user": ["u1", "u1", "u1", "u1", "u3"],
            "item": ["c", "b", "d", "a", "z"],
            "at": [micros(t0 - HOUR), micros(t0 + HOUR), micros(t0 + 2 * HOUR),
                   micros(t0 + timedelta(days=8)), micros(t0 + timedelta(days=10))],
        }
    )  # fmt: skip
    # u1's next 7 days: b and d; shown a, b first (k = 2): recall 1/2. u2 did nothing.
    catalog = CatalogFacts(tuple("abcdxyz"), frozenset("abcdxyz"), np.ones(7))
    store = RecsStore(tmp_path / "recs")
    [window, later] = store.update(
        logs, None, window=HOUR, version=1, catalog=catalog, k=2,
        horizon=timedelta(days=7), interactions=lambda: interactions,
    )  # fmt: skip
    assert (window.judged, window.relevant, window.recall_sum, window.hits) == (2, 1, 0.5, 1)
    assert later.judged == 0
    assert store.progress.pending == 1


def test_the_served_mix_is_judged_against_the_first_window_without_a_stored_one(
    world: World,
) -> None:
    start = NOW.replace(minute=0, second=0, microsecond=0) + HOUR
    for hour in range(3):
        world.serve_hour(start + hour * HOUR)
    inputs = world.inputs()
    stored = ("stage_share", "popularity_deciles")
    metrics = {k: v for k, v in inputs.metrics.items() if k not in stored}
    report = run_recs_monitor(replace(inputs, metrics=metrics))
    stages, deciles = report.mixes
    assert stages.reference_source.startswith("the first window")
    assert deciles.reference_source.startswith("the first window")
    assert [h.judged for h in stages.history] == [True, True]
    assert stages.status == "ok"
    assert stages.statistic == "chi2"
    assert set(itertools.chain(deciles.current)) <= {str(d) for d in range(1, 11)}


def test_the_served_mix_is_judged_against_the_evaluation_stored_at_training(
    world: World,
) -> None:
    start = NOW.replace(minute=0, second=0, microsecond=0) + HOUR
    for hour in range(3):
        world.serve_hour(start + hour * HOUR)
    inputs = world.inputs()
    stored = inputs.metrics["popularity_deciles"]
    assert stored["items"] == len(inputs.catalog.items)
    assert sum(stored["served"].values()) == pytest.approx(1.0)
    assert sum(stored["interactions"].values()) == pytest.approx(1.0)
    # the training's labels are the monitor's: every catalog item's decile within its edges
    for item, count in zip(inputs.catalog.items, inputs.catalog.popularity, strict=True):
        low, high = stored["edges"][str(inputs.catalog.decile_of(item))]
        assert low <= count <= high
    report = run_recs_monitor(inputs)
    stages, deciles = report.mixes
    for mix in (stages, deciles):
        assert mix.reference_source == "the evaluation at training"
        assert [h.judged for h in mix.history] == [True, True, True]  # no window spent
    assert deciles.reference == pytest.approx(stored["served"])
    # a catalog of another size is labelled differently: the stored shares are not used
    other = replace(inputs.catalog, items=(*inputs.catalog.items, "new"),
                    popularity=np.append(inputs.catalog.popularity, 0.0))  # fmt: skip
    moved = run_recs_monitor(replace(inputs, catalog=other, state_folder=inputs.state_folder / "b"))
    assert moved.mixes[1].reference_source.startswith("the first window")
