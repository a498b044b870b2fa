"""Fit one of the supported algorithms on the encoded training matrix.

``lightgbm`` (default) and ``xgboost`` are gradient-boosted trees that take missing values and
category codes natively; ``random_forest`` is scikit-learn's forest (missing values supported
since scikit-learn 1.4); ``logistic`` is an imputed, scaled logistic regression with the
categories one-hot encoded (classification only). ``model.params`` go to the library
unchanged; ``n_estimators`` sets the number of trees for all three tree methods.

Each returns the library's own object (a LightGBM or XGBoost ``Booster``, a scikit-learn
estimator), which :mod:`taxiway.models.serving_form` turns into the fastest faithful form.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from taxiway.errors import ModelError

__all__ = ["ALGORITHMS", "fit"]

ALGORITHMS = ("lightgbm", "xgboost", "random_forest", "logistic")
DEFAULT_TREES = 200


def fit(
    algorithm: str,
    task: str,
    X: np.ndarray,
    y: np.ndarray,
    *,
    categorical: Sequence[int] = (),
    params: dict[str, Any] | None = None,
    seed: int = 0,
) -> Any:
    """Train ``algorithm`` for ``task`` on ``X`` (float64, NaN = missing) and ``y``."""
    options = dict(params or {})
    if len(X) == 0:
        raise ModelError(
            "no training rows before the validation cut",
            fix="widen the spine or lower model.validation",
        )
    if task == "classification" and len(np.unique(y)) < 2:
        raise ModelError(
            f"every training label is {y[0]:g}: there is nothing to learn",
            fix="check the label definition (kind, horizon) and the spine period",
        )
    try:
        if algorithm == "lightgbm":
            return _lightgbm(task, X, y, categorical, options, seed)
        if algorithm == "xgboost":
            return _xgboost(task, X, y, options, seed)
        if algorithm == "random_forest":
            return _random_forest(task, X, y, options, seed)
        if algorithm == "logistic":
            return _logistic(task, X, y, categorical, options, seed)
    except (TypeError, ValueError) as error:
        raise ModelError(
            f"{algorithm} refused the training data or model.params: {error}",
            fix="check model.params against the library's documented parameters",
        ) from None
    raise ModelError(f"unknown algorithm `{algorithm}`", fix=f"use one of {', '.join(ALGORITHMS)}")


def _lightgbm(
    task: str,
    X: np.ndarray,
    y: np.ndarray,
    categorical: Sequence[int],
    options: dict[str, Any],
    seed: int,
) -> Any:
    import lightgbm

    rounds = int(options.pop("n_estimators", options.pop("num_boost_round", DEFAULT_TREES)))
    params = {
        "objective": "binary" if task == "classification" else "regression",
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_data_in_leaf": 20,
        "verbosity": -1,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 2,
        **options,
    }
    data = lightgbm.Dataset(
        X, label=y, categorical_feature=list(categorical) or "auto", free_raw_data=False
    )
    return lightgbm.train(params, data, num_boost_round=rounds)


def _xgboost(task: str, X: np.ndarray, y: np.ndarray, options: dict[str, Any], seed: int) -> Any:
    try:
        import xgboost
    except ImportError:
        raise ModelError(
            "model.algorithm is xgboost but xgboost is not installed",
            fix="pip install 'taxiway[xgboost]'",
        ) from None
    rounds = int(options.pop("n_estimators", options.pop("num_boost_round", DEFAULT_TREES)))
    params = {
        "objective": "binary:logistic" if task == "classification" else "reg:squarederror",
        "eta": 0.1,
        "max_depth": 6,
        "tree_method": "hist",
        "seed": seed,
        "nthread": 2,
        **options,
    }
    return xgboost.train(params, xgboost.DMatrix(X, label=y, missing=np.nan), rounds)


def _random_forest(
    task: str, X: np.ndarray, y: np.ndarray, options: dict[str, Any], seed: int
) -> Any:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    settings = {
        "n_estimators": 100,
        "min_samples_leaf": 5,
        "n_jobs": 2,
        "random_state": seed,
        **options,
    }
    model = RandomForestClassifier if task == "classification" else RandomForestRegressor
    estimator = model(**settings).fit(X, y)
    estimator.set_params(n_jobs=1)  # one-row scoring: no thread pool start-up per call
    return estimator


def _logistic(
    task: str,
    X: np.ndarray,
    y: np.ndarray,
    categorical: Sequence[int],
    options: dict[str, Any],
    seed: int,
) -> Any:
    if task != "classification":
        raise ModelError(
            "`logistic` is a classifier, but the label is a number to predict (regression)",
            fix="use model.algorithm lightgbm, xgboost or random_forest for regression",
        )
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [i for i in range(X.shape[1]) if i not in set(categorical)]
    parts: list[tuple[str, Any, list[int]]] = []
    if numeric:
        numbers = Pipeline(
            [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
        )
        parts.append(("numeric", numbers, numeric))
    if categorical:
        codes = Pipeline(
            [
                ("impute", SimpleImputer(strategy="constant", fill_value=-1.0)),
                ("onehot", OneHotEncoder(handle_unknown="ignore")),
            ]
        )
        parts.append(("categorical", codes, list(categorical)))
    settings = {"max_iter": 1000, "random_state": seed, **options}
    pipeline = Pipeline(
        [("prepare", ColumnTransformer(parts)), ("model", LogisticRegression(**settings))]
    )
    return pipeline.fit(X, y)
