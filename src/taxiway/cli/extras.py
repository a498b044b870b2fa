"""Which extra each command needs, and the error that names the one to install.

`pip install taxiway` is enough to check data (`taxiway check`, the spec, sources, contracts,
features); training needs ``taxiway[train]`` and serving ``taxiway[serve]`` (which includes
``train``: a served model is scored with the library it was trained with). A command that
needs an extra checks for it before it starts (:func:`needs`), and `cli/app.py` turns a
:class:`ModuleNotFoundError` for a module of an extra into the same message
(:func:`missing_extra`).

>>> extra_of("sklearn.metrics"), extra_of("starlette"), extra_of("yaml")
('train', 'serve', None)
>>> NEEDS["sprint"]
'serve'
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from importlib.util import find_spec
from typing import ParamSpec, TypeVar

from taxiway.errors import MissingExtraError

__all__ = ["EXTRA_MODULES", "NEEDS", "extra_of", "missing_extra", "needs"]

EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "train": (
        "lightgbm",
        "sklearn",
        "joblib",
        "onnx",
        "onnxruntime",
        "onnxmltools",
        "skl2onnx",
        "pandas",
        "deltalake",
    ),
    # uvloop and httptools are never imported: uvicorn is told to use them
    "serve": ("starlette", "uvicorn", "uvloop", "httptools", "prometheus_client", "httpx"),
    "postgres": ("psycopg", "psycopg2", "adbc_driver_postgresql", "adbc_driver_manager"),
    "redis": ("redis",),
    "stream": ("nats", "deltalake"),
    "xgboost": ("xgboost",),
    "mlflow": ("mlflow", "skops"),
    "recommend": ("implicit", "faiss", "scipy"),
    "lineage": ("openlineage", "attr"),
    "spark": ("pyspark", "sqlglot"),
}
"""The top-level modules each extra of pyproject.toml brings (tests/cli/test_extras.py checks
them against it)."""

INCLUDES: dict[str, tuple[str, ...]] = {
    "serve": ("train",),
    "xgboost": ("train",),
    "mlflow": ("train",),
    "recommend": ("train",),
    "all": ("train", "serve", "recommend", "lineage"),
}
"""Extras that include others (pyproject: ``serve = ["taxiway[train]", ...]``)."""

NEEDS: dict[str, str] = {
    "train": "train",
    "audit": "train",
    # the gate audits the version; sprint.gates imports only the governance checks (no httpx)
    "models promote": "train",
    "serve": "serve",
    "sprint": "serve",
    "dashboard": "serve",
}
"""The extra each command needs, by its name after `taxiway`; the others need the core only
(and `postgres` or `redis` when the spec names such a source or store, which say so)."""

P = ParamSpec("P")
R = TypeVar("R")


def extra_of(module: str | None) -> str | None:
    """The extra that brings ``module`` (a dotted name), or None when no extra does."""
    top = (module or "").partition(".")[0]
    return next((extra for extra, tops in EXTRA_MODULES.items() if top in tops), None)


def _modules(extra: str) -> tuple[str, ...]:
    included = INCLUDES.get(extra, ())
    return tuple(m for name in (*included, extra) for m in EXTRA_MODULES.get(name, ()))


def _installed(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):  # a finder refused it, or sys.modules holds None for it
        return False


def missing_modules(extra: str) -> list[str]:
    """The modules of ``extra`` (and of the extras it includes) that cannot be imported."""
    return [module for module in _modules(extra) if not _installed(module)]


def missing_extra(error: ModuleNotFoundError, needed_by: str) -> MissingExtraError | None:
    """``error`` as the extra to install, or None when the module is no extra's."""
    extra = extra_of(error.name)
    if extra is None:
        return None
    # name the extra that the command needs when it includes this one (serve includes train)
    wanted = NEEDS.get(needed_by.removeprefix("taxiway").strip(), extra)
    if extra not in (wanted, *INCLUDES.get(wanted, ())):
        wanted = extra
    return MissingExtraError(wanted, needed_by=needed_by, missing=[str(error.name)])


def needs(extra: str, command: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a command so that it stops before any work when ``extra`` is not installed.

    typer reads the wrapped function's signature (``functools.wraps``), so options are kept.
    """

    def decorate(function: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(function)
        def checked(*args: P.args, **kwargs: P.kwargs) -> R:
            missing = missing_modules(extra)
            if missing:
                raise MissingExtraError(extra, needed_by=f"taxiway {command}", missing=missing)
            return function(*args, **kwargs)

        return checked

    return decorate
