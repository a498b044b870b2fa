"""The baseline rule predicts each bin's smoothed training rate, checked against a scan."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from taxiway.models.baseline import Baseline

values = arrays(
    np.float64,
    st.integers(5, 120),
    elements=st.one_of(st.floats(-100, 100, allow_nan=False), st.just(np.nan)),
)


@settings(max_examples=150, deadline=None)
@given(values, st.integers(0, 2**31 - 1), st.integers(2, 10))
def test_numeric_rule_equals_a_brute_force_scan(x: np.ndarray, seed: int, bins: int) -> None:
    y = np.random.default_rng(seed).integers(0, 2, len(x)).astype(float)
    rule = Baseline.of_rule("f", x, y, "classification", categorical=False, bins=bins)
    prior = y.mean()
    predicted = rule.predict(x)
    for i, value in enumerate(x):
        if np.isnan(value):
            same = np.isnan(x)
        else:
            # the rows in the same right-closed bin: same count of edges strictly below
            below = sum(e < value for e in rule.edges)
            same = np.array(
                [not np.isnan(v) and sum(e < v for e in rule.edges) == below for v in x]
            )
        expected = (y[same].sum() + prior) / (same.sum() + 1)
        assert np.isclose(predicted[i], expected)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([0.0, 1.0, 2.0, 3.0, np.nan]), min_size=3, max_size=80))
def test_categorical_rule_and_unseen_codes(codes: list[float]) -> None:
    x = np.array(codes)
    y = (np.nan_to_num(x, nan=0) % 2).astype(float)
    rule = Baseline.of_rule("segment", x, y, "classification", categorical=True)
    for code in (0.0, 1.0, 2.0, 3.0):
        mask = x == code
        if mask.any():
            assert np.isclose(rule.predict_one(code), (y[mask].sum() + y.mean()) / (mask.sum() + 1))
    assert np.isclose(rule.predict_one(17.0), rule.prior)  # a category never seen in training


def test_round_trip_through_json() -> None:
    x = np.array([1.0, 2, 3, 4, 5, 6, np.nan])
    y = np.array([0.0, 0, 0, 1, 1, 1, 1])
    rule = Baseline.of_rule("f", x, y, "classification", categorical=False, bins=3)
    again = Baseline.from_dict(rule.as_dict())
    assert again == rule
    assert np.array_equal(again.predict(x), rule.predict(x))


def test_prior_predicts_the_training_rate_for_everyone() -> None:
    prior = Baseline.of_prior(np.array([1.0, 0, 0, 0]), "classification")
    assert prior.predict(np.array([np.nan, 5.0])).tolist() == [0.25, 0.25]
    assert "prior" in prior.describe()
