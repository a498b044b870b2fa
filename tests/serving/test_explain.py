"""`"explain": true` through a real `taxiway serve`: each input's contribution, adding up to the
raw score of the model that served the answer, for every algorithm with exact contributions."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from taxiway.cli import main
from taxiway.serving.log import read_predictions

from .conftest import Server, promote, serving, variant

CUSTOMERS = ["100017", "100042", "100101", "100250", "100399"]

# XGBoost computes contributions and margins in float32 (its C++ `bst_float`): their sum meets
# the margin within float32 resolution, not 1e-6; LightGBM and the linear form add in float64
TOLERANCE = {"lightgbm": 1e-6, "xgboost": 1e-4, "logistic": 1e-6}


def _trained(shop: Path, folder: Path, algorithm: str) -> Path:
    if algorithm == "lightgbm":
        return shop
    text = shop.read_text().replace("algorithm: lightgbm", f"algorithm: {algorithm}", 1)
    spec = variant(shop, folder, text)
    assert main(["train", "-f", str(spec), "--json"]) == 0
    promote(spec, 1)
    assert main(["features", "materialize", "-f", str(spec), "--as-of", "2025-12-31"]) == 0
    return spec


@pytest.fixture(scope="module", params=["lightgbm", "xgboost", "logistic"])
def served(
    request: pytest.FixtureRequest, shop: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Server, Path]]:
    algorithm = str(request.param)
    spec = _trained(shop, tmp_path_factory.mktemp(f"explain-{algorithm}"), algorithm)
    with serving(spec) as server:
        yield algorithm, server, spec


def _logistic(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def test_contributions_add_up_to_the_served_raw_score(served: tuple[str, Server, Path]) -> None:
    algorithm, server, _ = served
    with server.client() as client:
        answers = client.post(
            "/v1/predict",
            json=[{"entities": {"customer": c}, "explain": True} for c in CUSTOMERS],
        ).json()
    for answer in answers:
        assert answer["path"] == "model"
        explanation = answer["explanation"]
        assert explanation["method"] == ("linear" if algorithm == "logistic" else "tree_shap")
        assert explanation["scale"] == "log_odds"
        total = explanation["bias"] + sum(explanation["contributions"].values())
        assert total == pytest.approx(explanation["raw_score"], abs=TOLERANCE[algorithm])
        # the raw score is the served model's: through the link it is the prediction answered
        assert _logistic(explanation["raw_score"]) == pytest.approx(
            answer["prediction"], abs=TOLERANCE[algorithm]
        )


def test_contributions_are_named_by_feature_and_largest_first(
    served: tuple[str, Server, Path],
) -> None:
    _, server, spec = served
    from taxiway.models.artifact import load_model
    from taxiway.models.registry import open_registry
    from taxiway.spec.project import Project

    project = Project.load(spec)
    registry = open_registry(None, state_dir=project.state_dir)
    try:
        features = load_model(registry.get("retail_churn", 1).artifact_dir).features
    finally:
        registry.close()
    with server.client() as client:
        answer = client.post(
            "/v1/predict", json={"entities": {"customer": "100042"}, "explain": True}
        ).json()
    contributions = answer["explanation"]["contributions"]
    assert sorted(contributions) == sorted(features)
    sizes = [abs(v) for v in contributions.values()]
    assert sizes == sorted(sizes, reverse=True)


def test_without_explain_there_is_no_explanation_and_the_log_says_which(
    served: tuple[str, Server, Path],
) -> None:
    _, server, spec = served
    with server.client() as client:
        plain = client.post("/v1/predict", json={"entities": {"customer": "100017"}}).json()
        explained = client.post(
            "/v1/predict", json={"entities": {"customer": "100017"}, "explain": True}
        ).json()
    assert "explanation" not in plain
    assert explained["prediction"] == plain["prediction"]
    con = duckdb.connect()
    read_predictions(con, spec.parent / ".taxiway" / "predictions")
    logged = dict(
        con.execute(
            "SELECT request_id, explained FROM predictions WHERE request_id IN (?, ?)",
            [plain["request_id"], explained["request_id"]],
        ).fetchall()
    )
    assert logged == {plain["request_id"]: False, explained["request_id"]: True}


def test_explain_must_be_a_boolean(served: tuple[str, Server, Path]) -> None:
    _, server, _ = served
    with server.client() as client:
        response = client.post(
            "/v1/predict", json={"entities": {"customer": "100017"}, "explain": "yes"}
        )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["explain"]


def test_a_fallback_answer_is_not_explained_and_says_why(served: tuple[str, Server, Path]) -> None:
    _, server, _ = served
    with server.client() as client:  # an unknown customer: every online feature is missing
        answer = client.post(
            "/v1/predict", json={"entities": {"customer": "no-such-customer"}, "explain": True}
        ).json()
    assert answer["path"].startswith("fallback:")
    assert answer["explanation"] is None
    assert "did not answer" in answer["explanation_unavailable"]


def test_training_records_the_mean_contribution_beside_permutation_importance(
    served: tuple[str, Server, Path],
) -> None:
    _, _, spec = served
    from taxiway.models.registry import open_registry
    from taxiway.spec.project import Project

    registry = open_registry(None, state_dir=Project.load(spec).state_dir)
    try:
        metrics = registry.get("retail_churn", 1).metrics
    finally:
        registry.close()
    importance = metrics["contribution_importance"]
    assert set(importance) == set(metrics["importance"])
    assert all(value >= 0 for value in importance.values())
    assert list(importance.values()) == sorted(importance.values(), reverse=True)
