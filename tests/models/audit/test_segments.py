"""The audit's segments check: a warning per group where the model is worse than the
baseline, and one when a declared segment was never measured."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tests.models.test_card import _group, _version

from taxiway.models.audit import CHECKS
from taxiway.models.audit.context import AuditContext
from taxiway.models.audit.findings import AuditReport
from taxiway.models.audit.segments import check_segments
from taxiway.spec.project import Project


def _project(tmp_path: Path, segments: str) -> Project:
    spec = tmp_path / "taxiway.yaml"
    spec.write_text(f"name: churn\ngovernance:\n  segments: {segments}\n")
    return Project.load(spec)


def _audit(project: Project, **metrics: object) -> AuditReport:
    version = _version()
    version = replace(version, metrics={**version.metrics, **metrics})
    report = AuditReport(name="churn", version=4)
    check_segments(AuditContext(project, version), report)
    return report


def test_a_worse_segment_is_a_warning_with_the_fix(tmp_path: Path) -> None:
    report = _audit(_project(tmp_path, "[region]"))
    (finding,) = report.findings
    assert (finding.check, finding.severity) == ("segments", "warning")
    assert finding.evidence.startswith("the model is worse than the baseline for region=north")
    assert "keep the baseline there" in finding.fix
    assert report.status("segments") == "warning"
    assert not report.blocked
    assert "segments" in CHECKS


def test_a_declared_segment_never_measured_says_retrain(tmp_path: Path) -> None:
    report = _audit(_project(tmp_path, "[region, tier]"))
    assert [f.evidence.split(",")[0] for f in report.findings] == [
        "governance.segments declares tier",
        "the model is worse than the baseline for region=north: ROC AUC 0.6200 against the "
        "baseline's 0.7000 on 400 validation rows (lift -0.0800",
    ]


def test_no_segment_no_slice_is_not_applicable(tmp_path: Path) -> None:
    report = _audit(_project(tmp_path, "[]"), segments={}, time_slices=[])
    assert report.findings == []
    assert report.status("segments") == "not applicable"


def test_nothing_worse_passes(tmp_path: Path) -> None:
    report = _audit(
        _project(tmp_path, "[region]"),
        segments={"region": {"column": "region", "rows": [_group("south", "better")]}},
    )
    assert report.findings == []
    assert report.status("segments") == "passed"
