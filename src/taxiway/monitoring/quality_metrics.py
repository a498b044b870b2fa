"""The numbers behind quality monitoring: ROC AUC by ranks, its expectation under calibrated
probabilities, the equal-mass calibration error, and an isotonic calibration map; pure numpy.

Definitions (each function does one of them):

* **ROC AUC** is the Mann-Whitney statistic: the share of (positive, negative) pairs in which
  the positive scores higher, a tie counting one half. Computed from the average ranks of the
  scores (ties share their mean rank), so it equals scikit-learn's ``roc_auc_score``. One class
  only: ``None`` (undefined, never a made-up number).
* **Expected ROC AUC** (CBPE): the labels are unknown but each row ``i`` is positive with the
  calibrated probability ``c_i``. The expected number of correctly ordered pairs (ranked by the
  raw scores, a tie counting one half) divided by the expected number of (positive, negative)
  pairs, both over pairs of distinct rows: ``E[pairs] = S1*S0 - sum c(1-c)`` with
  ``S1 = sum c`` and ``S0 = sum (1-c)``. This is NannyML's estimate (an expected ROC curve from
  expected true- and false-positive counts at every threshold) up to the ``i = j`` terms,
  which vanish as ``1/n``.
* **ECE** (expected calibration error) on 15 equal-mass bins: rows sorted by probability cut
  into 15 groups of equal size (differing by at most one); the row-weighted mean of
  ``|mean probability - observed rate|``. Equal mass, unlike ``models.metrics``' 10 equal-width
  bins, so a model whose scores crowd near 0 still gets 15 informative bins.
* **Isotonic calibration**: the non-decreasing step function of the score closest to the labels
  in squared error (pool-adjacent-violators; equal scores pooled first). Stored as the points
  scikit-learn's ``IsotonicRegression`` keeps (each flat run's first and last score) and applied
  by linear interpolation between them, clipped at the ends, so it maps scores exactly as
  ``IsotonicRegression(out_of_bounds="clip")`` does.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "ECE_BINS",
    "apply_calibration",
    "auc_standard_error",
    "calibration_error",
    "calibration_noise",
    "expected_roc_auc",
    "fit_isotonic",
    "log_loss",
    "roc_auc",
]

ECE_BINS: Final = 15
"""Equal-mass bins of the expected calibration error."""
_CLIP: Final = 1e-15

Floats = npt.NDArray[np.float64]


def _groups(sorted_scores: Floats) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Start and end (exclusive) of each run of equal values in sorted scores."""
    n = len(sorted_scores)
    if not n:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    return starts, np.r_[starts[1:], n].astype(np.intp)


def roc_auc(scores: npt.ArrayLike, labels: npt.ArrayLike) -> float | None:
    """ROC AUC of ``scores`` for 0/1 ``labels`` by average ranks (ties count one half).

    >>> roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    0.75
    >>> roc_auc([0.5, 0.5], [0, 1]), roc_auc([0.2, 0.3], [1, 1])
    (0.5, None)
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    positives = int(y.sum())
    negatives = len(y) - positives
    if not positives or not negatives:
        return None
    order = np.argsort(s)  # within a run of equal scores the order does not matter
    starts, ends = _groups(s[order])
    ranks = np.repeat((starts + ends + 1) / 2.0, ends - starts)  # 1-based mean rank of a run
    rank_sum = float(ranks[y[order]].sum())
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def expected_roc_auc(scores: npt.ArrayLike, probabilities: npt.ArrayLike) -> float | None:
    """The ROC AUC expected of ``scores`` when row ``i`` is positive with ``probabilities[i]``
    (pairs ordered by the scores; see the module's definition). ``None`` when no pair of a
    positive and a negative is expected (every probability 0, or every one 1).

    >>> expected_roc_auc([0.1, 0.9], [0.0, 1.0])
    1.0
    >>> round(expected_roc_auc([0.1, 0.2, 0.3], [0.5, 0.5, 0.5]), 6)
    0.5
    >>> expected_roc_auc([0.3, 0.6], [1.0, 1.0]) is None
    True
    """
    s = np.asarray(scores, dtype=np.float64)
    c = np.asarray(probabilities, dtype=np.float64)
    order = np.argsort(s)  # runs of equal scores are summed: their inner order is free
    s, c = s[order], c[order]
    starts, _ = _groups(s)
    if not len(starts):
        return None
    pos = np.add.reduceat(c, starts)  # expected positives per run of equal scores
    neg = np.add.reduceat(1.0 - c, starts)
    self_pairs = np.add.reduceat(c * (1.0 - c), starts)
    below = np.r_[0.0, np.cumsum(neg)[:-1]]  # expected negatives scored strictly lower
    ordered = float(np.sum(pos * below) + 0.5 * np.sum(pos * neg - self_pairs))
    pairs = float(c.sum() * (1.0 - c).sum() - np.sum(c * (1.0 - c)))
    if pairs <= 1e-12:
        return None
    return min(1.0, max(0.0, ordered / pairs))


def auc_standard_error(auc: float | None, positives: float, negatives: float) -> float | None:
    """The standard error of a ROC AUC of ``auc`` measured on this many positives and
    negatives (Hanley and McNeil, 1982): how far a window's AUC moves by chance alone, so an
    alert can ask for more than noise. ``None`` when undefined (no AUC, under one of a class).

    >>> round(auc_standard_error(0.85, 100, 300), 4), round(auc_standard_error(0.85, 10_000, 30_000), 4)
    (0.0254, 0.0025)
    """
    if auc is None or positives < 1 or negatives < 1:
        return None
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    variance = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)
    ) / (positives * negatives)
    return float(np.sqrt(max(variance, 0.0)))


def calibration_error(
    probabilities: npt.ArrayLike, labels: npt.ArrayLike, bins: int = ECE_BINS
) -> float | None:
    """Expected calibration error on ``bins`` equal-mass bins (fewer rows than bins: one row
    a bin). ``None`` for no rows.

    >>> round(calibration_error([0.2, 0.2, 0.8, 0.8], [0, 1, 1, 1], bins=2), 6)
    0.25
    >>> calibration_error([0.5] * 4, [0, 1, 0, 1], bins=2)
    0.0
    """
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    n = len(p)
    if not n:
        return None
    order = np.argsort(p, kind="stable")
    starts = np.unique(np.linspace(0, n, min(bins, n) + 1).astype(np.intp)[:-1])
    gaps = np.abs(np.add.reduceat(p[order], starts) - np.add.reduceat(y[order], starts))
    return float(gaps.sum() / n)


def calibration_noise(probabilities: npt.ArrayLike, bins: int = ECE_BINS) -> float | None:
    """The ECE a perfectly calibrated model would show on these rows from sampling alone
    (``sqrt(2/pi) * sqrt(sum c(1-c))`` per bin, the mean of a normal's absolute value): an ECE
    bound below it cannot be met, whatever the model.

    >>> round(calibration_noise([0.5] * 1500), 4)
    0.0399
    """
    c = np.sort(np.asarray(probabilities, dtype=np.float64))
    n = len(c)
    if not n:
        return None
    starts = np.unique(np.linspace(0, n, min(bins, n) + 1).astype(np.intp)[:-1])
    spread = np.sqrt(np.add.reduceat(c * (1.0 - c), starts))
    return float(np.sqrt(2 / np.pi) * spread.sum() / n)


def log_loss(probabilities: npt.ArrayLike, labels: npt.ArrayLike) -> float | None:
    """Mean negative log likelihood of 0/1 ``labels`` (probabilities clipped at 1e-15).

    >>> round(log_loss([0.8, 0.4], [1, 0]), 6)
    0.366985
    """
    p = np.clip(np.asarray(probabilities, dtype=np.float64), _CLIP, 1 - _CLIP)
    y = np.asarray(labels, dtype=np.float64)
    if not len(p):
        return None
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _pool_adjacent_violators(values: Floats, weights: Floats) -> Floats:
    """The non-decreasing fit of ``values`` (weighted least squares), one value per input."""
    means: list[float] = []
    masses: list[float] = []
    lengths: list[int] = []
    for value, weight in zip(values.tolist(), weights.tolist(), strict=True):
        mean, mass, length = value, weight, 1
        while means and means[-1] >= mean:  # pool with the block before while it violates
            mean = (means[-1] * masses[-1] + mean * mass) / (masses[-1] + mass)
            mass += masses.pop()
            length += lengths.pop()
            means.pop()
        means.append(mean)
        masses.append(mass)
        lengths.append(length)
    return np.repeat(np.asarray(means), lengths)


def fit_isotonic(scores: npt.ArrayLike, labels: npt.ArrayLike) -> tuple[Floats, Floats]:
    """The isotonic calibration map of ``scores`` to the observed rate of ``labels``, as
    ``(x, y)`` points for :func:`apply_calibration` (each flat run's first and last score).

    >>> x, y = fit_isotonic([0.1, 0.2, 0.3, 0.4], [0, 1, 0, 1])
    >>> x.tolist(), y.tolist()
    ([0.1, 0.2, 0.3, 0.4], [0.0, 0.5, 0.5, 1.0])
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    order = np.argsort(s)  # runs of equal scores are pooled: their inner order is free
    s, y = s[order], y[order]
    starts, ends = _groups(s)
    if not len(starts):
        return np.empty(0), np.empty(0)
    counts = (ends - starts).astype(np.float64)
    x = s[starts]
    fitted = _pool_adjacent_violators(np.add.reduceat(y, starts) / counts, counts)
    keep = np.ones(len(x), dtype=bool)
    if len(x) > 2:  # drop the inner points of flat runs: interpolation gives them anyway
        keep[1:-1] = (fitted[1:-1] != fitted[:-2]) | (fitted[1:-1] != fitted[2:])
    return x[keep], fitted[keep]


def apply_calibration(x: npt.ArrayLike, y: npt.ArrayLike, scores: npt.ArrayLike) -> Floats:
    """Calibrated probabilities of ``scores`` by the map ``(x, y)`` (linear between its points,
    clipped at its ends).

    >>> apply_calibration([0.1, 0.2, 0.3, 0.4], [0.0, 0.5, 0.5, 1.0], [0.0, 0.15, 0.35, 0.9])
    array([0.  , 0.25, 0.75, 1.  ])
    """
    out: Floats = np.interp(np.asarray(scores, dtype=np.float64), np.asarray(x), np.asarray(y))
    return out
