"""The rules of one contract property: its type, presence, uniqueness, values and quality.

A column stored as text under a typed property is checked value by value (and its value
constraints apply to the cast value); a widening (integer data for a number) passes; any other
type change is schema drift, which blocks when values cannot be compared.
"""

from __future__ import annotations

from taxiway.data.contracts.families import (
    CAST,
    Family,
    bound_literal,
    expected_family,
    logical_family,
    number_bound,
    sql_literal,
    text_is,
)
from taxiway.data.contracts.model import LogicalTypeOptions, Policy, Property
from taxiway.data.contracts.plan import Rule
from taxiway.data.contracts.quality_rules import quality_rule
from taxiway.data.findings import Finding
from taxiway.engines.duckdb import quote_identifier, quote_literal

__all__ = ["property_rules"]


def property_rules(
    prop: Property,
    actual: str,
    source: str,
    drift: list[Finding],
    notes: list[Finding],
    single_key: bool,
) -> list[Rule]:
    """The rules of ``prop`` for a column of engine type ``actual``; drift and notes are added
    to ``drift`` and ``notes``. No rule when the type changed beyond comparing."""
    column = prop.name
    policy: Policy = prop.policy_override or "quarantine"
    expected = expected_family(prop)
    typed = _type_rule(prop, actual, expected, policy, source, drift)
    if typed is None:
        return []
    type_rule, value = typed
    rules = [type_rule] if type_rule is not None else []
    rules += _presence_rules(prop, value, policy, single_key)
    options = prop.logicalTypeOptions
    if options is not None:
        rules += _option_rules(prop, options, value, expected, policy)
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
        rule = quality_rule(quality, column, {column: actual}, f"{column}.quality[{index}]", None)
        if rule is not None:
            rules.append(rule)
    return rules


def _type_rule(
    prop: Property,
    actual: str,
    expected: Family | None,
    policy: Policy,
    source: str,
    drift: list[Finding],
) -> tuple[Rule | None, str] | None:
    """The type check of ``prop`` (if any) and the expression its value constraints apply to
    (the column, cast when stored as text); None when the type changed beyond comparing."""
    column = prop.name
    col = quote_identifier(column)
    value = col
    family = logical_family(actual)
    if expected is None or expected == family:
        return None, value
    cast = CAST.get(expected)
    if family == "string" and cast is not None:
        rule = Rule(
            id=f"{column}.type",
            column=column,
            policy=policy,
            reason=f"{column} is not a valid {expected}",
            row_check=f"{col} IS NULL OR ({text_is(expected, col)})",
        )
        return rule, f"TRY_CAST({col} AS {cast})"
    if expected == "integer" and family == "number":
        rule = Rule(
            id=f"{column}.type",
            column=column,
            policy=policy,
            reason=f"{column} is not a whole number",
            # round, not trunc: the same test, and Spark has no numeric trunc
            row_check=f"{col} IS NULL OR {col} = round({col})",
        )
        return rule, value
    if (expected, family) in (("number", "integer"), ("timestamp", "date")):
        return None, value  # widening: every value is valid
    if expected == "string":
        drift.append(
            Finding(
                source,
                f"schema.retyped.{column}",
                "warn",
                f"column `{column}` is {actual} in the data but string in the contract",
                fix=f"update `logicalType` of `{column}` in the contract if the change is intended",
            )
        )
        return None, f"{col}::VARCHAR"
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
    return None


def _presence_rules(prop: Property, value: str, policy: Policy, single_key: bool) -> list[Rule]:
    """``required`` (and a primary key), ``unique`` (and a single-column key), ``enum``."""
    column = prop.name
    col = quote_identifier(column)
    rules: list[Rule] = []
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
        allowed = ", ".join(sql_literal(v) for v in prop.enum)
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
    return rules


def _option_rules(
    prop: Property,
    options: LogicalTypeOptions,
    value: str,
    expected: Family | None,
    policy: Policy,
) -> list[Rule]:
    """``logicalTypeOptions``: bounds, lengths, ``pattern`` and ``multipleOf``."""
    column = prop.name
    col = quote_identifier(column)
    # ODCS v3.0 wrote `exclusiveMinimum: true` to make `minimum` strict
    strict_min = options.exclusiveMinimum is True
    strict_max = options.exclusiveMaximum is True
    bounds = [
        ("minimum", ">" if strict_min else ">=", options.minimum),
        ("maximum", "<" if strict_max else "<=", options.maximum),
        ("exclusiveMinimum", ">", number_bound(options.exclusiveMinimum)),
        ("exclusiveMaximum", "<", number_bound(options.exclusiveMaximum)),
    ]
    # (constraint, reason, SQL that holds for a valid non-null value), when set
    checks: list[tuple[str, str, str]] = [
        (
            name,
            f"{column} not {symbol} {bound}",
            f"{value} {symbol} {bound_literal(bound, expected)}",
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
    return [
        Rule(
            id=f"{column}.{name}",
            column=column,
            policy=policy,
            reason=reason,
            row_check=f"{value} IS NULL OR {valid}",
        )
        for name, reason, valid in checks
    ]
