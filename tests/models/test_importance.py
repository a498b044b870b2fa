"""Global importance: permutation shares, and the mean |contribution| beside them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from taxiway.models.algorithms import fit
from taxiway.models.importance import contribution_importance
from taxiway.models.serving_form import build_serving_form


def _rows(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(400, 3))
    return X, (X[:, 0] + 0.2 * rng.normal(size=400) > 0).astype(np.float64)


def test_the_input_the_label_follows_has_the_largest_mean_contribution(tmp_path: Path) -> None:
    X, y = _rows()
    model = fit("lightgbm", "classification", X, y, params={"n_estimators": 30})
    build_serving_form(model, X[:100], task="classification", out_dir=tmp_path)
    importance = contribution_importance(tmp_path, ["signal", "noise_a", "noise_b"], X[300:])
    assert importance is not None
    assert next(iter(importance)) == "signal"
    assert importance["signal"] > 5 * max(importance["noise_a"], importance["noise_b"])


def test_rows_beyond_the_cap_are_sampled(tmp_path: Path) -> None:
    X, y = _rows()
    model = fit("logistic", "classification", X, y)
    build_serving_form(model, X[:100], task="classification", out_dir=tmp_path)
    every = contribution_importance(tmp_path, ["a", "b", "c"], X)
    capped = contribution_importance(tmp_path, ["a", "b", "c"], X, max_rows=200)
    assert every is not None
    assert capped is not None
    assert capped["a"] == pytest.approx(every["a"], rel=0.2)
    assert capped != every


def test_none_without_exact_contributions_or_rows(tmp_path: Path) -> None:
    X, y = _rows()
    forest = fit("random_forest", "classification", X, y, params={"n_estimators": 5})
    build_serving_form(forest, X[:50], task="classification", out_dir=tmp_path)
    assert contribution_importance(tmp_path, ["a", "b", "c"], X) is None
    assert contribution_importance(tmp_path, ["a", "b", "c"], None) is None
    assert contribution_importance(tmp_path / "nothing", ["a", "b", "c"], X) is None
