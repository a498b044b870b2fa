"""The rules of a contract's ``quality:`` entries (library metrics and SQL), table or property."""

from __future__ import annotations

from typing import Any

from taxiway.data.contracts.families import sql_literal
from taxiway.data.contracts.model import Policy, QualityRule
from taxiway.data.contracts.plan import Rule, contract_error
from taxiway.engines.duckdb import quote_identifier, quote_literal

__all__ = ["quality_rule"]


def quality_rule(
    quality: QualityRule,
    column: str | None,
    columns: dict[str, str],
    fallback_id: str,
    table: str | None,
) -> Rule | None:
    """The rule of one ``quality:`` entry, of the table or of property ``column`` (``None``
    for a `text` entry, which only documents)."""
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
        assert quality.query is not None  # nosec B101
        if policy == "quarantine":
            raise contract_error(f"{rule_id}: a `sql` rule has no failing rows to quarantine")
        return Rule(
            reason=quality.description or "sql rule", measure="sql", query=quality.query, **base
        )
    if metric == "rowCount":
        if policy == "quarantine":
            raise contract_error(f"{rule_id}: rowCount has no failing rows to quarantine")
        return Rule(reason="row count out of range", measure="rows", **base)
    arguments = dict(quality.arguments)
    if quality.validValues is not None:
        arguments.setdefault("validValues", quality.validValues)
    if metric == "duplicateValues":
        over = tuple(arguments.get("properties") or ([column] if column else []))
        if not over:
            raise contract_error(
                f"{rule_id}: duplicateValues at table level needs arguments.properties"
            )
        return Rule(reason=f"duplicate {', '.join(over)}", unique_over=over, **base)
    if column is None:
        raise contract_error(f"{rule_id}: metric {metric} belongs under a property's `quality:`")
    return _property_metric_rule(metric, column, arguments, rule_id, base)


def _property_metric_rule(
    metric: str | None, column: str, arguments: dict[str, Any], rule_id: str, base: dict[str, Any]
) -> Rule:
    """A row-level metric of one property: nullValues, missingValues or invalidValues."""
    col = quote_identifier(column)
    if metric == "nullValues":
        return Rule(reason=f"{column} is null", row_check=f"{col} IS NOT NULL", **base)
    if metric == "missingValues":
        missing = arguments.get("missingValues", [None, ""])
        tests = [f"{col} IS NULL"] if None in missing else []
        values = [v for v in missing if v is not None]
        if values:
            tests.append(f"{col}::VARCHAR IN ({', '.join(sql_literal(str(v)) for v in values)})")
        check = f"NOT ({' OR '.join(tests)})" if tests else "TRUE"
        return Rule(reason=f"{column} is missing", row_check=check, **base)
    return _invalid_values_rule(column, arguments, rule_id, base)


def _invalid_values_rule(
    column: str, arguments: dict[str, Any], rule_id: str, base: dict[str, Any]
) -> Rule:
    """invalidValues: a value outside ``validValues`` or not matching ``pattern`` fails."""
    col = quote_identifier(column)
    checks = []
    if "validValues" in arguments:
        valid = ", ".join(sql_literal(v) for v in arguments["validValues"])
        checks.append(f"{col} IN ({valid})")
    if "pattern" in arguments:
        checks.append(f"regexp_matches({col}::VARCHAR, {quote_literal(str(arguments['pattern']))})")
    if not checks:
        raise contract_error(
            f"{rule_id}: invalidValues needs arguments.validValues or arguments.pattern"
        )
    return Rule(
        reason=f"{column} is not a valid value",
        row_check=f"{col} IS NULL OR ({' AND '.join(checks)})",
        **base,
    )
