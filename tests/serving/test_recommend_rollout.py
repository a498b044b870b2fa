"""A recommender's rollout: users (not requests) are assigned by the rollout's hash, every worker
alike; each answer names its arm and version; a baseline control is the popularity stage; a
rehearsal over the real service with outcomes posted by request id goes on to the next step
through the real controller."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from tests.serving.recommend_world import NOW, copy_world

from taxiway.errors import RolloutError
from taxiway.models.registry import NewVersion, open_registry
from taxiway.rollout.assignment import arm_for
from taxiway.rollout.controller import Controller
from taxiway.rollout.state import open_rollout_store
from taxiway.serving.log import log_files
from taxiway.serving.recommend_app import build_recommend_app, recommend_openapi
from taxiway.serving.recommend_service import RecommendService
from taxiway.serving.recommend_simulation import rehearse_recommend
from taxiway.spec.project import Project

USERS = [str(u) for u in range(150)] + [f"new-{n}" for n in range(50)]
ITEMS = [f"i{n}" for n in range(3, 60)]


def _world(trained_world: Path, tmp_path: Path, rollout: str, *, production: bool) -> Project:
    """The trained world with ``rollout`` as its spec's rollout section, version 2 a copy of
    version 1 (a candidate), and version 1 in production when ``production``."""
    project = copy_world(trained_world, tmp_path, serving=rollout)
    registry = open_registry(None, state_dir=project.state_dir)
    try:
        first = registry.get(project.spec.name, 1)
        fields = {f.name for f in dataclasses.fields(NewVersion)}
        new = NewVersion(**{k: v for k, v in first.as_dict().items() if k in fields})
        registry.register(new, Path(first.artifact_dir))
        if production:
            registry.set_stage(project.spec.name, 1, "production", by="test")
    finally:
        registry.close()
    return project


def _service(project: Project, clock: Any = None) -> RecommendService:
    return RecommendService(
        project, clock=clock or (lambda: NOW), reload_interval_s=0, rollout_poll_s=0
    )


def _ask(service: RecommendService, user: str, k: int = 5, recent: list[str] | None = None) -> Any:
    context = {"recent_items": recent} if recent else None
    return asyncio.run(service.recommend(user, k, context))


ROLLOUT = "rollout:\n  steps: [50, 100]\n  min_duration: 10m\n"


def test_two_workers_assign_every_user_alike_and_name_the_arm_and_version(
    trained_world: Path, tmp_path: Path
) -> None:
    project = _world(trained_world, tmp_path, ROLLOUT, production=True)
    with Controller(project) as controller:
        state = controller.start(now=NOW)  # the newest candidate: version 2
    assert (state.candidate, state.unit, state.share) == (2, "user", 50.0)
    assert state.control == {"kind": "version", "version": 1, "constant": None}
    first, second = _service(project), _service(project)
    try:
        arms: dict[str, str] = {}
        for user in USERS:
            one, two = _ask(first, user), _ask(second, user)
            expected = arm_for(state.salt, user, 50.0)
            assert one["arm"] == two["arm"] == expected
            assert (
                one["model_version"]
                == two["model_version"]
                == (2 if expected == "candidate" else 1)
            )
            assert one["items"] == two["items"]  # v2 is a copy of v1: the same lists
            arms[user] = expected
        assert 60 < sum(arm == "candidate" for arm in arms.values()) < 140
        # the same user asks again: the same arm (users are randomised, not requests)
        assert all(_ask(first, user)["arm"] == arms[user] for user in USERS[:20])
        assert first.readiness()["rollout"]["share"] == 50.0
    finally:
        first.close()
        second.close()
    records = [
        orjson.loads(line)
        for path in log_files(project.state_dir / "predictions")
        for line in path.read_bytes().splitlines()
    ]
    assert len(records) == 2 * len(USERS) + 20
    assert all(r["arm"] == arms[r["unit"]] for r in records)
    assert all(r["model_version"] == (2 if r["arm"] == "candidate" else 1) for r in records)


def test_share_zero_is_all_control_and_after_complete_all_candidate(
    trained_world: Path, tmp_path: Path
) -> None:
    project = _world(trained_world, tmp_path, ROLLOUT, production=True)
    controller = Controller(project)
    service = _service(project)
    try:
        assert service.arms is None  # no rollout yet: production answers
        state = controller.start(now=NOW)
        service.follow_rollout()
        assert service.arms is not None
        assert service.arms.share == 50.0
        # the share grows to 100: every user is in the candidate arm, v2 answers
        state = controller.store.update(
            state,
            by="test",
            kind="promote",
            step_index=1,
            share=100.0,
            step_started_at=NOW,
            now=NOW,
        )
        service.follow_rollout()
        answers = [_ask(service, user) for user in USERS]
        assert {(a["arm"], a["model_version"]) for a in answers} == {("candidate", 2)}
        # at 100% past min_duration the real check completes it: v2 is production
        result = controller.check(now=NOW + timedelta(minutes=11))
        assert result.transition == "complete", result.verdict.reasons
        service.follow_rollout()
        assert service.arms is None
        assert service.version.version == 2
        assert service.readiness()["detail"].startswith("serving shop-recs v2 (production)")
        answers = [_ask(service, user) for user in USERS]
        assert {(a["arm"], a["model_version"]) for a in answers} == {("control", 2)}
        # a new rollout (v3, a copy) rolled back: share 0, every user back to production
        registry = open_registry(None, state_dir=project.state_dir)
        try:
            second = registry.get(project.spec.name, 2)
            fields = {f.name for f in dataclasses.fields(NewVersion)}
            new = NewVersion(**{k: v for k, v in second.as_dict().items() if k in fields})
            registry.register(new, Path(second.artifact_dir))
        finally:
            registry.close()
        controller.start(now=NOW)
        service.follow_rollout()
        assert service.arms is not None
        assert service.arms.candidate.version.version == 3
        controller.rollback(reason="test", now=NOW)
        service.follow_rollout()
        answers = [_ask(service, user) for user in USERS]
        assert {(a["arm"], a["model_version"]) for a in answers} == {("control", 2)}
    finally:
        service.close()
        controller.close()


def test_a_serving_worker_follows_the_rollout_by_its_poll(
    trained_world: Path, tmp_path: Path
) -> None:
    """The poll of a started service (every rollout_poll_s, off the event loop) picks up a
    rollout started after it, then its end."""
    project = _world(trained_world, tmp_path, ROLLOUT, production=True)

    async def scenario(controller: Controller) -> list[tuple[str, int | None]]:
        service = RecommendService(
            project, clock=lambda: NOW, reload_interval_s=0, rollout_poll_s=0.05
        )
        seen = []
        try:
            await service.start()
            state = await asyncio.to_thread(controller.start, now=NOW)
            for _ in range(100):
                await asyncio.sleep(0.05)
                if service.arms is not None:
                    break
            user = next(u for u in USERS if arm_for(state.salt, u, 50.0) == "candidate")
            answer = await service.recommend(user, 5)
            seen.append((answer["arm"], answer["model_version"]))
            await asyncio.to_thread(controller.abort, reason="test", now=NOW)
            for _ in range(100):
                await asyncio.sleep(0.05)
                if service.arms is None:
                    break
            answer = await service.recommend(user, 5)
            seen.append((answer["arm"], answer["model_version"]))
        finally:
            await service.stop()
        return seen

    with Controller(project) as controller:
        assert asyncio.run(scenario(controller)) == [("candidate", 2), ("control", 1)]


def test_share_zero_without_production_keeps_the_control_answering(
    trained_world: Path, tmp_path: Path
) -> None:
    """Nothing in production: a rolled-back rollout's control (the baseline) goes on answering,
    not its candidate (the newest registered version)."""
    project = _world(trained_world, tmp_path, ROLLOUT, production=False)
    with Controller(project) as controller:
        state = controller.start(now=NOW)
        assert state.control == {"kind": "baseline", "version": None, "constant": None}
        controller.rollback(reason="test", now=NOW)
    service = _service(project)
    try:
        assert service.arms is not None
        assert service.arms.share == 0.0
        answers = [_ask(service, user) for user in USERS]
        assert {(a["arm"], a["model_version"]) for a in answers} == {("control", None)}
        assert {i["stage"] for a in answers for i in a["items"]} == {"popularity"}
    finally:
        service.close()


def test_a_baseline_control_answers_from_the_candidates_popularity_stage(
    trained_world: Path, tmp_path: Path
) -> None:
    project = _world(trained_world, tmp_path, ROLLOUT + "  control: baseline\n", production=True)
    with Controller(project) as controller:
        state = controller.start(now=NOW)
    assert state.control["kind"] == "baseline"
    service = _service(project)
    try:
        assert service.arms is not None
        recommender = service.arms.candidate.recommender
        seen = set()
        for user in USERS:
            answer = _ask(service, user)
            arm = arm_for(state.salt, user, 50.0)
            assert answer["arm"] == arm
            seen.add(arm)
            stages = {item["stage"] for item in answer["items"]}
            if arm == "control":
                assert answer["model_version"] is None
                assert stages == {"popularity"}
                offline = recommender.recommend([user], NOW, 5, stages=["popularity"])[0]
                assert [i["item"] for i in answer["items"]] == [r.item for r in offline]
                # the same no-history rule as the candidate's: a fair fallback guardrail
                known = not user.startswith("new-")
                assert answer["path"] == ("model" if known else "fallback:popularity")
            else:
                assert answer["model_version"] == 2
                if not user.startswith("new-"):
                    assert stages <= {"ease", "itemknn", "popularity"}
                    assert stages != {"popularity"}
        assert seen == {"control", "candidate"}
    finally:
        service.close()


def test_a_recommend_rollout_refuses_a_constant_control_or_another_unit(
    trained_world: Path, tmp_path: Path
) -> None:
    for section, needle in (
        ("rollout:\n  control: 0.1\n", "not the constant 0.1"),
        ("rollout:\n  unit: session\n", "randomises users"),
    ):
        project = _world(trained_world, tmp_path / needle[:3], section, production=True)
        with Controller(project) as controller, pytest.raises(RolloutError, match=needle):
            controller.start(now=NOW)


def test_a_rehearsed_rollout_where_the_candidate_converts_better_goes_on(
    trained_world: Path, tmp_path: Path
) -> None:
    """taxiway.serving.recommend_simulation (what `taxiway rollout simulate` runs on a
    recommend spec): new users arrive on a simulated clock, each asks once with two recent
    items (so the model answers) and buys the first item shown with 8% (control) or 30%
    (candidate) probability, posted by request id and item only: the outcome counts for the
    user of that request."""
    project = _world(
        trained_world,
        tmp_path,
        "rollout:\n  steps: [20, 50, 100]\n  min_duration: 10m\n  min_units: 50\n"
        "  check_every: 5m\n"
        "  metric: {name: purchase, direction: increase, min_effect: 0.05}\n"
        "  guardrails: {outcomes: [], latency_p99_ms: 1000}\n",
        production=True,
    )
    began = time.perf_counter()
    folder = tmp_path / "rehearsal"
    points = rehearse_recommend(
        project, folder, lift=0.30 / 0.08 - 1, base=0.08, units=1800,
        duration=timedelta(hours=1), seed=7,
    )  # fmt: skip
    verdicts = [point.verdict for point in points]
    assert "rollback" not in verdicts, verdicts
    assert "promote" in verdicts, verdicts
    store = open_rollout_store(None, folder / "state")
    try:
        final = store.latest(project.spec.name)
    finally:
        store.close()
    assert final is not None
    assert final.step_index >= 1 or final.state == "complete"
    evidence = final.verdict["evidence"] if isinstance(final.verdict, dict) else {}
    arms = {arm["name"]: arm for arm in evidence.get("arms", [])}
    # the purchases posted by request id counted for their users: the candidate's rate is higher
    assert arms["candidate"]["mean"] > arms["control"]["mean"] > 0
    assert evidence["counts"]["outcomes_without_unit"] == 0
    # every answer came from the model (recent items), named its arm, and is in the log
    records = [
        orjson.loads(line)
        for path in log_files(folder / "state" / "predictions")
        for line in path.read_bytes().splitlines()
    ]
    assert {r["path"] for r in records} == {"model"}
    assert {r["arm"] for r in records} == {"control", "candidate"}
    # the project's own registry and logs are untouched
    assert not (project.state_dir / "predictions").exists()
    assert time.perf_counter() - began < 30


def test_the_verdict_route_answers_as_the_prediction_service_does(
    trained_world: Path, tmp_path: Path
) -> None:
    project = _world(trained_world, tmp_path, ROLLOUT, production=True)
    service = _service(project)
    app = build_recommend_app(service)

    async def ask(path: str, method: str = "GET") -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.request(method, path)

    try:
        none = asyncio.run(ask("/v1/rollout/verdict"))
        assert none.status_code == 404
        assert "taxiway rollout start" in none.json()["error"]
        with Controller(project) as controller:
            state = controller.start(now=NOW)
            running = asyncio.run(ask("/v1/rollout/verdict?strict=true", "POST"))
            assert running.status_code == 200
            body = running.json()
            assert (body["rollout"], body["candidate"], body["share"]) == (state.id, 2, 50.0)
            assert body["healthy"] is True
            controller.rollback(reason="a test")
        rolled_back = asyncio.run(ask("/v1/rollout/verdict"))
        assert rolled_back.status_code == 200
        assert rolled_back.json()["healthy"] is False
        assert asyncio.run(ask("/v1/rollout/verdict?strict=true")).status_code == 503
        document = recommend_openapi(service)
        answer = document["paths"]["/v1/recommend"]["post"]["responses"]["200"]["content"][
            "application/json"
        ]["schema"]
        # a baseline control answers with no model version
        assert answer["properties"]["model_version"]["type"] == ["integer", "null"]
        assert set(document["paths"]["/v1/rollout/verdict"]) == {"get", "post"}
    finally:
        service.close()


def test_rollout_auto_checks_a_recommenders_rollout_from_the_service(
    trained_world: Path, tmp_path: Path
) -> None:
    """`rollout.auto: true`: the recommendation app's lifespan runs the automatic loop, whose
    child process checks the running rollout with the real controller (a hold: no traffic)."""
    project = _world(
        trained_world,
        tmp_path,
        "rollout:\n  steps: [50, 100]\n  min_duration: 1s\n  auto: true\n  check_every: 1s\n",
        production=True,
    )
    with Controller(project) as controller:
        state = controller.start()
    store = open_rollout_store(project.spec.registry, project.state_dir)
    service = RecommendService(project, reload_interval_s=0, rollout_poll_s=0)
    app = build_recommend_app(service)
    inner = app.app  # type: ignore[attr-defined]  # the Starlette app inside the limits

    async def serve() -> None:
        async with inner.router.lifespan_context(inner):
            deadline = time.monotonic() + 60.0
            while store.get(state.id).verdict is None:
                assert time.monotonic() < deadline, "the service did not check the rollout"
                await asyncio.sleep(0.2)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                verdict = (await client.get("/v1/rollout/verdict")).json()
            assert verdict["verdict"] == "hold"

    try:
        asyncio.run(serve())
        checked = store.get(state.id)
        assert checked.state == "running"
        assert checked.revision > state.revision
    finally:
        store.close()
