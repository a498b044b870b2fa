"""False alarms with calibrated thresholds, on fresh data from the reference's distribution.

Every feature has a known generating distribution. Its reference is a sample of ``N_REF``
rows from it; its thresholds are calibrated on that reference alone (as training does); its
windows are FRESH draws from the same distribution, never resamples of the reference. At
n = 1M a raw draw per window is too slow, so a window is drawn as what the profile keeps:
``Multinomial(n, true cell probabilities)`` over the reference's fine bins (exact for the
counts, from the distribution's CDF at the reference's edges), plus the extremes beyond the
reference's range from the distribution's quantile function. ``test_binned_windows_match_raw
_draws`` checks that path against raw draws at n = 10k.

An alert is what the monitor raises: the statistic over its threshold in 2 of the last 3
windows (hysteresis). The per-window rate (no hysteresis) is checked too: about 1%.

At n >> N_REF the statistic between the reference and a window mostly measures the
reference's own sampling error, which is the same in every window: a healthy feature then
alerts in (nearly) none or (nearly) all of its windows, and calibration's floor makes the
second case rare (about 0.1% of references: ``test_at_1m_few_references_alert_for_good``),
where resampling the reference alone would alert on most healthy windows
(``test_resampling_the_reference_alone_would_alert_at_1m``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Final

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taxiway.monitoring.calibration import calibrate, resample_cells, threshold_for
from taxiway.monitoring.profiles import CategoricalProfile, NumericProfile, Profile
from taxiway.monitoring.statistics import STATISTICS

Floats = npt.NDArray[np.float64]
N_REF: Final = 50_000
WINDOWS: Final = 200
NORMAL = NormalDist()
_phi = np.vectorize(NORMAL.cdf, otypes=[float])
_phi_inv = np.vectorize(NORMAL.inv_cdf, otypes=[float])


@dataclass(frozen=True)
class Numeric:
    """A generating distribution: sampler, P(X <= x), P(X < x), quantile function."""

    name: str
    sample: Callable[[np.random.Generator, int], Floats]
    cdf: Callable[[Floats], Floats]
    cdf_left: Callable[[Floats], Floats]
    ppf: Callable[[Floats], Floats]

    def shifted(self, by: float) -> Numeric:
        return Numeric(
            f"{self.name}+{by}",
            lambda rng, n: self.sample(rng, n) + by,
            lambda x: self.cdf(x - by),
            lambda x: self.cdf_left(x - by),
            lambda u: self.ppf(u) + by,
        )


@dataclass(frozen=True)
class Labels:
    name: str
    shares: dict[str, float] = field(default_factory=dict)

    def sample(self, rng: np.random.Generator, n: int) -> npt.NDArray[np.str_]:
        return rng.choice(list(self.shares), size=n, p=list(self.shares.values()))

    def moved(self, share: float) -> Labels:
        """``share`` of the total taken from the first label and given to the last."""
        labels = list(self.shares)
        shares = dict(self.shares)
        shares[labels[0]] -= share
        shares[labels[-1]] += share
        return Labels(f"{self.name}~{share}", shares)


def continuous(
    name: str,
    sample: Callable[[np.random.Generator, int], Floats],
    cdf: Callable[[Floats], Floats],
    ppf: Callable[[Floats], Floats],
) -> Numeric:
    return Numeric(name, sample, cdf, cdf, ppf)


def normal(mu: float, sigma: float) -> Numeric:
    return continuous(
        f"normal({mu},{sigma})",
        lambda rng, n: rng.normal(mu, sigma, n),
        lambda x: _phi((x - mu) / sigma),
        lambda u: mu + sigma * _phi_inv(np.clip(u, 1e-300, 1 - 1e-16)),
    )


LOGNORMAL = continuous(
    "lognormal",
    lambda rng, n: rng.lognormal(0.0, 1.0, n),
    lambda x: np.where(x > 0, _phi(np.log(np.maximum(x, 1e-300))), 0.0),
    lambda u: np.exp(_phi_inv(np.clip(u, 1e-300, 1 - 1e-16))),
)
EXPONENTIAL = continuous(
    "exponential",
    lambda rng, n: rng.exponential(2.0, n),
    lambda x: np.where(x > 0, -np.expm1(-np.maximum(x, 0.0) / 2.0), 0.0),
    lambda u: -2.0 * np.log1p(-u),
)
UNIFORM = continuous(
    "uniform",
    lambda rng, n: rng.uniform(0.0, 1.0, n),
    lambda x: np.clip(x, 0.0, 1.0),
    lambda u: u,
)


def _mixture_ppf(u: Floats) -> Floats:
    below = 0.4 * NORMAL.cdf(-5.0)
    lower = 5.0 + _phi_inv(np.clip(u / 0.4, 1e-300, 1 - 1e-16))
    upper = 5.0 + _phi_inv(np.clip((u - 0.6) / 0.4, 1e-300, 1 - 1e-16))
    return np.where(u < below, lower, np.where(u < below + 0.6, 0.0, upper))


ZEROS_AND_NORMAL = Numeric(  # 60% exact zeros (a point mass: duplicate edges), 40% N(5, 1)
    "zeros+normal",
    lambda rng, n: np.where(rng.random(n) < 0.6, 0.0, rng.normal(5.0, 1.0, n)),
    lambda x: 0.6 * (x >= 0) + 0.4 * _phi(x - 5.0),
    lambda x: 0.6 * (x > 0) + 0.4 * _phi(x - 5.0),
    _mixture_ppf,
)
_BINOMIAL_CDF = np.cumsum([math.comb(20, k) * 0.3**k * 0.7 ** (20 - k) for k in range(21)])
BINOMIAL = Numeric(  # integers 0..20: ties everywhere
    "binomial(20,0.3)",
    lambda rng, n: rng.binomial(20, 0.3, n).astype(np.float64),
    lambda x: np.where(x < 0, 0.0, _BINOMIAL_CDF[np.clip(np.floor(x), 0, 20).astype(int)]),
    lambda x: np.where(x <= 0, 0.0, _BINOMIAL_CDF[np.clip(np.ceil(x) - 1, 0, 20).astype(int)]),
    lambda u: np.searchsorted(_BINOMIAL_CDF, u, side="left").astype(np.float64),
)
THREE = Labels("three", {"a": 0.5, "b": 0.3, "c": 0.2})
SIX = Labels("six", {f"l{i}": s for i, s in enumerate([0.3, 0.25, 0.2, 0.1, 0.1, 0.05])})
RARE = Labels("rare", {"no": 0.9, "yes": 0.1})

NUMERIC_STATISTICS = ("psi", "jensen_shannon", "ks", "wasserstein")
DISTRIBUTIONS: list[Numeric | Labels] = [
    normal(0.0, 1.0),
    normal(50.0, 10.0),
    LOGNORMAL,
    EXPONENTIAL,
    UNIFORM,
    ZEROS_AND_NORMAL,
    BINOMIAL,
]
FEATURES: list[tuple[Numeric | Labels, str]] = [
    (d, NUMERIC_STATISTICS[(i + j) % 4]) for i, d in enumerate(DISTRIBUTIONS) for j in (0, 2)
] + [(d, s) for d in (THREE, SIX, RARE) for s in ("chi2", "linf")]
assert len(FEATURES) == 20


@dataclass
class Feature:
    truth: Numeric | Labels
    statistic: str
    reference: Profile
    table: dict[int, float]


@pytest.fixture(scope="module")
def features() -> list[Feature]:
    """Twenty features: a reference of N_REF fresh rows each, thresholds as training makes."""
    built = []
    for index, (truth, name) in enumerate(FEATURES):
        rng = np.random.default_rng(1_000 + index)
        values = truth.sample(rng, N_REF)
        reference: Profile = (
            NumericProfile.reference(values)
            if isinstance(truth, Numeric)
            else CategoricalProfile.reference(values)
        )
        built.append(
            Feature(truth, name, reference, calibrate(reference, STATISTICS[name], seed=index))
        )
    return built


def cell_probabilities(reference: NumericProfile, truth: Numeric) -> Floats:
    """The true probability of each of the reference's cells (below, 100 fine bins, above)."""
    inner = np.concatenate([[reference.low], reference.edges, [reference.high]])
    left = truth.cdf_left(inner)  # fine bin j is [e_j, e_j+1): P(X < e_j+1) - P(X < e_j)
    top = float(truth.cdf(np.array([reference.high]))[0])
    p = np.concatenate([[left[0]], np.diff(left[:-1]), [top - left[-2]], [1.0 - top]])
    p = np.maximum(p, 0.0)
    shares: Floats = p / p.sum()
    return shares


def binned_windows(
    feature: Feature, truth: Numeric | Labels, n: int, count: int, rng: np.random.Generator
) -> list[Profile]:
    """``count`` fresh windows of ``n`` rows from ``truth``, drawn as the profile's counts."""
    reference = feature.reference
    if isinstance(truth, Labels):
        drawn = rng.multinomial(n, list(truth.shares.values()), size=count)
        return [
            CategoricalProfile({k: int(c) for k, c in zip(truth.shares, row, strict=True) if c})
            for row in drawn
        ]
    assert isinstance(reference, NumericProfile)
    cells = rng.multinomial(n, cell_probabilities(reference, truth), size=count)
    low_mass = float(truth.cdf_left(np.array([reference.low]))[0])
    high_mass = 1.0 - float(truth.cdf(np.array([reference.high]))[0])
    windows: list[Profile] = []
    for row in cells:
        counts = row[1:-1].copy()
        counts[0] += row[0]
        counts[-1] += row[-1]
        below, above = int(row[0]), int(row[-1])
        # the extremes: the smallest of `below` uniform draws under P(X < low), mapped back
        lowest = (
            float(truth.ppf(np.array([low_mass * (1 - rng.random() ** (1 / below))]))[0])
            if below
            else reference.low
        )
        highest = (
            float(truth.ppf(np.array([1 - high_mass * (1 - rng.random() ** (1 / above))]))[0])
            if above
            else reference.high
        )
        windows.append(
            NumericProfile(
                reference.edges,
                reference.low,
                reference.high,
                counts=counts,
                below=below,
                above=above,
                minimum=min(lowest, reference.low),
                maximum=max(highest, reference.high),
            )
        )
    return windows


def raw_windows(
    feature: Feature, truth: Numeric | Labels, n: int, count: int, rng: np.random.Generator
) -> list[Profile]:
    windows = []
    for _ in range(count):
        window = feature.reference.empty_like()
        window.update(truth.sample(rng, n))
        windows.append(window)
    return windows


def scores(feature: Feature, windows: list[Profile]) -> Floats:
    statistic = STATISTICS[feature.statistic]
    return np.array([statistic.between(feature.reference, window) for window in windows])


def alerts(over: npt.NDArray[np.bool_], k: int = 2, m: int = 3) -> npt.NDArray[np.bool_]:
    """Hysteresis: a window alerts when at least k of the last m windows are over."""
    padded = np.concatenate([np.zeros(m - 1, dtype=int), over.astype(int)])
    return np.convolve(padded, np.ones(m, dtype=int), mode="valid") >= k


@pytest.mark.parametrize("n", [200, 10_000, 1_000_000])
def test_stationary_windows_raise_at_most_2_percent_false_alerts(
    features: list[Feature], n: int
) -> None:
    rng = np.random.default_rng(n)
    over = []
    for feature in features:
        values = scores(feature, binned_windows(feature, feature.truth, n, WINDOWS, rng))
        exceeded = values > threshold_for(feature.table, n)
        over.append(exceeded)
        alert_rate = float(alerts(exceeded).mean())
        assert alert_rate <= 0.02, (feature.truth.name, feature.statistic, alert_rate)
    per_window = float(np.mean(over))
    assert per_window <= 0.02, per_window
    if n < N_REF:  # below the reference's size: about 1% of feature-windows, not ~0
        assert per_window >= 0.003, per_window


@pytest.mark.parametrize("index", [0, 4, 5, 10, 12, 14, 17])
def test_binned_windows_match_raw_draws(features: list[Feature], index: int) -> None:
    """At n = 10k the statistic over binned windows has the law it has over raw draws."""
    feature = features[index]
    rng = np.random.default_rng(index)
    binned = scores(feature, binned_windows(feature, feature.truth, 10_000, 150, rng))
    raw = scores(feature, raw_windows(feature, feature.truth, 10_000, 150, rng))
    d = STATISTICS["ks"].compare(binned, raw)
    assert d < 0.2, (feature.truth.name, feature.statistic, d)  # two-sample KS, alpha ~ 0.001
    threshold = threshold_for(feature.table, 10_000)
    assert float(np.mean(raw > threshold)) <= 0.04


@pytest.mark.parametrize("shifted", [0, 6, 9, 14, 17])
def test_a_shift_in_one_of_twenty_features_alerts_on_that_feature_only(
    features: list[Feature], shifted: int
) -> None:
    n, count = 10_000, WINDOWS
    rng = np.random.default_rng(100 + shifted)
    for index, feature in enumerate(features):
        truth = feature.truth
        if index == shifted:
            truth = (
                truth.moved(0.05) if isinstance(truth, Labels) else truth.shifted(shift_of(feature))
            )
        values = scores(feature, binned_windows(feature, truth, n, count, rng))
        rate = float(alerts(values > threshold_for(feature.table, n)).mean())
        if index == shifted:
            assert rate >= 0.9, (truth.name, feature.statistic, rate)
        else:
            assert rate <= 0.02, (truth.name, feature.statistic, rate)


def shift_of(feature: Feature) -> float:
    """A quarter of the reference's standard deviation (one unit for integers)."""
    reference = feature.reference
    assert isinstance(reference, NumericProfile)
    return 1.0 if feature.truth is BINOMIAL else 0.25 * reference.std()


def test_at_1m_few_references_alert_for_good() -> None:
    """Over 200 references of one distribution, a fresh 1M-row window exceeds its threshold
    for about 0.1% of them (the floor; without it, 1%: 2 of 200, alerting in every window)."""
    truth = normal(0.0, 1.0)
    rng = np.random.default_rng(7)
    over = 0
    for index in range(200):
        reference = NumericProfile.reference(truth.sample(rng, 10_000))
        feature = Feature(truth, "psi", reference, {})
        feature.table = calibrate(reference, STATISTICS["psi"], sizes=(1_000_000,), seed=index)
        value = scores(feature, binned_windows(feature, truth, 1_000_000, 1, rng))[0]
        over += value > feature.table[1_000_000]
    assert over <= 1, over  # expected 0.2


def test_resampling_the_reference_alone_would_alert_at_1m(features: list[Feature]) -> None:
    """The choice calibration.py documents: a threshold from Multinomial(n, reference shares)
    ignores the reference's own noise, and fresh healthy windows of 1M rows exceed it."""
    feature = features[0]
    reference = feature.reference
    assert isinstance(reference, NumericProfile)
    rng = np.random.default_rng(8)
    shares = np.tile(reference.counts / reference.known, (200, 1))
    shares = np.column_stack([np.zeros(200), shares, np.zeros(200)])
    naive = np.quantile(
        STATISTICS["psi"].of_cells(resample_cells(reference, 1_000_000, shares, rng)), 0.99
    )
    values = scores(feature, binned_windows(feature, feature.truth, 1_000_000, WINDOWS, rng))
    assert float(np.mean(values > naive)) > 0.5
    assert float(np.mean(values > threshold_for(feature.table, 1_000_000))) <= 0.02


SAMPLES = st.lists(
    st.floats(min_value=-1e4, max_value=1e4, allow_nan=False), min_size=2, max_size=300
)


@settings(derandomize=True, deadline=None, max_examples=50)
@given(SAMPLES, st.lists(st.floats(min_value=0.0, max_value=1e4), min_size=2, max_size=6))
def test_between_is_zero_on_itself_and_monotone_in_a_shift(
    sample: list[float], shifts: list[float]
) -> None:
    values = np.asarray(sample)
    reference = NumericProfile.reference(values)
    for name in NUMERIC_STATISTICS:
        itself = reference.empty_like()
        itself.update(values)
        assert STATISTICS[name].between(reference, itself) == pytest.approx(0.0, abs=1e-12)
    for name in ("ks", "wasserstein"):  # a translation moves every CDF point one way
        got = []
        for shift in sorted(shifts):
            window = reference.empty_like()
            window.update(values + shift)
            got.append(STATISTICS[name].between(reference, window))
        assert all(b >= a - 1e-9 for a, b in itertools.pairwise(got)), (name, got)


@pytest.mark.parametrize("name", ["psi", "jensen_shannon", "ks", "wasserstein"])
def test_numeric_statistics_grow_with_a_mean_shift_on_fresh_data(name: str) -> None:
    rng = np.random.default_rng(9)
    reference = NumericProfile.reference(rng.normal(size=N_REF))
    got = []
    for shift in (0.0, 0.05, 0.1, 0.2, 0.4, 0.8):
        window = reference.empty_like()
        window.update(rng.normal(shift, 1.0, 100_000))
        got.append(STATISTICS[name].between(reference, window))
    assert got[0] < 0.2 * got[2]
    assert all(b > a for a, b in itertools.pairwise(got)), got


@pytest.mark.parametrize("name", ["chi2", "linf", "psi", "jensen_shannon"])
def test_categorical_statistics_grow_with_a_moved_share(name: str) -> None:
    reference = CategoricalProfile({"a": 5_000, "b": 3_000, "c": 2_000})
    got = []
    for moved in (0, 100, 200, 400, 800):
        window = CategoricalProfile({"a": 5_000 - moved, "b": 3_000, "c": 2_000 + moved})
        got.append(STATISTICS[name].between(reference, window))
    assert got[0] == pytest.approx(0.0, abs=1e-12)
    assert all(b > a for a, b in itertools.pairwise(got)), got
