"""Audit findings and the report that holds them (JSON, Markdown, HTML).

>>> report = AuditReport(name="churn", version=3)
>>> report.add("leakage", "blocker", "orders__refund_7d", "own ROC AUC 0.99", "drop it")
>>> report.blocked, report.as_dict()["findings"][0]["check"]
(True, 'leakage')
"""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = ["CHECKS", "RECOMMEND_CHECKS", "AuditFinding", "AuditReport", "Severity"]

Severity = Literal["blocker", "warning"]
CHECKS = ("leakage", "availability", "latency", "skew", "coverage", "segments")
RECOMMEND_CHECKS = ("leakage", "filters", "skew", "coverage", "latency")
"""A recommender's audit (``taxiway.recommend.audit``): filters parity in place of availability;
skew is the ranking stage's (its feature views online vs offline), left out without one."""


@dataclass(frozen=True)
class AuditFinding:
    """One problem: which check, how bad, which input, the evidence, and the fix."""

    check: str
    severity: Severity
    feature: str | None
    evidence: str
    fix: str


@dataclass
class AuditReport:
    """Every finding of one audit, plus what was measured and which checks ran."""

    name: str
    version: int
    findings: list[AuditFinding] = field(default_factory=list)
    measured: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, str] = field(default_factory=dict)  # check -> "passed" | "failed" | ...
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    names: tuple[str, ...] = CHECKS  # the checks this report covers, in order

    def add(
        self, check: str, severity: Severity, feature: str | None, evidence: str, fix: str
    ) -> None:
        """Record a finding."""
        self.findings.append(AuditFinding(check, severity, feature, evidence, fix))

    @property
    def blocked(self) -> bool:
        """Whether any finding is a blocker."""
        return any(f.severity == "blocker" for f in self.findings)

    def status(self, check: str) -> str:
        """``blocker``, ``warning`` or ``passed`` for one check (or what :attr:`checks` says)."""
        severities = {f.severity for f in self.findings if f.check == check}
        if "blocker" in severities:
            return "blocker"
        if "warning" in severities:
            return "warning"
        return self.checks.get(check, "passed")

    def as_dict(self) -> dict[str, Any]:
        """The `taxiway audit --json` document."""
        return {
            "model": {"name": self.name, "version": self.version},
            "at": self.at,
            "blocked": self.blocked,
            "checks": {check: self.status(check) for check in self.names},
            "findings": [asdict(f) for f in self.findings],
            "measured": self.measured,
        }

    def markdown(self) -> str:
        """The report as Markdown."""
        verdict = "**BLOCKED**" if self.blocked else "**ready for handoff**"
        lines = [
            f"# Handoff audit: {self.name} v{self.version}",
            "",
            f"{self.at} · {verdict} · {self._counts()}",
            "",
            "| check | result |",
            "|---|---|",
            *(f"| {check} | {self.status(check)} |" for check in self.names),
            "",
        ]
        for check in self.names:
            found = [f for f in self.findings if f.check == check]
            if not found:
                continue
            lines += [f"## {check}", ""]
            for f in found:
                subject = f" `{f.feature}`" if f.feature else ""
                lines += [
                    f"- **{f.severity}**{subject}: {f.evidence}",
                    f"  - fix: {f.fix}",
                ]
            lines.append("")
        if self.measured:
            lines += ["## measured", ""]
            lines += [f"- {key}: {_plain(value)}" for key, value in self.measured.items()]
            lines.append("")
        return "\n".join(lines)

    def html(self) -> str:
        """The report as one self-contained HTML page."""
        e = html.escape
        rows = "".join(
            f"<tr><td>{e(c)}</td><td class='{e(self.status(c))}'>{e(self.status(c))}</td></tr>"
            for c in self.names
        )
        items = "".join(
            f"<tr><td>{e(f.check)}</td><td class='{e(f.severity)}'>{e(f.severity)}</td>"
            f"<td><code>{e(f.feature or '')}</code></td><td>{e(f.evidence)}</td>"
            f"<td>{e(f.fix)}</td></tr>"
            for f in self.findings
        )
        measured = "".join(
            f"<tr><td>{e(str(k))}</td><td>{e(_plain(v))}</td></tr>"
            for k, v in self.measured.items()
        )
        verdict = "BLOCKED" if self.blocked else "ready for handoff"
        return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Handoff audit: {e(self.name)} v{self.version}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; max-width: 70rem; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
td, th {{ border: 1px solid #ccc; padding: .3rem .6rem; vertical-align: top; text-align: left; }}
.blocker {{ color: #fff; background: #b00020; }} .warning {{ background: #ffd54f; }}
.passed {{ background: #c8e6c9; }}
</style></head><body>
<h1>Handoff audit: {e(self.name)} v{self.version}</h1>
<p>{e(self.at)} · <strong>{e(verdict)}</strong> · {e(self._counts())}</p>
<table><tr><th>check</th><th>result</th></tr>{rows}</table>
<h2>Findings</h2>
<table><tr><th>check</th><th>severity</th><th>feature</th><th>evidence</th><th>fix</th></tr>
{items or "<tr><td colspan='5'>none</td></tr>"}</table>
<h2>Measured</h2><table>{measured}</table>
</body></html>
"""

    def _counts(self) -> str:
        blockers = sum(f.severity == "blocker" for f in self.findings)
        warnings = len(self.findings) - blockers
        return f"{blockers} blocker(s), {warnings} warning(s)"


def _plain(value: Any) -> str:
    """A measurement in words: ``{'p50_ms': 1, 'calls': 9}`` → ``p50_ms 1, calls 9``."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {_plain(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "/".join(_plain(v) for v in value)
    return str(value)
