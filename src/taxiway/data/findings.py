"""A finding: one thing a check found about a source, with how bad it is and the fix.

Severities, from worst: ``block`` (nothing downstream runs), ``quarantine`` (failing rows are
set aside, the rest continue), ``warn`` and ``info``.

>>> f = Finding("orders", "access", "block", "role ml cannot read public.orders",
...             fix="GRANT SELECT ON public.orders TO ml;")
>>> f.blocks, f.as_dict()["severity"]
(True, 'block')
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = ["SEVERITY_ORDER", "Finding", "Severity", "worst"]

Severity = Literal["block", "quarantine", "warn", "info"]
SEVERITY_ORDER: dict[str, int] = {"block": 0, "quarantine": 1, "warn": 2, "info": 3}


@dataclass(frozen=True)
class Finding:
    """One problem (or notice) about a source."""

    source: str
    rule: str
    severity: Severity
    message: str
    fix: str | None = None
    failing: int | None = None

    @property
    def blocks(self) -> bool:
        """Whether this finding stops everything downstream of its source."""
        return self.severity == "block"

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``rule``, ``severity``, ``failing``, ``message``, ``fix``)."""
        return {k: v for k, v in asdict(self).items() if k != "source"}


def worst(findings: list[Finding]) -> Severity | None:
    """The most severe severity among ``findings``, or ``None`` when there are none."""
    if not findings:
        return None
    return min((f.severity for f in findings), key=SEVERITY_ORDER.__getitem__)
