"""The datasets a command reads and writes, named as OpenLineage names them.

A dataset is a ``(namespace, name)`` pair (OpenLineage's naming conventions, spec/Naming.md):
a file is ``file`` and its absolute path; a PostgreSQL table ``postgres://host:port`` and
``database.schema.table``; a NATS subject ``nats://host:port`` and the subject. A namespace
holds the host and port only: never a user, a password or a query string, so no secret can
reach an event through a dataset's name (the URL of a source is read from the environment).
Models and the service, which live in no database of their own, take the job namespace.

These are plain values: :mod:`taxiway.lineage.events` turns them into OpenLineage facets.

>>> ds = model_dataset("taxiway", "churn", 3, ["spend_30d"], stage="candidate")
>>> ds.namespace, ds.name, ds.version, [f.name for f in ds.fields]
('taxiway', 'model/churn/v3', '3', ['spend_30d'])
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from taxiway.data.contracts.loader import load_contract
from taxiway.errors import TaxiwayError
from taxiway.spec.models import (
    DeltaSource,
    DuckDBSource,
    FileSource,
    NatsSource,
    PostgresSource,
    RedisOnlineStore,
    SqliteOnlineStore,
    TaxiwaySpec,
)
from taxiway.spec.secrets import Secret, redact

if TYPE_CHECKING:
    from taxiway.data.contracts.report import RuleResult
    from taxiway.features.training_set import TrainingSetManifest

__all__ = [
    "Assertion",
    "ContractRef",
    "Dataset",
    "SchemaField",
    "assertions_of",
    "model_dataset",
    "online_store_dataset",
    "recorded_training_set",
    "rollout_dataset",
    "serving_dataset",
    "source_dataset",
    "training_set_dataset",
    "url_namespace",
]


@dataclass(frozen=True)
class SchemaField:
    """One column of a dataset's schema facet."""

    name: str
    type: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class Assertion:
    """One data-quality rule checked on a dataset: its name, column, outcome and policy."""

    assertion: str
    success: bool
    column: str | None = None
    severity: str | None = None
    actual: str | None = None
    expected: str | None = None


@dataclass(frozen=True)
class ContractRef:
    """The data contract a source is read under: its file, id, version and content hash."""

    path: str
    id: str | None = None
    version: str | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class Dataset:
    """One input or output of a run, with what the events say about it."""

    namespace: str
    name: str
    fields: tuple[SchemaField, ...] = ()
    assertions: tuple[Assertion, ...] = ()
    version: str | None = None
    contract: ContractRef | None = None
    model: dict[str, Any] | None = None
    """For a model version: its name, version and stage."""
    rollout: dict[str, Any] | None = None
    """For the service under a rollout: control, candidate, share, state and step."""
    extra: dict[str, Any] = field(default_factory=dict)

    def with_assertions(self, assertions: Iterable[Assertion]) -> Dataset:
        """This dataset with ``assertions`` (a check's contract results) attached."""
        return Dataset(
            self.namespace,
            self.name,
            self.fields,
            tuple(assertions),
            self.version,
            self.contract,
            self.model,
            self.rollout,
            self.extra,
        )


def url_namespace(url: str) -> str:
    """``scheme://host:port`` of ``url``: no user, password, path or query.

    >>> url_namespace("postgresql://reader:s3cret@db.internal:5433/prod?sslmode=require")
    'postgres://db.internal:5433'
    >>> url_namespace("redis://:pw@127.0.0.1/0")
    'redis://127.0.0.1:6379'
    """
    parts = urlsplit(url)
    scheme = parts.scheme or "unknown"
    if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
        scheme = "postgres"
    try:
        host, port = parts.hostname or "localhost", parts.port
    except ValueError:  # a port that is not a number: keep nothing of it
        host, port = "unknown", None
    default = {"postgres": 5432, "redis": 6379, "rediss": 6379, "nats": 4222}.get(scheme)
    port = port or default
    return f"{scheme}://{host}" + (f":{port}" if port else "")


def _located(kind: str, secret: Secret) -> tuple[str, str]:
    """The namespace of the URL ``secret`` resolves to, and its database; when it does not
    resolve here (a variable not set), its reference (``${ORDERS_DB_URL}``) stands in."""
    try:
        url = secret.reveal()
    except TaxiwayError:
        return f"{kind}://{redact(secret.template)}", "unknown"
    return url_namespace(url), urlsplit(url).path.lstrip("/").split("/")[0] or kind


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def contract_of(path: str | None) -> tuple[ContractRef | None, tuple[SchemaField, ...]]:
    """The contract at ``path`` and the schema it declares (nothing when it cannot be read)."""
    if path is None:
        return None, ()
    try:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
        contract = load_contract(path)
    except (OSError, TaxiwayError):
        return ContractRef(path), ()
    fields = tuple(
        SchemaField(p.name, p.physicalType or p.logicalType, p.description)
        for schema in contract.schema_
        for p in schema.properties
    )
    return ContractRef(path, contract.id, contract.version, digest), fields


def source_dataset(spec: TaxiwaySpec, name: str) -> Dataset:
    """Source ``name`` of ``spec`` as a dataset, with its contract's schema and version."""
    source = spec.sources[name]
    contract, fields = contract_of(source.contract)
    namespace, dataset = _source_name(source)
    return Dataset(namespace, dataset, fields, contract=contract)


def _source_name(source: Any) -> tuple[str, str]:
    if isinstance(source, FileSource):
        return "file", str(Path(source.path).absolute())
    if isinstance(source, DuckDBSource):
        what = source.table or f"query:{_short_hash(source.query or '')}"
        return f"duckdb://{Path(source.path).absolute()}", what
    if isinstance(source, PostgresSource):
        namespace, database = _located("postgres", source.url)
        table = source.table or f"query:{_short_hash(source.query or '')}"
        if source.table is not None and "." not in table:
            table = f"public.{table}"
        return namespace, f"{database}.{table}"
    if isinstance(source, NatsSource):
        return _located("nats", source.url)[0], source.subject
    if isinstance(source, DeltaSource):
        return "file", str(Path(source.path).absolute())
    raise TypeError(f"no OpenLineage name for a source of kind {source.kind!r}")  # pragma: no cover


def assertions_of(results: Sequence[RuleResult]) -> tuple[Assertion, ...]:
    """A contract check's rule results as data-quality assertions."""
    return tuple(
        Assertion(
            assertion=r.rule,
            success=r.passed,
            column=r.column,
            severity=r.policy,
            actual=None if r.failing is None else f"{r.failing} failing rows",
            expected=r.threshold or None,
        )
        for r in results
    )


def training_set_dataset(manifest: TrainingSetManifest) -> Dataset:
    """A built training set: its file, its columns and its fingerprint as the version."""
    names = [*manifest.keys, *manifest.features, *([manifest.label] if manifest.label else [])]
    return Dataset(
        "file",
        str(Path(manifest.path).absolute()),
        tuple(SchemaField(n) for n in names),
        version=_short_hash(manifest.fingerprint),
        extra={"rows": manifest.rows},
    )


def recorded_training_set(lineage: dict[str, Any]) -> Dataset | None:
    """The training set a registered version's lineage names (as :func:`training_set_dataset`
    names it when built), or None when it names none."""
    training = lineage.get("training_set") or {}
    if not training.get("path"):
        return None
    fingerprint = training.get("fingerprint")
    return Dataset(
        "file",
        str(Path(training["path"]).absolute()),
        version=None if fingerprint is None else _short_hash(str(fingerprint)),
    )


def model_dataset(
    namespace: str, name: str, version: int, features: Sequence[str], *, stage: str
) -> Dataset:
    """Version ``version`` of model ``name``: its inputs as the schema, its number as the
    dataset version."""
    return Dataset(
        namespace,
        f"model/{name}/v{version}",
        tuple(SchemaField(f) for f in features),
        version=str(version),
        model={"name": name, "version": version, "stage": stage},
    )


def serving_dataset(namespace: str, name: str, rollout: dict[str, Any] | None = None) -> Dataset:
    """The service answering for model ``name`` (its traffic split, under a rollout)."""
    return Dataset(namespace, f"serving/{name}", rollout=rollout)


class RolloutLike(Protocol):
    """What a rollout's stored state tells the service's dataset (``rollout.records``)."""

    @property
    def id(self) -> int: ...
    @property
    def control(self) -> dict[str, Any]: ...
    @property
    def candidate(self) -> int: ...
    @property
    def share(self) -> float: ...
    @property
    def state(self) -> str: ...
    @property
    def step_index(self) -> int: ...


def rollout_dataset(
    namespace: str, name: str, rollout: RolloutLike, transition: str | None
) -> Dataset:
    """The service of model ``name`` under ``rollout``, after a step (``transition``)."""
    control = rollout.control
    version = control.get("version")
    return serving_dataset(
        namespace,
        name,
        {
            "rollout": rollout.id,
            "control": f"v{version}" if version is not None else str(control.get("kind")),
            "candidate": rollout.candidate,
            "share": float(rollout.share),
            "state": rollout.state,
            "step": rollout.step_index,
            "transition": transition,
        },
    )


def online_store_dataset(spec: TaxiwaySpec, state_dir: Path) -> Dataset:
    """The online store ``spec`` materializes into."""
    store = spec.online_store
    if isinstance(store, RedisOnlineStore):
        namespace = _located("redis", store.url)[0]
        return Dataset(namespace, store.prefix or f"taxiway:{spec.name}")
    path = (
        Path(store.path)
        if isinstance(store, SqliteOnlineStore) and store.path
        else state_dir / "online.sqlite"
    )
    return Dataset("file", f"{path.absolute()}#{spec.name}")
