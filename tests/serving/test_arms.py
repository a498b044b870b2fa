"""The service's two arms during a rollout: assignment by unit, the control's kinds, and the
service following the stored state (in-process services over one state folder)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.serving.rollout_world import Started, rollout_shop, start

from taxiway.errors import RolloutError
from taxiway.models.registry import open_registry
from taxiway.rollout.assignment import arm_for
from taxiway.rollout.state import open_rollout_store
from taxiway.serving.predictor import Answer
from taxiway.serving.service import Service
from taxiway.spec.project import Project

__all__ = ["rollout_shop"]  # the fixture, used by these tests

CUSTOMERS = [str(100000 + i) for i in range(1, 201)]


def _service(spec: Path, **kwargs: Any) -> Service:
    return Service(Project.load(spec), reload_interval_s=0, **kwargs)


def _answers(service: Service, items: list[dict[str, Any]]) -> list[tuple[Answer, str | None]]:
    """Each item's answer and the unit it was logged with (parsed as the app parses)."""

    async def run() -> list[tuple[Answer, str | None]]:
        out = []
        for item in items:
            parsed = service.predictor.contract.parse(item)
            answer = await service.answer(parsed, time.perf_counter())
            out.append((answer, parsed.unit))
        return out

    return asyncio.run(run())


def _customers(units: list[str] = CUSTOMERS) -> list[dict[str, Any]]:
    return [{"entities": {"customer": c}} for c in units]


def _stop(service: Service) -> None:
    asyncio.run(service.stop())


@pytest.fixture
def rollout(rollout_shop: Path) -> Iterator[Started]:
    yield from start(rollout_shop, unit="customer")


def test_without_a_rollout_the_service_answers_as_before(rollout_shop: Path) -> None:
    service = _service(rollout_shop)
    try:
        assert service.arms is None
        (answer, unit), *_ = _answers(service, _customers(["100017"]))
        assert (answer.arm, answer.model_version, unit) == ("production", 1, None)
    finally:
        _stop(service)


def test_two_services_assign_every_unit_identically_and_by_the_hash(
    rollout_shop: Path, rollout: Started
) -> None:
    rollout.update(share=50.0, step_index=4)
    first, second = _service(rollout_shop), _service(rollout_shop)
    try:
        a = _answers(first, _customers())
        b = _answers(second, _customers())
    finally:
        _stop(first)
        _stop(second)
    arms_a = [answer.arm for answer, _ in a]
    assert arms_a == [answer.arm for answer, _ in b]
    assert arms_a == [arm_for("salt-1", c, 50.0) for c in CUSTOMERS]
    assert 60 < arms_a.count("candidate") < 140  # about half of 200
    for answer, _ in a:  # the arm's version answered
        assert answer.model_version == (2 if answer.arm == "candidate" else 1)
        assert answer.path == "model"
    assert [unit for _, unit in a] == CUSTOMERS


def test_a_request_field_unit_overrides_the_entity(rollout_shop: Path, rollout: Started) -> None:
    rollout.update(share=50.0, step_index=4)
    service = _service(rollout_shop)
    try:
        items = [{"entities": {"customer": "100017"}, "unit": f"user-{i}"} for i in range(100)]
        answered = _answers(service, items)
    finally:
        _stop(service)
    assert [a.arm for a, _ in answered] == [
        arm_for("salt-1", f"user-{i}", 50.0) for i in range(100)
    ]
    assert [u for _, u in answered] == [f"user-{i}" for i in range(100)]


def test_a_request_without_a_unit_is_served_by_control_and_counted(rollout_shop: Path) -> None:
    for started in start(rollout_shop, unit="visitor"):  # neither an entity nor a field
        started.update(share=100.0, step_index=5)
        service = _service(rollout_shop)
        try:
            answered = _answers(service, _customers(CUSTOMERS[:10]))
            with_unit = _answers(service, [{"entities": {"customer": "100017"}, "unit": "v1"}])
            service.refresh_gauges()
            unassigned = service.metrics.registry.get_sample_value(
                "taxiway_rollout_unassigned_total", {"name": service.name}
            )
        finally:
            _stop(service)
        assert {(a.arm, a.model_version, u) for a, u in answered} == {("control", 1, None)}
        assert unassigned == 10
        assert with_unit[0][0].arm == "candidate"  # at 100% every unit is the candidate's


def test_a_baseline_control_answers_with_the_baseline_and_no_version(rollout_shop: Path) -> None:
    for started in start(rollout_shop, control={"kind": "baseline", "version": None}):
        started.update(share=50.0, step_index=4)
        service = _service(rollout_shop)
        try:
            answered = _answers(service, _customers(CUSTOMERS[:60]))
            arms = service.arms
            assert arms is not None
            model = arms.candidate.model
            for answer, _ in answered:
                if answer.arm == "control":
                    assert (answer.model_version, answer.path) == (None, "model")
                    assert answer.prediction == model.baseline_one(answer.features)
                else:
                    assert answer.model_version == 2
            assert {a.arm for a, _ in answered} == {"control", "candidate"}
        finally:
            _stop(service)


def test_a_constant_control_answers_the_constant(rollout_shop: Path) -> None:
    control = {"kind": "constant", "version": None, "constant": 0.25}
    for started in start(rollout_shop, control=control):
        started.update(share=5.0, step_index=1)
        service = _service(rollout_shop)
        try:
            answered = _answers(service, _customers(CUSTOMERS[:40]))
        finally:
            _stop(service)
        controls = [a for a, _ in answered if a.arm == "control"]
        assert controls
        assert {(a.prediction, a.model_version) for a in controls} == {(0.25, None)}
        # its inputs are looked up and logged like the model's
        assert all(a.features for a in controls)


def test_the_service_follows_steps_pause_and_rollback_within_the_poll(
    rollout_shop: Path, rollout: Started
) -> None:
    service = _service(rollout_shop, rollout_poll_s=0.1)

    async def arms_until(expected: set[str], units: list[str]) -> float:
        """Seconds until every unit of ``units`` answers from an arm in ``expected``."""
        began = time.perf_counter()
        while time.perf_counter() - began < 3:
            seen = set()
            for unit in units:
                parsed = service.predictor.contract.parse({"entities": {"customer": unit}})
                seen.add((await service.answer(parsed, time.perf_counter())).arm)
            if seen <= expected:
                return time.perf_counter() - began
            await asyncio.sleep(0.02)
        raise AssertionError(f"still answered from {seen}, not {expected}")

    async def run() -> None:
        await service.start()
        try:
            units = CUSTOMERS[:50]
            at_one = {u for u in units if arm_for("salt-1", u, 1.0) == "candidate"}
            await arms_until({"control"}, sorted(set(units) - at_one))
            rollout.update(share=100.0, step_index=5)
            assert await arms_until({"candidate"}, units) < 1.0
            rollout.update(state="paused")
            await asyncio.sleep(0.3)
            assert service.arms is not None
            assert service.arms.share == 100.0  # kept
            await arms_until({"candidate"}, units)
            rollout.update(state="rolled_back", share=0.0)
            assert await arms_until({"production"}, units) < 1.0
            assert service.arms is None
        finally:
            await service.stop()

    asyncio.run(run())


def test_a_completed_rollout_serves_the_candidate_it_loaded(
    rollout_shop: Path, rollout: Started
) -> None:
    service = _service(rollout_shop)
    try:
        arms = service.arms
        assert arms is not None
        project = Project.load(rollout_shop)
        registry = open_registry(project.spec.registry, state_dir=project.state_dir)
        try:
            registry.set_stage(project.spec.name, 2, "production", by="tests")
            rollout.update(state="complete", share=100.0)
            service._read_and_follow()  # one poll, as the rollout thread makes it
            assert service.arms is None
            assert service.predictor is arms.candidate
            (answer, _), *_ = _answers(service, _customers(["100017"]))
            assert (answer.arm, answer.model_version) == ("production", 2)
        finally:
            registry.set_stage(project.spec.name, 1, "production", by="tests")
            registry.close()
    finally:
        _stop(service)


def test_with_nothing_in_production_the_rollout_control_serves(rollout_shop: Path) -> None:
    project = Project.load(rollout_shop)
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        registry.set_stage(project.spec.name, 1, "archived", by="tests")
        for started in start(rollout_shop, control={"kind": "baseline", "version": None}):
            service = _service(rollout_shop)
            try:
                assert service.predictor.policy == "baseline"
                started.update(state="rolled_back", share=0.0)
                service._read_and_follow()
                answered = _answers(service, _customers(CUSTOMERS[:20]))
                assert {(a.arm, a.model_version) for a, _ in answered} == {("control", None)}
            finally:
                _stop(service)
    finally:
        registry.set_stage(project.spec.name, 1, "production", by="tests")
        registry.close()


def test_a_store_that_cannot_be_read_changes_nobodys_arm(
    rollout_shop: Path, rollout: Started
) -> None:
    rollout.update(share=50.0, step_index=4)
    service = _service(rollout_shop)
    try:
        arms = service.arms
        assert arms is not None
        assert service.rollouts is not None
        service.rollouts.close()  # every read now fails, as with a database that is down
        with pytest.raises(RolloutError):
            service._read_and_follow()
        assert service.arms is arms
        assert arms.share == 50.0
    finally:
        _stop(service)


def test_a_candidate_that_cannot_be_loaded_leaves_the_service_as_it_was(
    rollout_shop: Path,
) -> None:
    project = Project.load(rollout_shop)
    store = open_rollout_store(project.spec.registry, project.state_dir)
    try:
        state = store.start(
            name=project.spec.name,
            salt="s",
            control={"kind": "version", "version": 1, "constant": None},
            candidate=99,  # no such version
            unit=None,
            steps=[50.0],
            plan={},
            by="tests",
        )
        try:
            service = _service(rollout_shop)
            try:
                assert service.arms is None
                (answer, _), *_ = _answers(service, _customers(["100017"]))
                assert (answer.arm, answer.model_version) == ("production", 1)
            finally:
                _stop(service)
        finally:
            store.update(state, by="tests", kind="abort", state="aborted")
    finally:
        store.close()


def test_with_nothing_in_production_a_completed_candidate_takes_over(rollout_shop: Path) -> None:
    project = Project.load(rollout_shop)
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        registry.set_stage(project.spec.name, 1, "archived", by="tests")
        for started in start(rollout_shop, control={"kind": "baseline", "version": None}):
            service = _service(rollout_shop)
            try:
                arms = service.arms
                assert arms is not None
                registry.set_stage(project.spec.name, 2, "production", by="tests")
                started.update(state="complete", share=100.0)
                service._read_and_follow()
                assert service.arms is None
                assert service.predictor is arms.candidate
                (answer, _), *_ = _answers(service, _customers(["100017"]))
                assert (answer.arm, answer.model_version, answer.path) == ("production", 2, "model")
            finally:
                _stop(service)
    finally:
        registry.set_stage(project.spec.name, 1, "production", by="tests")
        registry.close()
