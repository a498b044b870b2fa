"""One BLAS thread around implicit's fit and scoring.

implicit runs its own threads and warns (an error under pytest's filterwarnings) when the BLAS
pool has more than one; a BLAS pool on top of implicit's threads also slows it down.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from threadpoolctl import threadpool_limits

__all__ = ["one_blas_thread"]


def one_blas_thread() -> AbstractContextManager[Any]:
    """A context in which BLAS uses one thread."""
    limits: AbstractContextManager[Any] = threadpool_limits(1, "blas")
    return limits
