"""Metrics against textbook formulas computed by hand."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from taxiway.models.metrics import better, classification_metrics, regression_metrics, score


def _auc_by_pairs(y: np.ndarray, p: np.ndarray) -> float:
    pos, neg = p[y == 1], p[y == 0]
    wins = sum((a > b) + 0.5 * (a == b) for a in pos for b in neg)
    return float(wins / (len(pos) * len(neg)))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.floats(0.001, 0.999)), min_size=2, max_size=60))
def test_classification_metrics_match_their_definitions(pairs: list[tuple[bool, float]]) -> None:
    y = np.array([float(a) for a, _ in pairs])
    p = np.array([b for _, b in pairs])
    m = classification_metrics(y, p)
    auc, brier, log_loss = m["roc_auc"], m["brier"], m["log_loss"]
    if 0 < y.sum() < len(y):
        assert auc is not None
        assert np.isclose(auc, _auc_by_pairs(y, p))
    else:
        assert auc is None
    assert brier is not None
    assert log_loss is not None
    assert np.isclose(brier, np.mean((p - y) ** 2))
    assert np.isclose(log_loss, -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    bins = np.minimum((p * 10).astype(int), 9)
    ece = sum(
        (bins == b).sum() * abs(p[bins == b].mean() - y[bins == b].mean())
        for b in range(10)
        if (bins == b).any()
    ) / len(y)
    calibration_error = m["calibration_error"]
    assert calibration_error is not None
    assert np.isclose(calibration_error, ece)


def test_regression_metrics() -> None:
    m = regression_metrics(np.array([1.0, 2, 3]), np.array([2.0, 2, 1]))
    assert m["mae"] == 1.0
    rmse = m["rmse"]
    assert rmse is not None
    assert np.isclose(rmse, np.sqrt(5 / 3))


def test_direction_of_better() -> None:
    assert better("pr_auc", 0.3, 0.2)
    assert better("log_loss", 0.2, 0.3)
    assert not better("roc_auc", None, 0.5)
    assert better("mae", 1.0, None)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.floats(0, 1)), min_size=0, max_size=40))
def test_one_metric_alone_equals_its_entry_in_the_full_set(pairs: list[tuple[bool, float]]) -> None:
    y = np.array([float(a) for a, _ in pairs])
    p = np.array([b for _, b in pairs])
    every = {**classification_metrics(y, p), **regression_metrics(y, p)}
    for metric in ("roc_auc", "pr_auc", "log_loss", "brier", "calibration_error", "mae", "rmse"):
        assert score(metric, y, p) == every[metric], metric
