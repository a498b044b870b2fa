"""The pydantic models of ``taxiway.yaml``: frozen, strict about unknown keys.

Sources are a discriminated union on ``kind``; feature views, spines and labels are told apart
by the keys they carry (``aggregate``/``latest``/``static``, ``every``, ``kind``). Paths are
resolved relative to the spec file through the validation context (``base_dir``).

>>> spec = TaxiwaySpec.model_validate(
...     {"name": "demo", "sources": {"orders": {"kind": "file", "path": "/data/orders.parquet",
...      "timestamp": "ordered_at", "available_after": "1h"}}})
>>> spec.sources["orders"].available_after
datetime.timedelta(seconds=3600)
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from taxiway.spec.durations import EXPECTED as DURATION_EXPECTED
from taxiway.spec.durations import format_duration, parse_duration
from taxiway.spec.names import UseCaseName
from taxiway.spec.secrets import Secret, find_literal_password, redact, references

__all__ = [
    "AGGREGATE_FUNCTIONS",
    "AggregateView",
    "Aggregation",
    "AuthSpec",
    "BreakerSpec",
    "ColumnLabel",
    "DeltaSource",
    "DuckDBSource",
    "EventLabel",
    "EventSpine",
    "FeatureView",
    "FileSource",
    "Governance",
    "Interleaving",
    "Label",
    "LatestView",
    "LineageSpec",
    "ModelSpec",
    "Monitoring",
    "NatsSource",
    "OnlineStoreSpec",
    "PeriodicSpine",
    "PostgresRegistry",
    "PostgresSource",
    "PredictionLogSpec",
    "RecommendWatch",
    "RedisOnlineStore",
    "RegistrySpec",
    "Retrain",
    "RetrainTrigger",
    "Rollout",
    "Serving",
    "SnapshotRetention",
    "Source",
    "SparkSpec",
    "Spine",
    "SqliteOnlineStore",
    "SqliteRegistry",
    "StaticView",
    "SumLabel",
    "TaxiwaySpec",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


def _duration(value: object) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError:
        raise ValueError(f"expected {DURATION_EXPECTED}, got {value!r}") from None


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than 0")
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]
PositiveDuration = Annotated[timedelta, BeforeValidator(_duration), AfterValidator(_positive)]
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _identifier(value: str) -> str:
    if not _IDENT.fullmatch(value):
        raise ValueError(f"{value!r} is not a column name (letters, digits and _, not first digit)")
    return value


Column = Annotated[str, AfterValidator(_identifier)]


def _entity_keys(value: object) -> str | list[str]:
    """An entity's key: one column name, or a non-empty list of them (a compound key)."""
    if isinstance(value, str):
        return _identifier(value)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return [_identifier(v) for v in value]
    raise ValueError(
        f"expected the key column (e.g. customer_id) or a list of key columns, got {value!r}"
    )


def _relative_to_spec(value: str, info: ValidationInfo) -> str:
    """Resolve a path (or glob) against the spec file's folder, given in the context."""
    path = Path(value).expanduser()
    base = (info.context or {}).get("base_dir")
    if not path.is_absolute() and base is not None:
        path = Path(base) / path
    return str(path)


SpecPath = Annotated[str, AfterValidator(_relative_to_spec)]


def _secret(value: object, info: ValidationInfo) -> Secret:
    if isinstance(value, Secret):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a URL or a ${{ENV_VAR}} reference, got {value!r}")
    try:
        references(value)
    except ValueError as error:
        raise ValueError(str(error)) from None
    if find_literal_password(value) is not None:
        scheme = value.split("://", 1)[0] if "://" in value else "postgresql"
        name = "REDIS_URL" if scheme.startswith("redis") else "DB_URL"
        raise ValueError(
            f"the URL {redact(value)} holds a literal password; secrets come only from the "
            f"environment or a file: write `url: ${{{name}}}` and "
            f"`export {name}='{redact(value)}'` (with the real password), or "
            f"`url: {scheme}://user:${{DB_PASSWORD}}@host/...`"
        )
    base = (info.context or {}).get("base_dir")
    return Secret(value, Path(base) if base is not None else None)


SecretURL = Annotated[
    Secret,
    BeforeValidator(_secret),
    # dumped (a source's fingerprint, a spec's JSON) as its template with any password
    # redacted: the references (${DB_URL}), never what they resolve to
    PlainSerializer(lambda secret: redact(secret.template), return_type=str),
]


# --------------------------------------------------------------------------- sources


class _SourceBase(_Model):
    description: str | None = None
    timestamp: Column | None = Field(
        default=None, description="When the fact happened; omit for static tables."
    )
    available_after: Duration = Field(
        default=timedelta(0), description="How long after `timestamp` the fact is known."
    )
    created: Column | None = Field(
        default=None, description="Tie-breaker for rows sharing a timestamp (newest wins)."
    )
    contract: SpecPath | None = Field(default=None, description="An ODCS v3 contract file.")


class FileSource(_SourceBase):
    """CSV, Parquet or JSON-lines files: one path or a glob."""

    kind: Literal["file"]
    path: SpecPath
    format: Literal["csv", "parquet", "jsonl"] | None = None


class DeltaSource(_SourceBase):
    """A Delta Lake table (a folder holding ``_delta_log``), read at its newest or a pinned version."""

    kind: Literal["delta"]
    path: SpecPath
    version: int | None = Field(
        default=None,
        ge=0,
        description="The table version to read; default the newest when the run starts.",
    )


class _TableOrQuery(_SourceBase):
    table: str | None = None
    query: str | None = None

    @model_validator(mode="after")
    def _one_of_table_or_query(self) -> _TableOrQuery:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of `table` or `query`")
        return self


class DuckDBSource(_TableOrQuery):
    """A table or query in a DuckDB database file, opened read-only."""

    kind: Literal["duckdb"]
    path: SpecPath


class PostgresSource(_TableOrQuery):
    """A table or query in PostgreSQL, read in Arrow batches."""

    kind: Literal["postgres"]
    url: SecretURL
    connect_timeout_s: float = Field(default=10.0, gt=0)
    batch_rows: int = Field(default=100_000, gt=0)
    cdc: bool = Field(
        default=False,
        description="Capture the table's changes (`taxiway features stream`): a consistent "
        "snapshot, then logical replication into the online store and `history:`.",
    )
    history: SpecPath | None = Field(
        default=None, description="With `cdc: true`: the Delta table the changes are appended to."
    )
    slot: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9_]{1,63}$",
        description="With `cdc: true`: the replication slot and publication name "
        "(default taxiway_<source>).",
    )
    partition_column: Column | None = Field(
        default=None,
        description="With `engine: spark`: the numeric, date or timestamp column the JDBC "
        "read is split on, one range per partition (default: `timestamp`).",
    )
    partitions: int | None = Field(
        default=None,
        ge=1,
        description="With `engine: spark`: how many ranges the JDBC read is split into, each "
        "read in parallel (default: spark.default.parallelism, the executors' cores).",
    )

    @model_validator(mode="after")
    def _capturable(self) -> PostgresSource:
        if not self.cdc:
            if self.history is not None or self.slot is not None:
                raise ValueError("`history:` and `slot:` apply only with `cdc: true`")
            return self
        if self.table is None:
            raise ValueError(
                "`cdc: true` needs `table:` (a query has no changes to stream): name the table"
            )
        if self.history is None:
            raise ValueError(
                "`cdc: true` needs `history:` (the folder of the Delta table its changes are "
                "appended to), e.g. `history: data/orders_history`"
            )
        return self


class NatsSource(_SourceBase):
    """A stream of JSON events on a NATS JetStream subject (``taxiway features stream``).

    The consumer applies the events to the online tiles and appends them to ``history``
    (Parquet files), which is what training reads for this source.
    """

    kind: Literal["nats"]
    url: SecretURL = Field(description="The NATS server, e.g. nats://127.0.0.1:4222.")
    subject: str = Field(min_length=1, description="The subject events are published to.")
    stream: str = Field(min_length=1, description="The JetStream stream holding the subject.")
    durable: str = Field(min_length=1, description="The durable consumer's name.")
    event_id: Column | None = Field(
        default=None,
        description="The event's id field; default: the message's Nats-Msg-Id header.",
    )
    history: SpecPath = Field(description="The folder the consumer appends the events to.")
    batch: int = Field(default=500, gt=0, description="Events fetched per batch.")
    ack_wait: PositiveDuration = Field(
        default=timedelta(seconds=10),
        description="How long a delivered, unacknowledged event waits before it is "
        "delivered again (after a crash: how soon its batch is applied anew).",
    )

    @model_validator(mode="after")
    def _timestamped(self) -> NatsSource:
        if self.timestamp is None:
            raise ValueError("a nats source needs `timestamp:` (the event field of its time)")
        for name, value, banned in (
            ("subject", self.subject, " \t*>"),
            ("stream", self.stream, " \t*>."),
            ("durable", self.durable, " \t*>."),
        ):
            if any(c in value for c in banned):
                shown = " ".join(repr(c) for c in banned)
                raise ValueError(f"`{name}: {value}` holds one of {shown} (NATS refuses it)")
        return self


Source = Annotated[
    FileSource | DuckDBSource | PostgresSource | NatsSource | DeltaSource,
    Field(discriminator="kind"),
]


# --------------------------------------------------------------------------- features

AGGREGATE_FUNCTIONS = ("count", "count_distinct", "sum", "avg", "min", "max", "stddev")
_AGGREGATION = re.compile(r"\s*([A-Za-z_]+)\s*\(\s*(\*|[A-Za-z_][A-Za-z0-9_]*)\s*\)\s*")


class Aggregation(_Model):
    """One parsed aggregate expression such as ``sum(amount)`` or ``count(*)``."""

    function: Literal["count", "count_distinct", "sum", "avg", "min", "max", "stddev"]
    column: str | None  # None for count(*)

    @classmethod
    def parse(cls, text: str) -> Aggregation:
        """Parse ``count(*)``, ``sum(col)``...; raise ``ValueError`` naming the allowed forms.

        >>> Aggregation.parse("sum(dollar_value)")
        Aggregation(function='sum', column='dollar_value')
        """
        match = _AGGREGATION.fullmatch(text)
        functions = "count(*), " + ", ".join(f"{f}(col)" for f in AGGREGATE_FUNCTIONS)
        if not match:
            raise ValueError(
                f"{text!r} is not an aggregate; expected count(*) or one of {functions}"
            )
        function, column = match.groups()
        function = function.lower()
        if function not in AGGREGATE_FUNCTIONS:
            raise ValueError(
                f"unknown aggregate function {function!r}; expected one of {functions}"
            )
        if column == "*" and function != "count":
            raise ValueError(f"{function}(*) is not defined; only count(*) takes *")
        return cls(function=function, column=None if column == "*" else column)


def _aggregations(value: object) -> dict[str, Aggregation]:
    if not isinstance(value, dict):
        raise ValueError(
            "expected a mapping of feature name to aggregate, e.g. {spend: sum(amount)}"
        )
    parsed: dict[str, Aggregation] = {}
    for name, text in value.items():
        _identifier(str(name))
        if isinstance(text, Aggregation):
            parsed[name] = text
        elif isinstance(text, str):
            parsed[name] = Aggregation.parse(text)
        else:
            raise ValueError(f"{name}: expected an aggregate such as sum(amount), got {text!r}")
    return parsed


class _ViewBase(_Model):
    source: str
    entity: str
    description: str | None = None


class AggregateView(_ViewBase):
    """Window aggregates of a source's known rows, per entity."""

    aggregate: Annotated[dict[str, Aggregation], BeforeValidator(_aggregations)]
    windows: Annotated[list[Duration], Field(min_length=1)]
    tiles: PositiveDuration | None = None
    """Opt-in: keep the view online as time tiles of this width (``1h``, ``1d``), merged at
    read time over the window ending at the request time (docs/features.md, "Tiles")."""

    def output_names(self, view_name: str) -> list[str]:
        """The columns this view produces: ``<view>__<feature>_<window>``."""
        return [
            f"{view_name}__{feature}_{format_duration(window)}"
            for feature in self.aggregate
            for window in self.windows
        ]

    @field_validator("windows")
    @classmethod
    def _positive_windows(cls, windows: list[timedelta]) -> list[timedelta]:
        if any(w <= timedelta(0) for w in windows):
            raise ValueError("every window must be longer than 0")
        if len(set(windows)) != len(windows):
            raise ValueError("a window is listed twice")
        return windows

    @field_validator("tiles")
    @classmethod
    def _tileable(cls, tiles: timedelta | None, info: ValidationInfo) -> timedelta | None:
        # windows and aggregate are declared (so validated) before tiles; absent if invalid
        windows: list[timedelta] = info.data.get("windows") or []
        aggregate: dict[str, Aggregation] = info.data.get("aggregate") or {}
        if tiles is None:
            return tiles
        width = format_duration(tiles)
        uneven = [w for w in windows if w % tiles]
        if uneven:
            listed = ", ".join(format_duration(w) for w in uneven)
            raise ValueError(
                f"tiles: {width} does not divide the window(s) {listed}: every window must be a "
                f"whole number of tiles; choose tiles that divide every window (e.g. tiles: 1h "
                f"or 1d), or change the windows"
            )
        distinct = [n for n, a in aggregate.items() if a.function == "count_distinct"]
        if distinct:
            raise ValueError(
                f"count_distinct ({', '.join(distinct)}) cannot be kept in tiles exactly "
                f"(distinct values do not add up across tiles): move it to a view without "
                f"`tiles:`, or remove `tiles:` from this view"
            )
        return tiles


class LatestView(_ViewBase):
    """The newest known row's columns, per entity, null once older than ``ttl``."""

    latest: Annotated[list[Column], Field(min_length=1)]
    ttl: PositiveDuration | None = None

    def output_names(self, view_name: str) -> list[str]:
        """The columns this view produces: ``<view>__<column>``."""
        return [f"{view_name}__{column}" for column in self.latest]


class StaticView(_ViewBase):
    """Attributes of a table without timestamps, joined by key alone."""

    static: Annotated[list[Column], Field(min_length=1)]

    def output_names(self, view_name: str) -> list[str]:
        """The columns this view produces: ``<view>__<column>``."""
        return [f"{view_name}__{column}" for column in self.static]


def _view_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        present = [key for key in ("aggregate", "latest", "static") if key in value]
        return present[0] if len(present) == 1 else None
    if isinstance(value, AggregateView):
        return "aggregate"
    if isinstance(value, LatestView):
        return "latest"
    if isinstance(value, StaticView):
        return "static"
    return None


FeatureView = Annotated[
    Annotated[AggregateView, Tag("aggregate")]
    | Annotated[LatestView, Tag("latest")]
    | Annotated[StaticView, Tag("static")],
    Discriminator(
        _view_kind,
        custom_error_type="feature_view_kind",
        custom_error_message="a feature view needs exactly one of `aggregate`, `latest` or `static`",
    ),
]


# --------------------------------------------------------------------------- spine & label


class PeriodicSpine(_Model):
    """Prediction times start, start + every, ... up to end, for each entity known by then."""

    every: PositiveDuration
    start: date | datetime
    end: date | datetime
    source: str
    entity: str | None = None

    @model_validator(mode="after")
    def _ordered(self) -> PeriodicSpine:
        if self.every <= timedelta(0):
            raise ValueError("`every` must be longer than 0")
        if _as_datetime(self.end) < _as_datetime(self.start):
            raise ValueError("`end` is before `start`")
        return self


class EventSpine(_Model):
    """One prediction time per row of ``source``, at its timestamp."""

    source: str
    entity: str | None = None


def _spine_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "periodic" if "every" in value else "event"
    return "periodic" if isinstance(value, PeriodicSpine) else "event"


Spine = Annotated[
    Annotated[PeriodicSpine, Tag("periodic")] | Annotated[EventSpine, Tag("event")],
    Discriminator(_spine_kind),
]


class EventLabel(_Model):
    """Whether (or how often) the entity has a row in ``source`` within ``horizon`` after t."""

    name: Column
    kind: Literal["any_event", "no_event", "count"]
    source: str
    entity: str
    horizon: PositiveDuration
    description: str | None = None


class SumLabel(_Model):
    """The sum of ``expr`` over the entity's rows in ``source`` within ``horizon`` after t."""

    name: Column
    kind: Literal["sum"]
    source: str
    entity: str
    horizon: PositiveDuration
    expr: Column
    description: str | None = None


class ColumnLabel(_Model):
    """A SQL expression on the spine row itself (event spines), e.g. ``arr_delay > 15``."""

    name: Column
    kind: Literal["column"]
    expr: str
    description: str | None = None


Label = Annotated[EventLabel | SumLabel | ColumnLabel, Field(discriminator="kind")]


# --------------------------------------------------------------------------- later stages


class SqliteOnlineStore(_Model):
    """The embedded online store: one SQLite file (default: ``<state dir>/online.sqlite``)."""

    kind: Literal["sqlite"]
    path: SpecPath | None = None


class RedisOnlineStore(_Model):
    """Redis as the online store; keys are namespaced by ``prefix`` (default ``taxiway:<name>``)."""

    kind: Literal["redis"]
    url: SecretURL
    prefix: str | None = None
    timeout_ms: float = Field(default=50.0, gt=0)


OnlineStoreSpec = Annotated[SqliteOnlineStore | RedisOnlineStore, Field(discriminator="kind")]


class SparkSpec(_Model):
    """Where `engine: spark` runs: a Spark master URL and Spark settings (docs/spec.md)."""

    master: str = Field(
        default="local[2]",
        min_length=1,
        description="local[N] (in-process), spark://host:7077 (a standalone cluster), yarn ...",
    )
    conf: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Spark settings, e.g. spark.driver.memory: 4g."
    )


class SnapshotRetention(_Model):
    """How many training-set versions (Delta table versions) keep their files.

    A version a registered, non-archived model version records is always kept; of the
    others, the newest ``keep_last`` are kept and the rest vacuumed after each training.
    """

    keep_last: int | None = Field(
        default=None,
        ge=1,
        description="Training-set versions kept besides those registered versions need; "
        "omitted: every version is kept (nothing is vacuumed).",
    )


class ModelSpec(_Model):
    """What to train (or which pilot to import), and the metric it is judged on."""

    algorithm: Literal["lightgbm", "xgboost", "random_forest", "logistic"] = "lightgbm"
    task: Literal["classification", "regression"] | None = Field(
        default=None, description="Inferred from the label when omitted."
    )
    metric: Literal["roc_auc", "pr_auc", "log_loss", "brier", "mae", "rmse"] | None = Field(
        default=None, description="roc_auc for classification, rmse for regression."
    )
    pilot: SpecPath | None = Field(
        default=None, description="A pickled scikit-learn model or an MLflow model directory."
    )
    params: dict[str, Any] = Field(default_factory=dict)
    baseline_feature: str | None = Field(
        default=None,
        description="Pins the one-feature baseline rule to this feature (default: the best on "
        "validation of the prior and a rule per feature).",
    )
    features: list[str] | None = Field(
        default=None,
        description="Feature columns or view names the model uses (default: every feature).",
    )
    request_fields: list[Column] = Field(
        default_factory=list,
        description="Inputs the caller sends with each request; offline, columns of the "
        "(event) spine's source row.",
    )
    validation: float = Field(
        default=0.2, gt=0, lt=1, description="Share of the newest spine times held out."
    )
    seed: int = 0
    snapshots: SnapshotRetention = Field(
        default_factory=SnapshotRetention,
        description="Retention of the training-set versions (docs/models.md#snapshots).",
    )


class SqliteRegistry(_Model):
    """The embedded model registry: SQLite metadata plus an artifact folder."""

    kind: Literal["sqlite"]
    path: SpecPath | None = Field(default=None, description="Default: <state dir>/registry.sqlite")
    artifacts: SpecPath | None = Field(default=None, description="Default: <state dir>/artifacts")


class PostgresRegistry(_Model):
    """Model metadata in PostgreSQL (shared by a team); artifacts in a folder."""

    kind: Literal["postgres"]
    url: SecretURL
    schema_name: Column = Field(default="taxiway", alias="schema")
    artifacts: SpecPath | None = Field(default=None, description="Default: <state dir>/artifacts")
    connect_timeout_s: float = Field(default=10.0, gt=0)


RegistrySpec = Annotated[SqliteRegistry | PostgresRegistry, Field(discriminator="kind")]


class PredictionLogSpec(_Model):
    """Where every answered prediction is recorded, and for how long."""

    path: SpecPath | None = Field(default=None, description="Default: <state dir>/predictions")
    rotate_mb: float = Field(default=64.0, gt=0, description="Start a new file beyond this size.")
    retention: PositiveDuration | None = Field(
        default=None, description="Delete files older than this (default: keep everything)."
    )
    sync: Literal["always", "interval", "never"] = Field(
        default="interval",
        description="When the log file is fdatasync-ed: `always` before each answer (survives "
        "a power loss; every answer waits for the disk), `interval` every `sync_interval` off "
        "the answer path (survives a killed process; a power loss loses what was written since "
        "the last sync, normally about one interval), "
        "`never` (the OS decides).",
    )
    sync_interval: PositiveDuration = Field(
        default_factory=lambda: timedelta(milliseconds=200),
        description="With `sync: interval`: how often the file is synced.",
    )


class BreakerSpec(_Model):
    """The circuit breaker in front of the model and the online store."""

    failures: int = Field(default=5, gt=0, description="Consecutive failures that open it.")
    reset_after: PositiveDuration = Field(
        default_factory=lambda: timedelta(seconds=10),
        description="How long it stays open before one probe request is let through.",
    )


class AuthSpec(_Model):
    """API keys: each `key: roles` line of a file, or one key from the environment."""

    keys_file: SpecPath | None = Field(
        default=None, description="A file of `<key> <role>[,<role>...]` lines."
    )
    key_env: str | None = Field(
        default=None, description="An environment variable holding one key with every role."
    )


class Serving(_Model):
    """The prediction service's budget and what answers when the model cannot."""

    latency_budget_ms: float = Field(default=50.0, gt=0)
    fallback: str | list[str] | None = Field(
        default=None,
        description="The chain, tried in order: previous (the previous production version), "
        "baseline (the trained baseline), or a constant such as 0.5.",
    )
    max_in_flight: int = Field(
        default=64, gt=0, description="Requests served at once per worker; beyond, 429."
    )
    out_of_range: Literal["flag", "fallback"] = Field(
        default="flag",
        description="A value outside the training range: score it and flag it, or fall back.",
    )
    missing_features: Literal["score", "fallback"] | None = Field(
        default=None,
        description="An answer whose online features (those the model takes from a view) are "
        "missing or stale is always `degraded` with a `reason` naming them; this decides who "
        "answers it: the model (`score`) or the fallback chain (`fallback`). Default: the "
        "fallback when every online feature is missing (an unknown entity), the model when "
        "only some are.",
    )
    breaker: BreakerSpec = Field(default_factory=BreakerSpec)
    log: PredictionLogSpec = Field(default_factory=PredictionLogSpec)
    auth: AuthSpec | None = None


class Hysteresis(_Model):
    """How many of the last windows must be over the threshold before a status changes."""

    k: int = Field(default=2, ge=1, description="Windows over the threshold...")
    m: int = Field(default=3, ge=1, description="...of the last m windows.")

    @model_validator(mode="after")
    def _k_of_m(self) -> Hysteresis:
        if self.k > self.m:
            raise ValueError(f"k ({self.k}) cannot exceed m ({self.m}): e.g. {{k: 2, m: 3}}")
        return self


class Slo(_Model):
    """Service-level objectives over the prediction log, alerted on by burn rate."""

    latency: float | None = Field(
        default=0.99,
        gt=0,
        lt=1,
        description="The share of requests answered within serving.latency_budget_ms.",
    )
    errors: float | None = Field(
        default=0.999,
        gt=0,
        lt=1,
        description="The share of requests answered without a server error.",
    )
    period: PositiveDuration = Field(
        default=timedelta(days=30), description="The period each objective is measured over."
    )


class QualityWatch(_Model):
    """The quality below which the monitor pages (realised, or estimated while labels wait)."""

    metric: str | None = Field(
        default=None, description="Default: the model's metric (roc_auc, mae...)."
    )
    min: float | None = Field(
        default=None,
        description="Page below this (above it for errors such as mae). Default: the "
        "training-time value minus 0.05 for scores in [0, 1].",
    )


class RecommendWatch(_Model):
    """What the recommendation monitor judges a recommender's served lists by (a spec with
    `recommend:`; see docs/recommend.md, Monitoring recommendations).

    >>> RecommendWatch().horizon.days, RecommendWatch().max_fallback_share
    (7, 0.05)
    """

    horizon: PositiveDuration = Field(
        default=timedelta(days=7),
        description="A user's interactions this long after an answer are what they did next: "
        "the realised recall@k of the answer is judged on them once the interactions source "
        "has passed the horizon.",
    )
    max_fallback_share: float = Field(
        default=0.05,
        gt=0,
        lt=1,
        description="A window is over when more than this share of its answers fell back for a "
        "reason other than no history (the model could have answered); hysteresis turns that "
        "into the fallback alert.",
    )
    min_answers: int = Field(
        default=50,
        ge=1,
        description="A window with fewer answers (model answers for the served mix) is shown, "
        "not judged; the served mix's reference, without one stored at training, is the first "
        "window with this many.",
    )


class Monitoring(_Model):
    """Drift, latency, error and quality monitoring of the prediction log (`taxiway monitor`)."""

    drift: Literal["psi", "ks", "wasserstein", "chi2", "jensen_shannon"] = Field(
        default="psi",
        description="The statistic for numeric inputs and the output; categorical inputs use "
        "chi2 unless this one also compares categories.",
    )
    alert_threshold: float | None = Field(
        default=None,
        gt=0,
        description="A fixed threshold for every feature. Default: calibrated per version and "
        "window size (the 99th percentile of the statistic between reference resamples of "
        "that size), so about 1% of stationary windows are over it, whatever their size.",
    )
    window: PositiveDuration = Field(
        default=timedelta(hours=1), description="The length of each window of the log."
    )
    hysteresis: Hysteresis = Field(default_factory=Hysteresis)
    slo: Slo = Field(default_factory=Slo)
    quality: QualityWatch = Field(default_factory=QualityWatch)
    recommend: RecommendWatch = Field(
        default_factory=RecommendWatch,
        description="The recommendation monitor's settings (a spec with `recommend:` only).",
    )
    webhook: SecretURL | None = Field(
        default=None,
        description="Alerts are POSTed here as JSON (retried, deduplicated, rate-limited); "
        "a URL holding a token comes from the environment: ${ALERT_WEBHOOK_URL}.",
    )

    @property
    def threshold_text(self) -> str:
        """The alert threshold as a reader sees it.

        >>> Monitoring().threshold_text, Monitoring(alert_threshold=0.25).threshold_text
        ('the calibrated threshold', '0.25')
        """
        if self.alert_threshold is None:
            return "the calibrated threshold"
        return f"{self.alert_threshold:g}"


def _metric(value: object) -> object:
    """``metric: converted`` is shorthand for ``metric: {name: converted}``."""
    return {"name": value} if isinstance(value, str) else value


class RolloutMetric(_Model):
    """The primary outcome the rollout is decided on."""

    name: str = Field(description="An outcome name posted to /v1/outcomes (converted, revenue).")
    direction: Literal["increase", "decrease"] = Field(
        default="increase", description="Which way is better for this outcome."
    )
    min_effect: float | None = Field(
        default=None,
        gt=0,
        description="The smallest difference (candidate minus control, in the outcome's units) "
        "worth detecting; it tunes the sequential test to the planned sample.",
    )
    per: Literal["unit", "impression"] = Field(
        default="unit",
        description="`unit`: the mean per unit of the outcome (conversion per user); "
        "`impression`: the ratio sum(outcome) / sum(impressions) over an arm's units "
        "(click-through per impression; a unit's impressions are its answers times the items "
        "each shows), its interval by the delta method over units (docs/rollout.md).",
    )


class Guardrails(_Model):
    """What must not get worse in the candidate arm; a breach rolls back at once."""

    latency_p99_ms: float | None = Field(
        default=None, gt=0, description="Default: serving.latency_budget_ms."
    )
    error_rate: float = Field(
        default=0.01, ge=0, le=1, description="Server errors per answer, at most."
    )
    fallback_rate: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Fallback answers per answer: the candidate's, at most this above control's.",
    )
    drift: bool = Field(default=True, description="Roll back when the monitor reports drift.")
    outcomes: list[str] = Field(
        default_factory=list, description="Outcomes that must not get worse (revenue...)."
    )


class Interleaving(_Model):
    """Team-draft interleaving of control's and the candidate's lists, on a share of users of
    its own: a pre-gate that finds which list users prefer with fewer users than the A/B test
    (a recommender's rollout only; docs/rollout.md)."""

    share: float = Field(
        gt=0,
        le=50,
        description="The percentage of users (a hash range apart from the A/B split, sticky per "
        "user) who get one list interleaved from both arms' lists.",
    )
    min_users: int = Field(
        default=200,
        ge=1,
        description="Interleaved users with a preference (more clicks on one team's items) "
        "before the A/B share may grow past the first step.",
    )
    alpha: float | None = Field(
        default=None,
        gt=0,
        lt=0.5,
        description="The false-decision rate of the interleaving test (always valid, however "
        "often it is read). Default: the rollout's alpha.",
    )


class Rollout(_Model):
    """A gradual rollout against a control group, decided on measured outcomes."""

    control: str | float = Field(
        default="production",
        description="What the control arm answers with: `production` (the current production "
        "version; the baseline when there is none), `baseline`, or a constant score standing "
        "for the previous system.",
    )
    candidate: int | None = Field(
        default=None, description="Default: the newest version that passed the audit."
    )
    unit: str | None = Field(
        default=None,
        description="The request field or entity that identifies a user: assignment and "
        "analysis are per unit. Default: the model's entity when it has one.",
    )
    steps: list[float] = Field(default_factory=lambda: [1.0, 5.0, 10.0, 25.0, 50.0, 100.0])
    min_duration: PositiveDuration = Field(
        default=timedelta(hours=1), description="The shortest time at each step."
    )
    min_units: int = Field(
        default=100, ge=1, description="Units per arm at each step before it may be promoted."
    )
    metric: Annotated[RolloutMetric | None, BeforeValidator(_metric)] = None
    guardrails: Guardrails = Field(default_factory=Guardrails)
    alpha: float = Field(
        default=0.05, gt=0, lt=0.5, description="The false-decision rate over the whole rollout."
    )
    auto: bool = Field(
        default=False,
        description="The service itself checks the active rollout every check_every (one "
        "leader across workers and replicas) and acts on the verdict; without it, run "
        "`taxiway rollout check` or `taxiway rollout run`.",
    )
    check_every: PositiveDuration = Field(
        default=timedelta(minutes=1), description="How often the automatic loop checks."
    )
    interleaving: Interleaving | None = Field(
        default=None,
        description="Team-draft interleaving on a share of users of its own, a faster pre-gate "
        "(a spec with `recommend:` only): the A/B share stays at the first step until it has "
        "`min_users` users with a preference and the candidate is not significantly worse; "
        "significantly worse rolls back.",
    )

    @field_validator("control", mode="before")
    @classmethod
    def _control(cls, value: object) -> object:
        if isinstance(value, str) and value not in ("production", "baseline"):
            try:
                return float(value)
            except ValueError:
                raise ValueError(
                    f"control is `production`, `baseline` or a constant score, not {value!r}"
                ) from None
        return value

    @field_validator("guardrails", mode="before")
    @classmethod
    def _old_guardrails(cls, value: object) -> object:
        return {} if value == [] else value

    @field_validator("steps")
    @classmethod
    def _increasing_percentages(cls, steps: list[float]) -> list[float]:
        if not steps:
            raise ValueError("give at least one step, e.g. [1, 5, 10, 25, 50, 100]")
        if any(not 0 < step <= 100 for step in steps):
            raise ValueError("each step is a percentage of traffic in (0, 100]")
        if any(b <= a for a, b in itertools.pairwise(steps)):
            raise ValueError("steps must increase, e.g. [1, 5, 10, 25, 50, 100]")
        return steps

    @model_validator(mode="after")
    def _interleaving_fits(self) -> Rollout:
        """The interleaved users' range and the A/B candidate's never overlap below 100%."""
        if self.interleaving is None:
            return self
        if self.metric is None:
            raise ValueError(
                "interleaving credits each team with the clicks on its items, counted by the "
                "rollout's metric, and this rollout has none: add e.g. `metric: {name: click, "
                "per: impression}`"
            )
        largest = max((step for step in self.steps if step < 100), default=0.0)
        if largest + self.interleaving.share > 100:
            raise ValueError(
                f"interleaving.share {self.interleaving.share:g}% and the largest step below 100% "
                f"({largest:g}%) overlap: together they must stay within 100%; lower "
                f"interleaving.share to at most {100 - largest:g}, or the steps"
            )
        return self


class LineageSpec(_Model):
    """Where the OpenLineage run events of each command go (docs/lineage.md).

    ``file`` (the default, also without this section) appends one JSON event per line to
    ``<state dir>/lineage/events.jsonl``; ``http`` posts each to an OpenLineage endpoint such
    as Marquez (and keeps it in the file when the endpoint cannot be reached); ``off`` emits
    nothing.
    """

    transport: Literal["file", "http", "off"] = "file"
    url: SecretURL | None = Field(
        default=None, description="The endpoint's base URL (Marquez: http://host:5000)."
    )
    endpoint: str = Field(
        default="api/v1/lineage", description="The path events are posted to, under `url`."
    )
    api_key_env: str | None = Field(
        default=None, description="An environment variable holding a bearer token."
    )
    timeout_s: float = Field(default=2.0, gt=0, description="How long one post may take.")
    namespace: str = Field(
        default="taxiway", min_length=1, description="The jobs' OpenLineage namespace."
    )
    path: SpecPath | None = Field(
        default=None, description="The file transport's folder. Default: <state dir>/lineage"
    )

    @model_validator(mode="after")
    def _http_needs_url(self) -> LineageSpec:
        if self.transport == "http" and self.url is None:
            raise ValueError(
                "transport `http` needs the endpoint: add `url: http://host:5000` (Marquez) "
                "or `url: ${OPENLINEAGE_URL}`"
            )
        return self


class OptOut(_Model):
    """Units that must never be scored by the model: their entity keys are a source's rows."""

    source: str = Field(
        description="A declared source (file or table) whose rows hold the key column(s) of "
        "`entity` for every unit that opted out."
    )
    entity: str | None = Field(
        default=None,
        description="The entity whose keys the source holds. Default: the spine's entity.",
    )
    refresh: PositiveDuration = Field(
        default=timedelta(seconds=10),
        description="How often the service reads the list again (no restart needed).",
    )


RetrainTrigger = Literal["drift", "quality", "contract"]
"""A monitor alert kind that may start a retrain before the cadence (``retrain.on``)."""


class RetrainSignoff(_Model):
    """Which retrains need a person again; the others reuse the standing sign-offs."""

    on_new_feature: bool = Field(
        default=True,
        description="A candidate reading a feature production does not read, or whose feature "
        "definitions changed (another definitions hash), needs the sign-offs again.",
    )
    on_new_source: bool = Field(
        default=True,
        description="A candidate trained on a source production's training set did not read "
        "needs the sign-offs again.",
    )
    max_metric_drop: float | None = Field(
        default=None,
        ge=0,
        description="The most the candidate's validation metric may fall short of the one "
        "production recorded when it was trained (in the metric's units) before a person must "
        "sign off again: quality that slides from window to window. Default: no bound (a "
        "candidate worse than production on the same rows stops anyway).",
    )


class Retrain(_Model):
    """When and how the model is retrained after it shipped (``taxiway retrain``)."""

    every: PositiveDuration = Field(
        default=timedelta(days=7), description="The cadence of routine retrains."
    )
    on: list[RetrainTrigger] = Field(
        default_factory=list,
        description="The monitor's alerts that start a retrain before the cadence: drift, "
        "quality, contract.",
    )
    window: PositiveDuration | None = Field(
        default=None,
        description="The training window that slides forward: a retrain as of T trains on "
        "spine times from T - window to T. Default: the whole spine up to T.",
    )
    min_new_rows: int = Field(
        default=0,
        ge=0,
        description="Source rows that must have arrived since the last version's training set "
        "before a retrain is worth it; fewer, and the run does nothing.",
    )
    auto_rollout: bool = Field(
        default=False,
        description="Whether a candidate that passes every gate starts the rollout against "
        "production by itself (unless a sign-off is required: `governance.approvals`).",
    )
    signoff: RetrainSignoff | None = Field(
        default=None,
        description="Which retrains are routine: with it, a retrain that changes no feature or "
        "source and keeps its metric within bounds reuses the standing sign-offs of "
        "`governance.approvals` (recorded in the approvals log). Without it, every retrain of a "
        "spec that asks for sign-offs stops at `candidate`.",
    )

    @field_validator("on")
    @classmethod
    def _distinct(cls, on: list[str]) -> list[str]:
        if len(set(on)) != len(on):
            raise ValueError("a trigger is listed twice")
        return on


class Governance(_Model):
    """Who must sign off, who acts on each prediction, and who must never be scored."""

    approvals: list[str] = Field(default_factory=list)
    action: str | None = None
    opt_out: OptOut | None = None
    signing_key_env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="The name of an environment variable holding a key (16+ characters) that "
        "signs each sign-off (HMAC-SHA256), verified on every read. Without it, whoever can "
        "write the approvals log can rewrite it whole.",
    )
    segments: list[str] = Field(
        default_factory=list,
        description="Columns of the training set (a feature column such as "
        "`customer_profile__segment`, a request field, an entity key; or a static feature's "
        "bare column name, `segment`) whose values the model card scores the model against "
        "the baseline on, one value at a time: a value where the model is worse is a finding.",
    )


# recommend.py builds on the field types above (_Model, Column, durations), so it is imported
# once they exist: the one place models.py depends on another spec module's models.
from taxiway.spec.recommend import RecommendSpec  # noqa: E402


class TaxiwaySpec(_Model):
    """One use case, from its sources to its rollout."""

    name: UseCaseName = Field(
        description="The use case, as in Kubernetes and MLflow: cdnow-churn, flights.delay."
    )
    owner: str | None = None
    description: str | None = None
    sources: dict[str, Source] = Field(default_factory=dict)
    entities: dict[str, Annotated[str | list[str], BeforeValidator(_entity_keys)]] = Field(
        default_factory=dict
    )
    features: dict[str, FeatureView] = Field(default_factory=dict)
    online_store: OnlineStoreSpec | None = None
    registry: RegistrySpec | None = None
    spine: Spine | None = None
    label: Label | None = None
    model: ModelSpec | None = None
    serving: Serving | None = None
    monitoring: Monitoring | None = None
    rollout: Rollout | None = None
    governance: Governance | None = None
    retrain: Retrain | None = Field(
        default=None, description="The retraining policy (`taxiway retrain`, docs/retraining.md)."
    )
    lineage: LineageSpec | None = None
    recommend: RecommendSpec | None = Field(
        default=None, description="A recommendation use case (instead of `label:`/`model:`)."
    )
    engine: Literal["duckdb", "spark"] = Field(
        default="duckdb",
        description="Where offline work runs: duckdb (in-process) or spark (PySpark; `spark:`).",
    )
    spark: SparkSpec | None = Field(default=None, description="The Spark master and settings.")

    def entity_keys(self, entity: str) -> tuple[str, ...]:
        """The key columns of ``entity`` (one, or several for a compound key)."""
        keys = self.entities[entity]
        return (keys,) if isinstance(keys, str) else tuple(keys)


def _as_datetime(value: date | datetime) -> datetime:
    """A naive UTC datetime (dates are midnight), so aware and naive values compare."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return value.astimezone(UTC).replace(tzinfo=None)
        return value
    return datetime(value.year, value.month, value.day)
