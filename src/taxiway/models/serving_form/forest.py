"""The ``sklearn-forest`` form: a random forest's trees called directly, one after the other.

It exists because a forest's ``predict_proba`` starts a joblib dispatch per call, which costs
milliseconds for one row; calling each tree's ``tree_.predict`` is the same arithmetic in the
same order. The artifact is the pickled forest, written by the pickle builder in ``base``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from taxiway.models.serving_form.base import Scorer, _unpickle


def _is_forest(model: Any, task: str) -> bool:
    if not type(model).__module__.startswith("sklearn."):
        return False
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        ExtraTreesRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )

    kinds = (
        (RandomForestClassifier, ExtraTreesClassifier)
        if task == "classification"
        else (RandomForestRegressor, ExtraTreesRegressor)
    )
    if not isinstance(model, kinds) or getattr(model, "n_outputs_", 1) != 1:
        return False
    return task == "regression" or len(model.classes_) == 2


class _ForestScorer:
    """A scikit-learn random forest with its trees called one after the other.

    ``predict_proba`` starts a joblib dispatch per call (~5 ms a row for 100 trees); calling
    each ``tree_.predict`` directly is the same arithmetic in the same order.
    """

    kind = "sklearn-forest"

    def __init__(self, forest: Any, task: str) -> None:
        self._predictors = [tree.tree_.predict for tree in forest.estimators_]
        self._classification = task == "classification"

    def predict(self, X: np.ndarray) -> np.ndarray:
        rows = np.ascontiguousarray(X, dtype=np.float32)
        total = np.zeros(len(rows), dtype=np.float64)
        for predict in self._predictors:
            total += self._one_tree(predict(rows))
        return total / len(self._predictors)

    def predict_one(self, row: np.ndarray) -> float:
        x = row.astype(np.float32).reshape(1, -1)
        total = 0.0
        if self._classification:
            for predict in self._predictors:
                value = predict(x)[0]
                norm = value[0] + value[1]
                total += value[1] / (norm if norm != 0.0 else 1.0)
        else:
            for predict in self._predictors:
                total += predict(x)[0, 0]
        return float(total / len(self._predictors))

    def _one_tree(self, values: np.ndarray) -> np.ndarray:
        if not self._classification:
            return np.asarray(values[:, 0], dtype=np.float64)
        norm = values.sum(axis=1)
        norm[norm == 0.0] = 1.0
        return np.asarray(values[:, 1] / norm, dtype=np.float64)


def _load_forest(folder: Path, form: dict[str, Any], task: str) -> Scorer:
    return _ForestScorer(_unpickle(folder, form), task)
