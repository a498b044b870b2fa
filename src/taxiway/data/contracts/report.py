"""What validating a source against its contract found: per rule, and as findings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taxiway.data.contracts.model import Policy
from taxiway.data.findings import Finding

__all__ = ["RuleResult", "ValidationReport"]


@dataclass(frozen=True)
class RuleResult:
    """The outcome of one rule: whether it passed, how many rows failed, and a few of them."""

    rule: str
    column: str | None
    policy: Policy
    passed: bool
    failing: int | None
    fraction: float | None
    threshold: str
    value: float | None = None
    samples: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "rule": self.rule,
            "column": self.column,
            "policy": self.policy,
            "passed": self.passed,
            "failing": self.failing,
            "fraction": self.fraction,
            "threshold": self.threshold,
            "value": self.value,
            "samples": self.samples,
            "message": self.message,
        }


@dataclass
class ValidationReport:
    """The contract check of one source.

    ``findings`` holds drift, failed rules and freshness breaches; ``quarantine_path`` the
    Parquet file of rows set aside (with a ``_reason`` column), if any were; ``clean_view``
    the view (in the validating connection) of the rows that go on downstream.
    """

    source: str
    rows: int
    results: list[RuleResult] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    quarantine_path: Path | None = None
    quarantined_rows: int = 0
    clean_view: str | None = None

    @property
    def blocked(self) -> bool:
        """Whether a `block` rule failed (nothing downstream of this source may run)."""
        return any(f.blocks for f in self.findings)

    def result(self, rule: str) -> RuleResult:
        """The result of rule ``rule`` (e.g. ``"order_id.unique"``)."""
        for item in self.results:
            if item.rule == rule:
                return item
        raise KeyError(rule)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "source": self.source,
            "rows": self.rows,
            "blocked": self.blocked,
            "rules": [r.as_dict() for r in self.results],
            "findings": [f.as_dict() for f in self.findings],
            "quarantine": str(self.quarantine_path) if self.quarantine_path else None,
            "quarantined_rows": self.quarantined_rows,
        }
