"""The serving form: the fastest form that reproduces the model's own predictions, or none."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from tests.conftest import require

from taxiway.errors import ModelError
from taxiway.models.serving_form import (
    SERVING_FILE,
    ServingFormReport,
    build_serving_form,
    load_serving_form,
    native_scorer,
)

REPEATS = 30
CATEGORY = 2  # the column holding integer category codes


def rows(n: int, seed: int, *, unseen_codes: bool = False) -> np.ndarray:
    """Six numeric columns with 10% missing, and category codes 0..4 in column 2."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 6))
    X[rng.random(X.shape) < 0.1] = np.nan
    X[:, CATEGORY] = rng.integers(0, 8 if unseen_codes else 5, n).astype(float)
    X[rng.random(n) < 0.05, CATEGORY] = np.nan
    return X


def binary_label(X: np.ndarray) -> np.ndarray:
    signal: np.ndarray = (
        np.nan_to_num(X[:, 0]) - 0.5 * np.nan_to_num(X[:, 1]) + (X[:, CATEGORY] == 3)
    )
    return (signal > 0.3).astype(float)


def value_label(X: np.ndarray) -> np.ndarray:
    value: np.ndarray = (
        3.0 * np.nan_to_num(X[:, 0]) + 2.0 * (X[:, CATEGORY] == 1) + np.nan_to_num(X[:, 3])
    )
    return value


X_TRAIN, X_VALID = rows(1500, 1), rows(400, 2)
X_FRESH = rows(300, 3, unseen_codes=True)


def assert_faithful_round_trip(
    estimator: Any, task: str, tmp_path: Path, *, categorical: tuple[int, ...] = ()
) -> ServingFormReport:
    """Build, load, and compare the loaded form with the native model on unseen rows."""
    report = build_serving_form(
        estimator,
        X_VALID,
        task=task,
        out_dir=tmp_path,
        categorical=categorical,
        repeats=REPEATS,
    )
    scorer = load_serving_form(tmp_path)
    assert scorer.kind == report.chosen
    assert report.candidates[0].faithful  # the model's own library, saved and loaded back
    native = native_scorer(estimator, task).predict(X_FRESH)
    served = scorer.predict(X_FRESH)
    assert served.dtype == np.float64
    assert served.shape == (len(X_FRESH),)
    assert np.max(np.abs(served - native)) <= 1e-6
    one_by_one = np.array([scorer.predict_one(row) for row in X_FRESH])
    np.testing.assert_allclose(one_by_one, served, rtol=0, atol=1e-12)
    assert all(isinstance(scorer.predict_one(row), float) for row in X_FRESH[:3])
    return report


def candidate(report: ServingFormReport, kind: str) -> Any:
    (found,) = [c for c in report.candidates if c.kind == kind]
    return found


def lightgbm_model(task: str, X: np.ndarray, y: np.ndarray, trees: int = 40) -> Any:
    params = {
        "objective": "binary" if task == "classification" else "regression",
        "verbosity": -1,
        "num_threads": 1,
        "min_data_in_leaf": 5,
        "seed": 0,
    }
    data = lightgbm.Dataset(X, label=y, categorical_feature=[CATEGORY])
    return lightgbm.train(params, data, num_boost_round=trees)


# --------------------------------------------------------------------------- each model family


def test_lightgbm_classifier_with_categories_and_missing_values(tmp_path: Path) -> None:
    booster = lightgbm_model("classification", X_TRAIN, binary_label(X_TRAIN))
    report = assert_faithful_round_trip(
        booster, "classification", tmp_path, categorical=(CATEGORY,)
    )
    assert [c.kind for c in report.candidates] == ["lightgbm", "onnx"]
    # onnxmltools converts the categorical splits: float32 rounding aside, ONNX agrees
    onnx = candidate(report, "onnx")
    assert onnx.error is None or "max |onnx - native|" in onnx.error
    assert onnx.max_abs_error is not None
    assert onnx.max_abs_error < 1e-5


def test_lightgbm_regressor(tmp_path: Path) -> None:
    booster = lightgbm_model("regression", X_TRAIN, value_label(X_TRAIN))
    assert_faithful_round_trip(booster, "regression", tmp_path)


def test_lightgbm_scikit_learn_wrapper_is_served_through_its_booster(tmp_path: Path) -> None:
    model = lightgbm.LGBMClassifier(n_estimators=20, verbosity=-1, n_jobs=1)
    model.fit(X_TRAIN, binary_label(X_TRAIN))
    report = assert_faithful_round_trip(model, "classification", tmp_path)
    assert report.candidates[0].kind == "lightgbm"
    proba = model.predict_proba(X_FRESH)
    assert isinstance(proba, np.ndarray)
    wrapper = proba[:, 1]
    assert np.max(np.abs(load_serving_form(tmp_path).predict(X_FRESH) - wrapper)) <= 1e-6


def test_a_lightgbm_model_stopped_early_is_served_with_its_best_iteration(
    tmp_path: Path,
) -> None:
    booster = lightgbm_model("regression", X_TRAIN, value_label(X_TRAIN), trees=30)
    booster.best_iteration = 7  # what early stopping leaves: predict() uses 7 trees
    report = assert_faithful_round_trip(booster, "regression", tmp_path)
    served = load_serving_form(tmp_path).predict(X_FRESH)
    assert np.abs(served - booster.predict(X_FRESH)).max() <= 1e-6
    assert np.abs(served - booster.predict(X_FRESH, num_iteration=30)).max() > 1e-3
    assert candidate(report, "onnx").max_abs_error < 1e-4  # converted from the same 7 trees


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_xgboost_booster(task: str, tmp_path: Path) -> None:
    xgboost = require("xgboost", reason="XGBoost boosters are served through their own form")
    label = binary_label(X_TRAIN) if task == "classification" else value_label(X_TRAIN)
    objective = "binary:logistic" if task == "classification" else "reg:squarederror"
    booster = xgboost.train(
        {"objective": objective, "max_depth": 4, "nthread": 1, "seed": 0},
        xgboost.DMatrix(X_TRAIN, label=label, missing=np.nan),
        30,
    )
    report = assert_faithful_round_trip(booster, task, tmp_path)
    assert [c.kind for c in report.candidates] == ["xgboost", "onnx"]


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_random_forest_with_missing_values(task: str, tmp_path: Path) -> None:
    if task == "classification":
        forest: Any = RandomForestClassifier(n_estimators=15, max_depth=6, random_state=0)
        forest.fit(X_TRAIN, binary_label(X_TRAIN))
    else:
        forest = RandomForestRegressor(n_estimators=15, max_depth=6, random_state=0)
        forest.fit(X_TRAIN, value_label(X_TRAIN))
    report = assert_faithful_round_trip(forest, task, tmp_path)
    assert [c.kind for c in report.candidates] == ["sklearn", "sklearn-forest", "onnx"]
    # calling the trees directly is the forest's own arithmetic, not an approximation
    assert candidate(report, "sklearn-forest").max_abs_error == 0.0


def test_logistic_pipeline_of_imputer_scaler_and_regression(tmp_path: Path) -> None:
    pipeline = Pipeline(
        [
            ("impute", SimpleImputer(strategy="median")),
            ("scale", StandardScaler()),
            ("model", LogisticRegression(max_iter=500)),
        ]
    ).fit(X_TRAIN, binary_label(X_TRAIN))
    report = assert_faithful_round_trip(pipeline, "classification", tmp_path)
    assert [c.kind for c in report.candidates] == ["sklearn", "linear", "onnx"]
    assert candidate(report, "linear").faithful


def test_logistic_pipeline_with_one_hot_categories_unseen_codes_and_missing(
    tmp_path: Path,
) -> None:
    numeric = [i for i in range(X_TRAIN.shape[1]) if i != CATEGORY]
    prepare = ColumnTransformer(
        [
            (
                "numeric",
                Pipeline([("i", SimpleImputer(strategy="mean")), ("s", StandardScaler())]),
                numeric,
            ),
            (
                "categorical",
                Pipeline(
                    [
                        ("i", SimpleImputer(strategy="constant", fill_value=-1.0)),
                        ("o", OneHotEncoder(handle_unknown="ignore")),
                    ]
                ),
                [CATEGORY],
            ),
        ]
    )
    pipeline = Pipeline([("prepare", prepare), ("model", LogisticRegression(max_iter=500))])
    pipeline.fit(X_TRAIN, binary_label(X_TRAIN))
    report = assert_faithful_round_trip(
        pipeline, "classification", tmp_path, categorical=(CATEGORY,)
    )
    assert candidate(report, "linear").faithful
    assert report.chosen != "sklearn"  # a folded or compiled form beats predict_proba


class Threshold:
    """A model no converter knows: anything with predict_proba is still served."""

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-np.nan_to_num(X[:, 0])))
        return np.column_stack([1.0 - p, p])


def test_a_form_that_cannot_be_built_is_listed_with_its_reason(tmp_path: Path) -> None:
    report = build_serving_form(
        Threshold(), X_VALID, task="classification", out_dir=tmp_path, repeats=REPEATS
    )
    onnx = candidate(report, "onnx")
    assert not onnx.faithful
    assert onnx.error is not None
    assert onnx.error.startswith("could not build")
    assert (onnx.max_abs_error, onnx.p50_us) == (None, None)
    assert report.chosen == "sklearn"
    expected = Threshold().predict_proba(X_FRESH)[:, 1]
    np.testing.assert_array_equal(load_serving_form(tmp_path).predict(X_FRESH), expected)


class OnlyBatches(Threshold):
    """Scores a matrix but fails on a single row."""

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if len(X) == 1:
            raise ValueError("needs at least two rows")
        return super().predict_proba(X)


def test_when_no_form_scores_one_row_the_build_fails_with_every_reason(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="sklearn: could not score one row") as caught:
        build_serving_form(
            OnlyBatches(), X_VALID, task="classification", out_dir=tmp_path, repeats=5
        )
    assert "onnx: could not build" in str(caught.value)
    assert not (tmp_path / SERVING_FILE).exists()


# --------------------------------------------------------------------------- choosing


def test_float32_onnx_is_rejected_when_rounding_moves_a_split(tmp_path: Path) -> None:
    # 1.0 and 1.0 + 1e-9 are one float32 number: the split between them vanishes in ONNX
    rng = np.random.default_rng(7)
    n = 2000
    X = rng.standard_normal((n, 3))
    X[:, 0] = np.where(rng.random(n) < 0.5, 1.0, 1.0 + 1e-9)
    y = (X[:, 0] > 1.0).astype(float)
    booster = lightgbm.train(
        {"objective": "binary", "verbosity": -1, "num_threads": 1, "seed": 0},
        lightgbm.Dataset(X, label=y),
        num_boost_round=10,
    )
    report = build_serving_form(
        booster, X[:500], task="classification", out_dir=tmp_path, repeats=REPEATS
    )
    onnx = candidate(report, "onnx")
    assert not onnx.faithful
    assert onnx.max_abs_error is not None
    assert onnx.max_abs_error > 0.1
    assert onnx.error is not None
    assert "max |onnx - native|" in onnx.error
    assert report.chosen == "lightgbm"
    served = load_serving_form(tmp_path).predict(X[:500])
    np.testing.assert_array_equal(served, booster.predict(X[:500]))


def test_the_report_lists_every_candidate_with_numbers_and_picks_the_fastest_faithful(
    tmp_path: Path,
) -> None:
    booster = lightgbm_model("classification", X_TRAIN, binary_label(X_TRAIN), trees=10)
    report = build_serving_form(
        booster,
        X_VALID,
        task="classification",
        out_dir=tmp_path,
        categorical=[CATEGORY],
        repeats=REPEATS,
    )
    for c in report.candidates:
        assert c.p50_us is not None
        assert c.p99_us is not None
        assert c.max_abs_error is not None
        assert 0 < c.p50_us <= c.p99_us
        assert c.faithful == (c.max_abs_error <= 1e-6)
        assert (c.error is None) == c.faithful
    faithful = [c for c in report.candidates if c.faithful]
    assert report.chosen == min(faithful, key=lambda c: c.p50_us or 0.0).kind
    card = json.loads((tmp_path / SERVING_FILE).read_text())
    assert card["chosen"] == report.chosen
    assert (card["task"], card["n_features"], card["categorical"]) == (
        "classification",
        X_VALID.shape[1],
        [CATEGORY],
    )
    assert card["report"] == report.as_dict()
    assert (tmp_path / card["form"]["artifact"]).is_file()


def test_a_rebuilt_folder_holds_only_the_new_form(tmp_path: Path) -> None:
    forest = RandomForestRegressor(n_estimators=3, random_state=0).fit(
        X_TRAIN, value_label(X_TRAIN)
    )
    build_serving_form(forest, X_VALID, task="regression", out_dir=tmp_path, repeats=5)
    assert (tmp_path / "model.pkl").exists()
    booster = lightgbm_model("regression", X_TRAIN, value_label(X_TRAIN), trees=5)
    build_serving_form(booster, X_VALID, task="regression", out_dir=tmp_path, repeats=5)
    card = json.loads((tmp_path / SERVING_FILE).read_text())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [SERVING_FILE, card["form"]["artifact"]]
    )


def test_a_shared_lightgbm_scorer_gives_each_thread_its_own_answers() -> None:
    # its one-row path writes into buffers it keeps: they must not be shared mid-call
    booster = lightgbm_model("classification", X_TRAIN, binary_label(X_TRAIN), trees=10)
    scorer = native_scorer(booster, "classification")
    expected = scorer.predict(X_FRESH)
    wrong: list[int] = []

    def score(offset: int) -> None:
        for _ in range(20):
            for i in range(offset, len(X_FRESH), 4):
                if abs(scorer.predict_one(X_FRESH[i]) - expected[i]) > 1e-12:
                    wrong.append(i)

    threads = [threading.Thread(target=score, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


# --------------------------------------------------------------------------- bad folders and models


def test_a_folder_without_serving_json_is_a_model_error_with_a_fix(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"no serving\.json") as caught:
        load_serving_form(tmp_path)
    assert caught.value.fix


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[]",
        '{"format": 1, "chosen": "lightgbm"}',
        '{"format": 99, "chosen": "lightgbm", "task": "regression", "form": {}}',
        '{"format": 1, "chosen": "tensorflow", "task": "regression", "form": {}}',
        '{"format": 1, "chosen": "lightgbm", "task": "regression", '
        '"form": {"artifact": "model.lgb.txt"}}',
    ],
    ids=["not-json", "not-an-object", "keys-missing", "newer-format", "unknown-kind", "no-model"],
)
def test_a_corrupt_serving_json_is_a_model_error_with_a_fix(tmp_path: Path, content: str) -> None:
    (tmp_path / SERVING_FILE).write_text(content)
    with pytest.raises(ModelError) as caught:
        load_serving_form(tmp_path)
    assert caught.value.fix


def test_a_truncated_model_file_is_a_model_error(tmp_path: Path) -> None:
    booster = lightgbm_model("regression", X_TRAIN, value_label(X_TRAIN), trees=5)
    build_serving_form(booster, X_VALID, task="regression", out_dir=tmp_path, repeats=5)
    artifact = tmp_path / json.loads((tmp_path / SERVING_FILE).read_text())["form"]["artifact"]
    artifact.write_bytes(artifact.read_bytes()[:50])
    with pytest.raises(ModelError, match="cannot be loaded"):
        load_serving_form(tmp_path)


def test_without_xgboost_an_xgboost_model_is_a_model_error_naming_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "xgboost", None)  # import xgboost now fails
    card = {"format": 1, "chosen": "xgboost", "task": "regression", "form": {"artifact": "m"}}
    (tmp_path / SERVING_FILE).write_text(json.dumps(card))
    with pytest.raises(ModelError, match="xgboost") as caught:
        load_serving_form(tmp_path)
    assert caught.value.fix == "pip install 'taxiway[xgboost]'"

    booster_class = type("Booster", (), {"__module__": "xgboost.core"})
    with pytest.raises(ModelError, match="xgboost"):
        native_scorer(booster_class(), "classification")


def test_models_taxiway_does_not_score_are_refused_up_front(tmp_path: Path) -> None:
    three_classes = LogisticRegression().fit(np.arange(30.0).reshape(-1, 1), [0, 1, 2] * 10)
    with pytest.raises(ModelError, match="3 classes"):
        native_scorer(three_classes, "classification")
    with pytest.raises(ModelError, match="predict_proba"):
        native_scorer(object(), "classification")
    with pytest.raises(ModelError, match="unknown task"):
        native_scorer(Threshold(), "ranking")
    with pytest.raises(ModelError, match="expects 6 features"):
        build_serving_form(
            lightgbm_model("regression", X_TRAIN, value_label(X_TRAIN), trees=2),
            X_VALID[:, :4],
            task="regression",
            out_dir=tmp_path,
        )
