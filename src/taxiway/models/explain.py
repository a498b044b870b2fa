"""Why one prediction came out as it did: each input's additive contribution to the raw score.

Definition. For an encoded row ``x`` the model's *raw score* ``f(x)`` (the log-odds of a
classifier, the value of a regression) is written as ``bias + sum_j phi_j(x)``, one term per
model input:

- LightGBM and XGBoost (``method: tree_shap``): ``phi_j`` are the trees' SHAP values (TreeSHAP,
  the libraries' own ``pred_contrib`` / ``pred_contribs``); ``bias`` is the expected raw score
  over the training rows.
- a linear model (``method: linear``, the ``linear`` serving form): ``phi_j`` is the input's
  exact term, its weight times its value (its imputed term when it is missing), and for a
  categorical input the weight of its category, its one-hot block summed back into one term;
  ``bias`` is the intercept with the scalers' constants folded in.

The encoder (:mod:`taxiway.models.encoding`) gives each model input one column, so a term is a
spec feature's contribution. The terms are computed from the very trees or weights the served
form scores with (when ONNX serves a booster, from the booster it was checked against), and the
raw score is computed apart from them, so ``bias + sum(contributions) == raw_score`` is a check,
not an identity. Random forests and pilots no form reproduces have no explainer (``None``).

>>> import numpy as np, tempfile
>>> from pathlib import Path
>>> from sklearn.linear_model import LogisticRegression
>>> from taxiway.models.serving_form import build_serving_form
>>> X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [3.0, 0.0]])
>>> model = LogisticRegression().fit(X, [0, 0, 1, 1])
>>> with tempfile.TemporaryDirectory() as folder:
...     _ = build_serving_form(model, X, task="classification", out_dir=Path(folder))
...     explainer = load_explainer(Path(folder), ["tenure", "vip"])
>>> explanation = explainer.explain_row(np.array([3.0, 0.0]))
>>> list(explanation.contributions)  # the largest |contribution| first
['tenure', 'vip']
>>> total = explanation.bias + sum(explanation.contributions.values())
>>> abs(total - explanation.raw_score) < 1e-12
True
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from taxiway.errors import ModelError
from taxiway.models.encoding import FeatureEncoder

__all__ = ["Explainer", "Explanation", "load_explainer", "load_model_explainer"]

_SERVING_FILE = "serving.json"


@dataclass(frozen=True)
class Explanation:
    """One prediction's raw score, the bias and each input's contribution (largest first)."""

    raw_score: float
    bias: float
    contributions: dict[str, float]
    method: str  # tree_shap | linear
    scale: str  # log_odds | value

    def body(self) -> dict[str, Any]:
        """The JSON form an answer carries under ``explanation``."""
        return {
            "method": self.method,
            "scale": self.scale,
            "raw_score": self.raw_score,
            "bias": self.bias,
            "contributions": self.contributions,
        }


class _Terms(Protocol):
    """A model's contributions: ``terms(X)`` is ``(n, inputs + 1)``, the bias last."""

    method: str

    def terms(self, X: np.ndarray) -> np.ndarray: ...

    def raw(self, X: np.ndarray) -> np.ndarray: ...


class Explainer:
    """A model version's contributions, named by its inputs (one column each)."""

    def __init__(self, terms: _Terms, features: Sequence[str], *, task: str) -> None:
        self._terms = terms
        self.features = tuple(features)
        self.method = terms.method
        self.scale = "log_odds" if task == "classification" else "value"
        self.encoder: FeatureEncoder | None = None

    def explain_row(self, row: np.ndarray) -> Explanation:
        """The explanation of one encoded row."""
        X = np.ascontiguousarray(row, dtype=np.float64).reshape(1, -1)
        terms = self._terms.terms(X)[0]
        raw = float(self._terms.raw(X)[0])
        named = sorted(
            zip(self.features, terms[:-1].tolist(), strict=True), key=lambda kv: -abs(kv[1])
        )
        return Explanation(raw, float(terms[-1]), dict(named), self.method, self.scale)

    def explain(self, values: Mapping[str, Any]) -> Explanation:
        """The explanation of one request's inputs (name → raw value), encoded as served."""
        if self.encoder is None:
            raise ModelError(
                "this explainer has no encoder", fix="load it with load_model_explainer"
            )
        return self.explain_row(self.encoder.encode_one(values))

    def mean_abs(self, X: np.ndarray) -> dict[str, float]:
        """Each input's mean |contribution| over the encoded rows ``X`` (global importance)."""
        if len(X) == 0:
            return dict.fromkeys(self.features, 0.0)
        terms = self._terms.terms(np.ascontiguousarray(X, dtype=np.float64))[:, :-1]
        means = np.abs(terms).mean(axis=0).tolist()
        return dict(sorted(zip(self.features, means, strict=True), key=lambda kv: -kv[1]))


def load_explainer(serving_dir: Path, features: Sequence[str]) -> Explainer | None:
    """The explainer of the serving form in ``serving_dir`` (``serving.json``), or None when
    its model has no exact contributions (a random forest)."""
    try:
        card = json.loads((serving_dir / _SERVING_FILE).read_text())
    except (OSError, ValueError) as error:
        raise ModelError(
            f"{serving_dir / _SERVING_FILE} cannot be read: {error}",
            fix="rebuild the serving form (train the model again)",
        ) from None
    explain = card.get("explain")
    if explain is None and "explain" not in card and card["chosen"] in _BACKENDS:
        explain = {"kind": card["chosen"], "form": card["form"]}  # built before `explain`
    if not explain:
        return None
    terms = _BACKENDS[explain["kind"]](serving_dir / explain["form"]["artifact"])
    if int(card.get("n_features", len(features))) != len(features):
        raise ModelError(
            f"the serving form has {card['n_features']} inputs, the model {len(features)}",
            fix="retrain the model: its folder is inconsistent",
        )
    return Explainer(terms, features, task=str(card["task"]))


def load_model_explainer(model_folder: Path) -> Explainer | None:
    """The explainer of the model version saved in ``model_folder`` (with its encoder, so it
    explains requests), or None when it has none."""
    serving = model_folder / "serving"
    encoder_file = model_folder / "encoder.json"
    if not (serving / _SERVING_FILE).exists() or not encoder_file.exists():
        return None  # a pilot no form reproduces
    encoder = FeatureEncoder.from_dict(json.loads(encoder_file.read_text()))
    explainer = load_explainer(serving, encoder.features)
    if explainer is not None:
        explainer.encoder = encoder
    return explainer


class _LightGBMTerms:
    method = "tree_shap"

    def __init__(self, path: Path) -> None:
        import lightgbm

        self._booster = lightgbm.Booster(model_file=str(path))

    def terms(self, X: np.ndarray) -> np.ndarray:
        out = self._booster.predict(X, pred_contrib=True, num_threads=1)
        return np.asarray(out, dtype=np.float64)

    def raw(self, X: np.ndarray) -> np.ndarray:
        out = self._booster.predict(X, raw_score=True, num_threads=1)
        return np.asarray(out, dtype=np.float64)


class _XGBoostTerms:
    method = "tree_shap"

    def __init__(self, path: Path) -> None:
        import xgboost

        self._xgboost = xgboost
        self._booster = xgboost.Booster(model_file=str(path))
        self._booster.set_param({"nthread": 1})

    def terms(self, X: np.ndarray) -> np.ndarray:
        matrix = self._xgboost.DMatrix(X, missing=math.nan, nthread=1)
        # a pilot's booster may carry feature names; the served matrix's columns are in its order
        out = self._booster.predict(matrix, pred_contribs=True, validate_features=False)
        return np.asarray(out, dtype=np.float64)

    def raw(self, X: np.ndarray) -> np.ndarray:
        out = self._booster.inplace_predict(X, predict_type="margin", validate_features=False)
        return np.asarray(out, dtype=np.float64)


class _LinearTerms:
    method = "linear"

    def __init__(self, path: Path) -> None:
        from taxiway.models.serving_form.linear import _LinearScorer

        self._scorer = _LinearScorer(json.loads(path.read_text()))

    def terms(self, X: np.ndarray) -> np.ndarray:
        out = np.empty((X.shape[0], X.shape[1] + 1), dtype=np.float64)
        for i, row in enumerate(X):
            out[i, :-1], out[i, -1] = self._scorer.terms(row)
        return out

    def raw(self, X: np.ndarray) -> np.ndarray:
        return np.array([self._scorer.raw_one(row) for row in X], dtype=np.float64)


_BACKENDS: dict[str, Any] = {
    "lightgbm": _LightGBMTerms,
    "xgboost": _XGBoostTerms,
    "linear": _LinearTerms,
}
