"""What a generator is given, checked once: the training matrix and the rows top() scores.

A generator fits on ``train.matrix()`` (users x catalog items, weights summed) and scores rows
of the same columns: a row is one user's history as of now, which may belong to a user unseen
at fit. Everything that would otherwise surface as a numpy or scipy trace (no interactions, a
history coded against another catalog) is refused here with what to do instead.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from taxiway.errors import ModelError
from taxiway.recommend.interactions import Interactions

__all__ = ["empty_rows", "exclusions", "histories", "training_matrix"]


def training_matrix(train: Interactions, kind: str) -> sp.csr_matrix:
    """``train.matrix()``, refused when it holds no interaction or no item."""
    if train.n_items == 0 or len(train) == 0:
        raise ModelError(
            f"cannot fit {kind}: the training interactions are empty "
            f"({len(train)} interactions over {train.n_items} items)",
            fix="move the split's cutoff later, or check the interactions source's rows",
        )
    matrix = train.matrix()
    matrix.eliminate_zeros()
    return matrix


def histories(history: sp.spmatrix | sp.sparray, n_items: int) -> sp.csr_matrix:
    """``history`` as CSR float32 with no stored zeros, its columns checked against the fit."""
    shape = history.shape
    if shape is None or len(shape) != 2 or shape[1] != n_items:
        raise ModelError(
            f"the history matrix has shape {shape}, but the generator was fitted on "
            f"{n_items} items",
            fix="code histories with the items of the Interactions the generator was fitted on",
        )
    return _csr_float32(history)


def exclusions(exclude: sp.spmatrix | sp.sparray | None, shape: tuple[int, int]) -> sp.csr_matrix:
    """``exclude`` as CSR with no stored zeros (an all-zero matrix when None)."""
    if exclude is None:
        return sp.csr_matrix(shape, dtype=np.float32)
    if exclude.shape != shape:
        raise ModelError(
            f"the exclude matrix has shape {exclude.shape}, the history {shape}",
            fix="give exclude one row per history row, with the same item columns",
        )
    return _csr_float32(exclude)


def empty_rows(history: sp.csr_matrix) -> NDArray[np.bool_]:
    """The rows with no interaction: a personalised generator has nothing to go on there."""
    return np.asarray(np.diff(history.indptr) == 0)


def _csr_float32(matrix: sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    """``matrix`` as CSR float32 without stored zeros: itself when it already is one (a
    request's rows: no copy, no scipy construction), else a converted copy.

    >>> m = sp.csr_matrix(np.array([[0, 2], [0, 0]], dtype=np.float32))
    >>> _csr_float32(m) is m
    True
    >>> m.data[0] = 0
    >>> _csr_float32(m).nnz
    0
    """
    if isinstance(matrix, sp.csr_matrix) and matrix.dtype == np.float32 and matrix.data.all():
        return matrix
    rows = sp.csr_matrix(matrix, dtype=np.float32)
    rows.eliminate_zeros()
    return rows
