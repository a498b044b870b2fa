"""The model against the baseline per group: the bootstrap's resampled metrics are the
metrics of the resampled rows, a group where the model is worse is called so, a small group
gets no verdict, and equally good predictions are rarely called worse."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taxiway.models.metrics import score
from taxiway.models.segments import (
    MIN_CLASS_ROWS,
    MIN_ROWS,
    TIME_SLICES,
    _resampled,
    compare_groups,
    time_slices,
)

WEIGHTED = ("roc_auc", "brier", "log_loss", "mae", "rmse")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 20)), min_size=4, max_size=60),
    st.sampled_from(WEIGHTED),
    st.integers(0, 2**31 - 1),
)
def test_a_resampled_metric_is_the_metric_of_the_resampled_rows(
    rows: list[tuple[bool, int]], metric: str, seed: int
) -> None:
    # coarse scores (0..20 / 20) make ties, which ROC AUC must count as halves
    y = np.array([float(label) for label, _ in rows])
    p = np.array([s / 20 for _, s in rows])
    draws = np.random.default_rng(seed).integers(0, len(y), size=(5, len(y)))
    got = _resampled(metric, y, p, draws)
    for value, draw in zip(got, draws, strict=True):
        want = score(metric, y[draw], p[draw])
        if want is None:
            assert np.isnan(value)
        else:
            assert value == pytest.approx(want, abs=1e-9)


def _separated(n: int, rng: np.random.Generator, strength: float) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores that rank them with some skill (``strength`` 0: none)."""
    y = rng.integers(0, 2, n).astype(float)
    return y, 1 / (1 + np.exp(-(strength * (y - 0.5) + rng.normal(size=n))))


def test_a_group_where_the_model_is_worse_is_called_worse_and_the_others_better() -> None:
    rng = np.random.default_rng(1)
    y, good = _separated(2_000, rng, 3.0)
    base = 1 / (1 + np.exp(-(1.0 * (y - 0.5) + rng.normal(size=2_000))))  # some skill
    region = np.where(np.arange(2_000) < 500, "north", "south")
    model = np.where(region == "north", 1 - good, good)  # upside down in the north
    rows = {r["value"]: r for r in compare_groups(region, y, model, base, "roc_auc")}
    assert rows["north"]["verdict"] == "worse"
    assert rows["north"]["interval"][1] < 0
    assert rows["north"]["lift"] < 0
    assert rows["south"]["verdict"] == "better"
    assert rows["south"]["interval"][0] > 0
    assert rows["north"]["rows"] == 500
    assert rows["north"]["model"] == pytest.approx(score("roc_auc", y[:500], model[:500]))


def test_for_a_loss_lower_is_better_so_the_lift_is_the_baseline_minus_the_model() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(size=400)
    model = y + rng.normal(scale=0.1, size=400)
    base = y + rng.normal(scale=1.0, size=400)
    (row,) = compare_groups(["all"] * 400, y, model, base, "rmse")
    assert row["lift"] == pytest.approx(row["baseline"] - row["model"])
    assert row["verdict"] == "better"
    (row,) = compare_groups(["all"] * 400, y, base, model, "mae")
    assert row["verdict"] == "worse"


def test_a_small_group_gets_no_verdict_but_says_how_many_rows() -> None:
    rng = np.random.default_rng(3)
    y, p = _separated(MIN_ROWS + 100, rng, 2.0)
    segment = np.array(["big"] * 100 + ["small"] * MIN_ROWS)
    segment[-1] = "tiny"
    rows = {r["value"]: r for r in compare_groups(segment, y, p, p[::-1].copy(), "brier")}
    assert rows["tiny"]["verdict"] == "not enough rows (n=1)"
    assert rows["small"]["verdict"] == f"not enough rows (n={MIN_ROWS - 1})"
    assert rows["tiny"]["interval"] is None
    assert rows["tiny"]["lift"] is None
    assert rows["big"]["verdict"] != "not enough rows (n=100)"


def test_a_classifier_group_with_almost_one_class_gets_no_verdict() -> None:
    y = np.zeros(300)
    y[: MIN_CLASS_ROWS - 1] = 1
    p = np.linspace(0, 1, 300)
    (row,) = compare_groups(["x"] * 300, y, p, p, "roc_auc")
    assert row["verdict"] == f"not enough rows (n=300, {MIN_CLASS_ROWS - 1} positive)"


def test_missing_values_are_a_group_of_their_own() -> None:
    y = np.tile([0.0, 1.0], 100)
    p = np.full(200, 0.5)
    rows = compare_groups([None, float("nan"), "a", "a"] * 50, y, p, p, "brier")
    assert [(r["value"], r["rows"]) for r in rows] == [("(missing)", 100), ("a", 100)]


def test_the_same_predictions_are_no_clear_difference() -> None:
    rng = np.random.default_rng(4)
    y, p = _separated(500, rng, 2.0)
    (row,) = compare_groups(["all"] * 500, y, p, p, "roc_auc")
    assert row["lift"] == 0
    assert row["interval"] == [0.0, 0.0]
    assert row["verdict"] == "no clear difference"


def test_two_equally_good_predictors_are_seldom_called_worse() -> None:
    # the interval's promise: with no true difference, "worse" comes up about 2.5% of the time
    rng = np.random.default_rng(5)
    worse = 0
    for _ in range(60):
        y = rng.integers(0, 2, 300).astype(float)
        a = y + rng.normal(size=300)
        b = y + rng.normal(size=300)
        (row,) = compare_groups(["all"] * 300, y, a, b, "roc_auc", seed=int(rng.integers(10**9)))
        worse += row["verdict"] == "worse"
    assert worse <= 6  # P(Binomial(60, 0.025) > 6) < 0.1%


def test_the_same_data_gives_the_same_interval() -> None:
    rng = np.random.default_rng(6)
    y, p = _separated(300, rng, 1.0)
    q = p[::-1].copy()
    assert compare_groups(["a"] * 300, y, p, q, "roc_auc") == compare_groups(
        ["a"] * 300, y, p, q, "roc_auc"
    )


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=1, max_size=200), st.integers(1, 10))
def test_time_slices_are_consecutive_runs_of_spine_times(days: list[int], slices: int) -> None:
    times = np.datetime64("2025-01-06") + np.array(days).astype("timedelta64[D]") * 7
    labels = time_slices(times, slices)
    distinct = sorted(set(days))
    assert len(set(labels.tolist())) == min(slices, len(distinct))
    # each slice holds a run of the sorted distinct times: no two slices interleave
    order = sorted(set(zip(days, labels.tolist(), strict=True)))
    seen = [label for _, label in order]
    runs = [label for i, label in enumerate(seen) if i == 0 or label != seen[i - 1]]
    assert len(runs) == len(set(runs))
    for day, label in zip(days, labels.tolist(), strict=True):
        first = str(np.datetime64("2025-01-06") + np.timedelta64(7 * day, "D"))
        assert label.split("..")[0] <= first <= label.split("..")[-1]


def test_time_slices_default_to_at_most_six() -> None:
    times = np.arange(30).astype("datetime64[D]")
    assert len(set(time_slices(times).tolist())) == TIME_SLICES
