"""A rollout served for real: `taxiway serve --workers 2` assigning every unit the same way in
both workers and following the stored state, and `GET /v1/rollout/verdict` for Argo Rollouts
and Flagger."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.serving.conftest import serving
from tests.serving.rollout_world import rollout_shop, start, two_versions

from taxiway.errors import ServingError
from taxiway.rollout.assignment import arm_for
from taxiway.serving.app import build_app
from taxiway.serving.service import ROLLOUT_POLL_ENV, Service, servable_version
from taxiway.spec.project import Project

__all__ = ["rollout_shop"]  # the fixture, used by these tests

FLAGGER_PAYLOAD = {
    "name": "retail-churn",
    "namespace": "models",
    "phase": "Progressing",
    "checksum": "85d557f47b",
    "metadata": {},
}
CUSTOMERS = [str(100000 + i) for i in range(1, 31)]
POLL_S = 0.2


def _post(url: str, customer: str) -> dict[str, Any]:
    """One prediction on a connection of its own (the supervisor hands connections to the
    workers in turn)."""
    response = httpx.post(
        f"{url}/v1/predict", json={"entities": {"customer": customer}}, timeout=10.0
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _logged(spec: Path) -> list[tuple[str, dict[str, Any]]]:
    """(worker, record) of every logged prediction of ``spec``'s state."""
    folder = Project.load(spec).state_dir / "predictions"
    records = []
    for path in sorted(folder.glob("predictions-*.jsonl")):
        worker = path.name.removeprefix("predictions-").rsplit("-", 2)[0]
        for line in path.read_text().splitlines():
            if line.strip():
                records.append((worker, json.loads(line)))
    return records


def _until(check: Any, timeout: float) -> float:
    """Seconds until ``check()`` is true; fails after ``timeout``."""
    began = time.monotonic()
    while not check():
        if time.monotonic() - began > timeout:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - began


def test_two_workers_assign_every_unit_identically_and_follow_the_store(
    rollout_shop: Path,
) -> None:
    for started in start(rollout_shop, unit="customer", salt="two-workers"):
        started.update(share=25.0, step_index=3)
        already = len(_logged(rollout_shop))
        env = {ROLLOUT_POLL_ENV: str(POLL_S)}
        with serving(rollout_shop, "--workers", "2", env=env) as server:
            for customer in CUSTOMERS:
                for _ in range(2):  # consecutive connections: one to each worker
                    answer = _post(server.url, customer)
                    assert answer["arm"] == arm_for("two-workers", customer, 25.0)
                    assert answer["model_version"] == (2 if answer["arm"] == "candidate" else 1)

            records = _logged(rollout_shop)[already:]
            arms_by_unit: dict[str, set[str]] = {}
            workers_by_unit: dict[str, set[str]] = {}
            for worker, record in records:
                arms_by_unit.setdefault(record["unit"], set()).add(record["arm"])
                workers_by_unit.setdefault(record["unit"], set()).add(worker)
            assert set(arms_by_unit) == set(CUSTOMERS)  # the unit is logged with the arm
            assert all(len(arms) == 1 for arms in arms_by_unit.values())
            assert len({w for ws in workers_by_unit.values() for w in ws}) == 2
            both = [u for u, ws in workers_by_unit.items() if len(ws) == 2]
            assert len(both) >= len(CUSTOMERS) // 2  # each answered by both workers

            # a step in the store reaches both workers within the poll (plus a request)
            started.update(share=100.0, step_index=5)

            def all_candidates() -> bool:
                return all(_post(server.url, c)["arm"] == "candidate" for c in CUSTOMERS[:6])

            assert _until(all_candidates, timeout=5.0) < 1.0 + 2 * POLL_S

            # a rollback sends everyone to control (production v1) at once
            started.update(state="rolled_back", share=0.0)

            def all_production() -> bool:
                answers = [_post(server.url, c) for c in CUSTOMERS[:6]]
                return all((a["arm"], a["model_version"]) == ("production", 1) for a in answers)

            assert _until(all_production, timeout=5.0) < 1.0 + 2 * POLL_S

            with server.client() as client:
                metrics = client.get("/metrics").text
            assert 'taxiway_request_latency_seconds_count{arm="candidate",path="model"}' in metrics
            assert 'taxiway_request_latency_seconds_count{arm="control",path="model"}' in metrics


def _verdict(spec: Path, query: str = "", flagger: bool = False) -> httpx.Response:
    """The verdict as Argo Rollouts asks for it (GET), or as a Flagger webhook does (POST of
    its canary's JSON)."""

    async def run() -> httpx.Response:
        service = Service(Project.load(spec), reload_interval_s=0, warm_up=False)
        transport = httpx.ASGITransport(app=build_app(service))
        url = f"/v1/rollout/verdict{query}"
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                if flagger:
                    return await client.post(url, json=FLAGGER_PAYLOAD)
                return await client.get(url)
        finally:
            await service.stop()

    return asyncio.run(run())


def test_the_verdict_of_a_running_rollout(rollout_shop: Path) -> None:
    checked = datetime(2026, 12, 6, 6, 30, tzinfo=UTC).isoformat()
    for started in start(rollout_shop, unit="customer"):
        response = _verdict(rollout_shop)
        assert response.status_code == 200
        body = response.json()
        assert {k: body[k] for k in ("rollout", "state", "step", "share", "verdict")} == {
            "rollout": started.state.id,
            "state": "running",
            "step": 1,
            "share": 1.0,
            "verdict": None,
        }
        assert (body["healthy"], body["reasons"], body["checked_at"]) == (True, [], None)

        verdict = {"kind": "promote", "reasons": ["interval above 0"], "checked_at": checked}
        started.update(share=5.0, step_index=1, verdict=verdict)
        strict = _verdict(rollout_shop, "?strict=true")
        assert strict.status_code == 200
        assert {k: strict.json()[k] for k in ("step", "share", "verdict", "healthy")} == {
            "step": 2,
            "share": 5.0,
            "verdict": "promote",
            "healthy": True,
        }
        assert strict.json()["checked_at"] == checked
        flagger = _verdict(rollout_shop, "?strict=true", flagger=True)
        assert (flagger.status_code, flagger.json()["healthy"]) == (200, True)


def test_a_rolled_back_rollout_fails_the_strict_verdict(rollout_shop: Path) -> None:
    for started in start(rollout_shop, unit="customer"):
        harm = {"kind": "rollback", "reasons": ["p99 latency over the guardrail"]}
        started.update(state="rolled_back", share=0.0, verdict=harm)
        loose, strict = _verdict(rollout_shop), _verdict(rollout_shop, "?strict=true")
        flagger = _verdict(rollout_shop, "?strict=true", flagger=True)
        assert loose.status_code == 200
        assert strict.status_code == 503
        assert flagger.status_code == 503  # Flagger fails the check on a status over 202
        for response in (loose, strict, flagger):
            body = response.json()
            assert (body["state"], body["verdict"], body["healthy"]) == (
                "rolled_back",
                "rollback",
                False,
            )
            assert body["reasons"] == ["p99 latency over the guardrail"]


def test_a_paused_rollout_is_unhealthy(rollout_shop: Path) -> None:
    for started in start(rollout_shop, unit="customer"):
        started.update(state="paused")
        response = _verdict(rollout_shop, "?strict=1")
        assert response.status_code == 503
        assert response.json()["reasons"] == ["the rollout is paused"]


def test_the_verdict_without_any_rollout_is_a_404_in_json(shop: Path) -> None:
    response = _verdict(shop)
    assert response.status_code == 404
    assert "no rollout" in response.json()["error"]


def test_taxiway_serve_starts_with_nothing_in_production_when_a_rollout_is_running(
    shop: Path, tmp_path: Path
) -> None:
    """The first model's rollout: the baseline answers control, the candidate the rest."""
    spec = two_versions(shop, tmp_path, production=False)
    project = Project.load(spec)
    with pytest.raises(ServingError, match="nothing to serve"):
        servable_version(project)
    control = {"kind": "baseline", "version": None, "constant": None}
    for started in start(spec, control=control, unit="customer", salt="first"):
        started.update(share=50.0, step_index=4)
        assert servable_version(project) is None
        with serving(spec) as server:
            answers = {c: _post(server.url, c) for c in CUSTOMERS}
        for customer, answer in answers.items():
            arm = arm_for("first", customer, 50.0)
            assert (answer["arm"], answer["model_version"]) == (
                (arm, 2) if arm == "candidate" else (arm, None)
            )
