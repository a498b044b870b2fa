"""The tail probabilities the rollout's tests need: the standard normal's and chi-square's.

scipy is not a dependency, so they are written here from the standard library. The normal
survival function is ``erfc(z / sqrt 2) / 2`` (exact to double precision, also far in the
tail, where ``1 - cdf`` would round to 0); its quantile is :class:`statistics.NormalDist`'s.
Chi-square's survival function with ``df`` degrees of freedom is the regularized upper
incomplete gamma function ``Q(df / 2, x / 2)``: by its power series below ``a + 1`` (where it
converges fast) and by its continued fraction (modified Lentz) above, to a relative 1e-14.

>>> round(chi2_sf(3.841458820694124, 1), 6)
0.05
>>> round(normal_sf(1.959963984540054), 6)
0.025
>>> round(normal_quantile(0.975), 6)
1.959964
"""

from __future__ import annotations

import math
from statistics import NormalDist

_STANDARD = NormalDist()
_EPSILON = 1e-15
_TINY = 1e-300
_MAX_TERMS = 10_000


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z.

    >>> normal_sf(0.0)
    0.5
    >>> normal_sf(10.0) > 0.0
    True
    """
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def normal_quantile(p: float) -> float:
    """The z with P(Z <= z) = p, for p in (0, 1).

    >>> round(normal_quantile(0.8), 4)
    0.8416
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"a normal quantile needs a probability in (0, 1), not {p}")
    return _STANDARD.inv_cdf(p)


def chi2_sf(x: float, df: int) -> float:
    """P(X > x) for X chi-square with ``df`` degrees of freedom (the test's p-value).

    >>> chi2_sf(0.0, 3)
    1.0
    >>> round(chi2_sf(10.827566170662733, 1), 6)
    0.001
    >>> round(chi2_sf(18.307038053275146, 10), 6)
    0.05
    """
    if df < 1:
        raise ValueError(f"chi-square needs at least 1 degree of freedom, not {df}")
    if x <= 0.0:
        return 1.0
    return gamma_q(df / 2.0, x / 2.0)


def gamma_q(a: float, x: float) -> float:
    """The regularized upper incomplete gamma function Q(a, x) = Γ(a, x) / Γ(a).

    >>> round(gamma_q(1.0, 1.0), 12) == round(math.exp(-1.0), 12)
    True
    """
    if x <= 0.0:
        return 1.0
    if x < a + 1.0:
        return max(0.0, 1.0 - _lower_series(a, x))
    return min(1.0, _upper_fraction(a, x))


def _prefactor(a: float, x: float) -> float:
    return math.exp(-x + a * math.log(x) - math.lgamma(a))


def _lower_series(a: float, x: float) -> float:
    """P(a, x) by its power series: x^a e^-x / Γ(a + 1) * sum x^n / ((a + 1)...(a + n))."""
    term = total = 1.0 / a
    for n in range(1, _MAX_TERMS):
        term *= x / (a + n)
        total += term
        if abs(term) < abs(total) * _EPSILON:
            break
    return total * _prefactor(a, x)


def _upper_fraction(a: float, x: float) -> float:
    """Q(a, x) by its continued fraction, evaluated with the modified Lentz method."""
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for n in range(1, _MAX_TERMS):
        an = -n * (n - a)
        b += 2.0
        d = an * d + b
        d = _TINY if abs(d) < _TINY else d
        c = b + an / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPSILON:
            break
    return h * _prefactor(a, x)
