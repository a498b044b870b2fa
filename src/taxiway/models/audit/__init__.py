"""The handoff audit: leakage, prediction-time availability, latency, skew, coverage and
segments.

``run_audit`` runs every check on one registered model version and returns an
:class:`AuditReport` (JSON, Markdown, HTML); a blocker means the model must not ship as is.
"""

from __future__ import annotations

from taxiway.models.audit.availability import check_availability
from taxiway.models.audit.context import AuditContext
from taxiway.models.audit.coverage import check_coverage
from taxiway.models.audit.findings import CHECKS, AuditFinding, AuditReport
from taxiway.models.audit.latency import check_latency
from taxiway.models.audit.leakage import check_leakage
from taxiway.models.audit.segments import check_segments
from taxiway.models.audit.skew import check_model_skew
from taxiway.models.registry import ModelVersion
from taxiway.spec.project import Project

__all__ = ["CHECKS", "AuditFinding", "AuditReport", "run_audit"]


def run_audit(
    project: Project,
    version: ModelVersion,
    *,
    sample: int = 100,
    repeats: int = 200,
    skip: frozenset[str] = frozenset(),
) -> AuditReport:
    """Audit ``version`` of ``project``'s model; ``skip`` names checks not to run."""
    ctx = AuditContext(project, version, sample=sample, repeats=repeats)
    report = AuditReport(name=version.name, version=version.version)
    steps = {
        "leakage": check_leakage,
        "availability": check_availability,
        "latency": check_latency,
        "skew": check_model_skew,
        "coverage": check_coverage,
        "segments": check_segments,
    }
    for name, step in steps.items():
        if name in skip:
            report.checks[name] = "skipped"
            continue
        step(ctx, report)
    return report
