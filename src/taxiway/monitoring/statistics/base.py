"""The protocol every drift statistic follows, and the binning they share.

The input form is the same for every statistic: two samples, ``reference`` (what the model
was trained on) and ``current`` (a window of the prediction log), each one-dimensional.
Numeric statistics take numbers; categorical ones take category labels (strings, or any
labels numpy can sort together). A statistic that needs bins makes them itself from the
reference (:func:`reference_edges`), so callers never pass bins.

The monitor never holds samples: it compares *profiles* (``taxiway.monitoring.profiles``),
``between(reference, current)``. Both profiles are first laid on the same :class:`Cells`
(:func:`cells_between`), and every statistic is computed from cells, vectorised over many
windows at once (``of_cells``), which is what calibration needs: thousands of resampled
windows scored in one numpy pass.

Numeric cells (``edges.size + 3`` of them, 102 for a full reference): the window's values
below the reference's minimum ``low``; the 100 fine bins (the first from ``low``, the last up
to ``high``); the values above ``high``. Their boundaries are
``[a, low, e1, ..., e99, high, b]`` with ``a = min(low, window min)`` and
``b = max(high, window max)``: the outer bins are bounded by the reference's range and the
window's extremes. Categorical cells: the reference's labels (sorted), then labels only the
window has (sorted), where the reference counts 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from taxiway.errors import MonitoringError
from taxiway.monitoring.profiles import CategoricalProfile, NumericProfile, Profile

Kind = Literal["numeric", "categorical"]

N_BINS = 10
"""Binned statistics cut the reference at its deciles."""


@runtime_checkable
class Statistic(Protocol):
    """A drift statistic: 0 for identical samples, larger as ``current`` moves away."""

    @property
    def name(self) -> str:
        """The key in ``STATISTICS`` and in the spec (``psi``, ``ks``, ...)."""
        ...

    @property
    def kind(self) -> Kind:
        """``numeric`` (numbers) or ``categorical`` (category labels)."""
        ...

    @property
    def kinds(self) -> frozenset[Kind]:
        """The profile kinds :meth:`between` accepts (PSI and JS take both)."""
        ...

    def compare(self, reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
        """The statistic between two one-dimensional samples (non-negative)."""
        ...

    def between(self, reference: Profile, current: Profile) -> float:
        """The statistic between two profiles of one column (non-negative)."""
        ...

    def of_cells(self, cells: Cells) -> npt.NDArray[np.float64]:
        """The statistic of each window row of ``cells`` against its reference row."""
        ...


Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Cells:
    """A reference and R windows counted on the same cells (see the module docstring).

    ``reference``: shape (C,); ``windows``: shape (R, C). Numeric cells also carry
    ``points``, the C + 1 cell boundaries (shape (1, C + 1) or (R, C + 1): one row per window
    when their extremes differ) and ``scale``, the reference's spread (:func:`profile_scale`).
    """

    kind: Kind
    reference: Floats
    windows: Floats
    points: Floats | None = None
    scale: float = 1.0

    def deciles(self) -> tuple[Floats, Floats]:
        """Numeric cells summed to the 10 decile counts (below into the first, above into
        the last), for the reference and each window.

        >>> from taxiway.monitoring.profiles import NumericProfile
        >>> ref = NumericProfile.reference(np.arange(100.0))
        >>> cells_between(ref, ref).deciles()[1].tolist()
        [[10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0]]
        """
        return _deciles(self.reference[None, :])[0], _deciles(self.windows)


def _deciles(cells: Floats) -> Floats:
    fine = cells[:, 1:-1].copy()
    fine[:, 0] += cells[:, 0]
    fine[:, -1] += cells[:, -1]
    if fine.shape[1] % 10:
        return fine  # a reference without edges has a single bin
    return np.asarray(fine.reshape(fine.shape[0], 10, -1).sum(axis=2), dtype=np.float64)


def numeric_cells(profile: NumericProfile) -> Floats:
    """A numeric profile's counts on the cells: below, the fine bins in range, above.

    >>> from taxiway.monitoring.profiles import NumericProfile
    >>> window = NumericProfile.reference([0.0, 1.0]).empty_like()
    >>> window.update([-1.0, 0.5, 3.0])
    >>> float(numeric_cells(window).sum()), numeric_cells(window)[[0, -1]].tolist()
    (3.0, [1.0, 1.0])
    """
    inner = profile.counts.astype(np.float64)
    inner[0] -= profile.below
    inner[-1] -= profile.above
    return np.concatenate([[float(profile.below)], inner, [float(profile.above)]])


def numeric_points(reference: NumericProfile, lows: Floats, highs: Floats) -> Floats:
    """The cell boundaries for windows whose extremes are ``lows`` and ``highs`` (one row each).

    >>> from taxiway.monitoring.profiles import NumericProfile
    >>> ref = NumericProfile.reference(np.arange(101.0))
    >>> points = numeric_points(ref, np.array([-5.0]), np.array([50.0]))
    >>> points.shape, points[0, :3].tolist(), points[0, -2:].tolist()
    ((1, 103), [-5.0, 0.0, 1.0], [100.0, 100.0])
    """
    inner = np.concatenate([[reference.low], reference.edges, [reference.high]])
    rows = np.broadcast_to(inner, (lows.size, inner.size))
    return np.column_stack(
        [np.minimum(lows, reference.low), rows, np.maximum(highs, reference.high)]
    )


def profile_scale(profile: NumericProfile) -> float:
    """The reference's spread: its IQR (the 75th minus the 25th percentile edge); its standard
    deviation when the IQR is 0 (over half the values are one number); 1 when that is 0 too.

    >>> from taxiway.monitoring.profiles import NumericProfile
    >>> profile_scale(NumericProfile.reference(np.arange(101.0)))
    50.0
    >>> profile_scale(NumericProfile.reference([0.0] * 90 + [10.0] * 10))
    3.0
    >>> profile_scale(NumericProfile.reference([5.0, 5.0]))
    1.0
    """
    if profile.edges.size == 99:
        iqr = float(profile.edges[74] - profile.edges[24])
        if iqr > 0:
            return iqr
    std = profile.std()
    return std if std > 0 else 1.0


def require_kind(statistic: Statistic, *profiles: Profile) -> None:
    """Refuse profiles of a kind the statistic does not take, or with no known value."""
    for profile in profiles:
        if profile.kind not in statistic.kinds:
            raise MonitoringError(
                f"the {statistic.name} statistic compares "
                f"{' or '.join(sorted(statistic.kinds))} profiles, not {profile.kind} ones",
                fix="pick the statistic per column kind (default_statistic(kind, choice))",
            )
    if profiles[0].kind != profiles[1].kind:
        raise MonitoringError(
            "a numeric and a categorical profile cannot be compared",
            fix="compare the window's profile of a column with that column's reference",
        )
    for profile, what in zip(profiles, ("reference", "current"), strict=True):
        if profile.known == 0:
            raise ValueError(
                f"the {what} profile is empty (no known value): a statistic needs at least one"
                " (check profile.known first; the missing rate is monitored on its own)"
            )


def cells_between(reference: Profile, current: Profile) -> Cells:
    """Lay two profiles of one column on the same cells (one window row).

    >>> from taxiway.monitoring.profiles import CategoricalProfile
    >>> cells = cells_between(CategoricalProfile.reference(["b", "a"]),
    ...                       CategoricalProfile.reference(["z", "a"]))
    >>> cells.reference.tolist(), cells.windows.tolist()
    ([1.0, 1.0, 0.0], [[1.0, 0.0, 1.0]])
    """
    if isinstance(reference, NumericProfile) and isinstance(current, NumericProfile):
        if not np.array_equal(reference.edges, current.edges):
            raise MonitoringError(
                "the window was profiled on other bins than this reference's",
                fix="profile windows with empty_like() of the version's reference profile",
            )
        points = numeric_points(reference, np.array([current.min]), np.array([current.max]))
        return Cells(
            "numeric",
            numeric_cells(reference),
            numeric_cells(current)[None, :],
            points,
            profile_scale(reference),
        )
    if isinstance(reference, CategoricalProfile) and isinstance(current, CategoricalProfile):
        labels = sorted(reference.counts)
        labels += sorted(set(current.counts) - set(reference.counts))
        ref = np.array([reference.counts.get(label, 0) for label in labels], dtype=np.float64)
        cur = np.array([current.counts.get(label, 0) for label in labels], dtype=np.float64)
        return Cells("categorical", ref, cur[None, :])
    raise MonitoringError(
        "a numeric and a categorical profile cannot be compared",
        fix="compare the window's profile of a column with that column's reference",
    )


def numbers(sample: npt.ArrayLike, what: str) -> npt.NDArray[np.float64]:
    """A sample as a flat float array; an empty one, or one with NaN or inf, is refused.

    >>> numbers([3, 1], "reference")
    array([3., 1.])
    >>> numbers([], "current")
    Traceback (most recent call last):
    ...
    ValueError: the current sample is empty: a statistic needs at least one value
    >>> numbers([1.0, float("nan")], "current")
    Traceback (most recent call last):
    ...
    ValueError: the current sample has 1 missing or infinite value(s): drop them first (the missing rate is monitored on its own)
    """
    values = np.asarray(sample, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError(f"the {what} sample is empty: a statistic needs at least one value")
    bad = int(np.count_nonzero(~np.isfinite(values)))
    if bad:
        raise ValueError(
            f"the {what} sample has {bad} missing or infinite value(s): drop them first"
            " (the missing rate is monitored on its own)"
        )
    return values


def reference_edges(reference: npt.ArrayLike, n_bins: int = N_BINS) -> npt.NDArray[np.float64]:
    """The inner bin edges: the reference's quantiles, repeated values merged.

    The outer bins are open (-inf, first edge) and [last edge, +inf), so every current value
    falls in a bin.

    >>> reference_edges(np.arange(10.0), n_bins=2)
    array([4.5])
    >>> reference_edges([1.0, 1.0, 1.0])
    array([1.])
    """
    values = numbers(reference, "reference")
    quantiles = np.quantile(values, np.linspace(0.0, 1.0, n_bins + 1)[1:-1])
    return np.unique(quantiles)


def bin_shares(sample: npt.ArrayLike, edges: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The share of ``sample`` in each of the ``len(edges) + 1`` bins (sums to 1).

    >>> bin_shares([0.0, 1.0, 2.0, 3.0], np.array([1.5]))
    array([0.5, 0.5])
    """
    values = numbers(sample, "binned")
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=edges.size + 1)
    return counts / values.size


def category_counts(
    reference: npt.ArrayLike, current: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Counts of each category seen in either sample, aligned (same category order).

    >>> category_counts(["a", "b", "b"], ["c"])
    (array([1., 2., 0.]), array([0., 0., 1.]))
    """
    ref = np.asarray(reference).ravel()
    cur = np.asarray(current).ravel()
    for sample, what in ((ref, "reference"), (cur, "current")):
        if sample.size == 0:
            raise ValueError(f"the {what} sample is empty: a statistic needs at least one value")
    categories, codes = np.unique(np.concatenate([ref, cur]), return_inverse=True)
    codes = codes.ravel()
    ref_counts = np.bincount(codes[: ref.size], minlength=categories.size)
    cur_counts = np.bincount(codes[ref.size :], minlength=categories.size)
    return ref_counts.astype(np.float64), cur_counts.astype(np.float64)


def shares_of_cells(cells: Cells) -> tuple[Floats, Floats]:
    """The shares compared by binned statistics: deciles for numbers, labels for categories.

    >>> cells = Cells("categorical", np.array([1.0, 3.0]), np.array([[2.0, 2.0]]))
    >>> shares_of_cells(cells)
    (array([0.25, 0.75]), array([[0.5, 0.5]]))
    """
    if cells.kind == "numeric":
        reference, windows = cells.deciles()
    else:
        reference, windows = cells.reference, cells.windows
    totals = windows.sum(axis=1, keepdims=True)
    return reference / reference.sum(), windows / np.where(totals > 0, totals, 1.0)
