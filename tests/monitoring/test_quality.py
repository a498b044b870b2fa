"""Quality monitoring: the metrics against scikit-learn and brute force, the calibration check,
the outcomes join, realised and estimated quality under the three kinds of change (none,
covariate shift, concept change), and the drift-quality drivers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import log_loss as sklearn_log_loss
from sklearn.metrics import roc_auc_score

from taxiway.errors import MonitoringError
from taxiway.monitoring.quality import (
    ECE_BOUND,
    estimated,
    join_outcomes,
    quality_reference,
    rank_drivers,
    read_outcomes,
    realised,
    realised_by_window,
)
from taxiway.monitoring.quality_metrics import (
    apply_calibration,
    auc_standard_error,
    calibration_error,
    expected_roc_auc,
    fit_isotonic,
    log_loss,
    roc_auc,
)

# ------------------------------------------------------------------ a simulated model


def world(
    n: int, seed: int, *, mean: float = 0.0, spread: float = 1.0, flip: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Scores of a perfectly calibrated model and the true labels.

    ``mean``/``spread`` move the input (covariate shift); ``flip`` flips that share of labels
    while the inputs and scores stay as they were (concept change).
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(mean, spread, n)
    p = 1 / (1 + np.exp(-(2.0 * x - 1.0)))
    y = rng.uniform(size=n) < p
    flipped = rng.uniform(size=n) < flip
    return p, np.where(flipped, ~y, y)


def as_logs(
    scores: np.ndarray, labels: np.ndarray
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Prediction and outcome records, as the service logs them."""
    preds = [
        {
            "request_id": f"r{i}",
            "unit": f"u{i}",
            "ts": "2026-12-06T05:00:00+00:00",
            "prediction": float(s),
        }
        for i, s in enumerate(scores)
    ]
    outs = [
        {"request_id": f"r{i}", "name": "bought", "value": bool(v)} for i, v in enumerate(labels)
    ]
    return preds, outs


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    return quality_reference(*world(20_000, seed=1), "classification")


# ------------------------------------------------------------------ metrics


@settings(derandomize=True, deadline=None, max_examples=200)
@given(
    st.lists(st.tuples(st.integers(0, 6), st.booleans()), min_size=2, max_size=60).filter(
        lambda rows: 0 < sum(y for _, y in rows) < len(rows)
    )
)
def test_roc_auc_equals_sklearn_with_ties(rows: list[tuple[int, bool]]) -> None:
    scores = np.array([s / 6 for s, _ in rows])
    labels = np.array([y for _, y in rows])
    assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_roc_auc_of_one_class_is_undefined() -> None:
    assert roc_auc([0.1, 0.9], [1, 1]) is None
    assert roc_auc([], []) is None


@settings(derandomize=True, deadline=None, max_examples=100)
@given(
    st.lists(
        st.tuples(st.integers(0, 4), st.floats(0.0, 1.0, allow_nan=False)), min_size=2, max_size=12
    )
)
def test_expected_roc_auc_equals_brute_force_over_pairs(rows: list[tuple[int, float]]) -> None:
    scores = [float(s) for s, _ in rows]
    c = [p for _, p in rows]
    ordered = pairs = 0.0
    for i, (si, ci) in enumerate(zip(scores, c, strict=True)):
        for j, (sj, cj) in enumerate(zip(scores, c, strict=True)):
            if i != j:  # j positive, i negative
                weight = cj * (1 - ci)
                pairs += weight
                ordered += weight * (1.0 if sj > si else 0.5 if sj == si else 0.0)
    got = expected_roc_auc(scores, c)
    if pairs <= 1e-12:
        assert got is None
    else:
        assert got == pytest.approx(ordered / pairs, abs=1e-9)


def test_expected_roc_auc_of_known_labels_is_the_roc_auc() -> None:
    scores, labels = world(500, seed=3)
    assert expected_roc_auc(scores, labels.astype(float)) == pytest.approx(
        roc_auc_score(labels, scores)
    )


@settings(derandomize=True, deadline=None, max_examples=100)
@given(
    st.lists(st.tuples(st.integers(0, 30), st.booleans()), min_size=1, max_size=80),
    st.lists(st.integers(-5, 35), min_size=1, max_size=10),
)
def test_isotonic_map_equals_sklearn(rows: list[tuple[int, bool]], probes: list[int]) -> None:
    scores = np.array([s / 30 for s, _ in rows])
    labels = np.array([float(y) for _, y in rows])
    x, y = fit_isotonic(scores, labels)
    ours = apply_calibration(x, y, np.array(probes) / 30)
    theirs = (
        IsotonicRegression(out_of_bounds="clip").fit(scores, labels).predict(np.array(probes) / 30)
    )
    np.testing.assert_allclose(ours, theirs, atol=1e-12)
    assert np.all(np.diff(y) >= 0)
    assert len(x) <= len(np.unique(scores))


@settings(derandomize=True, deadline=None, max_examples=50)
@given(st.lists(st.tuples(st.floats(0.0, 1.0), st.booleans()), min_size=1, max_size=40))
def test_log_loss_equals_sklearn(rows: list[tuple[float, bool]]) -> None:
    p = np.array([s for s, _ in rows])
    y = np.array([v for _, v in rows])
    theirs = sklearn_log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[False, True])
    assert log_loss(p, y) == pytest.approx(theirs, rel=1e-9)


def test_the_auc_standard_error_matches_the_spread_of_windows() -> None:
    aucs: list[float] = []
    for seed in range(200):
        scores, labels = world(2_000, seed=1_000 + seed)
        aucs.append(roc_auc(scores, labels) or 0.0)
    scores, labels = world(2_000, seed=999)
    se = auc_standard_error(roc_auc(scores, labels), labels.sum(), (~labels).sum())
    assert se is not None
    assert np.std(aucs) == pytest.approx(se, rel=0.25)
    assert auc_standard_error(None, 10, 10) is None


def test_calibration_error_uses_equal_mass_bins() -> None:
    # 6 rows, 3 bins of 2 rows sorted by probability: gaps |0.2-0|, |0.5-0.5|, |0.9-1|
    p = [0.9, 0.1, 0.5, 0.3, 0.9, 0.5]
    y = [1, 0, 1, 0, 1, 0]
    assert calibration_error(p, y, bins=3) == pytest.approx((0.4 + 0.0 + 0.2) / 6)
    assert calibration_error([], []) is None


# ------------------------------------------------------------------ the reference


def test_a_calibrated_model_is_trusted(reference: dict[str, Any]) -> None:
    assert reference["trusted"], reference["why"]
    assert reference["ece"]["after"] <= ECE_BOUND
    assert reference["ece"]["noise"] < reference["ece"]["bound"]
    assert reference["metrics"]["roc_auc"] == pytest.approx(
        roc_auc_score(*world(20_000, seed=1)[::-1])
    )
    assert orjson.loads(orjson.dumps(reference)) == reference  # JSON-able, stored as is


def test_a_miscalibrated_model_is_calibrated_by_the_map() -> None:
    p, y = world(20_000, seed=2)
    ref = quality_reference(p**3, y, "classification")  # ranks kept, probabilities far too low
    assert ref["ece"]["before"] > 0.1
    assert ref["ece"]["after"] <= ECE_BOUND
    assert ref["trusted"]


def test_too_few_positives_are_not_trusted() -> None:
    p, y = world(5_000, seed=3)
    y[np.flatnonzero(y)[50:]] = False
    ref = quality_reference(p, y, "classification")
    assert not ref["trusted"]
    assert "50 positives" in ref["why"]


def test_a_small_validation_set_says_the_noise_hides_calibration() -> None:
    rng = np.random.default_rng(4)
    p = np.full(400, 0.5)
    y = rng.uniform(size=400) < 0.5
    ref = quality_reference(p, y, "classification")
    assert ref["ece"]["noise"] > ECE_BOUND  # 200 held-out rows: noise alone is over the bound
    assert not ref["trusted"]
    assert "larger validation set" in ref["why"]


def test_a_regressor_has_metrics_and_no_estimate() -> None:
    ref = quality_reference([1.0, 2.0, 4.0], [1.0, 3.0, 2.0], "regression")
    assert ref["metrics"] == {"mae": 1.0, "rmse": pytest.approx(np.sqrt(5 / 3)), "rows": 3}
    assert ref["estimation"] is None
    assert not ref["trusted"]
    assert "regressors" in ref["why"]
    assert estimated([1.0], ref).roc_auc is None


@pytest.mark.parametrize(
    ("scores", "labels", "task", "says"),
    [
        ([0.1, 0.2], [0, 2], "classification", "0/1"),
        ([0.1, float("nan")], [0, 1], "classification", "missing"),
        ([0.1, 0.2], [0], "classification", "2 scores but 1 labels"),
        ([0.1], [0], "ranking", "unknown task"),
    ],
)
def test_bad_validation_data_is_refused(
    scores: list[float], labels: list[int], task: Any, says: str
) -> None:
    with pytest.raises(MonitoringError, match=says) as error:
        quality_reference(scores, labels, task)
    assert error.value.fix


# ------------------------------------------------------------------ estimated vs realised


@settings(derandomize=True, deadline=None, max_examples=5)
@given(st.integers(10, 10_000))
def test_cbpe_tracks_realised_roc_auc_on_stationary_data(
    reference: dict[str, Any], seed: int
) -> None:
    scores, labels = world(20_000, seed)
    guess = estimated(scores, reference)
    truth = realised(*as_logs(scores, labels), "classification")
    assert guess.roc_auc is not None
    assert truth.metrics["roc_auc"] is not None
    assert abs(guess.roc_auc - truth.metrics["roc_auc"]) < 0.03
    assert guess.accuracy == pytest.approx(truth.metrics["accuracy"], abs=0.03)


def test_cbpe_drops_with_realised_when_inputs_move_to_uncertain_scores(
    reference: dict[str, Any],
) -> None:
    before = estimated(world(20_000, seed=5)[0], reference)
    scores, labels = world(20_000, seed=6, mean=0.5, spread=0.3)  # logits near 0: scores near 0.5
    guess = estimated(scores, reference)
    truth = realised(*as_logs(scores, labels), "classification").metrics["roc_auc"]
    assert before.roc_auc is not None
    assert guess.roc_auc is not None
    assert truth is not None
    assert guess.roc_auc < before.roc_auc - 0.1
    assert abs(guess.roc_auc - truth) < 0.03


def test_a_concept_change_is_caught_by_realised_quality_and_not_by_cbpe(
    reference: dict[str, Any],
) -> None:
    """The known limitation: same inputs, same scores, labels flipped more often. CBPE assumes
    the calibration still holds, so it cannot move; realised quality must page."""
    calm_scores, calm_labels = world(20_000, seed=7)
    scores, labels = world(20_000, seed=7, flip=0.25)
    np.testing.assert_array_equal(scores, calm_scores)  # no input or output drift at all
    calm = realised(*as_logs(calm_scores, calm_labels), "classification").metrics["roc_auc"]
    changed = realised(*as_logs(scores, labels), "classification").metrics["roc_auc"]
    assert calm is not None
    assert changed is not None
    assert changed < calm - 0.1
    guess_calm = estimated(calm_scores, reference).roc_auc
    guess = estimated(scores, reference).roc_auc
    assert guess == guess_calm  # the estimate does not move...
    assert guess is not None
    assert guess - changed > 0.1


def test_the_estimate_from_a_thousand_quantiles_equals_the_estimate_from_every_score(
    reference: dict[str, Any],
) -> None:
    """The monitor estimates from equal-mass quantiles of a window's score sketch."""
    scores, _ = world(200_000, seed=12, mean=0.3, spread=0.8)
    quantiles = np.quantile(scores, (np.arange(1_000) + 0.5) / 1_000)
    whole = estimated(scores, reference)
    summary = estimated(quantiles, reference, rows=len(scores))
    assert whole.roc_auc is not None
    assert summary.roc_auc == pytest.approx(whole.roc_auc, abs=0.002)
    assert summary.accuracy == pytest.approx(whole.accuracy, abs=0.002)
    assert summary.roc_auc_se == pytest.approx(whole.roc_auc_se, rel=0.01)
    assert summary.rows == len(scores)


def test_the_estimate_explains_why_it_is_missing() -> None:
    ref = quality_reference(*world(2_000, seed=8), "classification")
    untrusted = {**ref, "trusted": False, "why": "the calibrated scores are off by 0.2"}
    e = estimated([0.2, 0.7], untrusted)
    assert e.roc_auc is None
    assert e.reason is not None
    assert "off by 0.2" in e.reason
    assert estimated([float("nan")], ref).reason == "no scores in this period"
    with pytest.raises(MonitoringError, match="calibration map"):
        estimated([0.5], {**ref, "calibration": {"x": [], "y": []}})


# ------------------------------------------------------------------ the outcomes log and the join


def write_log(folder: Path, name: str, records: list[dict[str, Any]], torn: bytes = b"") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = b"".join(orjson.dumps(r) + b"\n" for r in records)
    (folder / name).write_bytes(lines + torn)


def test_read_outcomes_skips_torn_lines_and_orders_by_arrival(tmp_path: Path) -> None:
    write_log(
        tmp_path,
        "predictions-w2-20261206T050000-0000.jsonl",
        [
            {
                "received_at": "2026-12-06T05:00:01+00:00",
                "request_id": "a",
                "name": "bought",
                "value": 1,
            }
        ],
        torn=b'{"received_at": "2026-12-06T05:0',
    )
    write_log(
        tmp_path,
        "predictions-w1-20261206T050000-0000.jsonl",
        [
            {
                "received_at": "2026-12-06T05:00:02+00:00",
                "request_id": "b",
                "name": "bought",
                "value": 0,
            },
            {
                "received_at": "2026-12-06T05:00:00+00:00",
                "request_id": "c",
                "name": "clicked",
                "value": 1,
            },
        ],
    )
    (tmp_path / "notes.txt").write_text("not a log")
    assert [r["request_id"] for r in read_outcomes(tmp_path, "bought")] == ["a", "b"]
    # a damaged line inside a file, and a line that is JSON but no record, are skipped too
    write_log(tmp_path, "predictions-w3-20261206T050000-0000.jsonl", [])
    (tmp_path / "predictions-w3-20261206T050000-0000.jsonl").write_bytes(
        b'{"received_at": "2026-12-06T05:00:03+00:00", "request_id": "d", "name": "bought"}\n'
        b'{"received_at": \n[1, 2]\n'
        b'{"received_at": "2026-12-06T05:00:04+00:00", "request_id": "e", "name": "bought"}\n'
    )
    assert [r["request_id"] for r in read_outcomes(tmp_path, "bought")] == ["a", "b", "d", "e"]
    with pytest.raises(MonitoringError, match="several outcome names"):
        read_outcomes(tmp_path, None)
    with pytest.raises(MonitoringError, match="no outcomes log"):
        read_outcomes(tmp_path / "missing", "bought")


def test_an_outcome_with_an_unknown_request_id_is_not_joined_by_unit() -> None:
    preds = [{"request_id": "a", "unit": "u", "ts": "2026-12-06T05:00:00+00:00", "prediction": 0.3}]
    outs = [
        {"request_id": "gone", "unit": "u", "timestamp": "2026-12-06T06:00:00+00:00", "value": 1}
    ]
    j = join_outcomes(preds, outs)
    assert (len(j.prediction), j.unjoined) == (0, 1)


def test_the_last_outcome_for_a_prediction_wins() -> None:
    preds = [{"request_id": "a", "prediction": 0.8}]
    outs = [{"request_id": "a", "value": 0}, {"request_id": "a", "value": 1}]
    q = realised(preds, outs, "classification")
    assert (q.joined, q.duplicates, q.metrics["accuracy"]) == (1, 1, 1.0)


def test_a_unit_outcome_takes_the_last_prediction_of_the_same_instant() -> None:
    ts = "2026-12-06T05:00:00+00:00"
    preds = [
        {"request_id": "a", "unit": "u", "ts": ts, "prediction": 0.1},
        {"request_id": "b", "unit": "u", "ts": ts, "prediction": 0.9},
        {"request_id": "c", "unit": "v", "ts": ts, "prediction": 0.5},
    ]
    outs = [
        {"unit": "u", "timestamp": ts, "value": 1},
        {"unit": "u", "timestamp": "2026-12-06T04:59:59+00:00", "value": 1},  # before any
        {"unit": "w", "timestamp": ts, "value": 1},  # unknown unit
        {"unit": "v", "timestamp": "not a time", "value": 1},
    ]
    j = join_outcomes(preds, outs)
    assert (j.prediction.tolist(), j.unjoined, j.bad_timestamps) == ([1], 3, 1)


@settings(derandomize=True, deadline=None, max_examples=150)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 20)), min_size=0, max_size=25),
    st.lists(st.tuples(st.integers(0, 4), st.integers(-2, 22)), min_size=1, max_size=15),
)
def test_the_unit_join_equals_a_brute_force_scan(
    preds: list[tuple[int, int]], outs: list[tuple[int, int]]
) -> None:
    p = {"unit": [f"u{u}" for u, _ in preds], "ts": np.array([float(t) for _, t in preds])}
    o = {"unit": [f"u{u}" for u, _ in outs], "timestamp": np.array([float(t) for _, t in outs])}
    want: dict[int, int] = {}
    for k, (unit, t) in enumerate(outs):
        found = [i for i, (pu, pt) in enumerate(preds) if pu == unit and pt <= t]
        if found:
            latest = max(preds[i][1] for i in found)
            want[max(i for i in found if preds[i][1] == latest)] = k  # a later outcome wins
    j = join_outcomes(p, o)
    assert dict(zip(j.prediction.tolist(), j.outcome.tolist(), strict=True)) == want
    assert j.unjoined + j.duplicates + len(j.prediction) == len(outs)


def test_records_and_columns_give_the_same_quality() -> None:
    scores, labels = world(300, seed=9)
    preds, outs = as_logs(scores, labels)
    columns_p = {"request_id": [r["request_id"] for r in preds], "prediction": scores}
    columns_o = {"request_id": [r["request_id"] for r in outs], "value": labels}
    assert realised(preds, outs, "classification") == realised(
        columns_p, columns_o, "classification"
    )


def test_bad_values_are_counted_not_raised() -> None:
    preds = {"request_id": list("abcdef"), "prediction": [0.2, 0.8, 1.5, None, 0.4, 0.6]}
    outs = {"request_id": list("abcdef"), "value": [0, 1, 1, 1, 7, "yes"]}
    q = realised(preds, outs, "classification")
    assert q.problems == {
        "no_score": 1,
        "not_a_number": 1,
        "non_binary_value": 1,
        "score_out_of_range": 1,
    }
    assert (q.rows, q.metrics["roc_auc"]) == (2, 1.0)


def test_regression_quality_is_mae_and_rmse() -> None:
    preds = {"request_id": ["a", "b"], "prediction": [1.0, 5.0]}
    outs = {"request_id": ["a", "b"], "value": [2, 2.0]}
    q = realised(preds, outs, "regression")
    assert q.metrics == {"mae": 2.0, "rmse": pytest.approx(np.sqrt(5.0))}
    with pytest.raises(MonitoringError, match="unknown task"):
        realised(preds, outs, "ranking")  # type: ignore[arg-type]


def test_no_outcomes_yet_gives_no_metrics() -> None:
    q = realised([{"request_id": "a", "prediction": 0.4}], [], "classification")
    assert (q.joined, q.rows, q.metrics["roc_auc"], q.metrics["accuracy"]) == (0, 0, None, None)


def test_quality_per_window_comes_from_one_join() -> None:
    t0 = datetime(2026, 12, 6, 5, tzinfo=UTC)
    hour = timedelta(hours=1)
    scores, labels = world(3_000, seed=11)
    times = [t0 + hour * (i % 3) for i in range(3_000)]
    preds: dict[str, Any] = {
        "request_id": [f"r{i}" for i in range(3_000)],
        "ts": times,
        "prediction": scores,
    }
    outs: dict[str, Any] = {"request_id": [f"r{i}" for i in range(3_000)], "value": labels}
    windows = [(t0 + hour * k, t0 + hour * (k + 1)) for k in range(3)]
    per_window = realised_by_window(preds, outs, "classification", windows)
    for k, q in enumerate(per_window):  # by request_id: the same as measuring each window alone
        rows = [i for i in range(3_000) if i % 3 == k]
        alone = realised(
            {key: [v[i] for i in rows] for key, v in preds.items()},
            {key: [v[i] for i in rows] for key, v in outs.items()},  # numpy bools in lists
            "classification",
        )
        assert q.metrics == pytest.approx(alone.metrics)
        assert q.rows == alone.rows == 1_000
    # by unit, the newer prediction in the later window is judged, not the older one
    unit = {"unit": ["u", "u"], "ts": [t0, t0 + hour], "prediction": [0.2, 0.9]}
    late = {"unit": ["u"], "timestamp": [t0 + 2 * hour], "value": [True]}
    assert [q.by_unit for q in realised_by_window(unit, late, "classification", windows)] == [
        0,
        1,
        0,
    ]


# ------------------------------------------------------------------ drivers


def test_the_feature_whose_drift_follows_quality_ranks_first() -> None:
    rng = np.random.default_rng(10)
    price = np.linspace(0, 1, 12)
    quality = 0.9 - 0.2 * price + rng.normal(0, 0.01, 12)
    drift = {"price": price.tolist(), "noise": rng.uniform(size=12).tolist(), "flat": [0.1] * 12}
    ranked = rank_drivers(drift, quality.tolist())
    assert [name for name, _ in ranked] == ["price", "noise"]
    assert ranked[0][1] == pytest.approx(np.corrcoef(price, quality)[0, 1])
    assert ranked[0][1] < -0.9


def test_drivers_skip_windows_without_quality_and_need_three() -> None:
    assert rank_drivers({"a": [0.1, 0.5, 0.9]}, [0.9, None, 0.7]) == []
    ranked = rank_drivers({"a": [0.1, 0.5, 0.9, None, 0.3]}, [0.9, None, 0.7, 0.5, 0.85])
    assert [name for name, _ in ranked] == ["a"]
    assert ranked[0][1] == pytest.approx(np.corrcoef([0.1, 0.9, 0.3], [0.9, 0.7, 0.85])[0, 1])
    with pytest.raises(MonitoringError, match="3 drift values for 2"):
        rank_drivers({"a": [0.1, 0.2, 0.3]}, [0.9, 0.8])
