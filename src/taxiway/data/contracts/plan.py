"""What a compiled contract runs: :class:`Rule`, :class:`FreshnessRule`, :class:`RulePlan`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from taxiway.data.contracts.model import Policy
from taxiway.data.findings import Finding
from taxiway.errors import SpecError

__all__ = ["FreshnessRule", "Rule", "RulePlan", "contract_error"]


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


def contract_error(message: str) -> SpecError:
    return SpecError(message)
