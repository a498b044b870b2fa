"""One BLAS thread around implicit's fit and scoring.

implicit runs its own threads and warns (an error under pytest's filterwarnings) when the BLAS
pool has more than one; a BLAS pool on top of implicit's threads also slows it down.

The loaded BLAS libraries are scanned once (on first use), and each call only asks each for
its thread count, setting it to one (and back on exit) where it is not one already:
``threadpool_limits`` rescans the libraries on every call, and ``ThreadpoolController.limit``
re-checks its arguments and reads every library's full info (0.4 ms of a 1 ms request).

>>> with one_blas_thread():
...     all(lib.get_num_threads() in (1, None) for lib in _blas())
True
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from threadpoolctl import ThreadpoolController

__all__ = ["one_blas_thread"]


@cache
def _blas() -> tuple[Any, ...]:
    """The process's BLAS libraries (threadpoolctl's controllers), scanned once."""
    return tuple(ThreadpoolController().select(user_api="blas").lib_controllers)


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """A context in which BLAS uses one thread."""
    changed = []
    for lib in _blas():
        threads = lib.get_num_threads()
        if threads is not None and threads != 1:
            lib.set_num_threads(1)
            changed.append((lib, threads))
    try:
        yield
    finally:
        for lib, threads in changed:
            lib.set_num_threads(threads)
