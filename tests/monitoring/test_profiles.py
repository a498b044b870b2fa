"""Profiles: fine bins on the reference's percentiles, missing/invalid counts, merge = one pass."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taxiway.errors import MonitoringError
from taxiway.monitoring.profiles import (
    CATEGORY_CAP,
    OTHER,
    CategoricalProfile,
    FineBins,
    NumericProfile,
    profile_from_dict,
)

PROPERTY = settings(derandomize=True, max_examples=40, deadline=None)
VALUES = st.lists(
    st.one_of(
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
        st.none(),
        st.just(float("nan")),
        st.sampled_from(["x", "1.5", True]),
    ),
    max_size=40,
)


def test_edges_are_the_reference_percentiles() -> None:
    values = np.random.default_rng(0).normal(size=10_000)
    profile = NumericProfile.reference(values)
    assert profile.edges.size == 99
    assert np.allclose(profile.edges, np.percentile(values, np.arange(1, 100)))
    assert profile.low == values.min()
    assert profile.high == values.max()
    assert profile.counts.sum() == 10_000
    assert profile.below == profile.above == 0
    assert profile.decile_counts().tolist() == [1_000] * 10


def test_a_point_mass_keeps_duplicate_edges_so_deciles_stay_fixed() -> None:
    # 60% zeros: the first 60 edges are all 0; zeros land in the bin after the last 0 edge
    values = np.concatenate([np.zeros(600), np.arange(1.0, 401.0)])
    profile = NumericProfile.reference(values)
    assert profile.edges.size == 99
    assert int(np.count_nonzero(profile.edges == 0.0)) >= 59
    deciles = profile.decile_counts()
    assert deciles.sum() == 1_000
    assert deciles[:5].sum() == 0
    assert deciles[5] == 600  # the zeros all sit in decile 5 (fine bins 50..59)
    window = profile.empty_like()
    window.update(values)
    assert window.decile_counts().tolist() == deciles.tolist()


def test_missing_and_invalid_are_counted_apart() -> None:
    window = NumericProfile.reference([0.0, 1.0]).empty_like()
    window.update([None, float("nan"), "abc", True, float("inf"), "0.5", 2, np.float32(0.25)])
    assert (window.known, window.missing, window.invalid) == (3, 5, 3)
    assert window.rows == 8
    assert window.above == 1
    assert window.max == 2.0
    assert window.sum == pytest.approx(2.75)


def test_numpy_fast_path_matches_the_list_path() -> None:
    values = np.random.default_rng(1).exponential(size=2_000)
    values[::7] = np.nan
    ref = NumericProfile.reference(values)
    a, b = ref.empty_like(), ref.empty_like()
    a.update(values)
    b.update([None if math.isnan(v) else float(v) for v in values])
    assert a.to_dict() | {"sketch": ""} == b.to_dict() | {"sketch": ""}
    assert a.missing == 2_000 - np.count_nonzero(~np.isnan(values))


def test_an_empty_reference_has_one_bin() -> None:
    profile = NumericProfile.reference([None, float("nan")])
    assert profile.edges.size == 0
    assert math.isnan(profile.low)
    window = profile.empty_like()
    window.update([1.0, 2.0])
    assert window.decile_counts().tolist() == [2] + [0] * 9
    assert window.below == window.above == 0
    assert profile_from_dict(orjson.loads(orjson.dumps(window.to_dict()))).known == 2


@PROPERTY
@given(VALUES, VALUES)
def test_merge_equals_one_pass_over_both(first: list[object], second: list[object]) -> None:
    ref = NumericProfile.reference(np.random.default_rng(2).normal(size=500) * 100)
    a, b, both = ref.empty_like(), ref.empty_like(), ref.empty_like()
    a.update(first)
    b.update(second)
    both.update(first + second)
    merged = a.merge(b)
    for key in ("counts", "missing", "invalid", "below", "above", "min", "max"):
        assert merged.to_dict()[key] == both.to_dict()[key], key
    assert merged.sum == pytest.approx(both.sum, abs=1e-6)
    assert merged.sketch.n == both.known


@PROPERTY
@given(VALUES)
def test_to_dict_survives_json(values: list[object]) -> None:
    ref = NumericProfile.reference(np.arange(50.0))
    window = ref.empty_like()
    window.update(values)
    back = profile_from_dict(orjson.loads(orjson.dumps(window.to_dict())))
    assert isinstance(back, NumericProfile)
    assert back.to_dict() == window.to_dict()
    assert back.quantiles([0.5]) == window.quantiles([0.5]) or window.known == 0


def test_quantiles_come_from_the_sketch() -> None:
    values = np.random.default_rng(3).uniform(size=100_000)
    profile = NumericProfile.reference(values)
    q = profile.quantiles([0.1, 0.5, 0.9])
    assert q == pytest.approx([0.1, 0.5, 0.9], abs=0.02)
    assert profile.mean() == pytest.approx(0.5, abs=0.01)
    assert profile.std() == pytest.approx(math.sqrt(1 / 12), abs=0.01)


def test_profiles_of_different_references_do_not_merge() -> None:
    a = NumericProfile.reference([1.0, 2.0])
    b = NumericProfile.reference([1.0, 3.0])
    with pytest.raises(MonitoringError, match="different references"):
        a.merge(b)
    with pytest.raises(MonitoringError, match="categorical"):
        a.merge(CategoricalProfile.reference(["a"]))


def test_categories_missing_and_labels() -> None:
    profile = CategoricalProfile.reference(np.array(["a", "b", "a"], dtype=object))
    profile.update(["a", None, float("nan"), 3, True])
    assert profile.counts == {"a": 3, "b": 1, "3": 1, "True": 1}
    assert profile.missing == 2
    assert profile.rows == 8
    top = profile.sketch.get_frequent_items(0)  # 0: datasketches' NO_FALSE_POSITIVES
    assert top[0][0] == "a"
    assert top[0][1] == 3


def test_categories_are_capped_keeping_the_common_ones() -> None:
    labels = [f"rare{i}" for i in range(CATEGORY_CAP + 200)] + ["common"] * 50
    profile = CategoricalProfile.reference(labels)
    assert len(profile.counts) == CATEGORY_CAP
    assert profile.counts["common"] == 50
    assert profile.known == len(labels)
    assert profile.counts[OTHER] == 1_200 - (CATEGORY_CAP - 2)


@PROPERTY
@given(
    st.lists(st.sampled_from(["a", "b", "c", None]), max_size=30),
    st.lists(st.sampled_from(["b", "d", None]), max_size=30),
)
def test_categorical_merge_equals_one_pass(
    first: list[str | None], second: list[str | None]
) -> None:
    a, b = CategoricalProfile.reference(first), CategoricalProfile.reference(second)
    both = CategoricalProfile.reference(first + second)
    merged = a.merge(b)
    assert merged.counts == both.counts
    assert merged.missing == both.missing
    back = profile_from_dict(orjson.loads(orjson.dumps(merged.to_dict())))
    assert isinstance(back, CategoricalProfile)
    assert back.counts == merged.counts


@PROPERTY
@given(
    st.lists(st.floats(min_value=-1e3, max_value=1e3), min_size=1, max_size=200),
    st.lists(st.floats(min_value=-2e3, max_value=2e3), min_size=1, max_size=200),
)
def test_the_lookup_grid_bins_exactly_like_searchsorted(
    reference: list[float], values: list[float]
) -> None:
    edges = NumericProfile.reference(reference).edges
    sample = np.asarray(values + list(edges) + [float(np.nextafter(e, np.inf)) for e in edges])
    expected = np.searchsorted(edges, sample, side="right")
    assert FineBins(edges).of(sample).tolist() == expected.tolist()
