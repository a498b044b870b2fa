"""The ``linear`` form: imputers, scalers, one-hot encoders and a linear model folded into weights.

It exists because a scikit-learn pipeline around a linear model spends most of a one-row call
in the pipeline's machinery, while the score itself is a dot product: the pipeline is folded
into a bias, numeric weights and per-category weights (``model.linear.json``), scored with
numpy. A pipeline holding a step the fold does not reproduce is not given this form.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from taxiway.models.serving_form.base import Scorer


class _LinearScorer:
    """A linear model and its imputers, scalers and one-hot encoders, folded into weights.

    The score is ``bias + W . x`` over the numeric inputs (a missing one adds its imputed
    contribution instead) plus one looked-up weight per categorical input, then the logistic
    link for classification.
    """

    kind = "linear"

    def __init__(self, form: dict[str, Any]) -> None:
        self._logistic = form["link"] == "logistic"
        self._bias = float(form["bias"])
        numeric = form["numeric"]
        self._columns = np.array(numeric["columns"], dtype=np.intp)
        self._weights = np.array(numeric["weights"], dtype=np.float64)
        self._when_missing = np.array(_floats(numeric["when_missing"]), dtype=np.float64)
        self._categorical = [
            (
                int(item["column"]),
                {float(code): float(weight) for code, weight in item["weights"]},
                math.nan if item["missing_as"] is None else float(item["missing_as"]),
                float(item["missing_weight"]),
            )
            for item in form["categorical"]
        ]

    def predict(self, X: np.ndarray) -> np.ndarray:
        x = X[:, self._columns]
        missing = np.isnan(x)
        z = self._bias + np.where(missing, 0.0, x) @ self._weights
        z += np.where(missing, self._when_missing, 0.0).sum(axis=1)
        for column, weights, missing_as, missing_weight in self._categorical:
            values = X[:, column].copy()
            values[np.isnan(values)] = missing_as
            part = np.where(np.isnan(values), missing_weight, 0.0)
            for code, weight in weights.items():
                part[values == code] = weight
            z += part
        if self._logistic:
            return _logistic(z)
        return np.asarray(z, dtype=np.float64)

    def predict_one(self, row: np.ndarray) -> float:
        z = self.raw_one(row)
        return _logistic_one(z) if self._logistic else z

    def raw_one(self, row: np.ndarray) -> float:
        """The score of one row before the link (log-odds of a classifier)."""
        x = row[self._columns]
        missing = np.isnan(x)
        z = self._bias + float(np.where(missing, 0.0, x) @ self._weights)
        if missing.any():
            z += float(self._when_missing[missing].sum())
        for column, weights, missing_as, missing_weight in self._categorical:
            value = float(row[column])
            if value != value:
                value = missing_as
            z += missing_weight if value != value else weights.get(value, 0.0)
        return z

    def terms(self, row: np.ndarray) -> tuple[np.ndarray, float]:
        """Each input column's exact term of the raw score (the log-odds of a classifier),
        and the bias: ``bias + terms.sum()`` is the score before the link.

        A numeric input adds its weight times its value (its imputed term when missing); a
        categorical input adds its category's weight (a one-hot block is one input here).
        """
        out = np.zeros(len(row), dtype=np.float64)
        x = row[self._columns]
        missing = np.isnan(x)
        out[self._columns] = np.where(missing, self._when_missing, x * self._weights)
        for column, weights, missing_as, missing_weight in self._categorical:
            value = float(row[column])
            if value != value:
                value = missing_as
            out[column] += missing_weight if value != value else weights.get(value, 0.0)
        return out, self._bias


def _logistic_one(z: float) -> float:
    """The logistic function of one raw score, with no overflow."""
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _logistic(z: np.ndarray) -> np.ndarray:
    """The logistic function of ``z`` as :meth:`_LinearScorer.predict_one` computes it, with no
    overflow for a large ``|z|``.

    >>> _logistic(np.array([-1000.0, -1.0, 0.0, 1.0, 1000.0])).round(6).tolist()
    [0.0, 0.268941, 0.5, 0.731059, 1.0]
    """
    e = np.exp(-np.abs(z))
    return np.asarray(np.where(z >= 0.0, 1.0 / (1.0 + e), e / (1.0 + e)), dtype=np.float64)


@dataclass
class _Feature:
    """One column on its way through a pipeline, as a function of one input column.

    Numeric: ``a * x + c``, or ``when_missing`` if x is missing. One-hot: 1 when the input
    (``when_missing`` if missing) equals ``category``, else 0.
    """

    source: int
    a: float = 1.0
    c: float = 0.0
    when_missing: float = math.nan
    category: float | None = None


class _NotLinear(ValueError):
    """The pipeline holds a step the linear form does not reproduce."""


def _is_linear_pipeline(model: Any) -> bool:
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    return type(final).__name__ in _LINEAR_MODELS and type(final).__module__.startswith("sklearn.")


_LINEAR_MODELS = ("LogisticRegression", "LinearRegression", "Ridge", "Lasso", "ElasticNet")


def _linearize(model: Any, task: str, n_features: int) -> dict[str, Any]:
    steps = [step for _, step in model.steps] if hasattr(model, "steps") else [model]
    features = [_Feature(source=j) for j in range(n_features)]
    for step in steps[:-1]:
        features = _through(step, features)
    final = steps[-1]
    name = type(final).__name__
    coef = np.asarray(final.coef_, dtype=np.float64)
    if name == "LogisticRegression":
        if task != "classification" or coef.shape[0] != 1 or len(final.classes_) != 2:
            raise _NotLinear("only a binary LogisticRegression is folded")
    elif task != "regression" or coef.ndim != 1:
        raise _NotLinear(f"{name} must be a single-output regressor")
    coef = coef.ravel()
    if len(coef) != len(features):
        raise _NotLinear(f"{len(coef)} coefficients for {len(features)} columns")
    bias = float(np.ravel(final.intercept_)[0]) if np.size(final.intercept_) else 0.0
    weights: dict[int, float] = {}
    present: dict[int, float] = {}
    absent: dict[int, float] = {}
    categorical: dict[int, dict[str, Any]] = {}
    for w, feature in zip(coef.tolist(), features, strict=True):
        j = feature.source
        if feature.category is None:
            weights[j] = weights.get(j, 0.0) + w * feature.a
            present[j] = present.get(j, 0.0) + w * feature.c
            absent[j] = absent.get(j, 0.0) + w * feature.when_missing
            continue
        entry = categorical.setdefault(
            j, {"column": j, "codes": {}, "missing_as": feature.when_missing, "nan": 0.0}
        )
        if math.isnan(feature.category):
            entry["nan"] += w
        else:
            entry["codes"][feature.category] = entry["codes"].get(feature.category, 0.0) + w
    bias += sum(present.values())
    columns = sorted(weights)
    return {
        "link": "logistic" if task == "classification" else "identity",
        "bias": bias,
        "numeric": {
            "columns": columns,
            "weights": [weights[j] for j in columns],
            "when_missing": [_nullable(absent[j] - present[j]) for j in columns],
        },
        "categorical": [
            {
                "column": j,
                "weights": sorted(entry["codes"].items()),
                "missing_as": _nullable(entry["missing_as"]),
                "missing_weight": entry["nan"],
            }
            for j, entry in sorted(categorical.items())
        ],
    }


def _through(step: Any, features: list[_Feature]) -> list[_Feature]:
    name = type(step).__name__
    if name == "Pipeline":
        for _, inner in step.steps:
            features = _through(inner, features)
        return features
    if name == "ColumnTransformer":
        out: list[_Feature] = []
        for _, transformer, columns in step.transformers_:
            picked = [features[i] for i in _column_indices(columns, len(features))]
            if isinstance(transformer, str):
                if transformer == "passthrough":
                    out += picked
                elif transformer != "drop":
                    raise _NotLinear(f"unknown ColumnTransformer entry {transformer!r}")
                continue
            if picked:
                out += _through(transformer, picked)
        return out
    if name == "SimpleImputer":
        if not _is_nan(step.missing_values) or step.add_indicator:
            raise _NotLinear("SimpleImputer must impute NaN without an indicator")
        fills = np.asarray(step.statistics_, dtype=np.float64)
        if len(fills) != len(features) or np.isnan(fills).any():
            raise _NotLinear("SimpleImputer dropped an all-missing column")
        for feature, fill in zip(features, fills.tolist(), strict=True):
            if feature.category is None and math.isnan(feature.when_missing):
                feature.when_missing = fill
        return features
    if name == "StandardScaler":
        mean = step.mean_ if step.mean_ is not None else np.zeros(len(features))
        scale = step.scale_ if step.scale_ is not None else np.ones(len(features))
        for feature, m, s in zip(features, mean.tolist(), scale.tolist(), strict=True):
            if feature.category is not None:
                raise _NotLinear("a scaled one-hot column is not folded")
            feature.a, feature.c = feature.a / s, (feature.c - m) / s
            feature.when_missing = (feature.when_missing - m) / s
        return features
    if name == "OneHotEncoder":
        if step.drop_idx_ is not None or getattr(step, "_infrequent_enabled", False):
            raise _NotLinear("OneHotEncoder with drop or infrequent categories")
        out = []
        for feature, categories in zip(features, step.categories_, strict=True):
            if feature.category is not None or (feature.a, feature.c) != (1.0, 0.0):
                raise _NotLinear("OneHotEncoder must see the raw input column")
            for category in np.asarray(categories, dtype=np.float64).tolist():
                out.append(
                    _Feature(feature.source, when_missing=feature.when_missing, category=category)
                )
        return out
    raise _NotLinear(f"{name} is not folded into the linear form")


def _column_indices(columns: Any, width: int) -> list[int]:
    if isinstance(columns, slice):
        return list(range(width))[columns]
    picked = np.asarray(columns)
    if picked.dtype == bool:
        return [int(i) for i in np.flatnonzero(picked)]
    if picked.dtype.kind not in "iu":
        raise _NotLinear("ColumnTransformer columns must be picked by position")
    return [int(i) for i in picked.ravel()]


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _nullable(value: float) -> float | None:
    return None if math.isnan(value) else value


def _floats(values: list[float | None]) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


def _build_linear(model: Any, task: str, folder: Path, n_features: int) -> dict[str, Any]:
    (folder / "model.linear.json").write_text(json.dumps(_linearize(model, task, n_features)))
    return {"artifact": "model.linear.json"}


def _load_linear(folder: Path, form: dict[str, Any], task: str) -> Scorer:
    return _LinearScorer(json.loads((folder / form["artifact"]).read_text()))
