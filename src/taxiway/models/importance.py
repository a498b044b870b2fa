"""Which inputs a model leans on: permutation importance, and mean |contribution|, on
validation rows.

Shuffling one column and measuring how much the validation metric drops works for every
model, trained or imported, and measures the model's behaviour rather than its internals. The
share of an input is its drop over the sum of positive drops. Beside it, where the model has
exact contributions (:mod:`taxiway.models.explain`), an input's *contribution importance* is
the mean over the validation rows of the absolute value of its contribution to the raw score,
the global view of the explanations the service answers.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> X = rng.normal(size=(500, 2))
>>> shares = permutation_shares(lambda m: m[:, 0], X, X[:, 0] > 0, "classification")
>>> shares[0] > 0.99, shares[1]
(True, 0.0)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from taxiway.models.metrics import classification_metrics, regression_metrics

__all__ = ["contribution_importance", "permutation_shares"]


def permutation_shares(
    predict: Callable[[Any], np.ndarray],
    X: Any,
    y: np.ndarray,
    task: str,
    *,
    max_rows: int = 20_000,
    seed: int = 0,
) -> list[float]:
    """Each column's share of the total metric drop when it is shuffled (0 if none drops).

    ``X`` is a float matrix, or a pandas frame for an imported pilot.
    """
    rng = np.random.default_rng(seed)
    frame = hasattr(X, "iloc")
    if len(X) > max_rows:
        rows = np.sort(rng.choice(len(X), max_rows, replace=False))
        X, y = (X.iloc[rows] if frame else X[rows]), y[rows]

    def score(matrix: Any) -> float:
        p = predict(matrix)
        if task == "classification":
            value = classification_metrics(y, p)["roc_auc"]
            return float(value) if value is not None else 0.5
        rmse = regression_metrics(y, p)["rmse"]
        return -float(rmse) if rmse is not None else 0.0

    reference = score(X)
    drops = []
    for column in range(X.shape[1]):
        shuffled = X.copy()
        if frame:
            shuffled.iloc[:, column] = rng.permutation(shuffled.iloc[:, column].to_numpy())
        else:
            shuffled[:, column] = rng.permutation(shuffled[:, column])
        drops.append(max(0.0, reference - score(shuffled)))
    total = sum(drops)
    return [d / total if total > 0 else 0.0 for d in drops]


def contribution_importance(
    serving_dir: Path,
    features: list[str],
    X: np.ndarray | None,
    *,
    max_rows: int = 20_000,
    seed: int = 0,
) -> dict[str, float] | None:
    """Each input's mean |contribution| to the raw score over the encoded rows ``X`` (up to
    ``max_rows`` of them, drawn at random), largest first; None when the served model has no
    exact contributions (a random forest, a pilot no form reproduces) or there are no rows."""
    from taxiway.models.explain import load_explainer

    if X is None or len(X) == 0 or not (serving_dir / "serving.json").exists():
        return None
    explainer = load_explainer(serving_dir, features)
    if explainer is None:
        return None
    if len(X) > max_rows:
        rng = np.random.default_rng(seed)
        X = X[np.sort(rng.choice(len(X), max_rows, replace=False))]
    return explainer.mean_abs(X)
