"""The protocol every drift statistic follows, and the binning they share.

The input form is the same for every statistic: two samples, ``reference`` (what the model
was trained on) and ``current`` (a window of the prediction log), each one-dimensional.
Numeric statistics take numbers; categorical ones take category labels (strings, or any
labels numpy can sort together). A statistic that needs bins makes them itself from the
reference (:func:`reference_edges`), so callers never pass bins.
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

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

    def compare(self, reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
        """The statistic between two one-dimensional samples (non-negative)."""
        ...


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
