"""A rollout whose arms take different inputs: a request is validated for the arm that serves
it. Two real versions of a small visits project: v1 trained without request fields, v2 with
the request field ``channel``."""

from __future__ import annotations

import asyncio
import csv
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.serving.conftest import promote

from taxiway.cli import main
from taxiway.errors import RequestError
from taxiway.models.registry import open_registry
from taxiway.rollout.assignment import arm_for
from taxiway.rollout.state import open_rollout_store
from taxiway.serving.service import Service
from taxiway.spec.project import Project

SPEC = """\
name: visits
sources:
  visits: {{kind: file, path: visits.csv, timestamp: at}}
entities: {{customer: customer_id}}
features:
  history: {{source: visits, entity: customer, aggregate: {{visits: count(*)}}, windows: [30d]}}
spine: {{source: visits}}
label: {{name: bought, kind: column, expr: "outcome = 1"}}
model: {model}
"""
SALT = "fields"
CUSTOMERS = [str(n) for n in range(1, 41)]


@pytest.fixture(scope="module")
def visits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """v1 trained on the history only (production), v2 with ``channel`` too (a candidate)."""
    folder = tmp_path_factory.mktemp("arm-fields")
    rng = np.random.default_rng(0)
    with (folder / "visits.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["customer_id", "at", "channel", "outcome"])
        for i in range(600):
            channel = str(rng.choice(["web", "app", "shop"]))
            outcome = int(rng.random() < (0.7 if channel == "app" else 0.2))
            at = (datetime(2024, 1, 1) + timedelta(hours=2 * i)).isoformat(sep=" ")
            writer.writerow([int(rng.integers(1, 41)), at, channel, outcome])
    spec = folder / "taxiway.yaml"
    # (each is registered even where it does not beat its baseline: exit 1, not what is tested)
    spec.write_text(SPEC.format(model="{}"))
    main(["train", "-f", str(spec), "--json"])
    spec.write_text(SPEC.format(model="{request_fields: [channel]}"))
    main(["train", "-f", str(spec), "--json"])
    project = Project.load(spec)
    registry = open_registry(None, state_dir=project.state_dir)
    try:
        assert [v.version for v in registry.list("visits")] == [1, 2]
    finally:
        registry.close()
    promote(spec, 1)
    assert main(["features", "materialize", "-f", str(spec), "--as-of", "2024-03-01"]) == 0
    return spec


def _service(spec: Path, control: int, candidate: int) -> Iterator[Service]:
    """A service over a rollout of ``candidate`` against ``control`` at 50%, per customer."""
    project = Project.load(spec)
    store = open_rollout_store(None, project.state_dir)
    state = store.start(
        name="visits",
        salt=SALT,
        control={"kind": "version", "version": control, "constant": None},
        candidate=candidate,
        unit="customer",
        steps=[50.0],
        plan={},
        by="tests",
    )
    service = Service(project, reload_interval_s=0, rollout_poll_s=0)
    try:
        yield service
    finally:
        asyncio.run(service.stop())
        store.update(store.get(state.id), by="tests", kind="abort", state="aborted")
        store.close()


@pytest.fixture
def candidate_reads_channel(visits: Path) -> Iterator[Service]:
    yield from _service(visits, control=1, candidate=2)


@pytest.fixture
def control_reads_channel(visits: Path) -> Iterator[Service]:
    yield from _service(visits, control=2, candidate=1)


def _customer(arm: str) -> str:
    return next(c for c in CUSTOMERS if arm_for(SALT, c, 50.0) == arm)


def _predict(service: Service, item: dict[str, Any]) -> dict[str, Any]:
    """What ``POST /v1/predict`` does with one item: parse, answer, log; the answer's body
    with the logged ``request``."""

    async def run() -> dict[str, Any]:
        parsed = service.parse(item)
        answer = await service.answer(parsed, time.perf_counter())
        await service.record([answer], [parsed], [item])
        return {**answer.body(), "request": parsed.values}

    return asyncio.run(run())


def test_a_candidate_only_field_is_read_by_the_candidate_and_ignored_by_control(
    candidate_reads_channel: Service,
) -> None:
    service = candidate_reads_channel
    assert service.arms is not None
    assert not service.arms.same_inputs
    on_candidate = {
        "entities": {"customer": _customer("candidate")},
        "features": {"channel": "app"},
    }
    on_control = {"entities": {"customer": _customer("control")}, "features": {"channel": "app"}}

    candidate = _predict(service, on_candidate)
    control = _predict(service, on_control)

    assert (candidate["arm"], candidate["model_version"]) == ("candidate", 2)
    assert candidate["request"] == {"channel": "app"}
    assert (control["arm"], control["model_version"]) == ("control", 1)
    assert control["request"] == {}


def test_the_candidate_scores_the_field_it_was_trained_on(
    candidate_reads_channel: Service,
) -> None:
    customer = _customer("candidate")
    scores = {
        channel: _predict(
            candidate_reads_channel,
            {"entities": {"customer": customer}, "features": {"channel": channel}},
        )["prediction"]
        for channel in ("app", "web")
    }
    assert scores["app"] > scores["web"]  # app visits buy far more often in its training data


def test_a_candidate_request_without_the_field_is_answered_with_it_null(
    candidate_reads_channel: Service,
) -> None:
    answer = _predict(candidate_reads_channel, {"entities": {"customer": _customer("candidate")}})
    assert (answer["arm"], answer["request"]) == ("candidate", {"channel": None})


def test_a_bad_value_is_refused_only_by_the_arm_that_reads_it(
    candidate_reads_channel: Service,
) -> None:
    service = candidate_reads_channel
    with pytest.raises(RequestError) as refused:
        service.parse(
            {"entities": {"customer": _customer("candidate")}, "features": {"channel": 5}}
        )
    assert refused.value.problems == [("features.channel", "expected a string")]
    # control does not read it: accepted, left out
    parsed = service.parse(
        {"entities": {"customer": _customer("control")}, "features": {"channel": 5}}
    )
    assert (parsed.arm, parsed.values) == ("control", {})
    # a field neither arm takes is refused by both
    for arm in ("control", "candidate"):
        with pytest.raises(RequestError) as unknown:
            service.parse({"entities": {"customer": _customer(arm)}, "features": {"colour": "x"}})
        assert [where for where, _ in unknown.value.problems] == ["features.colour"]


def test_a_control_only_field_is_read_by_control_and_ignored_by_the_candidate(
    control_reads_channel: Service,
) -> None:
    service = control_reads_channel
    control = _predict(
        service, {"entities": {"customer": _customer("control")}, "features": {"channel": "web"}}
    )
    candidate = _predict(
        service, {"entities": {"customer": _customer("candidate")}, "features": {"channel": "web"}}
    )
    assert (control["arm"], control["model_version"], control["request"]) == (
        "control",
        2,
        {"channel": "web"},
    )
    assert (candidate["arm"], candidate["model_version"], candidate["request"]) == (
        "candidate",
        1,
        {},
    )


def test_the_openapi_item_names_the_field_with_the_arm_that_reads_it(
    candidate_reads_channel: Service,
) -> None:
    document = candidate_reads_channel.openapi()
    body = document["paths"]["/v1/predict"]["post"]["requestBody"]
    item = body["content"]["application/json"]["schema"]["oneOf"][0]
    channel = item["properties"]["features"]["properties"]["channel"]
    assert "candidate arm" in channel["description"]
    assert item["properties"]["entities"]["required"] == ["customer"]


def test_open_inference_rows_are_validated_for_their_arm(
    candidate_reads_channel: Service,
) -> None:
    payload = {
        "inputs": [
            {
                "name": "customer",
                "datatype": "BYTES",
                "shape": [2],
                "data": [_customer("candidate"), _customer("control")],
            },
            {"name": "channel", "datatype": "BYTES", "shape": [2], "data": ["app", "app"]},
        ]
    }
    parsed, _, _ = candidate_reads_channel.oip_parse(payload)
    assert [(p.arm, p.values) for p in parsed] == [
        ("candidate", {"channel": "app"}),
        ("control", {}),
    ]


def test_over_http_a_candidate_only_field_is_answered_not_refused(
    candidate_reads_channel: Service,
) -> None:
    """The path production takes: ``POST /v1/predict`` through the app, not the service's
    methods (the handler validates each item for its arm)."""
    import httpx

    from taxiway.serving.app import build_app

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=build_app(candidate_reads_channel))
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return [
                await client.post(
                    "/v1/predict",
                    json={"entities": {"customer": _customer(arm)}, "features": {"channel": "app"}},
                )
                for arm in ("candidate", "control")
            ]

    candidate, control = asyncio.run(run())
    assert candidate.status_code == 200, candidate.text
    assert control.status_code == 200, control.text
    assert (candidate.json()["arm"], candidate.json()["model_version"]) == ("candidate", 2)
    assert control.json()["arm"] == "control"
