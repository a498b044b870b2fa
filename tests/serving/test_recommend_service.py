"""The recommendation service: the served list is the offline one, filters hold on every path,
no history means popularity marked degraded, an overrunning model hands over within the budget,
and every list shown is in the log."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.recommend.test_training import make_project
from tests.serving.recommend_world import NOW, copy_world, filtered

from taxiway.errors import RequestError, ServingError
from taxiway.recommend.pipeline import Recommendation, Recommender
from taxiway.recommend.training import train_recommender
from taxiway.serving.log import log_files
from taxiway.serving.recommend_service import RecommendService
from taxiway.serving.step_pace import STREAK
from taxiway.spec.project import Project

USERS = [str(u) for u in range(0, 150, 11)]


def _service(project: Project, **kwargs: Any) -> RecommendService:
    return RecommendService(project, clock=lambda: NOW, reload_interval_s=0, **kwargs)


def _ask(service: RecommendService, user: str, k: int = 5, recent: Sequence[str] = ()) -> Any:
    context = {"recent_items": list(recent)} if recent else None
    return asyncio.run(service.recommend(user, k, context))


def _offline(
    recommender: Recommender, user: str, k: int, recent: Sequence[str] = (), **kw: Any
) -> list[dict[str, Any]]:
    got = recommender.recommend([user], NOW, k, recent=[list(recent)], **kw)[0]
    return [
        {"item": r.item, "position": n, "score": r.score, "stage": r.stage}
        for n, r in enumerate(got, start=1)
    ]


class SlowModel(Recommender):
    """A Recommender whose full pipeline (and each fallback step led by a stage in ``slow``:
    ``itemknn``, ``segment_popularity``) sleeps past any budget: the fault the budget guards
    against."""

    delay_s = 0.5
    slow: frozenset[str] = frozenset()

    def recommend(
        self,
        users: Sequence[str],
        at: datetime,
        k: int | None = None,
        *,
        recent: Sequence[Sequence[str]] | None = None,
        stages: Sequence[str] | None = None,
    ) -> list[list[Recommendation]]:
        if stages is None or stages[0] in self.slow:
            time.sleep(self.delay_s)
        return super().recommend(users, at, k, recent=recent, stages=stages)


@pytest.fixture
def project(trained_world: Path, tmp_path: Path) -> Project:
    return copy_world(trained_world, tmp_path)


def test_the_served_list_is_the_offline_list_for_the_same_user_and_time(project: Project) -> None:
    service = _service(project)
    try:
        recommender = Recommender.load(Path(service.version.artifact_dir))
        for user in USERS:
            for recent in ((), ("i7", "i30")):
                answer = _ask(service, user, 5, recent)
                assert answer["path"] == "model"
                assert not answer["degraded"]
                assert answer["items"] == _offline(recommender, user, 5, recent)
                assert answer["model_version"] == 1
                assert answer["arm"] == "control"
        assert {i["stage"] for i in _ask(service, "0", 5)["items"]} <= {"ease", "itemknn"}
    finally:
        service.close()


def test_a_user_with_no_history_gets_popularity_marked_degraded(project: Project) -> None:
    service = _service(project)
    try:
        answer = _ask(service, "someone-new", 5)
        assert answer["degraded"]
        assert answer["path"] == "fallback:popularity"
        assert "no history" in answer["reason"]
        assert answer["items"] == _offline(
            service.recommender, "someone-new", 5, stages=["popularity"]
        )
        assert {i["stage"] for i in answer["items"]} == {"popularity"}
        # recent items are history enough: the model answers a new user from them
        answer = _ask(service, "someone-new", 5, ["i3", "i4"])
        assert answer["path"] == "model"
        assert answer["items"] == _offline(service.recommender, "someone-new", 5, ["i3", "i4"])
    finally:
        service.close()


def test_an_overrunning_model_hands_over_to_itemknn_within_the_budget(
    trained_world: Path, tmp_path: Path
) -> None:
    project = copy_world(
        trained_world,
        tmp_path,
        serving="serving:\n  latency_budget_ms: 150\n  breaker: {failures: 2}\n",
    )
    service = _service(project)
    try:
        service.recommender = SlowModel.load(Path(service.version.artifact_dir))
        began = time.perf_counter()
        answer = _ask(service, "3", 5)
        waited = time.perf_counter() - began
        assert answer["path"] == "fallback:itemknn"
        assert answer["degraded"]
        assert "overran its share of the 150 ms budget" in answer["reason"]
        assert waited < SlowModel.delay_s  # the model was not waited for
        assert answer["items"] == _offline(
            service.recommender, "3", 5, stages=["itemknn", "segment_popularity", "popularity"]
        )
        # a second overrun opens the breaker: the model is not even asked
        _ask(service, "3", 5)
        answer = _ask(service, "3", 5)
        assert answer["path"] == "fallback:itemknn"
        assert answer["reason"] == "model circuit breaker open"
        assert service.model_breaker.state == "open"
    finally:
        service.close()


def test_the_chain_comes_from_the_recommender_segment_popularity_before_popularity(
    project: Project,
) -> None:
    """The world's catalog has categories, so training added a segment_popularity stage: the
    served chain is the Recommender's own ``fallback_stages``, each step filled by the later."""
    service = _service(project)
    try:
        assert list(service.served.fallbacks) == service.recommender.fallback_stages
        assert service.served.fallbacks == (
            ("fallback:itemknn", ("itemknn", "segment_popularity", "popularity")),
            ("fallback:segment_popularity", ("segment_popularity", "popularity")),
            ("fallback:popularity", ("popularity",)),
        )
    finally:
        service.close()


@pytest.mark.parametrize(
    ("slow", "path", "stages"),
    [
        ({"itemknn"}, "fallback:segment_popularity", ["segment_popularity", "popularity"]),
        ({"itemknn", "segment_popularity"}, "fallback:popularity", ["popularity"]),
    ],
)
def test_when_the_model_and_itemknn_overrun_the_segment_then_popularity_answers(
    trained_world: Path, tmp_path: Path, slow: set[str], path: str, stages: list[str]
) -> None:
    project = copy_world(trained_world, tmp_path, serving="serving:\n  latency_budget_ms: 150\n")
    service = _service(project)
    try:
        model = SlowModel.load(Path(service.version.artifact_dir))
        assert isinstance(model, SlowModel)
        model.slow = frozenset(slow)
        service.recommender = model
        began = time.perf_counter()
        answer = _ask(service, "3", 5)
        assert time.perf_counter() - began < SlowModel.delay_s  # no slow step was waited for
        assert answer["path"] == path
        assert answer["degraded"]
        assert answer["items"] == _offline(model, "3", 5, stages=stages)
        assert {i["stage"] for i in answer["items"]} <= set(stages)
        assert answer["reason"].startswith("model overran its share of the 150 ms budget")
        assert "fallback:itemknn overran" in answer["reason"]
        assert not {i["item"] for i in answer["items"]} & filtered(project, "3", NOW)
    finally:
        service.close()


@pytest.mark.parametrize("fault", ["none", "breaker", "slow"])
def test_no_filtered_item_is_ever_served_on_any_path(
    trained_world: Path, tmp_path: Path, fault: str
) -> None:
    project = copy_world(trained_world, tmp_path, serving="serving:\n  latency_budget_ms: 100\n")
    service = _service(project)
    if fault == "breaker":
        for _ in range(10):
            service.model_breaker.failure()
    if fault == "slow":
        slow = SlowModel.load(Path(service.version.artifact_dir))
        assert isinstance(slow, SlowModel)
        slow.delay_s, slow.slow = 0.2, frozenset({"itemknn"})
        service.recommender = slow
    items = [str(i) for i in service.recommender.items]
    paths: set[str] = set()

    @settings(
        max_examples=15 if fault == "slow" else 40,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(
        user=st.one_of(st.integers(0, 160).map(str), st.just("stranger")),
        recent=st.lists(st.sampled_from([*items, "not-an-item"]), max_size=4),
        k=st.integers(1, 50),
    )
    def check(user: str, recent: list[str], k: int) -> None:
        answer = _ask(service, user, k, recent)
        paths.add(answer["path"])
        shown = [i["item"] for i in answer["items"]]
        assert len(shown) == len(set(shown))
        assert not set(shown) & filtered(project, user, NOW)
        assert [i["position"] for i in answer["items"]] == list(range(1, len(shown) + 1))

    try:
        check()
    finally:
        service.close()
    expected = {
        "none": "model",
        "breaker": "fallback:itemknn",
        "slow": "fallback:segment_popularity",
    }
    assert expected[fault] in paths


def test_every_list_shown_is_in_the_log_with_its_positions(project: Project) -> None:
    service = _service(project)
    answers = [_ask(service, user, 4) for user in [*USERS, "stranger"]]
    service.close()
    files = log_files(project.state_dir / "predictions")
    records = [orjson.loads(line) for f in files for line in f.read_bytes().splitlines()]
    by_id = {r["request_id"]: r for r in records}
    assert len(by_id) == len(answers)
    for answer in answers:
        record = by_id[answer["request_id"]]
        assert record["items"] == answer["items"]
        assert record["unit"] in {*USERS, "stranger"}
        assert (record["path"], record["degraded"], record["model_version"]) == (
            answer["path"],
            answer["degraded"],
            1,
        )
        assert record["arm"] == "control"
        assert record["ts"] == NOW.isoformat()
    assert by_id[answers[-1]["request_id"]]["unknown_user"] is True


def test_bad_requests_name_the_field(project: Project) -> None:
    service = _service(project)
    try:
        with pytest.raises(RequestError, match="k: 0 is out of range"):
            _ask(service, "1", 0)
        # 200: the stages training added (popularity in the segment) take max(k, 200)
        with pytest.raises(RequestError, match="k: 201 is out of range"):
            _ask(service, "1", 201)
        with pytest.raises(RequestError, match=r"context\.recent_items\.1"):
            _ask(service, "1", 5, ["i1", None])  # type: ignore[list-item]
    finally:
        service.close()


def test_readiness_says_which_version_and_why(project: Project) -> None:
    service = _service(project)
    try:
        ready = service.readiness()
        assert ready["model_version"] == 1
        assert "newest registered (none promoted)" in ready["detail"]
        assert (
            "fallbacks fallback:itemknn → fallback:segment_popularity → fallback:popularity"
            in ready["detail"]
        )
    finally:
        service.close()


def test_a_spec_without_recommend_or_without_a_version_says_the_fix(tmp_path: Path) -> None:
    (tmp_path / "taxiway.yaml").write_text("name: demo\n")
    with pytest.raises(ServingError, match="no `recommend:` section"):
        RecommendService(Project.load(tmp_path / "taxiway.yaml", tmp_path / "state"))
    project = make_project(tmp_path / "untrained")
    with pytest.raises(ServingError, match="taxiway train"):
        RecommendService(project)


def test_a_new_version_is_loaded_and_swapped_in(project: Project) -> None:
    service = RecommendService(project, clock=lambda: NOW, reload_interval_s=0.05)

    async def run() -> int:
        await service.start()
        try:
            train_recommender(project)  # version 2: the newest, none promoted
            for _ in range(200):
                await asyncio.sleep(0.05)
                if service.version.version == 2:
                    break
            answer = await service.recommend("4", 3)
            return int(answer["model_version"])
        finally:
            await service.stop()

    assert asyncio.run(run()) == 2
    assert "v2 (newest registered (none promoted))" in service.readiness()["detail"]


@pytest.mark.parametrize("mode", ["down", "slow"])
def test_a_recommend_model_fault_is_answered_by_the_fallbacks_with_the_filters(
    trained_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """TAXIWAY_FAULTS=recommend_model=down|slow breaks the real model step of the real service
    (the Recommender itself is untouched): the chain answers, filtered, and says why."""
    monkeypatch.setenv("TAXIWAY_FAULTS", f"recommend_model={mode}")
    project = copy_world(
        trained_world,
        tmp_path,
        serving="serving:\n  latency_budget_ms: 150\n  breaker: {failures: 2}\n",
    )
    service = _service(project)
    try:
        assert type(service.recommender) is Recommender
        injected = f'taxiway_fault_injected{{mode="{mode}",target="recommend_model"}} 1.0'
        assert injected in service.metrics.render().decode()
        answers = [_ask(service, user, 5) for user in USERS[:4]]
        why = "failed (ServingError)" if mode == "down" else "overran its share of the 150 ms"
        assert why in answers[0]["reason"]
        assert answers[-1]["reason"] == "model circuit breaker open"
        for user, answer in zip(USERS[:4], answers, strict=True):
            assert answer["path"] == "fallback:itemknn"
            assert answer["degraded"]
            assert answer["items"] == _offline(
                service.recommender, user, 5, stages=["itemknn", "segment_popularity", "popularity"]
            )
            assert not {i["item"] for i in answer["items"]} & filtered(project, user, NOW)
    finally:
        service.close()


def test_a_recommender_refuses_an_online_store_fault(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAXIWAY_FAULTS", "online_store=down")
    with pytest.raises(ServingError, match="reads no online store") as raised:
        _service(project)
    assert "recommend_model=down" in (raised.value.fix or "")


def test_a_recommender_started_over_an_old_log_compacts_its_closed_files(
    project: Project,
) -> None:
    """The recommendation service, like the prediction service, writes the columnar sidecars
    of closed log files no rotation covered, in the background, once it starts."""
    from taxiway.monitoring.columnar import sidecar_path

    service = _service(project, rollout_poll_s=0)
    folder = service.log.folder
    old = time.time() - 3600
    closed = folder / "predictions-gone-20260101T000000-0000.jsonl"
    closed.write_text(
        "".join(
            orjson.dumps({"request_id": f"r{i}", "ts": "2026-01-01T00:00:00", "unit": "u"}).decode()
            + "\n"
            for i in range(5)
        )
    )
    os.utime(closed, (old, old))

    async def start_and_stop() -> None:
        await service.start()
        assert service.compaction is not None
        service.compaction.join(timeout=60)
        await service.stop()

    asyncio.run(start_and_stop())
    assert sidecar_path(closed).exists()


class ThreadNoting(Recommender):
    """A Recommender that notes the thread each call of a fallback step (``stages`` given) ran
    in: whether the service ran it on the event loop or in its fallback threads."""

    threads: list[str]

    def recommend(
        self,
        users: Sequence[str],
        at: datetime,
        k: int | None = None,
        *,
        recent: Sequence[Sequence[str]] | None = None,
        stages: Sequence[str] | None = None,
    ) -> list[list[Recommendation]]:
        if stages is not None and stages[0] == "itemknn":
            self.threads.append(threading.current_thread().name)
        return super().recommend(users, at, k, recent=recent, stages=stages)


def test_the_fallbacks_answering_a_broken_model_move_onto_the_event_loop_once_fast(
    trained_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the model down, every request is the fallbacks': a version loaded anew runs them in
    threads, and after STREAK fast ones on the loop (no thread hop, no GIL convoy), as the model
    step does; the drilled model step itself stays in threads."""
    monkeypatch.setenv("TAXIWAY_FAULTS", "recommend_model=down")
    project = copy_world(trained_world, tmp_path)
    service = _service(project)
    try:
        noting = ThreadNoting.load(Path(service.version.artifact_dir))
        assert isinstance(noting, ThreadNoting)
        noting.threads = []
        service.recommender = noting  # loaded anew: no pace yet
        for user in USERS[:4] * 3:
            assert _ask(service, user, 5)["path"] == "fallback:itemknn"
        loop = threading.current_thread().name  # asyncio.run's loop runs in this thread
        assert all(name.startswith("taxiway-fallback") for name in noting.threads[:STREAK])
        assert noting.threads[STREAK:] == [loop] * (12 - STREAK)
    finally:
        service.close()


def test_a_started_service_keeps_the_collector_off_what_it_loaded(project: Project) -> None:
    """Everything loaded at the start is frozen out of the collector: a full collection mid-request
    (77 ms of the first requests' time in the sprint's drill before) walks only new objects."""
    gc.unfreeze()
    service = _service(project)
    try:
        assert gc.get_freeze_count() > 10_000
    finally:
        service.close()
