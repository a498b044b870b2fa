"""One BLAS thread around implicit's fit and scoring.

implicit runs its own threads and warns (an error under pytest's filterwarnings) when the BLAS
pool has more than one; a BLAS pool on top of implicit's threads also slows it down.

The loaded libraries are scanned once (a ``ThreadpoolController`` made on first use, then
reused): ``threadpool_limits`` rescans them on every call, which a scoring call per request
paid each time.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from functools import cache
from typing import Any

from threadpoolctl import ThreadpoolController

__all__ = ["one_blas_thread"]


@cache
def _controller() -> ThreadpoolController:
    """The process's thread pools, scanned once."""
    return ThreadpoolController()


def one_blas_thread() -> AbstractContextManager[Any]:
    """A context in which BLAS uses one thread."""
    limits: AbstractContextManager[Any] = _controller().limit(limits=1, user_api="blas")
    return limits
