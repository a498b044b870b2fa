"""The baseline rule predicts each bin's smoothed training rate, checked against a scan."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from taxiway.models.baseline import Baseline, choose_baseline

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


# ------------------------------------------------------------------ choosing the baseline


def _auc_by_pairs(y: np.ndarray, p: np.ndarray) -> float | None:
    pos, neg = p[y == 1], p[y == 0]
    if not len(pos) or not len(neg):
        return None
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))


def _brute_score(metric: str, y: np.ndarray, p: np.ndarray) -> float | None:
    """Each metric from its definition, independently of taxiway.models.metrics."""
    if metric == "roc_auc":
        return _auc_by_pairs(y, p)
    if metric == "log_loss":
        q = np.clip(p, 1e-15, 1 - 1e-15)
        return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))
    if metric == "rmse":
        return float(np.sqrt(np.mean((p - y) ** 2)))
    assert metric == "mae"
    return float(np.mean(np.abs(p - y)))


def _at_least(metric: str, a: float | None, b: float | None) -> bool:
    """``a`` is as good as ``b`` or better (``None`` is the worst)."""
    if b is None:
        return True
    if a is None:
        return False
    tolerance = 1e-9
    return a >= b - tolerance if metric == "roc_auc" else a <= b + tolerance


columns = st.lists(
    st.tuples(
        st.sampled_from(["numeric", "categorical", "gappy"]),
        st.floats(-2, 2),  # how strongly the feature carries the label
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=60, deadline=None)
@given(
    columns,
    st.integers(0, 2**31 - 1),
    st.integers(12, 150),
    st.integers(4, 80),
    st.sampled_from(
        [
            ("classification", "roc_auc"),
            ("classification", "log_loss"),
            ("regression", "rmse"),
            ("regression", "mae"),
        ]
    ),
)
def test_the_chosen_baseline_is_at_least_the_prior_and_every_one_feature_rule(
    features: list[tuple[str, float]],
    seed: int,
    n_train: int,
    n_valid: int,
    task_metric: tuple[str, str],
) -> None:
    task, metric = task_metric
    rng = np.random.default_rng(seed)
    n = n_train + n_valid
    signal = rng.normal(size=n)
    y = (
        (signal + rng.normal(size=n) > 0).astype(float)
        if task == "classification"
        else signal * 3 + rng.normal(size=n)
    )
    candidates = []
    for i, (kind, strength) in enumerate(features):
        x = strength * signal + rng.normal(size=n)
        categorical = kind == "categorical"
        if categorical:
            x = np.digitize(x, [-1.0, 0.0, 1.0]).astype(float)
        if kind == "gappy":
            x[rng.random(n) < 0.3] = np.nan
        candidates.append((f"f{i}", x[:n_train], x[n_train:], categorical))
    y_train, y_valid = y[:n_train], y[n_train:]

    choice = choose_baseline(candidates, y_train, y_valid, task, metric)

    prior_score = _brute_score(metric, y_valid, np.full(n_valid, y_train.mean()))
    assert _at_least(metric, choice.score, prior_score)
    rules = {}
    for name, x_train, x_valid, categorical in candidates:
        rule = Baseline.of_rule(name, x_train, y_train, task, categorical=categorical)
        rules[name] = rule
        rule_score = _brute_score(metric, y_valid, rule.predict(x_valid))
        assert _at_least(metric, choice.score, rule_score), (name, choice.describe())
    # fitted on the training rows only: the chosen rule is exactly the training-split rule
    if choice.baseline.kind == "rule":
        assert choice.baseline.feature is not None
        assert choice.baseline == rules[choice.baseline.feature]
    else:
        assert choice.baseline == Baseline.of_prior(y_train, task)
    assert set(choice.rule_scores) == {name for name, *_ in candidates}


def test_the_validation_labels_choose_but_never_fit() -> None:
    """Same training rows, different validation labels: the same fitted rules, maybe
    another choice."""
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=400), rng.normal(size=400)
    y = (a > 0).astype(float)
    train = slice(0, 300)
    candidates = [("a", a[train], a[300:], False), ("b", b[train], b[300:], False)]
    follows_a = choose_baseline(
        candidates, y[train], (a[300:] > 0).astype(float), "classification", "roc_auc"
    )
    follows_b = choose_baseline(
        candidates, y[train], (b[300:] > 0).astype(float), "classification", "roc_auc"
    )
    assert follows_a.baseline.feature == "a"
    assert follows_b.baseline.feature == "b"
    rule_b = Baseline.of_rule("b", b[train], y[train], "classification", categorical=False)
    assert follows_b.baseline == rule_b  # its bins and rates are the training rows' own


def test_a_perfect_feature_is_chosen_and_named() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500).astype(float)
    noise, perfect = rng.normal(size=500), y.copy()
    candidates = [
        ("noise", noise[:400], noise[400:], False),
        ("customer__bought_before", perfect[:400], perfect[400:], False),
    ]
    choice = choose_baseline(candidates, y[:400], y[400:], "classification", "roc_auc")
    assert choice.baseline.feature == "customer__bought_before"
    assert choice.score == 1.0
    assert choice.describe() == (
        "a one-feature rule on `customer__bought_before` (ROC AUC 1 on validation), "
        "the best of 2 candidate features and the prior (0.5)"
    )
    assert choice.as_dict()["rule_scores"]["customer__bought_before"] == 1.0


def test_pinned_feature_is_the_only_rule_considered() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 300).astype(float)
    noise = rng.normal(size=300)
    candidates = [("noise", noise[:200], noise[200:], False), ("y", y[:200], y[200:], False)]
    choice = choose_baseline(
        candidates, y[:200], y[200:], "classification", "roc_auc", pinned="noise"
    )
    assert set(choice.rule_scores) == {"noise"}
    assert choice.baseline.feature in ("noise", None)
    assert "model.baseline_feature" in choice.describe()


def test_with_no_candidate_the_prior_is_the_baseline() -> None:
    y = np.array([0.0, 1, 1, 0, 1])
    choice = choose_baseline([], y[:3], y[3:], "classification", "roc_auc")
    assert choice.baseline.kind == "prior"
    assert choice.describe().endswith("there is no candidate feature")
