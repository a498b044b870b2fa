"""The subset of the Open Data Contract Standard (ODCS v3.x) that taxiway reads and enforces.

Descriptive keys (team, description, servers, tags, ...) are accepted and kept as metadata so
existing contracts load unchanged. Keys that would ask for a check taxiway does not perform
(relationships, custom engines, nested types) are refused with a message, never ignored.
See docs/contracts.md.
"""

from __future__ import annotations

import builtins
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from taxiway.spec.durations import parse_duration

__all__ = [
    "OPERATORS",
    "PII_CLASSIFICATIONS",
    "POLICY_PROPERTY",
    "Contract",
    "CustomProperty",
    "LogicalTypeOptions",
    "Property",
    "QualityRule",
    "SchemaObject",
    "SlaProperty",
]

POLICY_PROPERTY = "taxiway.policy"
PII_CLASSIFICATIONS = frozenset({"pii", "restricted", "confidential", "sensitive", "secret"})
OPERATORS = (
    "mustBe",
    "mustNotBe",
    "mustBeGreaterThan",
    "mustBeGreaterOrEqualTo",
    "mustBeLessThan",
    "mustBeLessOrEqualTo",
    "mustBeBetween",
    "mustNotBeBetween",
)
Policy = Literal["block", "quarantine", "warn"]


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, coerce_numbers_to_str=True
    )


class CustomProperty(_Strict):
    """``{property: name, value: ...}``; ``taxiway.policy`` sets a rule's policy."""

    property: str
    value: Any = None
    description: str | None = None
    id: str | None = None


def _policy(custom: list[CustomProperty]) -> Policy | None:
    for item in custom:
        if item.property == POLICY_PROPERTY:
            if item.value not in ("block", "quarantine", "warn"):
                raise ValueError(
                    f"`{POLICY_PROPERTY}` must be block, quarantine or warn, not {item.value!r}"
                )
            return item.value  # type: ignore[no-any-return]
    return None


class QualityRule(_Strict):
    """A library metric (``nullValues``...), a ``sql`` rule, or a ``text`` note."""

    type: Literal["library", "sql", "text", "custom"] | None = None
    metric: str | None = None
    rule: str | None = None  # deprecated alias of metric in ODCS
    arguments: dict[str, Any] = Field(default_factory=dict)
    query: str | None = None
    unit: Literal["rows", "percent"] = "rows"
    severity: str | None = None
    id: str | None = None
    name: str | None = None
    description: str | None = None
    dimension: str | None = None
    method: str | None = None
    businessImpact: str | None = None
    customProperties: list[CustomProperty] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    authoritativeDefinitions: list[Any] = Field(default_factory=list)
    scheduler: str | None = None
    schedule: str | None = None
    engine: str | None = None
    implementation: Any = None
    validValues: list[Any] | None = None  # v3.0 placed arguments at the top level
    mustBe: float | None = None
    mustNotBe: float | None = None
    mustBeGreaterThan: float | None = None
    mustBeGreaterOrEqualTo: float | None = None
    mustBeLessThan: float | None = None
    mustBeLessOrEqualTo: float | None = None
    mustBeBetween: tuple[float, float] | None = None
    mustNotBeBetween: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _supported(self) -> QualityRule:
        kind = self.kind
        if kind == "custom":
            raise ValueError(
                f"custom rules (engine {self.engine!r}) are not run by taxiway; express the check "
                "as a library metric or a `type: sql` rule"
            )
        if kind == "library":
            metric = self.metric_name
            known = ("nullValues", "missingValues", "invalidValues", "duplicateValues", "rowCount")
            if metric not in known:
                raise ValueError(f"unknown metric {metric!r}; taxiway supports {', '.join(known)}")
        if kind == "sql" and not self.query:
            raise ValueError("a `type: sql` rule needs `query:`")
        if kind in ("library", "sql") and not self.operators:
            raise ValueError(f"a {kind} rule needs an operator: one of {', '.join(OPERATORS)}")
        policy = _policy(self.customProperties)
        if policy == "quarantine" and (kind == "sql" or self.metric_name == "rowCount"):
            raise ValueError(
                "`taxiway.policy: quarantine` needs failing rows to set aside; a "
                f"{self.metric_name or kind} rule has none (use block or warn)"
            )
        if self.metric_name == "invalidValues" and not (
            "validValues" in self.arguments or "pattern" in self.arguments or self.validValues
        ):
            raise ValueError(
                "invalidValues needs `arguments: {validValues: [...]}` or `{pattern: ...}`"
            )
        return self

    @property
    def kind(self) -> str:
        """``library``, ``sql``, ``text`` or ``custom`` (``library`` when only a metric is set)."""
        if self.type is not None:
            return self.type
        if self.query is not None:
            return "sql"
        return "library" if self.metric_name else "text"

    @property
    def metric_name(self) -> str | None:
        """The library metric (``rule`` is its deprecated spelling)."""
        return self.metric or self.rule

    @property
    def operators(self) -> dict[str, Any]:
        """The operators set on this rule, e.g. ``{"mustBeLessThan": 1.0}``."""
        return {op: getattr(self, op) for op in OPERATORS if getattr(self, op) is not None}

    @property
    def policy_override(self) -> Policy | None:
        """The ``taxiway.policy`` custom property, if set."""
        return _policy(self.customProperties)


class LogicalTypeOptions(_Strict):
    """Constraints on values: bounds, lengths and a pattern."""

    minimum: Any = None
    maximum: Any = None
    exclusiveMinimum: Any = None
    exclusiveMaximum: Any = None
    minLength: int | None = None
    maxLength: int | None = None
    pattern: str | None = None
    multipleOf: float | None = None
    format: str | None = None
    timezone: bool | None = None
    defaultTimezone: str | None = None


class Property(_Strict):
    """One column: its type, constraints, classification and quality rules."""

    name: str
    id: str | None = None
    physicalName: str | None = None
    logicalType: str | None = None
    physicalType: str | None = None
    logicalTypeOptions: LogicalTypeOptions | None = None
    required: bool = False
    unique: bool = False
    primaryKey: bool = False
    primaryKeyPosition: int | None = None
    partitioned: bool | None = None
    partitionKeyPosition: int | None = None
    criticalDataElement: bool | None = None
    businessName: str | None = None
    description: str | None = None
    classification: str | None = None
    tags: list[str] = Field(default_factory=list)
    examples: list[Any] = Field(default_factory=list)
    enum: list[Any] | None = None
    quality: list[QualityRule] = Field(default_factory=list)
    customProperties: list[CustomProperty] = Field(default_factory=list)
    authoritativeDefinitions: list[Any] = Field(default_factory=list)
    transformSourceObjects: list[str] = Field(default_factory=list)
    transformLogic: str | None = None
    transformDescription: str | None = None
    encryptedName: str | None = None
    synonyms: list[str] = Field(default_factory=list)
    deprecated: bool | None = None
    semanticType: str | None = None
    relationships: list[Any] | None = None

    @field_validator("logicalType")
    @classmethod
    def _flat_types(cls, value: str | None) -> str | None:
        if value is None:
            return value
        lowered = value.lower()
        if lowered in ("object", "array", "map"):
            raise ValueError(
                f"nested logicalType {value!r} is not validated by taxiway; describe the flat "
                "columns of the source instead"
            )
        known = ("string", "integer", "number", "boolean", "date", "timestamp", "time")
        if lowered not in known:
            raise ValueError(f"unknown logicalType {value!r}; expected one of {', '.join(known)}")
        return lowered

    @field_validator("enum")
    @classmethod
    def _enum_values(cls, values: list[Any] | None) -> list[Any] | None:
        if values is None:
            return None
        out = []
        for item in values:
            if isinstance(item, dict):
                if "value" not in item:
                    raise ValueError("each enum entry needs `value:`")
                out.append(item["value"])
            else:
                out.append(item)
        return out

    @model_validator(mode="after")
    def _no_relationships(self) -> Property:
        if self.relationships:
            raise ValueError(
                "relationships (foreign keys) are not checked by taxiway; remove them from the "
                "contract taxiway reads or check them with a `type: sql` rule"
            )
        _policy(self.customProperties)
        return self

    @property
    def pii(self) -> bool:
        """Whether values of this column are masked in reports and logs."""
        return (self.classification or "").lower() in PII_CLASSIFICATIONS

    @property
    def policy_override(self) -> Policy | None:
        """The ``taxiway.policy`` custom property, if set."""
        return _policy(self.customProperties)


class SchemaObject(_Strict):
    """A table: its properties and table-level quality rules."""

    name: str
    id: str | None = None
    physicalName: str | None = None
    physicalType: str | None = None
    logicalType: str | None = None
    businessName: str | None = None
    description: str | None = None
    dataGranularityDescription: str | None = None
    tags: list[str] = Field(default_factory=list)
    authoritativeDefinitions: list[Any] = Field(default_factory=list)
    customProperties: list[CustomProperty] = Field(default_factory=list)
    properties: list[Property] = Field(default_factory=list)
    quality: list[QualityRule] = Field(default_factory=list)
    relationships: list[Any] | None = None

    @model_validator(mode="after")
    def _checks(self) -> SchemaObject:
        if self.relationships:
            raise ValueError("relationships (foreign keys) are not checked by taxiway")
        for rule in self.quality:
            metric = rule.metric_name
            if metric in ("nullValues", "missingValues", "invalidValues"):
                raise ValueError(
                    f"metric {metric} checks one column: put it under that property's `quality:`"
                )
            if metric == "duplicateValues" and not rule.arguments.get("properties"):
                raise ValueError(
                    "a table-level duplicateValues rule needs `arguments: {properties: [a, b]}`"
                )
        names = [p.name for p in self.properties]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"property {duplicated[0]!r} is described twice")
        return self


# ODCS SLA units, as the length of one unit (a year is taken as 365 days)
_UNIT_WORDS = {
    "s": ("s", "sec", "second", "seconds"),
    "m": ("m", "min", "minute", "minutes"),
    "h": ("h", "hr", "hour", "hours"),
    "d": ("d", "day", "days"),
    "w": ("w", "week", "weeks"),
}
SLA_UNITS: dict[str, timedelta] = {
    word: parse_duration(f"1{suffix}") for suffix, words in _UNIT_WORDS.items() for word in words
}
SLA_UNITS.update(dict.fromkeys(("y", "yr", "year", "years"), timedelta(days=365)))


class SlaProperty(_Strict):
    """An SLA entry; ``latency`` (or ``freshness``) on a timestamp column is enforced."""

    property: str
    value: Any = None
    valueExt: Any = None
    unit: str | None = None
    element: str | None = None
    driver: str | None = None
    description: str | None = None
    id: str | None = None
    scheduler: str | None = None
    schedule: str | None = None
    customProperties: list[CustomProperty] = Field(default_factory=list)

    @model_validator(mode="after")
    def _freshness_is_checkable(self) -> SlaProperty:
        _policy(self.customProperties)
        if not self.is_freshness:
            return self
        try:
            float(self.value)
        except (TypeError, ValueError):
            raise ValueError(
                f"a latency SLA needs a number as `value`, not {self.value!r}"
            ) from None
        if (self.unit or "d").lower() not in SLA_UNITS:
            raise ValueError(f"unknown SLA unit {self.unit!r}; use s, m, h, d, w or y")
        return self

    @builtins.property
    def max_age(self) -> timedelta:
        """The latency SLA as a duration (``value`` × ``unit``, days by default)."""
        return float(self.value) * SLA_UNITS[(self.unit or "d").lower()]

    @builtins.property
    def is_freshness(self) -> bool:
        """Whether this entry is the freshness (data latency) SLA."""
        return self.property.lower() in ("latency", "ly", "freshness")


class Contract(_Strict):
    """An ODCS v3 data contract for one source."""

    apiVersion: str = "v3.1.0"
    kind: Literal["DataContract"] = "DataContract"
    id: str | None = None
    name: str | None = None
    version: str | None = None
    status: str | None = None
    tenant: str | None = None
    domain: str | None = None
    dataProduct: str | None = None
    description: Any = None
    tags: list[str] = Field(default_factory=list)
    servers: list[Any] = Field(default_factory=list)
    schema_: list[SchemaObject] = Field(default_factory=list, alias="schema")
    team: Any = None
    roles: list[Any] = Field(default_factory=list)
    support: list[Any] = Field(default_factory=list)
    price: Any = None
    slaProperties: list[SlaProperty] = Field(default_factory=list)
    slaDefaultElement: str | None = None
    customProperties: list[CustomProperty] = Field(default_factory=list)
    authoritativeDefinitions: list[Any] = Field(default_factory=list)
    contractCreatedTs: Any = None

    @field_validator("apiVersion")
    @classmethod
    def _v3(cls, value: str) -> str:
        if not str(value).lower().lstrip("v").startswith("3."):
            raise ValueError(f"taxiway reads ODCS v3 contracts (apiVersion v3.x), not {value!r}")
        return value

    @model_validator(mode="after")
    def _one_object(self) -> Contract:
        for sla in self.slaProperties:
            if sla.is_freshness and not (sla.element or self.slaDefaultElement):
                raise ValueError("a latency (freshness) SLA needs `element: table.column`")
        if len(self.schema_) != 1:
            raise ValueError(
                f"a contract taxiway reads describes exactly one table under `schema:`, found "
                f"{len(self.schema_)}; split it into one contract file per source"
            )
        return self

    @property
    def table(self) -> SchemaObject:
        """The one schema object this contract describes."""
        return self.schema_[0]

    @property
    def owner(self) -> str | None:
        """The owning team or person, when the contract names one."""
        team = self.team
        if isinstance(team, dict):
            return str(team.get("name")) if team.get("name") else None
        if isinstance(team, list):
            for member in team:
                if isinstance(member, dict) and str(member.get("role", "")).lower() == "owner":
                    return str(member.get("username") or member.get("name"))
        return None
