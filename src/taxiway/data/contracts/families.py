"""Type families: which logical family an engine type is in, and its SQL casts and literals."""

from __future__ import annotations

import re
from typing import Any, Literal

from taxiway.data.contracts.model import Property
from taxiway.engines.duckdb import quote_literal

__all__ = [
    "CAST",
    "Family",
    "bound_literal",
    "expected_family",
    "logical_family",
    "number_bound",
    "sql_literal",
    "text_is",
]

Family = Literal["string", "integer", "number", "boolean", "date", "timestamp", "time", "other"]


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


CAST = {
    "integer": "BIGINT",
    "number": "DOUBLE",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "time": "TIME",
}


def text_is(family: str, col: str) -> str:
    """SQL that is TRUE when text ``col`` holds a valid value of ``family``.

    >>> import duckdb
    >>> sql = text_is("number", "v")
    >>> duckdb.sql(f"SELECT {sql} FROM (VALUES ('1.5'), ('abc')) t(v)").fetchall()
    [(True,), (False,)]
    >>> sql = text_is("timestamp", "v")
    >>> duckdb.sql(f"SELECT {sql} FROM (VALUES ('2025-01-01 10:00'), ('soon')) t(v)").fetchall()
    [(True,), (False,)]
    """
    if family == "integer":
        return f"regexp_full_match(trim({col}), '[+-]?[0-9]+')"
    if family == "number":
        return f"coalesce(isfinite(TRY_CAST({col} AS DOUBLE)), FALSE)"
    return f"TRY_CAST({col} AS {CAST[family]}) IS NOT NULL"


def number_bound(bound: Any) -> Any:
    return None if isinstance(bound, bool) else bound


def expected_family(prop: Property) -> Family | None:
    if prop.logicalType:
        return prop.logicalType  # type: ignore[return-value]
    if prop.physicalType:
        family = logical_family(prop.physicalType)
        return None if family == "other" else family
    return None


def sql_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return quote_literal(str(value))


def bound_literal(bound: Any, family: Family | None) -> str:
    if family in ("date", "timestamp", "time") or not isinstance(bound, int | float):
        cast = CAST.get(family or "", "VARCHAR")
        return f"CAST({quote_literal(str(bound))} AS {cast})"
    return repr(bound)
