"""The model registry: numbered versions of each model, their artifacts, lineage and stages.

SQLite is the embedded default; PostgreSQL (shared by a team) comes with the ``postgres``
extra and is imported only when used, so this package imports without psycopg installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from taxiway.errors import RegistryError, TaxiwayError
from taxiway.models.registry.base import (
    STAGES,
    ModelVersion,
    NewVersion,
    Registry,
    Stage,
    StageEvent,
)
from taxiway.models.registry.sqlite import SqliteModelRegistry
from taxiway.spec.models import PostgresRegistry, SqliteRegistry

if TYPE_CHECKING:
    from taxiway.models.registry.postgres import PostgresModelRegistry

__all__ = [
    "STAGES",
    "ModelVersion",
    "NewVersion",
    "PostgresModelRegistry",
    "Registry",
    "SqliteModelRegistry",
    "Stage",
    "StageEvent",
    "open_registry",
]

DEFAULT_SQLITE_FILE = "registry.sqlite"
DEFAULT_ARTIFACTS = "artifacts"


def open_registry(spec: SqliteRegistry | PostgresRegistry | None, *, state_dir: Path) -> Registry:
    """The registry ``spec`` declares; no spec means SQLite and artifacts in ``state_dir``.

    Nothing is opened until first use; the tables are created then.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> registry = open_registry(None, state_dir=folder)
    >>> registry
    SqliteModelRegistry('.../registry.sqlite')
    >>> trained = folder / "trained"
    >>> trained.mkdir()
    >>> _ = (trained / "model.onnx").write_bytes(b"...")
    >>> new = NewVersion(
    ...     name="retail_churn", created_by="ana", algorithm="lightgbm", task="classification",
    ...     metrics={"model": {"roc_auc": 0.81}, "baseline": {"roc_auc": 0.62},
    ...              "beats_baseline": True},
    ...     features=["orders__count_30d"], definitions_hash="d41d8", spec_hash="9a0f3",
    ...     git_commit=None, training={}, lineage={}, profile={}, serving={"form": "onnx"},
    ... )
    >>> registry.register(new, trained).version
    1
    >>> registry.set_stage("retail_churn", 1, "production", by="ana").artifact_dir
    '.../artifacts/retail_churn/1'
    >>> [(e.from_stage, e.to_stage) for e in registry.history("retail_churn")]
    [(None, 'candidate'), ('candidate', 'production')]
    >>> registry.close()
    >>> import shutil; shutil.rmtree(folder)
    """
    state_dir = Path(state_dir)
    if spec is None:
        return SqliteModelRegistry(state_dir / DEFAULT_SQLITE_FILE, state_dir / DEFAULT_ARTIFACTS)
    artifacts = Path(spec.artifacts) if spec.artifacts else state_dir / DEFAULT_ARTIFACTS
    if isinstance(spec, SqliteRegistry):
        path = Path(spec.path) if spec.path else state_dir / DEFAULT_SQLITE_FILE
        return SqliteModelRegistry(path, artifacts)
    if isinstance(spec, PostgresRegistry):
        origin = _origin(spec.url.names)
        try:
            url = spec.url.reveal()
        except TaxiwayError as error:  # an unset environment variable, an unreadable file
            raise RegistryError(f"{origin}: {error.message}", fix=error.fix) from None
        return _postgres_class()(
            url,
            artifacts=artifacts,
            schema=spec.schema_name,
            connect_timeout_s=spec.connect_timeout_s,
            origin=origin,
        )
    raise RegistryError(f"unsupported registry {spec!r}")  # pragma: no cover - closed union


def _postgres_class() -> type[PostgresModelRegistry]:
    try:
        # optional extra: psycopg is only needed when the spec picks PostgreSQL
        from taxiway.models.registry.postgres import PostgresModelRegistry
    except ImportError as error:
        if (error.name or "").startswith("taxiway"):
            raise
        raise RegistryError(
            f"registry is postgres but its client is missing ({error.name})",
            fix="pip install 'taxiway[postgres]'",
        ) from None
    return PostgresModelRegistry


def _origin(names: list[str]) -> str:
    """Where the registry URL comes from, in words, for error messages."""
    env = [name for name in names if not name.startswith("file:")]
    files = [name[len("file:") :] for name in names if name.startswith("file:")]
    if len(names) == 1 and env:
        return f"registry.url (the environment variable {env[0]})"
    if len(names) == 1 and files:
        return f"registry.url (the file {files[0]})"
    return "registry.url"


def __getattr__(name: str) -> object:
    if name == "PostgresModelRegistry":
        return _postgres_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
