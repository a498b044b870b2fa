"""Importing the data scientist's pilot: pickles, joblib, MLflow folders, and bad files."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from tests.conftest import require

from taxiway.errors import ModelError
from taxiway.models.pilot import load_pilot


def _frame(rows: int = 200) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"spend_30d": rng.normal(size=rows), "visits_7d": rng.normal(size=rows)})
    y = (frame["spend_30d"] + 0.3 * rng.normal(size=rows) > 0).astype(int).to_numpy()
    return frame, y


def _fitted() -> tuple[Any, pd.DataFrame]:
    frame, y = _frame()
    return make_pipeline(SimpleImputer(), LogisticRegression()).fit(frame, y), frame


def test_a_pickled_pipeline_keeps_its_feature_names_and_scores(tmp_path: Path) -> None:
    model, frame = _fitted()
    path = tmp_path / "pilot.pkl"
    path.write_bytes(pickle.dumps(model))
    pilot = load_pilot(path)
    assert pilot.features == ["spend_30d", "visits_7d"]
    table = pa.Table.from_pandas(frame[["visits_7d", "spend_30d"]])  # any column order
    expected = model.predict_proba(frame)[:, 1]
    assert np.allclose(pilot.predict_table(table, "classification"), expected)
    one = pilot.predict_one({"spend_30d": 1.0, "visits_7d": None}, "classification")
    assert 0.5 < one < 1


def test_joblib_and_a_features_sidecar(tmp_path: Path) -> None:
    frame, y = _frame()
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(frame.to_numpy(), y)
    path = tmp_path / "forest.joblib"
    joblib.dump(model, path)
    with pytest.raises(ModelError, match="does not record the feature names") as error:
        load_pilot(path)
    assert "forest.features.json" in str(error.value)
    (tmp_path / "forest.features.json").write_text('["spend_30d", "visits_7d"]')
    assert load_pilot(path).features == ["spend_30d", "visits_7d"]


@pytest.mark.parametrize("serialization", ["skops", "cloudpickle", "pickle"])
def test_an_mlflow_sklearn_folder_loads(tmp_path: Path, serialization: str) -> None:
    mlflow_sklearn = require("mlflow.sklearn", reason="the test saves the MLflow folder itself")
    from mlflow.models import infer_signature

    model, frame = _fitted()
    folder = tmp_path / "mlflow-model"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's own deprecation chatter
        mlflow_sklearn.save_model(
            model,
            folder,
            signature=infer_signature(frame),
            serialization_format=serialization,
            **({"skops_trusted_types": ["numpy.dtype"]} if serialization == "skops" else {}),
        )
    pilot = load_pilot(folder)
    assert pilot.flavour == "mlflow-sklearn"
    assert pilot.features == ["spend_30d", "visits_7d"]
    table = pa.Table.from_pandas(frame)
    assert np.allclose(
        pilot.predict_table(table, "classification"), model.predict_proba(frame)[:, 1]
    )


def test_an_mlflow_pyfunc_folder_loads_through_mlflow(tmp_path: Path) -> None:
    mlflow_pyfunc = require("mlflow.pyfunc", reason="python_function pilots load through MLflow")
    from mlflow.models import infer_signature

    class Scorer(mlflow_pyfunc.PythonModel):  # type: ignore[misc,name-defined]
        def predict(self, context: Any, model_input: pd.DataFrame) -> Any:
            return 1 / (1 + np.exp(-model_input["spend_30d"].to_numpy()))

    frame, _ = _frame()
    folder = tmp_path / "pyfunc-model"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow_pyfunc.save_model(folder, python_model=Scorer(), signature=infer_signature(frame))
        pilot = load_pilot(folder)
        scored = pilot.predict_table(pa.Table.from_pandas(frame), "classification")
    assert pilot.flavour == "mlflow-pyfunc"
    assert np.allclose(scored, 1 / (1 + np.exp(-frame["spend_30d"].to_numpy())))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("model.pkl", b"not a pickle", "cannot be unpickled"),
        ("model.onnx", b"", "expected a .pkl"),
    ],
)
def test_bad_pilot_files_are_errors_with_a_fix(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ModelError, match=message) as error:
        load_pilot(path)
    assert error.value.fix


def test_a_folder_without_mlmodel_is_not_an_mlflow_model(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no MLmodel file"):
        load_pilot(tmp_path)
