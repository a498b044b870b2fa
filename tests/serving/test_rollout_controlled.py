"""The controller reading what the real service logged: every answer and every outcome posted
with a unit lands in the arm the assignment gave, and the split passes its check."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from tests.serving.rollout_world import rollout_shop

from taxiway.rollout.assignment import arm_for
from taxiway.rollout.controller import Controller
from taxiway.serving.app import build_app
from taxiway.serving.service import Service
from taxiway.spec.project import Project

__all__ = ["rollout_shop"]  # the fixture, used by this test

CUSTOMERS = [str(100000 + i) for i in range(1, 201)]


def _serve(spec: Path, churned: set[str]) -> None:
    """Every customer asks once; the churned ones' outcomes are posted with their unit."""

    async def run() -> None:
        service = Service(Project.load(spec), reload_interval_s=0, warm_up=False)
        transport = httpx.ASGITransport(app=build_app(service))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
                for customer in CUSTOMERS:
                    answer = await client.post(
                        "/v1/predict", json={"entities": {"customer": customer}}
                    )
                    assert answer.status_code == 200, answer.text
                for customer in sorted(churned):
                    posted = await client.post(
                        "/v1/outcomes", json={"unit": customer, "name": "churned", "value": True}
                    )
                    assert posted.status_code == 200, posted.text
        finally:
            await service.stop()

    asyncio.run(run())


def test_the_controller_reads_the_service_s_arms_and_outcomes(rollout_shop: Path) -> None:
    project = Project.load(rollout_shop)
    with Controller(project, by="test") as controller:
        started = controller.start(candidate=2)
        now = datetime.now(UTC)
        state = controller.store.update(
            started, by="test", kind="promote", now=now, step_index=3, share=50.0,
            step_started_at=now,
        )  # fmt: skip
        churned = set(CUSTOMERS[::4])

        _serve(rollout_shop, churned)
        result = controller.check(now=now + timedelta(minutes=1))

    arms = {arm.name: arm for arm in result.analysis.arms}
    expected = {c: arm_for(state.salt, c, 50.0) for c in CUSTOMERS}
    candidates = sum(1 for arm in expected.values() if arm == "candidate")
    assert arms["candidate"].answers == candidates
    assert arms["control"].answers == len(CUSTOMERS) - candidates
    assert result.analysis.srm_ok
    assert result.analysis.counts["in_both_arms"] == 0
    assert result.analysis.counts["answers_without_unit"] == 0
    assert arms["candidate"].units == candidates  # every candidate unit kept
    churned_candidates = sum(1 for c in churned if expected[c] == "candidate")
    assert arms["candidate"].events == churned_candidates
    assert result.analysis.counts["outcomes_without_unit"] == 0
    assert result.verdict.kind == "hold"  # 200 customers: not enough for any decision
