"""An imported pilot is served through a compiled form when one reproduces it exactly.

A data scientist hands over a pickle; when its library can score taxiway's encoding of the
rows with the pilot's own results, the pilot is served like a trained model (LightGBM's
single-row path, ONNX Runtime, a linear form), not through pandas and its Python code. A
pilot no form reproduces is served as it is, and the version says why.
"""

from __future__ import annotations

import importlib
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from lightgbm import LGBMClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tests.conftest import pilot_spec, retail_shop
from xgboost import XGBClassifier

from taxiway.models.artifact import load_model
from taxiway.models.training import train_model, training_set_path
from taxiway.spec.project import Project

COLUMNS = [
    "customer_orders__order_count_30d",
    "customer_orders__spend_30d",
    "customer_orders__order_count_7d",
]

CUSTOM = '''
import numpy as np


class Halves:
    """A pilot with its own code: no library can stand in for it."""

    feature_names_in_ = np.array({columns!r}, dtype=object)

    def predict_proba(self, frame):
        p = 1 / (1 + np.exp(-np.asarray(frame, dtype=float)[:, 0] / 10))
        return np.column_stack([1 - p, p])
'''


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = retail_shop(tmp_path_factory.mktemp("shop"), customers=300)
    train_model(Project.load(spec))  # builds the training set the pilots learn from
    return spec


@pytest.fixture(scope="module")
def table(shop: Path) -> pa.Table:
    return pq.read_table(training_set_path(Project.load(shop)))


def _frame(table: pa.Table) -> Any:
    return table.select(COLUMNS).to_pandas().fillna(0)


def _train_pilot(shop: Path, folder: Path, estimator: Any) -> tuple[dict[str, Any], Any]:
    path = folder / "pilot.pkl"
    path.write_bytes(pickle.dumps(estimator))
    spec = pilot_spec(shop, folder, path)
    result = train_model(Project.load(spec))
    return result.version.serving, load_model(result.version.artifact_dir)


@pytest.mark.parametrize(
    ("make", "forms"),
    [
        (lambda: LGBMClassifier(n_estimators=40, verbose=-1), {"lightgbm", "onnx"}),
        (lambda: XGBClassifier(n_estimators=40, max_depth=4), {"xgboost", "onnx"}),
        (lambda: RandomForestClassifier(n_estimators=20, max_depth=6), {"sklearn-forest", "onnx"}),
        (
            lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
            {"linear", "onnx"},
        ),
    ],
    ids=["lightgbm", "xgboost", "random-forest", "logistic-pipeline"],
)
def test_a_library_pilot_is_served_compiled_with_its_own_predictions(
    shop: Path, table: pa.Table, tmp_path: Path, make: Any, forms: set[str]
) -> None:
    frame = _frame(table)
    estimator = make().fit(frame, table.column("churned").to_numpy().astype(int))
    serving, model = _train_pilot(shop, tmp_path, estimator)

    assert serving["chosen"] in forms
    assert serving["from_pilot"] == "sklearn"
    assert "sklearn" not in {c["kind"] for c in serving["candidates"]}
    assert model.serving_kind == serving["chosen"]
    own = estimator.predict_proba(frame)[:, 1]
    rows = table.select(COLUMNS).slice(0, 200)
    assert np.allclose(model.predict_table(rows), own[:200], atol=1e-6)
    one = [model.predict_one(row) for row in rows.to_pylist()[:20]]
    assert np.allclose(one, own[:20], atol=1e-6)


@pytest.fixture
def custom_module(tmp_path: Path) -> Iterator[Any]:
    (tmp_path / "custom_pilot.py").write_text(CUSTOM.format(columns=COLUMNS))
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module("custom_pilot")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("custom_pilot", None)


def test_a_pilot_with_its_own_code_is_served_as_it_is_and_says_why(
    shop: Path, table: pa.Table, tmp_path: Path, custom_module: Any
) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    serving, model = _train_pilot(shop, folder, custom_module.Halves())
    assert serving["chosen"] == "pilot"
    assert serving["not_compiled"]
    assert model.serving_kind == "pilot"
    rows = table.select(COLUMNS).slice(0, 5)
    expected = custom_module.Halves().predict_proba(_frame(table).head(5))[:, 1]
    assert np.allclose(model.predict_table(rows), expected)
