"""Answers say what they rest on (issue 13): missing and stale features, request types, the arm.

Against real `taxiway serve` processes: the retail shop (ids 100001 up), and a small visits
project with a request field of text, a latest view with a one-hour ttl and two versions (1
in production, 2 a candidate). The store is materialized half an hour after customer 7's
visit, the last one: 7's latest value was fresh then, and is stale by now.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from taxiway.cli import main

from .conftest import Server, promote, serving, variant

SPEC = """\
name: visits
sources:
  visits: {kind: file, path: visits.csv, timestamp: at}
entities: {customer: customer_id}
features:
  history: {source: visits, entity: customer, aggregate: {visits: count(*)}, windows: [30d]}
  last_visit: {source: visits, entity: customer, latest: [amount], ttl: 1h}
spine: {source: visits}
label: {name: bought, kind: column, expr: "outcome = 1"}
model: {request_fields: [channel]}
serving:
  fallback: baseline
"""

AS_OF = "2024-03-07T14:30:00"  # the last visit: 2024-01-01 + 799 x 2 h = 2024-03-07 14:00


def _visits(folder: Path, serving_lines: str = "") -> Path:
    rng = np.random.default_rng(0)
    start = datetime(2024, 1, 1)
    with (folder / "visits.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["customer_id", "at", "channel", "amount", "outcome"])
        for i in range(800):
            channel = str(rng.choice(["web", "app", "shop"]))
            amount = round(float(rng.gamma(2.0, 20.0)), 2)
            outcome = int(rng.random() < (0.7 if channel == "app" else 0.2))
            at = (start + timedelta(hours=2 * i)).isoformat(sep=" ")
            customer = 7 if i == 799 else int(rng.integers(1, 41))  # the last visit: 7's
            writer.writerow([customer, at, channel, amount, outcome])
    spec = folder / "taxiway.yaml"
    spec.write_text(SPEC + serving_lines)
    return spec


@pytest.fixture(scope="module")
def visits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Trained twice (v1 promoted, v2 a candidate), the store materialized."""
    spec = _visits(tmp_path_factory.mktemp("visits"))
    main(["train", "-f", str(spec), "--json"])
    main(["train", "-f", str(spec), "--json"])
    promote(spec, 1)
    assert main(["features", "materialize", "-f", str(spec), "--as-of", AS_OF]) == 0
    return spec


@pytest.fixture(scope="module")
def shop_server(shop: Path) -> Iterator[Server]:
    with serving(shop) as running:
        yield running


@pytest.fixture(scope="module")
def visits_server(visits: Path) -> Iterator[Server]:
    with serving(visits) as running:
        yield running


def _predict(server: Server, body: Any) -> Any:
    with server.client() as client:
        response = client.post("/v1/predict", json=body)
    assert response.status_code == 200, response.text
    return response.json()


# ---------------------------------------------------------------- defect 6: missing features


def test_a_known_customer_is_answered_by_the_model_undegraded(shop_server: Server) -> None:
    answer = _predict(shop_server, {"entities": {"customer": "100017"}})
    assert (answer["path"], answer["degraded"]) == ("model", False)
    assert "reason" not in answer


def test_an_unknown_customer_is_answered_by_the_fallback_and_says_why(
    shop_server: Server,
) -> None:
    """The docs' old example: no customer 123 exists, so no feature is known."""
    answer = _predict(shop_server, {"entities": {"customer": "123"}})
    assert answer["degraded"] is True
    assert answer["path"] == "fallback:baseline"
    assert "every online feature is missing" in answer["reason"]
    assert "customer 123" in answer["reason"]


def test_missing_features_are_counted_per_view(shop_server: Server) -> None:
    _predict(shop_server, {"entities": {"customer": "no-such-customer"}})
    with shop_server.client() as client:
        text = client.get("/metrics").text
    counted = {
        line.split("{", 1)[1].split("}", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("taxiway_missing_features_total{")
    }
    for view in ("customer_orders", "customer_sessions", "customer_profile"):
        assert counted[f'status="missing",view="{view}"'] >= 1


def test_with_missing_features_score_the_model_answers_flagged(shop: Path, tmp_path: Path) -> None:
    lines = f"  missing_features: score\n  log:\n    path: {tmp_path / 'predictions'}\n"
    spec = variant(shop, tmp_path, serving=lines)
    state = str(shop.parent / ".taxiway")
    with serving(spec, "--state-dir", state) as server:
        answer = _predict(server, {"entities": {"customer": "123"}})
    assert (answer["path"], answer["degraded"]) == ("model", True)
    assert "every online feature is missing" in answer["reason"]


def test_stale_features_are_named_and_scored_flagged_by_default(visits_server: Server) -> None:
    answer = _predict(visits_server, {"entities": {"customer": 7}, "features": {"channel": "app"}})
    assert (answer["path"], answer["degraded"]) == ("model", True)
    assert "stale: last_visit__amount" in answer["reason"]
    assert "history__visits_30d" not in answer["reason"]


def test_with_missing_features_fallback_stale_features_go_to_the_fallback(
    visits: Path, tmp_path: Path
) -> None:
    (tmp_path / "visits.csv").symlink_to(visits.parent / "visits.csv")
    spec = tmp_path / "taxiway.yaml"
    lines = f"  missing_features: fallback\n  log:\n    path: {tmp_path / 'predictions'}\n"
    spec.write_text(visits.read_text().replace("serving:\n", "serving:\n" + lines))
    state = str(visits.parent / ".taxiway")
    with serving(spec, "--state-dir", state) as server:
        answer = _predict(server, {"entities": {"customer": 7}, "features": {"channel": "app"}})
    assert (answer["path"], answer["degraded"]) == ("fallback:baseline", True)
    assert "stale: last_visit__amount" in answer["reason"]


# ---------------------------------------------------------------- defect 7: request validation


def test_a_number_for_a_text_field_is_a_422_naming_it(visits_server: Server) -> None:
    with visits_server.client() as client:
        response = client.post(
            "/v1/predict", json={"entities": {"customer": 7}, "features": {"channel": 5}}
        )
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"loc": ["features", "channel"], "msg": "expected a string"}
    ]


def _tensor(name: str, data: list[Any], shape: list[int] | None = None) -> dict[str, Any]:
    return {"name": name, "datatype": "BYTES", "shape": shape or [len(data)], "data": data}


@pytest.mark.parametrize(
    ("inputs", "where"),
    [
        ([_tensor("customer", ["7"], [2]), _tensor("channel", ["app"], [2])], "inputs.0.shape"),
        ([_tensor("customer", ["7"]), _tensor("channel", [5])], "inputs.1.data.0"),
        ([{"name": "customer", "datatype": "BYTES", "data": ["7"]}], "inputs.0.shape"),
    ],
)
def test_a_tensor_that_disagrees_with_its_shape_or_type_is_a_422_naming_it(
    visits_server: Server, inputs: list[dict[str, Any]], where: str
) -> None:
    with visits_server.client() as client:
        response = client.post("/v2/models/visits/infer", json={"inputs": inputs})
    assert response.status_code == 422, response.text
    assert where.split(".") in [problem["loc"] for problem in response.json()["detail"]]


def test_a_well_formed_tensor_request_is_answered(visits_server: Server) -> None:
    inputs = [_tensor("customer", ["7", "8"], [2, 1]), _tensor("channel", ["app", "web"], [2, 1])]
    with visits_server.client() as client:
        response = client.post("/v2/models/visits/infer", json={"inputs": inputs})
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["shape"] == [2]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/no/such/page", 404),
        ("GET", "/v1/outcomes", 405),
        ("GET", "/v1/predict", 405),
        ("POST", "/v2/health/live", 405),
    ],
)
def test_every_error_body_is_json(shop_server: Server, method: str, path: str, status: int) -> None:
    with shop_server.client() as client:
        response = client.request(method, path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]


# ---------------------------------------------------------------- defect 9: the arm


def test_a_pinned_candidate_is_answered_as_the_candidate_arm(visits: Path) -> None:
    with serving(visits, "--model", "2") as server:
        answer = _predict(server, {"entities": {"customer": 7}, "features": {"channel": "app"}})
        with server.client() as client:
            text = client.get("/metrics").text
    assert (answer["model_version"], answer["arm"]) == (2, "candidate")
    assert 'arm="candidate"' in text
    assert 'arm="production"' not in text


def test_the_production_version_is_answered_as_production(visits_server: Server) -> None:
    answer = _predict(visits_server, {"entities": {"customer": 7}, "features": {"channel": "app"}})
    assert (answer["model_version"], answer["arm"]) == (1, "production")
