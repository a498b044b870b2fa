"""Phase 2, model development: the training set and the model against the baseline (the
candidate registered), the online store materialized, the handoff audit. A ``recommend:``
spec trains its recommender instead (:mod:`.recommend_development`) and takes the
recommender's audit (:func:`taxiway.recommend.audit.run_recommend_audit`).
"""

from __future__ import annotations

import time
from typing import Any

from taxiway.errors import TaxiwayError
from taxiway.features.materialize import materialize
from taxiway.features.online import open_online_store
from taxiway.features.training_set import used_sources
from taxiway.lineage import build_graph
from taxiway.models.audit import run_audit
from taxiway.models.audit.coverage import NO_ACTION, NO_OWNER
from taxiway.models.audit.findings import AuditReport
from taxiway.models.registry import open_registry
from taxiway.models.training import TrainResult, train_model
from taxiway.recommend.audit import run_recommend_audit
from taxiway.sprint.card import card_fact, write_version_card
from taxiway.sprint.outcome import Category, Check, CheckStatus, FixKind, Phase, blocker
from taxiway.sprint.phases.recommend_development import recommend_sources, train_recommender_step
from taxiway.sprint.phases.running import _phase, _State, _step


def training_checks(result: TrainResult) -> list[Check]:
    """The training set and the model against the baseline."""
    v = result.version
    metric = v.metrics.get("metric")
    model, baseline = v.metrics.get("model") or {}, v.metrics.get("baseline") or {}
    rows = v.training.get("rows")
    checks = [
        Check(
            "training set",
            "pass",
            f"{rows:,} rows, point in time{' (reused: unchanged sources)' if result.reused_training_set else ''}"
            if isinstance(rows, int)
            else "built",
            result.timings.get("training_set", 0.0),
            data={"rows": rows, "reused": result.reused_training_set},
        )
    ]
    ours, theirs = model.get(metric), baseline.get(metric)
    detail = f"{metric}: model {_fmt(ours)} vs baseline {_fmt(theirs)} ({v.algorithm})"
    described = v.metrics.get("baseline_description")
    if described:  # the terminal, report.md and report.json all name the bar that was used
        detail += f"; baseline: {described}"
    if result.reused_model:
        detail += f"; v{v.version} reused: trained from these same inputs"
    data = {"version": v.version, "algorithm": v.algorithm, "metric": metric,
            "model": ours, "baseline": theirs, "beats_baseline": result.beats_baseline,
            "baseline_description": described, "reused": result.reused_model}  # fmt: skip
    if result.beats_baseline:
        checks.append(Check("model beats the baseline", "pass", detail, 0.0, data=data))
    else:
        checks.append(
            Check(
                "model beats the baseline",
                "fail",
                detail,
                0.0,
                blocker=blocker(
                    "model_development",
                    "capability",
                    "the model does not beat the baseline",
                    evidence=detail,
                    fix="ship the baseline rule itself (no model needed), or find inputs that "
                    "carry signal the baseline lacks (new sources, longer history), then "
                    "`taxiway train` again",
                    kind="new_signal",
                ),
                data=data,
            )
        )
    return checks


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "n/a"


_AUDIT_CLASS: dict[str, tuple[Category, FixKind]] = {
    "leakage": ("technical", "retrain"),
    "availability": ("capability", "new_source"),
    "latency": ("technical", "tuning"),
    "skew": ("technical", "code"),
    "coverage": ("organizational", "spec_line"),
    "segments": ("technical", "retrain"),  # warnings only: a group where the model is worse
    "filters": ("technical", "code"),  # a recommender's: filters at evaluation and serving
}

_GOVERNANCE = {NO_OWNER: "owner declared", NO_ACTION: "action declared"}


def _subject(evidence: str) -> str:
    """What a finding about no one feature is about: its evidence up to the first colon, so two
    findings of one check (no contract, no fallback) never share a title.

    >>> _subject("no fallback is declared: when the model or the online store fails, requests fail")
    'no fallback is declared'
    """
    head = evidence.split(":", 1)[0].strip()
    return head if 0 < len(head) <= 100 else "the model"


def audit_checks(report: AuditReport, training_s: float | None = None) -> list[Check]:
    """One check per audit check (one per blocking finding); each blocker finding becomes a
    blocker, with the status the audit gave, so the phase table and the audit section agree.

    The missing owner and action are the deployment phase's blockers: their audit check still
    fails, with no second blocker. ``training_s`` is the training time the sprint measured:
    fixing a leak means retraining, so it is that fix's estimate.
    """
    checks: list[Check] = []
    measured = report.measured
    for name in report.names:  # the checks this audit covers (a recommender's differ)
        findings = [f for f in report.findings if f.check == name]
        # the deployment phase checks the owner and the action: each blocker is reported once
        elsewhere = [f for f in findings if f.evidence.startswith(tuple(_GOVERNANCE))]
        own = [f for f in findings if f not in elsewhere]
        blocking = [f for f in own if f.severity == "blocker"]
        category, kind = _AUDIT_CLASS[name]
        for finding in blocking:
            checks.append(
                Check(
                    f"audit {name}" + (f" ({finding.feature})" if finding.feature else ""),
                    "fail",
                    finding.evidence,
                    blocker=blocker(
                        "model_development",
                        category,
                        f"{name}: {finding.feature or _subject(finding.evidence)}",
                        evidence=finding.evidence,
                        fix=finding.fix,
                        kind=kind,
                        measured_s=training_s if kind == "retrain" else None,
                    ),
                )
            )
        moved = [f for f in elsewhere if f.severity == "blocker"]
        if moved:
            where = ", ".join(
                f"'{check}'" for prefix, check in _GOVERNANCE.items()
                if any(f.evidence.startswith(prefix) for f in moved)
            )  # fmt: skip
            detail = "; ".join(f.evidence for f in moved)
            checks.append(
                Check(
                    f"audit {name}", "fail", f"{detail} (its blocker is under deployment: {where})"
                )
            )
        if blocking or moved:
            continue
        warned = [f for f in findings if f.severity == "warning"]
        if warned:
            checks.append(
                Check(f"audit {name}", "warn", "; ".join(f.evidence for f in warned)[:300])
            )
        elif report.checks.get(name) in ("skipped", "not applicable"):
            ran = report.checks[name]
            checks.append(Check(f"audit {name}", "skip", "not run" if ran == "skipped" else ran))
        else:
            checks.append(Check(f"audit {name}", "pass", _measured(name, measured)))
    return checks


def _measured(name: str, measured: dict[str, Any]) -> str:
    """A passed check's figures in one line: a timed check's p50/p99 per kind of call (a
    recommender's latency: known and cold users) first, else its first plain figures.

    >>> _measured("latency", {"latency": {"budget_ms": 50.0, "known": {"p50_ms": 1.1,
    ...     "p99_ms": 1.7, "calls": 200}, "cold": {"p50_ms": 1.0, "p99_ms": 1.3}}})
    'known p50 1.1 ms, p99 1.7 ms; cold p50 1 ms, p99 1.3 ms; budget 50 ms'
    """
    value = measured.get(name)
    timed = {
        kind: figures
        for kind, figures in (value.items() if isinstance(value, dict) else ())
        if isinstance(figures, dict) and "p99_ms" in figures and kind != "stages"
    }
    if timed and isinstance(value, dict):
        parts = [f"{kind} p50 {f.get('p50_ms'):g} ms, p99 {f.get('p99_ms'):g} ms"
                 for kind, f in timed.items()]  # fmt: skip
        if isinstance(value.get("budget_ms"), int | float):
            parts.append(f"budget {value['budget_ms']:g} ms")
        return "; ".join(parts)
    if isinstance(value, dict):
        parts = [f"{k} {v}" for k, v in value.items() if isinstance(v, int | float | str)][:4]
        return ", ".join(parts)
    return "passed"


def _model_development(state: _State) -> None:
    project = state.project
    recommender = project.spec.recommend is not None
    with _phase(state, "model_development") as phase:
        unreadable = _blocked_sources(state)
        needed = recommend_sources(project) if recommender else set(used_sources(project.spec))
        if unreadable & needed:
            names = ", ".join(sorted(unreadable & needed))
            phase.checks.append(
                Check("train", "skip", f"the model reads {names}, which data access blocked")
            )
            return
        if recommender:
            train_recommender_step(state, phase)
        else:
            _train(state, phase)
        if state.candidate is None:
            return
        with _step(state, phase, "handoff audit", "run `taxiway audit` and fix what it reports"):
            began = time.perf_counter()
            sample = state.options.audit_sample
            audit = (
                run_recommend_audit(project, state.candidate, sample=sample)
                if recommender
                else run_audit(project, state.candidate, sample=sample)
            )
            _record_audit(state, phase, audit, began)
            _record_card(state, audit)


def _train(state: _State, phase: Phase) -> None:
    """A classifier's (or regressor's) training, then the online store materialized."""
    project = state.project
    registry = open_registry(project.spec.registry, state_dir=project.state_dir)
    try:
        with _step(state, phase, "train", "run `taxiway train` and fix what it reports"):
            began = time.perf_counter()
            result = train_model(
                project,
                registry=registry,
                progress=lambda what: state.say("model_development", what),
                created_by="taxiway sprint",
                reuse=not state.options.retrain,
            )
            trained = training_checks(result)
            # the model's check carries the training time (the set's its own)
            trained[-1].duration_s = max(0.0, time.perf_counter() - began - trained[0].duration_s)
            phase.checks.extend(trained)
            state.candidate = result.version
            v = result.version
            metric = v.metrics.get("metric")
            state.facts["model"] = {
                "version": v.version,
                "algorithm": v.algorithm,
                "metric": metric,
                "model": (v.metrics.get("model") or {}).get(metric),
                "baseline": (v.metrics.get("baseline") or {}).get(metric),
                "beats_baseline": result.beats_baseline,
                "baseline_description": v.metrics.get("baseline_description"),
                # the audit's permutation shares beside the explanations' mean |contribution|
                "importance": _importance(v.metrics),
                # what a retrain costs, the estimate of a fix that needs one: unknown when
                # the version was reused rather than trained here
                "training_s": None
                if result.reused_model
                else round(time.perf_counter() - began, 3),
            }
            state.observed["lineage_recorded"] = bool(v.lineage)
            production = registry.production(v.name)
            served = production.version if production is not None else None
            graph = build_graph(v.name, v.version, v.lineage, stage=v.stage, served=served)
            state.facts["lineage"] = graph.as_dict()
    finally:
        registry.close()
    if state.candidate is None:
        return
    with _step(state, phase, "materialize the online store", "run `taxiway features "
               "materialize` and fix what it reports"):  # fmt: skip
        began = time.perf_counter()
        store = open_online_store(
            project.spec.online_store, state_dir=project.state_dir, namespace=project.spec.name
        )
        try:
            done = materialize(project, store, as_of=state.options.as_of)
        finally:
            store.close()
        phase.checks.append(
            Check(
                "online store materialized",
                "pass",
                f"{len(done.views)} views as of {done.as_of.isoformat()}",
                time.perf_counter() - began,
                data=done.as_dict(),
            )
        )
        state.observed["online_store_used"] = True


def _record_card(state: _State, audit: AuditReport) -> None:
    """The version's model card rewritten with the audit and the sign-offs; its fact."""
    assert state.candidate is not None
    try:
        card, paths = write_version_card(state.project, state.candidate, audit.as_dict())
    except (TaxiwayError, OSError) as error:
        state.facts["card"] = {"error": str(error).splitlines()[0]}
        return
    state.facts["card"] = card_fact(card, paths)


def _record_audit(state: _State, phase: Phase, audit: AuditReport, began: float) -> None:
    """The audit as a whole (timed), then its checks, each with its blocker; its facts."""
    audited = audit_checks(audit, (state.facts.get("model") or {}).get("training_s"))
    phase.checks.append(
        Check(
            "handoff audit",
            _worst(audited),
            _audit_summary(audited, len(audit.findings)),
            time.perf_counter() - began,
        )
    )
    phase.checks.extend(audited)
    recommender = state.project.spec.recommend is not None
    state.facts["audit"] = {
        "blocked": audit.blocked,
        "checks": {c: audit.status(c) for c in (audit.names if recommender else ())}
        | {c: audit.status(c) for c in audit.checks}
        | {f.check: audit.status(f.check) for f in audit.findings},
        "findings": [
            {
                "check": f.check,
                "severity": f.severity,
                "message": f.evidence,
                "fix": f.fix,
                "feature": f.feature,
            }
            for f in audit.findings
        ],
    }
    state.observed["audit_passed"] = not audit.blocked
    if recommender:
        state.facts["audit"]["measured"] = audit.measured
        if "skew" not in audit.names:
            # no ranking over feature views: no skew check (filters parity is not that question)
            return
    skew = audit.status("skew")
    state.observed["skew_checked"] = skew == "passed"
    state.observed["shared_definitions"] = skew == "passed" and state.observed.get(
        "online_store_used", False
    )


_SEVERITY: dict[CheckStatus, int] = {"skip": 0, "pass": 1, "warn": 2, "fail": 3}  # nosec B105


def _worst(checks: list[Check]) -> CheckStatus:
    """The worst status of ``checks`` (``skip`` only when every one was skipped)."""
    return max((c.status for c in checks), key=_SEVERITY.__getitem__, default="pass")


def _audit_summary(audited: list[Check], findings: int) -> str:
    """The audit in one line, counted from the checks that follow it in the phase table:
    ``5 checks: leakage, coverage failed; 3 passed; 3 finding(s)``."""
    by_check: dict[str, CheckStatus] = {}
    for check in audited:  # "audit leakage (x)" and "audit leakage (y)" are one audit check
        name = check.name.removeprefix("audit ").split(" (")[0]
        seen = by_check.get(name, "skip")
        by_check[name] = max(seen, check.status, key=_SEVERITY.__getitem__)
    parts = []
    for status, word in (("fail", "failed"), ("warn", "warned"), ("skip", "skipped")):
        names = [name for name, found in by_check.items() if found == status]
        if names:
            parts.append(f"{', '.join(names)} {word}")
    passed = sum(1 for found in by_check.values() if found == "pass")
    if passed:
        parts.append(f"{passed} passed")
    return f"{len(by_check)} checks: {'; '.join(parts)}; {findings} finding(s)"


def _blocked_sources(state: _State) -> set[str]:
    blocked: set[str] = set()
    for phase in state.phases:
        if phase.name != "data_access":
            continue
        for check in phase.checks:
            if check.blocker is not None and check.name.startswith("source "):
                blocked.add(check.name.removeprefix("source "))
    return blocked


def _importance(metrics: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Per input: its permutation share (what the leakage audit reads) and its mean
    |contribution| to the raw score on the validation rows (None without explanations)."""
    shares = metrics.get("importance") or {}
    contributions = metrics.get("contribution_importance") or {}
    names = [*contributions, *(n for n in shares if n not in contributions)]
    return {
        name: {"permutation": shares.get(name), "contribution": contributions.get(name)}
        for name in names
    }
