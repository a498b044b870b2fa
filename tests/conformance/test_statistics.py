"""One suite every drift statistic passes: ~0 on identical samples, never negative, growing
with the shift, and symmetric where the statistic is.

Adding a statistic means adding it to ``STATISTICS``; nothing else changes (and, if it is
symmetric in its two arguments, to ``SYMMETRIC``). PSI and Jensen-Shannon are symmetric only
given the bins, and their bins come from the reference; Wasserstein is divided by the
reference's IQR: none of the three is symmetric as ``compare(a, b)``.

The second half runs the same checks on ``between(reference_profile, window_profile)``, the
form the monitor uses, over every profile kind the statistic takes (PSI and JS take both).
"""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt
import pytest

from taxiway.errors import MonitoringError
from taxiway.monitoring.profiles import CategoricalProfile, NumericProfile, Profile
from taxiway.monitoring.statistics import (
    STATISTICS,
    Cells,
    Statistic,
    cells_between,
    default_statistic,
)

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


# --- between(reference_profile, current_profile): the same suite on profiles -------------


def profile_of(
    kind: str, sample: npt.NDArray[np.generic], reference: Profile | None = None
) -> Profile:
    """The reference profile of ``sample``, or a window profile of it on ``reference``'s bins."""
    if reference is None:
        if kind == "numeric":
            return NumericProfile.reference(sample)
        return CategoricalProfile.reference(sample)
    window = reference.empty_like()
    window.update(sample)
    return window


def kinds_of(statistic: Statistic) -> list[str]:
    return sorted(statistic.kinds)


def test_between_a_profile_and_itself_is_zero(statistic: Statistic) -> None:
    for kind in kinds_of(statistic):
        ref = profile_of(kind, reference(kind))
        window = profile_of(kind, reference(kind), ref)
        assert statistic.between(ref, window) == pytest.approx(0.0, abs=1e-12)
        assert statistic.between(ref, ref) == pytest.approx(0.0, abs=1e-12)


def test_between_grows_with_the_shift(statistic: Statistic) -> None:
    for kind in kinds_of(statistic):
        ref = profile_of(kind, reference(kind))
        values = [statistic.between(ref, profile_of(kind, shifted(kind, s), ref)) for s in range(5)]
        assert all(value >= 0.0 for value in values), values
        assert all(b >= a - TOLERANCE for a, b in itertools.pairwise(values)), (kind, values)
        assert values[-1] > values[0] + 0.1 * max(values[-1], 1e-9), values


def test_between_agrees_with_compare_on_the_samples(statistic: Statistic) -> None:
    """Deciles and labels are the same cells as compare's: equal; KS reads the CDF at the fine
    edges only (within one fine bin's mass); Wasserstein spreads values evenly within a cell
    (2% high at a 1 sd shift, where 9% of the window sits in the wide top fine bin)."""
    kind = statistic.kind
    for step in (1, 3):
        a, b = reference(kind), shifted(kind, step)
        ref = profile_of(kind, a)
        got = statistic.between(ref, profile_of(kind, b, ref))
        want = statistic.compare(a, b)
        if statistic.name == "ks":
            assert want - 0.011 <= got <= want + 1e-12
        elif statistic.name == "wasserstein":
            assert got == pytest.approx(want, rel=0.05, abs=0.005)
        else:
            assert got == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_of_cells_scores_many_windows_like_between_one_by_one(statistic: Statistic) -> None:
    for kind in kinds_of(statistic):
        ref = profile_of(kind, reference(kind))
        windows = [profile_of(kind, shifted(kind, s), ref) for s in range(5)]
        cells = [cells_between(ref, window) for window in windows]
        if kind == "categorical":  # the same labels in every window: stack the rows
            assert len({c.reference.size for c in cells}) == 1
        stacked = Cells(
            cells[0].kind,
            cells[0].reference,
            np.vstack([c.windows for c in cells]),
            None
            if cells[0].points is None
            else np.vstack([c.points for c in cells if c.points is not None]),
            cells[0].scale,
        )
        one_by_one = [statistic.between(ref, window) for window in windows]
        assert statistic.of_cells(stacked).tolist() == pytest.approx(one_by_one, rel=1e-12)


def test_a_profile_of_another_kind_is_refused(statistic: Statistic) -> None:
    other = ({"numeric", "categorical"} - set(statistic.kinds)) or set()
    for kind in other:
        ref = profile_of(kind, reference(kind))
        with pytest.raises(MonitoringError, match="compares"):
            statistic.between(ref, ref)


def test_an_empty_profile_is_refused(statistic: Statistic) -> None:
    kind = statistic.kind
    ref = profile_of(kind, reference(kind))
    with pytest.raises(ValueError, match="empty"):
        statistic.between(ref, ref.empty_like())


def test_default_statistic_fits_the_kind() -> None:
    for choice in [None, *sorted(STATISTICS)]:
        for kind in ("numeric", "categorical"):
            assert kind in default_statistic(kind, choice).kinds
    with pytest.raises(MonitoringError, match="no drift statistic"):
        default_statistic("numeric", "t-test")
