"""One suite every drift statistic passes: ~0 on identical samples, never negative, growing
with the shift, and symmetric where the statistic is.

Adding a statistic means adding it to ``STATISTICS``; nothing else changes (and, if it is
symmetric in its two arguments, to ``SYMMETRIC``). PSI and Jensen-Shannon are symmetric only
given the bins, and their bins come from the reference; Wasserstein is divided by the
reference's IQR: none of the three is symmetric as ``compare(a, b)``.
"""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt
import pytest

from taxiway.monitoring.statistics import STATISTICS, Statistic

SYMMETRIC = {"ks", "chi2", "linf"}
SHIFTS = [0.0, 0.25, 0.5, 1.0, 2.0]  # mean shift, in reference standard deviations
MOVED = [0.0, 0.05, 0.1, 0.2, 0.4]  # share moved from category "a" to category "c"
N = 4_000
TOLERANCE = 1e-9


def reference(kind: str) -> npt.NDArray[np.generic]:
    if kind == "numeric":
        return np.random.default_rng(1).normal(10.0, 3.0, N)
    return categories(0.0)


def categories(moved: float) -> npt.NDArray[np.str_]:
    """Shares a 0.5, b 0.3, c 0.2, with ``moved`` of the total taken from a and given to c."""
    counts = {"a": 0.5 - moved, "b": 0.3, "c": 0.2 + moved}
    labels = [label for label, share in counts.items() for _ in range(round(share * N))]
    return np.array(labels)


def shifted(kind: str, step: int) -> npt.NDArray[np.generic]:
    if kind == "numeric":
        return np.random.default_rng(2).normal(10.0 + SHIFTS[step] * 3.0, 3.0, N)
    return categories(MOVED[step])


@pytest.fixture(params=sorted(STATISTICS))
def statistic(request: pytest.FixtureRequest) -> Statistic:
    chosen: Statistic = STATISTICS[request.param]
    return chosen


def test_registry_keys_are_the_names() -> None:
    assert all(key == s.name for key, s in STATISTICS.items())
    assert {s.kind for s in STATISTICS.values()} == {"numeric", "categorical"}
    assert all(isinstance(s, Statistic) for s in STATISTICS.values())


def test_identical_samples_give_zero(statistic: Statistic) -> None:
    sample = reference(statistic.kind)
    assert statistic.compare(sample, sample.copy()) == pytest.approx(0.0, abs=1e-12)


def test_never_negative(statistic: Statistic) -> None:
    ref = reference(statistic.kind)
    values = [statistic.compare(ref, shifted(statistic.kind, step)) for step in range(5)]
    assert all(value >= 0.0 for value in values), values


def test_grows_with_the_shift(statistic: Statistic) -> None:
    ref = reference(statistic.kind)
    values = [statistic.compare(ref, shifted(statistic.kind, step)) for step in range(5)]
    assert all(b >= a - TOLERANCE for a, b in itertools.pairwise(values)), values
    assert values[-1] > values[0] + 0.1 * max(values[-1], 1e-9), values


def test_a_shift_scores_higher_than_sampling_noise(statistic: Statistic) -> None:
    """Two independent draws of the same distribution score below a 1 sd shift."""
    ref = reference(statistic.kind)
    noise = statistic.compare(ref, shifted(statistic.kind, 0))
    assert noise < statistic.compare(ref, shifted(statistic.kind, 3))


@pytest.mark.parametrize("name", sorted(SYMMETRIC))
def test_symmetric_where_the_statistic_is(name: str) -> None:
    statistic = STATISTICS[name]
    a = reference(statistic.kind)
    b = shifted(statistic.kind, 2)
    assert statistic.compare(a, b) == pytest.approx(statistic.compare(b, a), rel=1e-12)


def test_the_others_are_not_symmetric() -> None:
    """PSI, JS and Wasserstein take their bins or scale from the reference (docstring)."""
    a = reference("numeric")
    b = np.random.default_rng(3).normal(12.0, 6.0, N)
    for name in sorted(set(STATISTICS) - SYMMETRIC):
        assert STATISTICS[name].compare(a, b) != pytest.approx(STATISTICS[name].compare(b, a))


def test_an_empty_sample_is_refused(statistic: Statistic) -> None:
    with pytest.raises(ValueError, match="empty"):
        statistic.compare(reference(statistic.kind), [])


@pytest.mark.parametrize("name", sorted(n for n, s in STATISTICS.items() if s.kind == "numeric"))
def test_missing_values_are_refused_with_the_fix(name: str) -> None:
    with pytest.raises(ValueError, match="drop them first"):
        STATISTICS[name].compare(reference("numeric"), [1.0, float("nan")])
