"""Phase 1, data access: every source reached, read and checked against its contract
(:func:`taxiway.data.check.check_project`); each finding becomes a check, a ``block`` a blocker.
"""

from __future__ import annotations

from typing import Any

from taxiway.data.check import CheckReport, check_project
from taxiway.data.findings import Finding
from taxiway.sprint.outcome import Category, Check, FixKind, blocker
from taxiway.sprint.phases.running import _phase, _State, _step


def data_checks(report: CheckReport) -> list[Check]:
    """One check per source (and one for spec-level findings), blockers for ``block``s."""
    checks: list[Check] = []
    if report.findings:
        checks.append(_from_findings("spec", report.findings, 0.0, {}))
    for source in report.sources:
        data = {"rows": source.rows, "kind": source.kind, "location": source.location}
        if source.validation is not None:
            data["quarantined_rows"] = source.validation.quarantined_rows
        checks.append(_from_findings(f"source {source.name}", source.findings, source.duration_s,
                                     data))  # fmt: skip
    return checks


def _from_findings(
    name: str, findings: list[Finding], duration_s: float, data: dict[str, Any]
) -> Check:
    blocking = [f for f in findings if f.blocks]
    noted = [f for f in findings if f.severity in ("warn", "quarantine")]
    if not blocking:
        detail = "; ".join(f.message for f in noted[:3]) or "reachable, readable, contract passed"
        return Check(name, "warn" if noted else "pass", detail, duration_s, data=data)
    first = blocking[0]
    category, kind, who = _classify_finding(first)
    evidence = "; ".join(f"{f.rule}: {f.message}" for f in blocking[:5])
    if len(blocking) > 5:
        evidence += f"; and {len(blocking) - 5} more"
    fixes = [f.fix for f in blocking if f.fix]
    return Check(
        name,
        "fail",
        first.message,
        duration_s,
        blocker=blocker(
            "data_access",
            category,
            first.message
            if f"`{first.source}`" in first.message
            else f"{first.source}: {first.message}",
            evidence=evidence,
            fix=" ".join(dict.fromkeys(fixes)) or f"fix {first.rule} on {first.source}",
            kind=kind,
            who=who,
        ),
        data=data,
    )


def _classify_finding(finding: Finding) -> tuple[Category, FixKind, str | None]:
    """The category, the kind of fix and who acts, from the finding's rule and its fix."""
    rule, fix = finding.rule, (finding.fix or "").lstrip()
    if rule.startswith("access.") and fix.upper().startswith("GRANT"):
        return "organizational", "grant", None  # someone with the right must grant it
    if fix.startswith("export "):
        return "technical", "setting", None  # a variable the run lacks
    if rule.startswith(("spec.", "contract.")):
        return "technical", "spec_line", None
    if rule in ("access.connect", "access.table", "source.read") or rule.startswith("access."):
        return "technical", "code", f"whoever runs source `{finding.source}`"
    return "technical", "data_fix", f"the producer of source `{finding.source}`"


def _data_access(state: _State) -> None:
    with (
        _phase(state, "data_access") as phase,
        _step(state, phase, "check sources", "run `taxiway check` and fix what it reports"),
    ):
        report = check_project(
            state.project,
            as_of=state.options.as_of,
            progress=lambda source, step: state.say("data_access", f"{source}: {step}"),
        )
        phase.checks.extend(data_checks(report))
        state.facts["sources"] = {s.name: s.status for s in report.sources}
        checked = bool(report.sources) and all(s.validation is not None for s in report.sources)
        state.observed["contracts_passed"] = _contracts_passed(report, checked)
        # whether rows are checked is seen only on a source that was read: a source read
        # without a contract is a no; one never read leaves the question unobserved
        bare = sorted(s.name for s in report.sources if any(
            f.rule == "contract.missing" for f in s.findings))  # fmt: skip
        if bare:
            state.observed["contracts_checked"] = (False, f"read unchecked: {', '.join(bare)}")
        elif checked:
            names = ", ".join(s.name for s in report.sources)
            state.observed["contracts_checked"] = (True, f"checked on this read: {names}")


def _contracts_passed(report: CheckReport, checked: bool) -> tuple[bool, str]:
    """Every source reachable and its rows passing its contract: the same findings the phase
    table shows, so a source in ``warn`` (failing rows, late data) is not a pass."""
    failing = [f"{s.name} ({s.status})" for s in report.sources if s.status != "ok"]
    if failing:
        return (False, f"not passing: {', '.join(failing)}")
    if not checked:
        return (False, "a source was read without its contract checked")
    return (True, f"passed: {', '.join(s.name for s in report.sources)}")
