"""The model step's pace: threads until a streak of fast steps, then the event loop, back to
threads on any slow, late or failing step; answers identical either way."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from tests.recommend.test_ranking_online import SERVE, USERS, redis_url, trained
from tests.serving.recommend_world import NOW, copy_world

from taxiway.recommend.pipeline import Recommendation, Recommender
from taxiway.serving.recommend_service import RecommendService
from taxiway.serving.step_pace import STREAK, StepPace
from taxiway.spec.project import Project

__all__ = ["redis_url", "trained"]  # fixtures, used by name


class Watched(Recommender):
    """A Recommender that notes the thread of each full-pipeline call, and sleeps
    ``delay_s`` in it when asked to (a version that turns slow)."""

    delay_s = 0.0

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
            self.threads.append(threading.current_thread().name)
            if self.delay_s:
                time.sleep(self.delay_s)
        return super().recommend(users, at, k, recent=recent, stages=stages)

    threads: list[str]


def _watched(service: RecommendService) -> Watched:
    model = Watched.load(Path(service.version.artifact_dir))
    assert isinstance(model, Watched)
    model.threads = []
    service.recommender = model
    return model


def _offline(recommender: Recommender, user: str, k: int) -> list[dict[str, Any]]:
    got = Recommender.recommend(recommender, [user], NOW, k)[0]
    return [
        {"item": r.item, "position": n, "score": r.score, "stage": r.stage}
        for n, r in enumerate(got, start=1)
    ]


def test_a_pace_goes_inline_after_a_streak_and_back_on_any_slow_step() -> None:
    pace = StepPace(bound_s=0.01, streak=3)
    for _ in range(2):
        pace.observe(0.001)
    assert not pace.inline
    pace.observe(0.01)  # at the bound counts as fast
    assert pace.inline
    pace.observe(0.001)
    assert pace.inline  # the streak is capped: one slow step is enough to leave
    pace.failed()
    assert not pace.inline
    for _ in range(3):
        pace.observe(0.001)
    pace.observe(0.0101)
    assert not pace.inline
    for _ in range(3):
        pace.observe(0.001)
    pace.late()
    pace.observe(0.001)  # an on-time step between two late ones: a delay, not a hang
    pace.late()
    assert pace.inline
    pace.late()
    assert not pace.inline


def test_the_model_step_moves_onto_the_event_loop_with_the_same_answers(
    trained_world: Path, tmp_path: Path
) -> None:
    service = RecommendService(
        copy_world(trained_world, tmp_path), clock=lambda: NOW, reload_interval_s=0
    )
    try:
        model = _watched(service)
        users = [str(u) for u in range(0, 150, 7)][: STREAK + 4]

        async def ask_all() -> list[dict[str, Any]]:
            return [await service.recommend(user, 5) for user in users]

        answers = asyncio.run(ask_all())
        loop_thread = threading.main_thread().name
        assert all(t != loop_thread for t in model.threads[:STREAK])  # a new version: threads
        assert model.threads[STREAK:] == [loop_thread] * (len(users) - STREAK)
        for user, answer in zip(users, answers, strict=True):
            assert answer["path"] == "model"
            assert answer["items"] == _offline(model, user, 5)
    finally:
        service.close()


def test_a_version_turning_slow_on_the_loop_is_waited_for_twice_then_abandoned(
    trained_world: Path, tmp_path: Path
) -> None:
    project = copy_world(trained_world, tmp_path, serving="serving:\n  latency_budget_ms: 150\n")
    service = RecommendService(project, clock=lambda: NOW, reload_interval_s=0)
    try:
        model = _watched(service)

        async def ask(count: int) -> list[dict[str, Any]]:
            return [await service.recommend("3", 5) for _ in range(count)]

        asyncio.run(ask(STREAK))
        model.delay_s = 0.3  # past the model's 90 ms share
        began = time.perf_counter()
        *late, handed = asyncio.run(ask(3))
        waited = time.perf_counter() - began
        for answer in late:  # on the loop: waited for, the answers used
            assert answer["path"] == "model"
            assert answer["items"] == _offline(model, "3", 5)
        assert handed["path"] == "fallback:itemknn"  # back in a thread: abandoned
        assert "overran its share of the 150 ms budget" in handed["reason"]
        assert waited < 3 * model.delay_s
        loop_thread = threading.main_thread().name
        assert model.threads[-3:-1] == [loop_thread, loop_thread]
        assert model.threads[-1] != loop_thread
    finally:
        service.close()


@pytest.mark.redis
def test_a_ranking_that_reads_redis_keeps_the_model_step_in_threads(
    trained: tuple[Path, Any], redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A network read can hang without spending CPU, which the pace would not see: with the
    ranking's feature views in Redis, the model step never runs on the event loop."""
    target = tmp_path / "world"
    shutil.copytree(trained[0], target)
    spec = target / "taxiway.yaml"
    prefix = f"tw-test-pace:{uuid4().hex}"
    spec.write_text(
        spec.read_text()
        + f"online_store: {{kind: redis, url: '{redis_url}', prefix: '{prefix}'}}\n"
    )
    threads: list[str] = []
    plain = Recommender.recommend

    def noted(self: Recommender, *args: Any, **kwargs: Any) -> list[list[Recommendation]]:
        if kwargs.get("stages") is None:
            threads.append(threading.current_thread().name)
        return plain(self, *args, **kwargs)

    service = RecommendService(
        Project.load(spec, target / "state"), clock=lambda: SERVE, reload_interval_s=0
    )
    try:
        monkeypatch.setattr(Recommender, "recommend", noted)

        async def ask_all() -> list[dict[str, Any]]:
            return [await service.recommend(user, 10) for user in USERS * 2]

        answers = asyncio.run(ask_all())
        assert {a["path"] for a in answers} == {"model"}
        assert len(threads) == len(answers) > STREAK
        assert threading.main_thread().name not in threads
    finally:
        service.close()
        if service.feature_store is not None:
            service.feature_store.clear()
