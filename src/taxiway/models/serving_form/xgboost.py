"""The ``xgboost`` form: the Booster scored with ``inplace_predict``.

It exists because ``inplace_predict`` is XGBoost's own cheapest one-row call (no DMatrix is
built per call) and gives the Booster's exact numbers; the artifact is the Booster's JSON
(``model.xgb.json``). xgboost is an optional dependency, imported only when a model needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from taxiway.errors import ModelError
from taxiway.models.serving_form.base import Scorer


def _import_xgboost() -> Any:
    try:
        import xgboost
    except ImportError:
        raise ModelError(
            "this model needs xgboost, which is not installed",
            fix="pip install 'taxiway[xgboost]'",
        ) from None
    return xgboost


class _XGBoostScorer:
    """An XGBoost Booster through ``inplace_predict`` (no DMatrix per call)."""

    kind = "xgboost"

    def __init__(self, booster: Any) -> None:
        self._booster = booster
        self._predict = booster.inplace_predict

    def predict(self, X: np.ndarray) -> np.ndarray:
        scores = np.asarray(self._predict(X, validate_features=False), dtype=np.float64)
        if scores.ndim != 1:
            raise ModelError(
                "the XGBoost model has several outputs (multiclass?); taxiway scores "
                "binary classification and regression",
                fix="train binary:logistic or a regression objective",
            )
        return scores

    def predict_one(self, row: np.ndarray) -> float:
        return float(self._predict(row.reshape(1, -1), validate_features=False)[0])


def _build_xgboost(model: Any, task: str, folder: Path, n_features: int) -> dict[str, Any]:
    model.save_model(str(folder / "model.xgb.json"))
    return {"artifact": "model.xgb.json"}


def _load_xgboost(folder: Path, form: dict[str, Any], task: str) -> Scorer:
    xgboost = _import_xgboost()
    return _XGBoostScorer(xgboost.Booster(model_file=str(folder / form["artifact"])))
