"""Feature contributions: they add up to the served form's raw score, per algorithm."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from taxiway.models.algorithms import fit
from taxiway.models.explain import load_explainer
from taxiway.models.serving_form import build_serving_form, load_serving_form

FEATURES = ["tenure", "spend", "visits", "plan"]  # plan: categorical (codes 0, 1, 2)
TOLERANCE = {"lightgbm": 1e-9, "xgboost": 1e-4, "logistic": 1e-9}  # xgboost adds in float32


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(600, 4))
    X[:, 3] = rng.integers(0, 3, 600)
    X[rng.random(X.shape) < 0.1] = np.nan
    signal = np.nan_to_num(X[:, 0]) + 0.5 * np.nan_to_num(X[:, 3]) + rng.normal(size=600)
    return X, (signal > 0.5).astype(np.float64)


@pytest.fixture(scope="module", params=["lightgbm", "xgboost", "logistic"])
def built(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    algorithm = str(request.param)
    X, y = _data()
    model = fit(algorithm, "classification", X, y, categorical=[3], params={}, seed=0)
    folder = tmp_path_factory.mktemp(algorithm)
    build_serving_form(model, X[:200], task="classification", out_dir=folder, categorical=[3])
    return algorithm, folder


rows = arrays(
    np.float64,
    (4,),
    elements=st.one_of(st.floats(-5, 5), st.just(math.nan), st.sampled_from([0.0, 1.0, 2.0])),
)


@given(row=rows)
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_contributions_add_up_to_the_raw_score_the_served_form_scores(
    built: tuple[str, Path], row: np.ndarray
) -> None:
    algorithm, folder = built
    explainer = load_explainer(folder, FEATURES)
    assert explainer is not None
    explanation = explainer.explain_row(row)
    total = explanation.bias + sum(explanation.contributions.values())
    assert total == pytest.approx(explanation.raw_score, abs=TOLERANCE[algorithm])
    served = load_serving_form(folder).predict_one(row)
    assert 1 / (1 + math.exp(-explanation.raw_score)) == pytest.approx(served, abs=1e-6)


def test_a_linear_models_contribution_is_its_weight_times_the_value(tmp_path: Path) -> None:
    X = np.array([[0.0, 1.0], [1.0, 3.0], [2.0, 2.0], [3.0, 0.0]])
    model = fit("logistic", "classification", X, np.array([0.0, 0.0, 1.0, 1.0]), params={})
    build_serving_form(model, X, task="classification", out_dir=tmp_path)
    explainer = load_explainer(tmp_path, ["a", "b"])
    assert explainer is not None
    final = model.steps[-1][1]
    scaler = model.steps[0][1].transformers_[0][1].steps[1][1]
    row = np.array([2.5, 1.0])
    got = explainer.explain_row(row).contributions
    want = final.coef_[0] * (row - scaler.mean_) / scaler.scale_
    # the scaler's constant (-w m / s) is folded into the bias, so a term is w x / s
    assert got["a"] == pytest.approx(final.coef_[0][0] * row[0] / scaler.scale_[0], abs=1e-12)
    assert got["b"] == pytest.approx(final.coef_[0][1] * row[1] / scaler.scale_[1], abs=1e-12)
    assert sum(got.values()) - sum(want) == pytest.approx(
        float(np.sum(final.coef_[0] * scaler.mean_ / scaler.scale_)), abs=1e-12
    )


def test_a_booster_served_as_onnx_is_explained_by_the_booster_it_was_checked_against(
    built: tuple[str, Path],
) -> None:
    algorithm, folder = built
    card = json.loads((folder / "serving.json").read_text())
    kind = "linear" if algorithm == "logistic" else algorithm
    assert card["explain"]["kind"] == kind
    assert (folder / card["explain"]["form"]["artifact"]).exists()


def test_a_random_forest_has_no_explainer(tmp_path: Path) -> None:
    X, y = _data()
    model = fit("random_forest", "classification", X[:300], y[:300], params={"n_estimators": 5})
    build_serving_form(model, np.nan_to_num(X[:50]), task="classification", out_dir=tmp_path)
    assert load_explainer(tmp_path, FEATURES) is None


def test_a_folder_built_before_explanations_is_explained_by_its_chosen_form(
    built: tuple[str, Path], tmp_path: Path
) -> None:
    _, folder = built
    card = json.loads((folder / "serving.json").read_text())
    if card["chosen"] == "onnx":
        pytest.skip("an older ONNX folder holds no booster to explain with")
    del card["explain"]
    for item in folder.iterdir():
        (tmp_path / item.name).write_bytes(item.read_bytes())
    (tmp_path / "serving.json").write_text(json.dumps(card))
    assert load_explainer(tmp_path, FEATURES) is not None


def test_global_importance_is_the_mean_absolute_contribution(built: tuple[str, Path]) -> None:
    _, folder = built
    explainer = load_explainer(folder, FEATURES)
    assert explainer is not None
    X, _ = _data(seed=1)
    importance = explainer.mean_abs(X[:100])
    by_hand = {
        name: float(np.mean([abs(explainer.explain_row(r).contributions[name]) for r in X[:100]]))
        for name in FEATURES
    }
    assert importance == pytest.approx(by_hand, rel=1e-9)
    assert list(importance.values()) == sorted(importance.values(), reverse=True)
