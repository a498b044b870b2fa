"""Segments: the model is no worse than its baseline for any value of a declared segment
(``governance.segments``) or in any time slice of the validation rows.

Each group where it is worse beyond noise (a paired bootstrap interval wholly below zero; see
:mod:`taxiway.models.segments`) is a warning with the fix: the model may still ship, with
the group answered by the baseline, but nobody should learn of it from production.
"""

from __future__ import annotations

from taxiway.models.audit.context import AuditContext
from taxiway.models.audit.findings import AuditReport
from taxiway.models.card import group_findings

__all__ = ["check_segments"]


def check_segments(ctx: AuditContext, report: AuditReport) -> None:
    """A warning per group where the model is worse than the baseline."""
    metrics = ctx.version.metrics
    declared = ctx.spec.governance.segments if ctx.spec.governance else []
    measured = metrics.get("segments") or {}
    unmeasured = [name for name in declared if name not in measured]
    if unmeasured:
        report.add(
            "segments",
            "warning",
            None,
            f"governance.segments declares {', '.join(unmeasured)}, not measured for "
            f"version {ctx.version.version} (trained before they were declared)",
            "retrain (`taxiway train`) to score the model per segment",
        )
    if not declared and not metrics.get("time_slices"):
        report.checks["segments"] = "not applicable"
        return
    for finding in group_findings(ctx.version):
        report.add("segments", "warning", None, f"{finding.title}: {finding.evidence}", finding.fix)
    report.measured["segments"] = {
        "declared": len(declared),
        "groups": sum(len(m.get("rows") or []) for m in measured.values())
        + len(metrics.get("time_slices") or []),
    }
