"""The ``sklearn`` form: the pickled estimator's own ``predict_proba`` / ``predict``.

It exists as the form every scikit-learn estimator or pipeline has, so any model can be
served even when no faster form reproduces it; it is also the native reference a
scikit-learn model's other forms are checked against.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from taxiway.errors import ModelError
from taxiway.models.serving_form.base import Scorer, _unpickle


class _SklearnScorer:
    """Any estimator with ``predict_proba`` (classification) or ``predict`` (regression)."""

    kind = "sklearn"

    def __init__(self, estimator: Any, task: str) -> None:
        method = "predict_proba" if task == "classification" else "predict"
        if not callable(getattr(estimator, method, None)):
            raise ModelError(
                f"{type(estimator).__name__} has no {method}(), which {task} needs",
                fix="pass a fitted estimator (or pipeline) with that method",
            )
        classes = getattr(estimator, "classes_", None)
        if task == "classification" and classes is not None and len(classes) != 2:
            raise ModelError(
                f"{type(estimator).__name__} has {len(classes)} classes; taxiway scores "
                "binary classification",
                fix="train on a 0/1 label",
            )
        self._estimator = estimator
        self._call = getattr(estimator, method)
        self._classification = task == "classification"

    def predict(self, X: np.ndarray) -> np.ndarray:
        scores = np.asarray(self._call(X), dtype=np.float64)
        return scores[:, 1] if self._classification else scores.ravel()

    def predict_one(self, row: np.ndarray) -> float:
        scores = self._call(row.reshape(1, -1))
        return float(scores[0, 1] if self._classification else np.ravel(scores)[0])


def _load_sklearn(folder: Path, form: dict[str, Any], task: str) -> Scorer:
    return _SklearnScorer(_unpickle(folder, form), task)
