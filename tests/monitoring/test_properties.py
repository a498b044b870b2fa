"""Property tests of the drift statistics (Hypothesis, derandomized so CI is deterministic)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taxiway.monitoring.statistics import STATISTICS
from taxiway.monitoring.statistics.ks import ks_statistic

PROPERTY = settings(derandomize=True, max_examples=60, deadline=None)
NUMBERS = st.lists(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=60,
)
LABELS = st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), min_size=1, max_size=60)
NUMERIC = sorted(name for name, s in STATISTICS.items() if s.kind == "numeric")
CATEGORICAL = sorted(name for name, s in STATISTICS.items() if s.kind == "categorical")


@pytest.mark.parametrize("name", NUMERIC)
@PROPERTY
@given(sample=NUMBERS)
def test_numeric_self_distance_is_zero(name: str, sample: list[float]) -> None:
    assert STATISTICS[name].compare(sample, list(sample)) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("name", CATEGORICAL)
@PROPERTY
@given(sample=LABELS)
def test_categorical_self_distance_is_zero(name: str, sample: list[str]) -> None:
    assert STATISTICS[name].compare(sample, list(sample)) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("name", NUMERIC)
@PROPERTY
@given(reference=NUMBERS, current=NUMBERS)
def test_numeric_never_negative(name: str, reference: list[float], current: list[float]) -> None:
    value = STATISTICS[name].compare(reference, current)
    assert value >= 0.0
    assert np.isfinite(value)


@PROPERTY
@given(reference=NUMBERS, current=NUMBERS)
def test_ks_equals_the_brute_force_maximum(reference: list[float], current: list[float]) -> None:
    def cdf(sample: list[float], x: float) -> float:
        return sum(v <= x for v in sample) / len(sample)

    brute = max(abs(cdf(reference, x) - cdf(current, x)) for x in reference + current)
    got = ks_statistic(np.array(reference), np.array(current))
    assert got == pytest.approx(brute, abs=1e-12)
