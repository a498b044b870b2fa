"""Compile a contract, against the columns a source really has, into executable rules.

Each rule is SQL for the offline engine: a row check (TRUE when a row passes) that can be
counted, sampled and quarantined; a uniqueness check; a row count; or a scalar SQL query.
Schema drift (columns added, removed, retyped versus the contract) is found here too.

>>> from taxiway.data.contracts.loader import load_contract_text
>>> contract = load_contract_text('''
... apiVersion: v3.1.0
... schema:
...   - name: orders
...     properties:
...       - {name: amount, logicalType: number, logicalTypeOptions: {minimum: 0}}
... ''')
>>> plan = compile_rules(contract, {"amount": "DOUBLE"}, source="orders")
>>> [(r.id, r.policy, r.row_check) for r in plan.rules]
[('amount.minimum', 'quarantine', '"amount" IS NULL OR "amount" >= 0')]
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from taxiway.data.contracts.model import Contract, Policy, Property, QualityRule
from taxiway.data.findings import Finding
from taxiway.engines.duckdb import quote_identifier, quote_literal
from taxiway.errors import SpecError

__all__ = ["FreshnessRule", "Rule", "RulePlan", "compile_rules", "logical_family"]

Family = Literal["string", "integer", "number", "boolean", "date", "timestamp", "time", "other"]


@dataclass(frozen=True)
class Rule:
    """One executable check.

    ``measure`` says what is compared with the operators: ``failing`` rows (row checks and
    uniqueness), ``rows`` (row count) or ``sql`` (a query's scalar result). With no operators
    the rule passes only when no row fails.
    """

    id: str
    column: str | None
    policy: Policy
    reason: str
    measure: Literal["failing", "rows", "sql"] = "failing"
    row_check: str | None = None
    unique_over: tuple[str, ...] | None = None
    query: str | None = None
    unit: Literal["rows", "percent"] = "rows"
    operators: dict[str, Any] = field(default_factory=dict)

    @property
    def row_level(self) -> bool:
        """Whether failing rows can be identified (and so sampled and quarantined)."""
        return self.row_check is not None or self.unique_over is not None

    def threshold(self) -> str:
        """The pass condition in words, e.g. ``failing rows = 0`` or ``< 1 %``."""
        what = {"failing": "failing rows", "rows": "row count", "sql": "query result"}[self.measure]
        if self.unit == "percent":
            what = "failing %" if self.measure == "failing" else what
        if not self.operators:
            return f"{what} = 0"
        return " and ".join(f"{what} {_SYMBOLS[op]} {_fmt(v)}" for op, v in self.operators.items())

    def passes(self, value: float) -> bool:
        """Whether ``value`` satisfies every operator (no operators: ``value == 0``).

        >>> Rule("r", None, "warn", "", operators={"mustBeBetween": (1, 5)}).passes(5)
        True
        """
        if not self.operators:
            return value == 0
        return all(_compare(op, value, bound) for op, bound in self.operators.items())


@dataclass(frozen=True)
class FreshnessRule:
    """The newest value of ``column`` must be at most ``max_age`` old."""

    id: str
    column: str
    max_age: timedelta
    policy: Policy


@dataclass(frozen=True)
class RulePlan:
    """Everything to run against one source."""

    rules: list[Rule]
    freshness: list[FreshnessRule]
    drift: list[Finding]
    pii: frozenset[str]
    notes: list[Finding] = field(default_factory=list)


_SYMBOLS = {
    "mustBe": "=",
    "mustNotBe": "≠",
    "mustBeGreaterThan": ">",
    "mustBeGreaterOrEqualTo": "≥",
    "mustBeLessThan": "<",
    "mustBeLessOrEqualTo": "≤",
    "mustBeBetween": "in",
    "mustNotBeBetween": "not in",
}


def _compare(op: str, value: float, bound: Any) -> bool:
    if op == "mustBe":
        return bool(value == bound)
    if op == "mustNotBe":
        return bool(value != bound)
    if op == "mustBeGreaterThan":
        return bool(value > bound)
    if op == "mustBeGreaterOrEqualTo":
        return bool(value >= bound)
    if op == "mustBeLessThan":
        return bool(value < bound)
    if op == "mustBeLessOrEqualTo":
        return bool(value <= bound)
    low, high = bound
    inside = bool(low <= value <= high)
    return inside if op == "mustBeBetween" else not inside


def _fmt(value: Any) -> str:
    if isinstance(value, tuple | list):
        return f"[{_fmt(value[0])}, {_fmt(value[1])}]"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --------------------------------------------------------------------------- types

_PHYSICAL = [
    (
        re.compile(
            r"^(tiny|small|big|huge)?int(eger)?\d*$|^u(tiny|small|big|huge)?int\d*$|^serial"
        ),
        "integer",
    ),
    (re.compile(r"^(double|float|real|decimal|numeric|number)"), "number"),
    (re.compile(r"^(var)?char|^text|^string|^uuid"), "string"),
    (re.compile(r"^bool"), "boolean"),
    (re.compile(r"^timestamp|^datetime"), "timestamp"),
    (re.compile(r"^date$"), "date"),
    (re.compile(r"^time"), "time"),
]


def logical_family(type_name: str) -> Family:
    """The logical family of an engine or physical type name.

    >>> logical_family("BIGINT"), logical_family("TIMESTAMP WITH TIME ZONE"), logical_family("varchar(18)")
    ('integer', 'timestamp', 'string')
    """
    lowered = type_name.strip().lower()
    for pattern, family in _PHYSICAL:
        if pattern.search(lowered):
            return family  # type: ignore[return-value]
    return "other"


_CAST = {
    "integer": "BIGINT",
    "number": "DOUBLE",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "time": "TIME",
}


def _text_is(family: str, col: str) -> str:
    """SQL that is TRUE when text ``col`` holds a valid value of ``family``."""
    if family == "integer":
        return f"regexp_full_match(trim({col}), '[+-]?[0-9]+')"
    if family == "number":
        return f"isfinite(TRY_CAST({col} AS DOUBLE))"
    return f"TRY_CAST({col} AS {_CAST[family]}) IS NOT NULL"


def _number_bound(bound: Any) -> Any:
    return None if isinstance(bound, bool) else bound


def _expected_family(prop: Property) -> Family | None:
    if prop.logicalType:
        return prop.logicalType  # type: ignore[return-value]
    if prop.physicalType:
        family = logical_family(prop.physicalType)
        return None if family == "other" else family
    return None


# --------------------------------------------------------------------------- compile


def compile_rules(contract: Contract, columns: dict[str, str], *, source: str) -> RulePlan:
    """The rules of ``contract`` for a source whose columns (name → engine type) are given."""
    table = contract.table
    rules: list[Rule] = []
    drift: list[Finding] = []
    notes: list[Finding] = []
    declared = {p.name for p in table.properties}
    pii = frozenset(p.name for p in table.properties if p.pii)

    for name in columns:
        if name not in declared:
            drift.append(
                Finding(
                    source,
                    f"schema.added.{name}",
                    "warn",
                    f"column `{name}` ({columns[name]}) is in the data but not in the contract",
                    fix=f"describe `{name}` in the contract, or stop producing it upstream",
                )
            )
    primary_keys = [p.name for p in table.properties if p.primaryKey]
    for prop in table.properties:
        column = prop.name
        if column not in columns:
            drift.append(
                Finding(
                    source,
                    f"schema.removed.{column}",
                    "block",
                    f"column `{column}` is in the contract but not in the data",
                    fix=f"restore `{column}` upstream, or remove it from the contract and the spec",
                )
            )
            continue
        rules.extend(
            _property_rules(prop, columns[column], source, drift, notes, len(primary_keys) == 1)
        )
    if len(primary_keys) > 1 and all(k in columns for k in primary_keys):
        rules.append(
            Rule(
                id="primaryKey.unique",
                column=None,
                policy=_policy_of(table.customProperties) or "quarantine",
                reason=f"duplicate primary key ({', '.join(primary_keys)})",
                unique_over=tuple(primary_keys),
            )
        )
    for index, quality in enumerate(table.quality):
        rule = _quality_rule(quality, None, columns, f"{quality.kind}[{index}]", table.name)
        if rule is not None:
            rules.append(rule)

    freshness: list[FreshnessRule] = []
    for sla in contract.slaProperties:
        if not sla.is_freshness:
            continue
        element = sla.element or contract.slaDefaultElement
        sla_column = element.split(",")[0].strip().split(".")[-1] if element else None
        if sla_column is None:
            raise _contract_error("a latency (freshness) SLA needs `element: table.column`")
        if sla_column not in columns:
            drift.append(
                Finding(
                    source,
                    "sla.freshness",
                    "block",
                    f"the freshness SLA is on `{sla_column}`, which is not in the data",
                    fix="point `element:` at the source's timestamp column",
                )
            )
            continue
        policy = _policy_of(sla.customProperties) or "warn"
        freshness.append(
            FreshnessRule(
                id=f"{sla_column}.freshness",
                column=sla_column,
                max_age=sla.max_age,
                policy=policy,
            )
        )
    return RulePlan(rules=rules, freshness=freshness, drift=drift, pii=pii, notes=notes)


def _policy_of(custom: list[Any]) -> Policy | None:
    for item in custom:
        if item.property == "taxiway.policy":
            return item.value  # type: ignore[no-any-return]
    return None


def _property_rules(
    prop: Property,
    actual: str,
    source: str,
    drift: list[Finding],
    notes: list[Finding],
    single_key: bool,
) -> list[Rule]:
    column = prop.name
    col = quote_identifier(column)
    policy: Policy = prop.policy_override or "quarantine"
    rules: list[Rule] = []
    value = col  # the expression the value constraints apply to (cast when stored as text)
    expected = _expected_family(prop)
    family = logical_family(actual)
    if expected is not None and expected != family:
        cast = _CAST.get(expected)
        if family == "string" and cast is not None:
            rules.append(
                Rule(
                    id=f"{column}.type",
                    column=column,
                    policy=policy,
                    reason=f"{column} is not a valid {expected}",
                    row_check=f"{col} IS NULL OR ({_text_is(expected, col)})",
                )
            )
            value = f"TRY_CAST({col} AS {cast})"
        elif expected == "integer" and family == "number":
            rules.append(
                Rule(
                    id=f"{column}.type",
                    column=column,
                    policy=policy,
                    reason=f"{column} is not a whole number",
                    row_check=f"{col} IS NULL OR {col} = trunc({col})",
                )
            )
        elif (expected, family) in (("number", "integer"), ("timestamp", "date")):
            pass  # widening: every value is valid
        elif expected == "string":
            value = f"{col}::VARCHAR"
            drift.append(
                Finding(
                    source,
                    f"schema.retyped.{column}",
                    "warn",
                    f"column `{column}` is {actual} in the data but string in the contract",
                    fix=f"update `logicalType` of `{column}` in the contract if the change is intended",
                )
            )
        else:
            drift.append(
                Finding(
                    source,
                    f"schema.retyped.{column}",
                    "block",
                    f"column `{column}` is {actual} in the data but {expected} in the contract",
                    fix=f"restore the type of `{column}` upstream, or update the contract and "
                    "everything that uses the column",
                )
            )
            return rules
    if prop.required or prop.primaryKey:
        rules.append(
            Rule(
                id=f"{column}.required",
                column=column,
                policy=policy,
                reason=f"{column} is null",
                row_check=f"{col} IS NOT NULL",
            )
        )
    if prop.unique or (prop.primaryKey and single_key):
        rules.append(
            Rule(
                id=f"{column}.unique",
                column=column,
                policy=policy,
                reason=f"duplicate {column}",
                unique_over=(column,),
            )
        )
    if prop.enum is not None:
        allowed = ", ".join(_literal(v) for v in prop.enum)
        shown = ", ".join(str(v) for v in prop.enum)
        rules.append(
            Rule(
                id=f"{column}.enum",
                column=column,
                policy=policy,
                reason=f"{column} not one of {shown}",
                row_check=f"{value} IS NULL OR {value} IN ({allowed})",
            )
        )
    options = prop.logicalTypeOptions
    if options is not None:
        # ODCS v3.0 wrote `exclusiveMinimum: true` to make `minimum` strict
        strict_min = options.exclusiveMinimum is True
        strict_max = options.exclusiveMaximum is True
        bounds = [
            ("minimum", ">" if strict_min else ">=", options.minimum),
            ("maximum", "<" if strict_max else "<=", options.maximum),
            ("exclusiveMinimum", ">", _number_bound(options.exclusiveMinimum)),
            ("exclusiveMaximum", "<", _number_bound(options.exclusiveMaximum)),
        ]
        # (constraint, reason, SQL that holds for a valid non-null value), when set
        checks: list[tuple[str, str, str]] = [
            (
                name,
                f"{column} not {symbol} {bound}",
                f"{value} {symbol} {_bound_literal(bound, expected)}",
            )
            for name, symbol, bound in bounds
            if bound is not None
        ]
        if options.minLength is not None:
            checks.append(
                (
                    "minLength",
                    f"{column} shorter than {options.minLength}",
                    f"length({col}::VARCHAR) >= {int(options.minLength)}",
                )
            )
        if options.maxLength is not None:
            checks.append(
                (
                    "maxLength",
                    f"{column} longer than {options.maxLength}",
                    f"length({col}::VARCHAR) <= {int(options.maxLength)}",
                )
            )
        if options.pattern is not None:
            checks.append(
                (
                    "pattern",
                    f"{column} does not match {options.pattern}",
                    f"regexp_matches({col}::VARCHAR, {quote_literal(options.pattern)})",
                )
            )
        if options.multipleOf is not None:
            step = repr(options.multipleOf)
            checks.append(
                (
                    "multipleOf",
                    f"{column} not a multiple of {options.multipleOf}",
                    f"abs({value} / {step} - round({value} / {step})) < 1e-9",
                )
            )
        rules.extend(
            Rule(
                id=f"{column}.{name}",
                column=column,
                policy=policy,
                reason=reason,
                row_check=f"{value} IS NULL OR {valid}",
            )
            for name, reason, valid in checks
        )
        if options.format is not None and expected == "string":
            notes.append(
                Finding(
                    source,
                    f"{column}.format",
                    "info",
                    f"`format: {options.format}` on `{column}` is documentation only; taxiway "
                    "checks `pattern`",
                )
            )
    for index, quality in enumerate(prop.quality):
        rule = _quality_rule(quality, column, {column: actual}, f"{column}.quality[{index}]", None)
        if rule is not None:
            rules.append(rule)
    return rules


def _quality_rule(
    quality: QualityRule,
    column: str | None,
    columns: dict[str, str],
    fallback_id: str,
    table: str | None,
) -> Rule | None:
    kind = quality.kind
    if kind == "text":
        return None
    severity = (quality.severity or "error").lower()
    default: Policy = "block" if severity in ("error", "critical", "blocker", "high") else "warn"
    policy = quality.policy_override or default
    metric = quality.metric_name
    rule_id = (
        quality.id
        or quality.name
        or (f"{column}.{metric}" if column and metric else (metric or fallback_id))
    )
    base: dict[str, Any] = {
        "id": rule_id,
        "column": column,
        "policy": policy,
        "unit": quality.unit,
        "operators": quality.operators,
    }
    if kind == "sql":
        assert quality.query is not None
        if policy == "quarantine":
            raise _contract_error(f"{rule_id}: a `sql` rule has no failing rows to quarantine")
        return Rule(
            reason=quality.description or "sql rule", measure="sql", query=quality.query, **base
        )
    if metric == "rowCount":
        if policy == "quarantine":
            raise _contract_error(f"{rule_id}: rowCount has no failing rows to quarantine")
        return Rule(reason="row count out of range", measure="rows", **base)
    arguments = dict(quality.arguments)
    if quality.validValues is not None:
        arguments.setdefault("validValues", quality.validValues)
    if metric == "duplicateValues":
        over = tuple(arguments.get("properties") or ([column] if column else []))
        if not over:
            raise _contract_error(
                f"{rule_id}: duplicateValues at table level needs arguments.properties"
            )
        return Rule(reason=f"duplicate {', '.join(over)}", unique_over=over, **base)
    if column is None:
        raise _contract_error(f"{rule_id}: metric {metric} belongs under a property's `quality:`")
    col = quote_identifier(column)
    if metric == "nullValues":
        return Rule(reason=f"{column} is null", row_check=f"{col} IS NOT NULL", **base)
    if metric == "missingValues":
        missing = arguments.get("missingValues", [None, ""])
        tests = [f"{col} IS NULL"] if None in missing else []
        values = [v for v in missing if v is not None]
        if values:
            tests.append(f"{col}::VARCHAR IN ({', '.join(_literal(str(v)) for v in values)})")
        check = f"NOT ({' OR '.join(tests)})" if tests else "TRUE"
        return Rule(reason=f"{column} is missing", row_check=check, **base)
    # invalidValues
    checks = []
    if "validValues" in arguments:
        valid = ", ".join(_literal(v) for v in arguments["validValues"])
        checks.append(f"{col} IN ({valid})")
    if "pattern" in arguments:
        checks.append(f"regexp_matches({col}::VARCHAR, {quote_literal(str(arguments['pattern']))})")
    if not checks:
        raise _contract_error(
            f"{rule_id}: invalidValues needs arguments.validValues or arguments.pattern"
        )
    return Rule(
        reason=f"{column} is not a valid value",
        row_check=f"{col} IS NULL OR ({' AND '.join(checks)})",
        **base,
    )


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return quote_literal(str(value))


def _bound_literal(bound: Any, family: Family | None) -> str:
    if family in ("date", "timestamp", "time") or not isinstance(bound, int | float):
        cast = _CAST.get(family or "", "VARCHAR")
        return f"CAST({quote_literal(str(bound))} AS {cast})"
    return repr(bound)


def _contract_error(message: str) -> SpecError:
    return SpecError(message)
